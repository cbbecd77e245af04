/* SPDX-License-Identifier: MIT */
/*
 * irqd over its wire protocol, from C, with nothing in between: the client
 * side of every irqd figure in `make bench`.  All layouts and numbers come
 * from include/irqd/abi.h.
 *
 * Set-up (one connection): HELLO, CREATE_DEVICE, CREATE_ICS of NSRC MSI
 * sources from FIRST_IRQ, CONNECT_VCPU server 0, H_CPPR(0xFF) so the ICP
 * accepts everything, and ibm,set-xive of every source to server 0 priority
 * 5, so that triggers reach a routed, unmasked source and an open CPPR (the
 * first trigger of a source presents it, the next ones coalesce into Q, as
 * on a guest that has not EOId yet).  Then, pinned to --cpu:
 *
 *   irqd_rtt_TAG          median round trip of IRQ_LINE with NLM_F_ACK
 *                         (request 32 B, ERROR(0) reply 36 B), us
 *   irqd_oneway_TAG       IRQ_LINE without ACK, one per record, back to back,
 *                         each slice ended by an acknowledged IRQ_LINE; any
 *                         ERROR before that acknowledgement fails the run,
 *                         M triggers/s (best of 5 slices)
 *   irqd_batch64_TAG      IRQ_LINE_BATCH of 64 entries per record, same
 *                         ending, M triggers/s
 *   irqd_batch1000_TAG    ... 1000 entries per record (8016 B)
 *   irqd_clients_*_TAG    --clients threads, each its own connection (which
 *                         has been answered once), all released together,
 *                         each doing --rounds acked IRQ_LINE round trips: how
 *                         many were served all of them, and the median and
 *                         p99 over every round trip
 *
 * Before the clients run, GET_STATS must count exactly the triggers sent on
 * the main connection (else the run fails).
 *
 * usage: irqd_bench --socket PATH [--cpu N] [--tag T] [--seconds S]
 *                   [--clients N] [--rounds K] [--only rtt,oneway,batch,clients]
 *                   [--dump FILE]   (every client round trip: client round start_ns rtt_ns)
 *                   [--daemon-pid PID] (also irqd_daemon_cpu_*: the daemon's CPU time,
 *                                   all threads, per request / record / batch entry; and
 *                                   irqd_clients_daemon_waited: how long the daemon sat
 *                                   runnable but off-CPU during the clients phase)
 */
#include "bench.h"

#include <dirent.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#include "irqd/abi.h"

#define SLICES 5
#define FIRST_IRQ 4096
#define NSRC 1024
#define PRIO 5
#define MAX_SAMPLES 200000
#define REC_MAX (IRQD_MAX_RECORD + 4096)

struct conn {
	int fd;
	uint32_t seq;
	uint8_t rbuf[REC_MAX];
	uint8_t sbuf[REC_MAX];
};

static const char *sock_path;
static uint32_t handle;
static uint64_t main_triggers;  /* triggers sent on the main connection */
static uint64_t main_records;   /* records sent on the main connection */
static int daemon_pid;          /* --daemon-pid: report the daemon's CPU time per request */

/* CPU time the daemon has run so far (all its threads), ns; 0 if unknown.
 * field 0 of schedstat: time on a CPU; field 1: time runnable, waiting. */
static uint64_t daemon_schedstat(int field);

static uint64_t daemon_cpu_ns(void)
{
	return daemon_schedstat(0);
}

static uint64_t daemon_schedstat(int field)
{
	char path[64];
	DIR *d;
	struct dirent *e;
	uint64_t sum = 0;

	if (daemon_pid <= 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/task", daemon_pid);
	if (!(d = opendir(path)))
		die("irqd_bench: %s: %s", path, strerror(errno));
	while ((e = readdir(d))) {
		char f[320];
		unsigned long long ns;
		FILE *fp;

		if (e->d_name[0] == '.')
			continue;
		snprintf(f, sizeof(f), "/proc/%d/task/%s/schedstat", daemon_pid, e->d_name);
		if ((fp = fopen(f, "r"))) {
			unsigned long long wait;

			if (fscanf(fp, "%llu %llu", &ns, &wait) == 2)
				sum += field == 0 ? ns : wait;
			fclose(fp);
		}
	}
	closedir(d);
	return sum;
}

/* Print the daemon's CPU time per unit over a phase (with --daemon-pid). */
static void daemon_cpu_figure(const char *what, const char *tag, uint64_t cpu0, uint64_t units,
			      double ns_per_unit_of_output, const char *unit)
{
	char name[96];

	if (daemon_pid <= 0 || units == 0)
		return;
	snprintf(name, sizeof(name), "irqd_daemon_cpu_%s_%s", what, tag);
	figure(name, (double)(daemon_cpu_ns() - cpu0) / (double)units / ns_per_unit_of_output, unit);
}

static int conn_open(struct conn *c, int fatal)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };

	c->seq = 0;
	c->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		die("irqd_bench: socket: %s", strerror(errno));
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", sock_path);
	if (connect(c->fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		if (fatal)
			die("irqd_bench: connect %s: %s", sock_path, strerror(errno));
		close(c->fd);
		return -errno;
	}
	/* No SO_RCVTIMEO / SO_SNDTIMEO: a blocking call with a timeout arms a
	 * timer, and on this VM that added ~1 us to every round trip that the
	 * raw floor's client (plain blocking calls) does not pay.  A daemon that
	 * stops answering is caught by the alarm watchdog (watchdog()). */
	return 0;
}

/* Append one message to c->sbuf at *off; returns its seq. */
static uint32_t put(struct conn *c, size_t *off, uint16_t type, uint16_t flags,
		    const void *pl, size_t plen)
{
	struct irqd_msghdr h = {
		.len = (uint32_t)(IRQD_NLMSG_HDRLEN + plen), .type = type,
		.flags = (uint16_t)(IRQD_NLM_F_REQUEST | flags), .seq = ++c->seq,
	};

	if (*off + IRQD_NLMSG_ALIGN(h.len) > IRQD_MAX_RECORD)
		die("irqd_bench: record too long");
	memcpy(c->sbuf + *off, &h, sizeof(h));
	memcpy(c->sbuf + *off + sizeof(h), pl, plen);
	*off += IRQD_NLMSG_ALIGN(h.len);
	return h.seq;
}

static int send_rec(struct conn *c, size_t len, int fatal)
{
	ssize_t n = send(c->fd, c->sbuf, len, 0);

	if (n == (ssize_t)len)
		return 0;
	if (fatal)
		die("irqd_bench: send: %s", n < 0 ? strerror(errno) : "short send");
	return -1;
}

static const char *ext_msg(const uint8_t *m, uint32_t len)
{
	/* ERROR: s32 error, 16-byte echoed header, then attributes */
	for (uint32_t o = IRQD_NLMSG_HDRLEN + 20; o + 4 <= len;) {
		struct irqd_nlattr a;

		memcpy(&a, m + o, sizeof(a));
		if (a.len < 4 || o + a.len > len)
			break;
		if (a.type == IRQD_NLMSGERR_ATTR_MSG)
			return (const char *)m + o + 4;
		o += IRQD_NLMSG_ALIGN(a.len);
	}
	return "(no message)";
}

/*
 * Read replies until the one that ends request `seq`: its ERROR when `acked`
 * (0 or -errno), else its data message (copied to out).  Every message for an
 * earlier seq is an ERROR that a fire-and-forget request got: counted in
 * *stray (or fatal when stray is NULL).  Returns 0 / -errno, or -EIO with
 * fatal == 0 on a broken connection.
 */
static int await(struct conn *c, uint32_t seq, int acked, uint16_t type, void *out,
		 size_t outlen, uint64_t *stray, int fatal)
{
	int got_data = 0;

	for (;;) {
		ssize_t n = recv(c->fd, c->rbuf, sizeof(c->rbuf), 0);

		if (n <= 0) {
			if (fatal)
				die("irqd_bench: recv: %s", n < 0 ? strerror(errno) : "daemon closed the connection");
			return -EIO;
		}
		for (size_t off = 0; off + IRQD_NLMSG_HDRLEN <= (size_t)n;) {
			struct irqd_msghdr h;
			const uint8_t *m = c->rbuf + off;

			memcpy(&h, m, sizeof(h));
			if (h.len < IRQD_NLMSG_HDRLEN || h.len > (size_t)n - off)
				die("irqd_bench: malformed reply (len %u at %zu of %zd)", h.len, off, n);
			off += IRQD_NLMSG_ALIGN(h.len);
			if (h.type == IRQD_MSG_ERROR) {
				int32_t err;
				struct irqd_msghdr echo;

				if (h.len < IRQD_NLMSG_HDRLEN + sizeof(struct irqd_error))
					die("irqd_bench: short ERROR reply");
				memcpy(&err, m + IRQD_NLMSG_HDRLEN, 4);
				memcpy(&echo, m + IRQD_NLMSG_HDRLEN + 4, sizeof(echo));
				if (h.seq != seq || echo.seq != seq) {
					if (!stray)
						die("irqd_bench: unexpected ERROR %d for seq %u (waiting for %u): %s",
						    err, h.seq, seq, ext_msg(m, h.len));
					if (*stray == 0)
						fprintf(stderr, "irqd_bench: fire-and-forget request seq %u failed: %d %s\n",
							h.seq, err, ext_msg(m, h.len));
					(*stray)++;
					continue;
				}
				if (err < 0) {
					if (fatal)
						die("irqd_bench: request seq %u type 0x%x failed: %d %s",
						    seq, type, err, ext_msg(m, h.len));
					return err;
				}
				if (!acked && !got_data)
					die("irqd_bench: ERROR(0) where data was expected (seq %u)", seq);
				return 0;
			}
			if (h.seq != seq || h.type != type)
				die("irqd_bench: unexpected reply type 0x%x seq %u (waiting for 0x%x seq %u)",
				    h.type, h.seq, type, seq);
			if (out) {
				size_t plen = h.len - IRQD_NLMSG_HDRLEN;
				memcpy(out, m + IRQD_NLMSG_HDRLEN, plen < outlen ? plen : outlen);
			}
			got_data = 1;
			if (!acked)
				return 0;
		}
	}
}

/* One request, one answer (data, or ERROR(0) with ACK). Fatal on failure. */
static void call(struct conn *c, uint16_t type, int acked, const void *pl, size_t plen,
		 void *out, size_t outlen)
{
	size_t off = 0;
	uint32_t seq = put(c, &off, type, acked ? IRQD_NLM_F_ACK : 0, pl, plen);

	send_rec(c, off, 1);
	await(c, seq, acked, type, out, outlen, NULL, 1);
}

static void setup(struct conn *c)
{
	struct irqd_hello hello = { .version = IRQD_ABI_VERSION };
	struct irqd_create_device cd = { .type = IRQD_KVM_DEV_TYPE_XICS };

	call(c, IRQD_MSG_HELLO, 0, &hello, sizeof(hello), &hello, sizeof(hello));
	if (hello.version != IRQD_ABI_VERSION || hello.max_record < IRQD_MAX_RECORD ||
	    hello.max_irqs < FIRST_IRQ + NSRC)
		die("irqd_bench: HELLO answered version %u max_record %u max_irqs %u",
		    hello.version, hello.max_record, hello.max_irqs);
	call(c, IRQD_MSG_CREATE_DEVICE, 0, &cd, sizeof(cd), &cd, sizeof(cd));
	if (cd.handle == 0)
		die("irqd_bench: CREATE_DEVICE answered handle 0");
	handle = cd.handle;

	struct irqd_create_ics ics = { .handle = handle, .first_irq = FIRST_IRQ, .count = NSRC };
	call(c, IRQD_MSG_CREATE_ICS, 1, &ics, sizeof(ics), NULL, 0);
	struct irqd_connect_vcpu cv = { .handle = handle, .server = 0 };
	call(c, IRQD_MSG_CONNECT_VCPU, 1, &cv, sizeof(cv), NULL, 0);

	struct irqd_hcall hc = { .handle = handle, .server = 0, .nr = IRQD_H_CPPR, .reg = { 0xFF } };
	call(c, IRQD_MSG_HCALL, 0, &hc, sizeof(hc), &hc, sizeof(hc));
	if ((int64_t)hc.reg[0] != IRQD_H_SUCCESS)
		die("irqd_bench: H_CPPR(0xFF) answered %lld", (long long)hc.reg[0]);

	for (uint32_t irq = FIRST_IRQ; irq < FIRST_IRQ + NSRC; irq++) {
		struct irqd_rtas r = {
			.handle = handle, .token = IRQD_RTAS_SET_XIVE, .nargs = 3, .nret = 1,
			.buf = { irq, 0, PRIO },
		};
		call(c, IRQD_MSG_RTAS, 0, &r, sizeof(r), &r, sizeof(r));
		if ((int32_t)r.buf[3] != IRQD_RTAS_SUCCESS)
			die("irqd_bench: ibm,set-xive(%u, 0, %d) answered %d", irq, PRIO, (int32_t)r.buf[3]);
	}
}

static uint32_t trig_irq(uint64_t i)
{
	return FIRST_IRQ + (uint32_t)(i % NSRC);
}

/* One acknowledged IRQ_LINE; 0 or -errno / -EIO. */
static int acked_trigger(struct conn *c, uint64_t i, int fatal)
{
	struct irqd_irq_level l = { .handle = handle, .irq = trig_irq(i), .level = IRQD_KVM_INTERRUPT_SET };
	size_t off = 0;
	uint32_t seq = put(c, &off, IRQD_MSG_IRQ_LINE, IRQD_NLM_F_ACK, &l, sizeof(l));

	if (send_rec(c, off, fatal) < 0)
		return -EIO;
	return await(c, seq, 1, IRQD_MSG_IRQ_LINE, NULL, 0, NULL, fatal);
}

static double rtt_median(struct conn *c, double seconds)
{
	static uint64_t samples[MAX_SAMPLES];
	size_t n = 0;
	uint64_t t0, limit = (uint64_t)(seconds * 1e9);

	for (int i = 0; i < 200; i++)
		acked_trigger(c, (uint64_t)i, 1);
	t0 = now_ns();
	while (n < MAX_SAMPLES && (n < 10 || now_ns() - t0 < limit)) {
		uint64_t a = now_ns();
		acked_trigger(c, n, 1);
		samples[n++] = now_ns() - a;
	}
	main_triggers += 200 + n;
	main_records += 200 + n;
	return (double)quantile(samples, n, 0.5) / 1e3;
}

/* Triggers per second, best slice.  per == 0: one IRQ_LINE per record;
 * else one IRQ_LINE_BATCH of `per` entries per record. */
static double trigger_rate(struct conn *c, uint32_t per, double seconds)
{
	double best = 0;
	uint64_t i = 0, stray = 0;

	for (int s = 0; s < SLICES; s++) {
		uint64_t t0 = now_ns(), n = 0, recs = 0, limit = (uint64_t)(seconds / SLICES * 1e9);

		do {
			for (int k = 0; k < 64; k++, recs++) {
				size_t off = 0;

				if (per == 0) {
					struct irqd_irq_level l = {
						.handle = handle, .irq = trig_irq(i++),
						.level = IRQD_KVM_INTERRUPT_SET,
					};
					put(c, &off, IRQD_MSG_IRQ_LINE, 0, &l, sizeof(l));
					n++;
				} else {
					static uint8_t pl[8 + 8 * 1000];
					struct irqd_irq_batch b = { .handle = handle, .count = per };

					memcpy(pl, &b, sizeof(b));
					for (uint32_t e = 0; e < per; e++) {
						struct irqd_irq_batch_entry en = {
							.irq = trig_irq(i++), .level = IRQD_KVM_INTERRUPT_SET,
						};
						memcpy(pl + 8 + 8 * e, &en, sizeof(en));
					}
					put(c, &off, IRQD_MSG_IRQ_LINE_BATCH, 0, pl, 8 + 8 * (size_t)per);
					n += per;
				}
				send_rec(c, off, 1);
			}
		} while (now_ns() - t0 < limit);
		/* the acknowledged trigger proves every earlier one was applied */
		struct irqd_irq_level l = { .handle = handle, .irq = trig_irq(i++), .level = IRQD_KVM_INTERRUPT_SET };
		size_t off = 0;
		uint32_t seq = put(c, &off, IRQD_MSG_IRQ_LINE, IRQD_NLM_F_ACK, &l, sizeof(l));
		send_rec(c, off, 1);
		await(c, seq, 1, IRQD_MSG_IRQ_LINE, NULL, 0, &stray, 1);
		n++;
		if (stray)
			die("irqd_bench: %llu fire-and-forget requests answered ERROR", (unsigned long long)stray);
		main_triggers += n;
		main_records += recs + 1;
		double r = (double)n / ((double)(now_ns() - t0) / 1e9);
		if (r > best)
			best = r;
	}
	return best;
}

/*
 * GET_STATS: the daemon's trigger counters of our sources must add up to
 * exactly the triggers this connection sent (every fire-and-forget one was
 * applied, none twice).  Counters are u32 per source; none gets near 2^32.
 */
static void check_trigger_count(struct conn *c)
{
	struct irqd_handle hq = { .handle = handle };
	size_t off = 0;
	uint32_t seq = put(c, &off, IRQD_MSG_GET_STATS, 0, &hq, sizeof(hq));
	uint64_t sum = 0, nsrc = 0;

	send_rec(c, off, 1);
	for (;;) {
		ssize_t n = recv(c->fd, c->rbuf, sizeof(c->rbuf), 0);

		if (n <= 0)
			die("irqd_bench: GET_STATS: %s", n < 0 ? strerror(errno) : "connection closed");
		for (size_t o = 0; o + IRQD_NLMSG_HDRLEN <= (size_t)n;) {
			struct irqd_msghdr h;

			memcpy(&h, c->rbuf + o, sizeof(h));
			if (h.len < IRQD_NLMSG_HDRLEN || h.len > (size_t)n - o || h.seq != seq)
				die("irqd_bench: GET_STATS: bad reply (len %u seq %u)", h.len, h.seq);
			if (h.type == IRQD_MSG_SOURCE_STATS) {
				struct irqd_source_stats st;

				memcpy(&st, c->rbuf + o + IRQD_NLMSG_HDRLEN, sizeof(st));
				if (st.irq >= FIRST_IRQ && st.irq < FIRST_IRQ + NSRC) {
					sum += st.triggers;
					nsrc++;
				}
			} else if (h.type == IRQD_MSG_DONE) {
				if (nsrc != NSRC || sum != main_triggers)
					die("irqd_bench: GET_STATS counts %llu triggers over %llu sources; "
					    "this connection sent %llu", (unsigned long long)sum,
					    (unsigned long long)nsrc, (unsigned long long)main_triggers);
				fprintf(stderr, "irqd_bench: GET_STATS: all %llu triggers sent were applied\n",
					(unsigned long long)sum);
				return;
			} else if (h.type == IRQD_MSG_ERROR) {
				int32_t err;
				memcpy(&err, c->rbuf + o + IRQD_NLMSG_HDRLEN, 4);
				die("irqd_bench: GET_STATS failed: %d", err);
			}
			o += IRQD_NLMSG_ALIGN(h.len);
		}
	}
}

/* ---- concurrent clients ---- */

static pthread_barrier_t start_line;
static int rounds = 50;
static const char *dump_path;   /* --dump FILE: "client round start_ns rtt_ns" per round trip */
static uint64_t t_release;

struct client {
	pthread_t tid;
	struct conn *c;
	int idx;
	int connected;
	int done;               /* round trips answered ERROR(0) */
	uint64_t *samples;
	uint64_t *starts;
};

static void *client_main(void *arg)
{
	struct client *cl = arg;

	/* connected and answered once before the clock starts: the figure is
	 * 256 clients in steady state, not the daemon accepting 256 connections */
	if (conn_open(cl->c, 0) == 0) {
		cl->connected = acked_trigger(cl->c, (uint64_t)cl->idx, 0) == 0;
		if (!cl->connected)
			close(cl->c->fd);
	}
	if (pthread_barrier_wait(&start_line) == PTHREAD_BARRIER_SERIAL_THREAD)
		t_release = now_ns();
	if (!cl->connected)
		return NULL;
	for (int r = 0; r < rounds; r++) {
		uint64_t a = now_ns();
		if (acked_trigger(cl->c, (uint64_t)cl->idx + (uint64_t)r, 0) < 0)
			break;
		cl->starts[cl->done] = a;
		cl->samples[cl->done++] = now_ns() - a;
	}
	close(cl->c->fd);
	return NULL;
}

static void clients(int nclients, const char *tag)
{
	struct client *cls = calloc((size_t)nclients, sizeof(*cls));
	uint64_t *all = calloc((size_t)nclients * (size_t)rounds, sizeof(*all));
	uint64_t *starts = calloc((size_t)nclients * (size_t)rounds, sizeof(*starts));
	FILE *dump = NULL;
	size_t n = 0;
	int served = 0;
	char name[80];

	if (!cls || !all || !starts)
		die("irqd_bench: out of memory");
	if (dump_path && !(dump = fopen(dump_path, "w")))
		die("irqd_bench: %s: %s", dump_path, strerror(errno));
	pthread_barrier_init(&start_line, NULL, (unsigned)nclients);
	for (int i = 0; i < nclients; i++) {
		cls[i].c = malloc(sizeof(struct conn));
		cls[i].idx = i;
		cls[i].samples = all + (size_t)i * (size_t)rounds;
		cls[i].starts = starts + (size_t)i * (size_t)rounds;
		if (!cls[i].c)
			die("irqd_bench: out of memory");
		pthread_attr_t at;
		pthread_attr_init(&at);
		pthread_attr_setstacksize(&at, 256 * 1024);
		if (pthread_create(&cls[i].tid, &at, client_main, &cls[i]) != 0)
			die("irqd_bench: pthread_create: %s", strerror(errno));
		pthread_attr_destroy(&at);
	}
	for (int i = 0; i < nclients; i++) {
		pthread_join(cls[i].tid, NULL);
		if (cls[i].done == rounds)
			served++;
		else
			fprintf(stderr, "irqd_bench: client %d: %s, %d of %d round trips answered\n", i,
				cls[i].connected ? "connected" : "connect or first round trip failed", cls[i].done, rounds);
		for (int r = 0; dump && r < cls[i].done; r++)
			fprintf(dump, "%d %d %llu %llu\n", i, r,
				(unsigned long long)(cls[i].starts[r] - t_release),
				(unsigned long long)cls[i].samples[r]);
		/* compact the samples of every client */
		memmove(all + n, cls[i].samples, (size_t)cls[i].done * sizeof(*all));
		n += (size_t)cls[i].done;
		free(cls[i].c);
	}
	snprintf(name, sizeof(name), "irqd_clients_served_%s", tag);
	figure(name, served, "clients");
	snprintf(name, sizeof(name), "irqd_clients_total_%s", tag);
	figure(name, nclients, "clients");
	if (n > 0) {
		snprintf(name, sizeof(name), "irqd_clients_median_%s", tag);
		figure(name, (double)quantile(all, n, 0.5) / 1e3, "us");
		snprintf(name, sizeof(name), "irqd_clients_p99_%s", tag);
		figure(name, (double)quantile(all, n, 0.99) / 1e3, "us");
	}
	if (dump)
		fclose(dump);
	free(starts);
	free(all);
	free(cls);
}

int main(int argc, char **argv)
{
	int cpu = 0, nclients = 256;
	double seconds = 0.5;
	const char *tag = "same", *only = "rtt,oneway,batch,clients";
	char name[80];
	unsigned guard;
	static struct conn main_conn;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--socket") && i + 1 < argc)
			sock_path = argv[++i];
		else if (!strcmp(argv[i], "--cpu") && i + 1 < argc)
			cpu = (int)arg_double(argv[++i], "cpu");
		else if (!strcmp(argv[i], "--tag") && i + 1 < argc)
			tag = argv[++i];
		else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
			seconds = arg_double(argv[++i], "seconds");
		else if (!strcmp(argv[i], "--clients") && i + 1 < argc)
			nclients = (int)arg_double(argv[++i], "clients");
		else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
			rounds = (int)arg_double(argv[++i], "rounds");
		else if (!strcmp(argv[i], "--daemon-pid") && i + 1 < argc)
			daemon_pid = (int)arg_double(argv[++i], "daemon pid");
		else if (!strcmp(argv[i], "--dump") && i + 1 < argc)
			dump_path = argv[++i];
		else if (!strcmp(argv[i], "--only") && i + 1 < argc)
			only = argv[++i];
		else
			die("usage: irqd_bench --socket PATH [--cpu N] [--tag T] [--seconds S] "
			    "[--clients N] [--rounds K] [--only rtt,oneway,batch,clients] [--dump FILE] [--daemon-pid PID]");
	}
	if (!sock_path || rounds < 1 || nclients < 1)
		die("irqd_bench: --socket is required; --rounds and --clients must be >= 1");
	pin_cpu(cpu);
	/* every stage below takes a few times `seconds`; far more means a hang */
	guard = 60 + (unsigned)(seconds * 10);

	watchdog(guard, "irqd_bench: connect and set up (daemon not answering?)");
	conn_open(&main_conn, 1);
	setup(&main_conn);
	fprintf(stderr, "irqd_bench: device %u, %d MSI sources from %d routed to server 0 priority %d, CPPR 0xFF\n",
		handle, NSRC, FIRST_IRQ, PRIO);

	if (strstr(only, "rtt")) {
		watchdog(guard, "irqd_bench: rtt figure (daemon not answering?)");
		uint64_t cpu0 = daemon_cpu_ns(), r0 = main_records;
		snprintf(name, sizeof(name), "irqd_rtt_%s", tag);
		figure(name, rtt_median(&main_conn, seconds), "us");
		daemon_cpu_figure("rtt", tag, cpu0, main_records - r0, 1e3, "us/request");
	}
	if (strstr(only, "oneway")) {
		watchdog(guard, "irqd_bench: oneway figure (daemon not answering?)");
		uint64_t cpu0 = daemon_cpu_ns(), r0 = main_records;
		snprintf(name, sizeof(name), "irqd_oneway_%s", tag);
		figure(name, trigger_rate(&main_conn, 0, seconds) / 1e6, "M/s");
		daemon_cpu_figure("oneway", tag, cpu0, main_records - r0, 1e3, "us/record");
	}
	if (strstr(only, "batch")) {
		watchdog(guard, "irqd_bench: batch figure (daemon not answering?)");
		uint64_t cpu0, t0;

		snprintf(name, sizeof(name), "irqd_batch64_%s", tag);
		cpu0 = daemon_cpu_ns();
		t0 = main_triggers;
		figure(name, trigger_rate(&main_conn, 64, seconds) / 1e6, "M/s");
		daemon_cpu_figure("batch64", tag, cpu0, main_triggers - t0, 1, "ns/entry");
		snprintf(name, sizeof(name), "irqd_batch1000_%s", tag);
		cpu0 = daemon_cpu_ns();
		t0 = main_triggers;
		figure(name, trigger_rate(&main_conn, 1000, seconds) / 1e6, "M/s");
		daemon_cpu_figure("batch1000", tag, cpu0, main_triggers - t0, 1, "ns/entry");
	}
	watchdog(guard, "irqd_bench: GET_STATS check (daemon not answering?)");
	check_trigger_count(&main_conn);
	if (strstr(only, "clients")) {
		watchdog(guard, "irqd_bench: clients figure (daemon not answering?)");
		uint64_t waited = daemon_schedstat(1);

		clients(nclients, tag);
		if (daemon_pid > 0) {
			/* runnable but not running: other work had the daemon's CPU */
			snprintf(name, sizeof(name), "irqd_clients_daemon_waited_%s", tag);
			figure(name, (double)(daemon_schedstat(1) - waited) / 1e6, "ms");
		}
	}
	close(main_conn.fd);
	return 0;
}
