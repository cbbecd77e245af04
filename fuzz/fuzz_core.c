/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the C core's operations (irqd/core/xics.h), driven by
 * fuzz bytes as a program on one device.  Each operation is one opcode byte
 * followed by its arguments (missing bytes read as 0).  Interrupt numbers
 * and servers come from a selector byte so most land where the state is
 * (sources 16..79, servers 0..3) and some anywhere.
 *
 * Checked after every operation:
 *  - I1 (xics-semantics S1.5) on servers 0..7: out_ee == (xisr && ppri < cppr);
 *  - I2 for words the core produces itself: xisr == 0 => ppri == 0xFF;
 *  - a failing call (< 0) changes nothing: same generation, same GET words
 *    of every configured source and every ICP;
 *  - results are 0 or a negative errno the API lists.
 * An EXPORT operation copies the complete internal state into a fresh
 * device (import) and checks that it exports identically.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "irqd/abi.h"
#include "irqd/core/xics.h"

#define FUZZ_NAME "fuzz_core"
#include "fuzz/fuzz_input.h"

/* irq selector: mostly the configured area, sometimes edges and anything */
static uint64_t take_irq(struct in *in)
{
	uint8_t sel = (uint8_t)take(in, 1);
	switch (sel >> 5) {
	case 0: case 1: case 2: case 3:
		return 16 + (sel & 0x3F);                     /* 16..79 */
	case 4:
		return (uint64_t)(sel & 0x1F) * 1024 + (uint64_t)take(in, 2) % 1024;   /* other ICS blocks */
	case 5: {
		static const uint64_t edges[] = { 0, 1, 2, 15, 16, 1023, 1024, 1048575, 1048576,
						  0xFFFFFFFF, 0x100000010, 0xFFFFFFFF00000020 };
		return edges[(sel & 0x1F) % (sizeof(edges) / sizeof(edges[0]))];
	}
	default:
		return take(in, 4);
	}
}

static uint32_t take_server(struct in *in)
{
	uint8_t sel = (uint8_t)take(in, 1);
	if (sel < 0xF0)
		return sel & 3;
	if (sel < 0xFC)
		return sel & 7;
	return (uint32_t)take(in, 4);
}

static uint32_t take_level(struct in *in)
{
	static const uint32_t levels[] = { 0, 1, IRQD_KVM_INTERRUPT_SET, IRQD_KVM_INTERRUPT_UNSET,
					   IRQD_KVM_INTERRUPT_SET_LEVEL, 2, 0xFFFFFFFC };
	uint8_t sel = (uint8_t)take(in, 1);
	if (sel == 0xFF)
		return (uint32_t)take(in, 4);
	return levels[sel % (sizeof(levels) / sizeof(levels[0]))];
}

static uint64_t take_hcall(struct in *in)
{
	static const uint64_t nrs[] = { IRQD_H_XIRR, IRQD_H_XIRR_X, IRQD_H_EOI, IRQD_H_CPPR, IRQD_H_IPI,
					IRQD_H_IPOLL, IRQD_H_EOI, IRQD_H_XIRR, 0x04, 0x78 };
	uint8_t sel = (uint8_t)take(in, 1);
	return sel == 0xFF ? take(in, 8) : nrs[sel % (sizeof(nrs) / sizeof(nrs[0]))];
}

/* an XIRR / CPPR / MFRR argument: small structured values or raw */
static uint64_t take_arg(struct in *in)
{
	uint8_t sel = (uint8_t)take(in, 1);
	switch (sel >> 6) {
	case 0:
		return 0xFF000000u | (uint32_t)(16 + (sel & 0x3F));   /* XIRR of a source */
	case 1:
		return (sel & 0x20) ? 0xFF : (sel & 0x1F);                /* priorities */
	case 2:
		return 0xFF000002u;                                    /* XIRR of the IPI */
	default:
		return take(in, 8);
	}
}

static uint64_t take_src_word(struct in *in)
{
	uint8_t sel = (uint8_t)take(in, 1);
	if (sel >= 0xC0)
		return take(in, 8);
	/* server 0..3, priority 0..7 or 0xFF, flag bits from sel */
	uint64_t prio = (sel & 0x20) ? 0xFF : (sel & 7);
	uint64_t flags = (uint64_t)((sel >> 3) & 0x1F) << 40;
	return (uint64_t)(take(in, 1) & 3) | prio << IRQD_KVM_XICS_PRIORITY_SHIFT | flags;
}

static uint64_t take_icp_word(struct in *in)
{
	uint8_t sel = (uint8_t)take(in, 1);
	if (sel >= 0xC0)
		return take(in, 8);
	uint64_t cppr = (sel & 1) ? 0xFF : (take(in, 1) & 7);
	uint64_t xisr = (sel & 2) ? 0 : (sel & 4) ? IRQD_XICS_IPI : 16 + (take(in, 1) & 0x3F);
	uint64_t mfrr = (sel & 8) ? 0xFF : (take(in, 1) & 7);
	uint64_t ppri = (sel & 0x10) ? 0xFF : (take(in, 1) & 7);
	return cppr << IRQD_KVM_REG_PPC_ICP_CPPR_SHIFT | xisr << IRQD_KVM_REG_PPC_ICP_XISR_SHIFT |
	       mfrr << IRQD_KVM_REG_PPC_ICP_MFRR_SHIFT | ppri << IRQD_KVM_REG_PPC_ICP_PPRI_SHIFT;
}

/* ---- observation ---- */

/* What a failed call must leave alone.  Reading every entry of every ICS
 * and all 2048 server slots per operation would cost most of the run (the
 * coverage hooks on those loops), so this looks where the fuzzer works:
 * sources 16..79 and servers 0..7 word by word, plus the generation and the
 * device-wide counts. */
#define VIEW_IRQS 64
#define VIEW_SERVERS 8

struct view {
	uint64_t gen;
	uint32_t nics, nsrc, nsrv;
	int src_rc[VIEW_IRQS], icp_rc[VIEW_SERVERS], out[VIEW_SERVERS];
	uint64_t src[VIEW_IRQS], icp[VIEW_SERVERS], rises[VIEW_SERVERS];
};

static void look(struct irqd_xics *x, struct view *v)
{
	memset(v, 0, sizeof(*v));
	v->gen = irqd_xics_generation(x);
	v->nics = irqd_xics_nr_ics(x);
	v->nsrc = irqd_xics_nr_sources(x);
	v->nsrv = irqd_xics_nr_servers(x);
	for (uint32_t i = 0; i < VIEW_IRQS; i++)
		v->src_rc[i] = irqd_xics_get_source(x, 16 + i, &v->src[i]);
	for (uint32_t s = 0; s < VIEW_SERVERS; s++) {
		v->icp_rc[s] = irqd_xics_get_icp(x, s, &v->icp[s]);
		v->out[s] = irqd_xics_output_asserted(x, s);
		(void)irqd_xics_output_rises(x, s, &v->rises[s]);
	}
}

static int same_view(const struct view *a, const struct view *b)
{
	return memcmp(a, b, sizeof(*a)) == 0;
}

static void check_icps(struct irqd_xics *x)
{
	for (uint32_t s = 0; s < 8; s++) {
		uint64_t w;
		if (irqd_xics_get_icp(x, s, &w) < 0)
			continue;
		uint32_t cppr = (uint32_t)(w >> IRQD_KVM_REG_PPC_ICP_CPPR_SHIFT) & IRQD_KVM_REG_PPC_ICP_CPPR_MASK;
		uint32_t xisr = (uint32_t)(w >> IRQD_KVM_REG_PPC_ICP_XISR_SHIFT) & IRQD_KVM_REG_PPC_ICP_XISR_MASK;
		uint32_t ppri = (uint32_t)(w >> IRQD_KVM_REG_PPC_ICP_PPRI_SHIFT) & IRQD_KVM_REG_PPC_ICP_PPRI_MASK;
		int out = irqd_xics_output_asserted(x, s);
		if (out != (xisr != 0 && ppri < cppr))
			FAIL("I1 broken on server %u: word 0x%016llx out %d", s, (unsigned long long)w, out);
		if (xisr == 0 && ppri != 0xFF)
			FAIL("I2 broken on server %u: word 0x%016llx", s, (unsigned long long)w);
		if (w & 0xFFFF)
			FAIL("ICP word with low bits set: 0x%016llx", (unsigned long long)w);
	}
}

static void check_rc(int rc, const char *op)
{
	switch (rc) {
	case 0: case -ENOENT: case -ENXIO: case -ENOMEM: case -EEXIST: case -EINVAL: case -EOPNOTSUPP:
		return;
	}
	FAIL("%s returned %d", op, rc);
}

/* export a, import into a fresh device, and compare the exports */
#define MAX_EXPORT (8 * 1024)
static struct irqd_xics_raw_source ea[MAX_EXPORT], eb[MAX_EXPORT];
static struct irqd_xics_raw_icp ia[64], ib[64];

static void export_import(struct irqd_xics *a)
{
	uint32_t ns = irqd_xics_export_sources(a, 0, ea, MAX_EXPORT);
	uint32_t ni = irqd_xics_export_icps(a, 0, ia, 64);
	struct irqd_xics *b;

	if (ns == MAX_EXPORT || ni == 64)
		return;   /* too big to compare here */
	b = irqd_xics_new();
	if (!b)
		abort();
	for (uint32_t i = 0; i < ni; i++)
		if (irqd_xics_import_icp(b, &ia[i]) < 0)
			FAIL("import of exported ICP %u failed", ia[i].server);
	for (uint32_t i = 0; i < ns; i++)
		if (irqd_xics_import_source(b, &ea[i]) < 0)
			FAIL("import of exported source %u failed", ea[i].irq);
	if (irqd_xics_export_sources(b, 0, eb, MAX_EXPORT) != ns || irqd_xics_export_icps(b, 0, ib, 64) != ni)
		FAIL("re-export count differs");
	if (memcmp(ea, eb, ns * sizeof(ea[0])) || memcmp(ia, ib, ni * sizeof(ia[0])))
		FAIL("re-export differs from export");
	if (irqd_xics_nr_sources(b) != irqd_xics_nr_sources(a) || irqd_xics_nr_servers(b) != irqd_xics_nr_servers(a))
		FAIL("imported counts differ");
	irqd_xics_free(b);
}

static struct view before, after;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct in in = { data, size };
	struct irqd_xics *x = irqd_xics_new();
	int ops = 0;

	if (!x)
		abort();
	/* a little state to start from: server 0 open, MSIs 16-31, LSIs 32-47 */
	if (size && (data[0] & 0x80) == 0) {
		uint64_t reg[4] = { 0xFF, 0, 0, 0 };
		irqd_xics_connect_vcpu(x, 0);
		irqd_xics_create_ics(x, 16, 16, 0);
		irqd_xics_create_ics(x, 32, 16, IRQD_ICS_LEVEL);
		irqd_xics_hcall(x, 0, IRQD_H_CPPR, reg);
	}
	while (in.n && ops++ < 256) {
		uint8_t op = (uint8_t)take(&in, 1);
		int rc = 0;
		uint64_t v;
		const char *name = "?";

		look(x, &before);
		switch (op % 20) {
		case 0:
			name = "connect_vcpu";
			rc = irqd_xics_connect_vcpu(x, take_server(&in));
			break;
		case 1: {
			name = "create_ics";
			uint32_t first = (uint32_t)take_irq(&in);
			uint32_t count = (uint32_t)take(&in, 1);
			if (count == 0xFF)
				count = (uint32_t)take(&in, 4);
			rc = irqd_xics_create_ics(x, first, count, (uint32_t)take(&in, 1) & 3);
			break;
		}
		case 2: case 3: case 4:
			name = "irq_line";
			v = take_irq(&in);
			rc = irqd_xics_irq_line(x, (uint32_t)v, take_level(&in));
			break;
		case 5: {
			/* entries 4-byte aligned, as in a received record */
			uint32_t buf[1 + 2 * 16];
			uint32_t count = (uint32_t)take(&in, 1) % 17, nfailed = 0, first = 0;
			for (uint32_t i = 0; i < count; i++) {
				buf[1 + 2 * i] = (uint32_t)take_irq(&in);
				buf[2 + 2 * i] = take_level(&in);
			}
			name = "irq_batch";
			rc = irqd_xics_irq_batch(x, (const struct irqd_irq_batch_entry *)(void *)(buf + 1), count,
						 &nfailed, &first);
			if (nfailed > count || (rc == 0) != (nfailed == 0) || (nfailed && first >= count))
				FAIL("irq_batch: rc %d nfailed %u first %u count %u", rc, nfailed, first, count);
			/* a batch with failed entries still applies the others: skip
			 * the nothing-changed check below */
			check_rc(rc, name);
			rc = 0;
			break;
		}
		case 6:
			name = "get_source";
			rc = irqd_xics_get_source(x, take_irq(&in), &v);
			break;
		case 7: case 8:
			name = "set_source";
			v = take_irq(&in);
			rc = irqd_xics_set_source(x, v, take_src_word(&in));
			break;
		case 9:
			name = "has_source";
			rc = irqd_xics_has_source(x, take_irq(&in));
			break;
		case 10:
			name = "get_icp";
			rc = irqd_xics_get_icp(x, take_server(&in), &v);
			break;
		case 11:
			name = "set_icp";
			v = take_server(&in);
			rc = irqd_xics_set_icp(x, (uint32_t)v, take_icp_word(&in));
			break;
		case 12: case 13: case 14: {
			uint64_t reg[4];
			uint32_t s = take_server(&in);
			uint64_t nr = take_hcall(&in);
			reg[0] = take_arg(&in);
			reg[1] = take_arg(&in);
			reg[2] = reg[3] = 0;
			name = "hcall";
			rc = irqd_xics_hcall(x, s, nr, reg);
			if (rc == 0 && (int64_t)reg[0] != IRQD_H_SUCCESS && (int64_t)reg[0] != IRQD_H_PARAMETER)
				FAIL("hcall 0x%llx: status %lld", (unsigned long long)nr, (long long)reg[0]);
			break;
		}
		case 15: case 16: {
			uint32_t buf[12] = { 0 };
			uint32_t token = (uint32_t)take(&in, 1), nargs, nret;
			static const uint32_t na[] = { 0, 3, 1, 1, 1 }, nr[] = { 0, 1, 3, 1, 1 };
			if ((token & 0xF0) == 0 && token % 5) {
				token %= 5;
				nargs = na[token];
				nret = nr[token];
			} else {
				token &= 7;
				nargs = (uint32_t)take(&in, 1) % 14;
				nret = (uint32_t)take(&in, 1) % 14;
			}
			buf[0] = (uint32_t)take_irq(&in);
			buf[1] = take_server(&in);
			buf[2] = (uint32_t)take_arg(&in);
			name = "rtas";
			rc = irqd_xics_rtas(x, token, nargs, nret, buf);
			break;
		}
		case 17: {
			uint32_t acks[8];
			name = "resample";
			rc = irqd_xics_set_resample(x, (uint32_t)take_irq(&in), (int)(take(&in, 1) & 1));
			if (irqd_xics_drain_acks(x, acks, 8) > 8)
				FAIL("drain_acks overflow");
			break;
		}
		case 18: {
			struct irqd_source_stats ss[8];
			struct irqd_server_stats sv[8];
			uint64_t rises;
			name = "observe";
			if (irqd_xics_source_stats(x, (uint32_t)take_irq(&in), ss, 8) > 8 ||
			    irqd_xics_server_stats(x, 0, sv, 8) > 8)
				FAIL("stats overflow");
			(void)irqd_xics_output_rises(x, take_server(&in), &rises);
			(void)irqd_xics_nr_ics(x);
			break;
		}
		case 19:
			name = "export_import";
			export_import(x);
			break;
		}
		check_rc(rc, name);
		check_icps(x);
		if (rc < 0) {
			look(x, &after);
			if (!same_view(&before, &after))
				FAIL("failed %s (%d) changed the device", name, rc);
		}
	}
	irqd_xics_free(x);
	return 0;
}
