# Reliability: daemon fuzzing for longer than `make test` does (tests/test_fuzz_daemon.py
# runs both fuzzers for a few seconds in every `make test`).
#
#   make fuzz-daemon [FUZZ_SECONDS=300]
#       fuzz/atheris/run.sh: the atheris target over the daemon's record path
#       (in-process, coverage-guided) for FUZZ_SECONDS on a scratch copy of
#       fuzz/atheris/corpus (crashes: fuzz/build/atheris/crash-*), then the
#       socket-level mutation fuzzer as an unprivileged uid for FUZZ_SECONDS
#       (IRQD_FUZZ_SEED=N replays one run).
#   make fuzz-daemon-corpus   regenerate fuzz/atheris/corpus (deterministic)
#   make reliability          only the reliability tests (malformed table, fuzz,
#                             concurrency, faults, isolation)
#
# `make fuzz` runs fuzz-daemon too (before the libFuzzer targets of mk/c.mk).

FUZZ_SECONDS ?= 60
RELIABILITY_TESTS := tests/test_malformed.py tests/test_fuzz_daemon.py tests/test_concurrency.py \
                     tests/test_faults.py tests/test_isolation.py

.PHONY: fuzz-daemon fuzz-daemon-corpus reliability

fuzz-daemon: build
	FUZZ_SECONDS=$(FUZZ_SECONDS) PYTHON=$(VPY) fuzz/atheris/run.sh $(FUZZ_SECONDS)
	IRQD_SOCKET_FUZZ_SECONDS=$(FUZZ_SECONDS) $(VPY) -m pytest -q -s -p no:cacheprovider --timeout=0 \
	  tests/test_fuzz_daemon.py -k socket_mutation_fuzzer

fuzz-daemon-corpus: build
	$(VPY) fuzz/atheris/make_corpus.py

reliability: build
	$(VPY) -m pytest -q $(RELIABILITY_TESTS)

fuzz: fuzz-daemon
