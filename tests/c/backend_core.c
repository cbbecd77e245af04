/* SPDX-License-Identifier: MIT */
/* xdev backend: the C core (irqd/core/xics.h) called directly. */
#include "xdev.h"

#include <errno.h>
#include <stdlib.h>
#include "irqd/core/xics.h"

#define X(d) ((struct irqd_xics *)(void *)(d))

static struct xdev *c_create(void)
{
	return (struct xdev *)(void *)irqd_xics_new();
}

static void c_destroy(struct xdev *d)
{
	irqd_xics_free(X(d));
}

static int c_connect(struct xdev *d, uint32_t s) { return irqd_xics_connect_vcpu(X(d), s); }
static int c_create_ics(struct xdev *d, uint32_t f, uint32_t n, uint32_t fl) { return irqd_xics_create_ics(X(d), f, n, fl); }
static int c_line(struct xdev *d, uint32_t i, uint32_t l) { return irqd_xics_irq_line(X(d), i, l); }
static int c_get_src(struct xdev *d, uint64_t a, uint64_t *v) { return irqd_xics_get_source(X(d), a, v); }
static int c_set_src(struct xdev *d, uint64_t a, uint64_t v) { return irqd_xics_set_source(X(d), a, v); }
static int c_has_src(struct xdev *d, uint64_t a) { return irqd_xics_has_source(X(d), a); }
static int c_get_icp(struct xdev *d, uint32_t s, uint64_t *v) { return irqd_xics_get_icp(X(d), s, v); }
static int c_set_icp(struct xdev *d, uint32_t s, uint64_t v) { return irqd_xics_set_icp(X(d), s, v); }
static int c_hcall(struct xdev *d, uint32_t s, uint64_t nr, uint64_t r[4]) { return irqd_xics_hcall(X(d), s, nr, r); }
static int c_rtas(struct xdev *d, uint32_t t, uint32_t na, uint32_t nr, uint32_t b[12]) { return irqd_xics_rtas(X(d), t, na, nr, b); }
static int c_rises(struct xdev *d, uint32_t s, uint64_t *n) { return irqd_xics_output_rises(X(d), s, n); }

static int c_snapshot(struct xdev *d, struct xsnap *out)
{
	uint32_t ns = irqd_xics_nr_sources(X(d)), ni = irqd_xics_nr_servers(X(d));
	uint32_t from = 0, n;

	out->src = calloc(ns + 1, sizeof(*out->src));
	out->icp = calloc(ni + 1, sizeof(*out->icp));
	out->nsrc = out->nicp = 0;
	if (!out->src || !out->icp) {
		xsnap_free(out);
		return -ENOMEM;
	}
	/* page through in small chunks, as the daemon does */
	while (out->nsrc < ns && (n = irqd_xics_dump_sources(X(d), from, out->src + out->nsrc,
							     ns - (uint32_t)out->nsrc < 7 ? ns - (uint32_t)out->nsrc : 7)) > 0) {
		out->nsrc += n;
		from = out->src[out->nsrc - 1].irq + 1;
	}
	from = 0;
	while (out->nicp < ni && (n = irqd_xics_dump_icps(X(d), from, out->icp + out->nicp,
							  ni - (uint32_t)out->nicp)) > 0) {
		out->nicp += n;
		from = out->icp[out->nicp - 1].server + 1;
	}
	/* the dump must list exactly what the counters say */
	if (out->nsrc != ns || out->nicp != ni) {
		xsnap_free(out);
		return -EPROTO;
	}
	return 0;
}

static const struct xbackend core_backend = {
	.name = "core",
	.create = c_create,
	.destroy = c_destroy,
	.connect = c_connect,
	.create_ics = c_create_ics,
	.line = c_line,
	.get_src = c_get_src,
	.set_src = c_set_src,
	.has_src = c_has_src,
	.get_icp = c_get_icp,
	.set_icp = c_set_icp,
	.hcall = c_hcall,
	.rtas = c_rtas,
	.rises = c_rises,
	.snapshot = c_snapshot,
	.max_servers = IRQD_MAX_SERVERS,
};

const struct xbackend *xb_core = &core_backend;
