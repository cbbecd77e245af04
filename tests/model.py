"""Reference model of the KVM XICS, written from xics-semantics.md alone.

Slow and obvious on purpose: one thread, plain Python objects, every
operation performed atomically in the order the semantics document states
(section 1.6: "a single-threaded implementation that performs each operation
below atomically, in the stated order, is a faithful model").  Section
numbers (S2.3, S3.7, ...) and scenario ids (X-nnn) refer to
/work/shared/xics-semantics.md.  It was written without reading the C core.

``XicsModel`` implements :class:`irqd.backend.XicsDevice`, so the scenario
suite runs on it exactly as on the real backends, and it exposes its whole
internal state (``raw_sources()``, ``raw_icps()``) for the differential tests.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import itertools
import os
import time
from collections.abc import Sequence

from irqd._core import lib

from irqd.backend import DeviceInfo, DeviceState, DeviceStats, XicsDevice
from irqd.errors import error_for

# Numbers come from abi.h through cffi (never copied).
ICS_SHIFT = lib.IRQD_KVMPPC_XICS_ICS_SHIFT
IRQ_PER_ICS = lib.IRQD_KVMPPC_XICS_IRQ_PER_ICS
SRC_MASK = lib.IRQD_KVMPPC_XICS_SRC_MASK
MAX_ICS_ID = lib.IRQD_KVMPPC_XICS_MAX_ICS_ID
FIRST_IRQ = lib.IRQD_KVMPPC_XICS_FIRST_IRQ
NR_IRQS = lib.IRQD_KVMPPC_XICS_NR_IRQS
MASKED = lib.IRQD_XICS_MASKED
XICS_IPI = lib.IRQD_XICS_IPI
PQ_P = lib.IRQD_PQ_PRESENTED
PQ_Q = lib.IRQD_PQ_QUEUED
MAX_SERVERS = lib.IRQD_MAX_SERVERS

KVM_SET = lib.IRQD_KVM_INTERRUPT_SET
KVM_UNSET = lib.IRQD_KVM_INTERRUPT_UNSET
KVM_SET_LEVEL = lib.IRQD_KVM_INTERRUPT_SET_LEVEL
LEVELS_ON = (1, KVM_SET, KVM_SET_LEVEL)
LEVELS_OFF = (0, KVM_UNSET)

SRC_LEVEL_SENSITIVE = lib.IRQD_KVM_XICS_LEVEL_SENSITIVE
SRC_MASKED = lib.IRQD_KVM_XICS_MASKED
SRC_PENDING = lib.IRQD_KVM_XICS_PENDING
SRC_PRESENTED = lib.IRQD_KVM_XICS_PRESENTED
SRC_QUEUED = lib.IRQD_KVM_XICS_QUEUED
PRIO_SHIFT = lib.IRQD_KVM_XICS_PRIORITY_SHIFT

H_SUCCESS = lib.IRQD_H_SUCCESS
H_PARAMETER = lib.IRQD_H_PARAMETER
H_EOI = lib.IRQD_H_EOI
H_CPPR = lib.IRQD_H_CPPR
H_IPI = lib.IRQD_H_IPI
H_IPOLL = lib.IRQD_H_IPOLL
H_XIRR = lib.IRQD_H_XIRR
H_XIRR_X = lib.IRQD_H_XIRR_X
HCALLS = (H_EOI, H_CPPR, H_IPI, H_IPOLL, H_XIRR, H_XIRR_X)

RTAS_SET_XIVE = lib.IRQD_RTAS_SET_XIVE
RTAS_GET_XIVE = lib.IRQD_RTAS_GET_XIVE
RTAS_INT_OFF = lib.IRQD_RTAS_INT_OFF
RTAS_INT_ON = lib.IRQD_RTAS_INT_ON
RTAS_BUF_WORDS = lib.IRQD_RTAS_BUF_WORDS
RTAS_PARAM_ERROR = lib.IRQD_RTAS_PARAM_ERROR
# token -> (nargs, nret) the call requires exactly (S3.11)
RTAS_COUNTS = {RTAS_SET_XIVE: (3, 1), RTAS_GET_XIVE: (1, 3), RTAS_INT_OFF: (1, 1), RTAS_INT_ON: (1, 1)}

U32 = 0xFFFFFFFF
U64 = 0xFFFFFFFFFFFFFFFF

_handles = itertools.count(1)


def _s32(v: int) -> int:
    v &= U32
    return v - (1 << 32) if v & 0x80000000 else v


def _fail(err: int, msg: str):
    raise error_for(err, msg)


# ---------------------------------------------------------------------------
# State (S1)


class Source:
    """One entry of an ICS block (S1.3), plus irqd's counters."""

    __slots__ = (
        "deliveries",
        "exists",
        "lsi",
        "masked_pending",
        "number",
        "pq",
        "priority",
        "resend",
        "saved_priority",
        "server",
        "triggers",
    )

    def __init__(self, number: int):
        self.number = number
        self.server = 0
        self.priority = MASKED
        self.saved_priority = MASKED
        self.pq = 0
        self.lsi = 0
        self.exists = 0
        self.resend = 0
        self.masked_pending = 0
        self.triggers = 0
        self.deliveries = 0

    def fields(self) -> tuple:
        return (
            self.number,
            self.server,
            self.priority,
            self.saved_priority,
            self.pq,
            self.lsi,
            self.exists,
            self.resend,
            self.masked_pending,
        )

    def is_default(self) -> bool:
        return (
            self.server,
            self.priority,
            self.saved_priority,
            self.pq,
            self.lsi,
            self.exists,
            self.resend,
            self.masked_pending,
            self.triggers,
            self.deliveries,
        ) == (0, MASKED, MASKED, 0, 0, 0, 0, 0, 0, 0)


class Icp:
    """One ICP (S1.4): the word's fields, resend_map, irqd's counters."""

    __slots__ = (
        "cppr",
        "deliveries",
        "ipis",
        "mfrr",
        "need_resend",
        "out_ee",
        "pending_pri",
        "rejects",
        "resend_map",
        "resends",
        "rises",
        "server",
        "xisr",
    )

    def __init__(self, server: int):
        self.server = server
        self.cppr = 0
        self.mfrr = MASKED
        self.pending_pri = MASKED
        self.xisr = 0
        self.need_resend = 0
        self.out_ee = 0
        self.resend_map = 0  # bit i = ICS id i
        self.rises = 0
        self.deliveries = 0
        self.rejects = 0
        self.resends = 0
        self.ipis = 0

    def word(self) -> int:
        """GET_ONE_REG (S3.15)."""
        return self.cppr << 56 | self.xisr << 32 | self.mfrr << 24 | self.pending_pri << 16


# ---------------------------------------------------------------------------
# The device


class XicsModel(XicsDevice):
    """Single-threaded reference XICS with the XicsDevice interface."""

    def __init__(self):
        self.handle = next(_handles)
        self.ics: dict[int, list[Source]] = {}
        self.max_icsid = 0
        self.icps: dict[int, Icp] = {}
        self._generation = 0
        self._outputs: dict[int, int] = {}  # server -> dup'ed eventfd
        self._irqfds: dict[int, list[tuple[int, int | None]]] = {}  # gsi -> [(trigger, resample)]
        self._closed = False

    # -- helpers ---------------------------------------------------------------

    def _bump(self) -> None:
        self._generation += 1

    def _ics_of(self, irq: int) -> list[Source] | None:
        """kvmppc_xics_find_ics: ids above MAX_ICS_ID have no ICS."""
        icsid = irq >> ICS_SHIFT
        if icsid > MAX_ICS_ID:
            return None
        return self.ics.get(icsid)

    def _entry(self, irq: int) -> Source | None:
        ics = self._ics_of(irq)
        return None if ics is None else ics[irq & SRC_MASK]

    def _create_ics_block(self, icsid: int) -> None:
        if icsid not in self.ics:
            base = icsid << ICS_SHIFT
            self.ics[icsid] = [Source(base + i) for i in range(IRQ_PER_ICS)]
            self.max_icsid = max(self.max_icsid, icsid)

    # -- primitives (S2) ---------------------------------------------------------

    def _commit(self, icp: Icp) -> None:
        """The end of try_update (S2.1): out_ee := I1, count and signal a rise."""
        new = 1 if (icp.xisr != 0 and icp.pending_pri < icp.cppr) else 0
        if new and not icp.out_ee:
            icp.rises += 1
            fd = self._outputs.get(icp.server)
            if fd is not None:
                os.eventfd_write(fd, 1)
        icp.out_ee = new

    def _try_to_deliver(self, icp: Icp, irq: int, prio: int) -> tuple[bool, int]:
        """S2.2."""
        ok = icp.cppr > prio and icp.mfrr > prio and icp.pending_pri > prio
        if ok:
            reject = icp.xisr
            icp.xisr = irq
            icp.pending_pri = prio
            icp.deliveries += 1
            if reject:
                icp.rejects += 1
        else:
            reject = 0
            icp.need_resend = 1
        self._commit(icp)
        return ok, reject

    def _deliver(self, icp: Icp | None, irq: int, check_resend: bool) -> None:
        """icp_deliver_irq (S2.3)."""
        while True:
            ics = self._ics_of(irq)
            if ics is None:
                return
            s = ics[irq & SRC_MASK]  # exists is NOT checked
            if icp is None or s.server != icp.server:
                icp = self.icps.get(s.server)
                if icp is None:
                    return  # dropped: no resend, no masked_pending
            if check_resend and not s.resend:
                return
            s.resend = 0
            if s.priority == MASKED:
                s.masked_pending = 1
                return
            ok, reject = self._try_to_deliver(icp, irq, s.priority)
            if ok:
                s.deliveries += 1
                if reject != 0 and reject != XICS_IPI:
                    irq = reject  # redeliver the rejected one, same hint
                    check_resend = False
                    continue
            else:
                s.resend = 1
                icp.resend_map |= 1 << (irq >> ICS_SHIFT)
                # need_resend was set by the failed transaction; the race of
                # S1.6 cannot happen in one thread.
            return

    def _check_resend(self, icp: Icp) -> None:
        """Resend scan (S2.4)."""
        icp.resends += 1
        icsid = 0
        while icsid <= self.max_icsid:
            if icp.resend_map >> icsid & 1:
                icp.resend_map &= ~(1 << icsid)
                ics = self.ics.get(icsid)
                if ics is not None:
                    for s in ics:
                        if s.resend:
                            self._deliver(icp, s.number, True)
            icsid += 1

    def _write_xive(self, s: Source, server: int, priority: int, saved: int) -> bool:
        """S2.5; priority is the 32-bit argument."""
        s.server = server
        s.priority = priority & 0xFF
        s.saved_priority = saved & 0xFF
        if (s.masked_pending or s.resend) and priority != MASKED:
            s.masked_pending = 0
            s.resend = 0
            return True
        return False

    def _down_cppr(self, icp: Icp, new_cppr: int) -> None:
        """S2.6 (new_cppr is a u8)."""
        icp.cppr = new_cppr
        if icp.mfrr < new_cppr and icp.mfrr <= icp.pending_pri:
            if icp.xisr != XICS_IPI:
                icp.ipis += 1
            icp.pending_pri = icp.mfrr
            icp.xisr = XICS_IPI
        resend = icp.need_resend
        icp.need_resend = 0
        self._commit(icp)
        if resend:
            self._check_resend(icp)

    # -- configuration (S3.2, S3.3) ------------------------------------------------

    def create_ics(self, first: int, count: int, level: bool = False) -> None:
        if first < FIRST_IRQ or count == 0 or first + count > NR_IRQS:
            _fail(errno.EINVAL, f"CREATE_ICS range {first}+{count} outside {FIRST_IRQ}..{NR_IRQS - 1}")
        for irq in range(first, first + count):
            s = self._entry(irq)
            if s is not None and s.exists:
                _fail(errno.EEXIST, f"source {irq} already configured")
        for irq in range(first, first + count):
            self._create_ics_block(irq >> ICS_SHIFT)
            s = self._entry(irq)
            assert s is not None
            s.server = 0
            s.priority = MASKED
            s.saved_priority = MASKED
            s.pq = 0
            s.resend = 0
            s.masked_pending = 0
            s.lsi = 1 if level else 0
            s.exists = 1
        self._bump()

    def connect_vcpu(self, server: int) -> None:
        if server >= MAX_SERVERS:
            _fail(errno.EINVAL, f"server {server} >= max_servers {MAX_SERVERS}")
        if server in self.icps:
            _fail(errno.EEXIST, f"server {server} already connected")
        self.icps[server] = Icp(server)
        self._bump()

    # -- IRQ_LINE (S3.4) -----------------------------------------------------------

    def _irq_line(self, irq: int, level: int) -> None:
        if level not in LEVELS_ON and level not in LEVELS_OFF:
            _fail(errno.EINVAL, f"level {level:#x} is not a KVM level value")
        s = self._entry(irq)
        if s is None:
            _fail(errno.EINVAL, f"irq {irq} has no ICS")
        if not s.exists:
            _fail(errno.EINVAL, f"irq {irq} is not configured")
        on = level in LEVELS_ON
        self._bump()
        if on:
            s.triggers += 1
        if not s.lsi and not on:
            return
        if s.lsi:
            if on:
                if s.pq & PQ_P:
                    return
                new = PQ_P
            else:
                new = 0
        else:
            new = ((s.pq << 1) & 3) | PQ_P
        s.pq = new
        if new == PQ_P:
            self._deliver(None, irq, False)

    def irq_line(self, irq: int, level: int) -> None:
        self._irq_line(irq, level)

    def irq_line_batch(self, entries: Sequence[tuple[int, int]]) -> None:
        first = None
        failed = 0
        for i, (irq, level) in enumerate(entries):
            try:
                self._irq_line(irq, level)
            except OSError as e:
                failed += 1
                if first is None:
                    first = (i, e)
        if first is not None:
            i, e = first
            err = error_for(e.errno, f"{failed} of {len(entries)} entries failed; first: {e.strerror}")
            err.index = i  # type: ignore[attr-defined]
            err.failed = failed  # type: ignore[attr-defined]
            raise err

    # -- source words (S3.13, S3.14) ---------------------------------------------------

    def _source_word(self, s: Source) -> int:
        val = s.server
        if s.priority == MASKED:
            val |= SRC_MASKED | s.saved_priority << PRIO_SHIFT
        else:
            val |= s.priority << PRIO_SHIFT
        if s.lsi:
            val |= SRC_LEVEL_SENSITIVE
            if s.pq & PQ_P:
                val |= SRC_PENDING
        elif s.masked_pending or s.resend:
            val |= SRC_PENDING
        if s.pq & PQ_P:
            val |= SRC_PRESENTED
        if s.pq & PQ_Q:
            val |= SRC_QUEUED
        return val

    def get_source(self, irq: int) -> int:
        s = self._entry(irq & U32)  # looked up with a u32
        if s is None:
            _fail(errno.ENOENT, f"irq {irq & U32} has no ICS")
        if not s.exists:
            _fail(errno.ENOENT, f"irq {irq & U32} is not configured")
        return self._source_word(s)

    def set_source(self, irq: int, word: int) -> None:
        if irq < FIRST_IRQ or irq >= NR_IRQS:
            _fail(errno.ENOENT, f"irq {irq} outside {FIRST_IRQ}..{NR_IRQS - 1}")
        server = word & U32
        prio = (word >> PRIO_SHIFT) & 0xFF
        if prio != MASKED and server not in self.icps:
            _fail(errno.EINVAL, f"server {server} has no ICP")
        self._create_ics_block(irq >> ICS_SHIFT)  # irqd: only when the SET succeeds
        s = self._entry(irq)
        assert s is not None
        s.server = server
        s.saved_priority = prio
        s.priority = MASKED if word & SRC_MASKED else prio
        s.resend = 0
        s.masked_pending = 0
        s.lsi = 1 if word & SRC_LEVEL_SENSITIVE else 0
        s.pq = (PQ_P if word & (SRC_PRESENTED | SRC_PENDING) else 0) | (PQ_Q if word & SRC_QUEUED else 0)
        s.exists = 1
        self._bump()
        if word & SRC_PENDING:
            self._deliver(None, irq, False)

    def has_source(self, irq: int) -> bool:
        return FIRST_IRQ <= irq < NR_IRQS

    # -- ICP words (S3.15) -----------------------------------------------------------

    def get_icp(self, server: int) -> int:
        icp = self.icps.get(server)
        if icp is None:
            _fail(errno.ENOENT, f"server {server} has no ICP")
        return icp.word()

    def set_icp(self, server: int, word: int) -> None:
        icp = self.icps.get(server)
        if icp is None:
            _fail(errno.ENOENT, f"server {server} has no ICP")
        cppr = (word >> 56) & 0xFF
        xisr = (word >> 32) & 0xFFFFFF
        mfrr = (word >> 24) & 0xFF
        ppri = (word >> 16) & 0xFF
        if xisr == 0:
            if ppri != MASKED:
                _fail(errno.EINVAL, "no XISR but a pending priority")
        elif xisr == XICS_IPI:
            if ppri != mfrr or ppri >= cppr:
                _fail(errno.EINVAL, "IPI pending priority must equal MFRR and be below CPPR")
        else:
            if ppri >= mfrr or ppri >= cppr:
                _fail(errno.EINVAL, "pending priority must be below MFRR and CPPR")
            if self._ics_of(xisr) is None:
                _fail(errno.EINVAL, f"XISR {xisr:#x} has no ICS")
        old_mfrr = icp.mfrr
        icp.cppr, icp.xisr, icp.mfrr, icp.pending_pri = cppr, xisr, mfrr, ppri
        if mfrr <= old_mfrr:
            resend = False
        else:
            resend = bool(icp.need_resend)
            icp.need_resend = 0
        self._commit(icp)
        self._bump()
        if resend:
            self._check_resend(icp)

    # -- hcalls (S3.5 - S3.10) -------------------------------------------------------

    def _find_target(self, icp: Icp, server: int) -> Icp | None:
        if server == icp.server:  # 64-bit compare
            return icp
        return self.icps.get(server & U32)

    def hcall(self, server: int, nr: int, *args: int) -> tuple[int, int, int, int]:
        if len(args) > 4:
            raise ValueError("at most 4 hcall arguments")
        if nr not in HCALLS:
            _fail(errno.EOPNOTSUPP, f"hcall {nr:#x} not implemented")
        icp = self.icps.get(server)
        if icp is None:
            _fail(errno.ENOENT, f"server {server} has no ICP")
        r = [a & U64 for a in args] + [0] * (4 - len(args))
        self._bump()
        if nr in (H_XIRR, H_XIRR_X):
            # lower the output: not part of the word
            xirr = icp.cppr << 24 | icp.xisr
            if icp.xisr != 0:
                icp.cppr = icp.pending_pri
                icp.pending_pri = MASKED
                icp.xisr = 0
                self._commit(icp)
            if nr == H_XIRR_X:
                return H_SUCCESS, xirr, time.monotonic_ns(), 0
            return H_SUCCESS, xirr, 0, 0
        if nr == H_IPOLL:
            target = self._find_target(icp, r[0])
            if target is None:
                return H_PARAMETER, 0, 0, 0
            return H_SUCCESS, target.cppr << 24 | target.xisr, target.mfrr, 0
        if nr == H_CPPR:
            return self._h_cppr(icp, r[0]), 0, 0, 0
        if nr == H_EOI:
            return self._h_eoi(icp, r[0]), 0, 0, 0
        assert nr == H_IPI
        return self._h_ipi(icp, r[0], r[1]), 0, 0, 0

    def _h_cppr(self, icp: Icp, cppr: int) -> int:
        """S3.6; cppr is the 64-bit argument."""
        if cppr > icp.cppr:
            self._down_cppr(icp, cppr & 0xFF)
        elif cppr == icp.cppr:
            return H_SUCCESS
        # Up_CPPR (the kernel falls through after Down_CPPR)
        icp.cppr = cppr & 0xFF
        reject = 0
        if cppr <= icp.pending_pri:
            reject = icp.xisr
            icp.xisr = 0
            icp.pending_pri = MASKED
            if reject:
                icp.rejects += 1
        self._commit(icp)
        if reject != 0 and reject != XICS_IPI:
            self._deliver(icp, reject, False)
        return H_SUCCESS

    def _h_eoi(self, icp: Icp, xirr: int) -> int:
        """S3.7."""
        self._down_cppr(icp, (xirr >> 24) & 0xFF)
        irq = xirr & 0xFFFFFF
        if irq == XICS_IPI:
            return H_SUCCESS
        s = self._entry(irq)
        if s is None:
            return H_PARAMETER
        if not s.lsi:
            s.pq = s.pq >> 1
        if s.pq & PQ_P:
            self._deliver(icp, irq, False)
        self._notify_ack(irq)
        return H_SUCCESS

    def _h_ipi(self, icp: Icp, server: int, mfrr: int) -> int:
        """S3.8; server and mfrr are 64-bit."""
        target = self._find_target(icp, server)
        if target is None:
            return H_PARAMETER
        old_mfrr = target.mfrr
        target.mfrr = mfrr & 0xFF
        reject = 0
        resend = False
        if mfrr < target.cppr and mfrr <= target.pending_pri:
            reject = target.xisr
            target.pending_pri = mfrr & 0xFF
            target.xisr = XICS_IPI
            target.ipis += 1
            if reject:
                target.rejects += 1
        if mfrr > old_mfrr:
            resend = bool(target.need_resend)
            target.need_resend = 0
        self._commit(target)
        if reject != 0 and reject != XICS_IPI:
            self._deliver(target, reject, False)
        if resend:
            self._check_resend(target)
        return H_SUCCESS

    # -- RTAS (S3.11) ------------------------------------------------------------------

    def rtas(self, token: int, args: Sequence[int], nret: int, nargs: int | None = None) -> list[int]:
        if nargs is None:
            nargs = len(args)
        if len(args) > RTAS_BUF_WORDS:
            raise ValueError("at most 12 RTAS words")
        buf = [a & U32 for a in args] + [0] * (RTAS_BUF_WORDS - len(args))
        if token not in RTAS_COUNTS:
            _fail(errno.EINVAL, f"unknown RTAS token {token}")
        if nargs + nret > RTAS_BUF_WORDS or nargs == RTAS_BUF_WORDS:
            _fail(errno.EINVAL, f"RTAS nargs {nargs} + nret {nret} do not fit 12 words")
        self._bump()
        rets = self._rtas(token, nargs, nret, buf)
        for i, v in enumerate(rets):
            buf[nargs + i] = v & U32
        return [_s32(v) for v in buf[nargs : nargs + max(nret, 1)]]

    def _rtas(self, token: int, nargs: int, nret: int, buf: list[int]) -> list[int]:
        """Returns the words to write at buf[nargs...] (status first)."""
        if (nargs, nret) != RTAS_COUNTS[token]:
            return [RTAS_PARAM_ERROR]
        irq = buf[0]
        s = self._entry(irq)
        if s is None:
            return [RTAS_PARAM_ERROR]
        if token == RTAS_SET_XIVE:
            server, priority = buf[1], buf[2]
            icp = self.icps.get(server)
            if icp is None:
                return [RTAS_PARAM_ERROR]
            if self._write_xive(s, server, priority, priority):
                self._deliver(icp, irq, False)
            return [0]
        if token == RTAS_GET_XIVE:
            return [0, s.server, s.priority]
        if token == RTAS_INT_OFF:
            self._write_xive(s, s.server, MASKED, s.priority)
            return [0]
        assert token == RTAS_INT_ON
        icp = self.icps.get(s.server)
        if icp is None:
            return [RTAS_PARAM_ERROR]
        if self._write_xive(s, s.server, s.saved_priority, s.saved_priority):
            self._deliver(icp, irq, False)
        return [0]

    # -- eventfds (S3.12, S3.16) ---------------------------------------------------------

    def _notify_ack(self, irq: int) -> None:
        """The ack notification of ics_eoi: with a RESAMPLE irqfd, level 0
        (kvm_set_irq(gsi, 0): LSI P := 0, Q := 0; MSI no-op; an unconfigured
        entry fails and is ignored), then signal the resample eventfds."""
        fds = [r for _, r in self._irqfds.get(irq, []) if r is not None]
        if not fds:
            return
        s = self._entry(irq)
        if s is not None and s.exists and s.lsi:
            s.pq = 0
        for fd in fds:
            os.eventfd_write(fd, 1)

    def irqfd(self, gsi: int, fd: int, resample_fd: int | None = None) -> None:
        if gsi < FIRST_IRQ or gsi >= NR_IRQS:
            _fail(errno.EINVAL, f"gsi {gsi} outside {FIRST_IRQ}..{NR_IRQS - 1}")
        trig = os.dup(fd)
        res = os.dup(resample_fd) if resample_fd is not None else None
        self._irqfds.setdefault(gsi, []).append((trig, res))
        self._bump()

    def irqfd_deassign(self, gsi: int) -> None:
        for trig, res in self._irqfds.pop(gsi, []):
            os.close(trig)
            if res is not None:
                os.close(res)
        self._bump()

    def pump(self) -> int:
        """Read every trigger eventfd that is readable and fire its gsi
        (level 1: an MSI edge, an LSI assert); errors are dropped.  Returns
        how many fired."""
        fired = 0
        for gsi, regs in list(self._irqfds.items()):
            for trig, _ in regs:
                try:
                    n = int.from_bytes(os.read(trig, 8), "little")
                except BlockingIOError:
                    continue
                if n:
                    fired += 1
                    try:
                        self._irq_line(gsi, 1)
                    except OSError:
                        pass
        return fired

    def set_output(self, server: int, fd: int) -> None:
        icp = self.icps.get(server)
        if icp is None:
            _fail(errno.ENOENT, f"server {server} has no ICP")
        old = self._outputs.pop(server, None)
        if old is not None:
            os.close(old)
        self._outputs[server] = os.dup(fd)
        if icp.out_ee:  # wake a vCPU whose output is already asserted (abi.md)
            os.eventfd_write(self._outputs[server], 1)
        self._bump()

    def clear_output(self, server: int) -> None:
        if server not in self.icps:
            _fail(errno.ENOENT, f"server {server} has no ICP")
        old = self._outputs.pop(server, None)
        if old is not None:
            os.close(old)
        self._bump()

    # -- migration, observation -----------------------------------------------------------

    def dump(self) -> DeviceState:
        st = DeviceState()
        for icsid in sorted(self.ics):
            for s in self.ics[icsid]:
                if s.exists:
                    st.sources[s.number] = self._source_word(s)
        for server in sorted(self.icps):
            st.icps[server] = self.icps[server].word()
        return st

    def _configured(self) -> int:
        return sum(s.exists for ics in self.ics.values() for s in ics)

    def restore(self, state: DeviceState) -> None:
        """All-or-nothing restore in S3.17 order into this (empty) device."""
        if self._configured() or self.icps:
            _fail(errno.EEXIST, "restore target has configured sources or ICPs")
        staged = copy.copy(self)
        staged.ics = {}
        staged.max_icsid = 0
        staged.icps = {}
        staged._outputs = {}  # no ICP, so no output registration can exist
        staged._closed = True  # the copy shares the irqfd fds: never close them
        try:
            for server in sorted(state.icps):
                staged.connect_vcpu(server)
            for irq in sorted(state.sources):
                staged.set_source(irq, state.sources[irq])
            for server in sorted(state.icps):
                staged.set_icp(server, state.icps[server])
        except OSError as e:
            raise error_for(e.errno, f"restore failed: {e.strerror}") from None
        self.ics, self.max_icsid, self.icps = staged.ics, staged.max_icsid, staged.icps
        self._bump()

    def stats(self) -> DeviceStats:
        st = DeviceStats()
        for icsid in sorted(self.ics):
            for s in self.ics[icsid]:
                if s.exists:
                    st.sources[s.number] = (s.triggers & U32, s.deliveries & U32)
        for server in sorted(self.icps):
            i = self.icps[server]
            st.servers[server] = (i.deliveries & U32, i.rejects & U32, i.resends & U32, i.ipis & U32)
        return st

    def info(self) -> DeviceInfo:
        return DeviceInfo(
            handle=self.handle,
            type=lib.IRQD_KVM_DEV_TYPE_XICS,
            owner_uid=os.getuid(),
            flags=0,
            nr_ics=len(self.ics),
            nr_sources=self._configured(),
            nr_servers=len(self.icps),
            holders=1,
            generation=self._generation,
        )

    @property
    def generation(self) -> int:
        return self._generation

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for fd in self._outputs.values():
            os.close(fd)
        self._outputs = {}
        for gsi in list(self._irqfds):
            for trig, res in self._irqfds.pop(gsi):
                os.close(trig)
                if res is not None:
                    os.close(res)

    def __del__(self):
        with contextlib.suppress(OSError):
            self.close()

    # -- full internal state, for differential tests ---------------------------------------

    def output_asserted(self, server: int) -> bool:
        icp = self.icps.get(server)
        if icp is None:
            _fail(errno.ENOENT, f"server {server} has no ICP")
        return bool(icp.out_ee)

    def output_rises(self, server: int) -> int:
        icp = self.icps.get(server)
        if icp is None:
            _fail(errno.ENOENT, f"server {server} has no ICP")
        return icp.rises

    def resample_flag(self, irq: int) -> int:
        return 1 if any(r is not None for _, r in self._irqfds.get(irq, [])) else 0

    def raw_sources(self) -> list[tuple]:
        """Every entry of every existing ICS, ascending, as the fields of
        ``struct irqd_xics_raw_source``: (irq, server, priority,
        saved_priority, pq, lsi, exists, resend, masked_pending, resample,
        triggers, deliveries)."""
        out = []
        for icsid in sorted(self.ics):
            for s in self.ics[icsid]:
                out.append(s.fields() + (self.resample_flag(s.number), s.triggers & U32, s.deliveries & U32))
        return out

    def raw_icps(self) -> list[dict]:
        """Every ICP, ascending, as the fields of ``struct irqd_xics_raw_icp``."""
        out = []
        for server in sorted(self.icps):
            i = self.icps[server]
            out.append(
                {
                    "server": i.server,
                    "cppr": i.cppr,
                    "mfrr": i.mfrr,
                    "pending_pri": i.pending_pri,
                    "need_resend": i.need_resend,
                    "xisr": i.xisr,
                    "out_ee": i.out_ee,
                    "resend_map": [(i.resend_map >> (64 * k)) & U64 for k in range(16)],
                    "rises": i.rises,
                    "deliveries": i.deliveries & U32,
                    "rejects": i.rejects & U32,
                    "resends": i.resends & U32,
                    "ipis": i.ipis & U32,
                }
            )
        return out
