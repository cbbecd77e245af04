/* SPDX-License-Identifier: MIT */
/*
 * The daemon's epoll loop, hot path in C (see wire.h).
 *
 * Why: a Python event loop costs several microseconds per record (select,
 * dispatch, recvmsg, send), which puts an acknowledged IRQ_LINE at twice a
 * raw C round trip.  Here an idle connection's records are read, dispatched
 * and answered with no Python at all; cffi releases the GIL meanwhile.
 *
 * INVARIANTS
 *  - A connection is "fast" only while the daemon has nothing pending for it
 *    (no half-processed record, no queued replies): the daemon switches it
 *    to slow mode before returning to its own queue, and back when idle.
 *  - irqd_loop_run returns right after a connection event (HANDOFF, BLOCKED,
 *    CLOSED, NOTIFY): the receive buffer and the out buffer then belong to
 *    that one connection until the daemon has dealt with it.
 *  - Every fd received with a record is either handed to the daemon (in the
 *    record struct) or closed here; none is leaked.
 *  - Single-threaded: one thread owns the loop, the registry and the buffers.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "irqd/core/wire.h"

struct loop_ent {
	int fd;
	int used;
	int fast;
	uint32_t events;
	uint32_t hits;              /* how often reading on found a record: EWMA, 0..HITS_MAX */
	uint32_t probe;             /* wakeups since a ping-pong client was last probed */
	uint64_t tag;
	struct irqd_wire_conn *conn;
};

struct irqd_loop {
	int epfd;
	struct loop_ent *ent;       /* indexed by fd */
	uint32_t nent;
};

struct irqd_loop *irqd_loop_new(void)
{
	struct irqd_loop *l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0) {
		free(l);
		return NULL;
	}
	return l;
}

void irqd_loop_free(struct irqd_loop *l)
{
	if (!l)
		return;
	close(l->epfd);
	free(l->ent);
	free(l);
}

static struct loop_ent *slot(struct irqd_loop *l, int fd)
{
	if (fd < 0)
		return NULL;
	if ((uint32_t)fd >= l->nent) {
		uint32_t n = l->nent ? l->nent : 64;
		struct loop_ent *ne;
		while (n <= (uint32_t)fd)
			n *= 2;
		ne = realloc(l->ent, (size_t)n * sizeof(*ne));
		if (!ne)
			return NULL;
		memset(ne + l->nent, 0, (size_t)(n - l->nent) * sizeof(*ne));
		l->ent = ne;
		l->nent = n;
	}
	return &l->ent[fd];
}

static int set(struct irqd_loop *l, int fd, uint64_t tag, struct irqd_wire_conn *c, int fast, uint32_t events)
{
	struct loop_ent *e = slot(l, fd);
	struct epoll_event ev = { 0 };
	int op;
	if (!e)
		return fd < 0 ? -EBADF : -ENOMEM;
	if (fast)
		events = EPOLLIN;
	ev.events = events;
	ev.data.fd = fd;
	op = e->used ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
	if (epoll_ctl(l->epfd, op, fd, &ev) < 0) {
		/* an fd closed and reused without irqd_loop_forget: epoll dropped it */
		if (errno == ENOENT && op == EPOLL_CTL_MOD)
			op = EPOLL_CTL_ADD;
		else if (errno == EEXIST && op == EPOLL_CTL_ADD)
			op = EPOLL_CTL_MOD;
		else
			return -errno;
		if (epoll_ctl(l->epfd, op, fd, &ev) < 0)
			return -errno;
	}
	e->fd = fd;
	e->used = 1;
	e->fast = fast;
	e->events = events;
	e->tag = tag;
	e->conn = c;
	return 0;
}

int irqd_loop_watch(struct irqd_loop *l, int fd, uint64_t tag, uint32_t events)
{
	return set(l, fd, tag, NULL, 0, events);
}

int irqd_loop_conn(struct irqd_loop *l, int fd, uint64_t tag, struct irqd_wire_conn *c, int fast,
		   uint32_t events)
{
	return set(l, fd, tag, c, fast && c, events);
}

int irqd_loop_forget(struct irqd_loop *l, int fd)
{
	struct loop_ent *e;
	if (fd < 0 || (uint32_t)fd >= l->nent || !l->ent[fd].used)
		return -ENOENT;
	e = &l->ent[fd];
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
	memset(e, 0, sizeof(*e));
	return 0;
}

/* Send the complete records of out; 0 when all went, -EAGAIN when the
 * socket is full (the rest stay, compacted to the front), other -errno. */
static int send_records(int fd, struct irqd_wire_out *o)
{
	uint32_t start = 0, i;
	for (i = 0; i < o->n_ends; i++) {
		uint32_t end = o->ends[i];
		ssize_t n;
		do
			n = send(fd, o->buf + start, end - start, MSG_DONTWAIT | MSG_NOSIGNAL);
		while (n < 0 && errno == EINTR);
		if (n < 0) {
			int err = errno;
			/* keep records i.. : shift them (and the open record) to the front */
			memmove(o->buf, o->buf + start, o->len - start);
			for (uint32_t k = i; k < o->n_ends; k++)
				o->ends[k - i] = o->ends[k] - start;
			o->n_ends -= i;
			o->len -= start;
			o->rec_start -= start;
			return -err;
		}
		start = end;
	}
	irqd_wire_out_compact(o);
	return 0;
}

static void close_fds(struct irqd_loop_record *rec)
{
	for (uint32_t i = 0; i < rec->nfds; i++)
		close(rec->fds[i]);
	rec->nfds = 0;
}

/* Read one record into rec; 1 read, 0 nothing there, -1 EOF, < -1 -errno. */
static int read_record(int fd, struct irqd_loop_record *rec)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * IRQD_MAX_FDS)];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov = { .iov_base = rec->buf, .iov_len = IRQD_MAX_RECORD };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf.buf,
			     .msg_controllen = sizeof(cbuf.buf) };
	struct cmsghdr *cm;
	ssize_t n;

	do
		n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	rec->nfds = 0;
	if (n < 0)
		return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -errno;
	for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
			uint32_t k = (uint32_t)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
			for (uint32_t i = 0; i < k; i++) {
				int f;
				memcpy(&f, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
				if (rec->nfds < IRQD_MAX_FDS)
					rec->fds[rec->nfds++] = f;
				else
					close(f);
			}
		}
	}
	if (n == 0) {          /* EOF (a zero-length record is indistinguishable) */
		close_fds(rec);
		return -1;
	}
	rec->len = (uint32_t)n;
	rec->flags = (mh.msg_flags & MSG_TRUNC) ? IRQD_WIRE_TRUNCATED : 0;
	rec->ctrunc = (mh.msg_flags & MSG_CTRUNC) ? 1 : 0;
	rec->pos = 0;
	return 1;
}

static int push(struct irqd_loop_event *ev, uint32_t *n, uint32_t max, uint64_t tag, uint32_t kind,
		uint32_t events)
{
	if (*n >= max)
		return 0;
	ev[*n] = (struct irqd_loop_event){ .tag = tag, .kind = kind, .events = events };
	(*n)++;
	return 1;
}

/* hits: EWMA with weight 1/8 of "reading on found a record", scaled to 0..256 */
#define HITS_SHIFT 3
#define HITS_MAX   256u
#define HITS_HALF  (HITS_MAX / 2)

/* Serve a fast connection: returns an event kind to report, or 0. */
static uint32_t serve(struct loop_ent *e, struct irqd_registry *r, struct irqd_wire_out *o,
		      struct irqd_loop_record *rec)
{
	uint32_t got = 0;
	for (int burst = 0; burst < IRQD_LOOP_BURST; burst++) {
		int rc;
		/*
		 * After a record is answered, read on (another recvmsg) or go back
		 * to epoll_wait?  Reading on wins when the next record is already
		 * there: a client that streams, or a ping-pong client on our CPU,
		 * which our reply woke and which ran and sent its next request
		 * before we got the CPU back.  It loses for a ping-pong client on
		 * another CPU: the recvmsg only says EAGAIN.  Either wrong guess
		 * costs about one syscall, so read on while it found a record at
		 * least half the time (hits, a moving average), and probe now and
		 * then while it did not, so that a change of pattern is seen.
		 */
		if (got == 1 && e->hits < HITS_HALF && (e->probe++ & 15))
			return 0;
		rc = read_record(e->fd, rec);
		if (rc == 0) {
			if (got >= 1)
				e->hits -= e->hits >> HITS_SHIFT;
			return 0;
		}
		if (rc < 0)
			return IRQD_EV_CLOSED;
		if (++got >= 2)
			e->hits += (HITS_MAX >> HITS_SHIFT) - (e->hits >> HITS_SHIFT);
		e->conn->fd_index = 0;
		/* fds, truncation: the daemon's fd accounting handles the whole record */
		if (rec->nfds || rec->ctrunc || rec->flags)
			return IRQD_EV_HANDOFF;
		o->n_notify = 0;
		o->notify_overflow = 0;
		for (;;) {
			rc = irqd_wire_run(r, e->conn, rec->buf, rec->len, 0, &rec->pos, o);
			if (rc == IRQD_WIRE_PYTHON)
				return IRQD_EV_HANDOFF;
			if (rc == IRQD_WIRE_FULL) {
				rc = send_records(e->fd, o);
				if (rc == -EAGAIN)
					return IRQD_EV_HANDOFF;     /* the daemon queues the rest */
				if (rc < 0)
					return IRQD_EV_CLOSED;
				continue;
			}
			break;
		}
		irqd_wire_out_flush(o);
		rc = send_records(e->fd, o);
		if (rc == -EAGAIN)
			return IRQD_EV_BLOCKED;
		if (rc < 0)
			return IRQD_EV_CLOSED;
		if (o->n_notify || o->notify_overflow)
			return IRQD_EV_NOTIFY;
	}
	return 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int irqd_loop_run(struct irqd_loop *l, struct irqd_registry *r, struct irqd_wire_out *o,
		  struct irqd_loop_record *rec, int timeout_ms, struct irqd_loop_event *ev, uint32_t max_ev)
{
	struct epoll_event evs[64];
	int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
	uint32_t n = 0;

	if (max_ev == 0)
		return -EINVAL;
	for (;;) {
		int wait = deadline < 0 ? -1 : (int)(deadline - now_ms());
		int k;
		if (wait < 0 && deadline >= 0)
			wait = 0;
		k = epoll_wait(l->epfd, evs, (int)(sizeof(evs) / sizeof(evs[0])), wait);
		if (k < 0)
			return errno == EINTR ? 0 : -errno;    /* a signal: let the daemon look */
		if (k == 0)
			return 0;
		for (int i = 0; i < k; i++) {
			int fd = evs[i].data.fd;
			struct loop_ent *e;
			uint32_t kind;
			if (fd < 0 || (uint32_t)fd >= l->nent || !l->ent[fd].used)
				continue;
			e = &l->ent[fd];
			if (!e->fast) {
				if (!push(ev, &n, max_ev, e->tag, IRQD_EV_FD, evs[i].events))
					return (int)n;
				continue;
			}
			kind = serve(e, r, o, rec);
			if (kind) {
				/* a connection event owns the buffers: report it alone with the fd events so far */
				push(ev, &n, max_ev, e->tag, kind, evs[i].events);
				return (int)n;
			}
		}
		if (n)
			return (int)n;
	}
}
