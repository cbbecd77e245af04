/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the C core (irqd/core/xics.h) called directly: the shared
 * scenarios (scenarios.c) on backend_core.c, plus what only the core API
 * exposes (raw export/import, resample acks, batch bookkeeping,
 * generation).  Built plain and with ASan+UBSan (LeakSanitizer on).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "irqd/core/xics.h"
#include "xdev.h"

extern const struct xbackend *xb_core;
const struct xbackend *XB;

#define X(d) ((struct irqd_xics *)(void *)(d))

/* I1: out_ee == (xisr != 0 && pending_pri < cppr), for every ICP. */
static int i1_holds(struct irqd_xics *x, uint32_t server)
{
	uint64_t w;
	if (irqd_xics_get_icp(x, server, &w) < 0)
		return 0;
	uint32_t cppr = (uint32_t)(w >> IRQD_KVM_REG_PPC_ICP_CPPR_SHIFT) & IRQD_KVM_REG_PPC_ICP_CPPR_MASK;
	uint32_t xisr = (uint32_t)(w >> IRQD_KVM_REG_PPC_ICP_XISR_SHIFT) & IRQD_KVM_REG_PPC_ICP_XISR_MASK;
	uint32_t ppri = (uint32_t)(w >> IRQD_KVM_REG_PPC_ICP_PPRI_SHIFT) & IRQD_KVM_REG_PPC_ICP_PPRI_MASK;
	return irqd_xics_output_asserted(x, server) == (xisr != 0 && ppri < cppr);
}

TEST(core_output_follows_i1_and_counts_rises)
{
	NEWDEV(d);
	struct irqd_xics *x = X(d);
	uint64_t seq0, n;

	SETUP_S0(d);
	SET_XIVE(d, 16, 0, 5);
	CHECK(i1_holds(x, 0));
	CHECK_EQ(irqd_xics_output_asserted(x, 0), 0);
	seq0 = irqd_xics_output_seq(x);
	LINE(d, 16, SET);
	CHECK(i1_holds(x, 0));
	CHECK_EQ(irqd_xics_output_asserted(x, 0), 1);
	CHECK_EQ(irqd_xics_output_seq(x), seq0 + 1);
	XIRR(d, 0, 0xFF000010);
	CHECK_EQ(irqd_xics_output_asserted(x, 0), 0);
	CHECK(i1_holds(x, 0));
	OK(irqd_xics_output_rises(x, 0, &n));
	CHECK_EQ(n, 1);
	CHECK_EQ(irqd_xics_output_rises(x, 9, &n), -ENOENT);
	CHECK_EQ(irqd_xics_output_asserted(x, 9), -ENOENT);
}

TEST(core_failed_calls_do_not_change_generation)
{
	NEWDEV(d);
	struct irqd_xics *x = X(d);
	uint64_t g, v;
	uint32_t buf[12] = { 0 };
	uint64_t reg[4] = { 0 };

	SETUP_S0(d);
	g = irqd_xics_generation(x);
	CHECK_EQ(irqd_xics_irq_line(x, 15, 1), -EINVAL);
	CHECK_EQ(irqd_xics_irq_line(x, 16, 5), -EINVAL);
	CHECK_EQ(irqd_xics_create_ics(x, 16, 1, 0), -EEXIST);
	CHECK_EQ(irqd_xics_connect_vcpu(x, 0), -EEXIST);
	CHECK_EQ(irqd_xics_connect_vcpu(x, IRQD_MAX_SERVERS), -EINVAL);
	CHECK_EQ(irqd_xics_set_source(x, 16, 0x0000000500000009), -EINVAL);
	CHECK_EQ(irqd_xics_set_icp(x, 0, 0xFF000000FF050000), -EINVAL);
	CHECK_EQ(irqd_xics_set_icp(x, 4, 0xFF000000FFFF0000), -ENOENT);
	CHECK_EQ(irqd_xics_hcall(x, 4, IRQD_H_XIRR, reg), -ENOENT);
	CHECK_EQ(irqd_xics_hcall(x, 0, 0x1234, reg), -EOPNOTSUPP);
	CHECK_EQ(irqd_xics_rtas(x, 9, 1, 1, buf), -EINVAL);
	CHECK_EQ(irqd_xics_rtas(x, IRQD_RTAS_GET_XIVE, 12, 0, buf), -EINVAL);
	CHECK_EQ(irqd_xics_get_source(x, 48, &v), -ENOENT);
	CHECK_EQ(irqd_xics_generation(x), g);
	LINE(d, 16, SET);
	CHECK(irqd_xics_generation(x) > g);
}

TEST(core_irq_batch_counts_failures_and_applies_the_rest)
{
	NEWDEV(d);
	struct irqd_xics *x = X(d);
	/* entries may be only 4-byte aligned: read from an offset of 4 */
	uint32_t raw[1 + 2 * 5];
	struct irqd_irq_batch_entry e[5] = {
		{ 16, 1 }, { 15, 1 }, { 17, 1 }, { 17, 9 }, { 2048, 1 },
	};
	uint32_t nfailed = 99, first = 99;

	SETUP_S0(d);
	memcpy(raw + 1, e, sizeof(e));
	CHECK_EQ(irqd_xics_irq_batch(x, (const struct irqd_irq_batch_entry *)(void *)(raw + 1), 5, &nfailed,
				     &first), -EINVAL);
	CHECK_EQ(nfailed, 3);
	CHECK_EQ(first, 1);
	GET_SRC(d, 16, 0x00000EFF00000000);
	GET_SRC(d, 17, 0x00000EFF00000000);
	nfailed = first = 99;
	OK(irqd_xics_irq_batch(x, e, 1, &nfailed, &first));
	CHECK_EQ(nfailed, 0);
}

TEST(core_x067_resample_ack_drained_after_eoi)
{
	NEWDEV(d);
	struct irqd_xics *x = X(d);
	uint32_t acks[8];
	uint64_t a0;

	SETUP_S0(d);
	SET_XIVE(d, 32, 0, 5);
	OK(irqd_xics_set_resample(x, 32, 1));
	CHECK_EQ(irqd_xics_set_resample(x, 15, 1), -EINVAL);
	a0 = irqd_xics_ack_seq(x);
	LINE(d, 32, 1);
	XIRR(d, 0, 0xFF000020);
	EOI(d, 0, 0xFF000020);
	GET_ICP(d, 0, 0xFF000020FF050000);
	GET_SRC(d, 32, 0x0000010500000000);
	CHECK_EQ(irqd_xics_ack_seq(x), a0 + 1);
	CHECK_EQ(irqd_xics_drain_acks(x, acks, 8), 1);
	CHECK_EQ(acks[0], 32);
	CHECK_EQ(irqd_xics_drain_acks(x, acks, 8), 0);
	XIRR(d, 0, 0xFF000020);
	EOI(d, 0, 0xFF000020);
	GET_ICP(d, 0, 0xFF000000FFFF0000);
	CHECK_EQ(irqd_xics_drain_acks(x, acks, 8), 1);
	RISES(d, 0, 2);
}

/* Export the complete internal state of a, import into fresh b: both
 * export identically and answer the same words. */
TEST(core_export_import_round_trip_keeps_complete_state)
{
	NEWDEV(a);
	NEWDEV(b);
	struct irqd_xics *xa = X(a), *xb = X(b);
	static struct irqd_xics_raw_source sa[4096], sb[4096];
	static struct irqd_xics_raw_icp ia[8], ib[8];
	uint32_t ns, ni, ns2, ni2;

	SETUP_S1(a);
	SET_XIVE(a, 16, 0, 5);
	SET_XIVE(a, 18, 1, 6);
	INT_OFF(a, 18);
	SET_XIVE(a, 19, 0, 7);
	SET_XIVE(a, 32, 1, 4);
	LINE(a, 16, SET);
	LINE(a, 16, SET);
	LINE(a, 18, SET);
	LINE(a, 19, SET);
	LINE(a, 32, 1);
	XIRR(a, 1, 0xFF000020);
	ns = irqd_xics_export_sources(xa, 0, sa, 4096);
	ni = irqd_xics_export_icps(xa, 0, ia, 8);
	CHECK_EQ(ns, 1024);   /* every entry of ICS 0 */
	CHECK_EQ(ni, 2);
	for (uint32_t i = 0; i < ni; i++)
		OK(irqd_xics_import_icp(xb, &ia[i]));
	for (uint32_t i = 0; i < ns; i++)
		OK(irqd_xics_import_source(xb, &sa[i]));
	ns2 = irqd_xics_export_sources(xb, 0, sb, 4096);
	ni2 = irqd_xics_export_icps(xb, 0, ib, 8);
	CHECK_EQ(ns2, ns);
	CHECK_EQ(ni2, ni);
	CHECK(memcmp(sa, sb, ns * sizeof(sa[0])) == 0);
	CHECK(memcmp(ia, ib, ni * sizeof(ia[0])) == 0);
	/* same behaviour afterwards */
	XIRR(a, 0, 0xFF000010);
	XIRR(b, 0, 0xFF000010);
	EOI(a, 0, 0xFF000010);
	EOI(b, 0, 0xFF000010);
	uint64_t wa, wb;
	OK(irqd_xics_get_icp(xa, 0, &wa));
	OK(irqd_xics_get_icp(xb, 0, &wb));
	CHECK_EQ(wa, wb);
	CHECK_EQ(wa, 0xFF000010FF050000);
}

TEST(core_stats_count_triggers_and_deliveries)
{
	NEWDEV(d);
	struct irqd_xics *x = X(d);
	struct irqd_source_stats ss[32];
	struct irqd_server_stats sv[2];

	SETUP_S0(d);
	SET_XIVE(d, 16, 0, 5);
	LINE(d, 16, SET);
	XIRR(d, 0, 0xFF000010);
	EOI(d, 0, 0xFF000010);
	LINE(d, 16, SET);
	CHECK_EQ(irqd_xics_source_stats(x, 16, ss, 32), 32);
	CHECK_EQ(ss[0].irq, 16);
	CHECK_EQ(ss[0].triggers, 2);
	CHECK_EQ(ss[0].deliveries, 2);
	CHECK_EQ(ss[1].triggers, 0);
	CHECK_EQ(irqd_xics_server_stats(x, 0, sv, 2), 1);
	CHECK_EQ(sv[0].server, 0);
	CHECK_EQ(sv[0].deliveries, 2);
}

int main(int argc, char **argv)
{
	XB = xb_core;
	rt_after_each = xdev_cleanup;
	return rt_main(argc, argv);
}
