/* SPDX-License-Identifier: MIT */
/*
 * ICP side of the XICS core: the presentation controllers (one per server),
 * delivery (icp_deliver_irq), resend scans, the hcalls and ONE_REG.
 * Mirrors book3s_xics.c; xics-semantics.md sections 2 and 3.5-3.10, 3.15.
 *
 * LOCKING
 *   An ICP has no lock.  Its whole presentation state is one 64-bit word and
 *   every change is "read word, compute new word, icp_try_update(old, new)";
 *   a failed CAS redoes the computation from a fresh read.  icp_deliver_irq
 *   holds the ICS lock of the source it delivers while it CASes the ICP, and
 *   drops it before following a rejected interrupt into another source
 *   (never two ICS locks at once).  Resend scans and the ack notification run
 *   with no lock held.
 *
 * INVARIANTS
 *   I1: out_ee is computed by icp_try_update and nowhere else, so no path can
 *   forget it.  The output is only ever *raised* here (counted as a rise when
 *   out_ee goes 0 -> 1): it drops only through a transaction of the ICP's
 *   own vCPU (H_XIRR, Up_CPPR, SET_ONE_REG, and the Down_CPPR of H_EOI that
 *   may lower the CPPR below a pending interrupt, X-039).
 */
#define _POSIX_C_SOURCE 200809L  /* clock_gettime under -std=c11 */
#include <errno.h>
#include <time.h>

#include "xics_internal.h"

/*
 * The only writer of ICP words (import excepted).  Computes out_ee itself
 * (I1) and counts 0 -> 1 transitions of the output for SET_OUTPUT.
 */
static inline bool icp_try_update(struct irqd_xics *x, struct icp *icp, uint64_t old, uint64_t new)
{
	new &= ~ICP_OUT_EE;
	if (icp_xisr(new) != 0 && icp_ppri(new) < icp_cppr(new))
		new |= ICP_OUT_EE;
	if (!atomic_compare_exchange_strong(&icp->word, &old, new))
		return false;
	if ((new & ICP_OUT_EE) && !(old & ICP_OUT_EE)) {
		atomic_fetch_add_explicit(&icp->rises, 1, RELAXED);
		atomic_fetch_add_explicit(&x->output_seq, 1, memory_order_release);
	}
	return true;
}

static inline uint64_t icp_load(struct icp *icp)
{
	return atomic_load_explicit(&icp->word, memory_order_acquire);
}

/* S2.2: one transaction; present only if strictly more favoured than the
 * CPPR, the MFRR and whatever is pending (equal priority never displaces). */
static bool icp_try_to_deliver(struct irqd_xics *x, struct icp *icp, uint32_t irq, uint8_t prio,
			       uint32_t *reject)
{
	uint64_t old, new;
	bool ok;

	do {
		old = icp_load(icp);
		*reject = 0;
		ok = icp_cppr(old) > prio && icp_mfrr(old) > prio && icp_ppri(old) > prio;
		if (ok) {
			*reject = icp_xisr(old);
			new = icp_with_ppri(icp_with_xisr(old, irq), prio);
		} else {
			new = old | ICP_NEED_RESEND;
		}
	} while (!icp_try_update(x, icp, old, new));
	return ok;
}

/*
 * S2.3 icp_deliver_irq.  `icp` is a hint (may be NULL or another server's
 * ICP: the source's own server decides).  s.exists is deliberately not
 * checked, as in the kernel.
 */
void icp_deliver_irq(struct irqd_xics *x, struct icp *icp, uint32_t irq, bool check_resend)
{
	struct ics *ics;
	struct ics_src *s;
	uint64_t w;
	uint32_t reject, server, bit;

again:
	ics = ics_find(x, irq);
	if (!ics)
		return;
	s = &ics->src[irq & XICS_SRC_MASK];
	ics_lock(ics);
	w = src_load(ics, s, RELAXED);
	server = src_server(w);
	if (!icp || icp->server != server) {
		icp = icp_find(x, server);
		if (!icp) {
			/* Dropped: no resend, no masked_pending.  For an
			 * MSI P stays set until an EOI of this number. */
			ics_unlock(ics);
			return;
		}
	}
	if (check_resend && !(w & SRC_RESEND)) {
		/* another scan got it first: redeliver at most once per scan */
		ics_unlock(ics);
		return;
	}
	src_update(ics, s, SRC_RESEND, 0);

	if (src_prio(w) == XICS_MASKED) {
		/*
		 * Departure from PAPR, as the kernel does: remember the attempt
		 * so the unmask delivers it, also when this is the redelivery of
		 * a rejected interrupt (QEMU loses it, QUIRK-3, X-068).
		 */
		src_update(ics, s, 0, SRC_MASKED_PEND);
		ics_unlock(ics);
		return;
	}

	if (icp_try_to_deliver(x, icp, irq, src_prio(w), &reject)) {
		/* only ever incremented under this ICS lock: no RMW needed */
		atomic_store_explicit(&s->deliveries,
				      atomic_load_explicit(&s->deliveries, RELAXED) + 1, RELAXED);
		stat_inc(&icp->deliveries);
		if (reject)
			stat_inc(&icp->rejects);
		if (reject && reject != XICS_IPI) {
			/* The displaced interrupt is delivered again at once (its
			 * own server decides; this ICP is only the hint).  A
			 * displaced IPI lives on in the MFRR. */
			ics_unlock(ics);
			irq = reject;
			check_resend = false;
			goto again;
		}
	} else {
		/*
		 * The need_resend race (S1.6): the failed transaction set
		 * need_resend; we now set resend, then (release) the map bit,
		 * then (full barrier) re-read need_resend.  If a concurrent
		 * Down_CPPR / H_IPI / SET_ONE_REG consumed need_resend in
		 * between, its resend scan may have run before our map bit
		 * was visible and missed us: retry this same interrupt from
		 * the top instead of leaving it stranded.  Sequentially
		 * need_resend is always still set here.
		 */
		src_update(ics, s, 0, SRC_RESEND);
		bit = ics->icsid;
		atomic_fetch_or_explicit(&icp->resend_map[bit / 64], 1ull << (bit % 64),
					 memory_order_release);
		atomic_thread_fence(memory_order_seq_cst);
		if (!(icp_load(icp) & ICP_NEED_RESEND)) {
			src_update(ics, s, SRC_RESEND, 0);
			ics_unlock(ics);
			check_resend = false;
			goto again;
		}
	}
	ics_unlock(ics);
}

/*
 * S2.4 icp_check_resend: every ICS id flagged in this ICP's resend_map,
 * ascending (a bit set meanwhile for a higher id is still seen by this
 * scan), test-and-clear before scanning it; every `resend` source of that
 * ICS is redelivered to its own server, whichever server scans.
 */
void icp_check_resend(struct irqd_xics *x, struct icp *icp)
{
	uint32_t icsid, i;
	uint64_t bit, prev;
	struct ics *ics;

	stat_inc(&icp->resends);
	for (icsid = 0; icsid <= atomic_load(&x->max_icsid) && icsid < XICS_NR_ICS; icsid++) {
		bit = 1ull << (icsid % 64);
		if (!(atomic_load(&icp->resend_map[icsid / 64]) & bit))
			continue;
		prev = atomic_fetch_and(&icp->resend_map[icsid / 64], ~bit);
		if (!(prev & bit))
			continue;
		ics = atomic_load_explicit(&x->ics[icsid], memory_order_acquire);
		if (!ics)
			continue;
		for (i = 0; i < XICS_PER_ICS; i++) {
			/* read without the lock; deliver re-checks under it */
			if (!(src_load(ics, &ics->src[i], RELAXED) & SRC_RESEND))
				continue;
			icp_deliver_irq(x, icp, icsid << XICS_ICS_SHIFT | i, true);
		}
	}
}

static inline void count_ipi(struct icp *icp, uint32_t old_xisr, uint32_t new_xisr)
{
	if (new_xisr == XICS_IPI && old_xisr != XICS_IPI)
		stat_inc(&icp->ipis);
}

/* S2.6: CPPR less favoured; presents the IPI if the MFRR now passes, never
 * rejects (an external interrupt overwritten by the IPI is lost, X-040). */
static void icp_down_cppr(struct irqd_xics *x, struct icp *icp, uint8_t new_cppr)
{
	uint64_t old, new;
	bool resend;

	do {
		old = icp_load(icp);
		new = icp_with_cppr(old, new_cppr);
		if (icp_mfrr(old) < new_cppr && icp_mfrr(old) <= icp_ppri(old))
			new = icp_with_xisr(icp_with_ppri(new, icp_mfrr(old)), XICS_IPI);
		resend = old & ICP_NEED_RESEND;
		new &= ~ICP_NEED_RESEND;
	} while (!icp_try_update(x, icp, old, new));
	count_ipi(icp, icp_xisr(old), icp_xisr(new));
	if (resend)
		icp_check_resend(x, icp);
}

/* S3.5 H_XIRR: accept whatever is in XISR, whatever out_ee says. */
static uint32_t h_xirr(struct irqd_xics *x, struct icp *icp)
{
	uint64_t old, new;
	uint32_t xirr;

	do {
		old = icp_load(icp);
		xirr = (uint32_t)icp_cppr(old) << 24 | icp_xisr(old);
		if (!icp_xisr(old))
			break;
		new = icp_with_xisr(icp_with_ppri(icp_with_cppr(old, icp_ppri(old)), XICS_MASKED), 0);
	} while (!icp_try_update(x, icp, old, new));
	return xirr;
}

/* S3.6 H_CPPR; the argument is compared in 64 bits, stored as 8. */
static bool h_cppr(struct irqd_xics *x, struct icp *icp, uint64_t cppr)
{
	uint64_t old, new;
	uint32_t reject;
	uint8_t cur;

	/* only this vCPU changes its CPPR, so reading it outside a
	 * transaction is safe (as in the kernel) */
	cur = icp_cppr(icp_load(icp));
	if (cppr > cur)
		icp_down_cppr(x, icp, (uint8_t)cppr);
	else if (cppr == cur)
		return false;

	/* Up_CPPR (the kernel falls through to it after Down_CPPR too) */
	do {
		old = icp_load(icp);
		reject = 0;
		new = icp_with_cppr(old, (uint8_t)cppr);
		if (cppr <= icp_ppri(old)) {
			reject = icp_xisr(old);
			new = icp_with_ppri(icp_with_xisr(new, 0), XICS_MASKED);
		}
	} while (!icp_try_update(x, icp, old, new));
	if (reject)
		stat_inc(&icp->rejects);
	if (reject && reject != XICS_IPI)
		icp_deliver_irq(x, icp, reject, false);
	return true;
}

/* S3.7 H_EOI: Down_CPPR (with its resend scan) first, then the ICS EOI. */
static int64_t h_eoi(struct irqd_xics *x, struct icp *icp, uint64_t xirr)
{
	uint32_t irq = (uint32_t)(xirr & 0xFFFFFFu);

	icp_down_cppr(x, icp, (uint8_t)(xirr >> 24));
	if (irq == XICS_IPI)
		return IRQD_H_SUCCESS;  /* IPIs have no EOI */
	return ics_eoi(x, icp, irq);
}

/* S3.8 H_IPI */
static int64_t h_ipi(struct irqd_xics *x, struct icp *self, uint64_t server, uint64_t mfrr)
{
	struct icp *icp = self;
	uint64_t old, new;
	uint32_t reject;
	bool resend, presented;

	if (server != self->server) {
		icp = icp_find(x, (uint32_t)server);
		if (!icp)
			return IRQD_H_PARAMETER;
	}
	do {
		old = icp_load(icp);
		new = icp_with_mfrr(old, (uint8_t)mfrr);
		reject = 0;
		resend = false;
		presented = false;
		if (mfrr < icp_cppr(old) && mfrr <= icp_ppri(old)) {
			presented = true;
			/* the IPI wins at equal priority */
			reject = icp_xisr(old);
			new = icp_with_xisr(icp_with_ppri(new, (uint8_t)mfrr), XICS_IPI);
		}
		if (mfrr > icp_mfrr(old)) {
			/* MFRR less favoured: cannot tell which rejected
			 * interrupt it unblocks, so rescan */
			resend = old & ICP_NEED_RESEND;
			new &= ~ICP_NEED_RESEND;
		}
	} while (!icp_try_update(x, icp, old, new));
	/* every IPI this call presents counts, also one replacing the IPI
	 * already in XISR (a new request); so does any interrupt it pushes out */
	if (presented)
		stat_inc(&icp->ipis);
	if (reject)
		stat_inc(&icp->rejects);
	if (reject && reject != XICS_IPI)
		icp_deliver_irq(x, icp, reject, false);
	if (resend)
		icp_check_resend(x, icp);
	return IRQD_H_SUCCESS;
}

static uint64_t timestamp(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int irqd_xics_hcall(struct irqd_xics *x, uint32_t server, uint64_t nr, uint64_t reg[4])
{
	struct icp *icp, *t;
	struct icp_state st;
	uint64_t a0 = reg[0], a1 = reg[1];
	int64_t status = IRQD_H_SUCCESS;
	bool changed = false;

	switch (nr) {
	case IRQD_H_XIRR: case IRQD_H_XIRR_X: case IRQD_H_EOI:
	case IRQD_H_CPPR: case IRQD_H_IPI: case IRQD_H_IPOLL:
		break;
	default:
		return -EOPNOTSUPP;
	}
	icp = icp_find(x, server);
	if (!icp)
		return -ENOENT;

	reg[1] = reg[2] = reg[3] = 0;
	switch (nr) {
	case IRQD_H_XIRR:
		reg[1] = h_xirr(x, icp);
		changed = reg[1] & 0xFFFFFFu;
		break;
	case IRQD_H_XIRR_X:
		reg[1] = h_xirr(x, icp);
		reg[2] = timestamp();
		changed = reg[1] & 0xFFFFFFu;
		break;
	case IRQD_H_EOI:
		status = h_eoi(x, icp, a0);
		changed = true;
		break;
	case IRQD_H_CPPR:
		changed = h_cppr(x, icp, a0);
		break;
	case IRQD_H_IPI:
		status = h_ipi(x, icp, a0, a1);
		changed = status == IRQD_H_SUCCESS;
		break;
	case IRQD_H_IPOLL:
		t = icp;
		if (a0 != icp->server)
			t = icp_find(x, (uint32_t)a0);
		if (!t) {
			status = IRQD_H_PARAMETER;
			break;
		}
		st = icp_unpack(icp_load(t));
		reg[1] = (uint32_t)st.cppr << 24 | st.xisr;
		reg[2] = st.mfrr;
		break;
	}
	reg[0] = (uint64_t)status;
	if (changed)
		gen_bump(x);
	return 0;
}

/* ---- S3.15 KVM_REG_PPC_ICP_STATE ---- */

int irqd_xics_get_icp(struct irqd_xics *x, uint32_t server, uint64_t *value)
{
	struct icp *icp = icp_find(x, server);
	struct icp_state s;

	if (!icp)
		return -ENOENT;
	s = icp_unpack(icp_load(icp));
	*value = (uint64_t)s.cppr << IRQD_KVM_REG_PPC_ICP_CPPR_SHIFT |
		 (uint64_t)s.xisr << IRQD_KVM_REG_PPC_ICP_XISR_SHIFT |
		 (uint64_t)s.mfrr << IRQD_KVM_REG_PPC_ICP_MFRR_SHIFT |
		 (uint64_t)s.pending_pri << IRQD_KVM_REG_PPC_ICP_PPRI_SHIFT;
	return 0;
}

int irqd_xics_set_icp(struct irqd_xics *x, uint32_t server, uint64_t value)
{
	struct icp *icp = icp_find(x, server);
	uint64_t old, new, fields;
	uint8_t cppr = (uint8_t)(value >> IRQD_KVM_REG_PPC_ICP_CPPR_SHIFT);
	uint32_t xisr = (uint32_t)(value >> IRQD_KVM_REG_PPC_ICP_XISR_SHIFT) & 0xFFFFFFu;
	uint8_t mfrr = (uint8_t)(value >> IRQD_KVM_REG_PPC_ICP_MFRR_SHIFT);
	uint8_t ppri = (uint8_t)(value >> IRQD_KVM_REG_PPC_ICP_PPRI_SHIFT);
	bool resend;

	if (!icp)
		return -ENOENT;
	/* require the new state to be internally consistent (before any store) */
	if (xisr == 0) {
		if (ppri != XICS_MASKED)
			return -EINVAL;
	} else if (xisr == XICS_IPI) {
		if (ppri != mfrr || ppri >= cppr)
			return -EINVAL;
	} else {
		if (ppri >= mfrr || ppri >= cppr)
			return -EINVAL;
		/* the ICS must exist; the source need not be configured */
		if (!ics_find(x, xisr))
			return -EINVAL;
	}

	/*
	 * The previous XISR is overwritten without rejection: the
	 * VMM restores the sources consistently.  Resends are handled when the
	 * MFRR becomes less favoured, which is what makes "sources first, ICPs
	 * second" restores consistent; over a fresh ICP (MFRR 0xFF) no scan
	 * runs.
	 */
	fields = icp_with_xisr(icp_with_ppri(icp_with_mfrr(icp_with_cppr(0, cppr), mfrr), ppri), xisr);
	do {
		old = icp_load(icp);
		if (mfrr <= icp_mfrr(old)) {
			resend = false;
			new = fields | (old & ICP_NEED_RESEND);
		} else {
			resend = old & ICP_NEED_RESEND;
			new = fields;
		}
	} while (!icp_try_update(x, icp, old, new));
	if (resend)
		icp_check_resend(x, icp);
	gen_bump(x);
	return 0;
}

/* ---- output observation ---- */

uint64_t irqd_xics_output_seq(struct irqd_xics *x)
{
	return atomic_load_explicit(&x->output_seq, memory_order_acquire);
}

int irqd_xics_output_rises(struct irqd_xics *x, uint32_t server, uint64_t *rises)
{
	struct icp *icp = icp_find(x, server);

	if (!icp)
		return -ENOENT;
	*rises = atomic_load_explicit(&icp->rises, memory_order_acquire);
	return 0;
}

int irqd_xics_output_asserted(struct irqd_xics *x, uint32_t server)
{
	struct icp *icp = icp_find(x, server);

	if (!icp)
		return -ENOENT;
	return icp_unpack(icp_load(icp)).out_ee;
}
