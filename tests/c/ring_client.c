/* SPDX-License-Identifier: MIT */
/*
 * The C client's ring helpers (client.h "ring" block) against a daemon:
 * open a ring, post triggers (one, then more than the ring holds, retrying
 * on -EAGAIN), check the daemon applied each exactly once, close (DEASSIGN).
 * Prints "applied N errors E" and exits 0, or a reason and exits 1.
 *
 * usage: ring_client SOCKET
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "irqd/client.h"
#include "irqd/ring_producer.h"

#define FIRST 4096

static int fail(struct irqd_client *c, const char *what, int rc)
{
	fprintf(stderr, "%s: %s (%s)\n", what, strerror(-rc), c ? irqd_client_last_error(c) : "");
	return 1;
}

int main(int argc, char **argv)
{
	struct irqd_client c;
	struct irqd_client_ring r;
	uint32_t handle;
	int rc, full = 0;
	uint64_t posted = 0;
	struct irqd_ring_hdr *h;

	if (argc != 2)
		return 2;
	if ((rc = irqd_client_connect(&c, argv[1])) < 0)
		return fail(NULL, "connect", rc);
	if (!(c.hello.features & IRQD_FEAT_RING))
		return fail(&c, "no IRQD_FEAT_RING", -EOPNOTSUPP);
	if ((rc = irqd_create_device(&c, IRQD_KVM_DEV_TYPE_XICS, 0, &handle)) < 0 ||
	    (rc = irqd_create_ics(&c, handle, FIRST, 16, 0)) < 0)
		return fail(&c, "set-up", rc);
	if ((rc = irqd_client_ring_open(&c, handle, 99, &r)) != -EINVAL)
		return fail(&c, "entries_log2 99 not refused", rc);
	if ((rc = irqd_client_ring_open(&c, handle, 4, &r)) < 0)
		return fail(&c, "ring open", rc);
	h = r.mem;
	while (posted < 1000) {
		rc = irqd_ring_post1(r.mem, r.doorbell, FIRST + (uint32_t)(posted % 16), IRQD_KVM_INTERRUPT_SET);
		if (rc == -EAGAIN) {
			full++;
			sched_yield();
			continue;
		}
		posted++;
	}
	/* two bad entries: counted, not applied */
	while (irqd_ring_post1(r.mem, r.doorbell, 5, IRQD_KVM_INTERRUPT_SET) == -EAGAIN)
		sched_yield();
	while (irqd_ring_post1(r.mem, r.doorbell, FIRST, 7) == -EAGAIN)
		sched_yield();
	for (long spins = 0; irqd_ring_pending(r.mem); spins++) {
		if (spins > 200000000L)
			return fail(&c, "ring not drained", -ETIMEDOUT);
		sched_yield();
	}
	printf("applied %llu errors %llu\n",
	       (unsigned long long)atomic_load_explicit(IRQD_RING_A64(&h->applied), memory_order_acquire),
	       (unsigned long long)atomic_load_explicit(IRQD_RING_A64(&h->errors), memory_order_acquire));
	if ((rc = irqd_client_ring_close(&c, &r)) < 0)
		return fail(&c, "ring close", rc);
	if ((rc = irqd_destroy_device(&c, handle)) < 0)
		return fail(&c, "destroy", rc);
	irqd_client_close(&c);
	return 0;
}
