/* SPDX-License-Identifier: MIT */
/*
 * The ring protocol in one process, for ThreadSanitizer: the daemon's
 * consumer (irqd/core/ring.c) on a core device, one producer thread posting
 * through include/irqd/ring_producer.h with backpressure, and a scribbler
 * round where the producer writes garbage heads.  Checks every good entry
 * applied exactly once (the core's trigger counters) and exits 0.
 *
 * build: cc -std=gnu11 -fsanitize=thread -Iinclude -I. tests/c/ring_stress.c (irqd/core C files) -lpthread
 * usage: ring_stress [N]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <fcntl.h>
#include <unistd.h>

#include "irqd/core/ring.h"
#include "irqd/ring_producer.h"

#define FIRST 4096
#define NSRC 16

int main(int argc, char **argv)
{
	uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 0) : 200000, posted = 0;
	struct irqd_xics *x = irqd_xics_new();
	struct irqd_ring *r;
	struct irqd_source_stats st[NSRC];
	char why[256];
	int memfd, bell, notify, rc;
	uint64_t total = 0, size = irqd_ring_bytes(6);
	void *mem;

	if (!x || irqd_xics_create_ics(x, FIRST, NSRC, 0) < 0)
		return 1;
	memfd = memfd_create("ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (memfd < 0 || ftruncate(memfd, (off_t)size) < 0 || fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK) < 0)
		return 1;
	mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	if (mem == MAP_FAILED || irqd_ring_format(mem, size, 6) < 0)
		return 1;
	bell = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	notify = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	rc = irqd_ring_start(x, memfd, bell, 6, notify, &r, why, sizeof(why));
	if (rc < 0) {
		fprintf(stderr, "start: %s\n", why);
		return 1;
	}
	close(memfd);
	while (posted < n) {
		struct irqd_irq_batch_entry e[8];
		uint32_t k = (uint32_t)(n - posted < 8 ? n - posted : 8), got;
		for (uint32_t i = 0; i < k; i++)
			e[i] = (struct irqd_irq_batch_entry){ FIRST + (uint32_t)((posted + i) % NSRC),
							      IRQD_KVM_INTERRUPT_SET };
		got = irqd_ring_post_many(mem, bell, e, k);
		posted += got;
		if (got < k)
			sched_yield();
		if (posted % 50000 < 8 && posted < n)   /* now and then, let the consumer fall asleep */
			usleep(200);
	}
	while (irqd_ring_pending(mem))
		sched_yield();
	/* garbage head: counted as one error, resynced */
	{
		struct irqd_ring_hdr *h = mem;
		uint64_t head = atomic_load_explicit(IRQD_RING_A64(&h->head), memory_order_relaxed);
		atomic_store_explicit(IRQD_RING_A64(&h->head), head + 12345, memory_order_release);
		irqd_ring_kick(h, bell);
		{ uint64_t one = 1; ssize_t w = write(bell, &one, 8); (void)w; }
		while (irqd_ring_pending(mem))
			sched_yield();
	}
	{
		struct irqd_ring_stats s;
		irqd_ring_get_stats(r, &s);
		irqd_ring_stop(r);
		for (uint32_t i = 0, m = irqd_xics_source_stats(x, 0, st, NSRC); i < m; i++)
			total += st[i].triggers;
		printf("posted %llu applied %llu triggers %llu errors %llu resyncs %llu sleeps %llu\n",
		       (unsigned long long)posted, (unsigned long long)s.applied, (unsigned long long)total,
		       (unsigned long long)s.errors, (unsigned long long)s.resyncs, (unsigned long long)s.sleeps);
		if (s.applied != n || (total & 0xFFFFFFFFu) != (n & 0xFFFFFFFFu) || s.errors != 1 || s.resyncs != 1)
			return 1;
	}
	munmap(mem, size);
	close(bell);
	close(notify);
	irqd_xics_free(x);
	return 0;
}
