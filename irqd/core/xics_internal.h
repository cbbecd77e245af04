/* SPDX-License-Identifier: MIT */
/*
 * irqd core internals: the data layout shared by ics.c, icp.c and xics.c.
 * Read side by side with the kernel's arch/powerpc/kvm/book3s_xics.h.
 *
 * LOCKING (the kernel's book3s_xics.c discipline, xics-semantics.md S1.6):
 *
 *  - x->lock (device mutex, the kernel's kvm->lock) serialises creation:
 *    of ICS blocks, of ICPs, of resample maps, and every transition of a
 *    source's EXISTS bit from 0 to 1 (so CREATE_ICS can check a range for
 *    EEXIST and configure it atomically).  A new block is fully initialised,
 *    then its pointer is published with a release store; readers use
 *    acquire loads and never lock.  Nothing is freed before the device.
 *  - ics->lock (one per ICS, a small test-and-test-and-set spin lock as the
 *    kernel's arch_spin_lock; it yields the CPU if the holder was
 *    preempted) protects every field of its source words except pq, and
 *    serialises deliveries of one interrupt (so the source's deliveries
 *    counter, only incremented under it, needs no atomic RMW).  It is taken after
 *    x->lock when both are needed, never two at once, and dropped before a
 *    rejection is followed into another source.
 *  - pq is changed by its own CAS on the source word, without ics->lock
 *    (IRQ_LINE, EOI).  Therefore writers under ics->lock also change the
 *    word with CAS loops (src_update), so they never undo a concurrent pq
 *    change.
 *    Source words are stored in 32 bits (src_pack); src_load / src_cas /
 *    src_xchg convert, and the trigger and EOI loops, which change only pq,
 *    CAS the stored form directly.  A server too big for the stored word
 *    is in the block's srv_ext, written under ics->lock before the word
 *    that refers to it; the array is published once with a CAS and freed
 *    with its block.
 *  - An ICP is one _Atomic uint64_t word changed only by icp_try_update()
 *    (a single CAS that also computes out_ee); no lock protects it.  An ICP
 *    CAS may happen with one ICS lock held.
 *  - Counters are relaxed atomics; they are statistics, not state used for
 *    decisions (except rises / output_seq / ack_seq which callers poll to
 *    learn that something happened: those are incremented after the CAS
 *    that made it happen).
 *  - generation is bumped once per public operation that changed (or may
 *    have changed) something, at its end, never by a failing call: not in
 *    every primitive, to keep the trigger -> H_XIRR -> H_EOI cycle cheap.
 *
 * INVARIANTS (S1.5):
 *  - I1 out_ee == (xisr != 0 && pending_pri < cppr) after every transaction
 *    (enforced by icp_try_update, the only writer of ICP words besides
 *    import into a fresh device).
 *  - I3 a source's RESEND implies its ICS bit in the resend_map of the ICP
 *    it failed on and that ICP's need_resend was set by the failure.
 *  - A failing call changes nothing: every public entry point validates
 *    completely before its first store.
 */
#ifndef IRQD_CORE_XICS_INTERNAL_H
#define IRQD_CORE_XICS_INTERNAL_H

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "irqd/abi.h"
#include "irqd/core/xics.h"

#define XICS_ICS_SHIFT   IRQD_KVMPPC_XICS_ICS_SHIFT
#define XICS_PER_ICS     IRQD_KVMPPC_XICS_IRQ_PER_ICS
#define XICS_SRC_MASK    IRQD_KVMPPC_XICS_SRC_MASK
#define XICS_NR_ICS      (IRQD_KVMPPC_XICS_MAX_ICS_ID + 1)
#define XICS_FIRST_IRQ   IRQD_KVMPPC_XICS_FIRST_IRQ
#define XICS_NR_IRQS     IRQD_KVMPPC_XICS_NR_IRQS
#define XICS_MASKED      0xFFu
#define XICS_IPI         IRQD_XICS_IPI
#define PQ_PRESENTED     1u
#define PQ_QUEUED        2u
#define RESEND_WORDS     IRQD_ICP_RESEND_MAP_SIZE

/*
 * Source word, logical form (struct ics_irq_state in 64 bits), the form
 * every function here works on:
 *   0-31 server, 32-39 priority, 40-47 saved_priority, 48-49 pq,
 *   50 lsi, 51 exists, 52 resend, 53 masked_pending.
 * `number` is implicit (icsid << 10 | index).
 */
#define SRC_PRIO_SHIFT   32
#define SRC_SAVED_SHIFT  40
#define SRC_PQ_SHIFT     48
#define SRC_SERVER_MASK  0xFFFFFFFFull
#define SRC_PRIO_MASK    (0xFFull << SRC_PRIO_SHIFT)
#define SRC_SAVED_MASK   (0xFFull << SRC_SAVED_SHIFT)
#define SRC_PQ_MASK      (3ull << SRC_PQ_SHIFT)
#define SRC_LSI          (1ull << 50)
#define SRC_EXISTS       (1ull << 51)
#define SRC_RESEND       (1ull << 52)
#define SRC_MASKED_PEND  (1ull << 53)
/* a new ICS entry: server 0, priority and saved priority 0xFF, rest 0 */
#define SRC_INITIAL      ((0xFFull << SRC_PRIO_SHIFT) | (0xFFull << SRC_SAVED_SHIFT))

static inline uint32_t src_server(uint64_t w) { return (uint32_t)(w & SRC_SERVER_MASK); }
static inline uint8_t src_prio(uint64_t w) { return (uint8_t)(w >> SRC_PRIO_SHIFT); }
static inline uint8_t src_saved(uint64_t w) { return (uint8_t)(w >> SRC_SAVED_SHIFT); }
static inline unsigned src_pq(uint64_t w) { return (unsigned)((w >> SRC_PQ_SHIFT) & 3u); }
static inline uint64_t src_with_pq(uint64_t w, unsigned pq)
{
	return (w & ~SRC_PQ_MASK) | ((uint64_t)(pq & 3u) << SRC_PQ_SHIFT);
}

/*
 * Stored form: 32 bits, so that a source with its two GET_STATS counters
 * takes 12 bytes (decisions.md budget: 16 B per source, counters included;
 * 16 B entries plus each block's allocation overhead came to 16.02 B).
 *   0-7 pri, 8 masked, 9-10 pq, 11 lsi, 12 exists, 13 resend,
 *   14 masked_pending, 15-31 server (SRV_ESC: in the block's srv_ext).
 * priority and saved_priority share one field: every writer (write_xive,
 * SET of GRP_SOURCES, CREATE_ICS) leaves saved == priority unless priority
 * is MASKED, as in the kernel, so "masked" + pri keeps both.  Import checks
 * a restart record for it (EINVAL otherwise).  Servers of unmasked sources
 * are ICPs (< IRQD_MAX_SERVERS); only a masked one set through GRP_SOURCES
 * can name any u32, and one >= SRV_ESC lives in a per-block side array,
 * allocated the first time (src_ext_alloc, before the call changes anything).
 */
#define P_PRI_MASK       0xFFu
#define P_MASKED         (1u << 8)
#define P_FLAGS_SHIFT    9            /* pq and the four flags, logical bits 48-53 */
#define P_SERVER_SHIFT   15
#define SRV_ESC          0x1FFFFu     /* 17 bits; this value: see srv_ext */
/* the stored form's pq, lsi and exists, for the trigger and EOI CAS loops,
 * which change pq only and so need no conversion */
#define P_PQ_SHIFT       P_FLAGS_SHIFT
#define P_PQ_MASK        (3u << P_PQ_SHIFT)
#define P_LSI            ((uint32_t)(SRC_LSI >> SRC_PQ_SHIFT) << P_FLAGS_SHIFT)
#define P_EXISTS         ((uint32_t)(SRC_EXISTS >> SRC_PQ_SHIFT) << P_FLAGS_SHIFT)
_Static_assert(P_LSI == 1u << 11 && P_EXISTS == 1u << 12, "stored flag bits");

static inline unsigned p_pq(uint32_t p) { return (p >> P_PQ_SHIFT) & 3u; }
static inline uint32_t p_with_pq(uint32_t p, unsigned pq)
{
	return (p & ~P_PQ_MASK) | (uint32_t)(pq & 3u) << P_PQ_SHIFT;
}

static inline uint32_t src_pack(uint64_t w)
{
	uint32_t server = src_server(w);
	uint32_t p = src_prio(w) == XICS_MASKED ? P_MASKED | src_saved(w) : src_prio(w);

	p |= (uint32_t)((w >> SRC_PQ_SHIFT) & 0x3Fu) << P_FLAGS_SHIFT;
	p |= (server >= SRV_ESC ? SRV_ESC : server) << P_SERVER_SHIFT;
	return p;
}

/* 12 bytes per source (decisions.md memory budget: 16 B, counters included). */
struct ics_src {
	_Atomic uint32_t state;     /* stored form: src_load / src_cas / src_xchg */
	_Atomic uint32_t triggers;
	_Atomic uint32_t deliveries;
};

_Static_assert(sizeof(struct ics_src) == 12, "12 bytes per source, counters included");

struct ics {
	_Atomic int lock;
	uint32_t icsid;
	/* servers >= SRV_ESC, by index; NULL until the first such one.  An
	 * entry is written under lock, before the word that points to it. */
	_Atomic(_Atomic uint32_t *) srv_ext;
	struct ics_src src[XICS_PER_ICS];
};

/*
 * ICP word (union kvmppc_icp_state):
 *   0-7 cppr, 8-15 mfrr, 16-23 pending_pri, 24-47 xisr,
 *   48 need_resend, 49 out_ee.
 */
struct icp_state {
	uint8_t cppr;
	uint8_t mfrr;
	uint8_t pending_pri;
	uint32_t xisr;
	bool need_resend;
	bool out_ee;
};

static inline struct icp_state icp_unpack(uint64_t w)
{
	struct icp_state s;
	s.cppr = (uint8_t)w;
	s.mfrr = (uint8_t)(w >> 8);
	s.pending_pri = (uint8_t)(w >> 16);
	s.xisr = (uint32_t)((w >> 24) & 0xFFFFFFu);
	s.need_resend = (w >> 48) & 1u;
	s.out_ee = (w >> 49) & 1u;
	return s;
}

static inline uint64_t icp_pack(struct icp_state s)
{
	return (uint64_t)s.cppr | (uint64_t)s.mfrr << 8 | (uint64_t)s.pending_pri << 16 |
	       (uint64_t)(s.xisr & 0xFFFFFFu) << 24 | (uint64_t)s.need_resend << 48 |
	       (uint64_t)s.out_ee << 49;
}

/*
 * Field access on the packed word itself.  The hot paths use these rather
 * than struct icp_state: building a struct byte by byte and reading it back
 * as one 64-bit value defeats store-to-load forwarding (measured: ~40% of a
 * trigger -> H_XIRR -> H_EOI cycle).
 */
#define ICP_NEED_RESEND  (1ull << 48)
#define ICP_OUT_EE       (1ull << 49)
static inline uint8_t icp_cppr(uint64_t w) { return (uint8_t)w; }
static inline uint8_t icp_mfrr(uint64_t w) { return (uint8_t)(w >> 8); }
static inline uint8_t icp_ppri(uint64_t w) { return (uint8_t)(w >> 16); }
static inline uint32_t icp_xisr(uint64_t w) { return (uint32_t)(w >> 24) & 0xFFFFFFu; }
static inline uint64_t icp_with_cppr(uint64_t w, uint8_t v) { return (w & ~0xFFull) | v; }
static inline uint64_t icp_with_mfrr(uint64_t w, uint8_t v) { return (w & ~(0xFFull << 8)) | (uint64_t)v << 8; }
static inline uint64_t icp_with_ppri(uint64_t w, uint8_t v) { return (w & ~(0xFFull << 16)) | (uint64_t)v << 16; }
static inline uint64_t icp_with_xisr(uint64_t w, uint32_t v)
{
	return (w & ~(0xFFFFFFull << 24)) | (uint64_t)(v & 0xFFFFFFu) << 24;
}

/* a fresh ICP: CPPR 0, MFRR 0xFF, pending_pri 0xFF, no XISR */
#define ICP_INITIAL ((uint64_t)0xFF << 8 | (uint64_t)0xFF << 16)

struct icp {
	_Atomic uint64_t word;
	uint32_t server;
	_Atomic uint64_t resend_map[RESEND_WORDS];
	_Atomic uint64_t rises;
	_Atomic uint32_t deliveries;
	_Atomic uint32_t rejects;
	_Atomic uint32_t resends;
	_Atomic uint32_t ipis;
};

/* irqfd RESAMPLE registration and pending acks of one ICS id */
struct rs_map {
	_Atomic uint64_t resample[XICS_PER_ICS / 64];
	_Atomic uint64_t acked[XICS_PER_ICS / 64];
};

struct irqd_xics {
	pthread_mutex_t lock;
	_Atomic(struct ics *) ics[XICS_NR_ICS];
	_Atomic uint32_t max_icsid;
	_Atomic(struct icp *) icps[IRQD_MAX_SERVERS];
	_Atomic(struct rs_map *) rs[XICS_NR_ICS];
	_Atomic uint64_t generation;
	_Atomic uint64_t output_seq;
	_Atomic uint64_t ack_seq;
	_Atomic uint32_t nr_ics;
	_Atomic uint32_t nr_sources;
	_Atomic uint32_t nr_servers;
};

/* ---- shared helpers ---- */

#define RELAXED memory_order_relaxed

static inline void gen_bump(struct irqd_xics *x)
{
	atomic_fetch_add_explicit(&x->generation, 1, RELAXED);
}

static inline void stat_inc(_Atomic uint32_t *c)
{
	atomic_fetch_add_explicit(c, 1, RELAXED);
}

static inline struct ics *ics_find(struct irqd_xics *x, uint32_t irq)
{
	uint32_t icsid = irq >> XICS_ICS_SHIFT;

	if (icsid >= XICS_NR_ICS)
		return NULL;
	return atomic_load_explicit(&x->ics[icsid], memory_order_acquire);
}

static inline struct icp *icp_find(struct irqd_xics *x, uint32_t server)
{
	if (server >= IRQD_MAX_SERVERS)
		return NULL;
	return atomic_load_explicit(&x->icps[server], memory_order_acquire);
}

/*
 * The ICS lock is held for a few CASes only, as the kernel's spin lock: a
 * mutex's futex hand-off to a waiter on another CPU costs tens of
 * microseconds on a VM (a cross-CPU wakeup is an IPI through the host), and
 * its unlock is one more atomic RMW on the trigger path.
 */
static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

static inline void ics_lock(struct ics *ics)
{
	for (;;) {
		if (!atomic_exchange_explicit(&ics->lock, 1, memory_order_acquire))
			return;
		for (unsigned i = 0; atomic_load_explicit(&ics->lock, memory_order_relaxed); i++) {
			if (i < 256)
				cpu_relax();
			else
				sched_yield();  /* the holder was probably preempted */
		}
	}
}

static inline void ics_unlock(struct ics *ics)
{
	atomic_store_explicit(&ics->lock, 0, memory_order_release);
}

/* ---- source words: stored <-> logical form (see src_pack) ---- */

static inline uint64_t src_unpack(const struct ics *ics, const struct ics_src *s, uint32_t p)
{
	uint64_t pri = p & P_PRI_MASK, server = p >> P_SERVER_SHIFT;

	if (server == SRV_ESC) {
		/* a lock-free reader racing with a SET of another such server
		 * may pair it with the other fields of the previous word */
		_Atomic uint32_t *ext = atomic_load_explicit(&ics->srv_ext, memory_order_acquire);
		server = ext ? atomic_load_explicit(&ext[s - ics->src], memory_order_relaxed) : SRV_ESC;
	}
	return server | ((p & P_MASKED) ? (uint64_t)XICS_MASKED : pri) << SRC_PRIO_SHIFT |
	       pri << SRC_SAVED_SHIFT | (uint64_t)((p >> P_FLAGS_SHIFT) & 0x3Fu) << SRC_PQ_SHIFT;
}

static inline uint64_t src_load(const struct ics *ics, struct ics_src *s, memory_order mo)
{
	return src_unpack(ics, s, atomic_load_explicit(&s->state, mo));
}

/* CAS on the logical form: *old must be what src_load gave (or the last
 * failed src_cas left), which packs back to the stored word exactly. */
static inline bool src_cas(const struct ics *ics, struct ics_src *s, uint64_t *old, uint64_t new)
{
	uint32_t po = src_pack(*old);

	if (atomic_compare_exchange_weak(&s->state, &po, src_pack(new)))
		return true;
	*old = src_unpack(ics, s, po);
	return false;
}

/* Before a call changes anything: the srv_ext array a word with this
 * server will need in block ics (NULL: not created yet), or NULL when it
 * needs none or the block has one.  *err = -ENOMEM when it cannot be had. */
_Atomic uint32_t *src_ext_alloc(struct ics *ics, uint32_t server, int *err);
/* Give the block the array from src_ext_alloc (NULL: nothing to do). */
void src_ext_install(struct ics *ics, _Atomic uint32_t *ext);

/* Under ics->lock: replace the whole word (its srv_ext installed). */
static inline uint64_t src_xchg(struct ics *ics, struct ics_src *s, uint64_t w)
{
	if (src_server(w) >= SRV_ESC)
		atomic_store_explicit(&atomic_load(&ics->srv_ext)[s - ics->src], src_server(w),
				      memory_order_relaxed);
	return src_unpack(ics, s, atomic_exchange(&s->state, src_pack(w)));
}

/*
 * Change the non-pq fields of a source word under ics->lock: keep whatever
 * pq a concurrent IRQ_LINE / EOI CAS has put there.  `clear` and `set` must
 * not contain pq bits.  Returns the word before the change.
 */
static inline uint64_t src_update(const struct ics *ics, struct ics_src *s, uint64_t clear, uint64_t set)
{
	uint64_t old = src_load(ics, s, RELAXED), new;

	do {
		new = (old & ~clear) | set;
		if (new == old)
			return old;
	} while (!src_cas(ics, s, &old, new));
	return old;
}

/* xics.c */
struct ics *xics_ics_alloc(uint32_t icsid);               /* initialised, unpublished */
void xics_ics_destroy(struct ics *ics);                   /* NULL ok */
void xics_ics_publish(struct irqd_xics *x, struct ics *ics); /* x->lock held */
struct ics *xics_get_or_create_ics(struct irqd_xics *x, uint32_t icsid); /* x->lock held */
struct rs_map *xics_rs_map(struct irqd_xics *x, uint32_t icsid, bool create);
void xics_record_ack(struct irqd_xics *x, uint32_t irq);

/* icp.c */
void icp_deliver_irq(struct irqd_xics *x, struct icp *icp, uint32_t irq, bool check_resend);
void icp_check_resend(struct irqd_xics *x, struct icp *icp);

/* ics.c */
int ics_deliver_irq(struct irqd_xics *x, uint32_t irq, uint32_t level);
int ics_eoi(struct irqd_xics *x, struct icp *icp, uint32_t irq);
uint64_t ics_get_word(uint64_t w);                        /* GET_DEVICE_ATTR word */

#endif /* IRQD_CORE_XICS_INTERNAL_H */
