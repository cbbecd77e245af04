/* SPDX-License-Identifier: MIT */
/*
 * The raw floor under irqd: what an AF_UNIX SOCK_SEQPACKET connection costs
 * in plain C with a server that does nothing but walk the messages.
 *
 * A forked echo server (pinned to --server-cpu) reads records and walks
 * them message by message (16-byte netlink-style headers: irqd_msghdr),
 * touching every one; a message flagged NLM_F_ACK gets a 16-byte reply
 * carrying how many messages the server has seen.  The client (pinned to
 * --client-cpu) measures:
 *
 *   floor_rtt_TAG        median round trip of one 16-byte request + reply, us
 *   floor_oneway_TAG     records of one 16-byte message, sent back to back,
 *                        ended by one round trip (which proves the server
 *                        saw them all), M messages/s
 *   floor_batch64_TAG    the same with 64 messages per record, M messages/s
 *   floor_batch1000_TAG  ... 1000 messages per record (16000 B), M messages/s
 *
 * floor_server_cpu_{rtt,oneway}_TAG: the echo server's own CPU time
 * (/proc/PID/schedstat) per request / per record, beside irqd_daemon_cpu_*.
 *
 * Rates are the best of 5 equal time slices; --seconds is the time spent on
 * each figure.  TAG names the placement (e.g. same = both on CPU 0, cross =
 * client on CPU 0, server on CPU 1).
 *
 * usage: seqpacket_floor [--client-cpu N] [--server-cpu N] [--tag T] [--seconds S]
 */
#include "bench.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "irqd/abi.h"

#define SLICES 5
#define MAX_SAMPLES 200000
#define RECBUF 65536

static void server(int fd)
{
	static uint8_t buf[RECBUF];
	uint64_t seen = 0, sum = 0;

	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);

		if (n <= 0)
			_exit(n < 0);
		for (size_t off = 0; off + IRQD_NLMSG_HDRLEN <= (size_t)n;) {
			struct irqd_msghdr h;

			memcpy(&h, buf + off, sizeof(h));
			if (h.len < IRQD_NLMSG_HDRLEN || h.len > (size_t)n - off)
				_exit(2);
			seen++;
			sum += h.seq;
			if (h.flags & IRQD_NLM_F_ACK) {
				struct irqd_msghdr r = {
					.len = sizeof(r), .type = IRQD_MSG_ERROR,
					.seq = h.seq, .pid = (uint32_t)seen,
				};
				if (send(fd, &r, sizeof(r), 0) != sizeof(r))
					_exit(3);
			}
			off += IRQD_NLMSG_ALIGN(h.len);
		}
	}
	(void)sum;
}

static int fd;
static pid_t server_pid;
static uint32_t seq;

static uint64_t server_cpu_ns(void)
{
	char path[64];
	unsigned long long ns = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/schedstat", (int)server_pid);
	if (!(f = fopen(path, "r")) || fscanf(f, "%llu", &ns) != 1)
		die("floor: cannot read %s", path);
	fclose(f);
	return ns;
}
static uint64_t sent;           /* messages the server must have seen */

static void round_trip(void)
{
	struct irqd_msghdr h = {
		.len = sizeof(h), .type = IRQD_MSG_NOOP,
		.flags = IRQD_NLM_F_REQUEST | IRQD_NLM_F_ACK, .seq = ++seq,
	}, r;

	if (send(fd, &h, sizeof(h), 0) != sizeof(h))
		die("floor: send: %s", strerror(errno));
	sent++;
	if (recv(fd, &r, sizeof(r), 0) != sizeof(r))
		die("floor: recv: %s", strerror(errno));
	if (r.seq != h.seq || r.pid != (uint32_t)sent)
		die("floor: server saw %u messages, client sent %llu", r.pid,
		    (unsigned long long)sent);
}

/* Messages per second, best slice: records of `per` messages, then one
 * round trip per slice. */
static double rate(int per, double seconds)
{
	static uint8_t rec[1000 * IRQD_NLMSG_HDRLEN];
	double best = 0;

	for (int s = 0; s < SLICES; s++) {
		uint64_t t0 = now_ns(), n = 0;
		uint64_t limit = (uint64_t)(seconds / SLICES * 1e9);

		do {
			for (int k = 0; k < 64; k++) {
				for (int m = 0; m < per; m++) {
					struct irqd_msghdr h = {
						.len = IRQD_NLMSG_HDRLEN, .type = IRQD_MSG_NOOP,
						.flags = IRQD_NLM_F_REQUEST, .seq = ++seq,
					};
					memcpy(rec + m * IRQD_NLMSG_HDRLEN, &h, sizeof(h));
				}
				ssize_t len = (ssize_t)per * IRQD_NLMSG_HDRLEN;
				if (send(fd, rec, (size_t)len, 0) != len)
					die("floor: send: %s", strerror(errno));
				n += (uint64_t)per;
			}
		} while (now_ns() - t0 < limit);
		sent += n;
		round_trip();
		double r = (double)n / ((double)(now_ns() - t0) / 1e9);
		if (r > best)
			best = r;
	}
	return best;
}

int main(int argc, char **argv)
{
	int client_cpu = 0, server_cpu = 0, sv[2], status;
	double seconds = 0.5;
	const char *tag = "same";
	char name[64];
	pid_t pid;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--client-cpu") && i + 1 < argc)
			client_cpu = (int)arg_double(argv[++i], "cpu");
		else if (!strcmp(argv[i], "--server-cpu") && i + 1 < argc)
			server_cpu = (int)arg_double(argv[++i], "cpu");
		else if (!strcmp(argv[i], "--tag") && i + 1 < argc)
			tag = argv[++i];
		else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
			seconds = arg_double(argv[++i], "seconds");
		else
			die("usage: seqpacket_floor [--client-cpu N] [--server-cpu N] [--tag T] [--seconds S]");
	}
	if (client_cpu >= online_cpus() || server_cpu >= online_cpus()) {
		snprintf(name, sizeof(name), "floor_*_%s", tag);
		skipped(name, "not enough online CPUs for this placement");
		return 0;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		die("floor: socketpair: %s", strerror(errno));
	pid = fork();
	if (pid < 0)
		die("floor: fork: %s", strerror(errno));
	if (pid == 0) {
		close(sv[0]);
		pin_cpu(server_cpu);
		server(sv[1]);
	}
	close(sv[1]);
	fd = sv[0];
	server_pid = pid;
	pin_cpu(client_cpu);

	/* round trip: median of individually timed samples */
	static uint64_t samples[MAX_SAMPLES];
	size_t ns = 0;
	uint64_t cpu0 = server_cpu_ns(), sent0;
	for (int i = 0; i < 200; i++)
		round_trip();
	uint64_t t0 = now_ns(), limit = (uint64_t)(seconds * 1e9);
	while (ns < MAX_SAMPLES && (ns < 10 || now_ns() - t0 < limit)) {
		uint64_t a = now_ns();
		round_trip();
		samples[ns++] = now_ns() - a;
	}
	snprintf(name, sizeof(name), "floor_rtt_%s", tag);
	figure(name, (double)quantile(samples, ns, 0.5) / 1e3, "us");
	snprintf(name, sizeof(name), "floor_server_cpu_rtt_%s", tag);
	figure(name, (double)(server_cpu_ns() - cpu0) / (double)sent / 1e3, "us/request");

	snprintf(name, sizeof(name), "floor_oneway_%s", tag);
	cpu0 = server_cpu_ns();
	sent0 = sent;
	figure(name, rate(1, seconds) / 1e6, "M/s");
	snprintf(name, sizeof(name), "floor_server_cpu_oneway_%s", tag);
	figure(name, (double)(server_cpu_ns() - cpu0) / (double)(sent - sent0) / 1e3, "us/record");
	snprintf(name, sizeof(name), "floor_batch64_%s", tag);
	figure(name, rate(64, seconds) / 1e6, "M/s");
	snprintf(name, sizeof(name), "floor_batch1000_%s", tag);
	figure(name, rate(1000, seconds) / 1e6, "M/s");

	close(fd);
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		die("floor: echo server failed (status 0x%x)", status);
	return 0;
}
