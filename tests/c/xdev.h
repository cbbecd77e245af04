/* SPDX-License-Identifier: MIT */
/*
 * One device interface, two backends (crosvm's irqchip tests are the
 * model): the scenarios in scenarios.c are written once against `XB` and run
 * on the C core called directly (backend_core.c, in test_core) and on the
 * daemon through include/irqd/client.h (backend_daemon.c, in the harness).
 */
#ifndef IRQD_TEST_XDEV_H
#define IRQD_TEST_XDEV_H

#include <stddef.h>
#include <stdint.h>
#include "irqd/abi.h"
#include "runner.h"

struct xdev;

struct xsnap {                     /* a DUMP_STATE snapshot */
	struct irqd_source_state *src;
	size_t nsrc;
	struct irqd_icp_state *icp;
	size_t nicp;
};

struct xbackend {
	const char *name;
	struct xdev *(*create)(void);   /* NULL on failure */
	void (*destroy)(struct xdev *);
	int (*connect)(struct xdev *, uint32_t server);
	int (*create_ics)(struct xdev *, uint32_t first, uint32_t count, uint32_t flags);
	int (*line)(struct xdev *, uint32_t irq, uint32_t level);
	int (*get_src)(struct xdev *, uint64_t attr, uint64_t *value);
	int (*set_src)(struct xdev *, uint64_t attr, uint64_t value);
	int (*has_src)(struct xdev *, uint64_t attr);
	int (*get_icp)(struct xdev *, uint32_t server, uint64_t *value);
	int (*set_icp)(struct xdev *, uint32_t server, uint64_t value);
	int (*hcall)(struct xdev *, uint32_t server, uint64_t nr, uint64_t reg[4]);
	int (*rtas)(struct xdev *, uint32_t token, uint32_t nargs, uint32_t nret, uint32_t buf[12]);
	/* 0 -> 1 transitions of server's output since connect */
	int (*rises)(struct xdev *, uint32_t server, uint64_t *n);
	int (*snapshot)(struct xdev *, struct xsnap *out);
	uint32_t max_servers;
};

extern const struct xbackend *XB;

/* Fresh device, freed automatically after the test (xdev_cleanup). */
struct xdev *xdev_new(void);
void xdev_cleanup(void);
void xsnap_free(struct xsnap *s);
/* "same A B": identical snapshots (handles ignored). */
int xsnap_same(const struct xsnap *a, const struct xsnap *b);
/* "migrate A B": abi.md S3.17 order through the backend's own ops. */
int xdev_migrate(struct xdev *a, struct xdev *b);

/* ---- scenario notation (xics-semantics.md S8.1) as checks ---- */

#define SET IRQD_KVM_INTERRUPT_SET
#define UNSET IRQD_KVM_INTERRUPT_UNSET
#define SET_LEVEL IRQD_KVM_INTERRUPT_SET_LEVEL
#define EDGE 0
#define LEVEL IRQD_ICS_LEVEL
#define H_PARAMETER_U64 ((uint64_t)(int64_t)IRQD_H_PARAMETER)

static inline int x_rtas4(struct xdev *d, uint32_t token, uint32_t nargs, uint32_t nret, uint32_t a0,
			  uint32_t a1, uint32_t a2, uint32_t out[12])
{
	for (int i = 0; i < 12; i++)
		out[i] = 0;
	out[0] = a0;
	out[1] = a1;
	out[2] = a2;
	return XB->rtas(d, token, nargs, nret, out);
}

static inline int x_hcall2(struct xdev *d, uint32_t server, uint64_t nr, uint64_t a0, uint64_t a1,
			   uint64_t r[4])
{
	r[0] = a0;
	r[1] = a1;
	r[2] = r[3] = 0;
	return XB->hcall(d, server, nr, r);
}

/* Each macro expects success of the transport and checks the result. */
#define OK(expr) CHECK_EQ((expr), 0)
#define ERR(expr, e) CHECK_EQ((expr), -(e))

#define CONNECT(d, s) OK(XB->connect(d, s))
#define ICS(d, f, n, fl) OK(XB->create_ics(d, f, n, fl))
#define LINE(d, i, l) OK(XB->line(d, i, l))
#define GET_SRC(d, i, w)                                      \
	do {                                                  \
		uint64_t v_ = 0;                              \
		OK(XB->get_src(d, i, &v_));                   \
		CHECK_EQ(v_, (uint64_t)(w));                  \
	} while (0)
#define SET_SRC(d, i, w) OK(XB->set_src(d, i, w))
#define GET_ICP(d, s, w)                                      \
	do {                                                  \
		uint64_t v_ = 0;                              \
		OK(XB->get_icp(d, s, &v_));                   \
		CHECK_EQ(v_, (uint64_t)(w));                  \
	} while (0)
#define SET_ICP(d, s, w) OK(XB->set_icp(d, s, w))
#define RISES(d, s, n)                                        \
	do {                                                  \
		uint64_t n_ = 0;                              \
		OK(XB->rises(d, s, &n_));                     \
		CHECK_EQ(n_, (n));                            \
	} while (0)
#define HSTATUS(d, s, nr, a0, a1, st)                           \
	do {                                                    \
		uint64_t r_[4];                                 \
		OK(x_hcall2(d, s, nr, a0, a1, r_));             \
		CHECK_EQ((int64_t)r_[0], (int64_t)(st));        \
	} while (0)
#define XIRR(d, s, x)                                           \
	do {                                                    \
		uint64_t r_[4];                                 \
		OK(x_hcall2(d, s, IRQD_H_XIRR, 0, 0, r_));      \
		CHECK_EQ((int64_t)r_[0], IRQD_H_SUCCESS);       \
		CHECK_EQ(r_[1], (uint64_t)(x));                 \
	} while (0)
#define EOI(d, s, x) HSTATUS(d, s, IRQD_H_EOI, x, 0, IRQD_H_SUCCESS)
#define CPPR(d, s, c) HSTATUS(d, s, IRQD_H_CPPR, c, 0, IRQD_H_SUCCESS)
#define IPI(d, s, t, m, st) HSTATUS(d, s, IRQD_H_IPI, t, m, st)
#define RTAS_ST(d, tok, na, nr, a0, a1, a2, st)                                 \
	do {                                                                    \
		uint32_t b_[12];                                                \
		OK(x_rtas4(d, tok, na, nr, a0, a1, a2, b_));                    \
		CHECK_EQ((int32_t)b_[na], (int32_t)(st));                       \
	} while (0)
#define SET_XIVE_ST(d, i, s, p, st) RTAS_ST(d, IRQD_RTAS_SET_XIVE, 3, 1, i, s, p, st)
#define SET_XIVE(d, i, s, p) SET_XIVE_ST(d, i, s, p, 0)
#define INT_OFF(d, i) RTAS_ST(d, IRQD_RTAS_INT_OFF, 1, 1, i, 0, 0, 0)
#define INT_ON(d, i) RTAS_ST(d, IRQD_RTAS_INT_ON, 1, 1, i, 0, 0, 0)
#define GET_XIVE(d, i, s, p)                                                    \
	do {                                                                    \
		uint32_t b_[12];                                                \
		OK(x_rtas4(d, IRQD_RTAS_GET_XIVE, 1, 3, i, 0, 0, b_));          \
		CHECK_EQ((int32_t)b_[1], 0);                                    \
		CHECK_EQ(b_[2], (s));                                           \
		CHECK_EQ(b_[3], (p));                                           \
	} while (0)

/* S0 and S1 of xics-semantics.md S8.1 */
#define SETUP_S0(d)                             \
	do {                                    \
		CONNECT(d, 0);                  \
		ICS(d, 16, 16, EDGE);           \
		ICS(d, 32, 16, LEVEL);          \
		CPPR(d, 0, 0xFF);               \
	} while (0)
#define SETUP_S1(d)                             \
	do {                                    \
		SETUP_S0(d);                    \
		CONNECT(d, 1);                  \
		CPPR(d, 1, 0xFF);               \
	} while (0)

#define NEWDEV(d)                                               \
	struct xdev *d = xdev_new();                            \
	CHECK_MSG(d != NULL, "%s: cannot create a device", XB->name)

#endif
