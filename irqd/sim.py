"""irqd.sim: a VM in a box.

A simulated VMM drives one XICS device end to end, through the backend-neutral
:class:`irqd.backend.XicsDevice` interface (the in-process core or a daemon):

* **vCPUs** -- one thread per server.  Each owns the eventfd of its server's
  output (SET_OUTPUT); woken, it loops ``H_XIRR`` -> handle -> ``H_EOI`` until
  XISR is empty, as a Linux guest's ``xics_get_irq`` loop does.  Boot opens
  the CPPR with ``H_CPPR(0xFF)``.
* **MSI devices** -- edge sources fired through irqfd trigger eventfds.
* **Level devices** -- LSIs behind IRQFD + RESAMPLE, as VFIO INTx: the
  device asserts the line (trigger eventfd) when it has work, the guest's
  handler services every work item the device holds, the EOI resets the line
  and signals the resample eventfd, and the device re-asserts if new work
  arrived meanwhile.
* **IPIs** -- a vCPU posts a message in the target's mailbox (guest memory)
  and does ``H_IPI(target, 4)``; the target, seeing XISR 2, does
  ``H_IPI(self, 0xFF)`` *then* reads its mailbox (Linux's order: clearing the
  MFRR before reading the messages is what makes IPIs lossless), then
  ``H_EOI``.
* **RTAS masking** -- a thread masks one source at a time with
  ``ibm,int-off`` and unmasks it with ``ibm,int-on`` while traffic runs.

Every fire has an id and a timestamp, and the accounting proves each one was
handled as XICS promises (``xics-semantics.md`` section 4):

* **MSI**: a device never writes its trigger eventfd again before the
  previous count was read, so each fire is exactly one trigger (irqfd counts
  read together would be one edge, S3.12; GET_STATS' trigger counter checks
  this).  P/Q then allows exactly one kind of merging: fires arriving while
  an occurrence is presented/in service and another is already queued (Q)
  coalesce into the queued one, which is presented at the EOI.  So the fires
  of a source split, in order, into one group per presentation; group j must
  be fired before presentation j was accepted, and a group of more than one
  fire must have been fired before the EOI of presentation j-1 (while Q was
  set).  :func:`resolve_msi` decides whether such a split exists from the
  timestamps (an exact interval recurrence, O(m log n)) and reconstructs one;
  fires no presentation can cover are **lost**, presentations that have no
  fire left are **duplicated**.
* **LSI**: every work item must be serviced (else lost); presentations are
  bounded by the semantics: each assert (P 0 -> 1) gives one delivery and the
  resetting EOI at most one re-presentation (X-067), and a migration may add
  one per LSI asserted at the dump (S3.17).  Presentations beyond
  ``2 * asserts + restored`` are duplicated.
* **IPI**: every message must be read (else lost); an ``H_IPI`` request gives
  at most one presentation (several coalesce in the MFRR), so presentations
  beyond the requests made are duplicated.

Live migration (:meth:`Sim.migrate`) pauses the devices (they stop firing,
their pending trigger counts are consumed), stops the vCPUs, takes
DUMP_STATE of A, restores it into a fresh device B (RESTORE_BEGIN / SETs /
COMMIT), checks both dumps are identical, registers new eventfds on B and
resumes.  ``stop`` mode (QEMU's) stops the vCPUs at once, where they are, so
interrupts presented, in service, queued, in resend or masked-pending travel
in the state words; ``drain`` mode lets the vCPUs accept and EOI what is
already presented, dumping meanwhile (dumps that race with them are retried
on NLM_F_DUMP_INTR), before stopping them.

Run ``python -m irqd.sim --help``; ``make demo`` runs it against two daemons.
"""

from __future__ import annotations

import argparse
import bisect
import collections
import dataclasses
import itertools
import json
import math
import os
import random
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence

from irqd._core import lib
from irqd.backend import DeviceState, XicsDevice

XICS_IPI = lib.IRQD_XICS_IPI
MASKED = lib.IRQD_XICS_MASKED
H_SUCCESS = lib.IRQD_H_SUCCESS
SRC_PENDING = lib.IRQD_KVM_XICS_PENDING
SRC_PRESENTED = lib.IRQD_KVM_XICS_PRESENTED
SRC_QUEUED = lib.IRQD_KVM_XICS_QUEUED
SRC_MASKED = lib.IRQD_KVM_XICS_MASKED
SRC_LSI = lib.IRQD_KVM_XICS_LEVEL_SENSITIVE
XISR_SHIFT = lib.IRQD_KVM_REG_PPC_ICP_XISR_SHIFT
XISR_MASK = lib.IRQD_KVM_REG_PPC_ICP_XISR_MASK
CPPR_SHIFT = lib.IRQD_KVM_REG_PPC_ICP_CPPR_SHIFT
MFRR_SHIFT = lib.IRQD_KVM_REG_PPC_ICP_MFRR_SHIFT

#: a Linux guest's priorities (asm/xics.h: DEFAULT_PRIORITY, IPI_PRIORITY)
DEVICE_PRIORITY = 5
IPI_PRIORITY = 4
#: an idle ICP: CPPR 0xFF, nothing pending, no IPI requested
IDLE_ICP = 0xFF << CPPR_SHIFT | 0xFF << MFRR_SHIFT | 0xFF << 16
SOURCE_BUSY = SRC_PENDING | SRC_PRESENTED | SRC_QUEUED

now = time.monotonic_ns


class SimError(RuntimeError):
    """The simulation itself could not go on (a backend call failed, a
    thread died, a migration step was refused)."""


# ---------------------------------------------------------------------------
# Backends: how to get a device, another handle on it, and its trigger pump


class Backend:
    """Where the simulated VM's XICS lives.

    ``create()`` makes a device, ``handle(dev)`` a handle on the same device
    that another thread may use at the same time (the daemon: its own
    connection, ATTACHed), ``pump(dev)`` reads readable trigger eventfds when
    the backend does not (the in-process core)."""

    name = "?"
    needs_pump = False

    def create(self) -> XicsDevice:
        raise NotImplementedError

    def handle(self, dev: XicsDevice) -> XicsDevice:
        return dev

    def release(self, dev: XicsDevice, h: XicsDevice) -> None:
        if h is not dev:
            h.close()

    def pump(self, dev: XicsDevice) -> int:
        return 0

    def dispose(self, dev: XicsDevice) -> None:
        """The VM is done with ``dev`` (migrated away, or shut down)."""
        dev.close()

    def describe(self) -> str:
        return self.name


class InprocBackend(Backend):
    """The C core in this process (``irqd.inproc.Xics``).  It is thread-safe,
    so every thread shares the one object; trigger eventfds are read by the
    simulation's pump thread through ``Xics.pump()``."""

    name = "inproc"
    needs_pump = True

    def create(self) -> XicsDevice:
        from irqd.inproc import Xics

        return Xics()

    def pump(self, dev: XicsDevice) -> int:
        return dev.pump()


class DaemonBackend(Backend):
    """A device of the irqd daemon at ``path``: one connection per thread
    (the daemon serves connections in parallel and a connection in order)."""

    name = "daemon"

    def __init__(self, path: str):
        self.path = path

    def create(self) -> XicsDevice:
        from irqd.client import Client

        return Client(self.path).create_device()

    def handle(self, dev: XicsDevice) -> XicsDevice:
        from irqd.client import Client

        return Client(self.path).attach(dev.handle)

    def release(self, dev: XicsDevice, h: XicsDevice) -> None:
        if h is not dev:
            h.close()
            h.client.close()       # the connection was this handle's own

    def dispose(self, dev: XicsDevice) -> None:
        dev.close()                # destroys it if we are its last holder
        dev.client.close()         # and drops our hold either way

    def describe(self) -> str:
        return f"daemon {self.path}"


class FactoryBackend(Backend):
    """Any XicsDevice factory (tests, other implementations)."""

    def __init__(self, name: str, create: Callable[[], XicsDevice],
                 handle: Callable[[XicsDevice], XicsDevice] | None = None,
                 pump: Callable[[XicsDevice], int] | None = None):
        self.name = name
        self._create, self._handle, self._pump = create, handle, pump
        self.needs_pump = pump is not None

    def create(self) -> XicsDevice:
        return self._create()

    def handle(self, dev: XicsDevice) -> XicsDevice:
        return self._handle(dev) if self._handle else dev

    def pump(self, dev: XicsDevice) -> int:
        return self._pump(dev) if self._pump else 0


# ---------------------------------------------------------------------------
# Accounting (pure functions: unit-tested on their own)


@dataclasses.dataclass
class MsiResolution:
    """How one MSI source's fires map onto its presentations."""

    groups: list[tuple[int, int]]     # per kept presentation: fires [start, end)
    kept: list[int]                   # index of the presentation of each group
    duplicated: list[int]             # presentations with no fire left to cover
    lost: int                         # fires no presentation can cover (the last ones)
    coalesced: int                    # fires merged into another fire's occurrence

    @property
    def ok(self) -> bool:
        return not self.lost and not self.duplicated


def resolve_msi(fires: Sequence[int], pres: Sequence[tuple[int, int]]) -> MsiResolution:
    """Split the fires of one MSI source into one contiguous group per
    presentation, as XICS P/Q allows (module docstring), or say why not.

    ``fires``: fire times, ascending (taken before the eventfd write).
    ``pres``: (accept time, EOI time) per presentation, in accept order
    (taken after H_XIRR / H_EOI returned).  Times only move a fire earlier
    and a presentation later, so the test never fails a correct history.

    With s_j the first fire of group j, hi_j the number of fires before
    accept j and c_j the number before EOI j-1 (0 for the first), group j
    is [s_j, s_j+1) if s_j+1 <= hi_j, or [s_j, e) with e - s_j >= 2 if
    e <= min(hi_j, c_j).  The reachable s_j always form an interval, so the
    recurrence carries two numbers; a backward pass picks one split."""
    n = len(fires)
    lo = hi = 0                     # reachable values of s_j
    steps: list[tuple[int, int, int, int, int] | None] = []
    duplicated: list[int] = []
    for j, (acc, _) in enumerate(pres):
        before_acc = bisect.bisect_left(fires, acc)
        if lo + 1 > before_acc:     # not even one fire left for it
            duplicated.append(j)
            steps.append(None)
            continue
        before_eoi = bisect.bisect_left(fires, pres[j - 1][1]) if j else 0
        lim = min(before_acc, before_eoi)
        nlo, nhi = lo + 1, min(hi + 1, before_acc)
        if lo + 2 <= lim:
            nhi = max(nhi, lim)
        steps.append((lo, hi, before_acc, lim, j))
        lo, hi = nlo, nhi
    end = n if lo <= n <= hi else hi
    lost = n - end
    groups: list[tuple[int, int]] = []
    kept: list[int] = []
    for st in reversed(steps):
        if st is None:
            continue
        slo, shi, before_acc, lim, j = st
        if slo <= end - 1 <= shi and end <= before_acc:
            start = end - 1
        else:                        # a coalesced group: end <= lim, start <= end - 2
            start = min(shi, end - 2)
            assert slo <= start and end <= lim, "resolve_msi: backward pass out of its interval"
        groups.append((start, end))
        kept.append(j)
        end = start
    groups.reverse()
    kept.reverse()
    assert not groups or groups[0][0] == 0
    coalesced = sum(e - s - 1 for s, e in groups)
    return MsiResolution(groups, kept, duplicated, lost, coalesced)


def percentiles(values: Sequence[float], ps=(50, 90, 99, 99.9)) -> dict[str, float]:
    """Nearest-rank percentiles (and max) of ``values``; {} when empty."""
    if not values:
        return {}
    v = sorted(values)
    out = {f"p{p:g}": v[min(len(v) - 1, max(0, math.ceil(p / 100 * len(v)) - 1))] for p in ps}
    out["max"] = v[-1]
    return out


# ---------------------------------------------------------------------------
# The simulated machine


@dataclasses.dataclass
class Config:
    vcpus: int = 4
    msi: int = 64
    lsi: int = 8
    ipis: bool = True
    mask: bool = True                  # RTAS int-off / int-on while traffic runs
    count: int | None = 100_000        # total fires (MSI + LSI work + IPIs); None: until `seconds`
    seconds: float | None = None       # stop firing after this long (whichever comes first)
    rate: float | None = None          # device fires per second (open loop); None: as fast
                                       # as the guest keeps up (closed loop, saturating)
    seed: int = 1
    # Resend scans go through ICS blocks and sources in ascending number, so
    # at equal priority a busy server favours low numbers (the kernel's
    # order): the rare level sources get the lowest ones.
    lsi_first: int = 16
    msi_first: int = 1000              # 1000..: spans ICS 0 and ICS 1
    msi_outstanding: int = 3           # fires since the last accept before a device waits
    server_outstanding: int = 4        # MSI fires not yet accepted per server: keeps the
                                       # vCPUs below saturation, so no source starves
    lsi_backlog: int = 2               # work items a level device holds at most
    lsi_share: float = 0.08            # chance per device-loop turn of new LSI work
    msi_burst: float = 0.02            # chance per device-loop turn of a back-to-back burst
    ipi_rate: float = 0.05             # chance per handled interrupt of sending an IPI
    ipi_backlog: int = 4               # messages a mailbox holds at most
    drain_timeout: float = 20.0
    wake_timeout: float = 0.5          # a vCPU double-checks its ICP after this long idle


class Gate:
    """A stop/resume point for a group of actor threads."""

    def __init__(self, names: Sequence[str]):
        self.cond = threading.Condition()
        self.names = set(names)
        self.want_stop = False
        self.exit = False
        self.stopped: dict[str, str] = {}

    def check(self, name: str, where: str) -> bool:
        """Called by actor ``name`` at a safe point; blocks while stopped.
        Returns True when the actor must exit."""
        if not self.want_stop and not self.exit:
            return False
        with self.cond:
            if self.want_stop and not self.exit:
                self.stopped[name] = where
                self.cond.notify_all()
                while self.want_stop and not self.exit:
                    self.cond.wait()
                self.stopped.pop(name, None)
            return self.exit

    def stop(self) -> None:
        with self.cond:
            self.want_stop = True

    def wait_stopped(self, timeout: float, alive: Callable[[], set[str]] = lambda: set()) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while set(self.stopped) | alive() < self.names:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SimError(f"actors did not stop: {sorted(self.names - set(self.stopped))}")
                self.cond.wait(min(left, 0.05))
            return dict(self.stopped)

    def resume(self) -> None:
        with self.cond:
            self.want_stop = False
            self.cond.notify_all()

    def shutdown(self) -> None:
        with self.cond:
            self.exit = True
            self.cond.notify_all()


def _eventfd() -> int:
    return os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)


def _read_count(fd: int) -> int:
    try:
        return os.eventfd_read(fd)
    except BlockingIOError:
        return 0


class MsiSource:
    def __init__(self, irq: int, server: int):
        self.irq, self.server = irq, server
        self.trig = -1
        self.fires: list[int] = []         # fire times
        self.ids: list[int] = []           # fire ids, same order
        self.pres: list[tuple[int, int]] = []   # (accept, eoi) per presentation
        self.accept_mark = 0                # len(fires) at the last accept
        self.triggers_seen = 0              # GET_STATS triggers of earlier devices

    def outstanding(self) -> int:
        return len(self.fires) - self.accept_mark


class LsiSource:
    def __init__(self, irq: int, server: int):
        self.irq, self.server = irq, server
        self.trig = self.res = -1
        self.work: collections.deque = collections.deque()   # (id, fire time)
        self.asserted = False
        self.asserts = 0
        self.resamples = 0
        self.fired = 0
        self.presentations = 0
        self.spurious = 0
        self.restored_pending = 0
        self.serviced: list[tuple[int, int, int]] = []  # (id, fire time, accept time)
        self.triggers_seen = 0


class Vcpu:
    def __init__(self, server: int):
        self.server = server
        self.name = f"vcpu{server}"
        self.dev: XicsDevice | None = None
        self.wake = -1
        self.kick = _eventfd()
        self.fd_epoch = 0
        self.mailbox: collections.deque = collections.deque()   # (id, fire time, sender)
        self.ipi_lock = threading.Lock()
        self.ipi_calls = 0            # H_IPI(this server, IPI_PRIORITY) requests
        self.ipi_presentations = 0
        self.ipi_spurious = 0
        self.ipi_handled: list[tuple[int, int, int]] = []   # (id, fire time, accept time)
        self.log: list[tuple[int, int, int]] = []            # (accept, xisr, eoi)
        self.lat: dict[str, list[int]] = {"msi": [], "lsi": [], "ipi": []}
        self.missed_wakeups = 0
        self.unknown: list[int] = []
        self.thread: threading.Thread | None = None


class Sim:
    """The simulated VM.  ``run()`` does everything: set-up, traffic, optional
    migration, drain, accounting; it returns the report dict."""

    def __init__(self, backend: Backend, config: Config | None = None, log=None):
        self.backend = backend
        self.cfg = cfg = config or Config()
        if cfg.vcpus < 2 and cfg.ipis:
            raise ValueError("IPIs need at least 2 vCPUs")
        self.log = log or (lambda msg: None)
        self.rnd = random.Random(cfg.seed)
        self.vcpus = [Vcpu(s) for s in range(cfg.vcpus)]
        self.msis = [MsiSource(cfg.msi_first + i, i % cfg.vcpus) for i in range(cfg.msi)]
        self.lsis = [LsiSource(cfg.lsi_first + i, i % cfg.vcpus) for i in range(cfg.lsi)]
        self.by_irq: dict[int, MsiSource | LsiSource] = {s.irq: s for s in self.msis + self.lsis}
        if len(self.by_irq) != cfg.msi + cfg.lsi:
            raise ValueError("MSI and LSI ranges overlap")
        self.ids = itertools.count()
        self.firing = True
        self.fired = 0
        self.fire_lock = threading.Lock()
        self.vgate = Gate([v.name for v in self.vcpus])
        self.dgate = Gate(["devices"] + (["masker"] if cfg.mask else []))
        self.interval_ns = int(1e9 / cfg.rate) if cfg.rate else 0
        self.next_fire_ns = 0
        self.doorbell = _eventfd()         # vCPUs -> device thread: an accept freed a slot
        self.dev_waiting = False
        self.pump_lock = threading.Lock()
        self.pump_stop = threading.Event()
        self.failures: list[BaseException] = []
        self.mask_cycles = 0
        self.migrations: list[dict] = []
        self.dev: XicsDevice | None = None
        self.masker_dev: XicsDevice | None = None
        self.backend_of_dev: Backend = backend
        self.threads: list[threading.Thread] = []
        self.t_start = self.t_end = 0
        self.stats_seen: list = []

    # -- ids and the fire budget ------------------------------------------------

    def take_id(self) -> int | None:
        with self.fire_lock:
            if not self.firing:
                return None
            if self.cfg.count is not None and self.fired >= self.cfg.count:
                self.firing = False
                return None
            self.fired += 1
            return next(self.ids)

    def fail(self, exc: BaseException) -> None:
        self.failures.append(exc)
        self.firing = False

    # -- set-up -------------------------------------------------------------------

    def _configure(self, dev: XicsDevice) -> None:
        cfg = self.cfg
        if cfg.msi:
            dev.create_ics(cfg.msi_first, cfg.msi, level=False)
        if cfg.lsi:
            dev.create_ics(cfg.lsi_first, cfg.lsi, level=True)
        for v in self.vcpus:
            dev.connect_vcpu(v.server)
        for s in self.msis + self.lsis:
            st = dev.set_xive(s.irq, s.server, DEVICE_PRIORITY)
            if st != 0:
                raise SimError(f"ibm,set-xive {s.irq} -> {st}")

    def _prepare(self, backend: Backend, dev: XicsDevice) -> dict:
        """What a VMM sets up on a device before it runs the VM there: fresh
        trigger / resample eventfds registered as irqfds (a gsi need not be
        configured yet), the output eventfds, a handle per thread.  Done
        before a migration stops anything, so it costs no downtime."""
        w: dict = {"backend": backend, "dev": dev, "fds": []}
        try:
            w["msi"] = []
            for s in self.msis:
                fd = _eventfd()
                w["fds"].append(fd)
                dev.irqfd(s.irq, fd)
                w["msi"].append(fd)
            w["lsi"] = []
            for s in self.lsis:
                t, r = _eventfd(), _eventfd()
                w["fds"] += [t, r]
                dev.irqfd(s.irq, t, r)
                w["lsi"].append((t, r))
            w["wake"] = []
            for _ in self.vcpus:
                fd = _eventfd()
                w["fds"].append(fd)
                w["wake"].append(fd)
            w["handles"] = [backend.handle(dev) for _ in self.vcpus]
            w["masker"] = backend.handle(dev) if self.cfg.mask else None
        except BaseException:
            self._discard(w)
            raise
        return w

    def _discard(self, w: dict) -> None:
        for h in w.get("handles", []) + ([w["masker"]] if w.get("masker") else []):
            w["backend"].release(w["dev"], h)
        for fd in w["fds"]:
            os.close(fd)

    def _install(self, w: dict) -> None:
        """Attach the outputs (the ICPs exist now: SET_OUTPUT writes at once
        if an output is already asserted) and hand the fds to the actors."""
        for v, fd in zip(self.vcpus, w["wake"]):
            w["dev"].set_output(v.server, fd)
        for s, fd in zip(self.msis, w["msi"]):
            s.trig = fd
        for s, (t, r) in zip(self.lsis, w["lsi"]):
            s.trig, s.res = t, r
        for v, fd, h in zip(self.vcpus, w["wake"], w["handles"]):
            v.wake, v.dev = fd, h
            v.fd_epoch += 1
        self.masker_dev = w["masker"]

    def _unwire(self, backend: Backend, dev: XicsDevice) -> list[int]:
        """Forget ``dev``'s eventfds and handles; returns the fds to close."""
        fds = [s.trig for s in self.msis] + [fd for s in self.lsis for fd in (s.trig, s.res)]
        fds += [v.wake for v in self.vcpus]
        for v in self.vcpus:
            if v.dev is not None:
                backend.release(dev, v.dev)
                v.dev = None
        if self.masker_dev is not None:
            backend.release(dev, self.masker_dev)
            self.masker_dev = None
        return fds

    # -- actors ---------------------------------------------------------------------

    def _spawn(self, name: str, fn, *args) -> threading.Thread:
        def body():
            try:
                fn(*args)
            except BaseException as e:  # noqa: BLE001 - reported by run()
                self.fail(SimError(f"{name}: {type(e).__name__}: {e}").with_traceback(e.__traceback__))
                self.vgate.shutdown()
                self.dgate.shutdown()
        t = threading.Thread(target=body, name=name, daemon=True)
        t.start()
        self.threads.append(t)
        return t

    def _pump_loop(self) -> None:
        """In-process backend: read trigger eventfds (the daemon does this
        itself).  Runs under pump_lock so a migration can hold it still."""
        while not self.pump_stop.is_set():
            p = select.poll()
            for s in self.msis + self.lsis:
                p.register(s.trig, select.POLLIN)
            epoch = self._pump_epoch
            while not self.pump_stop.is_set() and epoch == self._pump_epoch:
                if p.poll(5):
                    with self.pump_lock:
                        if epoch == self._pump_epoch:
                            self.backend_of_dev.pump(self.dev)

    def _device_loop(self) -> None:
        cfg = self.cfg
        rnd = random.Random(cfg.seed + 1)
        epoch = -1
        bursting: tuple[MsiSource, int] | None = None   # (source, fires left)
        while True:
            if self.dgate.check("devices", "paused"):
                return
            if epoch != self._dev_epoch:      # fds changed (start, migration)
                epoch = self._dev_epoch
                trig_poll = select.poll()
                for s in self.msis:
                    trig_poll.register(s.trig, select.POLLIN)
                res_poll = select.poll()
                by_res = {s.res: s for s in self.lsis}
                for fd in by_res:
                    res_poll.register(fd, select.POLLIN)
                res_poll.register(self.doorbell, select.POLLIN)
            did = False
            for fd, _ in res_poll.poll(0):
                if fd == self.doorbell:
                    _read_count(fd)
                elif _read_count(fd):
                    s = by_res[fd]
                    s.asserted = False
                    s.resamples += 1
            for s in self.lsis:
                if s.work and not s.asserted:
                    self._assert(s)
                    did = True
            if self.firing:
                busy = {fd for fd, _ in trig_poll.poll(0)}
                load = [0] * len(self.vcpus)
                for s in self.msis:
                    load[s.server] += s.outstanding()
                if self.interval_ns:
                    # open loop: one fire per token, its kind drawn by share
                    if self._token():
                        x = rnd.random()
                        if self.lsis and x < cfg.lsi_share:
                            did = self._new_lsi_work(rnd.choice(self.lsis)) or did
                        elif self.msis and bursting is None and x < cfg.lsi_share + cfg.msi_burst:
                            bursting = (rnd.choice(self.msis), cfg.msi_outstanding)
                        else:
                            did = self._fire_some(rnd, busy, load, 1) or did
                    if bursting is not None and bursting[0].trig not in busy:
                        bursting, did = self._burst(bursting), True
                else:
                    did = self._fire_some(rnd, busy, load, 8) or did
                    # a device raising MSIs back to back (a NIC under a packet
                    # train), each as soon as its previous trigger was read:
                    # what P/Q coalescing is for
                    if bursting is None and self.msis and rnd.random() < cfg.msi_burst:
                        bursting = (rnd.choice(self.msis), cfg.msi_outstanding)
                    if bursting is not None and bursting[0].trig not in busy:
                        bursting, did = self._burst(bursting), True
                    if self.lsis and rnd.random() < cfg.lsi_share:
                        did = self._new_lsi_work(rnd.choice(self.lsis)) or did
            if not did:                # wait for an accept (doorbell), a resample, a token
                wait = 2.0
                if self.interval_ns:
                    wait = min(wait, max(0.0, (self.next_fire_ns - now()) / 1e6))
                self.dev_waiting = True
                res_poll.poll(wait)
                self.dev_waiting = False

    def _fire_some(self, rnd: random.Random, busy: set[int], load: list[int], tries: int) -> bool:
        """Fire up to ``tries`` random MSI sources that may fire now (their
        previous count was read, below the per-source and per-server caps)."""
        cfg = self.cfg
        fired = 0
        for s in rnd.sample(self.msis, min(8, len(self.msis))):
            if (s.trig in busy or s.outstanding() >= cfg.msi_outstanding
                    or load[s.server] >= cfg.server_outstanding):
                continue
            if not self._fire(s):
                break
            load[s.server] += 1
            busy.add(s.trig)           # its count is unread: no second write yet
            fired += 1
            if fired >= tries:
                break
        return fired > 0

    def _new_lsi_work(self, s: LsiSource) -> bool:
        if len(s.work) >= self.cfg.lsi_backlog:
            return False
        fid = self.take_id()
        if fid is None:
            return False
        s.work.append((fid, now()))
        s.fired += 1
        if not s.asserted:
            self._assert(s)
        return True

    def _burst(self, b: tuple[MsiSource, int]) -> tuple[MsiSource, int] | None:
        """Next fire of a burst (its source's previous count was read): at
        most msi_outstanding fires in all, fewer if the source is at its cap."""
        s, left = b
        if left <= 0 or s.outstanding() >= self.cfg.msi_outstanding or not self._fire(s):
            return None
        return (s, left - 1) if left > 1 else None

    def _token(self) -> bool:
        """Open-loop pacing (Config.rate): may a device fire now?"""
        if not self.interval_ns:
            return True
        t = now()
        if t < self.next_fire_ns:
            return False
        # no catching up on more than a few missed slots: keep the rate smooth
        self.next_fire_ns = max(self.next_fire_ns, t - 4 * self.interval_ns) + self.interval_ns
        return True

    def _fire(self, s: MsiSource) -> bool:
        fid = self.take_id()
        if fid is None:
            return False
        s.ids.append(fid)
        s.fires.append(now())
        os.eventfd_write(s.trig, 1)
        return True

    def _assert(self, s: LsiSource) -> None:
        s.asserted = True
        s.asserts += 1
        os.eventfd_write(s.trig, 1)

    def _masker_loop(self) -> None:
        rnd = random.Random(self.cfg.seed + 2)
        masked: int | None = None
        until = 0
        sources = [s.irq for s in self.msis + self.lsis]
        try:
            while True:
                if self.dgate.check("masker", "paused"):
                    return
                dev = self.masker_dev
                t = now()
                if masked is None and self.firing:
                    masked = rnd.choice(sources)
                    self._rtas_ok(dev.int_off(masked), "ibm,int-off", masked)
                    until = t + rnd.randint(200_000, 3_000_000)
                    self.mask_cycles += 1
                elif masked is not None and (t >= until or not self.firing):
                    self._rtas_ok(dev.int_on(masked), "ibm,int-on", masked)
                    masked = None
                time.sleep(0.001)
        finally:
            if masked is not None and self.masker_dev is not None and not self.failures:
                self.masker_dev.int_on(masked)

    @staticmethod
    def _rtas_ok(status: int, what: str, irq: int) -> None:
        if status != 0:
            raise SimError(f"{what} {irq} -> RTAS status {status}")

    def _vcpu_loop(self, v: Vcpu) -> None:
        epoch = -1
        while True:
            if self.vgate.check(v.name, "idle"):
                return
            if epoch != v.fd_epoch:
                epoch = v.fd_epoch
                poller = select.poll()
                poller.register(v.wake, select.POLLIN)
                poller.register(v.kick, select.POLLIN)
            ev = poller.poll(int(self.cfg.wake_timeout * 1000))
            _read_count(v.kick)
            if not ev:
                if not self._check_missed_wakeup(v):
                    continue
            elif not _read_count(v.wake):
                continue                  # only kicked (stop / exit request)
            if self._service(v):
                return

    def _check_missed_wakeup(self, v: Vcpu) -> bool:
        """Idle for wake_timeout: is something presented that never woke us?
        Give the output a generous grace period before calling it missed."""
        st, r4, _ = v.dev.h_ipoll(v.server, v.server)
        if st != H_SUCCESS or (r4 & XISR_MASK) == 0:
            return False
        p = select.poll()
        p.register(v.wake, select.POLLIN)
        if p.poll(2000) and _read_count(v.wake):
            return True
        v.missed_wakeups += 1
        return True

    def _service(self, v: Vcpu) -> bool:
        """The guest's interrupt loop: H_XIRR until nothing is pending."""
        while True:
            if self.vgate.check(v.name, "presented"):
                return True
            st, xirr = v.dev.h_xirr(v.server)
            t_acc = now()
            if st != H_SUCCESS:
                raise SimError(f"H_XIRR on {v.server} -> {st}")
            xisr = xirr & XISR_MASK
            if xisr == 0:
                return False
            if self._handle(v, xirr, t_acc):
                return True

    def _handle(self, v: Vcpu, xirr: int, t_acc: int) -> bool:
        xisr = xirr & XISR_MASK
        src = self.by_irq.get(xisr)
        msgs: list = []
        if xisr == XICS_IPI:
            # Linux's icp_hv_ipi_action: clear the MFRR, then read the messages
            st = v.dev.h_ipi(v.server, v.server, MASKED)
            if st != H_SUCCESS:
                raise SimError(f"H_IPI(self, 0xFF) on {v.server} -> {st}")
            while v.mailbox:
                msgs.append(v.mailbox.popleft())
            v.ipi_presentations += 1
            if not msgs:
                v.ipi_spurious += 1
            for mid, t_fire, _ in msgs:
                v.ipi_handled.append((mid, t_fire, t_acc))
                v.lat["ipi"].append(t_acc - t_fire)
        elif isinstance(src, MsiSource):
            src.accept_mark = len(src.fires)
            if self.dev_waiting:       # the device may fire again: wake it
                os.eventfd_write(self.doorbell, 1)
        elif isinstance(src, LsiSource):
            src.presentations += 1
            got = 0
            while src.work:
                mid, t_fire = src.work.popleft()
                src.serviced.append((mid, t_fire, t_acc))
                v.lat["lsi"].append(t_acc - t_fire)
                got += 1
            if not got:
                src.spurious += 1
        else:
            v.unknown.append(xisr)
        stop = self.vgate.check(v.name, "in-service")
        st = v.dev.h_eoi(v.server, xirr)
        t_eoi = now()
        if st != H_SUCCESS:
            raise SimError(f"H_EOI({xirr:#x}) on {v.server} -> {st}")
        v.log.append((t_acc, xisr, t_eoi))
        if isinstance(src, MsiSource):
            src.pres.append((t_acc, t_eoi))
        if stop:
            return True
        if self.cfg.ipis and self.firing and self.rnd.random() < self.cfg.ipi_rate:
            return self._send_ipi(v)
        return False

    def _send_ipi(self, v: Vcpu) -> bool:
        target = self.vcpus[(v.server + 1 + self.rnd.randrange(len(self.vcpus) - 1)) % len(self.vcpus)]
        if len(target.mailbox) >= self.cfg.ipi_backlog:
            return False
        mid = self.take_id()
        if mid is None:
            return False
        target.mailbox.append((mid, now(), v.server))
        stop = self.vgate.check(v.name, "ipi-posted")
        st = v.dev.h_ipi(v.server, target.server, IPI_PRIORITY)
        if st != H_SUCCESS:
            raise SimError(f"H_IPI({target.server}, {IPI_PRIORITY}) from {v.server} -> {st}")
        with target.ipi_lock:
            target.ipi_calls += 1
        return stop

    # -- run --------------------------------------------------------------------

    def start(self) -> None:
        self._dev_epoch = 0
        self._pump_epoch = 0
        self.dev = self.backend.create()
        self.backend_of_dev = self.backend
        self._configure(self.dev)
        self._install(self._prepare(self.backend, self.dev))
        for v in self.vcpus:            # boot: the guest opens its CPPR
            st = v.dev.h_cppr(v.server, 0xFF)
            if st != H_SUCCESS:
                raise SimError(f"H_CPPR(0xFF) on {v.server} -> {st}")
        self.t_start = now()
        if self.backend.needs_pump:
            self._spawn("pump", self._pump_loop)
        for v in self.vcpus:
            v.thread = self._spawn(v.name, self._vcpu_loop, v)
        self._spawn("devices", self._device_loop)
        if self.cfg.mask:
            self._spawn("masker", self._masker_loop)

    def wait_fired(self, fired: int | None = None, until_ns: int | None = None) -> None:
        """Block until ``fired`` fires were made, or the clock passes
        ``until_ns``, or the budget ran out."""
        while self.firing and not self.failures:
            if fired is not None and self.fired >= fired:
                return
            if until_ns is not None and now() >= until_ns:
                return
            time.sleep(0.005)

    def _alive(self, names: Sequence[str]) -> set[str]:
        """Actors that exited count as stopped (after a failure)."""
        return {t.name for t in self.threads if not t.is_alive() and t.name in names}

    def _kick_vcpus(self) -> None:
        for v in self.vcpus:
            os.eventfd_write(v.kick, 1)

    def _wait_triggers_consumed(self, timeout: float = 10.0) -> None:
        p = select.poll()
        for s in self.msis + self.lsis:
            p.register(s.trig, select.POLLIN)
        deadline = time.monotonic() + timeout
        while p.poll(0):
            if time.monotonic() > deadline:
                raise SimError("trigger eventfds not consumed")
            time.sleep(0.0005)

    def drain(self) -> dict:
        """Stop firing, let the guest handle everything, stop the threads."""
        with self.fire_lock:
            self.firing = False
        self.t_end = now()
        deadline = time.monotonic() + self.cfg.drain_timeout
        idle_seen = 0
        state = None
        while time.monotonic() < deadline and not self.failures:
            time.sleep(0.01)
            if not self._quiet_locally():
                idle_seen = 0
                continue
            state = self.dev.dump()
            if self._idle(state):
                idle_seen += 1
                if idle_seen >= 3:
                    break
            else:
                idle_seen = 0
        self.vgate.shutdown()
        self.dgate.shutdown()
        self._kick_vcpus()
        self.pump_stop.set()
        for t in self.threads:
            t.join(5)
        final = self.dev.dump()
        self.stats_seen.append(self.dev.stats())
        return {"idle": self._idle(final) and self._quiet_locally(), "state": final}

    def _quiet_locally(self) -> bool:
        if any(s.work for s in self.lsis) or any(v.mailbox for v in self.vcpus):
            return False
        p = select.poll()
        for s in self.msis + self.lsis:
            p.register(s.trig, select.POLLIN)
        return not p.poll(0)

    @staticmethod
    def _nothing_in_flight(state: DeviceState) -> bool:
        """No ICP holds or serves anything, no source is queued or owed a
        delivery, except masked ones (they wait for their unmask)."""
        return (all(w & SOURCE_BUSY == 0 or w & SRC_MASKED for w in state.sources.values())
                and all(w == IDLE_ICP for w in state.icps.values()))

    @staticmethod
    def _idle(state: DeviceState) -> bool:
        return (all(w & SOURCE_BUSY == 0 for w in state.sources.values())
                and all(w == IDLE_ICP for w in state.icps.values()))

    # -- migration ----------------------------------------------------------------

    def migrate(self, target: Backend, mode: str = "stop") -> dict:
        """Move the running VM's XICS to a new device of ``target``.

        ``stop`` (QEMU's stop-and-copy): devices and vCPUs stop at once,
        wherever they are, without waiting for the vCPUs to accept what is
        already presented: interrupts presented, in service, queued, in
        resend or masked-pending travel in the state words and must all be
        delivered on B.

        ``drain``: the devices stop firing first; the vCPUs go on accepting
        and EOIing what is already presented while DUMP_STATE is taken again
        and again (each dump races with their hcalls and is retried on
        NLM_F_DUMP_INTR) until nothing is left in flight (masked sources
        aside) or a second has passed; then the vCPUs stop for the final dump."""
        if mode not in ("stop", "drain"):
            raise ValueError(f"unknown migration mode {mode!r}")
        src_backend, src = self.backend_of_dev, self.dev
        rec: dict = {"mode": mode, "from": src_backend.describe(), "to": target.describe()}
        t_prep = now()
        dst = target.create()
        try:
            wiring = self._prepare(target, dst)
        except BaseException:
            target.dispose(dst)
            raise
        t0 = now()
        rec["prepare_ns"] = t0 - t_prep
        self.dgate.stop()
        if mode == "stop":
            self.vgate.stop()
            self._kick_vcpus()
        self.dgate.wait_stopped(10, lambda: self._alive(self.dgate.names))
        self._wait_triggers_consumed()
        t_dev = now()
        rec["drain_dumps"] = 0
        if mode == "drain":
            deadline = time.monotonic() + 1.0
            while True:
                pre = src.dump()            # the guest is running: retried on DUMP_INTR
                rec["drain_dumps"] += 1
                if self._nothing_in_flight(pre) or time.monotonic() > deadline:
                    break
                time.sleep(0.001)
            self.vgate.stop()
            self._kick_vcpus()
        t_freeze = now() if mode == "drain" else t0
        where = self.vgate.wait_stopped(10, lambda: self._alive(self.vgate.names))
        self.pump_lock.acquire()   # in-process: nothing reads triggers behind our back now
        try:
            return self._migrate_stopped(target, mode, src_backend, src, dst, wiring, rec, t0, t_dev,
                                         t_freeze, where, now())
        finally:
            self.pump_lock.release()

    def _migrate_stopped(self, target: Backend, mode: str, src_backend: Backend, src: XicsDevice,
                         dst: XicsDevice, wiring: dict, rec: dict, t0: int, t_dev: int, t_freeze: int,
                         where: dict[str, str], t_frozen: int) -> dict:
        self._wait_triggers_consumed()
        # resample counts A wrote after the device thread paused
        for s in self.lsis:
            if _read_count(s.res):
                s.asserted = False
                s.resamples += 1
        g1 = src.generation
        state = src.dump()
        if src.generation != g1:
            raise SimError("device A changed while the VM was stopped")
        t_dumped = now()
        rec["inflight"] = inflight = self._inflight(state, where)
        try:
            dst.restore(state)
        except BaseException as e:
            # B refused the state: nothing moved, the VM goes on running on A
            self._discard(wiring)
            target.dispose(dst)
            self.vgate.resume()
            self.dgate.resume()
            raise SimError(f"restore into {target.describe()} failed, still running on "
                           f"{src_backend.describe()}: {e}") from e
        t_restored = now()
        # S3.17: an LSI saved with P set is delivered once more by B
        for s in self.lsis:
            if state.sources.get(s.irq, 0) & SRC_PENDING:
                s.restored_pending += 1
        after = dst.dump()
        rec["equal"] = after == state
        rec["sources"], rec["icps"] = len(state.sources), len(state.icps)
        if not rec["equal"]:
            rec["diff"] = _diff(state, after)
        t_verified = now()
        old_handles = [v.dev for v in self.vcpus] + ([self.masker_dev] if self.masker_dev else [])
        old_fds = [s.trig for s in self.msis] + [fd for s in self.lsis for fd in (s.trig, s.res)]
        old_fds += [v.wake for v in self.vcpus]
        self._dev_epoch += 1
        self._install(wiring)
        self.dev, self.backend_of_dev = dst, target
        self._pump_epoch += 1
        if target.needs_pump and not any(t.name == "pump" and t.is_alive() for t in self.threads):
            self._spawn("pump", self._pump_loop)
        self.vgate.resume()
        self.dgate.resume()
        t_resume = now()
        # A's side is no longer in the VM's path: tidy it up after the resume
        self.stats_seen.append(src.stats())
        for h in old_handles:
            src_backend.release(src, h)
        for fd in old_fds:
            os.close(fd)
        src_backend.dispose(src)
        rec["t"] = {"start": t0, "devices_paused": t_dev, "freeze": t_freeze, "frozen": t_frozen,
                    "dumped": t_dumped, "restored": t_restored, "verified": t_verified, "resume": t_resume}
        rec["phases_ms"] = {
            "stop vCPUs": (t_frozen - t_freeze) / 1e6,
            "dump A": (t_dumped - t_frozen) / 1e6,
            "restore B": (t_restored - t_dumped) / 1e6,
            "verify B": (t_verified - t_restored) / 1e6,
            "switch": (t_resume - t_verified) / 1e6,
        }
        rec["downtime_ns"] = t_resume - t_freeze
        rec["device_pause_ns"] = t_resume - t0
        rec["inflight_count"] = sum(len(x) for x in inflight.values())
        self.migrations.append(rec)
        self.log(f"migrated ({mode}): downtime {rec['downtime_ns'] / 1e6:.2f} ms, "
                 f"{rec['inflight_count']} in flight, state equal: {rec['equal']}")
        return rec

    def _inflight(self, state: DeviceState, where: dict[str, str]) -> dict[str, list]:
        out: dict[str, list] = {"presented": [], "in_service": [], "queued": [], "pending": [],
                                "masked": [], "vcpus_in_service": []}
        for irq, w in state.sources.items():
            if w & SRC_QUEUED:
                out["queued"].append(irq)
            if w & SRC_PENDING:        # MSI: resend or masked-pending; LSI: asserted
                out["pending"].append(irq)
            if w & SRC_MASKED:
                out["masked"].append(irq)
        for server, w in state.icps.items():
            xisr = (w >> XISR_SHIFT) & XISR_MASK
            cppr = w >> CPPR_SHIFT
            if xisr:
                out["presented"].append((server, xisr))
            if cppr != 0xFF:
                out["in_service"].append((server, cppr))
        out["vcpus_in_service"] = [n for n, w in where.items() if w == "in-service"]
        return out

    # -- accounting -------------------------------------------------------------------

    def account(self, drained: dict) -> dict:
        cfg = self.cfg
        lat_by_vcpu = {v.server: v.lat for v in self.vcpus}
        for v in self.vcpus:
            v.lat["msi"] = []          # filled from the resolution below
        msi = {"fired": 0, "delivered": 0, "coalesced": 0, "lost": 0, "duplicated": 0}
        problems: list[str] = []
        for s in self.msis:
            r = resolve_msi(s.fires, s.pres)
            msi["fired"] += len(s.fires)
            msi["delivered"] += len(s.pres)
            msi["coalesced"] += r.coalesced
            msi["lost"] += r.lost
            msi["duplicated"] += len(r.duplicated)
            if not r.ok:
                problems.append(f"MSI {s.irq}: {r.lost} lost, {len(r.duplicated)} duplicated "
                                f"({len(s.fires)} fires, {len(s.pres)} presentations)")
            lat = lat_by_vcpu[s.server]["msi"]
            for (a, b), j in zip(r.groups, r.kept):
                acc = s.pres[j][0]
                lat.extend(acc - f for f in s.fires[a:b])
        lsi = {"fired": 0, "delivered": 0, "serviced": 0, "asserts": 0, "spurious": 0, "lost": 0,
               "duplicated": 0}
        for s in self.lsis:
            lost = s.fired - len(s.serviced)
            bound = 2 * s.asserts + s.restored_pending
            dup = max(0, s.presentations - bound)
            lsi["fired"] += s.fired
            lsi["delivered"] += s.presentations
            lsi["serviced"] += len(s.serviced)
            lsi["asserts"] += s.asserts
            lsi["spurious"] += s.spurious
            lsi["lost"] += lost
            lsi["duplicated"] += dup
            if lost or dup:
                problems.append(f"LSI {s.irq}: {lost} work items lost, {dup} presentations beyond "
                                f"2*{s.asserts} asserts + {s.restored_pending} restored")
        ipi = {"fired": 0, "requests": 0, "delivered": 0, "handled": 0, "coalesced": 0, "spurious": 0,
               "lost": 0, "duplicated": 0}
        for v in self.vcpus:
            handled = len(v.ipi_handled)
            left = len(v.mailbox)
            dup = max(0, v.ipi_presentations - v.ipi_calls)
            ipi["fired"] += handled + left
            ipi["requests"] += v.ipi_calls
            ipi["delivered"] += v.ipi_presentations
            ipi["handled"] += handled
            ipi["spurious"] += v.ipi_spurious
            ipi["coalesced"] += handled - (v.ipi_presentations - v.ipi_spurious)
            ipi["lost"] += left
            ipi["duplicated"] += dup
            if left or dup:
                problems.append(f"IPI to {v.server}: {left} messages unread, {dup} presentations beyond "
                                f"{v.ipi_calls} requests")
            if v.unknown:
                problems.append(f"vCPU {v.server} accepted unknown XISRs {sorted(set(v.unknown))[:8]}")
            if v.missed_wakeups:
                problems.append(f"vCPU {v.server}: {v.missed_wakeups} presentations without an output wake-up")
        # each MSI fire must have been exactly one trigger (no eventfd coalescing)
        trig: dict[int, int] = collections.Counter()
        for st in self.stats_seen:
            for irq, (t, _) in st.sources.items():
                trig[irq] += t
        # (not for LSIs: an assert written after a late resample may find P
        # still set by the re-assert before it, and such an assert is no trigger)
        trig_mismatch = [s.irq for s in self.msis if trig[s.irq] != len(s.fires)]
        if trig_mismatch:
            problems.append(f"GET_STATS triggers differ from fires on MSI {trig_mismatch[:8]}")
        if not drained["idle"]:
            problems.append("the device did not come back to idle after the drain")
        latency = {}
        for v in self.vcpus:
            allv = [x for k in ("msi", "lsi", "ipi") for x in lat_by_vcpu[v.server][k]]
            latency[v.server] = {k: _us(percentiles(x)) for k, x in
                                 (("all", allv),) + tuple((k, lat_by_vcpu[v.server][k]) for k in ("msi", "lsi", "ipi"))}
            latency[v.server]["n"] = len(allv)
        migr = []
        for m in self.migrations:
            m2 = {k: x for k, x in m.items() if k not in ("t",)}
            m2["inflight_delivered_after"] = self._check_inflight(m)
            if not m2["inflight_delivered_after"]["ok"]:
                problems.append(f"migration: in-flight interrupts not delivered after it: "
                                f"{m2['inflight_delivered_after']['missing'][:8]}")
            if not m["equal"]:
                problems.append("migration: DUMP_STATE of B after restore differs from A's")
            migr.append(m2)
        elapsed = (self.t_end - self.t_start) / 1e9
        return {
            "config": dataclasses.asdict(cfg),
            "backend": " -> ".join([self.backend.describe()] + [m["to"] for m in self.migrations]),
            "seconds": elapsed,
            "fired_total": msi["fired"] + lsi["fired"] + ipi["fired"],
            "msi": msi, "lsi": lsi, "ipi": ipi,
            "mask_cycles": self.mask_cycles,
            "latency_us": latency,
            "migrations": migr,
            "missed_wakeups": sum(v.missed_wakeups for v in self.vcpus),
            "drained_idle": drained["idle"],
            "problems": problems,
            "failures": [f"{e}" for e in self.failures],
            "ok": not problems and not self.failures,
        }

    def _check_inflight(self, m: dict) -> dict:
        """Every interrupt found in flight at the dump was accepted (or, if in
        service, EOI'd) after the resume, on B."""
        t_resume = m["t"]["resume"]
        after: dict[int, set[int]] = {}
        eoi_after: dict[int, set[int]] = {}
        for v in self.vcpus:
            after[v.server] = {x for (a, x, e) in v.log if a >= t_resume}
            eoi_after[v.server] = {x for (a, x, e) in v.log if a < t_resume <= e}
        accepted_any = set().union(*after.values()) if after else set()
        missing = []
        inf = m["inflight"]
        for server, xisr in inf["presented"]:
            if xisr not in after[server]:
                missing.append(("presented", server, xisr))
        for irq in inf["queued"] + inf["pending"]:
            if irq not in accepted_any:
                missing.append(("queued/pending", irq))
        for server, _ in inf["in_service"]:
            if server in [int(n[4:]) for n in inf["vcpus_in_service"]] and not eoi_after[server]:
                missing.append(("in-service EOI", server))
        return {"ok": not missing, "missing": missing,
                "checked": len(inf["presented"]) + len(inf["queued"]) + len(inf["pending"])
                + len(inf["vcpus_in_service"])}

    # -- all of it ----------------------------------------------------------------

    def run(self, migrate_to: Backend | None = None, migrate_at: float = 0.5,
            mode: str = "stop") -> dict:
        """Run to the budget (count and/or seconds); if ``migrate_to`` is given,
        migrate once when ``migrate_at`` of the budget is done."""
        cfg = self.cfg
        self.start()
        try:
            deadline = self.t_start + int(cfg.seconds * 1e9) if cfg.seconds else None
            if migrate_to is not None:
                at_count = int(cfg.count * migrate_at) if cfg.count else None
                at_time = self.t_start + int(cfg.seconds * 1e9 * migrate_at) if cfg.seconds else None
                self.wait_fired(at_count, at_time)
                if self.failures:
                    raise SimError("failed before the migration")
                self.migrate(migrate_to, mode)
            self.wait_fired(cfg.count, deadline)
            drained = self.drain()
        except BaseException:
            with self.fire_lock:
                self.firing = False
            self.vgate.shutdown()
            self.dgate.shutdown()
            self._kick_vcpus()
            self.pump_stop.set()
            raise
        report = self.account(drained)
        report["timeline"] = self.timeline()
        return report

    def close(self) -> None:
        if self.dev is not None:
            fds = self._unwire(self.backend_of_dev, self.dev)
            self.backend_of_dev.dispose(self.dev)
            self.dev = None
            for fd in fds:
                try:
                    os.close(fd)
                except OSError:
                    pass
        for fd in [v.kick for v in self.vcpus] + [self.doorbell]:
            try:
                os.close(fd)
            except OSError:
                pass

    def timeline(self) -> dict:
        """Accept times (ms since start) per vCPU, and the migration windows:
        what the plot shows."""
        t0 = self.t_start
        return {
            "accepts_ms": {v.server: [(a - t0) / 1e6 for a, _, _ in v.log] for v in self.vcpus},
            "migrations_ms": [((m["t"]["freeze"] - t0) / 1e6, (m["t"]["resume"] - t0) / 1e6,
                               (m["t"]["start"] - t0) / 1e6) for m in self.migrations],
        }


def _us(p: dict) -> dict:
    return {k: round(x / 1000, 1) for k, x in p.items()}


def _diff(a: DeviceState, b: DeviceState) -> list[str]:
    out = []
    for irq in sorted(set(a.sources) | set(b.sources)):
        if a.sources.get(irq) != b.sources.get(irq):
            out.append(f"source {irq}: {a.sources.get(irq, 0):#018x} != {b.sources.get(irq, 0):#018x}")
    for s in sorted(set(a.icps) | set(b.icps)):
        if a.icps.get(s) != b.icps.get(s):
            out.append(f"icp {s}: {a.icps.get(s, 0):#018x} != {b.icps.get(s, 0):#018x}")
    return out[:20]


# ---------------------------------------------------------------------------
# Report


def format_report(r: dict) -> str:
    c = r["config"]
    lines = [
        (f"irqd.sim: {c['vcpus']} vCPUs, {c['msi']} MSI, {c['lsi']} level sources, IPIs "
         f"{'on' if c['ipis'] else 'off'}, RTAS masking {'on' if c['mask'] else 'off'} "
         f"({r['mask_cycles']} mask/unmask cycles)"),
        f"backend: {r['backend']}; firing for {r['seconds']:.2f} s, {r['fired_total']} interrupts fired",
        "",
        f"{'kind':5} {'fired':>9} {'delivered':>10} {'coalesced':>10} {'lost':>6} {'duplicated':>11}",
    ]
    m, lv, ip = r["msi"], r["lsi"], r["ipi"]
    lines.append(f"{'msi':5} {m['fired']:>9} {m['delivered']:>10} {m['coalesced']:>10} {m['lost']:>6} "
                 f"{m['duplicated']:>11}")
    lines.append(f"{'level':5} {lv['fired']:>9} {lv['delivered']:>10} {'-':>10} {lv['lost']:>6} "
                 f"{lv['duplicated']:>11}   ({lv['serviced']} work items serviced, {lv['asserts']} asserts, "
                 f"{lv['spurious']} presentations found no work)")
    lines.append(f"{'ipi':5} {ip['fired']:>9} {ip['delivered']:>10} {ip['coalesced']:>10} {ip['lost']:>6} "
                 f"{ip['duplicated']:>11}   ({ip['requests']} H_IPI requests, {ip['spurious']} found no message)")
    lines.append("")
    lines.append("latency fire -> H_XIRR, microseconds (msi | level | ipi | all):")
    lines.append(f"{'vcpu':5} {'n':>8} {'p50':>8} {'p90':>8} {'p99':>8} {'p99.9':>8} {'max':>9}")
    for server, d in r["latency_us"].items():
        a = d["all"]
        if not a:
            lines.append(f"{server:<5} {0:>8}")
            continue
        lines.append(f"{server:<5} {d['n']:>8} {a['p50']:>8} {a['p90']:>8} {a['p99']:>8} {a['p99.9']:>8} "
                     f"{a['max']:>9}")
    for mg in r["migrations"]:
        inf = mg["inflight"]
        lines.append("")
        lines.append(f"migration ({mg['mode']}): {mg['from']} -> {mg['to']}")
        lines.append(f"  downtime (vCPUs stopped -> resumed): {mg['downtime_ns'] / 1e6:.2f} ms; "
                     f"devices paused {mg['device_pause_ns'] / 1e6:.2f} ms")
        lines.append("  of which: " + ", ".join(f"{k} {x:.2f} ms" for k, x in mg["phases_ms"].items())
                     + f" (B prepared beforehand in {mg['prepare_ns'] / 1e6:.2f} ms)")
        lines.append(f"  state: {mg['sources']} sources, {mg['icps']} ICPs; B after restore equals A: "
                     f"{'yes' if mg['equal'] else 'NO'}"
                     + (f"; {mg['drain_dumps']} dumps while draining" if mg["mode"] == "drain" else ""))
        lines.append(f"  in flight at the dump: {len(inf['presented'])} presented, {len(inf['in_service'])} "
                     f"in service, {len(inf['queued'])} queued, {len(inf['pending'])} pending (resend or "
                     f"masked), {len(inf['masked'])} masked; delivered after the migration: "
                     f"{'yes' if mg['inflight_delivered_after']['ok'] else 'NO'}")
    lines.append("")
    if r["problems"] or r["failures"]:
        lines.append("PROBLEMS:")
        lines.extend("  " + p for p in r["problems"] + r["failures"])
    else:
        lines.append("result: every interrupt handled as XICS promises (0 lost, 0 wrongly duplicated)")
    return "\n".join(lines)


def plot(r: dict, path: str) -> None:
    """Latency distribution per vCPU and handled-interrupt rate over time
    with the migration window (matplotlib, the ``plot`` extra)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 8))
    for server, lat in r["_lat_raw"].items():
        if lat:
            v = sorted(x / 1000 for x in lat)
            ax1.plot(v, [i / len(v) for i in range(1, len(v) + 1)], label=f"vCPU {server}")
    ax1.set_xscale("log")
    ax1.set_xlabel("fire -> H_XIRR latency (µs)")
    ax1.set_ylabel("fraction of interrupts")
    ax1.set_title("latency distribution (CDF)")
    ax1.grid(True, which="both", alpha=0.3)
    ax1.legend()
    tl = r["timeline"]
    allacc = sorted(x for xs in tl["accepts_ms"].values() for x in xs)
    if allacc:
        width = 5.0
        nb = int(allacc[-1] // width) + 1
        counts = [0] * nb
        for x in allacc:
            counts[int(x // width)] += 1
        ax2.bar([i * width for i in range(nb)], [c / width * 1000 for c in counts], width=width,
                align="edge", color="tab:blue")
    for freeze, resume, start in tl["migrations_ms"]:
        ax2.axvspan(start, resume, color="tab:orange", alpha=0.25, label="devices paused")
        ax2.axvspan(freeze, resume, color="tab:red", alpha=0.5,
                    label=f"vCPUs stopped: {resume - freeze:.2f} ms downtime")
    ax2.set_xlabel("time since start (ms)")
    ax2.set_ylabel("interrupts accepted per second")
    ax2.set_title("throughput and migration downtime")
    if tl["migrations_ms"]:
        ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------
# Daemons for the demo


class SpawnedDaemon:
    """An irqd daemon in a child process, serving on a fresh socket."""

    def __init__(self, path: str, log_path: str | None = None):
        self.path = path
        self.log = open(log_path or os.devnull, "ab")  # noqa: SIM115 - closed by stop()
        self.proc = subprocess.Popen([sys.executable, "-m", "irqd", "--socket", path],
                                     stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 15
        while True:
            if self.proc.poll() is not None:
                raise SimError(f"irqd exited with {self.proc.returncode} before serving {path}")
            if os.path.exists(path):
                try:
                    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                    s.connect(path)
                    s.close()
                    break
                except OSError:
                    pass
            if time.monotonic() > deadline:
                self.stop()
                raise SimError(f"irqd did not start serving {path}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def _backend_from_arg(arg: str) -> Backend:
    if arg == "inproc":
        return InprocBackend()
    if arg.startswith("daemon:"):
        return DaemonBackend(arg[len("daemon:"):])
    raise SystemExit(f"--backend: 'inproc' or 'daemon:PATH', not {arg!r}")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m irqd.sim", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", default="inproc", help="inproc, or daemon:SOCKET (default inproc)")
    p.add_argument("--migrate-to", metavar="BACKEND", help="migrate once, mid-run, to this backend")
    p.add_argument("--demo", action="store_true",
                   help="start two daemons, run on the first, migrate to the second mid-run")
    p.add_argument("--mode", choices=("stop", "drain"), default="stop",
                   help="migration: stop everything at once (default), or drain the vCPUs first")
    p.add_argument("--vcpus", type=int, default=4)
    p.add_argument("--msi", type=int, default=64)
    p.add_argument("--lsi", type=int, default=8)
    p.add_argument("--no-ipi", action="store_true")
    p.add_argument("--no-mask", action="store_true")
    p.add_argument("--count", type=int, default=None, help="stop after this many fires")
    p.add_argument("--seconds", type=float, default=None, help="stop firing after this long (default 4)")
    p.add_argument("--rate", type=float, default=None,
                   help="device fires per second (default: as fast as the guest keeps up)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--report", metavar="PATH", help="also write the report here (and PATH.json)")
    p.add_argument("--plot", action="store_true", help="write a PNG next to the report (needs matplotlib)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    a = p.parse_args(argv)
    if a.count is None and a.seconds is None:
        a.seconds = 4.0
    cfg = Config(vcpus=a.vcpus, msi=a.msi, lsi=a.lsi, ipis=not a.no_ipi, mask=not a.no_mask,
                 count=a.count, seconds=a.seconds, rate=a.rate, seed=a.seed)
    daemons: list[SpawnedDaemon] = []
    tmp = None
    log = (lambda m: print("irqd.sim:", m, file=sys.stderr))
    try:
        if a.demo:
            tmp = tempfile.mkdtemp(prefix="irqd-demo-")
            for name in ("A", "B"):
                daemons.append(SpawnedDaemon(os.path.join(tmp, f"{name}.sock"),
                                             os.path.join(tmp, f"{name}.log")))
                log(f"daemon {name}: pid {daemons[-1].proc.pid} on {daemons[-1].path}")
            backend: Backend = DaemonBackend(daemons[0].path)
            target: Backend | None = DaemonBackend(daemons[1].path)
        else:
            backend = _backend_from_arg(a.backend)
            target = _backend_from_arg(a.migrate_to) if a.migrate_to else None
        sim = Sim(backend, cfg, log=log)
        try:
            r = sim.run(migrate_to=target, mode=a.mode)
        finally:
            sim.close()
        r["_lat_raw"] = {v.server: [x for k in ("msi", "lsi", "ipi") for x in v.lat[k]] for v in sim.vcpus}
        text = format_report(r)
        out = {k: x for k, x in r.items() if not k.startswith("_") and k != "timeline"}
        print(json.dumps(out, indent=1, default=str) if a.json else text)
        if a.report:
            os.makedirs(os.path.dirname(os.path.abspath(a.report)), exist_ok=True)
            with open(a.report, "w") as f:
                f.write(text + "\n")
            with open(os.path.splitext(a.report)[0] + ".json", "w") as f:
                json.dump(out, f, indent=1, default=str)
        if a.plot:
            base = os.path.splitext(a.report)[0] if a.report else "irqd-sim"
            plot(r, base + ".png")
            print(f"plot: {base}.png", file=sys.stderr)
        return 0 if r["ok"] else 1
    finally:
        for d in daemons:
            d.stop()
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
