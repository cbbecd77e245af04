/* SPDX-License-Identifier: MIT */
/* Backend-independent parts of the device interface (xdev.h). */
#include "xdev.h"

#include <stdlib.h>
#include <string.h>

#define MAX_LIVE 16

static struct xdev *live[MAX_LIVE];
static int nlive;

struct xdev *xdev_new(void)
{
	struct xdev *d;

	if (nlive == MAX_LIVE)
		return NULL;
	d = XB->create();
	if (d)
		live[nlive++] = d;
	return d;
}

void xdev_cleanup(void)
{
	while (nlive > 0)
		XB->destroy(live[--nlive]);
}

void xsnap_free(struct xsnap *s)
{
	free(s->src);
	free(s->icp);
	memset(s, 0, sizeof(*s));
}

int xsnap_same(const struct xsnap *a, const struct xsnap *b)
{
	if (a->nsrc != b->nsrc || a->nicp != b->nicp)
		return 0;
	for (size_t i = 0; i < a->nsrc; i++)
		if (a->src[i].irq != b->src[i].irq || a->src[i].state != b->src[i].state)
			return 0;
	for (size_t i = 0; i < a->nicp; i++)
		if (a->icp[i].server != b->icp[i].server || a->icp[i].state != b->icp[i].state)
			return 0;
	return 1;
}

int xdev_migrate(struct xdev *a, struct xdev *b)
{
	struct xsnap s;
	int r = XB->snapshot(a, &s);

	if (r < 0)
		return r;
	for (size_t i = 0; r == 0 && i < s.nicp; i++)
		r = XB->connect(b, s.icp[i].server);
	for (size_t i = 0; r == 0 && i < s.nsrc; i++)
		r = XB->set_src(b, s.src[i].irq, s.src[i].state);
	for (size_t i = 0; r == 0 && i < s.nicp; i++)
		r = XB->set_icp(b, s.icp[i].server, s.icp[i].state);
	xsnap_free(&s);
	return r;
}
