"""The XICS core in this process: :class:`Xics`, one C core device via cffi.

This backend offers exactly what the daemon offers (:class:`irqd.backend.XicsDevice`),
including the eventfd side of KVM: irqfds (trigger and RESAMPLE) and the
vCPU output eventfd of SET_OUTPUT.  The C core never does I/O; this wrapper
does it after each core call that may change state:

* **output**: the core counts 0 -> 1 transitions of each ICP's output
  (``rises``).  For every new rise of a server since the last look, 1 is
  written to that server's output eventfd (one write of the total count).
* **resample**: the core records the EOIs of irqs flagged for resample (and
  has already reset their line); the wrapper drains them and writes 1 to
  every resample eventfd of each acked irq.
* **triggers**: reading trigger eventfds needs a loop.  :meth:`Xics.pump`
  reads every readable one once and fires its gsi (level 1, as KVM's
  ``irqfd_wakeup`` does); :meth:`Xics.start` runs a helper thread that does
  it whenever one becomes readable.

Thread safety: every method may be called from several threads at once (the
core is thread safe; cffi releases the GIL).  Only the Python-side
bookkeeping (registered fds, what was last signalled) takes a lock.
:meth:`Xics.close` must not race with other calls on the same object.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import select
import threading
from collections.abc import Sequence

from irqd._core import ffi, lib
from irqd.backend import DeviceInfo, DeviceState, DeviceStats, XicsDevice
from irqd.errors import IrqdError, error_for

__all__ = ["Xics"]

_U32 = 0xFFFFFFFF
_U64 = 0xFFFFFFFFFFFFFFFF
_CHUNK = 4096
_handles = itertools.count(1)  # process-unique handles
_H_IPOLL, _H_XIRR, _H_EOI = lib.IRQD_H_IPOLL, lib.IRQD_H_XIRR, lib.IRQD_H_EOI
_irq_line, _hcall = lib.irqd_xics_irq_line, lib.irqd_xics_hcall


def _uint(value: int, bits: int, name: str) -> int:
    """Range-check an argument for its C field (what cannot be encoded is a
    ValueError, as on the client side; everything else is the core's call)."""
    if not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < 0 or value >> bits:
        raise ValueError(f"{name} {value:#x} does not fit in {bits} bits")
    return value


def _word32(value: int, name: str) -> int:
    """An RTAS word: unsigned, or a negative number as its two's complement."""
    if not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if -(1 << 31) <= value < 0:
        return value & _U32
    return _uint(value, 32, name)


def _s32(v: int) -> int:
    return v - (1 << 32) if v & 0x80000000 else v


def _s64(v: int) -> int:
    return v - (1 << 64) if v & (1 << 63) else v


def _is_eventfd(fd: int) -> bool:
    try:
        return os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:[eventfd]"
    except OSError:
        return False


def _signal(fd: int, count: int = 1) -> None:
    try:
        os.write(fd, count.to_bytes(8, "little"))
    except OSError:
        pass  # a full / closed eventfd must not break the caller's operation


class Xics(XicsDevice):
    """One XICS device emulated in this process (see the module docstring)."""

    def __init__(self) -> None:
        x = lib.irqd_xics_new()
        if x == ffi.NULL:
            raise error_for(errno.ENOMEM, "cannot allocate a XICS device")
        self._x = x
        self._retired: list = []  # devices replaced by restore(), freed at close()
        self.handle = next(_handles)
        self._lock = threading.RLock()  # Python-side bookkeeping only
        self._tls = threading.local()
        self._pump_lock = threading.Lock()  # serialises reads of trigger eventfds
        self._outputs: dict[int, int] = {}  # server -> our dup of its eventfd
        self._signalled: dict[int, int] = {}  # server -> rises already written
        self._out_seq = 0
        self._ack_seq = 0
        self._irqfds: dict[int, list[tuple[int, int | None]]] = {}  # gsi -> [(fd, resample fd)]
        self._resample_fds: dict[int, list[int]] = {}  # gsi -> resample fds
        #: trigger eventfd events whose gsi could not be fired (dropped, as KVM does)
        self.dropped_triggers = 0
        self._thread: threading.Thread | None = None
        self._stop = False
        self._wake_r, self._wake_w = -1, -1

    # -- plumbing ----------------------------------------------------------------
    def _dev(self):
        x = self._x
        if x is None:
            raise error_for(errno.EBADF, "device is closed")
        return x

    def _after(self) -> None:
        """Do the I/O the core asked for: output rises and resample acks."""
        x = self._x
        if x is None:
            return
        if self._outputs:
            seq = lib.irqd_xics_output_seq(x)
            if seq != self._out_seq:
                self._signal_outputs(x, seq)
        if self._resample_fds:
            seq = lib.irqd_xics_ack_seq(x)
            if seq != self._ack_seq:
                self._signal_acks(x, seq)

    def _signal_outputs(self, x, seq: int) -> None:
        rises = ffi.new("uint64_t *")
        with self._lock:
            # record seq before reading rises: a rise after this read moves
            # seq again, so whoever causes it looks again (nothing missed)
            self._out_seq = seq
            for server, fd in self._outputs.items():
                if lib.irqd_xics_output_rises(x, server, rises) < 0:
                    continue
                new = rises[0] - self._signalled.get(server, 0)
                if new > 0:
                    self._signalled[server] = rises[0]
                    _signal(fd, new)

    def _signal_acks(self, x, seq: int) -> None:
        buf = ffi.new("uint32_t[]", 256)
        with self._lock:
            self._ack_seq = seq
            while True:
                n = lib.irqd_xics_drain_acks(x, buf, 256)
                for i in range(n):
                    for fd in self._resample_fds.get(buf[i], ()):
                        _signal(fd)
                if n < 256:
                    break

    def _fail(self, ret: int, message: str) -> IrqdError:
        return error_for(-ret, message)

    # -- configuration -------------------------------------------------------------
    def create_ics(self, first: int, count: int, level: bool = False) -> None:
        first = _uint(first, 32, "first")
        count = _uint(count, 32, "count")
        ret = lib.irqd_xics_create_ics(self._dev(), first, count, lib.IRQD_ICS_LEVEL if level else 0)
        if ret < 0:
            last = first + count - 1
            if ret == -errno.EEXIST:
                msg = f"a source in {first}..{last} is already configured"
            elif ret == -errno.EINVAL:
                msg = (
                    f"invalid source range first={first} count={count} "
                    f"(need {lib.IRQD_KVMPPC_XICS_FIRST_IRQ} <= first, count > 0, "
                    f"first + count <= {lib.IRQD_KVMPPC_XICS_NR_IRQS})"
                )
            else:
                msg = f"cannot create sources {first}..{last}"
            raise self._fail(ret, msg)

    def connect_vcpu(self, server: int) -> None:
        server = _uint(server, 32, "server")
        ret = lib.irqd_xics_connect_vcpu(self._dev(), server)
        if ret < 0:
            if ret == -errno.EINVAL:
                msg = f"server {server} >= max_servers {lib.IRQD_MAX_SERVERS}"
            elif ret == -errno.EEXIST:
                msg = f"server {server} is already connected"
            else:
                msg = f"cannot connect server {server}"
            raise self._fail(ret, msg)

    # -- shooting interrupts -------------------------------------------------------
    def irq_line(self, irq: int, level: int) -> None:
        # hot path: cffi range-checks the arguments (OverflowError -> ValueError)
        x = self._x
        if x is None:
            self._dev()
        try:
            ret = _irq_line(x, irq, level)
        except OverflowError:
            _uint(irq, 32, "irq")
            _uint(level, 32, "level")
            raise
        if ret < 0:
            raise self._fail(ret, self._line_msg(irq, level))
        if self._outputs or self._resample_fds:
            self._after()

    def edge(self, irq: int) -> None:
        self.irq_line(irq, 0xFFFFFFFF)

    @staticmethod
    def _line_msg(irq: int, level: int) -> str:
        if level not in (0, 1, 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD):
            return f"level {level:#x} is not a KVM level (0, 1, SET, UNSET, SET_LEVEL)"
        return f"irq {irq} is not configured"

    def irq_line_batch(self, entries: Sequence[tuple[int, int]]) -> None:
        n = len(entries)
        arr = ffi.new("struct irqd_irq_batch_entry[]", max(n, 1))
        for i, (irq, level) in enumerate(entries):
            arr[i].irq = _uint(irq, 32, f"entry {i} irq")
            arr[i].level = _uint(level, 32, f"entry {i} level")
        nfailed = ffi.new("uint32_t *")
        first = ffi.new("uint32_t *")
        ret = lib.irqd_xics_irq_batch(self._dev(), arr, n, nfailed, first)
        self._after()
        if ret < 0:
            i = first[0]
            irq, level = entries[i]
            err = self._fail(ret, f"entry {i}: {self._line_msg(irq, level)} ({nfailed[0]} of {n} failed)")
            err.index = i
            err.failed = nfailed[0]
            raise err

    # -- state words ---------------------------------------------------------------
    def get_source(self, irq: int) -> int:
        attr = _uint(irq, 64, "irq")
        val = ffi.new("uint64_t *")
        ret = lib.irqd_xics_get_source(self._dev(), attr, val)
        if ret < 0:
            raise self._fail(ret, f"irq {attr & _U32} is not configured")
        return val[0]

    def set_source(self, irq: int, word: int) -> None:
        attr = _uint(irq, 64, "irq")
        word = _uint(word, 64, "word")
        ret = lib.irqd_xics_set_source(self._dev(), attr, word)
        if ret < 0:
            if ret == -errno.ENOENT:
                msg = f"irq {attr} is outside {lib.IRQD_KVMPPC_XICS_FIRST_IRQ}..{lib.IRQD_KVMPPC_XICS_NR_IRQS - 1}"
            elif ret == -errno.EINVAL:
                msg = f"irq {attr}: server {word & _U32} has no ICP (priority not 0xFF)"
            else:
                msg = f"irq {attr}: cannot set source"
            raise self._fail(ret, msg)
        self._after()

    def has_source(self, irq: int) -> bool:
        attr = _uint(irq, 64, "irq")
        return lib.irqd_xics_has_source(self._dev(), attr) == 0

    def get_icp(self, server: int) -> int:
        server = _uint(server, 32, "server")
        val = ffi.new("uint64_t *")
        ret = lib.irqd_xics_get_icp(self._dev(), server, val)
        if ret < 0:
            raise self._fail(ret, f"server {server} has no ICP")
        return val[0]

    def set_icp(self, server: int, word: int) -> None:
        server = _uint(server, 32, "server")
        word = _uint(word, 64, "word")
        ret = lib.irqd_xics_set_icp(self._dev(), server, word)
        if ret < 0:
            if ret == -errno.ENOENT:
                msg = f"server {server} has no ICP"
            else:
                msg = f"server {server}: inconsistent ICP state word {word:#018x}"
            raise self._fail(ret, msg)
        self._after()

    # -- what the guest does ---------------------------------------------------------
    def _reg(self):
        """This thread's 4-register buffer (ffi.new costs more than the call)."""
        try:
            return self._tls.reg
        except AttributeError:
            reg = self._tls.reg = ffi.new("uint64_t[4]")
            return reg

    def hcall(self, server: int, nr: int, *args: int) -> tuple[int, int, int, int]:
        x = self._x
        if x is None:
            self._dev()
        n = len(args)
        if n > 4:
            raise ValueError("an hcall takes at most 4 arguments (r4-r7)")
        reg = self._reg()
        try:
            # the core reads r4 and r5 only (H_EOI, H_CPPR, H_IPI, H_IPOLL)
            reg[0] = args[0] if n else 0
            reg[1] = args[1] if n > 1 else 0
            if n > 2:
                reg[2] = args[2]
                if n > 3:
                    reg[3] = args[3]
            ret = _hcall(x, server, nr, reg)
        except OverflowError:
            _uint(server, 32, "server")
            _uint(nr, 64, "hcall number")
            for i, a in enumerate(args):
                _uint(a, 64, f"r{4 + i}")
            raise
        if ret < 0:
            if ret == -errno.EOPNOTSUPP:
                msg = f"hcall {nr:#x} is not implemented"
            else:
                msg = f"server {server} has no ICP"
            raise self._fail(ret, msg)
        r0, r1, r2, r3 = reg
        if nr != _H_IPOLL and (self._outputs or self._resample_fds):
            self._after()
        return (r0 - (1 << 64) if r0 >> 63 else r0), r1, r2, r3

    def h_xirr(self, server: int) -> tuple[int, int]:
        st, r4, _, _ = self.hcall(server, _H_XIRR)
        return st, r4

    def h_eoi(self, server: int, xirr: int) -> int:
        return self.hcall(server, _H_EOI, xirr)[0]

    def rtas(self, token: int, args: Sequence[int], nret: int, nargs: int | None = None) -> list[int]:
        token = _uint(token, 32, "token")
        nret = _uint(nret, 32, "nret")
        nargs = _uint(len(args) if nargs is None else nargs, 32, "nargs")
        words = [_word32(a, f"argument {i}") for i, a in enumerate(args)]
        if len(words) > lib.IRQD_RTAS_BUF_WORDS:
            raise error_for(errno.EINVAL, f"RTAS buffer holds {lib.IRQD_RTAS_BUF_WORDS} words")
        buf = ffi.new("uint32_t[12]", words)
        ret = lib.irqd_xics_rtas(self._dev(), token, nargs, nret, buf)
        if ret < 0:
            if token not in (1, 2, 3, 4):
                msg = f"unknown RTAS token {token}"
            else:
                msg = f"RTAS buffer too large: nargs {nargs} + nret {nret} (max 12, nargs < 12)"
            raise self._fail(ret, msg)
        if token != lib.IRQD_RTAS_GET_XIVE:
            self._after()
        return [_s32(buf[nargs + i]) for i in range(max(nret, 1))]

    # -- eventfds ----------------------------------------------------------------------
    def irqfd(self, gsi: int, fd: int, resample_fd: int | None = None) -> None:
        gsi = _uint(gsi, 32, "gsi")
        x = self._dev()
        if not (lib.IRQD_KVMPPC_XICS_FIRST_IRQ <= gsi < lib.IRQD_KVMPPC_XICS_NR_IRQS):
            raise error_for(errno.EINVAL, f"gsi {gsi} is not a valid interrupt number")
        for what, f in (("trigger", fd), ("resample", resample_fd)):
            if f is not None and not _is_eventfd(f):
                raise error_for(errno.EINVAL, f"{what} fd {f} is not an eventfd")
        with self._lock:
            if resample_fd is not None:
                ret = lib.irqd_xics_set_resample(x, gsi, 1)
                if ret < 0:
                    raise self._fail(ret, f"gsi {gsi}: cannot flag for resample")
            tfd = os.dup(fd)
            rfd = os.dup(resample_fd) if resample_fd is not None else None
            self._irqfds.setdefault(gsi, []).append((tfd, rfd))
            if rfd is not None:
                self._resample_fds.setdefault(gsi, []).append(rfd)
        self._wake()

    def irqfd_deassign(self, gsi: int) -> None:
        gsi = _uint(gsi, 32, "gsi")
        x = self._dev()
        with self._pump_lock, self._lock:
            for tfd, rfd in self._irqfds.pop(gsi, []):
                os.close(tfd)
                if rfd is not None:
                    os.close(rfd)
            if self._resample_fds.pop(gsi, None) is not None:
                lib.irqd_xics_set_resample(x, gsi, 0)
        self._wake()

    def set_output(self, server: int, fd: int) -> None:
        server = _uint(server, 32, "server")
        x = self._dev()
        rises = ffi.new("uint64_t *")
        if lib.irqd_xics_output_rises(x, server, rises) < 0:
            raise error_for(errno.ENOENT, f"server {server} has no ICP")
        if not _is_eventfd(fd):
            raise error_for(errno.EINVAL, f"fd {fd} is not an eventfd")
        mine = os.dup(fd)
        with self._lock:
            old = self._outputs.get(server)
            if old is not None:
                os.close(old)
            self._outputs[server] = mine
            lib.irqd_xics_output_rises(x, server, rises)
            self._signalled[server] = rises[0]
            # a vCPU whose output is already asserted must be woken (abi.md)
            if lib.irqd_xics_output_asserted(x, server) == 1:
                _signal(mine)

    def clear_output(self, server: int) -> None:
        server = _uint(server, 32, "server")
        x = self._dev()
        if lib.irqd_xics_output_asserted(x, server) < 0:
            raise error_for(errno.ENOENT, f"server {server} has no ICP")
        with self._lock:
            fd = self._outputs.pop(server, None)
            self._signalled.pop(server, None)
            if fd is not None:
                os.close(fd)

    def pump(self) -> int:
        """Read every readable trigger eventfd once and fire its gsi (level
        1; several counts are one trigger).  Triggers of a gsi that cannot be
        fired (not configured) are dropped and counted in
        ``dropped_triggers``.  Returns how many fds were readable."""
        x = self._dev()
        fired = 0
        with self._pump_lock:
            with self._lock:
                fds = [(tfd, gsi) for gsi, lst in self._irqfds.items() for tfd, _ in lst]
            if not fds:
                return 0
            poller = select.poll()
            by_fd = dict(fds)
            for tfd in by_fd:
                poller.register(tfd, select.POLLIN)
            for tfd, _ in poller.poll(0):
                try:
                    os.read(tfd, 8)
                except OSError:
                    continue
                fired += 1
                if lib.irqd_xics_irq_line(x, by_fd[tfd], 1) < 0:
                    self.dropped_triggers += 1
        if fired:
            self._after()
        return fired

    def _wake(self) -> None:
        if self._wake_w >= 0:
            try:
                os.write(self._wake_w, b"\0")
            except OSError:
                pass

    def start(self) -> None:
        """Start a helper thread that pumps trigger eventfds as they become
        readable.  Idempotent."""
        self._dev()
        with self._lock:
            if self._thread is not None:
                return
            self._stop = False
            self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            self._thread = threading.Thread(target=self._run, name=f"irqd-inproc-{self.handle}", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the helper thread (idempotent)."""
        with self._lock:
            t = self._thread
            self._thread = None
            self._stop = True
        if t is None:
            return
        self._wake()
        t.join()
        os.close(self._wake_r)
        os.close(self._wake_w)
        self._wake_r, self._wake_w = -1, -1

    def _run(self) -> None:
        wake_r = self._wake_r
        while not self._stop:
            poller = select.poll()
            poller.register(wake_r, select.POLLIN)
            with self._lock:
                for lst in self._irqfds.values():
                    for tfd, _ in lst:
                        poller.register(tfd, select.POLLIN)
            try:
                ready = poller.poll(1000)
            except OSError:
                continue
            if any(fd == wake_r for fd, _ in ready):
                try:
                    while os.read(wake_r, 64):
                        pass
                except OSError:
                    pass
            if self._stop or self._x is None:
                break
            try:
                self.pump()
            except IrqdError:
                break

    # -- migration, observation -----------------------------------------------------------
    def _dump_once(self, x) -> DeviceState:
        st = DeviceState()
        buf = ffi.new("struct irqd_source_state[]", _CHUNK)
        frm = 0
        while True:
            n = lib.irqd_xics_dump_sources(x, frm, buf, _CHUNK)
            for i in range(n):
                st.sources[buf[i].irq] = buf[i].state
            if n < _CHUNK:
                break
            frm = buf[n - 1].irq + 1
        ibuf = ffi.new("struct irqd_icp_state[]", 256)
        frm = 0
        while True:
            n = lib.irqd_xics_dump_icps(x, frm, ibuf, 256)
            for i in range(n):
                st.icps[ibuf[i].server] = ibuf[i].state
            if n < 256:
                break
            frm = ibuf[n - 1].server + 1
        return st

    def dump(self) -> DeviceState:
        x = self._dev()
        for _ in range(1000):
            gen = lib.irqd_xics_generation(x)
            st = self._dump_once(x)
            if lib.irqd_xics_generation(x) == gen:
                return st
        return st  # still changing: the last attempt (each word is consistent)

    def restore(self, state: DeviceState) -> None:
        """All-or-nothing restore (xics-semantics.md S3.17 order) into a fresh
        core device that replaces this one only if every step succeeded."""
        x = self._dev()
        sources = sorted(state.sources.items())
        icps = sorted(state.icps.items())
        for irq, word in sources:
            _uint(irq, 64, "irq")
            _uint(word, 64, f"irq {irq} word")
        for server, word in icps:
            _uint(server, 32, "server")
            _uint(word, 64, f"server {server} word")
        with self._lock:
            if lib.irqd_xics_nr_sources(x) or lib.irqd_xics_nr_servers(x):
                raise error_for(errno.EEXIST, "restore needs a device with no configured source and no ICP")
            new = lib.irqd_xics_new()
            if new == ffi.NULL:
                raise error_for(errno.ENOMEM, "cannot allocate a XICS device")
            try:
                for server, _ in icps:
                    ret = lib.irqd_xics_connect_vcpu(new, server)
                    if ret < 0:
                        raise error_for(-ret, f"restore: connect server {server} failed")
                for irq, word in sources:
                    ret = lib.irqd_xics_set_source(new, irq, word)
                    if ret < 0:
                        raise error_for(-ret, f"restore: irq {irq}: source word {word:#018x} refused")
                for server, word in icps:
                    ret = lib.irqd_xics_set_icp(new, server, word)
                    if ret < 0:
                        raise error_for(-ret, f"restore: server {server}: ICP word {word:#018x} refused")
                for gsi in self._resample_fds:
                    ret = lib.irqd_xics_set_resample(new, gsi, 1)
                    if ret < 0:
                        raise error_for(-ret, f"restore: gsi {gsi}: cannot flag for resample")
            except BaseException:
                lib.irqd_xics_free(new)
                raise
            lib.irqd_xics_set_generation(new, lib.irqd_xics_generation(x) + lib.irqd_xics_generation(new))
            # the old device may still be in use by a concurrent call of
            # another thread: retire it, free it at close()
            self._retired.append(x)
            self._x = new
            self._signalled.clear()
            self._out_seq = 0
            self._ack_seq = 0

    def stats(self) -> DeviceStats:
        x = self._dev()
        st = DeviceStats()
        buf = ffi.new("struct irqd_source_stats[]", _CHUNK)
        frm = 0
        while True:
            n = lib.irqd_xics_source_stats(x, frm, buf, _CHUNK)
            for i in range(n):
                st.sources[buf[i].irq] = (buf[i].triggers, buf[i].deliveries)
            if n < _CHUNK:
                break
            frm = buf[n - 1].irq + 1
        sbuf = ffi.new("struct irqd_server_stats[]", 256)
        frm = 0
        while True:
            n = lib.irqd_xics_server_stats(x, frm, sbuf, 256)
            for i in range(n):
                s = sbuf[i]
                st.servers[s.server] = (s.deliveries, s.rejects, s.resends, s.ipis)
            if n < 256:
                break
            frm = sbuf[n - 1].server + 1
        return st

    def info(self) -> DeviceInfo:
        x = self._dev()
        return DeviceInfo(
            handle=self.handle,
            type=lib.IRQD_KVM_DEV_TYPE_XICS,
            owner_uid=os.getuid(),
            flags=0,
            nr_ics=lib.irqd_xics_nr_ics(x),
            nr_sources=lib.irqd_xics_nr_sources(x),
            nr_servers=lib.irqd_xics_nr_servers(x),
            holders=1,
            generation=lib.irqd_xics_generation(x),
        )

    @property
    def generation(self) -> int:
        return lib.irqd_xics_generation(self._dev())

    # -- raw internal state (restart) ------------------------------------------------------
    def export_raw(self) -> tuple[list[dict], list[dict]]:
        """The complete internal state (irqd_xics_export_*), as dicts."""
        x = self._dev()
        srcs: list[dict] = []
        buf = ffi.new("struct irqd_xics_raw_source[]", _CHUNK)
        frm = 0
        fields = [f for f, _ in ffi.typeof("struct irqd_xics_raw_source").fields]
        while True:
            n = lib.irqd_xics_export_sources(x, frm, buf, _CHUNK)
            for i in range(n):
                srcs.append({f: getattr(buf[i], f) for f in fields})
            if n < _CHUNK:
                break
            frm = buf[n - 1].irq + 1
        icps: list[dict] = []
        ibuf = ffi.new("struct irqd_xics_raw_icp[]", 64)
        ifields = [f for f, _ in ffi.typeof("struct irqd_xics_raw_icp").fields if f != "pad"]
        frm = 0
        while True:
            n = lib.irqd_xics_export_icps(x, frm, ibuf, 64)
            for i in range(n):
                d = {f: getattr(ibuf[i], f) for f in ifields}
                d["resend_map"] = list(d["resend_map"])
                icps.append(d)
            if n < 64:
                break
            frm = ibuf[n - 1].server + 1
        return srcs, icps

    def import_raw(self, sources: list[dict], icps: list[dict]) -> None:
        """Load an export_raw() result into this (fresh) device: ICPs first,
        then sources, no delivery."""
        x = self._dev()
        for d in icps:
            c = ffi.new("struct irqd_xics_raw_icp *", d)
            ret = lib.irqd_xics_import_icp(x, c)
            if ret < 0:
                raise error_for(-ret, f"import: server {d.get('server')} refused")
        for d in sources:
            c = ffi.new("struct irqd_xics_raw_source *", d)
            ret = lib.irqd_xics_import_source(x, c)
            if ret < 0:
                raise error_for(-ret, f"import: irq {d.get('irq')} refused")
            if d.get("resample"):
                pass  # the caller registers the irqfd again (it owns the fds)

    # -- lifetime ----------------------------------------------------------------------------
    def close(self) -> None:
        if self._x is None:
            return
        self.stop()
        with self._lock:
            x, self._x = self._x, None
            for dev in self._retired:
                lib.irqd_xics_free(dev)
            self._retired.clear()
            lib.irqd_xics_free(x)
            for fd in self._outputs.values():
                os.close(fd)
            self._outputs.clear()
            for lst in self._irqfds.values():
                for tfd, rfd in lst:
                    os.close(tfd)
                    if rfd is not None:
                        os.close(rfd)
            self._irqfds.clear()
            self._resample_fds.clear()

    def __del__(self):
        with contextlib.suppress(Exception):  # interpreter shutdown: best effort
            self.close()
