/* SPDX-License-Identifier: MIT */
/*
 * irqd C client (include/irqd/client.h).  Plain C11 + POSIX sockets.
 *
 * Wire reminders (abi.md S1-S3): one send = one record; messages start at
 * 4-byte aligned offsets, so every field is read and written with memcpy
 * (a u64 may be only 4-byte aligned); several replies may share a record,
 * and an ERROR or DONE is always the last message of its record.  Every
 * received message is bounds-checked against its record before use.
 */
#define _GNU_SOURCE 1
#include "irqd/client.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

/* The ABI's guaranteed minimums, used until HELLO reports the real ones. */
#define MIN_RECORD 65536u
#define MIN_FDS 16u
#define DUMP_RETRIES 8

/* NLMSG_ALIGN on size_t (abi.h's macro mixes int and size_t). */
static inline size_t align4(size_t n)
{
	return (n + (IRQD_NLMSG_ALIGNTO - 1)) & ~(size_t)(IRQD_NLMSG_ALIGNTO - 1);
}

static void clear_error(struct irqd_client *c)
{
	c->last_errno = 0;
	c->has_offset = 0;
	c->last_offset = 0;
	c->last_error[0] = '\0';
}

/* A local failure: no daemon text. */
static int local_error(struct irqd_client *c, int err)
{
	clear_error(c);
	c->last_errno = err;
	return -err;
}

const char *irqd_client_last_error(const struct irqd_client *c)
{
	return c->last_error;
}

int irqd_client_last_offset(const struct irqd_client *c, uint32_t *offset)
{
	if (c->has_offset && offset)
		*offset = c->last_offset;
	return c->has_offset;
}

uint32_t irqd_client_next_seq(struct irqd_client *c)
{
	if (++c->seq == 0)
		c->seq = 1;
	return c->seq;
}

/* ---- connection ---- */

int irqd_client_connect_nohello(struct irqd_client *c, const char *path)
{
	struct sockaddr_un sa;
	size_t n;

	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->max_record = MIN_RECORD;
	c->max_fds = MIN_FDS;
	if (!path)
		path = getenv("IRQD_SOCKET");
	if (!path || !*path)
		path = IRQD_DEFAULT_SOCKET;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	n = strlen(path);
	if (n >= sizeof(sa.sun_path))
		return local_error(c, ENAMETOOLONG);
	memcpy(sa.sun_path, path, n + 1);
	c->rcap = MIN_RECORD;
	c->rbuf = malloc(c->rcap);
	if (!c->rbuf)
		return local_error(c, ENOMEM);
	c->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int err = errno;
		irqd_client_close(c);
		return local_error(c, err);
	}
	return 0;
}

int irqd_client_connect(struct irqd_client *c, const char *path)
{
	int r = irqd_client_connect_nohello(c, path);

	if (r < 0)
		return r;
	r = irqd_client_hello(c, 0, NULL);
	if (r < 0) {
		int err = c->last_errno;
		char msg[IRQD_CLIENT_ERRMSG_MAX];

		memcpy(msg, c->last_error, sizeof(msg));
		irqd_client_close(c);
		c->last_errno = err;
		memcpy(c->last_error, msg, sizeof(msg));
	}
	return r;
}

void irqd_client_close(struct irqd_client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->rbuf);
	c->rbuf = NULL;
	c->rcap = c->rlen = c->rpos = 0;
}

/* ---- sending ---- */

int irqd_client_send_raw(struct irqd_client *c, const void *rec, size_t len, const int *fds,
			 unsigned nfds)
{
	struct iovec iov = { .iov_base = (void *)rec, .iov_len = len };
	struct msghdr mh;
	union {
		char buf[CMSG_SPACE(sizeof(int) * IRQD_MAX_FDS)];
		struct cmsghdr align;
	} ctl;
	ssize_t n;

	if (c->fd < 0)
		return local_error(c, EBADF);
	if (len == 0)   /* a zero-length record reads as EOF on the other side */
		return local_error(c, EINVAL);
	if (nfds > IRQD_MAX_FDS)
		return local_error(c, EINVAL);
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	if (nfds) {
		struct cmsghdr *cm;

		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
	}
	do
		n = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return local_error(c, errno);
	if ((size_t)n != len)
		return local_error(c, EMSGSIZE);
	return 0;
}

/* Write one message (header + payload + zero padding to 4) at buf. */
static size_t put_msg(uint8_t *buf, uint16_t type, uint16_t flags, uint32_t seq, const void *payload,
		      size_t len)
{
	struct irqd_msghdr h = {
		.len = (uint32_t)(IRQD_NLMSG_HDRLEN + len),
		.type = type,
		.flags = flags,
		.seq = seq,
		.pid = 0,
	};
	size_t total = align4(IRQD_NLMSG_HDRLEN + len);

	memcpy(buf, &h, sizeof(h));
	if (len)
		memcpy(buf + IRQD_NLMSG_HDRLEN, payload, len);
	memset(buf + IRQD_NLMSG_HDRLEN + len, 0, total - IRQD_NLMSG_HDRLEN - len);
	return total;
}

int irqd_client_send_msg(struct irqd_client *c, uint16_t type, uint16_t flags, uint32_t seq,
			 const void *payload, size_t len, const int *fds, unsigned nfds)
{
	uint8_t small[256];
	uint8_t *buf = small;
	size_t need = align4(IRQD_NLMSG_HDRLEN + len);
	int r;

	if (len > UINT32_MAX - 2 * IRQD_NLMSG_HDRLEN)
		return local_error(c, EMSGSIZE);
	if (need > sizeof(small)) {
		buf = malloc(need);
		if (!buf)
			return local_error(c, ENOMEM);
	}
	put_msg(buf, type, flags, seq, payload, len);
	r = irqd_client_send_raw(c, buf, need, fds, nfds);
	if (buf != small)
		free(buf);
	return r;
}

/* ---- receiving ---- */

/* Read one record into rbuf; closes any fds that arrive (the daemon sends
 * none, but a client must not leak what it did not ask for). */
static int recv_record(struct irqd_client *c)
{
	struct iovec iov = { .iov_base = c->rbuf, .iov_len = c->rcap };
	union {
		char buf[CMSG_SPACE(sizeof(int) * IRQD_MAX_FDS)];
		struct cmsghdr align;
	} ctl;
	struct msghdr mh;
	struct cmsghdr *cm;
	ssize_t n;

	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = ctl.buf;
	mh.msg_controllen = sizeof(ctl.buf);
	do
		n = recvmsg(c->fd, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
			size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (size_t i = 0; i < k; i++) {
				int fd;
				memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(fd));
				close(fd);
			}
		}
	}
	if (n == 0)
		return -ECONNRESET;
	if (mh.msg_flags & MSG_TRUNC)
		return -EMSGSIZE;
	c->rlen = (size_t)n;
	c->rpos = 0;
	return 0;
}

int irqd_client_recv_msg(struct irqd_client *c, struct irqd_msghdr *hdr, const uint8_t **payload,
			 size_t *plen)
{
	int r;

	if (c->fd < 0 || !c->rbuf)
		return -EBADF;
	if (c->rpos >= c->rlen) {
		r = recv_record(c);
		if (r < 0)
			return r;
	}
	if (c->rlen - c->rpos < IRQD_NLMSG_HDRLEN) {
		c->rpos = c->rlen;
		return -EPROTO;
	}
	memcpy(hdr, c->rbuf + c->rpos, sizeof(*hdr));
	if (hdr->len < IRQD_NLMSG_HDRLEN || hdr->len > c->rlen - c->rpos) {
		c->rpos = c->rlen;   /* cannot frame the rest of this record */
		return -EPROTO;
	}
	*payload = c->rbuf + c->rpos + IRQD_NLMSG_HDRLEN;
	*plen = hdr->len - IRQD_NLMSG_HDRLEN;
	c->rpos += align4((size_t)hdr->len);
	if (c->rpos > c->rlen)
		c->rpos = c->rlen;
	/* ERROR and DONE end their record (abi.md S3): anything after them in
	 * the same record is not ours to interpret. */
	if (hdr->type == IRQD_MSG_ERROR || hdr->type == IRQD_MSG_DONE)
		c->rpos = c->rlen;
	return 0;
}

int irqd_parse_error(uint16_t flags, const uint8_t *payload, size_t plen, int32_t *error,
		     struct irqd_msghdr *echo, const char **text, size_t *text_len,
		     uint32_t *offset, int *has_offset)
{
	size_t pos;

	*text = NULL;
	*text_len = 0;
	*has_offset = 0;
	*offset = 0;
	memset(echo, 0, sizeof(*echo));
	if (plen < sizeof(int32_t))
		return -EPROTO;
	memcpy(error, payload, sizeof(*error));
	if (plen < sizeof(int32_t) + sizeof(*echo))
		return *error == 0 ? 0 : -EPROTO;
	memcpy(echo, payload + sizeof(int32_t), sizeof(*echo));
	if (flags & IRQD_NLM_F_CAPPED) {
		pos = sizeof(int32_t) + sizeof(*echo);
	} else {
		/* uncapped: the whole request is echoed */
		if (echo->len < IRQD_NLMSG_HDRLEN || echo->len > plen - sizeof(int32_t))
			return -EPROTO;
		pos = sizeof(int32_t) + align4((size_t)echo->len);
	}
	if (!(flags & IRQD_NLM_F_ACK_TLVS))
		return 0;
	while (pos + sizeof(struct irqd_nlattr) <= plen) {
		struct irqd_nlattr a;
		size_t dlen;

		memcpy(&a, payload + pos, sizeof(a));
		if (a.len < sizeof(a) || a.len > plen - pos)
			return -EPROTO;
		dlen = a.len - sizeof(a);
		if (a.type == IRQD_NLMSGERR_ATTR_MSG) {
			const uint8_t *s = payload + pos + sizeof(a);
			const void *nul = memchr(s, '\0', dlen);
			if (!nul)
				return -EPROTO;   /* must be NUL-terminated */
			*text = (const char *)s;
			*text_len = (size_t)((const uint8_t *)nul - s);
		} else if (a.type == IRQD_NLMSGERR_ATTR_OFFS) {
			if (dlen < sizeof(uint32_t))
				return -EPROTO;
			memcpy(offset, payload + pos + sizeof(a), sizeof(*offset));
			*has_offset = 1;
		}
		pos += align4((size_t)a.len);
	}
	return 0;
}

/* Record the daemon's verdict from an ERROR message; returns its error. */
static int take_error(struct irqd_client *c, const struct irqd_msghdr *h, const uint8_t *p, size_t plen)
{
	int32_t err;
	struct irqd_msghdr echo;
	const char *text;
	size_t tlen;
	uint32_t off;
	int has_off;

	if (irqd_parse_error(h->flags, p, plen, &err, &echo, &text, &tlen, &off, &has_off) < 0)
		return local_error(c, EPROTO);
	clear_error(c);
	if (err > 0 || err < -4095)
		return local_error(c, EPROTO);
	c->last_errno = -err;
	if (text) {
		if (tlen >= sizeof(c->last_error))
			tlen = sizeof(c->last_error) - 1;
		memcpy(c->last_error, text, tlen);
		c->last_error[tlen] = '\0';
	}
	c->has_offset = has_off;
	c->last_offset = off;
	return err;
}

static void note_async(struct irqd_client *c, const struct irqd_msghdr *h, const uint8_t *p, size_t plen)
{
	int32_t err = 0;

	if (h->type != IRQD_MSG_ERROR || plen < sizeof(err))
		return;
	memcpy(&err, p, sizeof(err));
	if (err < 0) {
		if (c->async_errors++ == 0)
			c->async_errno = -err;
	}
}

int irqd_client_wait(struct irqd_client *c, uint32_t seq, uint16_t reply_type, void *reply,
		     size_t reply_len)
{
	for (;;) {
		struct irqd_msghdr h;
		const uint8_t *p;
		size_t plen;
		int r = irqd_client_recv_msg(c, &h, &p, &plen);

		if (r < 0)
			return local_error(c, -r);
		if (h.seq != seq) {
			note_async(c, &h, p, plen);
			continue;
		}
		if (h.type == IRQD_MSG_ERROR)
			return take_error(c, &h, p, plen);
		if (h.type == reply_type && reply_type != 0) {
			size_t n = plen < reply_len ? plen : reply_len;
			if (plen < reply_len)
				memset((uint8_t *)reply + n, 0, reply_len - n);
			memcpy(reply, p, n);
			clear_error(c);
			return 0;
		}
		return local_error(c, EPROTO);
	}
}

/* One request, one answer: with ACK when the operation returns no data
 * (reply_type 0), so every call gets the daemon's verdict. */
static int transact(struct irqd_client *c, uint16_t type, const void *req, size_t len,
		    uint16_t reply_type, void *reply, size_t reply_len, const int *fds, unsigned nfds)
{
	uint32_t seq = irqd_client_next_seq(c);
	uint16_t flags = IRQD_NLM_F_REQUEST | (reply_type ? 0 : IRQD_NLM_F_ACK);
	int r = irqd_client_send_msg(c, type, flags, seq, req, len, fds, nfds);

	if (r < 0)
		return r;
	return irqd_client_wait(c, seq, reply_type, reply, reply_len);
}

int irqd_client_hello(struct irqd_client *c, uint32_t features, struct irqd_hello *out)
{
	struct irqd_hello h = { .version = IRQD_ABI_VERSION, .features = features };
	struct irqd_hello rep;
	int r = transact(c, IRQD_MSG_HELLO, &h, sizeof(h), IRQD_MSG_HELLO, &rep, sizeof(rep), NULL, 0);

	if (r < 0)
		return r;
	c->hello = rep;
	if (rep.max_record >= MIN_RECORD) {
		if (rep.max_record > c->rcap) {
			uint8_t *nb = realloc(c->rbuf, rep.max_record);
			if (!nb)
				return local_error(c, ENOMEM);
			c->rbuf = nb;
			c->rcap = rep.max_record;
		}
		c->max_record = rep.max_record;
	}
	if (rep.max_fds >= MIN_FDS)
		c->max_fds = rep.max_fds > IRQD_MAX_FDS ? IRQD_MAX_FDS : rep.max_fds;
	if (out)
		*out = rep;
	return 0;
}

/* ---- operations ---- */

int irqd_create_device(struct irqd_client *c, uint32_t type, uint32_t flags, uint32_t *handle)
{
	struct irqd_create_device req = { .type = type, .flags = flags }, rep;
	int r = transact(c, IRQD_MSG_CREATE_DEVICE, &req, sizeof(req), IRQD_MSG_CREATE_DEVICE, &rep,
			 sizeof(rep), NULL, 0);

	if (r == 0 && handle)
		*handle = rep.handle;
	return r;
}

static int handle_op(struct irqd_client *c, uint16_t type, uint32_t handle)
{
	struct irqd_handle req = { .handle = handle };

	return transact(c, type, &req, sizeof(req), 0, NULL, 0, NULL, 0);
}

int irqd_destroy_device(struct irqd_client *c, uint32_t handle)
{
	return handle_op(c, IRQD_MSG_DESTROY_DEVICE, handle);
}

int irqd_attach(struct irqd_client *c, uint32_t handle)
{
	return handle_op(c, IRQD_MSG_ATTACH, handle);
}

int irqd_restore_begin(struct irqd_client *c, uint32_t handle)
{
	return handle_op(c, IRQD_MSG_RESTORE_BEGIN, handle);
}

int irqd_restore_commit(struct irqd_client *c, uint32_t handle)
{
	return handle_op(c, IRQD_MSG_RESTORE_COMMIT, handle);
}

int irqd_restore_abort(struct irqd_client *c, uint32_t handle)
{
	return handle_op(c, IRQD_MSG_RESTORE_ABORT, handle);
}

int irqd_create_ics(struct irqd_client *c, uint32_t handle, uint32_t first_irq, uint32_t count,
		    uint32_t flags)
{
	struct irqd_create_ics req = { .handle = handle, .first_irq = first_irq, .count = count, .flags = flags };

	return transact(c, IRQD_MSG_CREATE_ICS, &req, sizeof(req), 0, NULL, 0, NULL, 0);
}

int irqd_connect_vcpu(struct irqd_client *c, uint32_t handle, uint32_t server)
{
	struct irqd_connect_vcpu req = { .handle = handle, .server = server };

	return transact(c, IRQD_MSG_CONNECT_VCPU, &req, sizeof(req), 0, NULL, 0, NULL, 0);
}

int irqd_irq_line(struct irqd_client *c, uint32_t handle, uint32_t irq, uint32_t level)
{
	struct irqd_irq_level req = { .handle = handle, .irq = irq, .level = level };

	return transact(c, IRQD_MSG_IRQ_LINE, &req, sizeof(req), 0, NULL, 0, NULL, 0);
}

int irqd_irq_line_noack(struct irqd_client *c, uint32_t handle, uint32_t irq, uint32_t level)
{
	struct irqd_irq_level req = { .handle = handle, .irq = irq, .level = level };

	return irqd_client_send_msg(c, IRQD_MSG_IRQ_LINE, IRQD_NLM_F_REQUEST, irqd_client_next_seq(c), &req,
				    sizeof(req), NULL, 0);
}

static size_t batch_payload(uint8_t *buf, uint32_t handle, const struct irqd_irq_batch_entry *e,
			    uint32_t count)
{
	struct irqd_irq_batch b = { .handle = handle, .count = count };

	memcpy(buf, &b, sizeof(b));
	if (count)
		memcpy(buf + sizeof(b), e, (size_t)count * sizeof(*e));
	return sizeof(b) + (size_t)count * sizeof(*e);
}

int irqd_irq_line_batch(struct irqd_client *c, uint32_t handle,
			const struct irqd_irq_batch_entry *entries, uint32_t count)
{
	size_t len = sizeof(struct irqd_irq_batch) + (size_t)count * sizeof(*entries);
	uint8_t *buf;
	int r;

	if (len + IRQD_NLMSG_HDRLEN > c->max_record)
		return local_error(c, EMSGSIZE);
	buf = malloc(len);
	if (!buf)
		return local_error(c, ENOMEM);
	batch_payload(buf, handle, entries, count);
	r = transact(c, IRQD_MSG_IRQ_LINE_BATCH, buf, len, 0, NULL, 0, NULL, 0);
	free(buf);
	return r;
}

static int attr_op(struct irqd_client *c, uint16_t type, uint32_t handle, uint32_t group, uint64_t attr,
		   uint64_t value, uint64_t *out)
{
	struct irqd_device_attr req = { .handle = handle, .group = group, .attr = attr, .value = value };
	struct irqd_device_attr rep;
	int r;

	if (!out)
		return transact(c, type, &req, sizeof(req), 0, NULL, 0, NULL, 0);
	r = transact(c, type, &req, sizeof(req), type, &rep, sizeof(rep), NULL, 0);
	if (r == 0)
		*out = rep.value;
	return r;
}

int irqd_set_device_attr(struct irqd_client *c, uint32_t handle, uint32_t group, uint64_t attr,
			 uint64_t value)
{
	return attr_op(c, IRQD_MSG_SET_DEVICE_ATTR, handle, group, attr, value, NULL);
}

int irqd_get_device_attr(struct irqd_client *c, uint32_t handle, uint32_t group, uint64_t attr,
			 uint64_t *value)
{
	uint64_t v = 0;
	int r = attr_op(c, IRQD_MSG_GET_DEVICE_ATTR, handle, group, attr, 0, &v);

	if (r == 0 && value)
		*value = v;
	return r;
}

int irqd_has_device_attr(struct irqd_client *c, uint32_t handle, uint32_t group, uint64_t attr)
{
	return attr_op(c, IRQD_MSG_HAS_DEVICE_ATTR, handle, group, attr, 0, NULL);
}

int irqd_get_one_reg(struct irqd_client *c, uint32_t handle, uint32_t server, uint64_t id,
		     uint64_t *value)
{
	struct irqd_one_reg req = { .handle = handle, .server = server, .id = id }, rep;
	int r = transact(c, IRQD_MSG_GET_ONE_REG, &req, sizeof(req), IRQD_MSG_GET_ONE_REG, &rep, sizeof(rep),
			 NULL, 0);

	if (r == 0 && value)
		*value = rep.value;
	return r;
}

int irqd_set_one_reg(struct irqd_client *c, uint32_t handle, uint32_t server, uint64_t id,
		     uint64_t value)
{
	struct irqd_one_reg req = { .handle = handle, .server = server, .id = id, .value = value };

	return transact(c, IRQD_MSG_SET_ONE_REG, &req, sizeof(req), 0, NULL, 0, NULL, 0);
}

int irqd_hcall(struct irqd_client *c, uint32_t handle, uint32_t server, uint64_t nr, uint64_t reg[4])
{
	struct irqd_hcall req = { .handle = handle, .server = server, .nr = nr }, rep;
	int r;

	memcpy(req.reg, reg, sizeof(req.reg));
	r = transact(c, IRQD_MSG_HCALL, &req, sizeof(req), IRQD_MSG_HCALL, &rep, sizeof(rep), NULL, 0);
	if (r == 0)
		memcpy(reg, rep.reg, sizeof(rep.reg));
	return r;
}

int irqd_rtas(struct irqd_client *c, uint32_t handle, uint32_t token, uint32_t nargs, uint32_t nret,
	      uint32_t buf[IRQD_RTAS_BUF_WORDS])
{
	struct irqd_rtas req = { .handle = handle, .token = token, .nargs = nargs, .nret = nret }, rep;
	int r;

	memcpy(req.buf, buf, sizeof(req.buf));
	r = transact(c, IRQD_MSG_RTAS, &req, sizeof(req), IRQD_MSG_RTAS, &rep, sizeof(rep), NULL, 0);
	if (r == 0)
		memcpy(buf, rep.buf, sizeof(rep.buf));
	return r;
}

int irqd_irqfd(struct irqd_client *c, uint32_t handle, uint32_t gsi, uint32_t flags, int fd,
	       int resample_fd)
{
	struct irqd_irqfd req = { .handle = handle, .gsi = gsi, .flags = flags };
	int fds[2] = { fd, resample_fd };
	unsigned nfds = (flags & IRQD_IRQFD_DEASSIGN) ? 0 : (flags & IRQD_IRQFD_RESAMPLE) ? 2 : 1;

	return transact(c, IRQD_MSG_IRQFD, &req, sizeof(req), 0, NULL, 0, fds, nfds);
}

int irqd_set_output(struct irqd_client *c, uint32_t handle, uint32_t server, uint32_t flags, int fd)
{
	struct irqd_output req = { .handle = handle, .server = server, .flags = flags };

	return transact(c, IRQD_MSG_SET_OUTPUT, &req, sizeof(req), 0, NULL, 0, &fd,
			(flags & IRQD_OUTPUT_DEASSIGN) ? 0 : 1);
}

/* ---- dumps ---- */

struct vec {
	void *p;
	size_t n, cap;
};

static int vec_push(struct vec *v, const void *item, size_t size)
{
	if (v->n == v->cap) {
		size_t ncap = v->cap ? v->cap * 2 : 64;
		void *np = realloc(v->p, ncap * size);
		if (!np)
			return -ENOMEM;
		v->p = np;
		v->cap = ncap;
	}
	memcpy((uint8_t *)v->p + v->n * size, item, size);
	v->n++;
	return 0;
}

/* One dump request: messages of type t1 (size s1) into v1, then t2 (s2)
 * into v2, then DONE.  Returns 1 if a message carried NLM_F_DUMP_INTR. */
static int dump_once(struct irqd_client *c, uint16_t type, const void *req, size_t len, uint16_t t1,
		     size_t s1, struct vec *v1, uint16_t t2, size_t s2, struct vec *v2)
{
	uint32_t seq = irqd_client_next_seq(c);
	int intr = 0, r;

	v1->n = v2->n = 0;
	r = irqd_client_send_msg(c, type, IRQD_NLM_F_REQUEST | IRQD_NLM_F_DUMP, seq, req, len, NULL, 0);
	if (r < 0)
		return r;
	for (;;) {
		struct irqd_msghdr h;
		const uint8_t *p;
		size_t plen;

		r = irqd_client_recv_msg(c, &h, &p, &plen);
		if (r < 0)
			return local_error(c, -r);
		if (h.seq != seq) {
			note_async(c, &h, p, plen);
			continue;
		}
		if (h.type == IRQD_MSG_ERROR)
			return take_error(c, &h, p, plen);
		if (h.flags & IRQD_NLM_F_DUMP_INTR)
			intr = 1;
		if (h.type == IRQD_MSG_DONE)
			break;
		if (h.type == t1 && plen >= s1)
			r = vec_push(v1, p, s1);
		else if (h.type == t2 && plen >= s2)
			r = vec_push(v2, p, s2);
		else
			return local_error(c, EPROTO);
		if (r < 0)
			return local_error(c, -r);
	}
	clear_error(c);
	return intr;
}

static int dump_retry(struct irqd_client *c, uint16_t type, uint32_t handle, uint16_t t1, size_t s1,
		      struct vec *v1, uint16_t t2, size_t s2, struct vec *v2)
{
	struct irqd_handle req = { .handle = handle };

	for (int i = 0; i <= DUMP_RETRIES; i++) {
		int r = dump_once(c, type, &req, sizeof(req), t1, s1, v1, t2, s2, v2);
		if (r <= 0)
			return r;
	}
	return local_error(c, EAGAIN);
}

int irqd_dump_state(struct irqd_client *c, uint32_t handle, struct irqd_state_dump *out)
{
	struct vec v1 = { 0 }, v2 = { 0 };
	int r = dump_retry(c, IRQD_MSG_DUMP_STATE, handle, IRQD_MSG_SOURCE_STATE,
			   sizeof(struct irqd_source_state), &v1, IRQD_MSG_ICP_STATE,
			   sizeof(struct irqd_icp_state), &v2);

	out->sources = v1.p;
	out->nsources = v1.n;
	out->icps = v2.p;
	out->nicps = v2.n;
	return r;
}

void irqd_state_dump_free(struct irqd_state_dump *d)
{
	free(d->sources);
	free(d->icps);
	memset(d, 0, sizeof(*d));
}

int irqd_get_stats(struct irqd_client *c, uint32_t handle, struct irqd_stats_dump *out)
{
	struct vec v1 = { 0 }, v2 = { 0 };
	int r = dump_retry(c, IRQD_MSG_GET_STATS, handle, IRQD_MSG_SOURCE_STATS,
			   sizeof(struct irqd_source_stats), &v1, IRQD_MSG_SERVER_STATS,
			   sizeof(struct irqd_server_stats), &v2);

	out->sources = v1.p;
	out->nsources = v1.n;
	out->servers = v2.p;
	out->nservers = v2.n;
	return r;
}

void irqd_stats_dump_free(struct irqd_stats_dump *d)
{
	free(d->sources);
	free(d->servers);
	memset(d, 0, sizeof(*d));
}

int irqd_list_devices(struct irqd_client *c, struct irqd_device_info *out, size_t max, size_t *count)
{
	uint32_t seq = irqd_client_next_seq(c);
	size_t n = 0;
	int r = irqd_client_send_msg(c, IRQD_MSG_LIST_DEVICES, IRQD_NLM_F_REQUEST | IRQD_NLM_F_DUMP, seq,
				     NULL, 0, NULL, 0);

	if (r < 0)
		return r;
	for (;;) {
		struct irqd_msghdr h;
		const uint8_t *p;
		size_t plen;

		r = irqd_client_recv_msg(c, &h, &p, &plen);
		if (r < 0)
			return local_error(c, -r);
		if (h.seq != seq) {
			note_async(c, &h, p, plen);
			continue;
		}
		if (h.type == IRQD_MSG_ERROR)
			return take_error(c, &h, p, plen);
		if (h.type == IRQD_MSG_DONE)
			break;
		if (h.type != IRQD_MSG_LIST_DEVICES || plen < sizeof(*out))
			return local_error(c, EPROTO);
		if (n < max)
			memcpy(&out[n], p, sizeof(*out));
		n++;
	}
	if (count)
		*count = n;
	clear_error(c);
	return 0;
}

/* ---- batches ---- */

int irqd_batch_init(struct irqd_batch *b, struct irqd_client *c)
{
	memset(b, 0, sizeof(*b));
	b->c = c;
	b->cap = c->max_record;
	b->buf = malloc(b->cap);
	if (!b->buf)
		return local_error(c, ENOMEM);
	return 0;
}

void irqd_batch_free(struct irqd_batch *b)
{
	free(b->buf);
	b->buf = NULL;
	b->len = b->cap = 0;
}

/* Room kept at the end of every record for the barrier NOOP. */
#define BARRIER_LEN IRQD_NLMSG_HDRLEN

int irqd_batch_flush(struct irqd_batch *b)
{
	int r = 0;

	if (b->send_error)
		return b->send_error;
	if (b->len)
		r = irqd_client_send_raw(b->c, b->buf, b->len, b->fds, b->nfds);
	b->len = 0;
	b->nfds = 0;
	if (r < 0)
		b->send_error = r;
	return r;
}

int64_t irqd_batch_add(struct irqd_batch *b, uint16_t type, uint16_t flags, const void *payload,
		       size_t len, const int *fds, unsigned nfds)
{
	size_t need = align4(IRQD_NLMSG_HDRLEN + len);
	uint32_t seq;

	if (b->send_error)
		return b->send_error;
	if (!b->buf)
		return local_error(b->c, EBADF);
	if (need + BARRIER_LEN > b->cap || nfds > b->c->max_fds)
		return local_error(b->c, EMSGSIZE);
	if (b->len + need + BARRIER_LEN > b->cap || b->nfds + nfds > b->c->max_fds) {
		int r = irqd_batch_flush(b);
		if (r < 0)
			return r;
	}
	seq = irqd_client_next_seq(b->c);
	b->len += put_msg(b->buf + b->len, type, flags | IRQD_NLM_F_REQUEST, seq, payload, len);
	if (nfds) {
		memcpy(b->fds + b->nfds, fds, nfds * sizeof(int));
		b->nfds += nfds;
	}
	b->nmsgs++;
	return seq;
}

int irqd_batch_irq_line(struct irqd_batch *b, uint32_t handle, uint32_t irq, uint32_t level)
{
	struct irqd_irq_level m = { .handle = handle, .irq = irq, .level = level };
	int64_t r = irqd_batch_add(b, IRQD_MSG_IRQ_LINE, 0, &m, sizeof(m), NULL, 0);

	return r < 0 ? (int)r : 0;
}

int irqd_batch_irq_lines(struct irqd_batch *b, uint32_t handle,
			 const struct irqd_irq_batch_entry *entries, uint32_t count)
{
	size_t len = sizeof(struct irqd_irq_batch) + (size_t)count * sizeof(*entries);
	uint8_t *tmp;
	int64_t r;

	if (len + IRQD_NLMSG_HDRLEN + BARRIER_LEN > b->cap)
		return local_error(b->c, EMSGSIZE);
	tmp = malloc(len);
	if (!tmp)
		return local_error(b->c, ENOMEM);
	batch_payload(tmp, handle, entries, count);
	r = irqd_batch_add(b, IRQD_MSG_IRQ_LINE_BATCH, 0, tmp, len, NULL, 0);
	free(tmp);
	return r < 0 ? (int)r : 0;
}

int irqd_batch_send(struct irqd_batch *b)
{
	struct irqd_client *c = b->c;
	uint32_t seq;
	int first = 0;
	char text[IRQD_CLIENT_ERRMSG_MAX] = "";
	uint32_t off = 0;
	int has_off = 0;

	if (b->send_error)
		return b->send_error;
	if (!b->buf)
		return local_error(c, EBADF);
	/* the barrier: NOOP with ACK, in the same record as the last messages */
	seq = irqd_client_next_seq(c);
	b->len += put_msg(b->buf + b->len, IRQD_MSG_NOOP, IRQD_NLM_F_REQUEST | IRQD_NLM_F_ACK, seq, NULL, 0);
	if (irqd_batch_flush(b) < 0)
		return b->send_error;
	b->nfailed = 0;
	b->first_errno = 0;
	for (;;) {
		struct irqd_msghdr h;
		const uint8_t *p;
		size_t plen;
		int r = irqd_client_recv_msg(c, &h, &p, &plen);

		if (r < 0)
			return local_error(c, -r);
		if (h.type != IRQD_MSG_ERROR)
			continue;   /* a data reply to a batched GET: not collected here */
		r = take_error(c, &h, p, plen);
		if (h.seq == seq)
			break;
		if (r < 0 && b->nfailed++ == 0) {
			first = r;
			b->first_errno = -r;
			memcpy(text, c->last_error, sizeof(text));
			has_off = c->has_offset;
			off = c->last_offset;
		}
	}
	b->nmsgs = 0;
	clear_error(c);
	if (first) {
		c->last_errno = -first;
		memcpy(c->last_error, text, sizeof(text));
		c->has_offset = has_off;
		c->last_offset = off;
	}
	return first;
}

/* ---- restore ---- */

int irqd_restore_state(struct irqd_client *c, uint32_t handle, const struct irqd_state_dump *d,
		       int atomic)
{
	struct irqd_batch b;
	int r, r2;

	if (atomic) {
		r = irqd_restore_begin(c, handle);
		if (r < 0)
			return r;
	}
	r = irqd_batch_init(&b, c);
	if (r < 0)
		goto out;
	for (size_t i = 0; i < d->nicps; i++) {
		struct irqd_connect_vcpu m = { .handle = handle, .server = d->icps[i].server };
		irqd_batch_add(&b, IRQD_MSG_CONNECT_VCPU, 0, &m, sizeof(m), NULL, 0);
	}
	for (size_t i = 0; i < d->nsources; i++) {
		struct irqd_device_attr m = {
			.handle = handle,
			.group = IRQD_KVM_DEV_XICS_GRP_SOURCES,
			.attr = d->sources[i].irq,
			.value = d->sources[i].state,
		};
		irqd_batch_add(&b, IRQD_MSG_SET_DEVICE_ATTR, 0, &m, sizeof(m), NULL, 0);
	}
	for (size_t i = 0; i < d->nicps; i++) {
		struct irqd_one_reg m = {
			.handle = handle,
			.server = d->icps[i].server,
			.id = IRQD_KVM_REG_PPC_ICP_STATE,
			.value = d->icps[i].state,
		};
		irqd_batch_add(&b, IRQD_MSG_SET_ONE_REG, 0, &m, sizeof(m), NULL, 0);
	}
	r = irqd_batch_send(&b);
	irqd_batch_free(&b);
out:
	if (atomic) {
		if (r < 0) {
			/* keep the first failure's text; the abort only cleans up */
			struct irqd_client saved = *c;
			irqd_restore_abort(c, handle);
			c->last_errno = saved.last_errno;
			memcpy(c->last_error, saved.last_error, sizeof(c->last_error));
			c->has_offset = saved.has_offset;
			c->last_offset = saved.last_offset;
			return r;
		}
		r2 = irqd_restore_commit(c, handle);
		return r2;
	}
	return r;
}

/* ==== BEGIN ring: shared-memory trigger ring (abi.h 0x40 RING_SETUP) ==== */

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include "irqd/ring_producer.h"

int irqd_client_ring_open(struct irqd_client *c, uint32_t handle, uint32_t entries_log2,
			  struct irqd_client_ring *r)
{
	struct irqd_ring_setup req = { .handle = handle, .entries_log2 = entries_log2 };
	int fds[2], rc;

	memset(r, 0, sizeof(*r));
	r->memfd = r->doorbell = -1;
	if (entries_log2 < IRQD_RING_MIN_LOG2 || entries_log2 > IRQD_RING_MAX_LOG2)
		return -EINVAL;
	r->size = (size_t)irqd_ring_bytes(entries_log2);
	r->memfd = memfd_create("irqd-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (r->memfd < 0)
		return -errno;
	if (ftruncate(r->memfd, (off_t)r->size) < 0 || fcntl(r->memfd, F_ADD_SEALS, F_SEAL_SHRINK) < 0)
		goto fail_errno;
	r->mem = mmap(NULL, r->size, PROT_READ | PROT_WRITE, MAP_SHARED, r->memfd, 0);
	if (r->mem == MAP_FAILED) {
		r->mem = NULL;
		goto fail_errno;
	}
	irqd_ring_format(r->mem, r->size, entries_log2);
	r->doorbell = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (r->doorbell < 0)
		goto fail_errno;
	fds[0] = r->memfd;
	fds[1] = r->doorbell;
	rc = transact(c, IRQD_MSG_RING_SETUP, &req, sizeof(req), 0, NULL, 0, fds, 2);
	if (rc < 0)
		goto fail;
	r->handle = handle;
	r->entries = 1u << entries_log2;
	return 0;
fail_errno:
	rc = -errno;
fail:
	irqd_client_ring_close(NULL, r);
	return rc;
}

int irqd_client_ring_close(struct irqd_client *c, struct irqd_client_ring *r)
{
	int rc = 0;

	if (c && r->mem) {
		struct irqd_ring_setup req = { .handle = r->handle, .flags = IRQD_RING_DEASSIGN };
		rc = transact(c, IRQD_MSG_RING_SETUP, &req, sizeof(req), 0, NULL, 0, NULL, 0);
	}
	if (r->mem)
		munmap(r->mem, r->size);
	if (r->memfd >= 0)
		close(r->memfd);
	if (r->doorbell >= 0)
		close(r->doorbell);
	r->mem = NULL;
	r->memfd = r->doorbell = -1;
	return rc;
}
/* ==== END ring ==== */
