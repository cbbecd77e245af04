/* SPDX-License-Identifier: MIT */
/*
 * Device-level part of the XICS core: lifetime, ICS / ICP creation,
 * observation (counts, dumps, stats), irqfd RESAMPLE bookkeeping and the
 * raw export / import used across a daemon restart.
 *
 * LOCKING
 *   x->lock serialises every creation (ICS blocks, ICPs, resample maps) and
 *   the first configuration of a source (see ics.c).  Each new object is
 *   fully initialised before its pointer is published with a release store;
 *   every reader uses an acquire load and no lock.  Objects live until
 *   irqd_xics_free(), which the caller serialises against all other use.
 *   Dumps and stats read words atomically one by one: each word is a
 *   consistent snapshot, the whole dump is not (the daemon compares the
 *   generation before and after to set NLM_F_DUMP_INTR).
 */
#define _POSIX_C_SOURCE 200809L  /* sched_yield, under -std=c11 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "xics_internal.h"

struct irqd_xics *irqd_xics_new(void)
{
	struct irqd_xics *x = calloc(1, sizeof(*x));

	if (!x)
		return NULL;
	if (pthread_mutex_init(&x->lock, NULL)) {
		free(x);
		return NULL;
	}
	return x;
}

void irqd_xics_free(struct irqd_xics *x)
{
	uint32_t i;

	if (!x)
		return;
	for (i = 0; i < XICS_NR_ICS; i++) {
		xics_ics_destroy(atomic_load(&x->ics[i]));
		free(atomic_load(&x->rs[i]));
	}
	for (i = 0; i < IRQD_MAX_SERVERS; i++)
		free(atomic_load(&x->icps[i]));
	pthread_mutex_destroy(&x->lock);
	free(x);
}

/* ---- ICS blocks ---- */

struct ics *xics_ics_alloc(uint32_t icsid)
{
	struct ics *ics = malloc(sizeof(*ics));
	uint32_t i;

	if (!ics)
		return NULL;
	atomic_init(&ics->lock, 0);
	ics->icsid = icsid;
	atomic_init(&ics->srv_ext, NULL);
	for (i = 0; i < XICS_PER_ICS; i++) {
		atomic_init(&ics->src[i].state, src_pack(SRC_INITIAL));
		atomic_init(&ics->src[i].triggers, 0);
		atomic_init(&ics->src[i].deliveries, 0);
	}
	return ics;
}

void xics_ics_destroy(struct ics *ics)
{
	if (ics)
		free((void *)atomic_load(&ics->srv_ext));
	free(ics);
}

_Atomic uint32_t *src_ext_alloc(struct ics *ics, uint32_t server, int *err)
{
	_Atomic uint32_t *ext;

	*err = 0;
	if (server < SRV_ESC || (ics && atomic_load_explicit(&ics->srv_ext, memory_order_acquire)))
		return NULL;
	ext = calloc(XICS_PER_ICS, sizeof(*ext));
	if (!ext)
		*err = -ENOMEM;
	return ext;
}

void src_ext_install(struct ics *ics, _Atomic uint32_t *ext)
{
	_Atomic uint32_t *none = NULL;

	if (ext && !atomic_compare_exchange_strong(&ics->srv_ext, &none, ext))
		free((void *)ext);   /* the block had one, or another writer was first */
}

/* x->lock held: publish a fully initialised block, then raise max_icsid
 * (a resend scan that sees the new max_icsid therefore sees the block) */
void xics_ics_publish(struct irqd_xics *x, struct ics *ics)
{
	atomic_store_explicit(&x->ics[ics->icsid], ics, memory_order_release);
	if (ics->icsid > atomic_load(&x->max_icsid))
		atomic_store_explicit(&x->max_icsid, ics->icsid, memory_order_release);
	atomic_fetch_add(&x->nr_ics, 1);
}

struct ics *xics_get_or_create_ics(struct irqd_xics *x, uint32_t icsid)
{
	struct ics *ics = atomic_load_explicit(&x->ics[icsid], memory_order_acquire);

	if (ics)
		return ics;
	ics = xics_ics_alloc(icsid);
	if (ics)
		xics_ics_publish(x, ics);
	return ics;
}

/* ---- S3.2 CONNECT_VCPU ---- */

int irqd_xics_connect_vcpu(struct irqd_xics *x, uint32_t server)
{
	struct icp *icp;
	uint32_t i;

	if (server >= IRQD_MAX_SERVERS)
		return -EINVAL;  /* irqd's limit, checked first (S3.2) */
	pthread_mutex_lock(&x->lock);
	if (atomic_load(&x->icps[server])) {
		pthread_mutex_unlock(&x->lock);
		return -EEXIST;
	}
	icp = malloc(sizeof(*icp));
	if (!icp) {
		pthread_mutex_unlock(&x->lock);
		return -ENOMEM;
	}
	atomic_init(&icp->word, ICP_INITIAL);
	icp->server = server;
	for (i = 0; i < RESEND_WORDS; i++)
		atomic_init(&icp->resend_map[i], 0);
	atomic_init(&icp->rises, 0);
	atomic_init(&icp->deliveries, 0);
	atomic_init(&icp->rejects, 0);
	atomic_init(&icp->resends, 0);
	atomic_init(&icp->ipis, 0);
	atomic_store_explicit(&x->icps[server], icp, memory_order_release);
	atomic_fetch_add(&x->nr_servers, 1);
	gen_bump(x);
	pthread_mutex_unlock(&x->lock);
	return 0;
}

/* ---- observation ---- */

uint64_t irqd_xics_generation(struct irqd_xics *x)
{
	return atomic_load(&x->generation);
}

void irqd_xics_set_generation(struct irqd_xics *x, uint64_t generation)
{
	atomic_store(&x->generation, generation);
}

uint32_t irqd_xics_nr_ics(struct irqd_xics *x)
{
	return atomic_load(&x->nr_ics);
}

uint32_t irqd_xics_nr_sources(struct irqd_xics *x)
{
	return atomic_load(&x->nr_sources);
}

uint32_t irqd_xics_nr_servers(struct irqd_xics *x)
{
	return atomic_load(&x->nr_servers);
}

/*
 * Walk configured sources with irq >= from ascending; calls fn for each
 * until it has filled max.  Absent ICS blocks are skipped whole.
 */
#define FOR_EACH_SOURCE_FROM(x, from, ics, idx)                                          \
	for (uint32_t icsid_ = (from) >> XICS_ICS_SHIFT; icsid_ < XICS_NR_ICS; icsid_++)   \
		if (((ics) = atomic_load_explicit(&(x)->ics[icsid_], memory_order_acquire))) \
			for ((idx) = (icsid_ == ((from) >> XICS_ICS_SHIFT) ? ((from) & XICS_SRC_MASK) : 0); \
			     (idx) < XICS_PER_ICS; (idx)++)

uint32_t irqd_xics_dump_sources(struct irqd_xics *x, uint32_t from_irq,
				struct irqd_source_state *out, uint32_t max)
{
	struct ics *ics;
	uint32_t idx, n = 0;
	uint64_t w;

	if (from_irq >= XICS_NR_IRQS || !max)
		return 0;
	FOR_EACH_SOURCE_FROM(x, from_irq, ics, idx) {
		w = src_load(ics, &ics->src[idx], memory_order_acquire);
		if (!(w & SRC_EXISTS))
			continue;
		out[n].handle = 0;
		out[n].irq = ics->icsid << XICS_ICS_SHIFT | idx;
		out[n].state = ics_get_word(w);
		if (++n == max)
			return n;
	}
	return n;
}

uint32_t irqd_xics_source_stats(struct irqd_xics *x, uint32_t from_irq,
				struct irqd_source_stats *out, uint32_t max)
{
	struct ics *ics;
	uint32_t idx, n = 0;

	if (from_irq >= XICS_NR_IRQS || !max)
		return 0;
	FOR_EACH_SOURCE_FROM(x, from_irq, ics, idx) {
		struct ics_src *s = &ics->src[idx];

		if (!(src_load(ics, s, RELAXED) & SRC_EXISTS))
			continue;
		out[n].handle = 0;
		out[n].irq = ics->icsid << XICS_ICS_SHIFT | idx;
		out[n].triggers = atomic_load_explicit(&s->triggers, RELAXED);
		out[n].deliveries = atomic_load_explicit(&s->deliveries, RELAXED);
		if (++n == max)
			return n;
	}
	return n;
}

uint32_t irqd_xics_dump_icps(struct irqd_xics *x, uint32_t from_server,
			     struct irqd_icp_state *out, uint32_t max)
{
	uint32_t s, n = 0;
	uint64_t w;

	for (s = from_server; s < IRQD_MAX_SERVERS && n < max; s++) {
		if (irqd_xics_get_icp(x, s, &w))
			continue;
		out[n].handle = 0;
		out[n].server = s;
		out[n].state = w;
		n++;
	}
	return n;
}

uint32_t irqd_xics_server_stats(struct irqd_xics *x, uint32_t from_server,
				struct irqd_server_stats *out, uint32_t max)
{
	uint32_t s, n = 0;
	struct icp *icp;

	for (s = from_server; s < IRQD_MAX_SERVERS && n < max; s++) {
		icp = icp_find(x, s);
		if (!icp)
			continue;
		out[n].handle = 0;
		out[n].server = s;
		out[n].deliveries = atomic_load_explicit(&icp->deliveries, RELAXED);
		out[n].rejects = atomic_load_explicit(&icp->rejects, RELAXED);
		out[n].resends = atomic_load_explicit(&icp->resends, RELAXED);
		out[n].ipis = atomic_load_explicit(&icp->ipis, RELAXED);
		n++;
	}
	return n;
}

/* ---- irqfd RESAMPLE (S3.12, decisions.md) ---- */

/* The resample and acked bitmaps of one ICS id, independent of whether
 * the ICS exists (an irqfd may be registered before its source). */
struct rs_map *xics_rs_map(struct irqd_xics *x, uint32_t icsid, bool create)
{
	struct rs_map *rs = atomic_load_explicit(&x->rs[icsid], memory_order_acquire);

	if (rs || !create)
		return rs;
	pthread_mutex_lock(&x->lock);
	rs = atomic_load(&x->rs[icsid]);
	if (!rs) {
		rs = calloc(1, sizeof(*rs));
		if (rs)
			atomic_store_explicit(&x->rs[icsid], rs, memory_order_release);
	}
	pthread_mutex_unlock(&x->lock);
	return rs;
}

void xics_record_ack(struct irqd_xics *x, uint32_t irq)
{
	struct rs_map *rs = xics_rs_map(x, irq >> XICS_ICS_SHIFT, false);
	uint32_t idx = irq & XICS_SRC_MASK;

	if (!rs)
		return;
	atomic_fetch_or(&rs->acked[idx / 64], 1ull << (idx % 64));
	atomic_fetch_add_explicit(&x->ack_seq, 1, memory_order_release);
}

int irqd_xics_set_resample(struct irqd_xics *x, uint32_t irq, int on)
{
	struct rs_map *rs;
	uint32_t idx = irq & XICS_SRC_MASK;
	uint64_t bit = 1ull << (idx % 64);

	if (irq < XICS_FIRST_IRQ || irq >= XICS_NR_IRQS)
		return -EINVAL;
	rs = xics_rs_map(x, irq >> XICS_ICS_SHIFT, on != 0);
	if (!rs)
		return on ? -ENOMEM : 0;
	if (on)
		atomic_fetch_or(&rs->resample[idx / 64], bit);
	else
		atomic_fetch_and(&rs->resample[idx / 64], ~bit);
	gen_bump(x);
	return 0;
}

uint64_t irqd_xics_ack_seq(struct irqd_xics *x)
{
	return atomic_load_explicit(&x->ack_seq, memory_order_acquire);
}

uint32_t irqd_xics_drain_acks(struct irqd_xics *x, uint32_t *out, uint32_t max)
{
	uint32_t icsid, wi, n = 0;
	struct rs_map *rs;
	uint64_t bits, take;

	for (icsid = 0; icsid < XICS_NR_ICS && n < max; icsid++) {
		rs = atomic_load_explicit(&x->rs[icsid], memory_order_acquire);
		if (!rs)
			continue;
		for (wi = 0; wi < XICS_PER_ICS / 64 && n < max; wi++) {
			bits = atomic_load(&rs->acked[wi]);
			if (!bits)
				continue;
			/* take only as many as fit, lowest first */
			take = 0;
			while (bits && n < max) {
				uint64_t low = bits & -bits;

				take |= low;
				bits &= bits - 1;
				out[n++] = icsid << XICS_ICS_SHIFT | wi * 64 |
					   (uint32_t)__builtin_ctzll(low);
			}
			atomic_fetch_and(&rs->acked[wi], ~take);
		}
	}
	return n;
}

/* ---- complete internal state, for restart (abi.md S6) ---- */

uint32_t irqd_xics_export_sources(struct irqd_xics *x, uint32_t from_irq,
				  struct irqd_xics_raw_source *out, uint32_t max)
{
	struct ics *ics;
	struct rs_map *rs;
	uint32_t idx, n = 0, irq;
	uint64_t w;

	if (from_irq >= XICS_NR_IRQS || !max)
		return 0;
	FOR_EACH_SOURCE_FROM(x, from_irq, ics, idx) {
		struct ics_src *s = &ics->src[idx];

		irq = ics->icsid << XICS_ICS_SHIFT | idx;
		w = src_load(ics, s, memory_order_acquire);
		rs = atomic_load_explicit(&x->rs[ics->icsid], memory_order_acquire);
		memset(&out[n], 0, sizeof(out[n]));
		out[n].irq = irq;
		out[n].server = src_server(w);
		out[n].priority = src_prio(w);
		out[n].saved_priority = src_saved(w);
		out[n].pq = (uint8_t)src_pq(w);
		out[n].lsi = !!(w & SRC_LSI);
		out[n].exists = !!(w & SRC_EXISTS);
		out[n].resend = !!(w & SRC_RESEND);
		out[n].masked_pending = !!(w & SRC_MASKED_PEND);
		out[n].resample = rs && (atomic_load(&rs->resample[idx / 64]) >> (idx % 64) & 1u);
		out[n].triggers = atomic_load_explicit(&s->triggers, RELAXED);
		out[n].deliveries = atomic_load_explicit(&s->deliveries, RELAXED);
		if (++n == max)
			return n;
	}
	return n;
}

uint32_t irqd_xics_export_icps(struct irqd_xics *x, uint32_t from_server,
			       struct irqd_xics_raw_icp *out, uint32_t max)
{
	uint32_t s, i, n = 0;
	struct icp *icp;
	struct icp_state st;

	for (s = from_server; s < IRQD_MAX_SERVERS && n < max; s++) {
		icp = icp_find(x, s);
		if (!icp)
			continue;
		st = icp_unpack(atomic_load(&icp->word));
		memset(&out[n], 0, sizeof(out[n]));
		out[n].server = s;
		out[n].cppr = st.cppr;
		out[n].mfrr = st.mfrr;
		out[n].pending_pri = st.pending_pri;
		out[n].need_resend = st.need_resend;
		out[n].xisr = st.xisr;
		out[n].out_ee = st.out_ee;
		for (i = 0; i < RESEND_WORDS; i++)
			out[n].resend_map[i] = atomic_load(&icp->resend_map[i]);
		out[n].rises = atomic_load(&icp->rises);
		out[n].deliveries = atomic_load_explicit(&icp->deliveries, RELAXED);
		out[n].rejects = atomic_load_explicit(&icp->rejects, RELAXED);
		out[n].resends = atomic_load_explicit(&icp->resends, RELAXED);
		out[n].ipis = atomic_load_explicit(&icp->ipis, RELAXED);
		n++;
	}
	return n;
}

int irqd_xics_import_icp(struct irqd_xics *x, const struct irqd_xics_raw_icp *in)
{
	struct icp_state st;
	struct icp *icp;
	uint32_t i;
	int ret;

	if (in->server >= IRQD_MAX_SERVERS || in->xisr > 0xFFFFFFu || in->need_resend > 1 ||
	    in->out_ee > 1)
		return -EINVAL;
	icp = icp_find(x, in->server);
	if (!icp) {
		ret = irqd_xics_connect_vcpu(x, in->server);
		if (ret && ret != -EEXIST)
			return ret;
		icp = icp_find(x, in->server);
	}
	/* stored as saved: a restart restores the word bit for bit (out_ee
	 * included), without a transaction and so without counting a rise */
	st.cppr = in->cppr;
	st.mfrr = in->mfrr;
	st.pending_pri = in->pending_pri;
	st.xisr = in->xisr;
	st.need_resend = in->need_resend;
	st.out_ee = in->out_ee;
	atomic_store(&icp->word, icp_pack(st));
	for (i = 0; i < RESEND_WORDS; i++)
		atomic_store(&icp->resend_map[i], in->resend_map[i]);
	atomic_store(&icp->rises, in->rises);
	atomic_store(&icp->deliveries, in->deliveries);
	atomic_store(&icp->rejects, in->rejects);
	atomic_store(&icp->resends, in->resends);
	atomic_store(&icp->ipis, in->ipis);
	gen_bump(x);
	return 0;
}

int irqd_xics_import_source(struct irqd_xics *x, const struct irqd_xics_raw_source *in)
{
	uint32_t irq = in->irq, idx = irq & XICS_SRC_MASK;
	struct ics *ics;
	struct ics_src *s;
	struct rs_map *rs = NULL;
	_Atomic uint32_t *ext;
	uint64_t w, old;
	int err;

	if (irq >= XICS_NR_IRQS || in->pq > 3 || in->lsi > 1 || in->exists > 1 ||
	    in->resend > 1 || in->masked_pending > 1 || in->resample > 1)
		return -EINVAL;
	/* a state the core never makes (saved != priority, not masked) */
	if (in->priority != XICS_MASKED && in->saved_priority != in->priority)
		return -EINVAL;
	ext = src_ext_alloc(ics_find(x, irq), in->server, &err);
	if (err)
		return err;
	if (in->resample) {
		rs = xics_rs_map(x, irq >> XICS_ICS_SHIFT, true);
		if (!rs) {
			free((void *)ext);
			return -ENOMEM;
		}
	}
	pthread_mutex_lock(&x->lock);
	ics = xics_get_or_create_ics(x, irq >> XICS_ICS_SHIFT);
	if (!ics) {
		pthread_mutex_unlock(&x->lock);
		free((void *)ext);
		return -ENOMEM;
	}
	src_ext_install(ics, ext);
	s = &ics->src[idx];
	w = in->server | (uint64_t)in->priority << SRC_PRIO_SHIFT |
	    (uint64_t)in->saved_priority << SRC_SAVED_SHIFT;
	w = src_with_pq(w, in->pq);
	if (in->lsi)
		w |= SRC_LSI;
	if (in->exists)
		w |= SRC_EXISTS;
	if (in->resend)
		w |= SRC_RESEND;
	if (in->masked_pending)
		w |= SRC_MASKED_PEND;
	ics_lock(ics);
	old = src_xchg(ics, s, w);
	atomic_store(&s->triggers, in->triggers);
	atomic_store(&s->deliveries, in->deliveries);
	ics_unlock(ics);
	if ((w & SRC_EXISTS) && !(old & SRC_EXISTS))
		atomic_fetch_add(&x->nr_sources, 1);
	else if (!(w & SRC_EXISTS) && (old & SRC_EXISTS))
		atomic_fetch_sub(&x->nr_sources, 1);
	pthread_mutex_unlock(&x->lock);
	if (in->resample)
		atomic_fetch_or(&rs->resample[idx / 64], 1ull << (idx % 64));
	gen_bump(x);
	return 0;
}
