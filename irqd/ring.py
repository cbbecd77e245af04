"""Client side of the shared-memory trigger ring (abi.h 0x40 RING_SETUP).

``RemoteXics.open_ring(entries_log2=...)`` returns a :class:`Ring`: a sealed
memfd mapped by both this process and the daemon, plus a doorbell eventfd.
:meth:`Ring.post` / :meth:`Ring.post_many` write triggers into it without a
syscall (the doorbell is written only when the daemon's consumer said it is
asleep).  The ordering-sensitive part (entry stores, release store of head,
the fence before reading need_wakeup) is C (``irqd_ring_post*`` in
``irqd/core/ring.c`` over ``include/irqd/ring_producer.h``): Python cannot
express C11 release/acquire.

A ring reports no per-trigger errors (there is no reply): triggers the
daemon refuses (unconfigured source, bad level) are counted in
:attr:`Ring.errors`; :attr:`Ring.applied` counts the others.  Single
producer: the methods take a lock, so threads may share one Ring.
A ring does not survive a daemon restart or reconnect: open a new one.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import struct
import threading
import time
import warnings
from collections.abc import Sequence

from irqd._core import ffi, lib
from irqd.errors import error_for

__all__ = ["Ring"]

_HDR = struct.Struct("<IHHII" + "IIII")  # header + struct irqd_ring_setup
_OFF_HEAD, _OFF_TAIL, _OFF_NEED, _OFF_ERRORS, _OFF_APPLIED = 64, 128, 192, 256, 320
_Q = struct.Struct("<Q")


def _setup(dev, flags: int, log2: int, fds: Sequence[int]) -> None:
    c = dev.client
    dev._check()
    with c._lock:
        seq = c._next_seq()
        rec = _HDR.pack(
            _HDR.size,
            lib.IRQD_MSG_RING_SETUP,
            lib.IRQD_NLM_F_REQUEST | lib.IRQD_NLM_F_ACK,
            seq,
            0,
            dev.handle,
            flags,
            log2,
            0,
        )
        c._call(rec, seq, "ack", True, lib.IRQD_MSG_RING_SETUP, fds)


class Ring:
    """A trigger ring of a :class:`irqd.client.RemoteXics` device."""

    def __init__(self, dev, entries_log2: int = 10):
        if not (lib.IRQD_RING_MIN_LOG2 <= entries_log2 <= lib.IRQD_RING_MAX_LOG2):
            # the daemon would say the same (EINVAL); checked here so no memfd is wasted
            raise error_for(
                errno.EINVAL,
                f"entries_log2 {entries_log2} is outside {lib.IRQD_RING_MIN_LOG2}..{lib.IRQD_RING_MAX_LOG2}",
            )
        self.dev = dev
        self.entries = 1 << entries_log2
        self.size = lib.irqd_ring_size(entries_log2)
        self._lock = threading.Lock()
        self._batch = ffi.new("struct irqd_irq_batch_entry[]", 256)
        self.memfd = os.memfd_create("irqd-ring", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        self.doorbell = -1
        self.mm = None
        try:
            os.ftruncate(self.memfd, self.size)
            fcntl.fcntl(self.memfd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK)
            self.mm = mmap.mmap(self.memfd, self.size)
            self.mem = ffi.from_buffer("uint8_t[]", self.mm)
            if lib.irqd_ring_init(self.mem, self.size, entries_log2) < 0:
                raise error_for(errno.EINVAL, "cannot format the ring")
            self.doorbell = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
            _setup(dev, 0, entries_log2, [self.memfd, self.doorbell])
        except BaseException:
            self._release()
            raise
        self.closed = False

    # -- posting ----------------------------------------------------------------------
    def post(self, irq: int, level: int) -> bool:
        """Post one trigger (IRQ_LINE values); False if the ring is full."""
        if not (0 <= irq <= 0xFFFFFFFF and 0 <= level <= 0xFFFFFFFF):
            raise ValueError("irq and level must fit in u32")
        with self._lock:
            self._live()
            return lib.irqd_ring_post(self.mem, self.doorbell, irq, level) == 0

    def post_many(self, entries: Sequence[tuple[int, int]]) -> int:
        """Post (irq, level) pairs in order; returns how many were posted
        (fewer than given when the ring filled up: post the rest later)."""
        done = 0
        with self._lock:
            self._live()
            b = self._batch
            while done < len(entries):
                chunk = entries[done : done + 256]
                for i, (irq, level) in enumerate(chunk):
                    if not (0 <= irq <= 0xFFFFFFFF and 0 <= level <= 0xFFFFFFFF):
                        raise ValueError("irq and level must fit in u32")
                    b[i].irq, b[i].level = irq, level
                n = lib.irqd_ring_post_batch(self.mem, self.doorbell, b, len(chunk))
                done += n
                if n < len(chunk):
                    break
        return done

    def wait_consumed(self, timeout: float = 5.0) -> bool:
        """Wait until the daemon consumed everything posted; False on timeout."""
        deadline = time.monotonic() + timeout
        delay = 1e-5
        while lib.irqd_ring_unconsumed(self.mem):
            if time.monotonic() >= deadline:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 0.005)
        return True

    # -- what the consumer reports (written by the daemon) ---------------------------
    def _u64(self, off: int) -> int:
        self._live()
        return _Q.unpack_from(self.mm, off)[0]

    @property
    def head(self) -> int:
        return self._u64(_OFF_HEAD)

    @property
    def tail(self) -> int:
        return self._u64(_OFF_TAIL)

    @property
    def errors(self) -> int:
        return self._u64(_OFF_ERRORS)

    @property
    def applied(self) -> int:
        return self._u64(_OFF_APPLIED)

    @property
    def need_wakeup(self) -> bool:
        return bool(struct.unpack_from("<I", self.mm, _OFF_NEED)[0])

    # -- lifetime ---------------------------------------------------------------------
    def _live(self) -> None:
        if self.mm is None:
            raise error_for(errno.EBADF, "ring is closed")

    def _release(self) -> None:
        if self.mm is not None:
            ffi.release(self.mem)
            self.mm.close()
            self.mm = None
        for fd in (self.memfd, self.doorbell):
            if fd >= 0:
                os.close(fd)
        self.memfd = self.doorbell = -1

    def close(self, deassign: bool = True) -> None:
        """RING_SETUP DEASSIGN (unless the device is gone), then unmap."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            try:
                if deassign and not self.dev._closed:
                    _setup(self.dev, lib.IRQD_RING_DEASSIGN, 0, [])
            finally:
                self._release()

    def __del__(self) -> None:
        # Dropped without close(): give back this process's memfd, doorbell
        # and mapping (no socket I/O from a finalizer; the daemon keeps its
        # own mapping and consumer until the device goes or DEASSIGN).
        if getattr(self, "closed", True) or getattr(self, "_lock", None) is None:
            return
        warnings.warn(f"ring of device {getattr(self.dev, 'handle', '?')} was not closed",
                      ResourceWarning, stacklevel=2)
        self.closed = True
        self._release()

    def __enter__(self) -> Ring:  # noqa: PYI034
        return self

    def __exit__(self, *exc) -> None:
        self.close()
