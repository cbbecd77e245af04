/* SPDX-License-Identifier: MIT */
/*
 * irqd C client: talk to the irqd daemon (POWER XICS interrupt controller)
 * over its AF_UNIX SOCK_SEQPACKET socket, one function per operation of the
 * wire ABI (../shared/abi.md, layouts and numbers in irqd/abi.h).
 *
 * Conventions:
 *  - Every function returns 0 or a negative Linux errno: the daemon's verdict
 *    (ERROR -errno), or a local failure (-errno of a failed syscall, -EPROTO
 *    for a reply that does not parse).  The client checks nothing the daemon
 *    checks: a bad irq or level goes to the daemon and comes back as its
 *    errno and extack message.
 *  - irqd_client_last_error() returns the daemon's extack text of the last
 *    failed call ("" when the last call succeeded or failed locally), and
 *    irqd_client_last_offset() the NLMSGERR_ATTR_OFFS byte offset, counted
 *    from the first byte of the request's header (it may point past the
 *    echoed header: a batch entry, an RTAS word).
 *  - H_* and RTAS statuses are results, not failures: irqd_hcall() and
 *    irqd_rtas() return 0 and leave the status in reg[0] / buf[nargs].
 *  - One struct irqd_client is one connection; it is not thread-safe (use
 *    one per thread).  Plain C11 + POSIX; no dependency beyond libc.
 *
 * Implementation: clib/irqd_client.c (compile it with your program, or link
 * the libirqd_client.a that `make c-client` builds).
 *
 * Example:
 *
 *	struct irqd_client c;
 *	uint32_t dev;
 *	if (irqd_client_connect(&c, NULL) < 0) ...;   // $IRQD_SOCKET or default
 *	irqd_create_device(&c, IRQD_KVM_DEV_TYPE_XICS, 0, &dev);
 *	irqd_create_ics(&c, dev, 16, 16, 0);
 *	irqd_connect_vcpu(&c, dev, 0);
 *	int r = irqd_irq_line(&c, dev, 15, IRQD_KVM_INTERRUPT_SET);
 *	// r == -EINVAL, irqd_client_last_error(&c) says why
 *	irqd_client_close(&c);
 */
#ifndef IRQD_CLIENT_H
#define IRQD_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include "irqd/abi.h"

#ifdef __cplusplus
extern "C" {
#endif

#define IRQD_CLIENT_ERRMSG_MAX 256

struct irqd_client {
	int fd;                         /* the SEQPACKET socket, -1 when closed */
	uint32_t seq;                   /* last sequence number used */
	uint32_t max_record;            /* daemon's, from HELLO (IRQD_MAX_RECORD before) */
	uint32_t max_fds;               /* daemon's, from HELLO (16 before) */
	struct irqd_hello hello;        /* the daemon's HELLO reply */
	/* last failure reported by the daemon */
	int last_errno;                 /* positive errno, 0 after a success */
	int has_offset;
	uint32_t last_offset;
	char last_error[IRQD_CLIENT_ERRMSG_MAX];
	/* replies to requests the caller did not wait for (fire-and-forget
	 * messages without ACK that failed): counted, the first one kept */
	uint32_t async_errors;
	int async_errno;
	/* receive buffer: one record, walked message by message */
	uint8_t *rbuf;
	size_t rcap, rlen, rpos;
};

/* ---- connection ---- */

/* Connect to `path`, or $IRQD_SOCKET when path is NULL, or
 * IRQD_DEFAULT_SOCKET; then HELLO (version 1), recording the daemon's
 * limits in c->hello, c->max_record and c->max_fds.  On failure c is left
 * closed (fd -1) and nothing needs freeing. */
int irqd_client_connect(struct irqd_client *c, const char *path);
/* Connect without HELLO (the ABI makes it optional); limits stay the ABI's
 * minimums until irqd_client_hello() is called. */
int irqd_client_connect_nohello(struct irqd_client *c, const char *path);
/* Send HELLO with `features` and fill *out (may be NULL) with the reply. */
int irqd_client_hello(struct irqd_client *c, uint32_t features, struct irqd_hello *out);
void irqd_client_close(struct irqd_client *c);

/* The daemon's extack text of the last failure ("" if none), and its
 * NLMSGERR_ATTR_OFFS: returns 1 and sets *offset when present, else 0. */
const char *irqd_client_last_error(const struct irqd_client *c);
int irqd_client_last_offset(const struct irqd_client *c, uint32_t *offset);

/* ---- devices ---- */

/* CREATE_DEVICE: type IRQD_KVM_DEV_TYPE_XICS (others: -ENODEV); flags
 * IRQD_CREATE_TEST / IRQD_CREATE_PERSIST.  *handle may be NULL. */
int irqd_create_device(struct irqd_client *c, uint32_t type, uint32_t flags, uint32_t *handle);
int irqd_destroy_device(struct irqd_client *c, uint32_t handle);
int irqd_attach(struct irqd_client *c, uint32_t handle);
/* LIST_DEVICES: up to max entries into out, *count = how many the daemon
 * listed (may exceed max: only the first max are stored). */
int irqd_list_devices(struct irqd_client *c, struct irqd_device_info *out, size_t max, size_t *count);

/* ---- configuration ---- */
int irqd_create_ics(struct irqd_client *c, uint32_t handle, uint32_t first_irq, uint32_t count,
		    uint32_t flags);
int irqd_connect_vcpu(struct irqd_client *c, uint32_t handle, uint32_t server);

/* ---- triggers ---- */

/* IRQ_LINE, acknowledged: returns the daemon's verdict. */
int irqd_irq_line(struct irqd_client *c, uint32_t handle, uint32_t irq, uint32_t level);
/* IRQ_LINE without ACK (fire-and-forget, no reply on success).  A failure
 * comes back later; the next call that reads replies counts it in
 * c->async_errors. */
int irqd_irq_line_noack(struct irqd_client *c, uint32_t handle, uint32_t irq, uint32_t level);
/* One IRQ_LINE_BATCH message, acknowledged.  On failure the daemon names the
 * first failed entry (irqd_client_last_offset) and how many failed. */
int irqd_irq_line_batch(struct irqd_client *c, uint32_t handle,
			const struct irqd_irq_batch_entry *entries, uint32_t count);

/* ---- device attributes (KVM_DEV_XICS_GRP_SOURCES: attr = irq) ---- */
int irqd_set_device_attr(struct irqd_client *c, uint32_t handle, uint32_t group, uint64_t attr,
			 uint64_t value);
int irqd_get_device_attr(struct irqd_client *c, uint32_t handle, uint32_t group, uint64_t attr,
			 uint64_t *value);
int irqd_has_device_attr(struct irqd_client *c, uint32_t handle, uint32_t group, uint64_t attr);

/* ---- ICP registers (id IRQD_KVM_REG_PPC_ICP_STATE) ---- */
int irqd_get_one_reg(struct irqd_client *c, uint32_t handle, uint32_t server, uint64_t id,
		     uint64_t *value);
int irqd_set_one_reg(struct irqd_client *c, uint32_t handle, uint32_t server, uint64_t id,
		     uint64_t value);

/* ---- the guest side ---- */

/* HCALL nr as vCPU `server`: reg[0..3] in = r4..r7; on 0, reg[0] = the H_*
 * status (signed), reg[1..3] = r4..r6. */
int irqd_hcall(struct irqd_client *c, uint32_t handle, uint32_t server, uint64_t nr, uint64_t reg[4]);
/* RTAS token with buf[0..nargs-1] arguments; on 0, buf[nargs..] = returns
 * (the RTAS status first, as a 32-bit word). */
int irqd_rtas(struct irqd_client *c, uint32_t handle, uint32_t token, uint32_t nargs, uint32_t nret,
	      uint32_t buf[IRQD_RTAS_BUF_WORDS]);

/* ---- eventfds (SCM_RIGHTS; the daemon gets its own copies) ---- */

/* IRQFD: assign `fd` (and `resample_fd` with IRQD_IRQFD_RESAMPLE) to gsi;
 * with IRQD_IRQFD_DEASSIGN no fd is sent (pass -1). */
int irqd_irqfd(struct irqd_client *c, uint32_t handle, uint32_t gsi, uint32_t flags, int fd,
	       int resample_fd);
/* SET_OUTPUT: `fd` gets a write of 1 on each rise of server's output;
 * IRQD_OUTPUT_DEASSIGN (fd -1) removes it. */
int irqd_set_output(struct irqd_client *c, uint32_t handle, uint32_t server, uint32_t flags, int fd);

/* ---- dumps (snapshots; retried while the daemon flags NLM_F_DUMP_INTR) ---- */

struct irqd_state_dump {
	struct irqd_source_state *sources;  /* ascending irq */
	size_t nsources;
	struct irqd_icp_state *icps;        /* ascending server */
	size_t nicps;
};

struct irqd_stats_dump {
	struct irqd_source_stats *sources;
	size_t nsources;
	struct irqd_server_stats *servers;
	size_t nservers;
};

/* DUMP_STATE / GET_STATS into malloc'ed arrays (free with the *_free
 * functions, also after a failure).  -EAGAIN if the device kept changing
 * during `retries` + 1 attempts. */
int irqd_dump_state(struct irqd_client *c, uint32_t handle, struct irqd_state_dump *out);
void irqd_state_dump_free(struct irqd_state_dump *d);
int irqd_get_stats(struct irqd_client *c, uint32_t handle, struct irqd_stats_dump *out);
void irqd_stats_dump_free(struct irqd_stats_dump *d);

/* ---- all-or-nothing restore ---- */
int irqd_restore_begin(struct irqd_client *c, uint32_t handle);
int irqd_restore_commit(struct irqd_client *c, uint32_t handle);
int irqd_restore_abort(struct irqd_client *c, uint32_t handle);

/* Restore a dump into `handle` (a fresh device) in abi.md S3.17 order
 * (CONNECT_VCPU every server, SET every source, SET every ICP), all in
 * batched records, inside RESTORE_BEGIN/COMMIT when `atomic` is non-zero. */
int irqd_restore_state(struct irqd_client *c, uint32_t handle, const struct irqd_state_dump *d,
		       int atomic);

/* ---- batches: many messages per record ---- */

/* A batch packs messages back to back into records of at most max_record
 * bytes (and max_fds fds), sending a full record as it goes.  Messages are
 * sent without ACK; irqd_batch_send() ends the last record with a NOOP that
 * asks for an ACK, whose acknowledgement proves every earlier message was
 * handled, so it collects exactly the failures of this batch. */
struct irqd_batch {
	struct irqd_client *c;
	uint8_t *buf;
	size_t len, cap;
	int fds[IRQD_MAX_FDS];
	unsigned nfds;
	uint32_t nmsgs;                 /* messages added since init */
	uint32_t nfailed;               /* after send: how many failed */
	int first_errno;                /* after send: first failure (positive) */
	int send_error;                 /* sticky local error (negative errno) */
};

int irqd_batch_init(struct irqd_batch *b, struct irqd_client *c);
/* Append any message (payload copied, header built here); fds are sent with
 * the record carrying it.  Returns the message's seq (> 0) or -errno. */
int64_t irqd_batch_add(struct irqd_batch *b, uint16_t type, uint16_t flags, const void *payload,
		       size_t len, const int *fds, unsigned nfds);
int irqd_batch_irq_line(struct irqd_batch *b, uint32_t handle, uint32_t irq, uint32_t level);
/* Append one IRQ_LINE_BATCH message with `count` entries. */
int irqd_batch_irq_lines(struct irqd_batch *b, uint32_t handle,
			 const struct irqd_irq_batch_entry *entries, uint32_t count);
/* Send what is left, wait for the barrier; returns 0 if every message
 * succeeded, else the first failure's -errno (b->nfailed counts them,
 * irqd_client_last_error() has the first one's text). */
int irqd_batch_send(struct irqd_batch *b);
/* Send what is left without waiting (fire-and-forget). */
int irqd_batch_flush(struct irqd_batch *b);
void irqd_batch_free(struct irqd_batch *b);

/* ---- raw access (tests, tools) ---- */

/* Next sequence number for a hand-built message. */
uint32_t irqd_client_next_seq(struct irqd_client *c);
/* Send one record as is (len > 0), with nfds fds. */
int irqd_client_send_raw(struct irqd_client *c, const void *rec, size_t len, const int *fds,
			 unsigned nfds);
/* Send one message (header built here from type, flags, seq). */
int irqd_client_send_msg(struct irqd_client *c, uint16_t type, uint16_t flags, uint32_t seq,
			 const void *payload, size_t len, const int *fds, unsigned nfds);
/* The next received message, waiting for a record if none is left:
 * *hdr = its header, *payload points into the client's buffer (valid until
 * the next receive), *plen its length.  Returns 0 or -errno (-EPROTO for a
 * malformed record, -ECONNRESET at EOF). */
int irqd_client_recv_msg(struct irqd_client *c, struct irqd_msghdr *hdr, const uint8_t **payload,
			 size_t *plen);
/* Receive messages until the reply to `seq`: a message of type
 * `reply_type` (payload copied into reply, up to reply_len bytes; returns 0)
 * or an ERROR (returns its error, recording its extack).  Other seqs'
 * ERRORs are counted as async errors. */
int irqd_client_wait(struct irqd_client *c, uint32_t seq, uint16_t reply_type, void *reply,
		     size_t reply_len);

/* Parse an ERROR message payload: *error = its error (0 or -errno),
 * *echo = the echoed request header; text/offset from the extack attributes
 * (text NULL / *has_offset 0 when absent).  Returns 0, or -EPROTO if the
 * payload is malformed. */
int irqd_parse_error(uint16_t flags, const uint8_t *payload, size_t plen, int32_t *error,
		     struct irqd_msghdr *echo, const char **text, size_t *text_len,
		     uint32_t *offset, int *has_offset);

/* ==== BEGIN ring: shared-memory trigger ring (abi.h 0x40 RING_SETUP) ====
 * irqd_client_ring_open() creates a sealed memfd of 1 << entries_log2
 * entries, maps and formats it, creates the doorbell eventfd and sends
 * RING_SETUP with both (acknowledged).  Then post without a syscall with
 * irqd_ring_post1(r.mem, r.doorbell, irq, level) / irqd_ring_post_many()
 * (include/irqd/ring_producer.h; single producer per ring: serialise the
 * calls).  -EAGAIN from irqd_ring_post1 = ring full (retry later).  The
 * header's `applied` / `errors` counters say what the daemon made of the
 * triggers.  irqd_client_ring_close() sends DEASSIGN (if c is not NULL) and
 * unmaps / closes everything.  Both return 0 or -errno. */
struct irqd_client_ring {
	void *mem;                  /* struct irqd_ring_hdr, then the entries */
	size_t size;
	int memfd;
	int doorbell;
	uint32_t handle;
	uint32_t entries;
};

int irqd_client_ring_open(struct irqd_client *c, uint32_t handle, uint32_t entries_log2,
			  struct irqd_client_ring *r);
int irqd_client_ring_close(struct irqd_client *c, struct irqd_client_ring *r);
/* ==== END ring ==== */

#ifdef __cplusplus
}
#endif

#endif /* IRQD_CLIENT_H */
