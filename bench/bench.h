/* SPDX-License-Identifier: MIT */
/*
 * Shared helpers of the benchmark anchors (bench/ C files): clock, CPU pinning,
 * option parsing and the one output format every program prints:
 *
 *     name value unit          one figure per line, on stdout
 *     skipped: name: reason    a figure this machine cannot measure
 *
 * Progress and diagnostics go to stderr; a failure exits non-zero.
 */
#ifndef IRQD_BENCH_H
#define IRQD_BENCH_H

#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* Pin the calling thread (and what it forks later) to one CPU. */
static inline void pin_cpu(int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) < 0)
		die("sched_setaffinity(cpu %d): %s", cpu, strerror(errno));
}

static inline int online_cpus(void)
{
	return (int)sysconf(_SC_NPROCESSORS_ONLN);
}

static inline void figure(const char *name, double value, const char *unit)
{
	printf("%s %.6g %s\n", name, value, unit);
	fflush(stdout);
}

/*
 * A hang guard that costs nothing per call: alarm(2) ends the program with a
 * message when one stage has not finished within `seconds`.  Benchmarks use
 * plain blocking socket calls (no SO_RCVTIMEO, whose timer adds to every
 * blocking call), so a peer that stops answering is caught here instead.
 */
static const char *watchdog_what = "";

static void watchdog_fire(int sig)
{
	static const char pre[] = "watchdog: no progress within the time allowed: ";

	(void)sig;
	if (write(2, pre, sizeof(pre) - 1) < 0 ||
	    write(2, watchdog_what, strlen(watchdog_what)) < 0 || write(2, "\n", 1) < 0)
		_exit(3);
	_exit(3);
}

static inline void watchdog(unsigned seconds, const char *what)
{
	watchdog_what = what;
	signal(SIGALRM, watchdog_fire);
	alarm(seconds);
}

static inline void skipped(const char *name, const char *reason)
{
	printf("skipped: %s: %s\n", name, reason);
	fflush(stdout);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* q in [0,1]: nearest-rank quantile of n samples (sorts them). */
static inline uint64_t quantile(uint64_t *v, size_t n, double q)
{
	size_t i;

	qsort(v, n, sizeof(*v), cmp_u64);
	i = (size_t)(q * (double)n);
	if (i >= n)
		i = n - 1;
	return v[i];
}

static inline double arg_double(const char *s, const char *what)
{
	char *end;
	double v = strtod(s, &end);

	if (*s == '\0' || *end != '\0' || v < 0)
		die("bad %s: %s", what, s);
	return v;
}

#endif /* IRQD_BENCH_H */
