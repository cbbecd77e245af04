/* SPDX-License-Identifier: MIT */
/*
 * The C core alone, in-process, linked directly (no cffi, no socket):
 *
 *   core_cycle_c        ns per trigger -> H_XIRR -> H_EOI cycle: one device,
 *                       one ICP (server 0) with CPPR 0xFF, one MSI source
 *                       routed to it at priority 5.  Every cycle is checked:
 *                       H_XIRR must return that source, H_EOI H_SUCCESS.
 *   core_batch1000_c    ns per entry of irqd_xics_irq_batch() with 1000
 *                       edge entries over 1000 routed MSI sources (what the
 *                       daemon runs for one IRQ_LINE_BATCH record)
 *   wire_irq_line_ack_c ns per record through the daemon's C dispatcher
 *                       (irqd_wire_run, irqd/core/wire.c): one IRQ_LINE with
 *                       NLM_F_ACK in, its ERROR(0) written out; the part of an
 *                       irqd round trip that is neither socket nor Python
 *   wire_batch1000_c    ns per entry of an IRQ_LINE_BATCH(1000) record
 *                       through irqd_wire_run
 *   core_bytes_per_source  heap bytes the core allocates (glibc mallinfo2:
 *                       in use + mmapped) for CREATE_ICS of all 1,048,560
 *                       sources on a fresh device, per source: the exact
 *                       figure under the daemon's RSS one (which depends on
 *                       how much freed heap the daemon had to reuse)
 *
 * Best of 5 equal time slices, pinned to --cpu.  While irqd/core is still
 * the stub it prints "skipped: ..." lines and exits 0.
 *
 * usage: core_cycle [--cpu N] [--seconds S]
 */
#include "bench.h"

#include <malloc.h>

#include "irqd/core/xics.h"
#if __has_include("irqd/core/wire.h")
#include "irqd/core/wire.h"
#define HAVE_WIRE 1
#endif

#define SLICES 5
#define IRQ 4096
#define NBATCH 1000
#define PRIO 5

static struct irqd_xics *x;

typedef void (*bench_fn)(void);

/* Best of 5 slices of `seconds`, ns per call of fn divided by `per`. */
static double best_ns(bench_fn fn, double seconds, double per)
{
	double best = 0;

	for (int s = 0; s < SLICES; s++) {
		uint64_t t0 = now_ns(), t1, n = 0, limit = (uint64_t)(seconds / SLICES * 1e9);

		do {
			for (int k = 0; k < 100; k++)
				fn();
			n += 100;
			t1 = now_ns();
		} while (t1 - t0 < limit);
		double ns = (double)(t1 - t0) / (double)n / per;
		if (s == 0 || ns < best)
			best = ns;
	}
	return best;
}

static void check(int rc, const char *what)
{
	if (rc == -IRQD_EOPNOTSUPP) {
		skipped("core_cycle_c", "irqd/core does not implement it yet (EOPNOTSUPP)");
		skipped("core_batch1000_c", "irqd/core does not implement it yet (EOPNOTSUPP)");
		skipped("wire_irq_line_ack_c", "irqd/core does not implement it yet (EOPNOTSUPP)");
		skipped("wire_batch1000_c", "irqd/core does not implement it yet (EOPNOTSUPP)");
		skipped("core_bytes_per_source", "irqd/core does not implement it yet (EOPNOTSUPP)");
		exit(0);
	}
	if (rc != 0)
		die("core_cycle: %s failed: %d", what, rc);
}

static void set_xive(uint32_t irq)
{
	uint32_t buf[12] = { irq, 0, PRIO };

	check(irqd_xics_rtas(x, IRQD_RTAS_SET_XIVE, 3, 1, buf), "ibm,set-xive");
	if ((int32_t)buf[3] != IRQD_RTAS_SUCCESS)
		die("core_cycle: ibm,set-xive(%u) status %d", irq, (int32_t)buf[3]);
}

static void cycle(void)
{
	uint64_t reg[4] = { 0 };

	if (irqd_xics_irq_line(x, IRQ, IRQD_KVM_INTERRUPT_SET) != 0)
		die("core_cycle: irq_line failed");
	if (irqd_xics_hcall(x, 0, IRQD_H_XIRR, reg) != 0 || reg[0] != IRQD_H_SUCCESS ||
	    (reg[1] & 0xFFFFFF) != IRQ)
		die("core_cycle: H_XIRR returned status %lld xirr 0x%llx, expected irq %d",
		    (long long)reg[0], (unsigned long long)reg[1], IRQ);
	reg[0] = reg[1];
	reg[1] = reg[2] = reg[3] = 0;
	if (irqd_xics_hcall(x, 0, IRQD_H_EOI, reg) != 0 || reg[0] != IRQD_H_SUCCESS)
		die("core_cycle: H_EOI returned status %lld", (long long)reg[0]);
}

#ifdef HAVE_WIRE
static struct irqd_registry *reg;
static struct irqd_wire_conn wconn;
static struct irqd_wire_out wout;
static uint8_t outbuf[4 * IRQD_MAX_RECORD];
static uint32_t outends[1024];
static uint8_t rec_line[32], rec_batch[16 + 8 + 8 * NBATCH];

static void wire_one(const uint8_t *rec, uint32_t len, uint32_t want_errors)
{
	uint32_t pos = 0;
	int rc = irqd_wire_run(reg, &wconn, rec, len, 0, &pos, &wout);

	if (rc != IRQD_WIRE_DONE || wout.n_errors != want_errors)
		die("core_cycle: irqd_wire_run returned %d, %u errors (%d %s)", rc, wout.n_errors,
		    wout.last_error, wout.last_msg);
	irqd_wire_out_flush(&wout);
	irqd_wire_out_compact(&wout);
}

static void wire_line(void)
{
	wire_one(rec_line, sizeof(rec_line), 0);
}

static void wire_batch(void)
{
	wire_one(rec_batch, sizeof(rec_batch), 0);
}

static void wire_figures(double seconds)
{
	struct irqd_msghdr h = {
		.len = sizeof(rec_line), .type = IRQD_MSG_IRQ_LINE,
		.flags = IRQD_NLM_F_REQUEST | IRQD_NLM_F_ACK, .seq = 1,
	};
	struct irqd_irq_level l = { .handle = 1, .irq = IRQ + 1, .level = IRQD_KVM_INTERRUPT_SET };
	struct irqd_irq_batch b = { .handle = 1, .count = NBATCH };

	reg = irqd_registry_new();
	if (!reg || irqd_registry_add(reg, 1, x, 0) != 0)
		die("core_cycle: registry set-up failed");
	irqd_wire_out_init(&wout, outbuf, sizeof(outbuf), outends, 1024);
	memcpy(rec_line, &h, sizeof(h));
	memcpy(rec_line + 16, &l, sizeof(l));
	wire_line();
	if (wout.len != 0)
		die("core_cycle: wire out buffer not drained");
	/* one complete reply: the 36-byte ERROR(0) (checked once, then timed) */
	{
		uint32_t pos = 0;
		irqd_wire_run(reg, &wconn, rec_line, sizeof(rec_line), 0, &pos, &wout);
		irqd_wire_out_flush(&wout);
		if (wout.n_ends != 1 || wout.ends[0] != 36)
			die("core_cycle: IRQ_LINE+ACK produced %u records, first %u bytes",
			    wout.n_ends, wout.n_ends ? wout.ends[0] : 0);
		irqd_wire_out_compact(&wout);
	}
	figure("wire_irq_line_ack_c", best_ns(wire_line, seconds / 4, 1), "ns/record");

	h = (struct irqd_msghdr){ .len = sizeof(rec_batch), .type = IRQD_MSG_IRQ_LINE_BATCH,
				  .flags = IRQD_NLM_F_REQUEST, .seq = 2 };
	memcpy(rec_batch, &h, sizeof(h));
	memcpy(rec_batch + 16, &b, sizeof(b));
	for (uint32_t i = 0; i < NBATCH; i++) {
		struct irqd_irq_batch_entry e = { .irq = IRQ + i, .level = IRQD_KVM_INTERRUPT_SET };
		memcpy(rec_batch + 24 + 8 * i, &e, sizeof(e));
	}
	figure("wire_batch1000_c", best_ns(wire_batch, seconds / 4, NBATCH), "ns/entry");
	irqd_registry_free(reg);
	irqd_xics_free(x);
}
#endif

static size_t heap_bytes(void)
{
	struct mallinfo2 mi = mallinfo2();

	return mi.uordblks + mi.hblkhd;
}

static void memory_figure(void)
{
	struct irqd_xics *m = irqd_xics_new();
	size_t before;
	uint32_t n = IRQD_KVMPPC_XICS_NR_IRQS - IRQD_KVMPPC_XICS_FIRST_IRQ;

	if (!m)
		die("core_cycle: irqd_xics_new failed");
	before = heap_bytes();
	check(irqd_xics_create_ics(m, IRQD_KVMPPC_XICS_FIRST_IRQ, n, 0), "create_ics (all sources)");
	if (irqd_xics_nr_sources(m) != n)
		die("core_cycle: %u sources configured, expected %u", irqd_xics_nr_sources(m), n);
	figure("core_bytes_per_source", (double)(heap_bytes() - before) / n, "B/source");
	irqd_xics_free(m);
}

int main(int argc, char **argv)
{
	int cpu = 0;
	double seconds = 1.0, best;
	static struct irqd_irq_batch_entry ent[NBATCH];

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--cpu") && i + 1 < argc)
			cpu = (int)arg_double(argv[++i], "cpu");
		else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
			seconds = arg_double(argv[++i], "seconds");
		else
			die("usage: core_cycle [--cpu N] [--seconds S]");
	}
	pin_cpu(cpu);

	memory_figure();
	x = irqd_xics_new();
	if (!x)
		die("core_cycle: irqd_xics_new failed");
	check(irqd_xics_create_ics(x, IRQ, NBATCH, 0), "create_ics");
	check(irqd_xics_connect_vcpu(x, 0), "connect_vcpu");
	uint64_t reg[4] = { 0xFF };
	check(irqd_xics_hcall(x, 0, IRQD_H_CPPR, reg), "H_CPPR");
	for (uint32_t i = 0; i < NBATCH; i++)
		set_xive(IRQ + i);

	for (int i = 0; i < 10000; i++)
		cycle();
	best = 0;
	for (int s = 0; s < SLICES; s++) {
		uint64_t t0 = now_ns(), t1, n = 0, limit = (uint64_t)(seconds / 2 / SLICES * 1e9);

		do {
			for (int k = 0; k < 1000; k++)
				cycle();
			n += 1000;
			t1 = now_ns();
		} while (t1 - t0 < limit);
		double ns = (double)(t1 - t0) / (double)n;
		if (s == 0 || ns < best)
			best = ns;
	}
	figure("core_cycle_c", best, "ns");

	for (uint32_t i = 0; i < NBATCH; i++)
		ent[i] = (struct irqd_irq_batch_entry){ .irq = IRQ + i, .level = IRQD_KVM_INTERRUPT_SET };
	best = 0;
	for (int s = 0; s < SLICES; s++) {
		uint64_t t0 = now_ns(), t1, n = 0, limit = (uint64_t)(seconds / 2 / SLICES * 1e9);

		do {
			uint32_t nfailed = 0, first = 0;

			if (irqd_xics_irq_batch(x, ent, NBATCH, &nfailed, &first) != 0 || nfailed)
				die("core_cycle: irq_batch: %u entries failed, first %u", nfailed, first);
			n += NBATCH;
			t1 = now_ns();
		} while (t1 - t0 < limit);
		double ns = (double)(t1 - t0) / (double)n;
		if (s == 0 || ns < best)
			best = ns;
	}
	figure("core_batch1000_c", best, "ns/entry");

#ifdef HAVE_WIRE
	wire_figures(seconds);
#else
	skipped("wire_irq_line_ack_c", "irqd/core/wire.h absent");
	skipped("wire_batch1000_c", "irqd/core/wire.h absent");
#endif
	return 0;
}
