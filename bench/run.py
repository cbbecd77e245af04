#!/usr/bin/env python3
"""``make bench``: irqd measured beside the real KVM ioctl and the raw socket floor.

One run builds the C programs of ``bench/`` into ``build/bench/`` and measures,
with every CPU placement stated and set (``sched_setaffinity`` on the client
and on every thread of the daemon):

anchors (the peers irqd is judged against, measured now, on this machine)
    kvm_irq_line, kvm_irqfd_write   bench/kvm_anchor.c: the KVM_IRQ_LINE ioctl
        on a VM with the in-kernel irqchip, and an irqfd eventfd write
        (pinned to CPU 0; "skipped" when /dev/kvm is absent)
    floor_*_{same,cross}            bench/seqpacket_floor.c: a raw C
        SOCK_SEQPACKET client and echo server: round trip, one-way message
        rate, records of 64 and 1000 16-byte messages
irqd
    irqd_*_{same,cross}             bench/irqd_bench.c speaking the wire ABI
        to ``python -m irqd``: acked IRQ_LINE round trip, fire-and-forget
        IRQ_LINE rate, IRQ_LINE_BATCH rate (64 and 1000 entries), 256
        concurrent clients (served, median, p99)
    core_cycle_c, core_batch1000_c  bench/core_cycle.c linking irqd/core/*.c:
        trigger -> H_XIRR -> H_EOI in-process; batch cost per entry
    pyclient_*_{same,cross}         the Python client library (irqd.client):
        acked IRQ_LINE round trip and irq_line_nowait rate (informative)
    core_cycle_cffi                 the same cycle through irqd._core (cffi)
    core_cycle_model                the same cycle on tests/model.py
    mem_per_source                  daemon VmRSS with all 1,048,560 sources
        configured minus VmRSS with one empty device, per source (configured
        as ICS block 0 first, then the rest: mem_first_ics and
        mem_slope_per_source split one-time costs from the per-source ones)

Placements: ``same`` = client and server (echo server / daemon) both on CPU 0;
``cross`` = client on CPU 0, server on CPU 1.  Within a program, rates are
the best of 5 time slices and round trips the median of individually timed
ones.  The anchors, the floor and irqd run in --repeat interleaved rounds
(default 3; each placement's floor right before its irqd figures), and so do
the C core, cffi and model cycles; each figure keeps its best round, so load
from elsewhere on the machine hurts the floor and irqd alike; every round's
value is in the JSON ("rounds").  The concurrent-client figures stay
together: median and p99 from the round with the lowest p99, "served" from
the worst round.

Output: one ``name value unit`` line per figure on stdout, then the goals
(ratios of figures of this same run) with PASS/MISS, and the same as JSON in
bench/results.json.  Progress goes to stderr.

usage: .venv/bin/python bench/run.py [--seconds S] [--json PATH] [--only GROUPS]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
BUILD = os.path.join(ROOT, "build", "bench")
VPY = os.path.join(ROOT, ".venv", "bin", "python")
CC = os.environ.get("CC", "gcc")
CFLAGS = ["-O2", "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-pthread",
          "-I" + os.path.join(ROOT, "include"), "-I" + ROOT]
# irqd/core/*.c is built with the flags irqd/_build.py gives it (not ours)
CORE_CFLAGS = ["-O2", "-std=gnu11", "-Wall", "-pthread",
               "-I" + os.path.join(ROOT, "include"), "-I" + ROOT]
HEADERS = [os.path.join(BENCH, "bench.h"), os.path.join(ROOT, "include", "irqd", "abi.h")]
PROGRAMS = ("kvm_anchor", "seqpacket_floor", "irqd_bench", "core_cycle")

FIRST_IRQ = 16
ALL_SOURCES = 1048576 - 16          # 1,048,560: every valid interrupt number
CLIENT_CPU = 0
PLACEMENTS = {"same": (0, 0), "cross": (0, 1)}   # tag: (client CPU, server CPU)


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- building

def _stale(target: str, deps: list[str]) -> bool:
    if not os.path.exists(target):
        return True
    t = os.path.getmtime(target)
    return any(os.path.getmtime(d) > t for d in deps)


def build(programs=PROGRAMS, verbose: bool = True) -> tuple[dict[str, str], dict[str, str]]:
    """Compile programs into build/bench/ (only what is out of date).

    Returns ({program: path} of those built, {program: compiler error} of the others).
    """
    os.makedirs(BUILD, exist_ok=True)
    out, errors = {}, {}
    core_srcs = sorted(glob.glob(os.path.join(ROOT, "irqd", "core", "*.c")))
    core_hdrs = sorted(glob.glob(os.path.join(ROOT, "irqd", "core", "*.h")))
    for prog in programs:
        src = os.path.join(BENCH, prog + ".c")
        exe = os.path.join(BUILD, prog)
        deps = [src] + HEADERS + (core_hdrs + core_srcs if prog == "core_cycle" else [])
        try:
            if _stale(exe, deps):
                if verbose:
                    log(f"building {os.path.relpath(exe, ROOT)}")
                # private names, then one rename: two builds at once (make bench
                # beside make test) never run or overwrite a half-written file
                tmp = f"{exe}.{os.getpid()}.tmp"
                try:
                    if prog == "core_cycle":
                        objs = []
                        for c in [src] + core_srcs:
                            o = os.path.join(BUILD, f"{prog}_{os.path.basename(c)[:-2]}.{os.getpid()}.o")
                            _cc((CFLAGS if c == src else CORE_CFLAGS) + ["-c", "-o", o, c])
                            objs.append(o)
                        try:
                            _cc(["-pthread", "-o", tmp] + objs)
                        finally:
                            for o in objs:
                                if os.path.exists(o):
                                    os.unlink(o)
                    else:
                        _cc(CFLAGS + ["-o", tmp, src])
                    os.replace(tmp, exe)
                finally:
                    if os.path.exists(tmp):
                        os.unlink(tmp)
            out[prog] = exe
        except BuildError as e:
            errors[prog] = str(e)
            log(f"cannot build {prog}: {str(e)[:1500]}")
    return out, errors


class BuildError(RuntimeError):
    pass


def _cc(args: list[str]) -> None:
    r = subprocess.run([CC, *args], cwd=ROOT, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise BuildError(f"{CC} {' '.join(args)} failed:\n{r.stderr.strip()}")


# ---------------------------------------------------------------- output of the programs

LINE = re.compile(r"^(\S+) (\S+) (\S+)$")
SKIP = re.compile(r"^skipped: (\S+): (.*)$")


def parse(text: str) -> tuple[dict, dict]:
    """`name value unit` and `skipped: name: reason` lines -> (figures, skipped)."""
    figures, skipped = {}, {}
    for ln in text.splitlines():
        m = SKIP.match(ln)
        if m:
            skipped[m.group(1)] = m.group(2)
            continue
        m = LINE.match(ln)
        if not m:
            raise ValueError(f"malformed line: {ln!r}")
        figures[m.group(1)] = {"value": float(m.group(2)), "unit": m.group(3)}
    return figures, skipped


def run_prog(args: list[str], timeout: float = 120) -> tuple[dict, dict]:
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    if r.stderr.strip():
        for ln in r.stderr.strip().splitlines():
            log(f"  {os.path.basename(args[0])}: {ln}")
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {r.returncode}: {r.stderr.strip()[-500:]}")
    return parse(r.stdout)


# ---------------------------------------------------------------- the daemon

class DaemonError(RuntimeError):
    pass


def pin_all_threads(pid: int, cpu: int) -> None:
    """sched_setaffinity on every thread of pid (threads created later inherit it)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setaffinity(int(tid), {cpu})
        except ProcessLookupError:
            pass


class Daemon:
    """``python -m irqd --socket PATH`` in a private directory, pinned to one CPU."""

    def __init__(self, cpu: int | None = None, args: list[str] = ()):
        self.dir = tempfile.mkdtemp(prefix="irqd-bench-")
        self.path = os.path.join(self.dir, "irqd.sock")
        self.log = open(os.path.join(self.dir, "daemon.log"), "w+")  # noqa: SIM115 - lives as long as the daemon
        pre = (lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None
        self.proc = subprocess.Popen([VPY, "-m", "irqd", "--socket", self.path, *args],
                                     cwd=ROOT, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, preexec_fn=pre)  # noqa: PLW1509 - no threads here
        deadline = time.monotonic() + 15
        while True:
            if self.proc.poll() is not None:
                raise DaemonError(f"daemon exited {self.proc.returncode} at start: {self.output()}")
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
                    s.connect(self.path)
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise DaemonError(f"daemon did not listen on {self.path} within 15 s: {self.output()}")
                time.sleep(0.05)
        if cpu is not None:
            self.pin(cpu)

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()[-2000:].strip()

    def pin(self, cpu: int) -> None:
        pin_all_threads(self.proc.pid, cpu)

    def rss_kib(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for ln in f:
                if ln.startswith("VmRSS:"):
                    return int(ln.split()[1])
        raise DaemonError("no VmRSS")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------- a tiny wire client for set-up

def _lib():
    sys.path.insert(0, ROOT)
    from irqd._core import lib  # numbers come from abi.h, never copied
    return lib


class Wire:
    """Just enough of the protocol for the memory figure (one request at a time)."""

    HDR = struct.Struct("<IHHII")

    def __init__(self, path: str):
        self.lib = _lib()
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.s.settimeout(120)
        self.s.connect(path)
        self.seq = 0

    def request(self, mtype: int, payload: bytes, ack: bool) -> bytes:
        """Send one message; return its data reply payload (b"" for an ack)."""
        lib = self.lib
        self.seq += 1
        flags = lib.IRQD_NLM_F_REQUEST | (lib.IRQD_NLM_F_ACK if ack else 0)
        self.s.send(self.HDR.pack(16 + len(payload), mtype, flags, self.seq, 0) + payload)
        data = None
        while True:
            rec = self.s.recv(1 << 17)
            if not rec:
                raise DaemonError("daemon closed the connection")
            off = 0
            while off + 16 <= len(rec):
                ln, ty, _fl, seq, _pid = self.HDR.unpack_from(rec, off)
                body = rec[off + 16:off + ln]
                off += (ln + 3) & ~3
                if seq != self.seq:
                    raise DaemonError(f"reply for seq {seq}, expected {self.seq}")
                if ty == lib.IRQD_MSG_ERROR:
                    err = struct.unpack_from("<i", body)[0]
                    if err < 0:
                        raise DaemonError(f"request type {mtype:#x} failed: {os.strerror(-err)} "
                                          f"{body[20:].decode(errors='replace')!r}")
                    return data if data is not None else b""
                data = body
                if not ack:
                    return data

    def close(self) -> None:
        self.s.close()


def measure_memory() -> tuple[dict, dict]:
    """(RSS with every source configured - RSS with one empty device) / 1,048,560."""
    lib = _lib()
    d = Daemon(cpu=None)
    try:
        w = Wire(d.path)
        w.request(lib.IRQD_MSG_HELLO, struct.pack("<8I", 1, 0, 0, 0, 0, 0, 0, 0), ack=False)
        rep = w.request(lib.IRQD_MSG_CREATE_DEVICE,
                        struct.pack("<4I", lib.IRQD_KVM_DEV_TYPE_XICS, 0, 0, 0), ack=False)
        handle = struct.unpack_from("<4I", rep)[1]
        time.sleep(0.2)
        empty = d.rss_kib()
        # first the sources of ICS block 0 (16..1023), then all the others:
        # the step between shows the per-source slope without one-time costs
        per_ics = lib.IRQD_KVMPPC_XICS_IRQ_PER_ICS
        t0 = time.monotonic()
        w.request(lib.IRQD_MSG_CREATE_ICS, struct.pack("<4I", handle, FIRST_IRQ, per_ics - FIRST_IRQ, 0),
                  ack=True)
        took = time.monotonic() - t0
        time.sleep(0.2)
        one = d.rss_kib()
        t0 = time.monotonic()
        w.request(lib.IRQD_MSG_CREATE_ICS,
                  struct.pack("<4I", handle, per_ics, ALL_SOURCES - (per_ics - FIRST_IRQ), 0), ack=True)
        took += time.monotonic() - t0
        # LIST_DEVICES: the daemon must say every source is configured
        w.seq += 1
        w.s.send(w.HDR.pack(16, lib.IRQD_MSG_LIST_DEVICES,
                            lib.IRQD_NLM_F_REQUEST | lib.IRQD_NLM_F_DUMP, w.seq, 0))
        nr_sources = None
        done = False
        while not done:
            rec = w.s.recv(1 << 17)
            off = 0
            while off + 16 <= len(rec):
                ln, ty, _fl, _seq, _pid = w.HDR.unpack_from(rec, off)
                body = rec[off + 16:off + ln]
                off += (ln + 3) & ~3
                if ty == lib.IRQD_MSG_LIST_DEVICES:
                    h, _t, _u, _f, _ics, nsrc = struct.unpack_from("<6I", body)
                    if h == handle:
                        nr_sources = nsrc
                elif ty in (lib.IRQD_MSG_DONE, lib.IRQD_MSG_ERROR):
                    done = True
        if nr_sources != ALL_SOURCES:
            raise DaemonError(f"LIST_DEVICES reports {nr_sources} sources, expected {ALL_SOURCES}")
        time.sleep(0.2)
        full = d.rss_kib()
        w.close()
    finally:
        d.stop()
    figs = {
        "mem_rss_empty": {"value": float(empty), "unit": "KiB"},
        "mem_rss_full": {"value": float(full), "unit": "KiB"},
        "mem_create_ics_all": {"value": took * 1e3, "unit": "ms"},
        "mem_per_source": {"value": (full - empty) * 1024.0 / ALL_SOURCES, "unit": "B/source"},
        # diagnostics: what the first ICS block costs, and the slope after it
        "mem_first_ics": {"value": float(one - empty), "unit": "KiB"},
        "mem_slope_per_source": {"value": (full - one) * 1024.0 / (ALL_SOURCES - (per_ics - FIRST_IRQ)),
                                 "unit": "B/source"},
    }
    return figs, {}


# ---------------------------------------------------------------- in-process cycles (Python side)

def _pinned(cpu: int):
    class _Pin:
        def __enter__(self):
            self.old = os.sched_getaffinity(0)
            os.sched_setaffinity(0, {cpu})

        def __exit__(self, *exc):
            os.sched_setaffinity(0, self.old)
    return _Pin()


def measure_cffi_cycle(seconds: float) -> tuple[dict, dict]:
    """trigger -> H_XIRR -> H_EOI through irqd._core, one cffi call per step."""
    sys.path.insert(0, ROOT)
    from irqd._core import ffi, lib
    x = lib.irqd_xics_new()
    irq = 4096
    try:
        rc = lib.irqd_xics_create_ics(x, irq, 1, 0)
        if rc == -lib.IRQD_EOPNOTSUPP:
            return {}, {"core_cycle_cffi": "irqd/core does not implement it yet (EOPNOTSUPP)"}
        reg = ffi.new("uint64_t[4]")
        buf = ffi.new("uint32_t[12]", [irq, 0, 5])
        assert lib.irqd_xics_connect_vcpu(x, 0) == 0
        reg[0] = 0xFF
        assert lib.irqd_xics_hcall(x, 0, lib.IRQD_H_CPPR, reg) == 0
        assert lib.irqd_xics_rtas(x, lib.IRQD_RTAS_SET_XIVE, 3, 1, buf) == 0 and buf[3] == 0
        irq_line, hcall = lib.irqd_xics_irq_line, lib.irqd_xics_hcall
        SET, XIRR, EOI = lib.IRQD_KVM_INTERRUPT_SET, lib.IRQD_H_XIRR, lib.IRQD_H_EOI

        def cycles(n: int) -> None:
            for _ in range(n):
                irq_line(x, irq, SET)
                hcall(x, 0, XIRR, reg)
                reg[0] = reg[1]
                hcall(x, 0, EOI, reg)
        cycles(10)
        reg[0] = 0
        irq_line(x, irq, SET)
        hcall(x, 0, XIRR, reg)
        if reg[0] != 0 or reg[1] & 0xFFFFFF != irq:
            raise RuntimeError(f"cffi cycle: H_XIRR gave status {reg[0]} xirr {reg[1]:#x}")
        reg[0] = reg[1]
        hcall(x, 0, EOI, reg)
        with _pinned(CLIENT_CPU):
            ns = _best_ns(cycles, seconds)
    finally:
        lib.irqd_xics_free(x)
    return {"core_cycle_cffi": {"value": ns, "unit": "ns"}}, {}


def _best_ns(fn, seconds: float, slices: int = 5, chunk: int = 1000) -> float:
    best = None
    for _ in range(slices):
        n = 0
        t0 = time.perf_counter_ns()
        while True:
            fn(chunk)
            n += chunk
            t1 = time.perf_counter_ns()
            if t1 - t0 >= seconds / slices * 1e9:
                break
        ns = (t1 - t0) / n
        best = ns if best is None else min(best, ns)
    return best


def measure_model_cycle(seconds: float) -> tuple[dict, dict]:
    """The same cycle on the Python reference model, tests/model.py (XicsModel)."""
    path = os.path.join(ROOT, "tests", "model.py")
    if not os.path.exists(path):
        return {}, {"core_cycle_model": "tests/model.py is not in this checkout yet"}
    import importlib.util
    sys.path.insert(0, ROOT)
    spec = importlib.util.spec_from_file_location("irqd_bench_model", path)
    mod = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(mod)
        cycles = device_cycles(mod.XicsModel())
    except Exception as e:  # noqa: BLE001 - the model is someone else's: say what did not fit
        return {}, {"core_cycle_model": f"tests/model.py: cannot drive it ({type(e).__name__}: {e})"}
    with _pinned(CLIENT_CPU):
        ns = _best_ns(cycles, seconds, chunk=100)
    return {"core_cycle_model": {"value": ns, "unit": "ns"}}, {}


def device_cycles(dev, irq: int = 4096):
    """Set up one routed MSI source on any irqd.backend.XicsDevice; return cycles(n).

    cycles(n) runs n trigger -> H_XIRR -> H_EOI cycles; the first one is checked.
    """
    lib = _lib()
    dev.create_ics(irq, 1)
    dev.connect_vcpu(0)
    dev.hcall(0, lib.IRQD_H_CPPR, 0xFF)
    st = dev.rtas(lib.IRQD_RTAS_SET_XIVE, [irq, 0, 5], 1)
    if st[0] != 0:
        raise RuntimeError(f"ibm,set-xive answered {st[0]}")
    SET, XIRR, EOI = lib.IRQD_KVM_INTERRUPT_SET, lib.IRQD_H_XIRR, lib.IRQD_H_EOI
    irq_line, hcall = dev.irq_line, dev.hcall

    irq_line(irq, SET)
    st, xirr, _, _ = hcall(0, XIRR)
    if st != 0 or xirr & 0xFFFFFF != irq:
        raise RuntimeError(f"H_XIRR answered status {st} xirr {xirr:#x}, expected irq {irq}")
    if hcall(0, EOI, xirr)[0] != 0:
        raise RuntimeError("H_EOI failed")

    def cycles(n: int) -> None:
        for _ in range(n):
            irq_line(irq, SET)
            hcall(0, EOI, hcall(0, XIRR)[1])
    return cycles


def pyclient_main(path: str, tag: str, seconds: float, cpu: int) -> int:
    """Child process: the Python client library (irqd.client) against the daemon.

    Same set-up and same operations as irqd_bench's rtt and oneway figures;
    printed as `name value unit` lines.  Informative (no goal): it shows what
    the Python client adds over the C client."""
    os.sched_setaffinity(0, {cpu})
    sys.path.insert(0, ROOT)
    from irqd.client import Client
    lib = _lib()
    first, n = 4096, 1024
    with Client(path) as c:
        dev = c.create_device()
        dev.create_ics(first, n)
        dev.connect_vcpu(0)
        dev.hcall(0, lib.IRQD_H_CPPR, 0xFF)
        for irq in range(first, first + n):
            if dev.rtas(lib.IRQD_RTAS_SET_XIVE, [irq, 0, 5], 1)[0] != 0:
                raise SystemExit("ibm,set-xive failed")
        SET = lib.IRQD_KVM_INTERRUPT_SET
        samples = []
        line = dev.irq_line
        pc = time.perf_counter_ns
        t_end = pc() + seconds * 1e9
        i = 0
        while pc() < t_end or len(samples) < 10:
            a = pc()
            line(first + (i & 1023), SET)
            samples.append(pc() - a)
            i += 1
        samples.sort()
        print(f"pyclient_rtt_{tag} {samples[len(samples) // 2] / 1e3:.6g} us")
        nowait = dev.irq_line_nowait
        best = 0.0
        for _ in range(5):
            t0 = pc()
            k = 0
            while pc() - t0 < seconds / 5 * 1e9:
                for j in range(256):
                    nowait(first + (j & 1023), SET)
                k += 256
            dev.sync()  # raises the first failure of any trigger
            best = max(best, k / ((pc() - t0) / 1e9))
        print(f"pyclient_oneway_{tag} {best / 1e6:.6g} M/s")
    return 0


INPROC = {"cffi": measure_cffi_cycle, "model": measure_model_cycle,
          "memory": lambda seconds: measure_memory()}


def inproc(kind: str, seconds: str) -> tuple[dict, dict]:
    """Run one in-process measurement in a child (`run.py --inproc KIND`): the
    driver itself never loads irqd._core, so a crash there (or the module being
    rebuilt under a running process) costs one figure, not the run."""
    return run_prog([VPY, os.path.abspath(__file__), "--inproc", kind, "--seconds", seconds], timeout=300)


def inproc_main(kind: str, seconds: float) -> int:
    figs, skipped = INPROC[kind](seconds)
    for name, fig in figs.items():
        print(f"{name} {fig['value']:.6g} {fig['unit']}")
    for name, why in skipped.items():
        print(f"skipped: {name}: {why}")
    return 0


# ---------------------------------------------------------------- goals

def ratios(f: dict) -> list[dict]:
    """The issue's goals, as ratios of figures of this run."""
    def v(name):
        return f[name]["value"] if name in f else None

    out = []

    def goal(name, value, op, target, unit, why):
        if value is None:
            out.append({"name": name, "value": None, "op": op, "goal": target, "unit": unit,
                        "result": "N/A", "why": why})
            return
        ok = value >= target if op == ">=" else value <= target
        out.append({"name": name, "value": value, "op": op, "goal": target, "unit": unit,
                    "result": "PASS" if ok else "MISS", "why": why})

    kvm = v("kvm_irq_line")
    for tag in PLACEMENTS:
        b = v(f"irqd_batch1000_{tag}")
        goal(f"batch1000_vs_kvm_irq_line_{tag}",
             b * 1e6 / (1e9 / kvm) if b and kvm else None, ">=", 3, "x",
             "IRQ_LINE_BATCH(1000) triggers/s over KVM_IRQ_LINE ioctls/s")
    for tag in PLACEMENTS:
        a, fl = v(f"irqd_rtt_{tag}"), v(f"floor_rtt_{tag}")
        goal(f"rtt_vs_floor_{tag}", a / fl if a and fl else None, "<=", 1.2, "x",
             "acked IRQ_LINE round trip over raw C seqpacket round trip")
    for tag in PLACEMENTS:
        a, fl = v(f"irqd_oneway_{tag}"), v(f"floor_oneway_{tag}")
        goal(f"oneway_vs_floor_{tag}", a / fl if a and fl else None, ">=", 0.5, "x",
             "fire-and-forget IRQ_LINE rate over raw C one-way rate")
    c = v("core_cycle_c")
    goal("core_cycle_c", c, "<=", 100, "ns", "C core trigger->H_XIRR->H_EOI")
    m = v("core_cycle_model")
    goal("model_vs_core_cycle", m / c if m and c else None, ">=", 50, "x",
         "Python model cycle over C core cycle")
    goal("mem_per_source", v("mem_per_source"), "<=", 16, "B", "daemon RSS per configured source")
    for tag in PLACEMENTS:
        s, t = v(f"irqd_clients_served_{tag}"), v(f"irqd_clients_total_{tag}")
        goal(f"clients_served_{tag}", s / t if s is not None and t else None, ">=", 1, "of all",
             "share of the concurrent clients served every round trip")
        med, p99 = v(f"irqd_clients_median_{tag}"), v(f"irqd_clients_p99_{tag}")
        goal(f"clients_p99_vs_median_{tag}", p99 / med if med and p99 else None, "<=", 10, "x",
             "p99 over median round trip, concurrent clients")
    out += ring_goals(f)   # ring (bench/ring_bench.c)
    return out


# ==== BEGIN ring: shared-memory trigger ring (bench/ring_bench.c; owner: ring) ====
# The ring (abi.h 0x40 RING_SETUP) against KVM_IRQ_LINE: ring_bench times
# both the same way in one process on the client CPU, in alternating slices,
# with the daemon (and so its ring consumer thread) on the placement's server
# CPU.  Runs with the "irqd" group, on the same daemon.

RING_SRCS = [os.path.join(BENCH, "ring_bench.c"), os.path.join(ROOT, "clib", "irqd_client.c")]
RING_DEPS = RING_SRCS + HEADERS + [os.path.join(ROOT, "include", "irqd", n)
                                   for n in ("client.h", "ring_producer.h")]


def build_ring_bench() -> str:
    """build/bench/ring_bench (with the C client library); raises BuildError."""
    os.makedirs(BUILD, exist_ok=True)
    exe = os.path.join(BUILD, "ring_bench")
    if _stale(exe, RING_DEPS):
        log(f"building {os.path.relpath(exe, ROOT)}")
        if os.path.exists(exe):
            os.unlink(exe)
        _cc(CFLAGS + ["-o", exe] + RING_SRCS)
    return exe


def ring_round(exe: str, path: str, tag: str, ccpu: int, scpu: int, seconds: str) -> tuple[dict, dict]:
    args = [exe, "--socket", path, "--cpu", str(ccpu), "--tag", tag, "--seconds", seconds]
    if ccpu == scpu:
        args.append("--yield")   # the consumer needs the CPU the producer waits on
    return run_prog(args, timeout=120)


def ring_goals(f: dict) -> list[dict]:
    """ring latency / KVM_IRQ_LINE latency (goal < 1) and ring rate / KVM
    rate, each pair measured in the same process, same placement."""
    out = []
    for tag in PLACEMENTS:
        for name, a, b, op, target, why in (
            (f"ring_lat_vs_kvm_irq_line_{tag}", f"ring_lat_hot_{tag}", f"ring_kvm_lat_{tag}", "<=", 1,
             "ring post -> applied (tail seen) median over KVM_IRQ_LINE ioctl median, timed alike"),
            (f"ring_rate_vs_kvm_irq_line_{tag}", f"ring_rate_{tag}", f"ring_kvm_rate_{tag}", ">=", 1,
             "ring triggers applied/s over KVM_IRQ_LINE ioctls/s"),
        ):
            x, y = f.get(a), f.get(b)
            value = x["value"] / y["value"] if x and y and y["value"] else None
            ok = None if value is None else (value <= target if op == "<=" else value >= target)
            out.append({"name": name, "value": value, "op": op, "goal": target, "unit": "x",
                        "result": "N/A" if ok is None else ("PASS" if ok else "MISS"), "why": why})
    return out
# ==== END ring ====


def diagnostics(f: dict) -> list[dict]:
    """Informative ratios (no goal): the daemon's own CPU time per request or
    record over the C echo server's, same placement; other load hardly moves
    them, so they say whether a MISS above is irqd's cost or the machine's."""
    out = []
    for kind in ("rtt", "oneway"):
        for tag in PLACEMENTS:
            a, b = f.get(f"irqd_daemon_cpu_{kind}_{tag}"), f.get(f"floor_server_cpu_{kind}_{tag}")
            if a and b and b["value"] > 0:
                out.append({"name": f"daemon_cpu_vs_floor_server_{kind}_{tag}",
                            "value": a["value"] / b["value"], "unit": "x"})
    return out


# ---------------------------------------------------------------- machine

def machine() -> dict:
    model = "?"
    with open("/proc/cpuinfo") as f:
        for ln in f:
            if ln.startswith("model name"):
                model = ln.split(":", 1)[1].strip()
                break
    hyp = ""
    try:
        with open("/sys/hypervisor/type") as f:
            hyp = f.read().strip()
    except OSError:
        pass
    try:
        gcc = subprocess.run([CC, "--version"], capture_output=True, text=True, check=False).stdout.splitlines()[0]
    except (OSError, IndexError):
        gcc = "?"
    return {
        "cpu": model, "online_cpus": os.cpu_count(), "kernel": platform.release(),
        "python": platform.python_version(), "cc": gcc, "hypervisor": hyp,
        "virtualised": "hypervisor" in open("/proc/cpuinfo").read(),
        "kvm": os.path.exists("/dev/kvm"),
    }


# ---------------------------------------------------------------- markdown (for the README)

def markdown(result: dict) -> str:
    """The README table of a results.json: figures by placement, then the goals."""
    m = result["machine"]
    la = result["load_average"]
    lines = [
        (f"Run of {result['started']} on {m['cpu']} ({m['online_cpus']} vCPUs"
         f"{', KVM guest' if m.get('virtualised') else ''}), Linux {m['kernel']}, Python {m['python']}, "
         f"{m['cc'].split(' (')[0]} {m['cc'].rsplit(' ', 1)[-1]}; load average {la['start'][0]:.2f} at start, "
         f"{la['end'][0]:.2f} at end; best of {result['repeat']} rounds; {result['seconds']:.0f} s."),
        "",
        "| figure | same CPU | cross CPU | unit |",
        "|---|---|---|---|",
    ]
    f = result["figures"]
    done = set()
    for name, fig in f.items():
        if name in done:
            continue
        base = None
        for tag in ("same", "cross"):
            if name.endswith("_" + tag):
                base = name[: -len(tag) - 1]
        if base is not None:
            a, b = f.get(base + "_same"), f.get(base + "_cross")
            done.update({base + "_same", base + "_cross"})
            cells = [f"{x['value']:.4g}" if x else "-" for x in (a, b)]
            lines.append(f"| {base} | {cells[0]} | {cells[1]} | {fig['unit']} |")
        else:
            done.add(name)
            lines.append(f"| {name} | {fig['value']:.4g} | | {fig['unit']} |")
    for name, why in result["skipped"].items():
        lines.append(f"| {name} | skipped: {why} | | |")
    for g in result.get("diagnostics", []):
        lines.append(f"| {g['name']} (CPU time ratio) | {g['value']:.3g} | | {g['unit']} |")
    lines += ["", "| goal | value | target | result |", "|---|---|---|---|"]
    for g in result["goals"]:
        val = "n/a" if g["value"] is None else f"{g['value']:.3g} {g['unit']}"
        lines.append(f"| {g['name']} | {val} | {g['op']} {g['goal']:g} | {g['result']} |")
    return "\n".join(lines)


# ---------------------------------------------------------------- main

GROUPS = ("kvm", "floor", "irqd", "core", "memory")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=0.5,
                    help="time spent on each figure in each round (default 0.5)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="interleaved rounds of anchors, floor and irqd; best kept (default 3)")
    ap.add_argument("--json", default=os.path.join(BENCH, "results.json"))
    ap.add_argument("--only", default=",".join(GROUPS), help="comma-separated: " + ",".join(GROUPS))
    ap.add_argument("--clients", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=40, help="round trips per concurrent client")
    ap.add_argument("--markdown", metavar="RESULTS_JSON",
                    help="print the README table of an earlier run and exit")
    ap.add_argument("--inproc", choices=sorted(INPROC), help=argparse.SUPPRESS)
    ap.add_argument("--pyclient", nargs=3, metavar=("SOCKET", "TAG", "CPU"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.markdown:
        with open(a.markdown) as f:
            print(markdown(json.load(f)))
        return 0
    if a.inproc:
        return inproc_main(a.inproc, a.seconds)
    if a.pyclient:
        return pyclient_main(a.pyclient[0], a.pyclient[1], a.seconds, int(a.pyclient[2]))
    groups = set(a.only.split(","))
    t_start = time.monotonic()
    load_start = os.getloadavg()
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    need = {"kvm": ["kvm_anchor"], "floor": ["seqpacket_floor"], "irqd": ["irqd_bench"],
            "core": ["core_cycle"]}
    exe, build_errors = build([p for g in GROUPS if g in groups for p in need.get(g, [])])
    ncpu = len(os.sched_getaffinity(0))
    figures: dict = {}
    skipped: dict = {}
    problems: list[str] = []
    rounds: dict[str, list[float]] = {}
    usable = os.sched_getaffinity(0)
    placements = {t: p for t, p in PLACEMENTS.items() if set(p) <= usable}
    for t, cpus in PLACEMENTS.items():
        if t not in placements:
            skipped[f"*_{t}"] = f"CPUs {cpus} are not all usable here (affinity {sorted(usable)})"
    client_rounds: dict[str, list[dict]] = {}

    def add(res):
        figures.update(res[0])
        skipped.update(res[1])

    def add_round(res):
        cl = {k: v for k, v in res[0].items() if k.startswith("irqd_clients_")}
        if cl:
            # the concurrent-client figures stay together: the round with the
            # lowest p99 gives median and p99; "served" is the worst round's
            tag = next(iter(cl)).rsplit("_", 1)[1]
            client_rounds.setdefault(tag, []).append(cl)
            rs = client_rounds[tag]
            best = min(rs, key=lambda r: r.get(f"irqd_clients_p99_{tag}", {"value": float("inf")})["value"])
            figures.update(best)
            served = f"irqd_clients_served_{tag}"
            figures[served] = min((r[served] for r in rs), key=lambda f: f["value"])
            for name, fig in cl.items():
                rounds.setdefault(name, []).append(fig["value"])
        for name, fig in res[0].items():
            if name in cl:
                continue
            rounds.setdefault(name, []).append(fig["value"])
            old = figures.get(name)
            lower_is_better = fig["unit"].split("/")[0] in ("us", "ns")
            if (old is None or (fig["value"] < old["value"] if lower_is_better
                                else fig["value"] > old["value"])):
                figures[name] = fig
        skipped.update(res[1])

    for prog, err in build_errors.items():
        problems.append(f"{prog} did not build: {err.splitlines()[-1][:300]}")
    ring_exe = None   # ring (bench/ring_bench.c)
    if "irqd" in groups:
        try:
            ring_exe = build_ring_bench()
        except BuildError as e:
            problems.append(f"ring_bench did not build: {str(e).splitlines()[-1][:300]}")

    s = str(a.seconds)
    # The socket figures move with whatever else the machine runs, so the
    # anchors, the floor and irqd are measured in interleaved rounds (each
    # placement's floor right before its irqd figures) and each figure keeps
    # its best round: highest rate, lowest time.
    d = None
    if "irqd" in groups and "irqd_bench" in exe:
        try:
            d = Daemon(cpu=0)
        except DaemonError as e:
            problems.append(f"irqd figures: {e}")
            for tag in placements:
                skipped[f"irqd_*_{tag}"] = f"daemon did not start: {str(e)[:200]}"
    try:
        for rnd in range(a.repeat):
            log(f"round {rnd + 1} of {a.repeat}")
            if "kvm" in groups and "kvm_anchor" in exe:
                log("KVM anchors (CPU 0)")
                add_round(run_prog([exe["kvm_anchor"], "--cpu", "0", "--seconds", s]))
            for tag, (ccpu, scpu) in placements.items():
                if "floor" in groups and "seqpacket_floor" in exe:
                    log(f"raw seqpacket floor, {tag}: client CPU {ccpu}, echo server CPU {scpu}")
                    add_round(run_prog([exe["seqpacket_floor"], "--client-cpu", str(ccpu),
                                        "--server-cpu", str(scpu), "--tag", tag, "--seconds", s]))
                if d is None or f"irqd_*_{tag}" in skipped:
                    continue
                d.pin(scpu)
                log(f"irqd, {tag}: client CPU {ccpu}, daemon (all threads) CPU {scpu}")
                only = "rtt,oneway,batch,clients"
                try:
                    add_round(run_prog([exe["irqd_bench"], "--socket", d.path, "--cpu", str(ccpu),
                                        "--tag", tag, "--seconds", s, "--clients", str(a.clients),
                                        "--rounds", str(a.rounds), "--only", only,
                                        "--daemon-pid", str(d.proc.pid)], timeout=300))
                except (RuntimeError, subprocess.TimeoutExpired) as e:
                    problems.append(f"irqd_bench {tag}: {e}")
                    skipped[f"irqd_*_{tag}"] = str(e)[:300]
                if ring_exe and f"irqd_*_{tag}" not in skipped:   # ring (bench/ring_bench.c)
                    log(f"ring vs KVM_IRQ_LINE, {tag}: producer CPU {ccpu}, daemon + ring consumer CPU {scpu}")
                    try:
                        add_round(ring_round(ring_exe, d.path, tag, ccpu, scpu, s))
                    except (RuntimeError, subprocess.TimeoutExpired) as e:
                        problems.append(f"ring_bench {tag}: {e}")
                if rnd == 0 and f"irqd_*_{tag}" not in skipped:
                    log(f"python client (irqd.client), {tag}: client CPU {ccpu}, daemon CPU {scpu}")
                    try:
                        add_round(run_prog([VPY, __file__, "--pyclient", d.path, tag, str(ccpu),
                                            "--seconds", s], timeout=120))
                    except (RuntimeError, subprocess.TimeoutExpired) as e:
                        problems.append(f"python client {tag}: {e}")
                if not d.alive():
                    problems.append(f"daemon died (exit status {d.proc.returncode}, negative = "
                                    f"signal) during irqd_bench {tag}; its log: {d.output()}")
                    skipped[f"irqd_*_{tag}"] = "daemon died"
                    d = None
    finally:
        if d is not None:
            d.stop()
    if "core" in groups:
        # interleaved too: the model/C ratio must not compare a quiet moment
        # with a busy one
        for rnd in range(a.repeat):
            if "core_cycle" in exe:
                log(f"C core cycle in-process (CPU 0), round {rnd + 1} of {a.repeat}")
                add_round(run_prog([exe["core_cycle"], "--cpu", "0", "--seconds", s]))
            log(f"the same cycle through cffi, and on the Python model (CPU 0), round {rnd + 1}")
            for kind in ("cffi", "model"):
                try:
                    add_round(inproc(kind, s))
                except (RuntimeError, subprocess.TimeoutExpired) as e:
                    problems.append(f"{kind} cycle: {e}")
        if "core_cycle" not in exe:
            skipped["core_cycle_c"] = "bench/core_cycle did not build (see problems)"
    if "memory" in groups:
        log(f"memory: one empty device, then {ALL_SOURCES} sources")
        try:
            add(inproc("memory", s))
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            problems.append(f"memory: {e}")
            skipped["mem_per_source"] = str(e)[:300]

    goals = ratios(figures)
    info = machine()
    placement_text = {t: f"client CPU {c}, server CPU {sv}" for t, (c, sv) in placements.items()}
    print(f"# machine: {info['cpu']}, {info['online_cpus']} CPUs, Linux {info['kernel']}, "
          f"Python {info['python']}, {info['cc']}")
    print("# placement: " + "; ".join(f"{t} = {p}" for t, p in placement_text.items())
          + "; kvm/core/cffi/model on CPU 0")
    for name, fig in figures.items():
        print(f"{name} {fig['value']:.4g} {fig['unit']}")
    for name, why in skipped.items():
        print(f"skipped: {name}: {why}")
    print("# goals (ratios of figures of this run)")
    for g in goals:
        val = "n/a" if g["value"] is None else f"{g['value']:.4g}"
        print(f"{g['name']} {val} {g['unit']} goal {g['op']} {g['goal']:g} {g['result']}")
    load_end = os.getloadavg()
    print(f"# load average (1, 5, 15 min) at start {load_start[0]:.2f} {load_start[1]:.2f} "
          f"{load_start[2]:.2f}, at end {load_end[0]:.2f} {load_end[1]:.2f} {load_end[2]:.2f}")
    if max(load_start[0], load_end[0]) > 0.5:
        print("# warning: other work was running on this machine; the figures above are "
              "disturbed by it (the ratios less so: same rounds, same placement)")
    diag = diagnostics(figures)
    if diag:
        print("# diagnostics (no goal): server CPU time per request, irqd daemon over C echo server")
        for g in diag:
            print(f"{g['name']} {g['value']:.4g} {g['unit']}")
    for p in problems:
        print(f"# problem: {p}")
    took = time.monotonic() - t_start
    print(f"# took {took:.1f} s")

    result = {
        "started": started, "seconds": took, "machine": info, "placement": placement_text,
        "cpus_usable": ncpu, "repeat": a.repeat,
        "load_average": {"start": load_start, "end": load_end}, "figures": figures, "rounds": rounds,
        "diagnostics": diagnostics(figures), "skipped": skipped, "goals": goals,
        "problems": problems,
    }
    with open(a.json, "w") as f:
        json.dump(result, f, indent=1)
    log(f"wrote {os.path.relpath(a.json, ROOT) if a.json.startswith(ROOT) else a.json}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
