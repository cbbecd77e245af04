/* SPDX-License-Identifier: MIT */
/*
 * ICS side of the XICS core: interrupt sources, their P/Q state, IRQ_LINE,
 * EOI, the source state words (GRP_SOURCES), CREATE_ICS and RTAS.
 * Mirrors book3s_xics.c and book3s_rtas.c; xics-semantics.md S3.3, S3.4,
 * S3.7 (ics_eoi), S3.11-S3.14, S4.
 *
 * LOCKING
 *   pq is changed by its own CAS on the source word without the ICS lock
 *   (ics_deliver_irq, ics_eoi): a trigger costs one CAS plus, when it
 *   presents, the delivery.  Every other field is changed under ics->lock
 *   by src_update() CAS loops that preserve pq.  set_source replaces the
 *   whole word (pq included) under the lock with one exchange, which is
 *   atomic with respect to the pq CASes.  The first configuration of an
 *   entry (EXISTS 0 -> 1) also holds x->lock, so that CREATE_ICS, which
 *   checks its whole range for EEXIST under x->lock, is atomic.  Lock order:
 *   x->lock, then one ics->lock, then ICP CASes.  Deliveries are started
 *   after the locks are dropped (icp_deliver_irq takes the ICS lock itself).
 *
 * ERRORS
 *   Each entry point validates everything it can fail on before its first
 *   store, so a failing call changes nothing (abi.md S3) and never bumps the
 *   generation.
 */
#define _POSIX_C_SOURCE 200809L  /* sched_yield, under -std=c11 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "xics_internal.h"

/* ---- S3.4 IRQ_LINE ---- */

static bool level_valid(uint32_t level)
{
	return level == 0 || level == 1 || level == IRQD_KVM_INTERRUPT_SET ||
	       level == IRQD_KVM_INTERRUPT_UNSET || level == IRQD_KVM_INTERRUPT_SET_LEVEL;
}

/* ics_deliver_irq; level already validated */
int ics_deliver_irq(struct irqd_xics *x, uint32_t irq, uint32_t level)
{
	struct ics *ics = ics_find(x, irq);
	struct ics_src *s;
	uint32_t old, new;      /* stored form: only pq changes here */
	unsigned pq_new;
	bool lsi;

	if (!ics)
		return -EINVAL;
	s = &ics->src[irq & XICS_SRC_MASK];
	old = atomic_load_explicit(&s->state, memory_order_acquire);
	if (!(old & P_EXISTS))
		return -EINVAL;

	/* the source type decides, not the level value */
	level = (level == 1 || level == IRQD_KVM_INTERRUPT_SET ||
		 level == IRQD_KVM_INTERRUPT_SET_LEVEL);
	lsi = old & P_LSI;
	if (!lsi && !level)
		return 0;  /* no-op for an MSI */
	if (level)
		stat_inc(&s->triggers);

	do {
		if (lsi) {
			if (level) {
				if (p_pq(old) & PQ_PRESENTED) {
					/* setting an already set LSI */
					gen_bump(x);  /* the trigger counter moved */
					return 0;
				}
				pq_new = PQ_PRESENTED;  /* Q cleared */
			} else {
				pq_new = 0;  /* P and Q; not masked_pending/resend */
			}
		} else {
			/* old P moves to Q (at most one queued occurrence) */
			pq_new = ((p_pq(old) << 1) & 3u) | PQ_PRESENTED;
		}
		new = p_with_pq(old, pq_new);
	} while (!atomic_compare_exchange_weak(&s->state, &old, new));

	/* P = 1, Q = 0: the only case where a trigger presents */
	if (pq_new == PQ_PRESENTED)
		icp_deliver_irq(x, NULL, irq, false);
	gen_bump(x);
	return 0;
}

int irqd_xics_irq_line(struct irqd_xics *x, uint32_t irq, uint32_t level)
{
	if (!level_valid(level))
		return -EINVAL;  /* irqd refuses what the kernel takes as 1 (S7) */
	return ics_deliver_irq(x, irq, level);
}

int irqd_xics_irq_batch(struct irqd_xics *x, const struct irqd_irq_batch_entry *entries,
			uint32_t count, uint32_t *nfailed, uint32_t *first_failed)
{
	struct irqd_irq_batch_entry e;
	uint32_t i, failed = 0, first = 0;
	int ret, first_ret = 0;

	for (i = 0; i < count; i++) {
		memcpy(&e, &entries[i], sizeof(e));
		ret = irqd_xics_irq_line(x, e.irq, e.level);
		if (ret < 0) {
			if (!failed) {
				first = i;
				first_ret = ret;
			}
			failed++;
		}
	}
	if (nfailed)
		*nfailed = failed;
	if (first_failed)
		*first_failed = first;
	return first_ret;
}

/* ---- S3.7 ics_eoi ---- */

int ics_eoi(struct irqd_xics *x, struct icp *icp, uint32_t irq)
{
	struct ics *ics = ics_find(x, irq);
	struct ics_src *s;
	struct rs_map *rs;
	uint32_t old, new;      /* stored form */
	unsigned pq_new;
	uint32_t idx = irq & XICS_SRC_MASK, icsid = irq >> XICS_ICS_SHIFT;

	if (!ics)
		return IRQD_H_PARAMETER;  /* the Down_CPPR of H_EOI stays */
	s = &ics->src[idx];
	/* s.exists is not checked; stored form: only pq changes */
	old = atomic_load_explicit(&s->state, memory_order_acquire);
	if (old & P_LSI) {
		pq_new = p_pq(old);
	} else {
		do {
			pq_new = p_pq(old) >> 1;  /* Q moves to P */
			new = p_with_pq(old, pq_new);
		} while (!atomic_compare_exchange_weak(&s->state, &old, new));
	}
	if (pq_new & PQ_PRESENTED)
		icp_deliver_irq(x, icp, irq, false);

	/*
	 * Ack notification (kvm_notify_acked_irq): for an irqfd with
	 * RESAMPLE, reset the line (level 0) *after* the redelivery above, so
	 * an LSI still asserted at EOI is presented again first, then
	 * record the ack for the caller, who writes the resample eventfd.
	 */
	rs = xics_rs_map(x, icsid, false);
	if (rs && (atomic_load_explicit(&rs->resample[idx / 64], RELAXED) & (1ull << (idx % 64)))) {
		old = atomic_load_explicit(&s->state, RELAXED);
		if (old & P_LSI) {
			do {
				new = p_with_pq(old, 0);
			} while (!atomic_compare_exchange_weak(&s->state, &old, new));
		}
		xics_record_ack(x, irq);
	}
	return IRQD_H_SUCCESS;
}

/* ---- S3.13-S3.14 KVM_DEV_XICS_GRP_SOURCES ---- */

/* the GET word of one source word (xics_get_source) */
uint64_t ics_get_word(uint64_t w)
{
	uint64_t val = src_server(w);
	uint8_t prio = src_prio(w);
	unsigned pq = src_pq(w);

	if (prio == XICS_MASKED) {
		val |= IRQD_KVM_XICS_MASKED;
		prio = src_saved(w);
	}
	val |= (uint64_t)prio << IRQD_KVM_XICS_PRIORITY_SHIFT;
	if (w & SRC_LSI) {
		val |= IRQD_KVM_XICS_LEVEL_SENSITIVE;
		if (pq & PQ_PRESENTED)
			val |= IRQD_KVM_XICS_PENDING;
	} else if (w & (SRC_MASKED_PEND | SRC_RESEND)) {
		val |= IRQD_KVM_XICS_PENDING;
	}
	if (pq & PQ_PRESENTED)
		val |= IRQD_KVM_XICS_PRESENTED;
	if (pq & PQ_QUEUED)
		val |= IRQD_KVM_XICS_QUEUED;
	return val;
}

int irqd_xics_get_source(struct irqd_xics *x, uint64_t attr, uint64_t *value)
{
	/* the kernel looks the number up as a u32 */
	uint32_t irq = (uint32_t)attr;
	struct ics *ics = ics_find(x, irq);
	uint64_t w;

	if (!ics)
		return -ENOENT;
	/* one atomic load is a consistent snapshot of every field */
	w = src_load(ics, &ics->src[irq & XICS_SRC_MASK], memory_order_acquire);
	if (!(w & SRC_EXISTS))
		return -ENOENT;
	*value = ics_get_word(w);
	return 0;
}

int irqd_xics_has_source(struct irqd_xics *x, uint64_t attr)
{
	(void)x;
	return attr >= XICS_FIRST_IRQ && attr < XICS_NR_IRQS ? 0 : -ENXIO;
}

int irqd_xics_set_source(struct irqd_xics *x, uint64_t attr, uint64_t val)
{
	uint32_t irq, server = (uint32_t)(val & IRQD_KVM_XICS_DESTINATION_MASK);
	uint8_t prio = (uint8_t)(val >> IRQD_KVM_XICS_PRIORITY_SHIFT);
	struct ics *ics;
	struct ics_src *s;
	_Atomic uint32_t *ext;
	uint64_t w, old;
	unsigned pq = 0;
	bool locked_dev = false;
	int err;

	if (attr < XICS_FIRST_IRQ || attr >= XICS_NR_IRQS)
		return -ENOENT;
	irq = (uint32_t)attr;
	/* only a priority field of 0xFF exempts from the server check; the
	 * MASKED bit does not */
	if (prio != XICS_MASKED && !icp_find(x, server))
		return -EINVAL;

	/* the new word; the whole state is replaced, as the kernel does */
	w = server | (uint64_t)prio << SRC_SAVED_SHIFT |
	    (uint64_t)((val & IRQD_KVM_XICS_MASKED) ? XICS_MASKED : prio) << SRC_PRIO_SHIFT |
	    SRC_EXISTS;
	if (val & IRQD_KVM_XICS_LEVEL_SENSITIVE)
		w |= SRC_LSI;
	/* PENDING sets P too (old save formats had no P) */
	if (val & (IRQD_KVM_XICS_PRESENTED | IRQD_KVM_XICS_PENDING))
		pq |= PQ_PRESENTED;
	if (val & IRQD_KVM_XICS_QUEUED)
		pq |= PQ_QUEUED;
	w = src_with_pq(w, pq);

	/*
	 * irqd creates the ICS only now that the SET is known to succeed (S7;
	 * the kernel creates it before validating).  A first configuration
	 * holds x->lock (see LOCKING).
	 */
	ics = ics_find(x, irq);
	ext = src_ext_alloc(ics, server, &err);   /* before anything changes */
	if (err)
		return err;
	s = ics ? &ics->src[irq & XICS_SRC_MASK] : NULL;
	if (!s || !(src_load(ics, s, memory_order_seq_cst) & SRC_EXISTS)) {
		pthread_mutex_lock(&x->lock);
		locked_dev = true;
		ics = xics_get_or_create_ics(x, irq >> XICS_ICS_SHIFT);
		if (!ics) {
			pthread_mutex_unlock(&x->lock);
			free((void *)ext);
			return -ENOMEM;
		}
		s = &ics->src[irq & XICS_SRC_MASK];
	}
	src_ext_install(ics, ext);
	ics_lock(ics);
	old = src_xchg(ics, s, w);
	ics_unlock(ics);
	if (!(old & SRC_EXISTS))
		atomic_fetch_add(&x->nr_sources, 1);
	if (locked_dev)
		pthread_mutex_unlock(&x->lock);
	gen_bump(x);

	/* PENDING: "P and try a delivery" (X-045..X-047) */
	if (val & IRQD_KVM_XICS_PENDING)
		icp_deliver_irq(x, NULL, irq, false);
	return 0;
}

/* ---- S3.3 CREATE_ICS (irqd's own) ---- */

int irqd_xics_create_ics(struct irqd_xics *x, uint32_t first, uint32_t count, uint32_t flags)
{
	uint64_t end = (uint64_t)first + count, w;
	uint32_t irq, icsid, idx, last;
	struct ics *ics, *fresh[XICS_NR_ICS];
	int ret = 0;

	if (flags & ~(uint32_t)IRQD_ICS_LEVEL)
		return -EINVAL;
	if (first < XICS_FIRST_IRQ || count == 0 || end > XICS_NR_IRQS)
		return -EINVAL;

	pthread_mutex_lock(&x->lock);
	/* EEXIST check over the whole range first; no EXISTS bit can appear
	 * meanwhile since they are only set under x->lock */
	for (irq = first; irq < end; irq++) {
		ics = ics_find(x, irq);
		if (!ics) {
			irq |= XICS_SRC_MASK;  /* skip the rest of an absent ICS */
			continue;
		}
		if (src_load(ics, &ics->src[irq & XICS_SRC_MASK], memory_order_seq_cst) & SRC_EXISTS) {
			ret = -EEXIST;
			goto out;
		}
	}
	/* then every missing block, allocated unpublished so that an
	 * allocation failure creates none */
	last = (uint32_t)((end - 1) >> XICS_ICS_SHIFT);
	memset(fresh, 0, sizeof(fresh));
	for (icsid = first >> XICS_ICS_SHIFT; icsid <= last; icsid++) {
		if (atomic_load(&x->ics[icsid]))
			continue;
		fresh[icsid] = xics_ics_alloc(icsid);
		if (!fresh[icsid]) {
			ret = -ENOMEM;
			break;
		}
	}
	if (ret) {
		for (icsid = first >> XICS_ICS_SHIFT; icsid <= last; icsid++)
			xics_ics_destroy(fresh[icsid]);
		goto out;
	}
	for (icsid = first >> XICS_ICS_SHIFT; icsid <= last; icsid++)
		if (fresh[icsid])
			xics_ics_publish(x, fresh[icsid]);
	w = SRC_INITIAL | SRC_EXISTS | ((flags & IRQD_ICS_LEVEL) ? SRC_LSI : 0);
	for (icsid = first >> XICS_ICS_SHIFT; icsid <= last; icsid++) {
		ics = atomic_load(&x->ics[icsid]);
		ics_lock(ics);
		for (idx = 0; idx < XICS_PER_ICS; idx++) {
			irq = icsid << XICS_ICS_SHIFT | idx;
			if (irq < first || irq >= end)
				continue;
			atomic_store(&ics->src[idx].state, src_pack(w));
		}
		ics_unlock(ics);
	}
	atomic_fetch_add(&x->nr_sources, count);
	gen_bump(x);
out:
	pthread_mutex_unlock(&x->lock);
	return ret;
}

/* ---- S3.11 RTAS ---- */

/* S2.5 write_xive, under the ICS lock.  The unmask test uses the 32-bit
 * priority, the store its low 8 bits.  Returns "deliver". */
static bool write_xive(struct ics *ics, struct ics_src *s, bool keep_server,
		       uint32_t server, uint32_t priority, bool saved_from_prio, uint32_t saved)
{
	uint64_t old = src_load(ics, s, RELAXED), new;
	bool deliver;

	ics_lock(ics);
	do {
		uint32_t srv = keep_server ? src_server(old) : server;
		uint32_t sv = saved_from_prio ? src_prio(old) : saved;

		new = (old & ~(SRC_SERVER_MASK | SRC_PRIO_MASK | SRC_SAVED_MASK)) | srv |
		      (uint64_t)(priority & 0xFFu) << SRC_PRIO_SHIFT |
		      (uint64_t)(sv & 0xFFu) << SRC_SAVED_SHIFT;
		deliver = false;
		if ((old & (SRC_MASKED_PEND | SRC_RESEND)) && priority != XICS_MASKED) {
			new &= ~(SRC_MASKED_PEND | SRC_RESEND);
			deliver = true;
		}
	} while (!src_cas(ics, s, &old, new));
	ics_unlock(ics);
	return deliver;
}

static int32_t rtas_set_xive(struct irqd_xics *x, uint32_t irq, uint32_t server, uint32_t prio)
{
	struct ics *ics = ics_find(x, irq);
	struct icp *icp;

	if (!ics)
		return IRQD_RTAS_PARAM_ERROR;
	icp = icp_find(x, server);
	if (!icp)
		return IRQD_RTAS_PARAM_ERROR;
	if (write_xive(ics, &ics->src[irq & XICS_SRC_MASK], false, server, prio, false, prio))
		icp_deliver_irq(x, icp, irq, false);
	return 0;
}

static int32_t rtas_int_off(struct irqd_xics *x, uint32_t irq)
{
	struct ics *ics = ics_find(x, irq);

	if (!ics)
		return IRQD_RTAS_PARAM_ERROR;
	/* saves the current priority: a second int-off saves 0xFF */
	write_xive(ics, &ics->src[irq & XICS_SRC_MASK], true, 0, XICS_MASKED, true, 0);
	return 0;
}

static int32_t rtas_int_on(struct irqd_xics *x, uint32_t irq)
{
	struct ics *ics = ics_find(x, irq);
	struct ics_src *s;
	struct icp *icp;
	uint64_t w;
	uint32_t server;
	uint8_t saved;

	if (!ics)
		return IRQD_RTAS_PARAM_ERROR;
	s = &ics->src[irq & XICS_SRC_MASK];
	/* the kernel reads server and saved priority outside the lock too */
	w = src_load(ics, s, memory_order_seq_cst);
	server = src_server(w);
	saved = src_saved(w);
	icp = icp_find(x, server);
	if (!icp)
		return IRQD_RTAS_PARAM_ERROR;
	if (write_xive(ics, s, false, server, saved, false, saved))
		icp_deliver_irq(x, icp, irq, false);
	return 0;
}

int irqd_xics_rtas(struct irqd_xics *x, uint32_t token, uint32_t nargs, uint32_t nret,
		   uint32_t buf[12])
{
	uint32_t want_args, want_ret;
	uint32_t *rets;
	struct ics *ics;
	uint64_t w;

	switch (token) {
	case IRQD_RTAS_SET_XIVE: want_args = 3; want_ret = 1; break;
	case IRQD_RTAS_GET_XIVE: want_args = 1; want_ret = 3; break;
	case IRQD_RTAS_INT_OFF:  want_args = 1; want_ret = 1; break;
	case IRQD_RTAS_INT_ON:   want_args = 1; want_ret = 1; break;
	default: return -EINVAL;
	}
	/* the status word is always written, so nargs must leave room for it */
	if ((uint64_t)nargs + nret > IRQD_RTAS_BUF_WORDS || nargs >= IRQD_RTAS_BUF_WORDS)
		return -EINVAL;
	rets = &buf[nargs];
	if (nargs != want_args || nret != want_ret) {
		rets[0] = (uint32_t)IRQD_RTAS_PARAM_ERROR;
		return 0;
	}
	switch (token) {
	case IRQD_RTAS_SET_XIVE:
		rets[0] = (uint32_t)rtas_set_xive(x, buf[0], buf[1], buf[2]);
		break;
	case IRQD_RTAS_GET_XIVE:
		ics = ics_find(x, buf[0]);
		if (!ics) {
			rets[0] = (uint32_t)IRQD_RTAS_PARAM_ERROR;
			break;
		}
		w = src_load(ics, &ics->src[buf[0] & XICS_SRC_MASK], memory_order_seq_cst);
		rets[0] = 0;
		rets[1] = src_server(w);
		rets[2] = src_prio(w);  /* the current one, 0xFF when masked */
		break;
	case IRQD_RTAS_INT_OFF:
		rets[0] = (uint32_t)rtas_int_off(x, buf[0]);
		break;
	case IRQD_RTAS_INT_ON:
		rets[0] = (uint32_t)rtas_int_on(x, buf[0]);
		break;
	}
	if (token != IRQD_RTAS_GET_XIVE && rets[0] == 0)
		gen_bump(x);
	return 0;
}
