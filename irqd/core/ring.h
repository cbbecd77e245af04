/* SPDX-License-Identifier: MIT */
/*
 * irqd shared-memory trigger rings (abi.h 0x40 RING_SETUP): the daemon's
 * consumer, one pthread per ring, and the producer entry points the Python
 * client calls through cffi (the protocol itself is in
 * include/irqd/ring_producer.h).
 *
 * LOCKING: each ring has one mutex, held by its consumer thread while it
 * applies a batch to the device and by irqd_ring_set_xics(); so once
 * set_xics() (or stop()) returns, the consumer no longer touches the old
 * device and the caller may free it.  The device itself is thread safe
 * (xics.h).  Counters are relaxed atomics.
 *
 * INVARIANTS: the consumer reads only `head` and the entries from shared
 * memory; it keeps tail and counters privately and only writes them out.
 * Every entry is copied once (one atomic 64-bit load) before the core sees
 * it, so a producer rewriting it concurrently cannot make the core see two
 * values.  The memfd is sealed against shrinking (checked at setup), so the
 * mapping can never SIGBUS the daemon.  The consumer thread blocks every
 * signal.
 */
#ifndef IRQD_CORE_RING_H
#define IRQD_CORE_RING_H

#include <stdint.h>
#include <stddef.h>
#include "irqd/abi.h"
#include "irqd/core/xics.h"

/* IRQD-CDEF-BEGIN */

struct irqd_ring;

struct irqd_ring_stats {
	uint64_t applied;           /* entries applied successfully */
	uint64_t errors;            /* entries the core refused + resyncs */
	uint64_t resyncs;           /* head - tail > entries seen (garbage head) */
	uint64_t sleeps;            /* times the consumer slept on the doorbell */
	uint64_t spin_ns;           /* current busy-poll window */
};

/* Validate the memfd and doorbell (abi.h RING_SETUP), map the ring and start
 * its consumer on device x.  notify_fd (an eventfd of the daemon) gets 1
 * written when applied entries changed an output or recorded a resample ack
 * (then irqd_ring_take_notify() returns 1 once).  On success *out is set, the
 * ring owns doorbell and the memfd is no longer needed (the caller closes
 * it); on failure returns -errno with a reason in why and owns nothing. */
int irqd_ring_start(struct irqd_xics *x, int memfd, int doorbell, uint32_t entries_log2, int notify_fd,
		    struct irqd_ring **out, char *why, uint32_t why_len);
/* Stop and join the consumer, unmap, close the doorbell, free. */
void irqd_ring_stop(struct irqd_ring *r);
/* Point the consumer at another device (restore commit); returns once the
 * consumer is not inside the old one. */
void irqd_ring_set_xics(struct irqd_ring *r, struct irqd_xics *x);
/* 1 if the consumer changed an output / resample state since the last call. */
int irqd_ring_take_notify(struct irqd_ring *r);
void irqd_ring_get_stats(struct irqd_ring *r, struct irqd_ring_stats *s);

/* ---- producer (client side), for cffi ---- */
uint64_t irqd_ring_size(uint32_t entries_log2);
int irqd_ring_init(uint8_t *mem, uint64_t size, uint32_t entries_log2);
/* 0, or -EAGAIN when the ring is full */
int irqd_ring_post(uint8_t *mem, int doorbell, uint32_t irq, uint32_t level);
/* how many of the n entries were posted (fewer when the ring filled up) */
uint32_t irqd_ring_post_batch(uint8_t *mem, int doorbell, const struct irqd_irq_batch_entry *e, uint32_t n);
/* entries posted, not yet consumed */
uint64_t irqd_ring_unconsumed(uint8_t *mem);

/* IRQD-CDEF-END */

#endif /* IRQD_CORE_RING_H */
