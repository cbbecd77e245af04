/* SPDX-License-Identifier: MIT */
/*
 * irqd core: the XICS interrupt controller of Linux KVM (book3s_xics.c),
 * over the kernel's 64-bit source and ICP state words.
 *
 * Semantics: ../shared/xics-semantics.md (section numbers cited as S3.7 etc.).
 * Every function returns 0 or a negative Linux errno (as KVM does) unless
 * stated otherwise; a failing call changes nothing.  H_* and RTAS statuses are
 * results, not failures: they come back in reg[0] / buf[nargs] with return 0.
 *
 * Thread safety: every function may be called from several threads at once on
 * the same device (cffi releases the GIL), except irqd_xics_free(), which the
 * caller must serialise against all other use, and irqd_xics_import_*(),
 * which are for a fresh device nobody else uses yet.
 *
 * The block between the IRQD-CDEF markers is parsed by cffi's cdef().
 */
#ifndef IRQD_CORE_XICS_H
#define IRQD_CORE_XICS_H

#include <stdint.h>
#include <stddef.h>
#include "irqd/abi.h"

/* IRQD-CDEF-BEGIN */

struct irqd_xics;

/* Complete internal state of one source entry, for restart (abi.md S6). */
struct irqd_xics_raw_source {
	uint32_t irq;
	uint32_t server;
	uint8_t priority;
	uint8_t saved_priority;
	uint8_t pq;             /* IRQD_PQ_PRESENTED | IRQD_PQ_QUEUED */
	uint8_t lsi;
	uint8_t exists;
	uint8_t resend;
	uint8_t masked_pending;
	uint8_t resample;       /* irqfd RESAMPLE registered for this number */
	uint32_t triggers;
	uint32_t deliveries;
};

/* Complete internal state of one ICP, for restart (abi.md S6). */
struct irqd_xics_raw_icp {
	uint32_t server;
	uint8_t cppr;
	uint8_t mfrr;
	uint8_t pending_pri;
	uint8_t need_resend;
	uint32_t xisr;
	uint8_t out_ee;
	uint8_t pad[3];
	uint64_t resend_map[16];
	uint64_t rises;         /* 0 -> 1 transitions of out_ee since creation */
	uint32_t deliveries;
	uint32_t rejects;
	uint32_t resends;
	uint32_t ipis;
};

/* Device lifetime.  new() returns NULL only when allocation fails. */
struct irqd_xics *irqd_xics_new(void);
void irqd_xics_free(struct irqd_xics *x);

/* S3.3 CREATE_ICS: flags IRQD_ICS_LEVEL; EINVAL / EEXIST / ENOMEM. */
int irqd_xics_create_ics(struct irqd_xics *x, uint32_t first, uint32_t count, uint32_t flags);
/* S3.2 CONNECT_VCPU: EINVAL (server >= IRQD_MAX_SERVERS), EEXIST, ENOMEM. */
int irqd_xics_connect_vcpu(struct irqd_xics *x, uint32_t server);
/* S3.4 IRQ_LINE: level is one of the five KVM values, else EINVAL. */
int irqd_xics_irq_line(struct irqd_xics *x, uint32_t irq, uint32_t level);
/* S3.4 IRQ_LINE_BATCH: entries applied in order, failures do not stop the
 * rest.  Returns 0 when all succeeded, else the (negative) errno of the first
 * failure, with *nfailed = how many failed and *first_failed = its index.
 * entries may be only 4-byte aligned (it points into a received record). */
int irqd_xics_irq_batch(struct irqd_xics *x, const struct irqd_irq_batch_entry *entries,
			uint32_t count, uint32_t *nfailed, uint32_t *first_failed);

/* S3.13-S3.14 KVM_DEV_XICS_GRP_SOURCES; has() returns 0 or -ENXIO. */
int irqd_xics_get_source(struct irqd_xics *x, uint64_t attr, uint64_t *value);
int irqd_xics_set_source(struct irqd_xics *x, uint64_t attr, uint64_t value);
int irqd_xics_has_source(struct irqd_xics *x, uint64_t attr);

/* S3.15 KVM_REG_PPC_ICP_STATE: ENOENT (unknown server), EINVAL. */
int irqd_xics_get_icp(struct irqd_xics *x, uint32_t server, uint64_t *value);
int irqd_xics_set_icp(struct irqd_xics *x, uint32_t server, uint64_t value);

/* S3.5-S3.10 hcall nr as vCPU `server`.  In: reg[0..3] = r4..r7.  Out (when
 * 0 is returned): reg[0] = H_* status as a signed 64-bit value, reg[1..3] =
 * r4..r6 (0 where the call defines nothing).  -EOPNOTSUPP for another nr
 * (checked first), -ENOENT for a server without ICP. */
int irqd_xics_hcall(struct irqd_xics *x, uint32_t server, uint64_t nr, uint64_t reg[4]);

/* S3.11 RTAS, the PAPR argument buffer: buf[0..nargs-1] in, buf[nargs...]
 * out (status first; on status -3 only buf[nargs] is written).  -EINVAL for
 * an unknown token, nargs + nret > 12 or nargs == 12. */
int irqd_xics_rtas(struct irqd_xics *x, uint32_t token, uint32_t nargs, uint32_t nret,
		   uint32_t buf[12]);

/* ---- observation (LIST_DEVICES, dumps, stats) ---- */
uint64_t irqd_xics_generation(struct irqd_xics *x);     /* grows on every state change */
void irqd_xics_set_generation(struct irqd_xics *x, uint64_t generation);
uint32_t irqd_xics_nr_ics(struct irqd_xics *x);          /* ICS blocks in existence */
uint32_t irqd_xics_nr_sources(struct irqd_xics *x);      /* configured (exists) sources */
uint32_t irqd_xics_nr_servers(struct irqd_xics *x);      /* ICPs */

/* Bulk readers for dumps: fill up to max entries for configured sources with
 * irq >= from_irq (servers >= from_server), ascending; return how many were
 * filled (0 = end).  The handle field is left 0 for the caller to set. */
uint32_t irqd_xics_dump_sources(struct irqd_xics *x, uint32_t from_irq,
				struct irqd_source_state *out, uint32_t max);
uint32_t irqd_xics_dump_icps(struct irqd_xics *x, uint32_t from_server,
			     struct irqd_icp_state *out, uint32_t max);
uint32_t irqd_xics_source_stats(struct irqd_xics *x, uint32_t from_irq,
				struct irqd_source_stats *out, uint32_t max);
uint32_t irqd_xics_server_stats(struct irqd_xics *x, uint32_t from_server,
				struct irqd_server_stats *out, uint32_t max);

/* ---- the vCPU output (S3.16) ---- */
/* Grows by one on every 0 -> 1 transition of any ICP's out_ee. */
uint64_t irqd_xics_output_seq(struct irqd_xics *x);
/* Per-server transitions since CONNECT_VCPU, and the current out_ee (0/1);
 * -ENOENT without ICP. */
int irqd_xics_output_rises(struct irqd_xics *x, uint32_t server, uint64_t *rises);
int irqd_xics_output_asserted(struct irqd_xics *x, uint32_t server);

/* ---- irqfd RESAMPLE (S3.12, decisions.md) ---- */
/* Flag `irq` (16 <= irq < 2^20, need not be configured) for resample.  The
 * core's ics_eoi then, after its redelivery step, resets the line itself
 * (level 0: LSI P := 0, Q := 0; MSI no-op) and records the EOI in a per-ICS
 * "acked" bitmap; the caller drains it after each call and writes the
 * resample eventfds.  EOIs of one irq between two drains coalesce (eventfd
 * semantics).  EINVAL out of range, ENOMEM. */
int irqd_xics_set_resample(struct irqd_xics *x, uint32_t irq, int on);
uint64_t irqd_xics_ack_seq(struct irqd_xics *x);   /* grows on every recorded ack */
/* Move up to max acked irqs into out (ascending), clearing them; returns count. */
uint32_t irqd_xics_drain_acks(struct irqd_xics *x, uint32_t *out, uint32_t max);

/* ---- complete internal state, for restart (abi.md S6) ---- */
/* Every entry of every existing ICS (configured or not: RTAS may have
 * touched unconfigured ones), irq >= from_irq ascending; returns count. */
uint32_t irqd_xics_export_sources(struct irqd_xics *x, uint32_t from_irq,
				  struct irqd_xics_raw_source *out, uint32_t max);
uint32_t irqd_xics_export_icps(struct irqd_xics *x, uint32_t from_server,
			       struct irqd_xics_raw_icp *out, uint32_t max);
/* Import into a fresh device (ICPs first, then sources): no delivery, no
 * validation beyond ranges (EINVAL); ICS blocks are created as needed. */
int irqd_xics_import_icp(struct irqd_xics *x, const struct irqd_xics_raw_icp *icp);
int irqd_xics_import_source(struct irqd_xics *x, const struct irqd_xics_raw_source *src);

/* IRQD-CDEF-END */

#endif /* IRQD_CORE_XICS_H */
