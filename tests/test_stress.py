"""Multi-threaded stress of the core: threads firing edges at MSI sources
routed to several servers while other threads act as the vCPUs (H_XIRR,
sometimes nested, then H_EOI in LIFO order).  Bounded counts.

Accounting (decisions.md): per source, ``triggers = presentations accepted +
triggers coalesced + occurrences still pending``; after the final drain
nothing is pending, so ``coalesced = triggers - accepted >= 0``.  Checked
against the core's own counters:

* the core's ``triggers`` equals what the firing threads fired (none lost);
* every XIRR returns an interrupt routed to the caller, strictly more
  favoured than the caller's CPPR, with that CPPR in its top byte, and never
  one already in service (nothing duplicated);
* per server, ``deliveries = accepted + rejects`` (every presentation was
  accepted exactly once or pushed out and delivered again);
* at the end every source is quiescent (P = Q = 0, no resend, no
  masked-pending) and every XISR empty (nothing lost or stuck).

Two variants: Python threads through cffi (the GIL is released in every core
call), and the same in C with real parallelism (built from the core sources
with gcc; also under ThreadSanitizer when clang can).
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from irqd._core import lib

from irqd.backend import SET
from irqd.inproc import Xics

ROOT = Path(__file__).resolve().parents[1]
H_SUCCESS = lib.IRQD_H_SUCCESS
SERVERS = 3
NSRC = 24
FIRST = 16
FIRERS = 2
FIRES_PER_THREAD = 10000


def test_python_threads_nothing_lost_or_duplicated():
    d = Xics()
    d.create_ics(FIRST, NSRC)
    server_of, prio_of = {}, {}
    for s in range(SERVERS):
        d.connect_vcpu(s)
        assert d.h_cppr(s, 0xFF) == H_SUCCESS
    for i in range(NSRC):
        irq = FIRST + i
        server_of[irq] = i % SERVERS
        prio_of[irq] = (3, 5, 7, 9)[i % 4]
        assert d.set_xive(irq, server_of[irq], prio_of[irq]) == 0

    fired = [[0] * NSRC for _ in range(FIRERS)]
    accepted = [[0] * NSRC for _ in range(SERVERS)]
    in_service = [False] * NSRC
    errors: list[str] = []
    done = threading.Event()

    def firer(t: int) -> None:
        rng = random.Random(t)
        mine = fired[t]
        for n in range(FIRES_PER_THREAD):
            i = rng.randrange(NSRC)
            d.irq_line(FIRST + i, SET)
            mine[i] += 1
            if n % 3 == 0:
                time.sleep(0)  # hand the GIL over: let the vCPUs interleave

    def vcpu(s: int, drain_only: bool = False) -> None:
        rng = random.Random(100 + s)
        stack: list[int] = []
        cppr = 0xFF
        idle = 0
        while True:
            _, xirr = d.h_xirr(s)
            irq = xirr & 0xFFFFFF
            if irq:
                i = irq - FIRST
                if (
                    not (0 <= i < NSRC)
                    or server_of[irq] != s
                    or xirr >> 24 != cppr
                    or prio_of[irq] >= cppr
                    or in_service[i]
                ):
                    errors.append(f"server {s}: bad XIRR {xirr:#x} (cppr {cppr:#x}, stack {stack})")
                    return
                in_service[i] = True
                accepted[s][i] += 1
                stack.append(xirr)
                cppr = prio_of[irq]
                if not drain_only and len(stack) < 3 and rng.random() < 0.3:
                    continue  # nest: accept a more favoured one before EOI
            if stack:
                x = stack.pop()
                in_service[(x & 0xFFFFFF) - FIRST] = False
                if d.h_eoi(s, x) != H_SUCCESS:
                    errors.append(f"server {s}: EOI {x:#x} failed")
                    return
                cppr = x >> 24
                idle = 0
            elif done.is_set() or drain_only:
                idle += 1
                if idle > 3:
                    return
            else:
                time.sleep(0)

    threads = [threading.Thread(target=firer, args=(t,)) for t in range(FIRERS)]
    threads += [threading.Thread(target=vcpu, args=(s,)) for s in range(SERVERS)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # interleave the threads as much as the GIL allows
    try:
        for t in threads:
            t.start()
        for t in threads[:FIRERS]:
            t.join()
        done.set()
        for t in threads[FIRERS:]:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert not errors, errors

    # final drain, single-threaded: a Down_CPPR on every server runs the
    # resend scan of anything a concurrent failure left behind
    for _ in range(4):
        for s in range(SERVERS):
            assert d.h_cppr(s, 0xFE) == H_SUCCESS
            assert d.h_cppr(s, 0xFF) == H_SUCCESS
            vcpu(s, drain_only=True)
    assert not errors, errors

    stats = d.stats()
    srcs, _ = d.export_raw()
    raw = {r["irq"]: r for r in srcs}
    total_fired = 0
    for i in range(NSRC):
        irq = FIRST + i
        t = sum(f[i] for f in fired)
        a = sum(acc[i] for acc in accepted)
        total_fired += t
        assert stats.sources[irq][0] == t, irq  # no trigger lost
        assert (raw[irq]["pq"], raw[irq]["resend"], raw[irq]["masked_pending"]) == (0, 0, 0), irq
        assert 0 <= t - a, irq  # coalesced >= 0
        assert (a > 0) == (t > 0), irq
        for s in range(SERVERS):
            if s != server_of[irq]:
                assert accepted[s][i] == 0
    assert total_fired == FIRERS * FIRES_PER_THREAD
    for s in range(SERVERS):
        dlv, rej, _, ipis = stats.servers[s]
        assert dlv == sum(accepted[s]) + rej, s
        assert ipis == 0
        assert d.get_icp(s) == 0xFF000000FFFF0000
    assert sum(r["deliveries"] for r in srcs) == sum(stats.servers[s][0] for s in range(SERVERS))
    # the vCPUs really interleaved with the firers (not everything coalesced)
    assert sum(map(sum, accepted)) > total_fired // 20
    d.close()


C_STRESS = r"""
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "irqd/core/xics.h"

#define SERVERS 3
#define NSRC 48
#define FIRST 1000          /* spans ICS 0 and ICS 1 */
#define FIRERS 3
#define IPI_PRIO 2
static long fires_per_thread;
static int chaos;           /* also a masking thread and an IPI thread */
static struct irqd_xics *x;
static atomic_int done;
static unsigned prio_of[NSRC], server_of[NSRC];
static atomic_uint fired[NSRC], accepted[NSRC];
static atomic_int in_service[NSRC];
static atomic_int failed;
static atomic_ulong vcpu_loops, empty_xirrs, ipis_sent, ipis_taken, masks;
static atomic_int ready;
static int nthreads;

#define FAIL(...) do { fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); atomic_store(&failed, 1); } while (0)

/* all threads start together: without this the firers are done before the
 * vCPU threads even run (3 firers + 3 vCPUs on 2 CPUs) */
static void start_barrier(void)
{
	atomic_fetch_add(&ready, 1);
	while (atomic_load(&ready) < nthreads)
		sched_yield();
}

static uint64_t hcall2(uint32_t s, uint64_t nr, uint64_t a0, uint64_t a1, uint64_t *r4)
{
	uint64_t reg[4] = { a0, a1, 0, 0 };
	if (irqd_xics_hcall(x, s, nr, reg)) FAIL("hcall %llx failed", (unsigned long long)nr);
	if (r4) *r4 = reg[1];
	return reg[0];
}

static uint64_t hcall(uint32_t s, uint64_t nr, uint64_t a0, uint64_t *r4)
{
	return hcall2(s, nr, a0, 0, r4);
}

static int32_t rtas1(uint32_t token, uint32_t irq)
{
	uint32_t buf[12] = { irq };
	if (irqd_xics_rtas(x, token, 1, 1, buf)) FAIL("rtas %u", token);
	return (int32_t)buf[1];
}

static void *firer(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg * 7919u + 1;
	start_barrier();
	for (long n = 0; n < fires_per_thread && !atomic_load(&failed); n++) {
		unsigned i = (unsigned)rand_r(&seed) % NSRC;
		if (irqd_xics_irq_line(x, FIRST + i, 0xFFFFFFFFu)) FAIL("irq_line");
		atomic_fetch_add(&fired[i], 1);
		if (n % 64 == 0)
			sched_yield();  /* share the 2 CPUs with the vCPUs */
	}
	return NULL;
}

/* chaos: int-off / int-on pairs (one thread, so the saved priority is
 * always the real one) and IPIs at a priority above every source */
static void *masker(void *arg)
{
	unsigned seed = 4242;
	(void)arg;
	start_barrier();
	while (!atomic_load(&done) && !atomic_load(&failed)) {
		unsigned i = (unsigned)rand_r(&seed) % NSRC;
		if (rtas1(3, FIRST + i) != 0) FAIL("int-off");
		sched_yield();
		if (rtas1(4, FIRST + i) != 0) FAIL("int-on");
		atomic_fetch_add(&masks, 1);
	}
	return NULL;
}

static void *ipier(void *arg)
{
	unsigned seed = 777;
	(void)arg;
	start_barrier();
	while (!atomic_load(&done) && !atomic_load(&failed)) {
		uint32_t target = (unsigned)rand_r(&seed) % SERVERS;
		if (hcall2(0, 0x6C, target, IPI_PRIO, NULL) != 0) FAIL("h_ipi");
		atomic_fetch_add(&ipis_sent, 1);
		for (int k = 0; k < 4; k++)
			sched_yield();
	}
	return NULL;
}

static void run_vcpu(uint32_t s, int drain_only, unsigned seed)
{
	uint64_t stack[4];
	int depth = 0, idle = 0;
	unsigned cppr = 0xFF;
	while (!atomic_load(&failed)) {
		uint64_t xirr;
		hcall(s, 0x74, 0, &xirr);
		uint32_t irq = xirr & 0xFFFFFF;
		atomic_fetch_add_explicit(&vcpu_loops, 1, memory_order_relaxed);
		if (!irq)
			atomic_fetch_add_explicit(&empty_xirrs, 1, memory_order_relaxed);
		if (irq == 2) {
			if ((xirr >> 24) != cppr || IPI_PRIO >= cppr) {
				FAIL("server %u: bad IPI xirr %llx cppr %x", s, (unsigned long long)xirr, cppr);
				return;
			}
			atomic_fetch_add(&ipis_taken, 1);
			stack[depth++] = xirr;
			cppr = IPI_PRIO;
		} else if (irq) {
			unsigned i = irq - FIRST;
			if (i >= NSRC || server_of[i] != s || (xirr >> 24) != cppr || prio_of[i] >= cppr) {
				FAIL("server %u: bad xirr %llx cppr %x", s, (unsigned long long)xirr, cppr);
				return;
			}
			if (atomic_exchange(&in_service[i], 1)) { FAIL("irq %u presented twice", irq); return; }
			atomic_fetch_add(&accepted[i], 1);
			stack[depth++] = xirr;
			cppr = prio_of[i];
			if (!drain_only && depth < 3 && rand_r(&seed) % 10 < 3)
				continue;
		}
		if (depth) {
			uint64_t e = stack[--depth];
			if ((e & 0xFFFFFF) == 2)
				hcall2(s, 0x6C, s, 0xFF, NULL);  /* the guest ends an IPI (X-029) */
			else
				atomic_store(&in_service[(e & 0xFFFFFF) - FIRST], 0);
			if (hcall(s, 0x64, e, NULL) != 0) FAIL("eoi");
			cppr = (unsigned)(e >> 24);
			idle = 0;
		} else if (atomic_load(&done) || drain_only) {
			if (++idle > 3) return;
		} else if (++idle % 16 == 0) {
			sched_yield();  /* nothing to do: let a firer run */
		}
	}
}

static void *vcpu(void *arg)
{
	start_barrier();
	run_vcpu((uint32_t)(uintptr_t)arg, 0, (unsigned)(uintptr_t)arg + 99);
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t t[FIRERS + SERVERS + 2];
	int nt = 0;
	fires_per_thread = argc > 1 ? atol(argv[1]) : 200000;
	chaos = argc > 2 && !strcmp(argv[2], "chaos");
	nthreads = FIRERS + SERVERS + (chaos ? 2 : 0);
	x = irqd_xics_new();
	if (!x || irqd_xics_create_ics(x, FIRST, NSRC, 0)) return 2;
	for (uint32_t s = 0; s < SERVERS; s++) {
		if (irqd_xics_connect_vcpu(x, s)) return 2;
		hcall(s, 0x68, 0xFF, NULL);
	}
	for (unsigned i = 0; i < NSRC; i++) {
		uint32_t buf[12] = { FIRST + i, i % SERVERS, 3 + 2 * (i % 4) };
		server_of[i] = i % SERVERS;
		prio_of[i] = 3 + 2 * (i % 4);
		if (irqd_xics_rtas(x, 1, 3, 1, buf) || buf[3]) return 2;
	}
	for (uintptr_t s = 0; s < SERVERS; s++) pthread_create(&t[nt++], NULL, vcpu, (void *)s);
	if (chaos) {
		pthread_create(&t[nt++], NULL, masker, NULL);
		pthread_create(&t[nt++], NULL, ipier, NULL);
	}
	pthread_t f[FIRERS];
	for (uintptr_t i = 0; i < FIRERS; i++) pthread_create(&f[i], NULL, firer, (void *)i);
	for (int i = 0; i < FIRERS; i++) pthread_join(f[i], NULL);
	atomic_store(&done, 1);
	for (int i = 0; i < nt; i++) pthread_join(t[i], NULL);
	/* final drain, single-threaded: a Down_CPPR on every server runs the
	 * resend scan of anything a concurrent failure left behind */
	for (int round = 0; round < 4; round++)
		for (uint32_t s = 0; s < SERVERS; s++) {
			hcall(s, 0x68, 0xFE, NULL);
			hcall(s, 0x68, 0xFF, NULL);
			run_vcpu(s, 1, 5);
		}

	struct irqd_source_stats st[NSRC];
	struct irqd_xics_raw_source raw[NSRC];
	struct irqd_server_stats sv[SERVERS];
	if (irqd_xics_source_stats(x, FIRST, st, NSRC) != NSRC) FAIL("stats");
	if (irqd_xics_export_sources(x, FIRST, raw, NSRC) != NSRC) FAIL("export");
	if (irqd_xics_server_stats(x, 0, sv, SERVERS) != SERVERS) FAIL("server stats");
	unsigned long long tf = 0, ta = 0, coalesced = 0, rejects = 0, dlv = 0, sdlv = 0;
	for (unsigned i = 0; i < NSRC; i++) {
		unsigned f = atomic_load(&fired[i]), a = atomic_load(&accepted[i]);
		if (st[i].triggers != f) FAIL("irq %u: core triggers %u, fired %u", FIRST + i, st[i].triggers, f);
		if (raw[i].pq || raw[i].resend || raw[i].masked_pending || raw[i].priority != prio_of[i])
			FAIL("irq %u not quiescent: pq %u resend %u mp %u prio %u", FIRST + i, raw[i].pq,
			     raw[i].resend, raw[i].masked_pending, raw[i].priority);
		if (a > f || (f && !a)) FAIL("irq %u: accepted %u of %u", FIRST + i, a, f);
		if (st[i].deliveries < a) FAIL("irq %u: %u deliveries < %u accepted", FIRST + i, st[i].deliveries, a);
		tf += f; ta += a; coalesced += f - a; sdlv += st[i].deliveries;
	}
	unsigned long long acc_by_server[SERVERS] = { 0 };
	for (unsigned i = 0; i < NSRC; i++) acc_by_server[server_of[i]] += atomic_load(&accepted[i]);
	for (unsigned s = 0; s < SERVERS; s++) {
		uint64_t w;
		/* without IPIs every presentation is accepted once or pushed out
		 * (and delivered again); an IPI replacing an IPI also counts as a
		 * reject, so with IPIs only the inequality holds */
		if (!chaos && sv[s].deliveries != acc_by_server[s] + sv[s].rejects)
			FAIL("server %u: deliveries %u != accepted %llu + rejects %u", s, sv[s].deliveries,
			     acc_by_server[s], sv[s].rejects);
		if (chaos && sv[s].deliveries > acc_by_server[s] + sv[s].rejects)
			FAIL("server %u: deliveries %u > accepted %llu + rejects %u", s, sv[s].deliveries,
			     acc_by_server[s], sv[s].rejects);
		irqd_xics_get_icp(x, s, &w);
		if (w != 0xFF000000FFFF0000ull) FAIL("server %u: icp %llx", s, (unsigned long long)w);
		rejects += sv[s].rejects; dlv += sv[s].deliveries;
	}
	if (dlv != sdlv) FAIL("server deliveries %llu != source deliveries %llu", dlv, sdlv);
	if (tf != (unsigned long long)FIRERS * fires_per_thread) FAIL("fired %llu", tf);
	printf("fired=%llu accepted=%llu coalesced=%llu rejects=%llu deliveries=%llu loops=%lu empty=%lu "
	       "ipis_sent=%lu ipis_taken=%lu masks=%lu\n",
	       tf, ta, coalesced, rejects, dlv, atomic_load(&vcpu_loops), atomic_load(&empty_xirrs),
	       atomic_load(&ipis_sent), atomic_load(&ipis_taken), atomic_load(&masks));
	irqd_xics_free(x);
	return atomic_load(&failed) ? 1 : 0;
}
"""

CORE_SOURCES = [str(ROOT / "irqd" / "core" / f) for f in ("ics.c", "icp.c", "xics.c")]


def _build(tmp_path: Path, cc: str, extra: list[str]) -> Path:
    src = tmp_path / "stress.c"
    src.write_text(C_STRESS)
    exe = tmp_path / f"stress-{cc}"
    cmd = [
        cc,
        "-std=c11",
        "-D_DEFAULT_SOURCE",
        "-O2",
        "-g",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-pthread",
        "-I",
        str(ROOT / "include"),
        "-I",
        str(ROOT),
        *extra,
        str(src),
        *CORE_SOURCES,
        "-o",
        str(exe),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr
    return exe


def _check_run(exe: Path, fires: int, env=None, chaos: bool = False) -> dict[str, int]:
    args = [str(exe), str(fires)] + (["chaos"] if chaos else [])
    res = subprocess.run(args, capture_output=True, text=True, timeout=240, env=env, check=False)
    assert res.returncode == 0, res.stderr + res.stdout
    out = dict(kv.split("=") for kv in res.stdout.split())
    vals = {k: int(v) for k, v in out.items()}
    assert vals["fired"] == 3 * fires
    assert vals["accepted"] + vals["coalesced"] == vals["fired"]
    assert vals["accepted"] > vals["fired"] // 100  # the vCPUs really ran alongside
    if chaos:
        assert vals["ipis_taken"] > 0 and vals["masks"] > 0
    return vals


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")
def test_c_threads_nothing_lost_or_duplicated(tmp_path):
    exe = _build(tmp_path, "gcc", [])
    _check_run(exe, 100000)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")
def test_c_threads_with_concurrent_masking_and_ipis(tmp_path):
    """Chaos: one more thread doing int-off / int-on pairs (masked-pending,
    unmask delivery) and one sending IPIs more favoured than every source
    (rejections, IPI presentation and reset)."""
    exe = _build(tmp_path, "gcc", [])
    _check_run(exe, 50000, chaos=True)


def _tsan_works() -> bool:
    return shutil.which("clang") is not None


@pytest.mark.skipif(not _tsan_works(), reason="clang not installed")
def test_c_threads_under_thread_sanitizer(tmp_path):
    try:
        exe = _build(tmp_path, "clang", ["-fsanitize=thread"])
    except AssertionError as e:  # no TSan runtime here
        pytest.skip(f"cannot build with -fsanitize=thread: {e}")
    env = dict(os.environ, TSAN_OPTIONS="halt_on_error=1 exitcode=66")
    _check_run(exe, 10000, env)
    _check_run(exe, 5000, env, chaos=True)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")
def test_c_threads_under_address_and_ub_sanitizers(tmp_path):
    exe = _build(tmp_path, "gcc", ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined"])
    _check_run(exe, 10000)
    _check_run(exe, 5000, chaos=True)
