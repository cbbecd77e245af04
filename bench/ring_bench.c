/* SPDX-License-Identifier: MIT */
/*
 * The shared-memory trigger ring (abi.h 0x40 RING_SETUP) against
 * KVM_IRQ_LINE, measured in the same process, on the same client CPU, in
 * alternating slices:
 *
 *   ring_lat_hot_TAG        ns, median trigger-to-apply: post one entry, spin
 *                           until the daemon's tail (store-released after the
 *                           core applied the entry) covers it; back to back,
 *                           so the consumer is in its busy-poll window.  This
 *                           is post -> applied -> seen by the producer: an
 *                           upper bound of trigger-to-apply (includes the
 *                           cache line's way back), as an ioctl's return is.
 *   ring_lat_hot_p99_TAG    ns, 99th percentile of the same
 *   ring_lat_cold_TAG       ns, median, with 300 us between posts: the
 *                           consumer sleeps, the producer rings the doorbell
 *   ring_rate_TAG           M/s, triggers posted and applied per second
 *                           (post_many of 64, retried when the ring is full,
 *                           until everything posted is consumed)
 *   ring_kvm_lat_TAG        ns, median of individually timed KVM_IRQ_LINE
 *                           ioctls (the applied state is known at return),
 *                           timed exactly like the ring samples
 *   ring_kvm_rate_TAG       M/s, KVM_IRQ_LINE ioctls per second back to back
 *   ring_clock_ns           ns, the cost of one clock read pair (in both)
 *
 * Set-up: one device, 16 masked MSI sources at 4096 (each entry an edge, as
 * an MSI), a ring of 2^10 entries.  --yield: the producer yields while it
 * waits (the consumer is on the same CPU).
 *
 * usage: ring_bench --socket PATH [--cpu N] [--tag T] [--seconds S] [--yield]
 */
#include "bench.h"

#include <fcntl.h>
#include <linux/kvm.h>
#include <stdatomic.h>
#include <sys/ioctl.h>

#include "irqd/client.h"
#include "irqd/ring_producer.h"

#define FIRST 4096
#define NSRC 16
#define LOG2 10
#define MAXS 200000
#define GSI 5

static uint64_t samples[MAXS];

static inline uint64_t tail_of(void *mem)
{
	return atomic_load_explicit(IRQD_RING_A64(&((struct irqd_ring_hdr *)mem)->tail), memory_order_acquire);
}

static inline void wait_tail(void *mem, uint64_t target, int yield)
{
	while (tail_of(mem) < target) {
		if (yield)
			sched_yield();
		else
			__builtin_ia32_pause();
	}
}

static uint64_t ring_sample(struct irqd_client_ring *r, uint64_t i, int yield)
{
	struct irqd_ring_hdr *h = r->mem;
	uint64_t head = atomic_load_explicit(IRQD_RING_A64(&h->head), memory_order_relaxed);
	uint64_t t0 = now_ns();

	if (irqd_ring_post1(r->mem, r->doorbell, FIRST + (uint32_t)(i % NSRC), IRQD_KVM_INTERRUPT_SET) < 0)
		die("ring_bench: ring unexpectedly full");
	wait_tail(r->mem, head + 1, yield);
	return now_ns() - t0;
}

static uint64_t kvm_sample(int vm, uint64_t i)
{
	struct kvm_irq_level lvl = { .irq = GSI, .level = (uint32_t)(i & 1) ^ 1 };
	uint64_t t0 = now_ns();

	if (ioctl(vm, KVM_IRQ_LINE, &lvl) < 0)
		die("ring_bench: KVM_IRQ_LINE: %s", strerror(errno));
	return now_ns() - t0;
}

/* median and p99 of up to MAXS samples taken for `seconds` (or max_n) */
static void lat(const char *name, const char *p99name, double seconds, uint64_t max_n, uint64_t gap_us,
		uint64_t (*fn)(void *, uint64_t, int), void *arg, int yield)
{
	uint64_t n = 0, t_end = now_ns() + (uint64_t)(seconds * 1e9);
	char buf[96];

	while (n < MAXS && n < max_n && now_ns() < t_end) {
		if (gap_us)
			usleep((useconds_t)gap_us);
		samples[n] = fn(arg, n, yield);
		n++;
	}
	if (n < 10)
		die("ring_bench: too few samples for %s", name);
	figure(name, (double)quantile(samples, n, 0.5), "ns");
	if (p99name) {
		snprintf(buf, sizeof(buf), "%s", p99name);
		figure(buf, (double)quantile(samples, n, 0.99), "ns");
	}
}

static struct irqd_client_ring *g_ring;
static int g_vm = -1;

static uint64_t ring_fn(void *arg, uint64_t i, int yield)
{
	return ring_sample(arg, i, yield);
}

static uint64_t kvm_fn(void *arg, uint64_t i, int yield)
{
	(void)yield;
	return kvm_sample(*(int *)arg, i);
}

static double ring_rate(struct irqd_client_ring *r, double seconds, int yield)
{
	struct irqd_irq_batch_entry e[64];
	uint64_t posted = 0, t0, t_end, head0;

	for (int i = 0; i < 64; i++)
		e[i] = (struct irqd_irq_batch_entry){ FIRST + (uint32_t)(i % NSRC), IRQD_KVM_INTERRUPT_SET };
	head0 = atomic_load_explicit(IRQD_RING_A64(&((struct irqd_ring_hdr *)r->mem)->head), memory_order_relaxed);
	t0 = now_ns();
	t_end = t0 + (uint64_t)(seconds * 1e9);
	while (now_ns() < t_end) {
		for (int k = 0; k < 16; k++) {
			uint32_t n = irqd_ring_post_many(r->mem, r->doorbell, e, 64);
			posted += n;
			if (n < 64 && yield)
				sched_yield();
		}
	}
	wait_tail(r->mem, head0 + posted, yield);
	return (double)posted / ((double)(now_ns() - t0) / 1e9) / 1e6;
}

static double kvm_rate(int vm, double seconds)
{
	uint64_t n = 0, t0 = now_ns(), t_end = t0 + (uint64_t)(seconds * 1e9);

	while (now_ns() < t_end) {
		for (int k = 0; k < 1000; k++, n++) {
			struct kvm_irq_level lvl = { .irq = GSI, .level = (uint32_t)(n & 1) ^ 1 };
			if (ioctl(vm, KVM_IRQ_LINE, &lvl) < 0)
				die("ring_bench: KVM_IRQ_LINE: %s", strerror(errno));
		}
	}
	return (double)n / ((double)(now_ns() - t0) / 1e9) / 1e6;
}

int main(int argc, char **argv)
{
	const char *path = NULL, *tag = "x";
	int cpu = 0, yield = 0, rc, kvm;
	double seconds = 1.0;
	struct irqd_client c;
	struct irqd_client_ring ring;
	uint32_t handle;
	char n1[64], n2[64];

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--socket") && i + 1 < argc)
			path = argv[++i];
		else if (!strcmp(argv[i], "--cpu") && i + 1 < argc)
			cpu = (int)arg_double(argv[++i], "cpu");
		else if (!strcmp(argv[i], "--tag") && i + 1 < argc)
			tag = argv[++i];
		else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
			seconds = arg_double(argv[++i], "seconds");
		else if (!strcmp(argv[i], "--yield"))
			yield = 1;
		else
			die("usage: ring_bench --socket PATH [--cpu N] [--tag T] [--seconds S] [--yield]");
	}
	if (!path)
		die("ring_bench: --socket is required");
	pin_cpu(cpu);

	if ((rc = irqd_client_connect(&c, path)) < 0)
		die("ring_bench: connect %s: %s", path, strerror(-rc));
	if (!(c.hello.features & IRQD_FEAT_RING)) {
		skipped("ring_*", "the daemon does not offer IRQD_FEAT_RING");
		return 0;
	}
	if ((rc = irqd_create_device(&c, IRQD_KVM_DEV_TYPE_XICS, 0, &handle)) < 0 ||
	    (rc = irqd_create_ics(&c, handle, FIRST, NSRC, 0)) < 0)
		die("ring_bench: set-up: %s (%s)", strerror(-rc), irqd_client_last_error(&c));
	if ((rc = irqd_client_ring_open(&c, handle, LOG2, &ring)) < 0)
		die("ring_bench: RING_SETUP: %s (%s)", strerror(-rc), irqd_client_last_error(&c));
	g_ring = &ring;

	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm >= 0) {
		g_vm = ioctl(kvm, KVM_CREATE_VM, 0);
		if (g_vm < 0 || ioctl(g_vm, KVM_CREATE_IRQCHIP, 0) < 0)
			die("ring_bench: KVM VM / irqchip: %s", strerror(errno));
	}

	{	/* clock overhead, present in every latency sample */
		uint64_t n;
		for (n = 0; n < 10000; n++) {
			uint64_t t0 = now_ns();
			samples[n] = now_ns() - t0;
		}
		figure("ring_clock_ns", (double)quantile(samples, n, 0.5), "ns");
	}

	/* alternate: ring, KVM, ring, KVM ... each half the time, best kept by run.py */
	for (int round = 0; round < 2; round++) {
		snprintf(n1, sizeof(n1), "ring_lat_hot_%s", tag);
		snprintf(n2, sizeof(n2), "ring_lat_hot_p99_%s", tag);
		ring_sample(&ring, 0, yield);       /* wake the consumer */
		lat(n1, n2, seconds / 4, MAXS, 0, ring_fn, &ring, yield);
		if (g_vm >= 0) {
			snprintf(n1, sizeof(n1), "ring_kvm_lat_%s", tag);
			snprintf(n2, sizeof(n2), "ring_kvm_lat_p99_%s", tag);
			lat(n1, n2, seconds / 4, MAXS, 0, kvm_fn, &g_vm, 0);
		}
	}
	snprintf(n1, sizeof(n1), "ring_lat_cold_%s", tag);
	lat(n1, NULL, seconds / 2, 2000, 300, ring_fn, &ring, yield);
	snprintf(n1, sizeof(n1), "ring_rate_%s", tag);
	figure(n1, ring_rate(&ring, seconds / 2, yield), "M/s");
	if (g_vm >= 0) {
		snprintf(n1, sizeof(n1), "ring_kvm_rate_%s", tag);
		figure(n1, kvm_rate(g_vm, seconds / 2), "M/s");
	} else {
		skipped("ring_kvm_*", "/dev/kvm not usable");
	}
	{
		struct irqd_ring_hdr *h = ring.mem;
		uint64_t errors = atomic_load_explicit(IRQD_RING_A64(&h->errors), memory_order_relaxed);
		uint64_t applied = atomic_load_explicit(IRQD_RING_A64(&h->applied), memory_order_relaxed);
		uint64_t head = atomic_load_explicit(IRQD_RING_A64(&h->head), memory_order_relaxed);
		if (errors || applied != head)
			die("ring_bench: %llu errors, %llu applied of %llu posted", (unsigned long long)errors,
			    (unsigned long long)applied, (unsigned long long)head);
	}
	irqd_client_ring_close(&c, &ring);
	irqd_destroy_device(&c, handle);
	irqd_client_close(&c);
	return 0;
}
