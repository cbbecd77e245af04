# The XICS core (irqd/core/{ics,icp,xics}.c), included by the Makefile.
#
#   make tsan        the multi-threaded core stress (tests/test_stress.py: C
#                    threads with exact trigger/presentation accounting, plain
#                    and with concurrent masking + IPIs) under ThreadSanitizer
#                    and under ASan/UBSan
#   make core-test   every core test of the in-process backend (errors, outputs,
#                    resample, export/import, all sources, stress, ABI header,
#                    the X-nnn scenarios on inproc)

.PHONY: tsan core-test

tsan: build sysdeps
	$(VPY) -m pytest -q tests/test_stress.py -k "sanitizer"

core-test: build
	$(VPY) -m pytest -q tests/test_abi_header.py tests/test_core_errors.py tests/test_core_output.py \
		tests/test_core_big.py tests/test_stress.py
	$(VPY) -m pytest -q tests/test_scenarios.py -k inproc
