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
 *
 * Best of 5 equal time slices, pinned to --cpu.  While irqd/core is still
 * the stub it prints "skipped: ..." lines and exits 0.
 *
 * usage: core_cycle [--cpu N] [--seconds S]
 */
#include "bench.h"

#include "irqd/core/xics.h"

#define SLICES 5
#define IRQ 4096
#define NBATCH 1000
#define PRIO 5

static struct irqd_xics *x;

static void check(int rc, const char *what)
{
	if (rc == -IRQD_EOPNOTSUPP) {
		skipped("core_cycle_c", "irqd/core does not implement it yet (EOPNOTSUPP)");
		skipped("core_batch1000_c", "irqd/core does not implement it yet (EOPNOTSUPP)");
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

	irqd_xics_free(x);
	return 0;
}
