/* SPDX-License-Identifier: MIT */
/*
 * irqd wire dispatcher (see wire.h): abi.md's check table, in its order,
 * once, for every message type; the core-only operations executed here.
 *
 * INVARIANTS
 *  - A message is read with memcpy() only: records are 4-byte aligned at best.
 *  - Every reply fits: irqd_wire_run() returns IRQD_WIRE_FULL before handling
 *    a message unless IRQD_WIRE_REPLY_MAX bytes and two record slots are free,
 *    and one message never writes more than that.
 *  - A failure changes nothing: validation completes before the core is
 *    called, and the core itself changes nothing when it fails.
 *  - An ERROR or DONE closes its record; data replies share records up to
 *    IRQD_MAX_RECORD bytes.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "irqd/core/wire.h"

#define HDR IRQD_NLMSG_HDRLEN
#define ALLOWED_FLAGS (IRQD_NLM_F_REQUEST | IRQD_NLM_F_ACK | IRQD_NLM_F_DUMP)

/* ------------------------------------------------------------------ */
/* handle table: sorted array, binary search (handles only grow)       */

struct reg_entry {
	uint32_t handle;
	uint32_t owner;
	struct irqd_xics *x;
	uint64_t busy;              /* conn id restoring it, 0 if none */
	uint64_t out_seq;           /* last output/ack sequence seen */
	uint64_t ack_seq;
};

struct irqd_registry {
	struct reg_entry *e;
	uint32_t n, cap;
	uint64_t max_sources_per_uid;
};

struct irqd_registry *irqd_registry_new(void)
{
	struct irqd_registry *r = calloc(1, sizeof(*r));
	if (r)
		r->max_sources_per_uid = UINT64_MAX;
	return r;
}

void irqd_registry_free(struct irqd_registry *r)
{
	if (!r)
		return;
	free(r->e);
	free(r);
}

void irqd_registry_set_limits(struct irqd_registry *r, uint64_t max_sources_per_uid)
{
	r->max_sources_per_uid = max_sources_per_uid;
}

static int reg_find(const struct irqd_registry *r, uint32_t handle, uint32_t *at)
{
	uint32_t lo = 0, hi = r->n;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (r->e[mid].handle < handle)
			lo = mid + 1;
		else
			hi = mid;
	}
	*at = lo;
	return lo < r->n && r->e[lo].handle == handle;
}

static struct reg_entry *reg_lookup(struct irqd_registry *r, uint32_t handle)
{
	uint32_t at;
	return reg_find(r, handle, &at) ? &r->e[at] : NULL;
}

int irqd_registry_add(struct irqd_registry *r, uint32_t handle, struct irqd_xics *x, uint32_t owner_uid)
{
	uint32_t at;
	if (handle == 0 || !x)
		return -EINVAL;
	if (reg_find(r, handle, &at))
		return -EEXIST;
	if (r->n == r->cap) {
		uint32_t ncap = r->cap ? r->cap * 2 : 64;
		struct reg_entry *ne = realloc(r->e, (size_t)ncap * sizeof(*ne));
		if (!ne)
			return -ENOMEM;
		r->e = ne;
		r->cap = ncap;
	}
	memmove(&r->e[at + 1], &r->e[at], (size_t)(r->n - at) * sizeof(r->e[0]));
	r->e[at] = (struct reg_entry){ .handle = handle, .owner = owner_uid, .x = x,
				       .out_seq = irqd_xics_output_seq(x),
				       .ack_seq = irqd_xics_ack_seq(x) };
	r->n++;
	return 0;
}

int irqd_registry_remove(struct irqd_registry *r, uint32_t handle)
{
	uint32_t at;
	if (!reg_find(r, handle, &at))
		return -EBADF;
	memmove(&r->e[at], &r->e[at + 1], (size_t)(r->n - at - 1) * sizeof(r->e[0]));
	r->n--;
	return 0;
}

struct irqd_xics *irqd_registry_get(struct irqd_registry *r, uint32_t handle)
{
	struct reg_entry *e = reg_lookup(r, handle);
	return e ? e->x : NULL;
}

struct irqd_xics *irqd_registry_replace(struct irqd_registry *r, uint32_t handle, struct irqd_xics *x)
{
	struct reg_entry *e = reg_lookup(r, handle);
	struct irqd_xics *old;
	if (!e || !x)
		return NULL;
	old = e->x;
	e->x = x;
	e->out_seq = irqd_xics_output_seq(x);
	e->ack_seq = irqd_xics_ack_seq(x);
	return old;
}

int irqd_registry_set_busy(struct irqd_registry *r, uint32_t handle, uint64_t conn_id)
{
	struct reg_entry *e = reg_lookup(r, handle);
	if (!e)
		return -EBADF;
	e->busy = conn_id;
	return 0;
}

uint64_t irqd_registry_capacity(struct irqd_registry *r, uint32_t uid)
{
	uint64_t total = 0;
	for (uint32_t i = 0; i < r->n; i++)
		if (r->e[i].owner == uid)
			total += (uint64_t)irqd_xics_nr_ics(r->e[i].x) * IRQD_KVMPPC_XICS_IRQ_PER_ICS;
	return total;
}

/* ------------------------------------------------------------------ */
/* reply writers                                                       */

void irqd_wire_out_init(struct irqd_wire_out *o, uint8_t *buf, uint32_t cap, uint32_t *ends, uint32_t max_ends)
{
	memset(o, 0, sizeof(*o));
	o->buf = buf;
	o->cap = cap;
	o->ends = ends;
	o->max_ends = max_ends;
}

static void close_record(struct irqd_wire_out *o)
{
	if (o->len > o->rec_start && o->n_ends < o->max_ends) {
		o->ends[o->n_ends++] = o->len;
		o->rec_start = o->len;
	}
}

void irqd_wire_out_flush(struct irqd_wire_out *o)
{
	close_record(o);
}

void irqd_wire_out_compact(struct irqd_wire_out *o)
{
	uint32_t keep = o->len - o->rec_start;
	if (o->rec_start)
		memmove(o->buf, o->buf + o->rec_start, keep);
	o->len = keep;
	o->rec_start = 0;
	o->n_ends = 0;
}

static int room(const struct irqd_wire_out *o, uint32_t need)
{
	return o->cap - o->len >= need && o->n_ends + 2 <= o->max_ends;
}

/* Reserve `need` bytes in the open record, closing it first if it would
 * pass IRQD_MAX_RECORD.  NULL when out is full. */
static uint8_t *reserve(struct irqd_wire_out *o, uint32_t need)
{
	uint8_t *p;
	if (o->len - o->rec_start + need > IRQD_MAX_RECORD)
		close_record(o);
	if (!room(o, need))
		return NULL;
	p = o->buf + o->len;
	o->len += need;
	return p;
}

static void put_hdr(uint8_t *p, uint32_t len, uint16_t type, uint16_t flags, uint32_t seq, uint32_t pid)
{
	struct irqd_msghdr h = { .len = len, .type = type, .flags = flags, .seq = seq, .pid = pid };
	memcpy(p, &h, sizeof(h));
}

int irqd_wire_put(struct irqd_wire_out *o, const struct irqd_msghdr *req, uint16_t type,
		  uint16_t flags, const void *payload, uint32_t plen)
{
	uint32_t len = HDR + plen;
	uint8_t *p = reserve(o, IRQD_NLMSG_ALIGN(len));
	if (!p)
		return -ENOSPC;
	put_hdr(p, len, type, flags, req->seq, req->pid);
	if (plen)
		memcpy(p + HDR, payload, plen);
	memset(p + len, 0, IRQD_NLMSG_ALIGN(len) - len);
	return 0;
}

int irqd_wire_put_error(struct irqd_wire_out *o, const uint8_t *reqhdr, int32_t err,
			const char *msg, int64_t offs)
{
	struct irqd_msghdr req;
	uint32_t mlen = 0, len = HDR + 4 + HDR;
	uint16_t flags = IRQD_NLM_F_CAPPED;
	uint8_t *p;

	memcpy(&req, reqhdr, HDR);
	if (err < 0) {
		if (!msg || !*msg)
			msg = "request failed";
		mlen = (uint32_t)strnlen(msg, IRQD_WIRE_MSG_MAX - 1) + 1;
		len += IRQD_NLMSG_ALIGN(4 + mlen) + (offs >= 0 ? 8 : 0);
		flags |= IRQD_NLM_F_ACK_TLVS;
		o->n_errors++;
		o->last_error = err;
		memcpy(o->last_msg, msg, mlen - 1);
		o->last_msg[mlen - 1] = 0;
	}
	p = reserve(o, len);
	if (!p)
		return -ENOSPC;
	memset(p, 0, len);
	put_hdr(p, len, IRQD_MSG_ERROR, flags, req.seq, req.pid);
	memcpy(p + HDR, &err, 4);
	memcpy(p + HDR + 4, reqhdr, HDR);
	if (err < 0) {
		uint8_t *a = p + HDR + 4 + HDR;
		struct irqd_nlattr at = { .len = (uint16_t)(4 + mlen), .type = IRQD_NLMSGERR_ATTR_MSG };
		memcpy(a, &at, 4);
		memcpy(a + 4, msg, mlen - 1);
		if (offs >= 0) {
			uint32_t off32 = (uint32_t)offs;
			a += IRQD_NLMSG_ALIGN(4 + mlen);
			at = (struct irqd_nlattr){ .len = 8, .type = IRQD_NLMSGERR_ATTR_OFFS };
			memcpy(a, &at, 4);
			memcpy(a + 4, &off32, 4);
		}
	}
	close_record(o);
	return 0;
}

int irqd_wire_put_done(struct irqd_wire_out *o, const struct irqd_msghdr *req, uint16_t flags)
{
	int32_t zero = 0;
	int rc = irqd_wire_put(o, req, IRQD_MSG_DONE, IRQD_NLM_F_MULTI | flags, &zero, 4);
	if (rc == 0)
		close_record(o);
	return rc;
}

/* ------------------------------------------------------------------ */
/* message table                                                       */

enum { RUN_C, RUN_PY };

struct opdef {
	uint16_t size;              /* payload struct size */
	uint8_t known;
	uint8_t has_handle;         /* u32 handle at payload offset 0 */
	uint8_t where;              /* RUN_C or RUN_PY */
	uint8_t flags_off;          /* payload offset of a u32 flags field, or NONE */
	uint8_t reserved_off;       /* payload offset of a u32 reserved field, or NONE */
	uint32_t flags_ok;          /* the flag bits defined for flags_off */
};

#define NONE 0xFF
#define OFF(s, f) ((uint8_t)offsetof(struct s, f))

static const struct opdef *opdef(uint16_t type)
{
	/* OP: no payload flags; OPF: flags field s.flags with bits ok; then the
	 * reserved field, if any (abi.md check 7 reads both from here). */
#define OP(t, s, h, w, res) [t] = { sizeof(struct s), 1, (h), (w), NONE, (res), 0 }
#define OPF(t, s, h, w, ok, res) [t] = { sizeof(struct s), 1, (h), (w), OFF(s, flags), (res), (ok) }
	static const struct opdef ops[0x41] = {
		OP(IRQD_MSG_HELLO, irqd_hello, 0, RUN_PY, OFF(irqd_hello, reserved)),
		OPF(IRQD_MSG_CREATE_DEVICE, irqd_create_device, 0, RUN_PY, IRQD_CREATE_TEST | IRQD_CREATE_PERSIST,
		    OFF(irqd_create_device, reserved)),
		OP(IRQD_MSG_DESTROY_DEVICE, irqd_handle, 1, RUN_PY, OFF(irqd_handle, reserved)),
		OP(IRQD_MSG_ATTACH, irqd_handle, 1, RUN_PY, OFF(irqd_handle, reserved)),
		[IRQD_MSG_LIST_DEVICES] = { 0, 1, 0, RUN_PY, NONE, NONE, 0 },
		OP(IRQD_MSG_IRQ_LINE, irqd_irq_level, 1, RUN_C, OFF(irqd_irq_level, reserved)),
		OP(IRQD_MSG_IRQ_LINE_BATCH, irqd_irq_batch, 1, RUN_C, NONE),
		OPF(IRQD_MSG_SET_DEVICE_ATTR, irqd_device_attr, 1, RUN_C, 0, OFF(irqd_device_attr, reserved)),
		OPF(IRQD_MSG_GET_DEVICE_ATTR, irqd_device_attr, 1, RUN_C, 0, OFF(irqd_device_attr, reserved)),
		OPF(IRQD_MSG_HAS_DEVICE_ATTR, irqd_device_attr, 1, RUN_C, 0, OFF(irqd_device_attr, reserved)),
		OPF(IRQD_MSG_CREATE_ICS, irqd_create_ics, 1, RUN_C, IRQD_ICS_LEVEL, NONE),
		OPF(IRQD_MSG_CONNECT_VCPU, irqd_connect_vcpu, 1, RUN_C, 0, OFF(irqd_connect_vcpu, reserved)),
		OP(IRQD_MSG_GET_ONE_REG, irqd_one_reg, 1, RUN_C, NONE),
		OP(IRQD_MSG_SET_ONE_REG, irqd_one_reg, 1, RUN_C, NONE),
		OP(IRQD_MSG_HCALL, irqd_hcall, 1, RUN_C, NONE),
		OP(IRQD_MSG_RTAS, irqd_rtas, 1, RUN_C, NONE),
		OPF(IRQD_MSG_IRQFD, irqd_irqfd, 1, RUN_PY, IRQD_IRQFD_DEASSIGN | IRQD_IRQFD_RESAMPLE,
		    OFF(irqd_irqfd, reserved)),
		OPF(IRQD_MSG_SET_OUTPUT, irqd_output, 1, RUN_PY, IRQD_OUTPUT_DEASSIGN, OFF(irqd_output, reserved)),
		OP(IRQD_MSG_DUMP_STATE, irqd_handle, 1, RUN_PY, OFF(irqd_handle, reserved)),
		OP(IRQD_MSG_GET_STATS, irqd_handle, 1, RUN_PY, OFF(irqd_handle, reserved)),
		OP(IRQD_MSG_RESTORE_BEGIN, irqd_handle, 1, RUN_PY, OFF(irqd_handle, reserved)),
		OP(IRQD_MSG_RESTORE_COMMIT, irqd_handle, 1, RUN_PY, OFF(irqd_handle, reserved)),
		OP(IRQD_MSG_RESTORE_ABORT, irqd_handle, 1, RUN_PY, OFF(irqd_handle, reserved)),
		OPF(IRQD_MSG_RING_SETUP, irqd_ring_setup, 1, RUN_PY, IRQD_RING_DEASSIGN, OFF(irqd_ring_setup, reserved)),
	};
#undef OP
#undef OPF
	return type < sizeof(ops) / sizeof(ops[0]) && ops[type].known ? &ops[type] : NULL;
}

static uint32_t rd32(const uint8_t *p, uint32_t off)
{
	uint32_t v;
	memcpy(&v, p + off, 4);
	return v;
}

static uint64_t rd64(const uint8_t *p, uint32_t off)
{
	uint64_t v;
	memcpy(&v, p + off, 8);
	return v;
}

uint32_t irqd_wire_msg_end(const uint8_t *rec, uint32_t len, uint32_t pos)
{
	uint32_t mlen;
	uint64_t end;
	if (pos >= len || len - pos < HDR)
		return len;
	mlen = rd32(rec, pos);
	if (mlen < HDR || mlen > len - pos)
		return len;
	end = (uint64_t)pos + IRQD_NLMSG_ALIGN((uint64_t)mlen);
	return end > len ? len : (uint32_t)end;
}

uint32_t irqd_wire_msg_fds(const uint8_t *rec, uint32_t len, uint32_t pos)
{
	uint32_t mlen, flags;
	uint16_t type;
	if (pos >= len || len - pos < HDR)
		return 0;
	mlen = rd32(rec, pos);
	if (mlen < HDR || mlen > len - pos)
		return 0;
	memcpy(&type, rec + pos + 4, 2);
	if (type == IRQD_MSG_IRQFD && mlen >= HDR + offsetof(struct irqd_irqfd, flags) + 4) {
		flags = rd32(rec, pos + HDR + offsetof(struct irqd_irqfd, flags));
		if (flags & IRQD_IRQFD_DEASSIGN)
			return 0;
		return (flags & IRQD_IRQFD_RESAMPLE) ? 2 : 1;
	}
	if (type == IRQD_MSG_SET_OUTPUT && mlen >= HDR + offsetof(struct irqd_output, flags) + 4) {
		flags = rd32(rec, pos + HDR + offsetof(struct irqd_output, flags));
		return (flags & IRQD_OUTPUT_DEASSIGN) ? 0 : 1;
	}
	if (type == IRQD_MSG_RING_SETUP && mlen >= HDR + offsetof(struct irqd_ring_setup, flags) + 4) {
		flags = rd32(rec, pos + HDR + offsetof(struct irqd_ring_setup, flags));
		return (flags & IRQD_RING_DEASSIGN) ? 0 : 2;   /* memfd, doorbell */
	}
	return 0;
}

uint32_t irqd_wire_fd_count(const uint8_t *rec, uint32_t len)
{
	uint32_t pos = 0, n = 0;
	while (pos < len && len - pos >= HDR) {
		uint32_t mlen = rd32(rec, pos);
		if (mlen < HDR || mlen > len - pos)
			break;
		n += irqd_wire_msg_fds(rec, len, pos);
		pos = irqd_wire_msg_end(rec, len, pos);
	}
	return n;
}

/* ------------------------------------------------------------------ */
/* the dispatcher                                                      */

struct msg {
	const uint8_t *hdr;         /* the request's 16-byte header */
	struct irqd_msghdr h;
	const uint8_t *pl;          /* payload */
	uint32_t plen;
};

/* Fail the message: ERROR(-err) with a formatted reason; offs is the
 * offending field's offset from the message start, or -1. */
static void fail(struct irqd_wire_out *o, const struct msg *m, int err, int64_t offs, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static void fail(struct irqd_wire_out *o, const struct msg *m, int err, int64_t offs, const char *fmt, ...)
{
	char buf[IRQD_WIRE_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	irqd_wire_put_error(o, m->hdr, -err, buf, offs);
}

static void ack(struct irqd_wire_out *o, const struct msg *m)
{
	if (m->h.flags & IRQD_NLM_F_ACK)
		irqd_wire_put_error(o, m->hdr, 0, NULL, -1);
}

static void reply(struct irqd_wire_out *o, const struct msg *m, const void *payload, uint32_t plen)
{
	irqd_wire_put(o, &m->h, m->h.type, 0, payload, plen);
	ack(o, m);
}

#define PL(field_struct, field) ((int64_t)(HDR + offsetof(struct field_struct, field)))

static const char *level_name_ok(uint32_t level)
{
	switch (level) {
	case 0: case 1: case IRQD_KVM_INTERRUPT_SET: case IRQD_KVM_INTERRUPT_UNSET:
	case IRQD_KVM_INTERRUPT_SET_LEVEL:
		return "ok";
	}
	return NULL;
}

/* Why the core refused an IRQ_LINE on irq (level already checked). */
static const char *irq_line_reason(struct irqd_xics *x, uint32_t irq)
{
	uint64_t v;
	if (irq < IRQD_KVMPPC_XICS_FIRST_IRQ || irq >= IRQD_KVMPPC_XICS_NR_IRQS)
		return "is not a valid interrupt number (16 to 1048575)";
	if (irqd_xics_get_source(x, irq, &v) == -ENOENT)
		return "is not configured";
	return "was refused";
}

/* Reserved fields and unknown flag bits (abi.md check 7), from the table. */
static int check_reserved(struct irqd_wire_out *o, const struct msg *m, const struct opdef *d)
{
	if (d->flags_off != NONE) {
		uint32_t v = rd32(m->pl, d->flags_off);
		if (v & ~d->flags_ok) {
			fail(o, m, EINVAL, HDR + d->flags_off, "unknown flags 0x%x%s", v & ~d->flags_ok,
			     d->flags_ok ? "" : " (must be 0)");
			return -1;
		}
	}
	if (d->reserved_off != NONE && rd32(m->pl, d->reserved_off)) {
		fail(o, m, EINVAL, HDR + d->reserved_off, "reserved field must be 0");
		return -1;
	}
	return 0;
}

/* Form checks that depend on no state (also applied to staged restores). */
static int check_form(struct irqd_wire_out *o, const struct msg *m)
{
	const uint8_t *p = m->pl;
	switch (m->h.type) {
	case IRQD_MSG_SET_DEVICE_ATTR: case IRQD_MSG_GET_DEVICE_ATTR: case IRQD_MSG_HAS_DEVICE_ATTR: {
		uint32_t group = rd32(p, offsetof(struct irqd_device_attr, group));
		if (group != IRQD_KVM_DEV_XICS_GRP_SOURCES) {
			fail(o, m, ENXIO, PL(irqd_device_attr, group),
			     "attribute group %u is not supported (only 1, KVM_DEV_XICS_GRP_SOURCES)", group);
			return -1;
		}
		return 0;
	}
	case IRQD_MSG_GET_ONE_REG: case IRQD_MSG_SET_ONE_REG: {
		uint64_t id = rd64(p, offsetof(struct irqd_one_reg, id));
		if (id != (uint64_t)IRQD_KVM_REG_PPC_ICP_STATE) {
			fail(o, m, EINVAL, PL(irqd_one_reg, id),
			     "register id 0x%llx is not KVM_REG_PPC_ICP_STATE", (unsigned long long)id);
			return -1;
		}
		return 0;
	}
	case IRQD_MSG_CONNECT_VCPU: {
		uint32_t server = rd32(p, offsetof(struct irqd_connect_vcpu, server));
		if (server >= IRQD_MAX_SERVERS) {
			fail(o, m, EINVAL, PL(irqd_connect_vcpu, server),
			     "server %u is out of range (max_servers %u)", server, IRQD_MAX_SERVERS);
			return -1;
		}
		return 0;
	}
	}
	return 0;
}

static int is_staged_type(uint16_t type)
{
	return type == IRQD_MSG_CONNECT_VCPU || type == IRQD_MSG_SET_DEVICE_ATTR ||
	       type == IRQD_MSG_SET_ONE_REG || type == IRQD_MSG_RESTORE_COMMIT ||
	       type == IRQD_MSG_RESTORE_ABORT;
}

static void note_change(struct irqd_wire_out *o, struct reg_entry *e)
{
	uint64_t os = irqd_xics_output_seq(e->x), as = irqd_xics_ack_seq(e->x);
	if (os == e->out_seq && as == e->ack_seq)
		return;
	e->out_seq = os;
	e->ack_seq = as;
	if (o->n_notify && o->notify[o->n_notify - 1] == e->handle)
		return;
	for (uint32_t i = 0; i < o->n_notify; i++)
		if (o->notify[i] == e->handle)
			return;
	if (o->n_notify < IRQD_WIRE_NOTIFY_MAX)
		o->notify[o->n_notify++] = e->handle;
	else
		o->notify_overflow = 1;
}

/* ICS capacity check for operations that may create ICS blocks (abi.md:
 * limits are checked before anything is allocated). */
static int check_capacity(struct irqd_registry *r, struct irqd_wire_out *o, const struct msg *m,
			  struct reg_entry *e, uint32_t first, uint64_t count)
{
	uint64_t used, add = 0;
	uint32_t id0, id1, buf[IRQD_RTAS_BUF_WORDS];
	if (r->max_sources_per_uid == UINT64_MAX || count == 0 ||
	    first >= IRQD_KVMPPC_XICS_NR_IRQS || first + count > IRQD_KVMPPC_XICS_NR_IRQS)
		return 0;   /* range errors are the core's to answer */
	id0 = first >> IRQD_KVMPPC_XICS_ICS_SHIFT;
	id1 = (uint32_t)((first + count - 1) >> IRQD_KVMPPC_XICS_ICS_SHIFT);
	for (uint32_t id = id0; id <= id1; id++) {
		/* ibm,get-xive answers -3 exactly when the ICS block is absent */
		buf[0] = id << IRQD_KVMPPC_XICS_ICS_SHIFT;
		if (irqd_xics_rtas(e->x, IRQD_RTAS_GET_XIVE, 1, 3, buf) == 0 &&
		    (int32_t)buf[1] == IRQD_RTAS_PARAM_ERROR)
			add += IRQD_KVMPPC_XICS_IRQ_PER_ICS;
	}
	if (!add)
		return 0;
	used = irqd_registry_capacity(r, e->owner);
	if (used + add > r->max_sources_per_uid) {
		fail(o, m, ENOSPC, -1,
		     "per-uid source limit: uid %u has %llu of %llu source slots, this needs %llu more",
		     e->owner, (unsigned long long)used, (unsigned long long)r->max_sources_per_uid,
		     (unsigned long long)add);
		return -1;
	}
	return 0;
}

static void run_irq_line(struct irqd_wire_out *o, const struct msg *m, struct reg_entry *e)
{
	struct irqd_irq_level req;
	int rc;
	memcpy(&req, m->pl, sizeof(req));
	if (!level_name_ok(req.level)) {
		fail(o, m, EINVAL, PL(irqd_irq_level, level),
		     "level 0x%x is not a KVM level (0, 1, 0xFFFFFFFD, 0xFFFFFFFE, 0xFFFFFFFF)", req.level);
		return;
	}
	rc = irqd_xics_irq_line(e->x, req.irq, req.level);
	if (rc < 0) {
		fail(o, m, -rc, PL(irqd_irq_level, irq), "irq %u %s", req.irq, irq_line_reason(e->x, req.irq));
		return;
	}
	ack(o, m);
}

static void run_batch(struct irqd_wire_out *o, const struct msg *m, struct reg_entry *e)
{
	uint32_t count = rd32(m->pl, offsetof(struct irqd_irq_batch, count));
	uint32_t nfailed = 0, first = 0;
	const struct irqd_irq_batch_entry *ent;
	int rc;

	if ((uint64_t)m->plen != sizeof(struct irqd_irq_batch) + (uint64_t)count * sizeof(*ent)) {
		fail(o, m, EINVAL, PL(irqd_irq_batch, count),
		     "count %u does not match the message length (%u payload bytes: %u entries)",
		     count, m->plen, (m->plen - (uint32_t)sizeof(struct irqd_irq_batch)) / 8);
		return;
	}
	ent = (const struct irqd_irq_batch_entry *)(const void *)(m->pl + sizeof(struct irqd_irq_batch));
	rc = irqd_xics_irq_batch(e->x, ent, count, &nfailed, &first);
	if (rc < 0) {
		uint32_t irq = rd32(m->pl, (uint32_t)sizeof(struct irqd_irq_batch) + first * 8);
		uint32_t lvl = rd32(m->pl, (uint32_t)sizeof(struct irqd_irq_batch) + first * 8 + 4);
		fail(o, m, -rc, HDR + (int64_t)sizeof(struct irqd_irq_batch) + (int64_t)first * 8,
		     "%u of %u entries failed; first: entry %u (irq %u level 0x%x): %s", nfailed, count,
		     first, irq, lvl, level_name_ok(lvl) ? irq_line_reason(e->x, irq) : "not a KVM level");
		return;
	}
	ack(o, m);
}

static void run_device_attr(struct irqd_registry *r, struct irqd_wire_out *o, const struct msg *m,
			    struct reg_entry *e)
{
	struct irqd_device_attr a;
	int rc;
	memcpy(&a, m->pl, sizeof(a));
	switch (m->h.type) {
	case IRQD_MSG_GET_DEVICE_ATTR:
		rc = irqd_xics_get_source(e->x, a.attr, &a.value);
		if (rc < 0) {
			fail(o, m, -rc, PL(irqd_device_attr, attr), "irq %llu (looked up as %u) is not configured",
			     (unsigned long long)a.attr, (uint32_t)a.attr);
			return;
		}
		reply(o, m, &a, sizeof(a));
		return;
	case IRQD_MSG_HAS_DEVICE_ATTR:
		rc = irqd_xics_has_source(e->x, a.attr);
		if (rc < 0)
			fail(o, m, -rc, PL(irqd_device_attr, attr), "attribute %llu is not a valid interrupt number",
			     (unsigned long long)a.attr);
		else
			irqd_wire_put_error(o, m->hdr, 0, NULL, -1);   /* always acknowledged */
		return;
	default: /* SET */
		if (a.attr >= IRQD_KVMPPC_XICS_FIRST_IRQ && a.attr < IRQD_KVMPPC_XICS_NR_IRQS &&
		    check_capacity(r, o, m, e, (uint32_t)a.attr, 1))
			return;
		rc = irqd_xics_set_source(e->x, a.attr, a.value);
		if (rc == -ENOENT) {
			fail(o, m, ENOENT, PL(irqd_device_attr, attr),
			     "attribute %llu is not a valid interrupt number (16 to 1048575)",
			     (unsigned long long)a.attr);
			return;
		}
		if (rc == -EINVAL) {
			fail(o, m, EINVAL, PL(irqd_device_attr, value),
			     "state word 0x%016llx: priority 0x%02x needs server %u, which has no ICP",
			     (unsigned long long)a.value, (unsigned)((a.value >> 32) & 0xFF), (uint32_t)a.value);
			return;
		}
		if (rc < 0) {
			fail(o, m, -rc, -1, "setting irq %llu failed", (unsigned long long)a.attr);
			return;
		}
		ack(o, m);
	}
}

static void run_create_ics(struct irqd_registry *r, struct irqd_wire_out *o, const struct msg *m,
			   struct reg_entry *e)
{
	struct irqd_create_ics c;
	int rc;
	memcpy(&c, m->pl, sizeof(c));
	if (check_capacity(r, o, m, e, c.first_irq, c.count))
		return;
	rc = irqd_xics_create_ics(e->x, c.first_irq, c.count, c.flags);
	if (rc == -EINVAL) {
		fail(o, m, EINVAL, c.count == 0 ? PL(irqd_create_ics, count) : PL(irqd_create_ics, first_irq),
		     "range %u + %u is not within the valid interrupt numbers 16 to 1048575", c.first_irq, c.count);
		return;
	}
	if (rc == -EEXIST) {
		fail(o, m, EEXIST, PL(irqd_create_ics, first_irq),
		     "a source in %u..%llu is already configured", c.first_irq,
		     (unsigned long long)c.first_irq + c.count - 1);
		return;
	}
	if (rc < 0) {
		fail(o, m, -rc, -1, "creating sources %u..%llu failed", c.first_irq,
		     (unsigned long long)c.first_irq + c.count - 1);
		return;
	}
	ack(o, m);
}

static void run_connect(struct irqd_wire_out *o, const struct msg *m, struct reg_entry *e)
{
	uint32_t server = rd32(m->pl, offsetof(struct irqd_connect_vcpu, server));
	int rc = irqd_xics_connect_vcpu(e->x, server);
	if (rc == -EEXIST)
		fail(o, m, EEXIST, PL(irqd_connect_vcpu, server), "server %u already has an ICP", server);
	else if (rc < 0)
		fail(o, m, -rc, PL(irqd_connect_vcpu, server), "connecting server %u failed", server);
	else
		ack(o, m);
}

static void run_one_reg(struct irqd_wire_out *o, const struct msg *m, struct reg_entry *e)
{
	struct irqd_one_reg reg;
	int rc;
	memcpy(&reg, m->pl, sizeof(reg));
	if (m->h.type == IRQD_MSG_GET_ONE_REG) {
		rc = irqd_xics_get_icp(e->x, reg.server, &reg.value);
		if (rc < 0) {
			fail(o, m, -rc, PL(irqd_one_reg, server), "server %u has no ICP", reg.server);
			return;
		}
		reply(o, m, &reg, sizeof(reg));
		return;
	}
	rc = irqd_xics_set_icp(e->x, reg.server, reg.value);
	if (rc == -ENOENT)
		fail(o, m, ENOENT, PL(irqd_one_reg, server), "server %u has no ICP", reg.server);
	else if (rc < 0)
		fail(o, m, -rc, PL(irqd_one_reg, value),
		     "ICP state word 0x%016llx is inconsistent (cppr/xisr/mfrr/pending priority)",
		     (unsigned long long)reg.value);
	else
		ack(o, m);
}

static void run_hcall(struct irqd_wire_out *o, const struct msg *m, struct reg_entry *e)
{
	struct irqd_hcall hc;
	int rc;
	memcpy(&hc, m->pl, sizeof(hc));
	rc = irqd_xics_hcall(e->x, hc.server, hc.nr, hc.reg);
	if (rc == -EOPNOTSUPP)
		fail(o, m, EOPNOTSUPP, PL(irqd_hcall, nr), "hcall 0x%llx is not implemented",
		     (unsigned long long)hc.nr);
	else if (rc == -ENOENT)
		fail(o, m, ENOENT, PL(irqd_hcall, server), "server %u has no ICP", hc.server);
	else if (rc < 0)
		fail(o, m, -rc, -1, "hcall 0x%llx failed", (unsigned long long)hc.nr);
	else
		reply(o, m, &hc, sizeof(hc));
}

static void run_rtas(struct irqd_wire_out *o, const struct msg *m, struct reg_entry *e)
{
	struct irqd_rtas rt;
	int rc;
	memcpy(&rt, m->pl, sizeof(rt));
	if (rt.token < IRQD_RTAS_SET_XIVE || rt.token > IRQD_RTAS_INT_ON) {
		fail(o, m, EINVAL, PL(irqd_rtas, token), "unknown RTAS token %u", rt.token);
		return;
	}
	if ((uint64_t)rt.nargs + rt.nret > IRQD_RTAS_BUF_WORDS || rt.nargs >= IRQD_RTAS_BUF_WORDS) {
		fail(o, m, EINVAL, PL(irqd_rtas, nargs),
		     "nargs %u + nret %u does not fit the 12-word buffer with a status word", rt.nargs, rt.nret);
		return;
	}
	rc = irqd_xics_rtas(e->x, rt.token, rt.nargs, rt.nret, rt.buf);
	if (rc < 0)
		fail(o, m, -rc, -1, "RTAS token %u failed", rt.token);
	else
		reply(o, m, &rt, sizeof(rt));
}

static int handle(struct irqd_registry *r, struct irqd_wire_conn *c, struct irqd_wire_out *o,
		  const struct msg *m)
{
	const struct opdef *d;
	struct reg_entry *e = NULL;
	uint32_t fds = 0;

	/* check 3: flags */
	if (!(m->h.flags & IRQD_NLM_F_REQUEST)) {
		fail(o, m, EINVAL, 6, "NLM_F_REQUEST is not set (flags 0x%x)", m->h.flags);
		goto done;
	}
	if (m->h.flags & ~ALLOWED_FLAGS) {
		fail(o, m, EINVAL, 6, "unknown header flags 0x%x", m->h.flags & ~ALLOWED_FLAGS);
		goto done;
	}
	/* netlink control types (< 0x10): ignored, acknowledged on request */
	if (m->h.type < 0x10) {
		ack(o, m);
		return IRQD_WIRE_DONE;
	}
	/* check 4: type */
	d = opdef(m->h.type);
	if (!d) {
		fail(o, m, EOPNOTSUPP, 4, "unknown message type 0x%x", m->h.type);
		goto done;
	}
	fds = irqd_wire_msg_fds(m->hdr, HDR + m->plen, 0);
	/* checks 5-6: payload size, extensible-struct rule */
	if (m->plen < d->size) {
		fail(o, m, EINVAL, 0, "payload of %u bytes is shorter than the %u of message type 0x%x",
		     m->plen, d->size, m->h.type);
		goto done;
	}
	if (m->plen > d->size && m->h.type != IRQD_MSG_IRQ_LINE_BATCH) {
		for (uint32_t i = d->size; i < m->plen; i++)
			if (m->pl[i]) {
				fail(o, m, E2BIG, HDR + (int64_t)i,
				     "payload is longer than the %u bytes of type 0x%x and byte %u is not zero",
				     d->size, m->h.type, i);
				goto done;
			}
	}
	/* check 7: reserved fields, unknown flags; then state-free form checks */
	if (check_reserved(o, m, d) || check_form(o, m))
		goto done;
	/* checks 8-9: handle, owner */
	if (d->has_handle) {
		uint32_t handle = rd32(m->pl, 0);
		e = reg_lookup(r, handle);
		if (!e) {
			fail(o, m, EBADF, HDR, "no device with handle %u", handle);
			goto done;
		}
		if (c->uid != 0 && c->uid != e->owner) {
			fail(o, m, EACCES, HDR, "device %u belongs to uid %u", handle, e->owner);
			goto done;
		}
		if (e->busy) {
			if (e->busy == c->conn_id && is_staged_type(m->h.type))
				return IRQD_WIRE_PYTHON;
			fail(o, m, EBUSY, HDR, "device %u is being restored", handle);
			goto done;
		}
	}
	if (d->where == RUN_PY)
		return IRQD_WIRE_PYTHON;

	switch (m->h.type) {
	case IRQD_MSG_IRQ_LINE: run_irq_line(o, m, e); break;
	case IRQD_MSG_IRQ_LINE_BATCH: run_batch(o, m, e); break;
	case IRQD_MSG_SET_DEVICE_ATTR: case IRQD_MSG_GET_DEVICE_ATTR: case IRQD_MSG_HAS_DEVICE_ATTR:
		run_device_attr(r, o, m, e); break;
	case IRQD_MSG_CREATE_ICS: run_create_ics(r, o, m, e); break;
	case IRQD_MSG_CONNECT_VCPU: run_connect(o, m, e); break;
	case IRQD_MSG_GET_ONE_REG: case IRQD_MSG_SET_ONE_REG: run_one_reg(o, m, e); break;
	case IRQD_MSG_HCALL: run_hcall(o, m, e); break;
	case IRQD_MSG_RTAS: run_rtas(o, m, e); break;
	}
	note_change(o, e);
	return IRQD_WIRE_DONE;
done:
	c->fd_index += fds;         /* a failed fd-taking message still owns its fds */
	return IRQD_WIRE_DONE;
}

int irqd_wire_run(struct irqd_registry *r, struct irqd_wire_conn *c, const uint8_t *rec,
		  uint32_t len, uint32_t flags, uint32_t *pos, struct irqd_wire_out *o)
{
	if (flags & IRQD_WIRE_TRUNCATED) {
		uint8_t hdr[HDR] = { 0 };
		char msg[96];
		if (!room(o, IRQD_WIRE_REPLY_MAX))
			return IRQD_WIRE_FULL;
		memcpy(hdr, rec, len < HDR ? len : HDR);
		snprintf(msg, sizeof(msg), "record longer than max_record (%u bytes): dropped", IRQD_MAX_RECORD);
		irqd_wire_put_error(o, hdr, -EMSGSIZE, msg, -1);
		*pos = len;
		return IRQD_WIRE_DONE;
	}
	while (*pos < len) {
		struct msg m;
		uint32_t p = *pos, left = len - p;
		int rc;

		if (!room(o, IRQD_WIRE_REPLY_MAX))
			return IRQD_WIRE_FULL;
		if (left < HDR) {
			uint8_t hdr[HDR] = { 0 };
			struct msg t = { .hdr = hdr };
			memcpy(hdr, rec + p, left);
			memcpy(&t.h, hdr, HDR);
			fail(o, &t, EINVAL, -1, "%u bytes at offset %u are too short for a message header", left, p);
			*pos = len;
			break;
		}
		m.hdr = rec + p;
		memcpy(&m.h, m.hdr, HDR);
		if (m.h.len < HDR || m.h.len > left) {
			fail(o, &m, EINVAL, 0, "message length %u at offset %u is %s", m.h.len, p,
			     m.h.len < HDR ? "shorter than its header" : "beyond the end of the record");
			*pos = len;
			break;
		}
		m.pl = m.hdr + HDR;
		m.plen = m.h.len - HDR;
		rc = handle(r, c, o, &m);
		if (rc == IRQD_WIRE_PYTHON)
			return rc;      /* *pos stays at the message */
		*pos = irqd_wire_msg_end(rec, len, p);
	}
	return IRQD_WIRE_DONE;
}

/* ------------------------------------------------------------------ */
/* dumps                                                               */

#define DUMP_CHUNK 64

int irqd_wire_dump_step(struct irqd_xics *x, uint32_t handle, const struct irqd_msghdr *req,
			struct irqd_wire_dump *d, struct irqd_wire_out *o)
{
	while (d->phase < 2) {
		union {
			struct irqd_source_state ss[DUMP_CHUNK];
			struct irqd_icp_state is[DUMP_CHUNK];
			struct irqd_source_stats st[DUMP_CHUNK];
			struct irqd_server_stats sv[DUMP_CHUNK];
		} u;
		uint32_t n, i, esize, etype, last;
		int state = d->kind == IRQD_MSG_DUMP_STATE;

		if (!room(o, DUMP_CHUNK * (HDR + 24) + IRQD_WIRE_REPLY_MAX))
			return 1;
		if (d->phase == 0) {
			n = state ? irqd_xics_dump_sources(x, d->next, u.ss, DUMP_CHUNK)
				  : irqd_xics_source_stats(x, d->next, u.st, DUMP_CHUNK);
			esize = state ? sizeof(u.ss[0]) : sizeof(u.st[0]);
			etype = state ? IRQD_MSG_SOURCE_STATE : IRQD_MSG_SOURCE_STATS;
		} else {
			n = state ? irqd_xics_dump_icps(x, d->next, u.is, DUMP_CHUNK)
				  : irqd_xics_server_stats(x, d->next, u.sv, DUMP_CHUNK);
			esize = state ? sizeof(u.is[0]) : sizeof(u.sv[0]);
			etype = state ? IRQD_MSG_ICP_STATE : IRQD_MSG_SERVER_STATS;
		}
		if (!d->intr && irqd_xics_generation(x) != d->gen0)
			d->intr = 1;
		if (n == 0) {
			d->phase++;
			d->next = 0;
			continue;
		}
		for (i = 0; i < n; i++) {
			uint8_t *ent = (uint8_t *)&u + (size_t)i * esize;
			memcpy(ent, &handle, 4);   /* every dump struct starts with u32 handle, then irq/server */
			irqd_wire_put(o, req, (uint16_t)etype,
				      IRQD_NLM_F_MULTI | (d->intr ? IRQD_NLM_F_DUMP_INTR : 0), ent, esize);
		}
		memcpy(&last, (uint8_t *)&u + (size_t)(n - 1) * esize + 4, 4);
		if (last == UINT32_MAX) {
			d->phase++;
			d->next = 0;
		} else {
			d->next = last + 1;
		}
	}
	if (!room(o, IRQD_WIRE_REPLY_MAX))
		return 1;
	if (!d->intr && irqd_xics_generation(x) != d->gen0)
		d->intr = 1;
	irqd_wire_put_done(o, req, d->intr ? IRQD_NLM_F_DUMP_INTR : 0);
	return 0;
}
