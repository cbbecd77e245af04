/* SPDX-License-Identifier: MIT */
/*
 * irqd wire dispatcher: parses a received record (abi.md sections 2-3),
 * runs every check of abi.md's table in order, executes the operations that
 * touch only core state (IRQ_LINE, IRQ_LINE_BATCH, *_DEVICE_ATTR, CREATE_ICS,
 * CONNECT_VCPU, *_ONE_REG, HCALL, RTAS, NOOP) and writes their replies, so a
 * record full of triggers crosses from Python into C once.  Messages that need
 * the daemon's own state (HELLO, CREATE/DESTROY/ATTACH, LIST_DEVICES, IRQFD,
 * SET_OUTPUT, dumps, RESTORE_*, staged restore SETs) are fully validated here
 * (framing, flags, type, size, reserved fields, handle, owner, busy) and then
 * handed back (IRQD_WIRE_PYTHON) with *pos at the message.
 *
 * Replies are written into a struct irqd_wire_out as complete records of at
 * most IRQD_MAX_RECORD bytes (ends[] lists where each record ends); an ERROR
 * or DONE always closes its record (abi.md section 3).
 *
 * Not thread safe: one dispatcher thread owns the registry and out buffers.
 *
 * Choices where abi.md is silent:
 *  - types below 0x10 (NOOP, and ERROR/DONE/0x04-0x0F sent as requests) are
 *    netlink control messages: ignored, acknowledged if NLM_F_ACK is set.
 *  - the reply-only types 0x23, 0x24, 0x26 are unknown as requests (EOPNOTSUPP).
 *  - an fd-taking message whose payload is too short to read its flags takes
 *    no fd (it fails EINVAL anyway).
 *  - the per-uid source limit counts ICS capacity (1024 per ICS block in
 *    existence), since an ICS block costs its memory whatever is configured.
 */
#ifndef IRQD_CORE_WIRE_H
#define IRQD_CORE_WIRE_H

#include <stdint.h>
#include "irqd/abi.h"
#include "irqd/core/xics.h"

/* IRQD-CDEF-BEGIN */

#define IRQD_WIRE_DONE          0   /* the record is finished */
#define IRQD_WIRE_PYTHON        1   /* *pos is at a valid message for the daemon */
#define IRQD_WIRE_FULL          2   /* out has no room for the next reply: drain it, call again */
#define IRQD_WIRE_TRUNCATED     1   /* run() flag: the record arrived truncated (MSG_TRUNC) */
#define IRQD_WIRE_NOTIFY_MAX    64
#define IRQD_WIRE_MSG_MAX       256
#define IRQD_WIRE_REPLY_MAX     1024 /* worst-case bytes of the replies to one message */

struct irqd_registry;

struct irqd_wire_out {
	uint8_t *buf;
	uint32_t cap;
	uint32_t len;               /* bytes in buf */
	uint32_t rec_start;         /* start of the record being built (open record) */
	uint32_t *ends;             /* end offsets of the complete records */
	uint32_t max_ends;
	uint32_t n_ends;
	/* devices whose output or resample state changed while running */
	uint32_t notify[64];
	uint32_t n_notify;
	uint32_t notify_overflow;
	/* failures answered, and the last one, for the daemon's log */
	uint32_t n_errors;
	int32_t last_error;
	char last_msg[256];
};

struct irqd_wire_conn {
	uint32_t uid;               /* SO_PEERCRED uid of the peer */
	uint32_t pad;
	uint64_t conn_id;           /* the daemon's connection id (restore staging) */
	uint32_t fd_index;          /* in/out: fds of the record consumed by earlier fd-taking messages */
	uint32_t pad2;
};

struct irqd_wire_dump {
	uint32_t kind;              /* IRQD_MSG_DUMP_STATE or IRQD_MSG_GET_STATS */
	uint32_t phase;             /* 0 sources, 1 servers, 2 done */
	uint32_t next;              /* next irq / server to emit */
	uint32_t intr;              /* NLM_F_DUMP_INTR from now on */
	uint64_t gen0;              /* device generation when the dump began */
};

/* ---- handle table ---- */
struct irqd_registry *irqd_registry_new(void);
void irqd_registry_free(struct irqd_registry *r);     /* frees no device */
void irqd_registry_set_limits(struct irqd_registry *r, uint64_t max_sources_per_uid);
int irqd_registry_add(struct irqd_registry *r, uint32_t handle, struct irqd_xics *x, uint32_t owner_uid);
int irqd_registry_remove(struct irqd_registry *r, uint32_t handle);
struct irqd_xics *irqd_registry_get(struct irqd_registry *r, uint32_t handle);
/* Put x in place of the handle's device (restore commit); returns the old one. */
struct irqd_xics *irqd_registry_replace(struct irqd_registry *r, uint32_t handle, struct irqd_xics *x);
/* Mark a device as being restored by conn_id (0: not busy). */
int irqd_registry_set_busy(struct irqd_registry *r, uint32_t handle, uint64_t conn_id);
/* ICS capacity (1024 per ICS block) used by uid's devices. */
uint64_t irqd_registry_capacity(struct irqd_registry *r, uint32_t uid);

/* ---- the dispatcher ---- */
int irqd_wire_run(struct irqd_registry *r, struct irqd_wire_conn *c, const uint8_t *rec,
		  uint32_t len, uint32_t flags, uint32_t *pos, struct irqd_wire_out *o);
/* End offset of the message at pos (aligned, bounded by len). */
uint32_t irqd_wire_msg_end(const uint8_t *rec, uint32_t len, uint32_t pos);
/* How many fds the record's messages take (abi.md: by type and flags alone). */
uint32_t irqd_wire_fd_count(const uint8_t *rec, uint32_t len);
/* fds the message at pos takes (0, 1 or 2). */
uint32_t irqd_wire_msg_fds(const uint8_t *rec, uint32_t len, uint32_t pos);

/* ---- reply writers (used by the dispatcher and by the daemon) ---- */
void irqd_wire_out_init(struct irqd_wire_out *o, uint8_t *buf, uint32_t cap, uint32_t *ends, uint32_t max_ends);
/* Close the open record, if it holds anything. */
void irqd_wire_out_flush(struct irqd_wire_out *o);
/* Drop the complete records (the caller has sent them), keep the open one. */
void irqd_wire_out_compact(struct irqd_wire_out *o);
/* A data reply echoing req's seq/pid: 0, or -ENOSPC when out is full. */
int irqd_wire_put(struct irqd_wire_out *o, const struct irqd_msghdr *req, uint16_t type,
		  uint16_t flags, const void *payload, uint32_t plen);
/* ERROR(err) echoing the 16-byte header at reqhdr; msg (failures) and offs
 * (>= 0: NLMSGERR_ATTR_OFFS) as abi.md section 3.  Closes the record. */
int irqd_wire_put_error(struct irqd_wire_out *o, const uint8_t *reqhdr, int32_t err,
			const char *msg, int64_t offs);
/* DONE (NLM_F_MULTI | extra flags), closes the record. */
int irqd_wire_put_done(struct irqd_wire_out *o, const struct irqd_msghdr *req, uint16_t flags);
/* Emit the next messages of a dump of x (NLM_F_MULTI, DUMP_INTR once the
 * generation moved), then DONE.  Returns 1 while more remain (drain out and
 * call again), 0 once DONE is written. */
int irqd_wire_dump_step(struct irqd_xics *x, uint32_t handle, const struct irqd_msghdr *req,
			struct irqd_wire_dump *d, struct irqd_wire_out *o);

/* ---- the event loop's hot path (loop.c) ----
 * The daemon's epoll loop runs in C: a connection in "fast" mode that becomes
 * readable is served right here (recvmsg, irqd_wire_run, send of the reply
 * records), without entering Python.  Everything else comes back as an
 * event: fds Python watches (listener, irqfds, wakeup), and connections whose
 * record needs the daemon (HANDOFF: the record is in the loop's buffer with
 * *pos at the message, and the fds it carried), whose replies could not all
 * be sent (BLOCKED: the rest are complete records in out), which closed
 * (CLOSED), or whose devices' outputs / resamples changed (NOTIFY: out's
 * notify list).  irqd_loop_run returns after the first connection event, so
 * the shared buffers hold at most one connection's data. */
#define IRQD_EV_FD              1
#define IRQD_EV_HANDOFF         2
#define IRQD_EV_BLOCKED         3
#define IRQD_EV_CLOSED          4
#define IRQD_EV_NOTIFY          5
#define IRQD_LOOP_BURST         64  /* records served per connection per wakeup */

struct irqd_loop;

struct irqd_loop_event {
	uint64_t tag;
	uint32_t kind;
	uint32_t events;            /* IRQD_EV_FD: the epoll events */
};

/* What a HANDOFF carries (the record being processed). */
struct irqd_loop_record {
	uint8_t *buf;               /* the loop's receive buffer, IRQD_MAX_RECORD bytes */
	uint32_t len;
	uint32_t flags;             /* IRQD_WIRE_TRUNCATED */
	uint32_t pos;               /* where processing stopped */
	uint32_t nfds;
	int fds[253];
	uint32_t ctrunc;            /* control data was truncated */
	uint32_t pad;
};

struct irqd_loop *irqd_loop_new(void);
void irqd_loop_free(struct irqd_loop *l);
/* Watch fd for Python (events: EPOLLIN/EPOLLOUT bits; 0 stops watching). */
int irqd_loop_watch(struct irqd_loop *l, int fd, uint64_t tag, uint32_t events);
/* A connection: fast = 1 serves EPOLLIN in C with c (which must outlive the
 * registration); fast = 0 reports `events` to Python like irqd_loop_watch. */
int irqd_loop_conn(struct irqd_loop *l, int fd, uint64_t tag, struct irqd_wire_conn *c, int fast,
		   uint32_t events);
int irqd_loop_forget(struct irqd_loop *l, int fd);
/* Wait up to timeout_ms and serve; returns how many events were stored in ev
 * (0 on timeout or a signal), or -errno. */
int irqd_loop_run(struct irqd_loop *l, struct irqd_registry *r, struct irqd_wire_out *o,
		  struct irqd_loop_record *rec, int timeout_ms, struct irqd_loop_event *ev, uint32_t max_ev);

/* IRQD-CDEF-END */

#endif /* IRQD_CORE_WIRE_H */
