/* SPDX-License-Identifier: MIT */
/*
 * Scenarios of xics-semantics.md S8, replayed in C against `XB` (the core
 * directly in test_core, the daemon in the harness).  Each test is named
 * after its scenario id; steps are transcribed in order with their expected
 * results, then the Expect: lines.
 */
#include <errno.h>
#include "xdev.h"

/* ---- S8.2 configuration and numbering ---- */

TEST(x001_fresh_icp_and_connect_vcpu_errors)
{
	NEWDEV(d);
	CONNECT(d, 0);
	GET_ICP(d, 0, 0x00000000FFFF0000);
	ERR(XB->connect(d, 0), EEXIST);
	ERR(XB->connect(d, XB->max_servers), EINVAL);
	CONNECT(d, 7);
	GET_ICP(d, 7, 0x00000000FFFF0000);
	RISES(d, 0, 0);
}

TEST(x002_create_ics_defaults_masked_prio_ff_server_0)
{
	NEWDEV(d);
	CONNECT(d, 0);
	ICS(d, 16, 4, EDGE);
	ICS(d, 32, 2, LEVEL);
	GET_SRC(d, 16, 0x000002FF00000000);
	GET_SRC(d, 19, 0x000002FF00000000);
	uint64_t v;
	ERR(XB->get_src(d, 20, &v), ENOENT);
	GET_SRC(d, 33, 0x000003FF00000000);
	GET_XIVE(d, 16, 0, 0xFF);
	LINE(d, 16, SET);
	GET_SRC(d, 16, 0x00000EFF00000000);
	GET_ICP(d, 0, 0x00000000FFFF0000);
}

TEST(x003_create_ics_errors_change_nothing)
{
	NEWDEV(d);
	uint64_t v;
	CONNECT(d, 0);
	ICS(d, 100, 10, EDGE);
	ERR(XB->create_ics(d, 0, 4, EDGE), EINVAL);
	ERR(XB->create_ics(d, 15, 2, EDGE), EINVAL);
	ERR(XB->create_ics(d, 16, 0, EDGE), EINVAL);
	ERR(XB->create_ics(d, 1048575, 2, EDGE), EINVAL);
	ERR(XB->create_ics(d, 1048576, 1, EDGE), EINVAL);
	ERR(XB->create_ics(d, 0xFFFFFFF0, 0x20, EDGE), EINVAL);
	ERR(XB->create_ics(d, 90, 11, LEVEL), EEXIST);
	ERR(XB->create_ics(d, 109, 1, LEVEL), EEXIST);
	ERR(XB->get_src(d, 90, &v), ENOENT);
	ICS(d, 110, 1, LEVEL);
	GET_SRC(d, 109, 0x000002FF00000000);
	GET_SRC(d, 110, 0x000003FF00000000);
	ERR(XB->get_src(d, 16, &v), ENOENT);
}

TEST(x004_ics_boundary_1023_1024)
{
	NEWDEV(d);
	uint64_t v;
	CONNECT(d, 0);
	CPPR(d, 0, 0xFF);
	ICS(d, 1020, 8, EDGE);
	GET_SRC(d, 1023, 0x000002FF00000000);
	GET_SRC(d, 1024, 0x000002FF00000000);
	ERR(XB->get_src(d, 1028, &v), ENOENT);
	ERR(XB->get_src(d, 15, &v), ENOENT);
	ERR(XB->get_src(d, 2048, &v), ENOENT);
	ERR(XB->line(d, 1028, SET), EINVAL);
	ERR(XB->line(d, 15, SET), EINVAL);
	SET_XIVE(d, 1023, 0, 5);
	SET_XIVE(d, 1024, 0, 4);
	LINE(d, 1023, SET);
	LINE(d, 1024, SET);
	XIRR(d, 0, 0xFF000400);
	EOI(d, 0, 0xFF000400);
	XIRR(d, 0, 0xFF0003FF);
	GET_ICP(d, 0, 0x05000000FFFF0000);
	GET_SRC(d, 1024, 0x0000000400000000);
	GET_SRC(d, 1023, 0x0000080500000000);
}

TEST(x005_has_device_attr_answers_by_range)
{
	NEWDEV(d);
	uint64_t v;
	CONNECT(d, 0);
	ERR(XB->has_src(d, 0), ENXIO);
	ERR(XB->has_src(d, 15), ENXIO);
	OK(XB->has_src(d, 16));
	OK(XB->has_src(d, 1048575));
	ERR(XB->has_src(d, 1048576), ENXIO);
	ERR(XB->has_src(d, 0x100000010), ENXIO);
	ERR(XB->get_src(d, 16, &v), ENOENT);
	GET_ICP(d, 0, 0x00000000FFFF0000);
}

TEST(x007_irq_line_errors)
{
	NEWDEV(d);
	uint64_t v;
	SETUP_S0(d);
	ERR(XB->line(d, 48, SET), EINVAL);
	ERR(XB->line(d, 0, SET), EINVAL);
	ERR(XB->line(d, 2048, SET), EINVAL);
	ERR(XB->line(d, 1048576, SET), EINVAL);
	ERR(XB->line(d, 16, 2), EINVAL);
	ERR(XB->line(d, 16, 0xFFFFFFFC), EINVAL);
	GET_SRC(d, 16, 0x000002FF00000000);
	ERR(XB->get_src(d, 48, &v), ENOENT);
}

/* ---- S8.3 MSI ---- */

TEST(x008_msi_presented_accepted_eoi)
{
	NEWDEV(d);
	SETUP_S0(d);
	SET_XIVE(d, 16, 0, 5);
	LINE(d, 16, SET);
	GET_ICP(d, 0, 0xFF000010FF050000);
	GET_SRC(d, 16, 0x0000080500000000);
	XIRR(d, 0, 0xFF000010);
	GET_ICP(d, 0, 0x05000000FFFF0000);
	EOI(d, 0, 0xFF000010);
	GET_ICP(d, 0, 0xFF000000FFFF0000);
	GET_SRC(d, 16, 0x0000000500000000);
	RISES(d, 0, 1);
}

TEST(x009_trigger_in_service_is_queued_and_presented_at_eoi)
{
	NEWDEV(d);
	SETUP_S0(d);
	SET_XIVE(d, 16, 0, 5);
	LINE(d, 16, SET);
	XIRR(d, 0, 0xFF000010);
	LINE(d, 16, SET);
	GET_SRC(d, 16, 0x0000180500000000);
	GET_ICP(d, 0, 0x05000000FFFF0000);
	EOI(d, 0, 0xFF000010);
	GET_SRC(d, 16, 0x0000080500000000);
	GET_ICP(d, 0, 0xFF000010FF050000);
	XIRR(d, 0, 0xFF000010);
	EOI(d, 0, 0xFF000010);
	GET_SRC(d, 16, 0x0000000500000000);
	RISES(d, 0, 2);
}

TEST(x010_three_triggers_before_eoi_give_two_presentations)
{
	NEWDEV(d);
	SETUP_S0(d);
	SET_XIVE(d, 16, 0, 5);
	LINE(d, 16, SET);
	LINE(d, 16, SET);
	LINE(d, 16, SET);
	GET_SRC(d, 16, 0x0000180500000000);
	XIRR(d, 0, 0xFF000010);
	EOI(d, 0, 0xFF000010);
	XIRR(d, 0, 0xFF000010);
	EOI(d, 0, 0xFF000010);
	XIRR(d, 0, 0xFF000000);
	GET_SRC(d, 16, 0x0000000500000000);
	RISES(d, 0, 2);
}

TEST(x012_msi_before_cppr_open_waits_in_resend)
{
	NEWDEV(d);
	CONNECT(d, 0);
	ICS(d, 16, 16, EDGE);
	SET_XIVE(d, 16, 0, 5);
	LINE(d, 16, SET);
	GET_SRC(d, 16, 0x00000C0500000000);
	GET_ICP(d, 0, 0x00000000FFFF0000);
	CPPR(d, 0, 0xFF);
	GET_SRC(d, 16, 0x0000080500000000);
	GET_ICP(d, 0, 0xFF000010FF050000);
	RISES(d, 0, 1);
}

/* ---- S8.4 LSI ---- */

TEST(x013_lsi_reassert_ignored_represented_at_eoi)
{
	NEWDEV(d);
	SETUP_S0(d);
	SET_XIVE(d, 32, 0, 5);
	LINE(d, 32, 1);
	GET_SRC(d, 32, 0x00000D0500000000);
	LINE(d, 32, SET_LEVEL);
	GET_ICP(d, 0, 0xFF000020FF050000);
	XIRR(d, 0, 0xFF000020);
	EOI(d, 0, 0xFF000020);
	GET_ICP(d, 0, 0xFF000020FF050000);
	LINE(d, 32, 0);
	GET_SRC(d, 32, 0x0000010500000000);
	GET_ICP(d, 0, 0xFF000020FF050000);
	XIRR(d, 0, 0xFF000020);
	EOI(d, 0, 0xFF000020);
	GET_ICP(d, 0, 0xFF000000FFFF0000);
	RISES(d, 0, 2);
}

TEST(x014_lsi_deasserted_before_eoi_not_represented)
{
	NEWDEV(d);
	SETUP_S0(d);
	SET_XIVE(d, 32, 0, 5);
	LINE(d, 32, SET_LEVEL);
	XIRR(d, 0, 0xFF000020);
	LINE(d, 32, UNSET);
	EOI(d, 0, 0xFF000020);
	GET_ICP(d, 0, 0xFF000000FFFF0000);
	GET_SRC(d, 32, 0x0000010500000000);
	RISES(d, 0, 1);
}

TEST(x015_set_on_lsi_asserts_and_stays)
{
	NEWDEV(d);
	SETUP_S0(d);
	SET_XIVE(d, 32, 0, 5);
	LINE(d, 32, SET);
	GET_SRC(d, 32, 0x00000D0500000000);
	XIRR(d, 0, 0xFF000020);
	EOI(d, 0, 0xFF000020);
	GET_ICP(d, 0, 0xFF000020FF050000);
	LINE(d, 32, SET);
	GET_SRC(d, 32, 0x00000D0500000000);
	RISES(d, 0, 2);
}

/* ---- S8.5 masking (RTAS) ---- */

TEST(x016_msi_fired_while_masked_is_presented_on_int_on)
{
	NEWDEV(d);
	SETUP_S0(d);
	SET_XIVE(d, 16, 0, 5);
	INT_OFF(d, 16);
	LINE(d, 16, SET);
	GET_SRC(d, 16, 0x00000E0500000000);
	GET_ICP(d, 0, 0xFF000000FFFF0000);
	LINE(d, 16, SET);
	GET_SRC(d, 16, 0x00001E0500000000);
	INT_ON(d, 16);
	GET_SRC(d, 16, 0x0000180500000000);
	GET_ICP(d, 0, 0xFF000010FF050000);
	XIRR(d, 0, 0xFF000010);
	EOI(d, 0, 0xFF000010);
	GET_ICP(d, 0, 0xFF000010FF050000);
	GET_SRC(d, 16, 0x0000080500000000);
	RISES(d, 0, 2);
}

TEST(x017_int_off_int_on_get_xive_priorities)
{
	NEWDEV(d);
	SETUP_S0(d);
	SET_XIVE(d, 16, 0, 5);
	GET_XIVE(d, 16, 0, 5);
	INT_OFF(d, 16);
	GET_XIVE(d, 16, 0, 0xFF);
	GET_SRC(d, 16, 0x0000020500000000);
	INT_ON(d, 16);
	GET_XIVE(d, 16, 0, 5);
	GET_SRC(d, 16, 0x0000000500000000);
	SET_XIVE(d, 16, 0, 0xFF);
	GET_SRC(d, 16, 0x000002FF00000000);
	INT_ON(d, 16);
	GET_XIVE(d, 16, 0, 0xFF);
	GET_ICP(d, 0, 0xFF000000FFFF0000);
}

/* ---- S8.7 IPIs ---- */

TEST(x029_local_ipi_stays_requested_until_mfrr_reset)
{
	NEWDEV(d);
	SETUP_S0(d);
	IPI(d, 0, 0, 4, IRQD_H_SUCCESS);
	GET_ICP(d, 0, 0xFF00000204040000);
	XIRR(d, 0, 0xFF000002);
	GET_ICP(d, 0, 0x0400000004FF0000);
	EOI(d, 0, 0xFF000002);
	GET_ICP(d, 0, 0xFF00000204040000);
	XIRR(d, 0, 0xFF000002);
	IPI(d, 0, 0, 0xFF, IRQD_H_SUCCESS);
	EOI(d, 0, 0xFF000002);
	GET_ICP(d, 0, 0xFF000000FFFF0000);
	RISES(d, 0, 2);
}

TEST(x030_remote_ipi_and_unknown_server)
{
	NEWDEV(d);
	SETUP_S1(d);
	IPI(d, 0, 1, 5, IRQD_H_SUCCESS);
	GET_ICP(d, 1, 0xFF00000205050000);
	GET_ICP(d, 0, 0xFF000000FFFF0000);
	IPI(d, 0, 7, 5, IRQD_H_PARAMETER);
	HSTATUS(d, 0, IRQD_H_IPOLL, 7, 0, IRQD_H_PARAMETER);
	XIRR(d, 1, 0xFF000002);
	IPI(d, 0, 1, 0xFF, IRQD_H_SUCCESS);
	EOI(d, 1, 0xFF000002);
	GET_ICP(d, 1, 0xFF000000FFFF0000);
	RISES(d, 1, 1);
	RISES(d, 0, 0);
}

TEST(x042_unknown_server_and_unknown_hcall)
{
	NEWDEV(d);
	uint64_t r[4];
	CONNECT(d, 0);
	ERR(x_hcall2(d, 5, IRQD_H_XIRR, 0, 0, r), ENOENT);
	ERR(x_hcall2(d, 5, IRQD_H_CPPR, 0xFF, 0, r), ENOENT);
	ERR(x_hcall2(d, 5, IRQD_H_EOI, 0xFF000010, 0, r), ENOENT);
	ERR(x_hcall2(d, 5, IRQD_H_IPI, 0, 4, r), ENOENT);
	ERR(x_hcall2(d, 5, IRQD_H_IPOLL, 0, 0, r), ENOENT);
	ERR(x_hcall2(d, 5, IRQD_H_XIRR_X, 0, 0, r), ENOENT);
	ERR(x_hcall2(d, 0, 0x04, 0, 0, r), EOPNOTSUPP);
	ERR(x_hcall2(d, 5, 0x78, 0, 0, r), EOPNOTSUPP);
	GET_ICP(d, 0, 0x00000000FFFF0000);
}

/* ---- S8.9 source state words ---- */

TEST(x043_set_device_attr_validation_failed_set_creates_no_ics)
{
	NEWDEV(d);
	uint64_t v;
	CONNECT(d, 0);
	ERR(XB->set_src(d, 15, 0x0000000500000000), ENOENT);
	ERR(XB->set_src(d, 0, 0x0000000500000000), ENOENT);
	ERR(XB->set_src(d, 1048576, 0x0000000500000000), ENOENT);
	ERR(XB->set_src(d, 16, 0x0000000500000007), EINVAL);
	ERR(XB->set_src(d, 16, 0x0000020500000007), EINVAL);
	ERR(XB->get_src(d, 16, &v), ENOENT);
	HSTATUS(d, 0, IRQD_H_EOI, 0x00000010, 0, IRQD_H_PARAMETER);
	SET_SRC(d, 16, 0x000000FF00000007);
	GET_SRC(d, 16, 0x000002FF00000007);
	EOI(d, 0, 0x00000010);
	GET_ICP(d, 0, 0x00000000FFFF0000);
}

TEST(x045_set_with_pending_delivers_now_or_resend)
{
	NEWDEV(d);
	SETUP_S0(d);
	CONNECT(d, 2);
	SET_SRC(d, 16, 0x0000040500000000);
	GET_SRC(d, 16, 0x0000080500000000);
	SET_SRC(d, 17, 0x0000040500000002);
	GET_SRC(d, 17, 0x00000C0500000002);
	GET_ICP(d, 0, 0xFF000010FF050000);
	GET_ICP(d, 2, 0x00000000FFFF0000);
	RISES(d, 0, 1);
}

/* ---- S8.10 RTAS ---- */

TEST(x052_rtas_needs_ics_block_not_configured_source)
{
	NEWDEV(d);
	uint64_t v;
	SETUP_S0(d);
	SET_XIVE(d, 48, 0, 5);
	GET_XIVE(d, 48, 0, 5);
	ERR(XB->get_src(d, 48, &v), ENOENT);
	ERR(XB->line(d, 48, SET), EINVAL);
	INT_OFF(d, 48);
	GET_XIVE(d, 48, 0, 0xFF);
	INT_ON(d, 48);
	GET_XIVE(d, 48, 0, 5);
	SET_XIVE_ST(d, 2048, 0, 5, IRQD_RTAS_PARAM_ERROR);
	RTAS_ST(d, IRQD_RTAS_GET_XIVE, 1, 3, 2048, 0, 0, IRQD_RTAS_PARAM_ERROR);
	RTAS_ST(d, IRQD_RTAS_INT_OFF, 1, 1, 2048, 0, 0, IRQD_RTAS_PARAM_ERROR);
	RTAS_ST(d, IRQD_RTAS_INT_ON, 1, 1, 2048, 0, 0, IRQD_RTAS_PARAM_ERROR);
	SET_XIVE_ST(d, 16, 9, 5, IRQD_RTAS_PARAM_ERROR);
	GET_XIVE(d, 16, 0, 0xFF);
	GET_SRC(d, 16, 0x000002FF00000000);
}

TEST(x053_rtas_argument_counts_and_tokens)
{
	NEWDEV(d);
	uint32_t b[12];
	SETUP_S0(d);
	RTAS_ST(d, 1, 2, 1, 16, 0, 0, IRQD_RTAS_PARAM_ERROR);
	RTAS_ST(d, 1, 3, 2, 16, 0, 5, IRQD_RTAS_PARAM_ERROR);
	RTAS_ST(d, 2, 1, 1, 16, 0, 0, IRQD_RTAS_PARAM_ERROR);
	RTAS_ST(d, 3, 2, 1, 16, 0, 0, IRQD_RTAS_PARAM_ERROR);
	RTAS_ST(d, 4, 1, 3, 16, 0, 0, IRQD_RTAS_PARAM_ERROR);
	ERR(x_rtas4(d, 5, 1, 1, 16, 0, 0, b), EINVAL);
	ERR(x_rtas4(d, 0, 1, 1, 16, 0, 0, b), EINVAL);
	ERR(x_rtas4(d, 1, 3, 10, 16, 0, 5, b), EINVAL);
	GET_SRC(d, 16, 0x000002FF00000000);
}

/* ---- S8.11 ICP state word ---- */

TEST(x057_set_one_reg_refuses_inconsistent_words)
{
	NEWDEV(d);
	SETUP_S0(d);
	ERR(XB->set_icp(d, 0, 0xFF000000FF050000), EINVAL);
	ERR(XB->set_icp(d, 0, 0xFF00000205040000), EINVAL);
	ERR(XB->set_icp(d, 0, 0x0500000205050000), EINVAL);
	ERR(XB->set_icp(d, 0, 0xFF00001005050000), EINVAL);
	ERR(XB->set_icp(d, 0, 0x05000010FF050000), EINVAL);
	ERR(XB->set_icp(d, 0, 0xFF000800FF050000), EINVAL);
	ERR(XB->set_icp(d, 0, 0xFF400000FF050000), EINVAL);
	ERR(XB->set_icp(d, 0, 0xFF000002FF040000), EINVAL);
	GET_ICP(d, 0, 0xFF000000FFFF0000);
}

TEST(x058_set_one_reg_accepts_consistent_words_output_follows)
{
	NEWDEV(d);
	SETUP_S0(d);
	SET_ICP(d, 0, 0xFF000010FF05FFFF);
	GET_ICP(d, 0, 0xFF000010FF050000);
	SET_ICP(d, 0, 0x0600000204040000);
	GET_ICP(d, 0, 0x0600000204040000);
	SET_ICP(d, 0, 0x00000000FFFF0000);
	SET_ICP(d, 0, 0xFF000001FF050000);
	XIRR(d, 0, 0xFF000001);
	GET_ICP(d, 0, 0x05000000FFFF0000);
	RISES(d, 0, 2);
}

/* ---- S8.12 several servers ---- */

TEST(x063_two_servers_are_independent)
{
	NEWDEV(d);
	SETUP_S1(d);
	SET_XIVE(d, 16, 0, 5);
	SET_XIVE(d, 17, 1, 5);
	LINE(d, 16, SET);
	LINE(d, 17, SET);
	GET_ICP(d, 0, 0xFF000010FF050000);
	GET_ICP(d, 1, 0xFF000011FF050000);
	XIRR(d, 1, 0xFF000011);
	EOI(d, 1, 0xFF000011);
	XIRR(d, 0, 0xFF000010);
	EOI(d, 0, 0xFF000010);
	GET_ICP(d, 0, 0xFF000000FFFF0000);
	GET_ICP(d, 1, 0xFF000000FFFF0000);
	RISES(d, 0, 1);
	RISES(d, 1, 1);
}

/* ---- S8.13 migration ---- */

TEST(x065_save_restore_identical_words_delivery_continues)
{
	NEWDEV(a);
	NEWDEV(b);
	struct xsnap sa = { 0 }, sb = { 0 };
	int r, same;

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
	GET_SRC(a, 16, 0x0000180500000000);
	GET_SRC(a, 18, 0x00000E0600000001);
	GET_SRC(a, 19, 0x00000C0700000000);
	GET_SRC(a, 32, 0x00000D0400000001);
	GET_ICP(a, 0, 0xFF000010FF050000);
	GET_ICP(a, 1, 0x04000000FFFF0000);
	OK(xdev_migrate(a, b));
	OK(XB->snapshot(a, &sa));
	r = XB->snapshot(b, &sb);
	same = r == 0 && xsnap_same(&sa, &sb);
	CHECK_EQ(sa.nsrc, 32);   /* 16-31 and 32-47 configured */
	CHECK_EQ(sa.nicp, 2);
	xsnap_free(&sa);
	xsnap_free(&sb);
	OK(r);
	CHECK_MSG(same, "snapshots of A and B differ after migrate");
	XIRR(b, 0, 0xFF000010);
	EOI(b, 0, 0xFF000010);
	GET_ICP(b, 0, 0xFF000010FF050000);
	GET_SRC(b, 19, 0x00000C0700000000);
	GET_SRC(b, 16, 0x0000080500000000);
	GET_ICP(b, 1, 0x04000000FFFF0000);
	GET_SRC(b, 18, 0x00000E0600000001);
}
