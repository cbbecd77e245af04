/* SPDX-License-Identifier: MIT */
/*
 * irqd shared-memory trigger ring, producer side (abi.h 0x40 RING_SETUP).
 *
 * Header-only (static inline, C11 atomics) so the Python binding (through
 * irqd/core/ring.c), the C client (clib) and the benchmarks share one
 * implementation of the protocol described in abi.h.
 *
 * Single producer: calls on one ring must be serialised by the caller.
 * The memory is the client's own mapping of the memfd it passed to the
 * daemon; nothing here trusts the daemon either (indices are masked).
 */
#ifndef IRQD_RING_PRODUCER_H
#define IRQD_RING_PRODUCER_H

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include "irqd/abi.h"

#define IRQD_RING_A64(p) ((_Atomic uint64_t *)(void *)(p))
#define IRQD_RING_A32(p) ((_Atomic uint32_t *)(void *)(p))

/* Bytes the memfd needs for 1 << log2 entries. */
static inline uint64_t irqd_ring_bytes(uint32_t log2)
{
	return (uint64_t)IRQD_RING_HDR_SIZE + ((uint64_t)sizeof(struct irqd_irq_batch_entry) << log2);
}

/* Format a fresh ring in mem (size bytes, zero-filled or not). */
static inline int irqd_ring_format(void *mem, uint64_t size, uint32_t log2)
{
	struct irqd_ring_hdr *h = (struct irqd_ring_hdr *)mem;
	if (log2 < IRQD_RING_MIN_LOG2 || log2 > IRQD_RING_MAX_LOG2 || size < irqd_ring_bytes(log2))
		return -EINVAL;
	memset(h, 0, sizeof(*h));
	h->magic = IRQD_RING_MAGIC;
	h->version = IRQD_RING_VERSION;
	h->entries = 1u << log2;
	atomic_thread_fence(memory_order_release);
	return 0;
}

static inline struct irqd_irq_batch_entry *irqd_ring_entries(void *mem)
{
	return (struct irqd_irq_batch_entry *)((uint8_t *)mem + IRQD_RING_HDR_SIZE);
}

/* Entries posted and not yet consumed. */
static inline uint64_t irqd_ring_pending(void *mem)
{
	struct irqd_ring_hdr *h = (struct irqd_ring_hdr *)mem;
	uint64_t head = atomic_load_explicit(IRQD_RING_A64(&h->head), memory_order_relaxed);
	return head - atomic_load_explicit(IRQD_RING_A64(&h->tail), memory_order_acquire);
}

/* After publishing head: wake the consumer if it said it sleeps.  The
 * seq_cst fence pairs with the consumer's (store need_wakeup; fence; load
 * head): either it sees our head or we see its flag (no lost wakeup). */
static inline void irqd_ring_kick(struct irqd_ring_hdr *h, int doorbell)
{
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(IRQD_RING_A32(&h->need_wakeup), memory_order_relaxed) &&
	    atomic_exchange_explicit(IRQD_RING_A32(&h->need_wakeup), 0, memory_order_relaxed)) {
		uint64_t one = 1;
		ssize_t rc = write(doorbell, &one, sizeof(one));
		(void)rc;   /* EAGAIN: the counter is saturated, the consumer is woken anyway */
	}
}

/* Post up to n entries; returns how many were posted (0 when full: the
 * caller retries later -- backpressure, nothing is overwritten). */
static inline uint32_t irqd_ring_post_many(void *mem, int doorbell, const struct irqd_irq_batch_entry *e,
					   uint32_t n)
{
	struct irqd_ring_hdr *h = (struct irqd_ring_hdr *)mem;
	struct irqd_irq_batch_entry *ent = irqd_ring_entries(mem);
	uint32_t entries = h->entries, mask = entries - 1, i;
	uint64_t head = atomic_load_explicit(IRQD_RING_A64(&h->head), memory_order_relaxed);
	uint64_t tail = atomic_load_explicit(IRQD_RING_A64(&h->tail), memory_order_acquire);
	uint64_t room = entries - (head - tail);
	if (head - tail > entries)  /* a consumer resync or our own garbage: no room */
		room = 0;
	if (n > room)
		n = (uint32_t)room;
	if (!n)
		return 0;
	for (i = 0; i < n; i++)
		atomic_store_explicit(IRQD_RING_A64(&ent[(head + i) & mask]),
				      (uint64_t)e[i].irq | ((uint64_t)e[i].level << 32), memory_order_relaxed);
	atomic_store_explicit(IRQD_RING_A64(&h->head), head + n, memory_order_release);
	irqd_ring_kick(h, doorbell);
	return n;
}

/* Post one trigger: 0, or -EAGAIN when the ring is full. */
static inline int irqd_ring_post1(void *mem, int doorbell, uint32_t irq, uint32_t level)
{
	struct irqd_irq_batch_entry e = { irq, level };
	return irqd_ring_post_many(mem, doorbell, &e, 1) ? 0 : -EAGAIN;
}

#endif /* IRQD_RING_PRODUCER_H */
