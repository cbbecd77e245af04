# make bench: irqd beside the KVM_IRQ_LINE ioctl and the raw seqpacket floor,
# measured in one run with stated CPU placement (bench/run.py; bench/README.md).
# BENCH_ARGS passes options through, e.g. BENCH_ARGS="--seconds 1".
BENCH_ARGS ?=

bench: build
	$(VPY) bench/run.py $(BENCH_ARGS)
