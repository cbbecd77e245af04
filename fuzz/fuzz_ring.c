/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the shared-memory trigger ring (irqd/core/ring.c, abi.h
 * 0x40 RING_SETUP), whose memory the client writes while the daemon's
 * consumer thread reads it.  Per input: a fresh device (sources 16-31 MSI,
 * 32-47 LSI, server 0 open), a sealed memfd ring of 16 entries, possibly a
 * damaged header, irqd_ring_start(), then steps that
 *   - post entries the proper way (irqd_ring_post_many), or
 *   - store a garbage head (within the window or far past it), or
 *   - scribble over entry slots,
 * each followed by a doorbell and a bounded wait for the consumer to
 * publish tail == head.  Checked: start fails only with -EINVAL and a
 * reason; the consumer catches up after every step; its counters add up
 * (applied + errors - resyncs == entries consumed, resyncs == garbage heads
 * past the window); I1 on server 0; stop() returns.  ASan/UBSan catch the rest.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "irqd/abi.h"
#include "irqd/core/ring.h"
#include "irqd/core/xics.h"
#include "irqd/ring_producer.h"

#define LOG2 4
#define FUZZ_NAME "fuzz_ring"
#include "fuzz/fuzz_input.h"

static uint32_t take_irq(struct in *in)
{
	uint8_t sel = (uint8_t)take(in, 1);
	return sel < 0xE0 ? 16 + (sel & 0x3F) : (uint32_t)take(in, 4);
}

static uint32_t take_level(struct in *in)
{
	static const uint32_t levels[] = { 0, 1, IRQD_KVM_INTERRUPT_SET, IRQD_KVM_INTERRUPT_UNSET,
					   IRQD_KVM_INTERRUPT_SET_LEVEL, 7 };
	return levels[take(in, 1) % (sizeof(levels) / sizeof(levels[0]))];
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The consumer publishes tail once it has applied up to head (or skipped
 * a garbage head): wait for that, with a deadline. */
static void wait_caught_up(struct irqd_ring_hdr *h, uint64_t want)
{
	uint64_t t0 = now_ns();
	while (atomic_load_explicit(IRQD_RING_A64(&h->tail), memory_order_acquire) != want) {
		if (now_ns() - t0 > 5000000000u)
			FAIL("consumer did not reach head %llu in 5 s (tail %llu)", (unsigned long long)want,
			     (unsigned long long)atomic_load(IRQD_RING_A64(&h->tail)));
		sched_yield();
	}
}

static void check_i1(struct irqd_xics *x)
{
	uint64_t w;
	if (irqd_xics_get_icp(x, 0, &w) < 0)
		return;
	uint32_t cppr = (uint32_t)(w >> IRQD_KVM_REG_PPC_ICP_CPPR_SHIFT) & IRQD_KVM_REG_PPC_ICP_CPPR_MASK;
	uint32_t xisr = (uint32_t)(w >> IRQD_KVM_REG_PPC_ICP_XISR_SHIFT) & IRQD_KVM_REG_PPC_ICP_XISR_MASK;
	uint32_t ppri = (uint32_t)(w >> IRQD_KVM_REG_PPC_ICP_PPRI_SHIFT) & IRQD_KVM_REG_PPC_ICP_PPRI_MASK;
	if (irqd_xics_output_asserted(x, 0) != (xisr != 0 && ppri < cppr))
		FAIL("I1 broken: 0x%016llx", (unsigned long long)w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct in in = { data, size };
	struct irqd_xics *x = irqd_xics_new();
	uint64_t bytes = irqd_ring_bytes(LOG2), reg[4] = { 0xFF, 0, 0, 0 };
	uint64_t consumed = 0, resyncs = 0;
	uint32_t entries = 1u << LOG2;
	struct irqd_ring *r = NULL;
	struct irqd_ring_hdr *h;
	char why[256] = "";
	int memfd, doorbell, notify, rc;
	uint8_t mode;
	void *mem;

	if (!x)
		abort();
	irqd_xics_connect_vcpu(x, 0);
	irqd_xics_create_ics(x, 16, 16, 0);
	irqd_xics_create_ics(x, 32, 16, IRQD_ICS_LEVEL);
	irqd_xics_hcall(x, 0, IRQD_H_CPPR, reg);
	for (uint32_t i = 16; i < 48; i++) {
		uint32_t buf[12] = { i, 0, 5 };
		irqd_xics_rtas(x, IRQD_RTAS_SET_XIVE, 3, 1, buf);
	}
	memfd = memfd_create("fuzz-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (memfd < 0 || ftruncate(memfd, (off_t)bytes) < 0 || fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK) < 0)
		abort();
	mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	if (mem == MAP_FAILED)
		abort();
	irqd_ring_format(mem, bytes, LOG2);
	h = mem;
	doorbell = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	notify = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (doorbell < 0 || notify < 0)
		abort();

	/* first byte: damage the header before setup? */
	mode = (uint8_t)take(&in, 1);
	if (mode & 1) {
		switch ((mode >> 1) & 3) {
		case 0: h->magic = (uint32_t)take(&in, 4); break;
		case 1: h->version = (uint32_t)take(&in, 4); break;
		case 2: h->entries = (uint32_t)take(&in, 4); break;
		case 3: atomic_store(IRQD_RING_A64(&h->head), take(&in, 8)); break;
		}
	}
	uint64_t tail0 = atomic_load(IRQD_RING_A64(&h->tail));
	rc = irqd_ring_start(x, memfd, doorbell, (mode & 0x80) ? (uint32_t)(mode & 0x1F) : LOG2, notify, &r,
			     why, sizeof(why));
	close(memfd);   /* the ring keeps its own mapping */
	if (rc < 0) {
		if (rc != -EINVAL || r != NULL || !why[0] || !memchr(why, 0, sizeof(why)))
			FAIL("start: %d r %p why '%s'", rc, (void *)r, why);
		close(doorbell);   /* on failure the ring owns nothing */
		goto out;
	}
	/* what the ring starts from (a damaged but acceptable header) */
	uint64_t head = atomic_load(IRQD_RING_A64(&h->head));
	consumed += head - tail0;   /* a damaged head within the window is consumed */
	wait_caught_up(h, head);

	for (int steps = 0; in.n && steps < 32; steps++) {
		uint8_t op = (uint8_t)take(&in, 1);
		uint64_t tail = atomic_load(IRQD_RING_A64(&h->tail));
		switch (op % 4) {
		case 0: case 1: {   /* post properly */
			struct irqd_irq_batch_entry e[16];
			uint32_t n = (uint32_t)(take(&in, 1) % 17);
			for (uint32_t i = 0; i < n; i++) {
				e[i].irq = take_irq(&in);
				e[i].level = take_level(&in);
			}
			uint32_t posted = irqd_ring_post_many(mem, doorbell, e, n);
			if (posted != n)   /* the ring was empty: 16 always fit */
				FAIL("posted %u of %u into an empty ring", posted, n);
			head = tail + posted;
			consumed += posted;
			break;
		}
		case 2: {   /* garbage head, in or past the window */
			uint64_t d = (op & 0x80) ? take(&in, 8) : take(&in, 1) % (entries + 1);
			head = tail + d;
			if (d > entries)
				resyncs++;
			else
				consumed += d;
			atomic_store_explicit(IRQD_RING_A64(&h->head), head, memory_order_release);
			irqd_ring_kick(h, doorbell);
			break;
		}
		case 3: {   /* scribble over slots, then publish them */
			struct irqd_irq_batch_entry *slots = irqd_ring_entries(mem);
			uint32_t n = (uint32_t)(take(&in, 1) % (entries + 1));
			for (uint32_t i = 0; i < n; i++) {
				uint64_t v = take(&in, 8);
				memcpy(&slots[(tail + i) & (entries - 1)], &v, sizeof(v));
			}
			head = tail + n;
			consumed += n;
			atomic_store_explicit(IRQD_RING_A64(&h->head), head, memory_order_release);
			irqd_ring_kick(h, doorbell);
			break;
		}
		}
		wait_caught_up(h, head);
		check_i1(x);
	}
	{
		struct irqd_ring_stats st;
		irqd_ring_get_stats(r, &st);
		if (st.resyncs != resyncs || st.applied + st.errors - st.resyncs != consumed)
			FAIL("counters: applied %llu errors %llu resyncs %llu; expected %llu entries, %llu resyncs",
			     (unsigned long long)st.applied, (unsigned long long)st.errors,
			     (unsigned long long)st.resyncs, (unsigned long long)consumed, (unsigned long long)resyncs);
		uint64_t ha = atomic_load(IRQD_RING_A64(&h->applied)), he = atomic_load(IRQD_RING_A64(&h->errors));
		if (ha != st.applied || he != st.errors)
			FAIL("published counters %llu/%llu differ from the ring's %llu/%llu", (unsigned long long)ha,
			     (unsigned long long)he, (unsigned long long)st.applied, (unsigned long long)st.errors);
	}
	irqd_ring_stop(r);   /* closes the doorbell */
out:
	munmap(mem, bytes);
	close(notify);
	irqd_xics_free(x);
	return 0;
}
