/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the daemon's hot-path record parser and dispatcher,
 * irqd_wire_run() (irqd/core/wire.c), on one received record, driven the
 * way irqd/daemon.py drives it: run until DONE, drain the reply buffer on
 * FULL, skip past messages handed back to Python (IRQD_WIRE_PYTHON), and
 * run the dump writer for DUMP_STATE / GET_STATS, and mark a device busy
 * on RESTORE_BEGIN (staged SETs, EBUSY for the rest) until COMMIT/ABORT.
 *
 * Each input is a fresh registry with two devices: handle 1 owned by the
 * peer's uid (1000) and set up as xics-semantics S0 plus server 1 (sources
 * 16-31 MSI, 32-47 LSI, CPPRs open), handle 2 owned by root (EACCES for the
 * peer).  The input is the record as received; the last byte's low bit says
 * whether it "arrived truncated" (MSG_TRUNC) when the input is longer than
 * a record could be.
 *
 * Checked after every input:
 *  - every reply record is well formed (messages of len >= 16, 4-aligned,
 *    inside the record; ERROR or DONE only last; at most IRQD_MAX_RECORD);
 *  - every ERROR of a failure carries a NUL-terminated extack message;
 *  - invariant I1 on every ICP of both devices (out_ee == xisr && ppri < cppr).
 * ASan/UBSan catch the rest.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "irqd/abi.h"
#include "irqd/core/wire.h"
#include "irqd/core/xics.h"

#define OUT_CAP (4 * IRQD_MAX_RECORD)
#define OUT_ENDS 1024
#define PEER_UID 1000

static uint8_t outbuf[OUT_CAP];
static uint32_t ends[OUT_ENDS];

#define FAIL(...)                                       \
	do {                                            \
		fprintf(stderr, "fuzz_wire: " __VA_ARGS__); \
		fprintf(stderr, "\n");                  \
		abort();                                \
	} while (0)

static uint32_t rd32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

/* Check the complete records in o, then drop them (the daemon sent them). */
static void drain(struct irqd_wire_out *o)
{
	uint32_t start = 0;

	for (uint32_t i = 0; i < o->n_ends; i++) {
		uint32_t end = ends[i], pos = start;
		if (end < start || end > o->len)
			FAIL("record %u ends at %u, outside [%u, %u]", i, end, start, o->len);
		if (end - start > IRQD_MAX_RECORD)
			FAIL("reply record of %u bytes", end - start);
		if (end == start)
			FAIL("empty reply record");
		while (pos < end) {
			struct irqd_msghdr h;
			if (end - pos < IRQD_NLMSG_HDRLEN)
				FAIL("%u stray bytes at the end of a reply record", end - pos);
			memcpy(&h, outbuf + pos, sizeof(h));
			if (h.len < IRQD_NLMSG_HDRLEN || h.len > end - pos)
				FAIL("reply message len %u with %u bytes left", h.len, end - pos);
			uint32_t next = pos + ((h.len + 3u) & ~3u);
			if ((h.type == IRQD_MSG_ERROR || h.type == IRQD_MSG_DONE) && next < end)
				FAIL("ERROR/DONE not last in its record");
			if (h.type == IRQD_MSG_ERROR) {
				int32_t err;
				if (h.len < IRQD_NLMSG_HDRLEN + sizeof(struct irqd_error))
					FAIL("short ERROR");
				memcpy(&err, outbuf + pos + IRQD_NLMSG_HDRLEN, 4);
				if (err > 0)
					FAIL("positive error %d", err);
				if (!(h.flags & IRQD_NLM_F_CAPPED))
					FAIL("ERROR without NLM_F_CAPPED");
				if (err < 0) {
					/* extack: MSG must be there, NUL-terminated */
					uint32_t a = pos + IRQD_NLMSG_HDRLEN + sizeof(struct irqd_error);
					int has_msg = 0;
					if (!(h.flags & IRQD_NLM_F_ACK_TLVS))
						FAIL("failure without NLM_F_ACK_TLVS");
					while (a + 4 <= pos + h.len) {
						struct irqd_nlattr at;
						memcpy(&at, outbuf + a, sizeof(at));
						if (at.len < 4 || at.len > pos + h.len - a)
							FAIL("bad extack attribute length %u", at.len);
						if (at.type == IRQD_NLMSGERR_ATTR_MSG) {
							if (at.len < 5 || !memchr(outbuf + a + 4, 0, at.len - 4u))
								FAIL("extack message not NUL-terminated");
							has_msg = 1;
						}
						a += (at.len + 3u) & ~3u;
					}
					if (!has_msg)
						FAIL("failure without extack message");
				}
			}
			pos = next;
		}
		start = end;
	}
	irqd_wire_out_compact(o);
}

static void check_i1(struct irqd_xics *x)
{
	struct irqd_icp_state icps[16];
	uint32_t n, from = 0;

	while ((n = irqd_xics_dump_icps(x, from, icps, 16)) > 0) {
		for (uint32_t i = 0; i < n; i++) {
			uint64_t w = icps[i].state;
			uint32_t cppr = (uint32_t)(w >> IRQD_KVM_REG_PPC_ICP_CPPR_SHIFT) & IRQD_KVM_REG_PPC_ICP_CPPR_MASK;
			uint32_t xisr = (uint32_t)(w >> IRQD_KVM_REG_PPC_ICP_XISR_SHIFT) & IRQD_KVM_REG_PPC_ICP_XISR_MASK;
			uint32_t ppri = (uint32_t)(w >> IRQD_KVM_REG_PPC_ICP_PPRI_SHIFT) & IRQD_KVM_REG_PPC_ICP_PPRI_MASK;
			int want = xisr != 0 && ppri < cppr;
			if (irqd_xics_output_asserted(x, icps[i].server) != want)
				FAIL("I1 broken on server %u: word 0x%016llx", icps[i].server, (unsigned long long)w);
		}
		from = icps[n - 1].server + 1;
		if (from == 0)
			break;
	}
}

static struct irqd_xics *setup_device(void)
{
	struct irqd_xics *x = irqd_xics_new();
	uint64_t reg[4] = { 0xFF, 0, 0, 0 };

	if (!x)
		abort();
	irqd_xics_connect_vcpu(x, 0);
	irqd_xics_connect_vcpu(x, 1);
	irqd_xics_create_ics(x, 16, 16, 0);
	irqd_xics_create_ics(x, 32, 16, IRQD_ICS_LEVEL);
	irqd_xics_hcall(x, 0, IRQD_H_CPPR, reg);
	reg[0] = 0xFF;
	irqd_xics_hcall(x, 1, IRQD_H_CPPR, reg);
	return x;
}

static void run_dump(struct irqd_xics *x, uint32_t handle, const uint8_t *rec, uint32_t pos, uint16_t type,
		     struct irqd_wire_out *o)
{
	struct irqd_msghdr h;
	struct irqd_wire_dump d = { .kind = type, .gen0 = irqd_xics_generation(x) };
	int guard = 0;

	memcpy(&h, rec + pos, sizeof(h));
	while (irqd_wire_dump_step(x, handle, &h, &d, o) == 1) {
		drain(o);
		if (++guard > 100000)
			FAIL("dump does not end");
	}
	irqd_wire_out_flush(o);
	drain(o);
}

/* A fresh device costs ~20 us (~300 us under ASan), most of an input's
 * time: keep the two devices across inputs and rebuild one only when its
 * generation moved (every state change moves it), so each input still
 * starts from the same state. */
static struct irqd_xics *x1, *x2;
static uint64_t gen1, gen2;

static void fresh_devices(void)
{
	if (x1 && irqd_xics_generation(x1) != gen1) {
		irqd_xics_free(x1);
		x1 = NULL;
	}
	if (x2 && irqd_xics_generation(x2) != gen2) {
		irqd_xics_free(x2);
		x2 = NULL;
	}
	if (!x1) {
		x1 = setup_device();
		gen1 = irqd_xics_generation(x1);
	}
	if (!x2) {
		x2 = setup_device();
		gen2 = irqd_xics_generation(x2);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct irqd_registry *r = irqd_registry_new();
	struct irqd_wire_conn conn = { .uid = PEER_UID, .conn_id = 7 };
	struct irqd_wire_out o;
	uint32_t len, pos = 0, flags = 0;
	int guard = 0;

	if (!r)
		abort();
	fresh_devices();
	if (irqd_registry_add(r, 1, x1, PEER_UID) < 0 || irqd_registry_add(r, 2, x2, 0) < 0)
		abort();
	if (size > IRQD_MAX_RECORD) {
		/* what recv() keeps of an oversized record, flagged MSG_TRUNC */
		len = IRQD_MAX_RECORD;
		flags = IRQD_WIRE_TRUNCATED;
	} else {
		len = (uint32_t)size;
	}
	irqd_wire_out_init(&o, outbuf, OUT_CAP, ends, OUT_ENDS);
	(void)irqd_wire_fd_count(data, len);
	for (;;) {
		int rc = irqd_wire_run(r, &conn, data, len, flags, &pos, &o);
		if (++guard > 100000)
			FAIL("dispatcher does not end");
		if (rc == IRQD_WIRE_FULL) {
			drain(&o);
			continue;
		}
		if (rc == IRQD_WIRE_PYTHON) {
			uint32_t end = irqd_wire_msg_end(data, len, pos);
			uint16_t type;
			if (end <= pos || end > len)
				FAIL("PYTHON message at %u ends at %u (record %u)", pos, end, len);
			memcpy(&type, data + pos + 4, 2);
			(void)irqd_wire_msg_fds(data, len, pos);
			if (end - pos >= IRQD_NLMSG_HDRLEN + 4) {
				uint32_t handle = rd32(data + pos + IRQD_NLMSG_HDRLEN);
				struct irqd_xics *x = irqd_registry_get(r, handle);
				/* what the daemon does with these, as far as wire.c sees it */
				if (x && (type == IRQD_MSG_DUMP_STATE || type == IRQD_MSG_GET_STATS))
					run_dump(x, handle, data, pos, type, &o);
				else if (x && type == IRQD_MSG_RESTORE_BEGIN)
					irqd_registry_set_busy(r, handle, conn.conn_id);
				else if (x && (type == IRQD_MSG_RESTORE_COMMIT || type == IRQD_MSG_RESTORE_ABORT))
					irqd_registry_set_busy(r, handle, 0);
			}
			pos = end;
			continue;
		}
		if (rc != IRQD_WIRE_DONE)
			FAIL("irqd_wire_run returned %d", rc);
		break;
	}
	irqd_wire_out_flush(&o);
	drain(&o);
	check_i1(x1);
	check_i1(x2);
	irqd_registry_free(r);   /* frees no device */
	return 0;
}
