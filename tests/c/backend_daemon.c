/* SPDX-License-Identifier: MIT */
/*
 * xdev backend: the daemon, through include/irqd/client.h.  Each device has
 * its own connection, so a test that stops early still frees its device
 * (a non-PERSIST device dies with its last holder).  `rises S` is counted
 * from a SET_OUTPUT eventfd attached right after `connect S` (S8.1).
 */
#define _GNU_SOURCE 1
#include "xdev.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include "irqd/client.h"

#define MAX_OUT 64

struct xdev {
	struct irqd_client c;
	uint32_t handle;
	int out_fd[MAX_OUT];        /* output eventfd per server, -1 if none */
	uint64_t rises[MAX_OUT];
};

static struct xdev *d_create(void)
{
	struct xdev *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	for (int i = 0; i < MAX_OUT; i++)
		d->out_fd[i] = -1;
	if (irqd_client_connect(&d->c, NULL) < 0) {
		free(d);
		return NULL;
	}
	if (irqd_create_device(&d->c, IRQD_KVM_DEV_TYPE_XICS, 0, &d->handle) < 0) {
		irqd_client_close(&d->c);
		free(d);
		return NULL;
	}
	return d;
}

static void d_destroy(struct xdev *d)
{
	irqd_destroy_device(&d->c, d->handle);
	for (int i = 0; i < MAX_OUT; i++)
		if (d->out_fd[i] >= 0)
			close(d->out_fd[i]);
	irqd_client_close(&d->c);
	free(d);
}

static int d_connect(struct xdev *d, uint32_t s)
{
	int r = irqd_connect_vcpu(&d->c, d->handle, s);

	if (r == 0 && s < MAX_OUT) {
		int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (fd < 0)
			return -errno;
		r = irqd_set_output(&d->c, d->handle, s, 0, fd);
		if (r < 0) {
			close(fd);
			return r;
		}
		d->out_fd[s] = fd;
	}
	return r;
}

static int d_create_ics(struct xdev *d, uint32_t f, uint32_t n, uint32_t fl)
{
	return irqd_create_ics(&d->c, d->handle, f, n, fl);
}

static int d_line(struct xdev *d, uint32_t i, uint32_t l)
{
	return irqd_irq_line(&d->c, d->handle, i, l);
}

static int d_get_src(struct xdev *d, uint64_t a, uint64_t *v)
{
	return irqd_get_device_attr(&d->c, d->handle, IRQD_KVM_DEV_XICS_GRP_SOURCES, a, v);
}

static int d_set_src(struct xdev *d, uint64_t a, uint64_t v)
{
	return irqd_set_device_attr(&d->c, d->handle, IRQD_KVM_DEV_XICS_GRP_SOURCES, a, v);
}

static int d_has_src(struct xdev *d, uint64_t a)
{
	return irqd_has_device_attr(&d->c, d->handle, IRQD_KVM_DEV_XICS_GRP_SOURCES, a);
}

static int d_get_icp(struct xdev *d, uint32_t s, uint64_t *v)
{
	return irqd_get_one_reg(&d->c, d->handle, s, IRQD_KVM_REG_PPC_ICP_STATE, v);
}

static int d_set_icp(struct xdev *d, uint32_t s, uint64_t v)
{
	return irqd_set_one_reg(&d->c, d->handle, s, IRQD_KVM_REG_PPC_ICP_STATE, v);
}

static int d_hcall(struct xdev *d, uint32_t s, uint64_t nr, uint64_t r[4])
{
	return irqd_hcall(&d->c, d->handle, s, nr, r);
}

static int d_rtas(struct xdev *d, uint32_t t, uint32_t na, uint32_t nr, uint32_t b[12])
{
	return irqd_rtas(&d->c, d->handle, t, na, nr, b);
}

static int d_rises(struct xdev *d, uint32_t s, uint64_t *n)
{
	uint64_t v, word;

	if (s >= MAX_OUT || d->out_fd[s] < 0)
		return -ENOENT;
	/* a round trip first: every request before it has been handled, and
	 * the daemon signals the output while handling the request that
	 * raised it */
	if (irqd_get_one_reg(&d->c, d->handle, s, IRQD_KVM_REG_PPC_ICP_STATE, &word) < 0)
		return -ENOENT;
	if (read(d->out_fd[s], &v, sizeof(v)) == (ssize_t)sizeof(v))
		d->rises[s] += v;
	*n = d->rises[s];
	return 0;
}

static int d_snapshot(struct xdev *d, struct xsnap *out)
{
	struct irqd_state_dump s;
	int r = irqd_dump_state(&d->c, d->handle, &s);

	out->src = s.sources;
	out->nsrc = s.nsources;
	out->icp = s.icps;
	out->nicp = s.nicps;
	if (r < 0)
		xsnap_free(out);
	return r;
}

static struct xbackend daemon_backend = {
	.name = "daemon",
	.create = d_create,
	.destroy = d_destroy,
	.connect = d_connect,
	.create_ics = d_create_ics,
	.line = d_line,
	.get_src = d_get_src,
	.set_src = d_set_src,
	.has_src = d_has_src,
	.get_icp = d_get_icp,
	.set_icp = d_set_icp,
	.hcall = d_hcall,
	.rtas = d_rtas,
	.rises = d_rises,
	.snapshot = d_snapshot,
	.max_servers = IRQD_MAX_SERVERS,
};

const struct xbackend *xb_daemon = &daemon_backend;

/* The daemon's own limit (HELLO), for X-001's `connect MAX`. */
void xb_daemon_set_max_servers(uint32_t n)
{
	daemon_backend.max_servers = n;
}

/* For harness tests that need the connection and handle behind a device. */
struct irqd_client *xdev_client(struct xdev *d)
{
	return &d->c;
}

uint32_t xdev_handle(struct xdev *d)
{
	return d->handle;
}
