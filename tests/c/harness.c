/* SPDX-License-Identifier: MIT */
/*
 * irqd C test harness: the scenarios of scenarios.c against the daemon
 * (backend_daemon.c), plus what only the daemon does: devices and
 * connections, batches, eventfds, dumps, restore, and malformed requests.
 * Connects to $IRQD_SOCKET (tests/test_c_harness.py starts the daemon).
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "irqd/client.h"
#include "xdev.h"

extern const struct xbackend *xb_daemon;
void xb_daemon_set_max_servers(uint32_t n);
struct irqd_client *xdev_client(struct xdev *d);
uint32_t xdev_handle(struct xdev *d);

const struct xbackend *XB;

/* Bounded wait for an fd event (the daemon reads eventfds in its own loop):
 * a deadline, not a timing assertion. */
static int wait_fd(int fd, short events, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = events };
	int r;

	do
		r = poll(&p, 1, timeout_ms);
	while (r < 0 && errno == EINTR);
	return r > 0 ? p.revents : 0;
}

static uint64_t read_efd(int fd)
{
	uint64_t v = 0;

	if (read(fd, &v, sizeof(v)) != (ssize_t)sizeof(v))
		return 0;
	return v;
}

/* The device's generation from LIST_DEVICES (0 if not listed). */
static uint64_t generation(struct irqd_client *c, uint32_t handle, struct irqd_device_info *info)
{
	struct irqd_device_info list[64];
	size_t n = 0;

	if (irqd_list_devices(c, list, 64, &n) < 0)
		return 0;
	for (size_t i = 0; i < n && i < 64; i++)
		if (list[i].handle == handle) {
			if (info)
				*info = list[i];
			return list[i].generation;
		}
	return 0;
}

/* A request answered with an error: errno, non-empty extack text. */
#define CHECK_FAILS(c, expr, e)                                                         \
	do {                                                                            \
		CHECK_EQ((expr), -(e));                                                 \
		CHECK_MSG(irqd_client_last_error(c)[0] != '\0', "no extack message");   \
	} while (0)

/* ---- connection and devices ---- */

TEST(hello_reports_version_and_limits)
{
	struct irqd_client c;
	struct irqd_hello h;

	OK(irqd_client_connect(&c, NULL));
	OK(irqd_client_hello(&c, 0x80000000u, &h));   /* unknown feature bits are no error */
	irqd_client_close(&c);
	CHECK_EQ(h.version, IRQD_ABI_VERSION);
	CHECK(h.max_record >= 65536);
	CHECK(h.max_fds >= 16);
	CHECK_EQ(h.max_irqs, IRQD_KVMPPC_XICS_NR_IRQS);
	CHECK(h.max_servers > 0);
	CHECK(h.max_devices > 0);
	CHECK_EQ(h.features & 0x80000000u, 0);
}

TEST(connect_uses_irqd_socket_and_reports_missing_socket)
{
	struct irqd_client c;

	CHECK_EQ(irqd_client_connect(&c, "/nonexistent/irqd.sock"), -ENOENT);
	CHECK_EQ(c.fd, -1);
	OK(irqd_client_connect(&c, getenv("IRQD_SOCKET")));
	irqd_client_close(&c);
}

TEST(create_device_list_and_destroy)
{
	struct irqd_client c;
	struct irqd_device_info info;
	uint32_t h, h2;
	size_t n0 = 0, n1 = 0;
	struct irqd_device_info list[64];

	OK(irqd_client_connect(&c, NULL));
	OK(irqd_create_device(&c, IRQD_KVM_DEV_TYPE_XICS, 0, &h));
	CHECK(h != 0);
	OK(irqd_create_ics(&c, h, 16, 16, 0));
	OK(irqd_create_ics(&c, h, 1024, 4, IRQD_ICS_LEVEL));
	OK(irqd_connect_vcpu(&c, h, 0));
	OK(irqd_connect_vcpu(&c, h, 3));
	CHECK(generation(&c, h, &info) != 0);
	CHECK_EQ(info.type, IRQD_KVM_DEV_TYPE_XICS);
	CHECK_EQ(info.owner_uid, getuid());
	CHECK_EQ(info.flags, 0);
	CHECK_EQ(info.nr_ics, 2);
	CHECK_EQ(info.nr_sources, 20);
	CHECK_EQ(info.nr_servers, 2);
	CHECK_EQ(info.holders, 1);
	/* another type: ENODEV; TEST only checks, creates nothing */
	OK(irqd_list_devices(&c, list, 64, &n0));
	CHECK_FAILS(&c, irqd_create_device(&c, 4, 0, NULL), ENODEV);
	OK(irqd_create_device(&c, IRQD_KVM_DEV_TYPE_XICS, IRQD_CREATE_TEST, NULL));
	CHECK_FAILS(&c, irqd_create_device(&c, 2, IRQD_CREATE_TEST, NULL), ENODEV);
	OK(irqd_list_devices(&c, list, 64, &n1));
	CHECK_EQ(n1, n0);
	/* handles are never reused */
	OK(irqd_create_device(&c, IRQD_KVM_DEV_TYPE_XICS, 0, &h2));
	CHECK(h2 != h);
	OK(irqd_destroy_device(&c, h));
	CHECK_FAILS(&c, irqd_irq_line(&c, h, 16, IRQD_KVM_INTERRUPT_SET), EBADF);
	CHECK_FAILS(&c, irqd_destroy_device(&c, h), EBADF);
	CHECK_EQ(generation(&c, h, NULL), 0);
	OK(irqd_destroy_device(&c, h2));
	irqd_client_close(&c);
}

TEST(device_lives_while_a_holder_remains_and_dies_with_the_last)
{
	struct irqd_client a, b;
	uint32_t h;
	uint64_t v;
	struct irqd_device_info info;

	OK(irqd_client_connect(&a, NULL));
	OK(irqd_client_connect(&b, NULL));
	OK(irqd_create_device(&a, IRQD_KVM_DEV_TYPE_XICS, 0, &h));
	OK(irqd_connect_vcpu(&a, h, 0));
	OK(irqd_attach(&b, h));
	OK(irqd_attach(&b, h));   /* a second ATTACH changes nothing */
	CHECK(generation(&b, h, &info) != 0);
	CHECK_EQ(info.holders, 2);
	irqd_client_close(&a);
	OK(irqd_get_one_reg(&b, h, 0, IRQD_KVM_REG_PPC_ICP_STATE, &v));
	CHECK_EQ(v, 0x00000000FFFF0000);
	/* the daemon handles a's close when it next polls a's socket: wait for
	 * it (a deadline, not a timing assertion) */
	for (int i = 0; i < 500; i++) {
		CHECK(generation(&b, h, &info) != 0);
		if (info.holders == 1)
			break;
		usleep(10000);
	}
	CHECK_EQ(info.holders, 1);
	irqd_client_close(&b);
	/* likewise for b's close, after which the device must go */
	OK(irqd_client_connect(&a, NULL));
	int gone = 0;
	for (int i = 0; i < 500 && !gone; i++) {
		gone = generation(&a, h, NULL) == 0;
		if (!gone)
			usleep(10000);
	}
	int r = irqd_get_one_reg(&a, h, 0, IRQD_KVM_REG_PPC_ICP_STATE, &v);
	irqd_client_close(&a);
	CHECK_MSG(gone, "device %u still listed 5 s after its last holder closed", h);
	CHECK_EQ(r, -EBADF);
}

/* ---- eventfds ---- */

TEST(irqfd_trigger_presents_edge_and_output_eventfd_signals)
{
	NEWDEV(d);
	struct irqd_client *c = xdev_client(d);
	uint32_t h = xdev_handle(d);
	int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	int out = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	uint64_t one = 1;
	int rv;

	CHECK(efd >= 0 && out >= 0);
	SETUP_S0(d);
	SET_XIVE(d, 16, 0, 5);
	rv = irqd_set_output(c, h, 0, 0, out) == 0 && irqd_irqfd(c, h, 16, 0, efd, -1) == 0;
	if (rv)
		rv = write(efd, &one, sizeof(one)) == (ssize_t)sizeof(one);
	if (rv)
		rv = (wait_fd(out, POLLIN, 5000) & POLLIN) != 0;
	close(efd);
	CHECK_MSG(rv, "irqfd trigger did not raise the output within 5 s (%s)", irqd_client_last_error(c));
	CHECK_EQ(read_efd(out), 1);
	close(out);
	GET_ICP(d, 0, 0xFF000010FF050000);
	GET_SRC(d, 16, 0x0000080500000000);
	XIRR(d, 0, 0xFF000010);
	EOI(d, 0, 0xFF000010);
	OK(irqd_irqfd(c, h, 16, IRQD_IRQFD_DEASSIGN, -1, -1));
	GET_ICP(d, 0, 0xFF000000FFFF0000);
}

TEST(x067_irqfd_resample_lsi_represented_before_line_reset)
{
	NEWDEV(d);
	struct irqd_client *c = xdev_client(d);
	uint32_t h = xdev_handle(d);
	int trig = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	int rs = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	int r;

	CHECK(trig >= 0 && rs >= 0);
	SETUP_S0(d);
	SET_XIVE(d, 32, 0, 5);
	r = irqd_irqfd(c, h, 32, IRQD_IRQFD_RESAMPLE, trig, rs);
	close(trig);
	if (r < 0)
		close(rs);
	OK(r);
	LINE(d, 32, 1);
	XIRR(d, 0, 0xFF000020);
	EOI(d, 0, 0xFF000020);
	GET_ICP(d, 0, 0xFF000020FF050000);
	GET_SRC(d, 32, 0x0000010500000000);
	XIRR(d, 0, 0xFF000020);
	EOI(d, 0, 0xFF000020);
	GET_ICP(d, 0, 0xFF000000FFFF0000);
	r = wait_fd(rs, POLLIN, 5000);
	uint64_t n = read_efd(rs);
	close(rs);
	CHECK_MSG(r & POLLIN, "resample eventfd never signalled");
	CHECK_EQ(n, 2);
	RISES(d, 0, 2);
}

TEST(output_eventfd_signals_at_once_when_already_asserted)
{
	NEWDEV(d);
	struct irqd_client *c = xdev_client(d);
	int out = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	int r, ev;

	CHECK(out >= 0);
	SETUP_S0(d);
	SET_XIVE(d, 16, 0, 5);
	LINE(d, 16, SET);
	r = irqd_set_output(c, xdev_handle(d), 0, 0, out);
	ev = r == 0 ? wait_fd(out, POLLIN, 5000) : 0;
	uint64_t n = read_efd(out);
	close(out);
	OK(r);
	CHECK_MSG(ev & POLLIN, "output eventfd not signalled on attach");
	CHECK_EQ(n, 1);
	CHECK_FAILS(c, irqd_set_output(c, xdev_handle(d), 9, IRQD_OUTPUT_DEASSIGN, -1), ENOENT);
	OK(irqd_set_output(c, xdev_handle(d), 0, IRQD_OUTPUT_DEASSIGN, -1));
}

/* ---- batches ---- */

/* 1000 distinct MSIs, all priority 5 on server 0: the first is presented,
 * the 999 others cannot displace it (equal priority) and wait in resend. */
static void check_thousand(struct xdev *d)
{
	struct irqd_stats_dump st;
	struct xsnap s;
	size_t presented = 0, resend = 0;
	int r;

	GET_ICP(d, 0, 0xFF000010FF050000);
	OK(XB->snapshot(d, &s));
	for (size_t i = 0; i < s.nsrc; i++) {
		if (s.src[i].state & IRQD_KVM_XICS_PRESENTED)
			presented++;
		if (s.src[i].state & IRQD_KVM_XICS_PENDING)
			resend++;
	}
	CHECK_EQ(s.nsrc, 1000);
	xsnap_free(&s);
	CHECK_EQ(presented, 1000);
	CHECK_EQ(resend, 999);
	r = irqd_get_stats(xdev_client(d), xdev_handle(d), &st);
	OK(r);
	size_t trig = 0;
	for (size_t i = 0; i < st.nsources; i++)
		trig += st.sources[i].triggers == 1;
	size_t ns = st.nsources;
	uint32_t deliv = st.nservers ? st.servers[0].deliveries : 0;
	irqd_stats_dump_free(&st);
	CHECK_EQ(ns, 1000);
	CHECK_EQ(trig, 1000);
	CHECK(deliv >= 1);
}

static void setup_thousand(struct xdev *d)
{
	struct irqd_batch b;
	struct irqd_client *c = xdev_client(d);
	uint32_t h = xdev_handle(d);

	CONNECT(d, 0);
	CPPR(d, 0, 0xFF);
	ICS(d, 16, 1000, EDGE);
	/* unmask all 1000 in batched SET_DEVICE_ATTRs (server 0, priority 5) */
	OK(irqd_batch_init(&b, c));
	for (uint32_t i = 0; i < 1000; i++) {
		struct irqd_device_attr m = { .handle = h, .group = IRQD_KVM_DEV_XICS_GRP_SOURCES,
					      .attr = 16 + i, .value = 0x0000000500000000 };
		if (irqd_batch_add(&b, IRQD_MSG_SET_DEVICE_ATTR, 0, &m, sizeof(m), NULL, 0) < 0)
			break;
	}
	int r = irqd_batch_send(&b);
	irqd_batch_free(&b);
	OK(r);
	CHECK_EQ(b.nfailed, 0);
	GET_SRC(d, 1015, 0x0000000500000000);
}

TEST(batch_of_1000_irq_line_messages_in_one_record)
{
	NEWDEV(d);
	struct irqd_batch b;
	struct irqd_client *c = xdev_client(d);
	uint64_t g0, g1;

	CALL(setup_thousand(d));
	/* 1000 IRQ_LINE messages (32 B each) fit one record with the barrier */
	CHECK(1000 * 32 + 16 <= c->max_record);
	g0 = generation(c, xdev_handle(d), NULL);
	OK(irqd_batch_init(&b, c));
	for (uint32_t i = 0; i < 1000; i++)
		if (irqd_batch_irq_line(&b, xdev_handle(d), 16 + i, IRQD_KVM_INTERRUPT_SET) < 0)
			break;
	CHECK_EQ(b.len, 1000 * 32);   /* nothing flushed early: one record */
	int r = irqd_batch_send(&b);
	uint32_t nmsgs = b.nmsgs, nfailed = b.nfailed;
	irqd_batch_free(&b);
	OK(r);
	CHECK_EQ(nfailed, 0);
	CHECK_EQ(nmsgs, 0);
	g1 = generation(c, xdev_handle(d), NULL);
	CHECK(g1 > g0);
	CALL(check_thousand(d));
}

TEST(batch_of_1000_entries_in_one_irq_line_batch_message)
{
	NEWDEV(d);
	struct irqd_irq_batch_entry e[1000];

	CALL(setup_thousand(d));
	for (uint32_t i = 0; i < 1000; i++) {
		e[i].irq = 16 + i;
		e[i].level = IRQD_KVM_INTERRUPT_SET;
	}
	OK(irqd_irq_line_batch(xdev_client(d), xdev_handle(d), e, 1000));
	CALL(check_thousand(d));
}

TEST(irq_line_batch_names_first_failed_entry_and_applies_the_rest)
{
	NEWDEV(d);
	struct irqd_client *c = xdev_client(d);
	struct irqd_irq_batch_entry e[4] = {
		{ 16, IRQD_KVM_INTERRUPT_SET },
		{ 15, IRQD_KVM_INTERRUPT_SET },   /* bad irq */
		{ 17, 2 },                         /* bad level */
		{ 17, IRQD_KVM_INTERRUPT_SET },
	};
	uint32_t off = 0;

	SETUP_S0(d);
	SET_XIVE(d, 16, 0, 5);
	SET_XIVE(d, 17, 0, 6);
	CHECK_FAILS(c, irqd_irq_line_batch(c, xdev_handle(d), e, 4), EINVAL);
	CHECK(irqd_client_last_offset(c, &off));
	CHECK_EQ(off, IRQD_NLMSG_HDRLEN + sizeof(struct irqd_irq_batch) + 1 * sizeof(e[0]));
	CHECK_MSG(strstr(irqd_client_last_error(c), "2") != NULL, "message does not say 2 failed: %s",
		  irqd_client_last_error(c));
	GET_SRC(d, 16, 0x0000080500000000);
	GET_SRC(d, 17, 0x00000C0600000000);   /* presented behind 16: resend */
	/* count 0 is a valid no-op */
	OK(irqd_irq_line_batch(c, xdev_handle(d), e, 0));
}

TEST(batch_barrier_collects_each_failure_in_order)
{
	NEWDEV(d);
	struct irqd_client *c = xdev_client(d);
	struct irqd_batch b;
	uint32_t h = xdev_handle(d);

	SETUP_S0(d);
	SET_XIVE(d, 16, 0, 5);
	OK(irqd_batch_init(&b, c));
	irqd_batch_irq_line(&b, h, 16, IRQD_KVM_INTERRUPT_SET);
	irqd_batch_irq_line(&b, h, 48, IRQD_KVM_INTERRUPT_SET);      /* unconfigured */
	irqd_batch_irq_line(&b, h + 1000, 16, IRQD_KVM_INTERRUPT_SET);   /* no such device */
	irqd_batch_irq_line(&b, h, 16, 7);                           /* bad level */
	int r = irqd_batch_send(&b);
	uint32_t nf = b.nfailed;
	irqd_batch_free(&b);
	CHECK_FAILS(c, r, EINVAL);
	CHECK_EQ(nf, 3);
	CHECK_EQ(c->async_errors, 0);
	GET_SRC(d, 16, 0x0000080500000000);
}

TEST(batch_spanning_several_records_counts_every_failure)
{
	NEWDEV(d);
	struct irqd_client *c = xdev_client(d);
	struct irqd_batch b;
	struct irqd_irq_batch_entry e[3] = { { 17, IRQD_KVM_INTERRUPT_SET }, { 4000, 1 }, { 18, 1 } };
	uint32_t h = xdev_handle(d);
	size_t per_record;

	SETUP_S0(d);
	SET_XIVE(d, 16, 0, 5);
	OK(irqd_batch_init(&b, c));
	/* 5000 IRQ_LINEs (32 B each) need several records; every 1000th is
	 * for an unconfigured number; one IRQ_LINE_BATCH message with one bad
	 * entry at the end */
	for (uint32_t i = 0; i < 5000; i++)
		if (irqd_batch_irq_line(&b, h, i % 1000 == 999 ? 48 : 16, IRQD_KVM_INTERRUPT_SET) < 0)
			break;
	OK(irqd_batch_irq_lines(&b, h, e, 3));
	per_record = (c->max_record - IRQD_NLMSG_HDRLEN) / 32;
	CHECK(5000 > per_record);   /* so this really spans records */
	int r = irqd_batch_send(&b);
	uint32_t nf = b.nfailed;
	irqd_batch_free(&b);
	CHECK_FAILS(c, r, EINVAL);
	CHECK_EQ(nf, 6);   /* 5 IRQ_LINEs + the batch message */
	CHECK_EQ(c->async_errors, 0);
	GET_SRC(d, 16, 0x0000180500000000);   /* presented, then queued */
	GET_SRC(d, 17, 0x00000EFF00000000);   /* masked: masked-pending */
	GET_SRC(d, 18, 0x00000EFF00000000);
}

TEST(batch_hands_fds_to_fd_taking_messages_in_order)
{
	NEWDEV(d);
	struct irqd_client *c = xdev_client(d);
	struct irqd_batch b;
	uint32_t h = xdev_handle(d);
	int out0 = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), out1 = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	int r, ev;
	uint64_t n0, n1;

	CHECK(out0 >= 0 && out1 >= 0);
	SETUP_S1(d);
	SET_XIVE(d, 17, 1, 5);
	OK(irqd_batch_init(&b, c));
	struct irqd_output m0 = { .handle = h, .server = 0 }, m1 = { .handle = h, .server = 1 };
	irqd_batch_add(&b, IRQD_MSG_SET_OUTPUT, 0, &m0, sizeof(m0), &out0, 1);
	irqd_batch_add(&b, IRQD_MSG_SET_OUTPUT, 0, &m1, sizeof(m1), &out1, 1);
	irqd_batch_irq_line(&b, h, 17, IRQD_KVM_INTERRUPT_SET);
	r = irqd_batch_send(&b);
	irqd_batch_free(&b);
	ev = r == 0 ? wait_fd(out1, POLLIN, 5000) : 0;
	n0 = read_efd(out0);
	n1 = read_efd(out1);
	close(out0);
	close(out1);
	OK(r);
	CHECK_MSG(ev & POLLIN, "server 1's eventfd not signalled");
	CHECK_EQ(n1, 1);
	CHECK_EQ(n0, 0);
	GET_ICP(d, 1, 0xFF000011FF050000);
}

TEST(several_replies_share_records_and_are_all_parsed)
{
	NEWDEV(d);
	struct irqd_client *c = xdev_client(d);
	struct irqd_batch b;
	uint32_t h = xdev_handle(d);
	int64_t seqs[3];
	uint32_t got = 0;

	SETUP_S0(d);
	OK(irqd_batch_init(&b, c));
	for (uint32_t s = 0; s < 3; s++) {
		struct irqd_one_reg m = { .handle = h, .server = 0, .id = IRQD_KVM_REG_PPC_ICP_STATE };
		seqs[s] = irqd_batch_add(&b, IRQD_MSG_GET_ONE_REG, 0, &m, sizeof(m), NULL, 0);
	}
	int r = irqd_batch_flush(&b);
	irqd_batch_free(&b);
	OK(r);
	while (got < 3) {
		struct irqd_msghdr mh;
		const uint8_t *p;
		size_t plen;
		struct irqd_one_reg rep;

		OK(irqd_client_recv_msg(c, &mh, &p, &plen));
		CHECK_EQ(mh.type, IRQD_MSG_GET_ONE_REG);
		CHECK_EQ(mh.seq, seqs[got]);   /* replies in request order */
		CHECK_EQ(plen, sizeof(rep));
		memcpy(&rep, p, sizeof(rep));
		CHECK_EQ(rep.value, 0xFF000000FFFF0000);
		got++;
	}
}

TEST(fire_and_forget_failure_is_reported_later)
{
	NEWDEV(d);
	struct irqd_client *c = xdev_client(d);

	SETUP_S0(d);
	OK(irqd_irq_line_noack(c, xdev_handle(d), 15, IRQD_KVM_INTERRUPT_SET));
	OK(irqd_irq_line_noack(c, xdev_handle(d), 16, IRQD_KVM_INTERRUPT_SET));   /* no reply */
	GET_ICP(d, 0, 0xFF000000FFFF0000);
	CHECK_EQ(c->async_errors, 1);
	CHECK_EQ(c->async_errno, EINVAL);
	GET_SRC(d, 16, 0x00000EFF00000000);   /* masked: masked-pending */
}

/* ---- save / restore ---- */

static void build_x065_state(struct xdev *a)
{
	SETUP_S1(a);
	SET_XIVE(a, 16, 0, 5);
	SET_XIVE(a, 18, 1, 6);
	INT_OFF(a, 18);
	SET_XIVE(a, 19, 0, 7);
	SET_XIVE(a, 32, 1, 4);
	LINE(a, 16, SET);
	LINE(a, 16, SET);
	LINE(a, 18, SET);
	LINE(a, 19, SET);
	LINE(a, 32, 1);
	XIRR(a, 1, 0xFF000020);
}

static int same_dump(const struct irqd_state_dump *x, const struct irqd_state_dump *y)
{
	struct xsnap a = { x->sources, x->nsources, x->icps, x->nicps };
	struct xsnap b = { y->sources, y->nsources, y->icps, y->nicps };

	return xsnap_same(&a, &b);
}

static void round_trip(int atomic)
{
	NEWDEV(a);
	NEWDEV(b);
	struct irqd_state_dump sa, sb;
	int r, same;

	CALL(build_x065_state(a));
	OK(irqd_dump_state(xdev_client(a), xdev_handle(a), &sa));
	CHECK_EQ(sa.nsources, 32);
	CHECK_EQ(sa.nicps, 2);
	r = irqd_restore_state(xdev_client(b), xdev_handle(b), &sa, atomic);
	if (r == 0)
		r = irqd_dump_state(xdev_client(b), xdev_handle(b), &sb);
	same = r == 0 && same_dump(&sa, &sb);
	for (size_t i = 0; i < sa.nsources; i++)
		CHECK_EQ(sa.sources[i].handle, xdev_handle(a));
	irqd_state_dump_free(&sa);
	if (r == 0)
		irqd_state_dump_free(&sb);
	CHECK_MSG(r == 0, "restore: %d %s", r, irqd_client_last_error(xdev_client(b)));
	CHECK_MSG(same, "restored device differs from the saved one");
	/* delivery continues as on A (X-065 steps 15-18) */
	XIRR(b, 0, 0xFF000010);
	EOI(b, 0, 0xFF000010);
	GET_ICP(b, 0, 0xFF000010FF050000);
	GET_SRC(b, 19, 0x00000C0700000000);
}

TEST(save_restore_round_trip_batched)
{
	round_trip(0);
}

TEST(save_restore_round_trip_all_or_nothing)
{
	round_trip(1);
}

TEST(restore_commit_failure_leaves_device_as_before)
{
	NEWDEV(b);
	struct irqd_client *c = xdev_client(b);
	uint32_t h = xdev_handle(b);
	struct irqd_source_state src = { .handle = 0, .irq = 16, .state = 0x0000000500000000 };
	/* X-057 step 1's word: refused by SET_ONE_REG at commit time */
	struct irqd_icp_state icp = { .handle = 0, .server = 0, .state = 0xFF000000FF050000 };
	struct irqd_state_dump d = { &src, 1, &icp, 1 };
	struct irqd_state_dump after;
	uint64_t g0 = generation(c, h, NULL), v;

	CHECK_FAILS(c, irqd_restore_state(c, h, &d, 1), EINVAL);
	OK(irqd_dump_state(c, h, &after));
	size_t ns = after.nsources, ni = after.nicps;
	irqd_state_dump_free(&after);
	CHECK_EQ(ns, 0);
	CHECK_EQ(ni, 0);
	CHECK_EQ(generation(c, h, NULL), g0);
	CHECK_FAILS(c, irqd_get_one_reg(c, h, 0, IRQD_KVM_REG_PPC_ICP_STATE, &v), ENOENT);
	/* not busy any more: a plain CONNECT works */
	CONNECT(b, 0);
}

TEST(dump_of_empty_device_is_just_done)
{
	NEWDEV(d);
	struct irqd_state_dump s;
	struct irqd_stats_dump st;

	OK(irqd_dump_state(xdev_client(d), xdev_handle(d), &s));
	CHECK_EQ(s.nsources + s.nicps, 0);
	irqd_state_dump_free(&s);
	OK(irqd_get_stats(xdev_client(d), xdev_handle(d), &st));
	CHECK_EQ(st.nsources + st.nservers, 0);
	irqd_stats_dump_free(&st);
	CHECK_FAILS(xdev_client(d), irqd_dump_state(xdev_client(d), 0, &s), EBADF);
	irqd_state_dump_free(&s);
}

/* ---- malformed requests: errno, extack, unchanged generation ---- */

/* Send one hand-built message and wait for its answer. */
static int raw(struct irqd_client *c, uint16_t type, uint16_t flags, const void *p, size_t len,
	       const int *fds, unsigned nfds)
{
	uint32_t seq = irqd_client_next_seq(c);
	int r = irqd_client_send_msg(c, type, flags, seq, p, len, fds, nfds);

	if (r < 0)
		return r;
	return irqd_client_wait(c, seq, 0xFFFF, NULL, 0);
}

#define RQ (IRQD_NLM_F_REQUEST | IRQD_NLM_F_ACK)

TEST(error_bad_handle_is_ebadf)
{
	NEWDEV(d);
	struct irqd_client *c = xdev_client(d);
	uint32_t bad = xdev_handle(d) + 0x10000;
	uint64_t v;
	uint64_t reg[4] = { 0 };

	CHECK_FAILS(c, irqd_irq_line(c, bad, 16, IRQD_KVM_INTERRUPT_SET), EBADF);
	CHECK_FAILS(c, irqd_create_ics(c, bad, 16, 16, 0), EBADF);
	CHECK_FAILS(c, irqd_get_one_reg(c, bad, 0, IRQD_KVM_REG_PPC_ICP_STATE, &v), EBADF);
	CHECK_FAILS(c, irqd_hcall(c, bad, 0, IRQD_H_XIRR, reg), EBADF);
	CHECK_FAILS(c, irqd_attach(c, bad), EBADF);
	CHECK_FAILS(c, irqd_irq_line(c, 0, 16, IRQD_KVM_INTERRUPT_SET), EBADF);
}

TEST(error_bad_irq_and_level_are_einval_and_change_nothing)
{
	NEWDEV(d);
	struct irqd_client *c = xdev_client(d);
	uint32_t h = xdev_handle(d), off = 0;
	uint64_t g0;

	SETUP_S0(d);
	g0 = generation(c, h, NULL);
	CHECK_FAILS(c, irqd_irq_line(c, h, 15, IRQD_KVM_INTERRUPT_SET), EINVAL);
	CHECK_FAILS(c, irqd_irq_line(c, h, 48, IRQD_KVM_INTERRUPT_SET), EINVAL);
	CHECK_FAILS(c, irqd_irq_line(c, h, 1048576, IRQD_KVM_INTERRUPT_SET), EINVAL);
	CHECK_FAILS(c, irqd_irq_line(c, h, 16, 2), EINVAL);
	CHECK(irqd_client_last_offset(c, &off));
	CHECK_EQ(off, IRQD_NLMSG_HDRLEN + offsetof(struct irqd_irq_level, level));
	CHECK_FAILS(c, irqd_create_ics(c, h, 16, 1, 0), EEXIST);
	CHECK_FAILS(c, irqd_connect_vcpu(c, h, 0), EEXIST);
	CHECK_FAILS(c, irqd_set_device_attr(c, h, 2, 16, 0), ENXIO);
	CHECK_FAILS(c, irqd_set_one_reg(c, h, 0, 0x1234, 0), EINVAL);
	CHECK_EQ(generation(c, h, NULL), g0);
	GET_SRC(d, 16, 0x000002FF00000000);
}

TEST(error_short_message_is_einval)
{
	NEWDEV(d);
	struct irqd_client *c = xdev_client(d);
	struct irqd_irq_level m = { .handle = xdev_handle(d), .irq = 16, .level = 1 };
	uint64_t g0;

	SETUP_S0(d);
	g0 = generation(c, xdev_handle(d), NULL);
	CHECK_FAILS(c, raw(c, IRQD_MSG_IRQ_LINE, RQ, &m, 8, NULL, 0), EINVAL);
	CHECK_FAILS(c, raw(c, IRQD_MSG_HCALL, RQ, &m, 16, NULL, 0), EINVAL);
	CHECK_FAILS(c, raw(c, IRQD_MSG_CREATE_DEVICE, RQ, NULL, 0, NULL, 0), EINVAL);
	CHECK_EQ(generation(c, xdev_handle(d), NULL), g0);
}

TEST(error_long_message_needs_zero_tail)
{
	NEWDEV(d);
	struct irqd_client *c = xdev_client(d);
	uint8_t buf[24] = { 0 };
	struct irqd_irq_level m = { .handle = xdev_handle(d), .irq = 16, .level = 1 };

	SETUP_S0(d);
	memcpy(buf, &m, sizeof(m));
	OK(raw(c, IRQD_MSG_IRQ_LINE, RQ, buf, sizeof(buf), NULL, 0));   /* zero tail: allowed */
	GET_SRC(d, 16, 0x00000EFF00000000);
	buf[20] = 1;
	CHECK_FAILS(c, raw(c, IRQD_MSG_IRQ_LINE, RQ, buf, sizeof(buf), NULL, 0), E2BIG);
	/* IRQ_LINE_BATCH: len must match count exactly */
	struct irqd_irq_batch bh = { .handle = xdev_handle(d), .count = 2 };
	uint8_t bb[8 + 8];
	memcpy(bb, &bh, sizeof(bh));
	memset(bb + 8, 0, 8);
	CHECK_FAILS(c, raw(c, IRQD_MSG_IRQ_LINE_BATCH, RQ, bb, sizeof(bb), NULL, 0), EINVAL);
}

TEST(error_reserved_field_and_unknown_flags)
{
	NEWDEV(d);
	struct irqd_client *c = xdev_client(d);
	struct irqd_irq_level m = { .handle = xdev_handle(d), .irq = 16, .level = 1, .reserved = 1 };
	uint32_t off = 0;

	SETUP_S0(d);
	CHECK_FAILS(c, raw(c, IRQD_MSG_IRQ_LINE, RQ, &m, sizeof(m), NULL, 0), EINVAL);
	CHECK(irqd_client_last_offset(c, &off));
	CHECK_EQ(off, IRQD_NLMSG_HDRLEN + offsetof(struct irqd_irq_level, reserved));
	m.reserved = 0;
	CHECK_FAILS(c, raw(c, IRQD_MSG_IRQ_LINE, RQ | 0x0800, &m, sizeof(m), NULL, 0), EINVAL);
	CHECK_FAILS(c, raw(c, IRQD_MSG_IRQ_LINE, IRQD_NLM_F_ACK, &m, sizeof(m), NULL, 0), EINVAL);
	CHECK_FAILS(c, raw(c, 0x3F, RQ, &m, sizeof(m), NULL, 0), EOPNOTSUPP);
	CHECK_FAILS(c, irqd_create_ics(c, xdev_handle(d), 64, 4, 0x10), EINVAL);
	GET_SRC(d, 16, 0x000002FF00000000);
}

TEST(error_unframed_length_drops_rest_of_record)
{
	NEWDEV(d);
	struct irqd_client *c = xdev_client(d);
	uint8_t rec[64] = { 0 };
	struct irqd_msghdr h1 = { .len = 8, .type = IRQD_MSG_IRQ_LINE, .flags = RQ, .seq = 77 };
	struct irqd_msghdr mh;
	const uint8_t *p;
	size_t plen;
	int32_t err;
	struct irqd_msghdr echo;
	const char *text;
	size_t tlen;
	uint32_t off;
	int has_off;

	SETUP_S0(d);
	memcpy(rec, &h1, sizeof(h1));
	OK(irqd_client_send_raw(c, rec, sizeof(rec), NULL, 0));
	OK(irqd_client_recv_msg(c, &mh, &p, &plen));
	CHECK_EQ(mh.type, IRQD_MSG_ERROR);
	OK(irqd_parse_error(mh.flags, p, plen, &err, &echo, &text, &tlen, &off, &has_off));
	CHECK_EQ(err, -EINVAL);
	CHECK_EQ(echo.seq, 77);
	CHECK(text != NULL && tlen > 0);
	/* the connection survives: the next request is answered */
	GET_ICP(d, 0, 0xFF000000FFFF0000);
}

TEST(error_bad_fd_count_is_ebadf_and_fds_are_closed)
{
	NEWDEV(d);
	struct irqd_client *c = xdev_client(d);
	struct irqd_irqfd m = { .handle = xdev_handle(d), .gsi = 16, .flags = 0 };
	int p1[2], p2[2], fds[2];
	int r, ev1, ev2;

	SETUP_S0(d);
	/* no fd for an IRQFD that takes one */
	CHECK_FAILS(c, raw(c, IRQD_MSG_IRQFD, RQ, &m, sizeof(m), NULL, 0), EBADF);
	/* two fds for an IRQFD that takes one: EBADF, and the daemon closes both
	 * (seen as POLLHUP on the read ends once our copies are closed) */
	CHECK(pipe(p1) == 0);
	CHECK(pipe(p2) == 0);
	fds[0] = p1[1];
	fds[1] = p2[1];
	r = raw(c, IRQD_MSG_IRQFD, RQ, &m, sizeof(m), fds, 2);
	close(p1[1]);
	close(p2[1]);
	ev1 = wait_fd(p1[0], POLLIN, 5000);
	ev2 = wait_fd(p2[0], POLLIN, 5000);
	close(p1[0]);
	close(p2[0]);
	CHECK_FAILS(c, r, EBADF);
	CHECK_MSG(ev1 & POLLHUP, "daemon kept the first fd");
	CHECK_MSG(ev2 & POLLHUP, "daemon kept the second fd");
	/* an fd on a message that takes none (the record takes 0) */
	int efd = eventfd(0, EFD_CLOEXEC);
	CHECK(efd >= 0);
	struct irqd_irq_level lm = { .handle = xdev_handle(d), .irq = 16, .level = 1 };
	r = raw(c, IRQD_MSG_IRQ_LINE, RQ, &lm, sizeof(lm), &efd, 1);
	close(efd);
	OK(r);   /* only fd-taking messages fail; the others are handled normally */
	GET_SRC(d, 16, 0x00000EFF00000000);
}

TEST(error_irqfd_not_an_eventfd_or_bad_gsi)
{
	NEWDEV(d);
	struct irqd_client *c = xdev_client(d);
	int p[2], efd;

	SETUP_S0(d);
	CHECK(pipe(p) == 0);
	int r = irqd_irqfd(c, xdev_handle(d), 16, 0, p[0], -1);
	close(p[0]);
	close(p[1]);
	CHECK_FAILS(c, r, EINVAL);
	efd = eventfd(0, EFD_CLOEXEC);
	CHECK(efd >= 0);
	r = irqd_irqfd(c, xdev_handle(d), 15, 0, efd, -1);
	int r2 = irqd_irqfd(c, xdev_handle(d), IRQD_KVMPPC_XICS_NR_IRQS, 0, efd, -1);
	int r3 = irqd_irqfd(c, xdev_handle(d), 4000, 0, efd, -1);   /* not configured: allowed */
	close(efd);
	CHECK_EQ(r, -EINVAL);
	CHECK_EQ(r2, -EINVAL);
	OK(r3);
}

int main(int argc, char **argv)
{
	struct irqd_client c;
	struct irqd_hello h;

	XB = xb_daemon;
	rt_after_each = xdev_cleanup;
	if (argc > 1 && strcmp(argv[1], "--list") == 0)
		return rt_main(argc, argv);
	if (irqd_client_connect(&c, NULL) < 0 || irqd_client_hello(&c, 0, &h) < 0) {
		fprintf(stderr, "harness: cannot reach the daemon at %s\n",
			getenv("IRQD_SOCKET") ? getenv("IRQD_SOCKET") : IRQD_DEFAULT_SOCKET);
		return 2;
	}
	irqd_client_close(&c);
	xb_daemon_set_max_servers(h.max_servers);
	return rt_main(argc, argv);
}
