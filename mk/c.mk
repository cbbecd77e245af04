# C client, C tests, sanitizers and fuzzing (included by the Makefile).
#
#   make c-client     build/c/libirqd_client.a (gcc; clang too if installed:
#                     both -std=c11 -Wall -Wextra -Werror)
#   make c-test-build tests/c/build/{harness,test_core,golden_dump}
#   make c-asan-build build/asan/: the same C programs and the cffi module
#                     irqd._core with -fsanitize=address,undefined
#   make c-test       run the C tests through pytest (harness, core, sanitizers)
#   make fuzz-build   fuzz/build/*: libFuzzer targets (clang)
#   make fuzz         run each fuzz target FUZZ_SECONDS (default 60) on its corpus
#
# pytest (tests/test_c_harness.py, test_sanitizers.py, test_fuzz_short.py)
# calls these targets, so `make test` builds and runs all of it.

CC_GCC     ?= gcc
CLANG      ?= clang
C_STD      := -std=c11
C_WARN     := -Wall -Wextra -Werror
C_INC      := -Iinclude -I.
C_BUILD    := tests/c/build
ASAN_DIR   := build/asan
FUZZ_DIR   := fuzz/build
FUZZ_SECONDS ?= 60

CORE_SRCS   := $(wildcard irqd/core/*.c)
CORE_HDRS   := $(wildcard irqd/core/*.h) $(wildcard include/irqd/*.h)
CLIENT_SRCS := clib/irqd_client.c
CLIENT_HDRS := include/irqd/client.h include/irqd/abi.h
RUNNER      := tests/c/runner.c tests/c/xdev.c tests/c/scenarios.c
TEST_HDRS   := tests/c/runner.h tests/c/xdev.h
HARNESS_SRCS := tests/c/harness.c tests/c/backend_daemon.c $(RUNNER) $(CLIENT_SRCS)
CORETEST_SRCS := tests/c/test_core.c tests/c/backend_core.c $(RUNNER) $(CORE_SRCS)

# the core uses C11 atomics and pthreads; gnu11 for its POSIX bits
CORE_STD   := -std=gnu11
ASAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g -O1

.PHONY: c-client c-clang-check c-test-build c-asan-build c-asan-module c-test fuzz-build fuzz fuzz-short

# ---- the client library ----

build/c/irqd_client.o: $(CLIENT_SRCS) $(CLIENT_HDRS)
	@mkdir -p build/c
	$(CC_GCC) $(C_STD) $(C_WARN) -O2 -fPIC $(C_INC) -c $< -o $@

build/c/libirqd_client.a: build/c/irqd_client.o
	ar rcs $@ $^

c-client: build/c/libirqd_client.a c-clang-check

# clang is optional for the client; when present it must compile it clean too
c-clang-check: $(CLIENT_SRCS) $(CLIENT_HDRS)
	@if command -v $(CLANG) >/dev/null; then \
	  $(CLANG) $(C_STD) $(C_WARN) -O2 $(C_INC) -c $(CLIENT_SRCS) -o /dev/null && echo "clang: client clean"; \
	else echo "clang not installed: skipped"; fi

# ---- plain test programs ----

$(C_BUILD)/harness: $(HARNESS_SRCS) $(CLIENT_HDRS) $(TEST_HDRS)
	@mkdir -p $(C_BUILD)
	$(CC_GCC) $(CORE_STD) $(C_WARN) -O2 -g $(C_INC) $(HARNESS_SRCS) -o $@

$(C_BUILD)/test_core: $(CORETEST_SRCS) $(CORE_HDRS) $(TEST_HDRS)
	@mkdir -p $(C_BUILD)
	$(CC_GCC) $(CORE_STD) $(C_WARN) -O2 -g $(C_INC) $(CORETEST_SRCS) -lpthread -o $@

$(C_BUILD)/golden_dump: tests/c/golden_dump.c $(CLIENT_SRCS) $(CLIENT_HDRS)
	@mkdir -p $(C_BUILD)
	$(CC_GCC) $(CORE_STD) $(C_WARN) -O2 -g $(C_INC) tests/c/golden_dump.c $(CLIENT_SRCS) -o $@

c-test-build: c-client $(C_BUILD)/harness $(C_BUILD)/test_core $(C_BUILD)/golden_dump

# ---- AddressSanitizer + UndefinedBehaviorSanitizer builds ----

$(ASAN_DIR)/harness: $(HARNESS_SRCS) $(CLIENT_HDRS) $(TEST_HDRS)
	@mkdir -p $(ASAN_DIR)
	$(CC_GCC) $(CORE_STD) $(C_WARN) $(ASAN_FLAGS) $(C_INC) $(HARNESS_SRCS) -o $@

$(ASAN_DIR)/test_core: $(CORETEST_SRCS) $(CORE_HDRS) $(TEST_HDRS)
	@mkdir -p $(ASAN_DIR)
	$(CC_GCC) $(CORE_STD) $(C_WARN) $(ASAN_FLAGS) $(C_INC) $(CORETEST_SRCS) -lpthread -o $@

# The cffi module, instrumented, in a copy of the package: PYTHONPATH=build/asan
# plus LD_PRELOAD of the ASan runtime runs the Python tests against it (and
# the daemon, whose wire.c dispatcher is in the same module).
$(ASAN_DIR)/.module: $(CORE_SRCS) $(CORE_HDRS) irqd/_build.py $(wildcard irqd/*.py) tests/c/asan_pytest_plugin.py $(STAMP)
	@mkdir -p $(ASAN_DIR)/irqd
	rm -rf $(ASAN_DIR)/irqd $(ASAN_DIR)/include
	mkdir -p $(ASAN_DIR)/irqd/core $(ASAN_DIR)/include/irqd
	cp irqd/*.py $(ASAN_DIR)/irqd/
	cp irqd/core/*.c irqd/core/*.h $(ASAN_DIR)/irqd/core/
	cp include/irqd/*.h $(ASAN_DIR)/include/irqd/
	cp tests/c/asan_pytest_plugin.py $(ASAN_DIR)/
	cd $(ASAN_DIR) && CFLAGS="$(ASAN_FLAGS)" LDFLAGS="-fsanitize=address,undefined" \
	  $(CURDIR)/$(VPY) irqd/_build.py
	@ldd $(ASAN_DIR)/irqd/_core*.so | grep -q libasan || { echo "asan module not instrumented"; exit 1; }
	touch $@

c-asan-module: $(ASAN_DIR)/.module

c-asan-build: $(ASAN_DIR)/harness $(ASAN_DIR)/test_core c-asan-module

c-test: build sysdeps
	$(VPY) -m pytest -q tests/test_c_harness.py tests/test_sanitizers.py tests/test_fuzz_short.py

# ---- libFuzzer ----

FUZZ_FLAGS := -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -g -O1
FUZZ_TARGETS := $(FUZZ_DIR)/fuzz_wire $(FUZZ_DIR)/fuzz_core $(FUZZ_DIR)/fuzz_client $(FUZZ_DIR)/fuzz_ring

$(FUZZ_DIR)/fuzz_wire: fuzz/fuzz_wire.c $(CORE_SRCS) $(CORE_HDRS)
	@mkdir -p $(FUZZ_DIR)
	$(CLANG) $(CORE_STD) $(C_WARN) $(FUZZ_FLAGS) $(C_INC) fuzz/fuzz_wire.c $(CORE_SRCS) -lpthread -o $@

$(FUZZ_DIR)/fuzz_core: fuzz/fuzz_core.c fuzz/fuzz_input.h $(CORE_SRCS) $(CORE_HDRS)
	@mkdir -p $(FUZZ_DIR)
	$(CLANG) $(CORE_STD) $(C_WARN) $(FUZZ_FLAGS) $(C_INC) fuzz/fuzz_core.c $(CORE_SRCS) -lpthread -o $@

$(FUZZ_DIR)/fuzz_ring: fuzz/fuzz_ring.c fuzz/fuzz_input.h $(CORE_SRCS) $(CORE_HDRS)
	@mkdir -p $(FUZZ_DIR)
	$(CLANG) $(CORE_STD) $(C_WARN) $(FUZZ_FLAGS) $(C_INC) fuzz/fuzz_ring.c $(CORE_SRCS) -lpthread -o $@

$(FUZZ_DIR)/fuzz_client: fuzz/fuzz_client.c $(CLIENT_SRCS) $(CLIENT_HDRS)
	@mkdir -p $(FUZZ_DIR)
	$(CLANG) $(CORE_STD) $(C_WARN) $(FUZZ_FLAGS) $(C_INC) fuzz/fuzz_client.c $(CLIENT_SRCS) -o $@

fuzz-build: sysdeps $(FUZZ_TARGETS)

# Each target on a scratch copy of its committed corpus (new inputs go to
# fuzz/build/corpus/<target>, the committed seeds stay as they are); a crash
# leaves fuzz/build/crash-* and fails the target.
fuzz: fuzz-build
	@set -e; for t in $(notdir $(FUZZ_TARGETS)); do \
	  mkdir -p $(FUZZ_DIR)/corpus/$$t; \
	  echo "== $$t: $(FUZZ_SECONDS) s"; \
	  $(FUZZ_DIR)/$$t -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    -artifact_prefix=$(FUZZ_DIR)/ $(FUZZ_DIR)/corpus/$$t fuzz/corpus/$$t; \
	done
