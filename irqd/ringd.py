"""Daemon side of the shared-memory trigger rings (abi.h 0x40 RING_SETUP).

The consumer is C (``irqd/core/ring.c``: one thread per ring, applying the
posted triggers straight to the thread-safe core).  This module owns the
Python bookkeeping: which device has which ring, the per-uid fd count (one
doorbell eventfd per ring: the memfd is closed once mapped), and the
wakeup of the main loop when a ring changed a vCPU output or recorded a
resample ack (the consumer writes ``notify_fd``; the loop then calls
``Daemon.signal_device`` for the rings that asked).

Lifetime: a ring belongs to its device.  ``drop`` (called by
``Daemon.destroy_device`` before the core device is freed) stops and joins
the consumer; ``rebind`` (restore commit) moves it to the new core device
before the old one is freed.  Rings are not carried over a restart.
"""

from __future__ import annotations

import errno
import logging
import os
import stat

from irqd._core import ffi, lib

log = logging.getLogger("irqd")


class _Ring:
    __slots__ = ("dev", "ptr")

    def __init__(self, dev, ptr):
        self.dev, self.ptr = dev, ptr


class RingManager:
    def __init__(self, daemon):
        self.daemon = daemon
        self.rings: dict[int, _Ring] = {}  # device handle -> ring
        self.notify_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.tag = daemon.watch(self.notify_fd, self._on_notify)
        self.why = ffi.new("char[]", 256)
        self.out = ffi.new("struct irqd_ring **")
        self.stats = ffi.new("struct irqd_ring_stats *")

    def _on_notify(self, events: int) -> None:
        try:
            os.eventfd_read(self.notify_fd)
        except BlockingIOError:
            pass
        for ring in list(self.rings.values()):
            if lib.irqd_ring_take_notify(ring.ptr):
                self.daemon.signal_device(ring.dev)

    def nfds(self, uid: int) -> int:
        return sum(1 for r in self.rings.values() if r.dev.owner == uid)

    def drop(self, dev) -> None:
        ring = self.rings.pop(dev.handle, None)
        if ring is None:
            return
        lib.irqd_ring_get_stats(ring.ptr, self.stats)
        s = self.stats
        lib.irqd_ring_stop(ring.ptr)
        log.info(
            "device %d: ring removed (%d applied, %d errors, %d resyncs, %d sleeps)",
            dev.handle,
            s.applied,
            s.errors,
            s.resyncs,
            s.sleeps,
        )

    def rebind(self, dev) -> None:
        ring = self.rings.get(dev.handle)
        if ring is not None:
            lib.irqd_ring_set_xics(ring.ptr, dev.x)

    def setup(self, conn, w, req, payload, hdr) -> None:
        from irqd.daemon import OpError, _close, _is_eventfd

        d = self.daemon
        r = d._struct("struct irqd_ring_setup", payload)
        dev = d._device(r.handle)
        if r.flags & lib.IRQD_RING_DEASSIGN:
            if dev.handle not in self.rings:
                raise OpError(errno.ENOENT, f"device {dev.handle} has no ring", 20)
            self.drop(dev)
            d._ack(req, hdr)
            return
        refusal = getattr(w, "fd_refusal", None)  # the record's fds passed the uid's fd limit on arrival
        if refusal:
            w.take_fds(conn.wc, 2)
            raise OpError(errno.ENOSPC, f"RING_SETUP: {refusal}")
        if w.mismatch:
            raise OpError(
                errno.EBADF,
                "RING_SETUP takes 2 fds (memfd, doorbell eventfd) but the record's "
                f"SCM_RIGHTS did not match its fd-taking messages ({len(w.fds)} received)",
            )
        fds = w.take_fds(conn.wc, 2)
        if len(fds) != 2:
            for fd in fds:
                _close(fd)
            raise OpError(
                errno.EBADF,
                f"RING_SETUP takes 2 fds (memfd, doorbell eventfd), {len(fds)} left in the record",
            )
        memfd, doorbell = fds
        try:
            if dev.handle in self.rings:
                raise OpError(errno.EEXIST, f"device {dev.handle} already has a ring (DEASSIGN it first)", 20)
            if not (lib.IRQD_RING_MIN_LOG2 <= r.entries_log2 <= lib.IRQD_RING_MAX_LOG2):
                raise OpError(
                    errno.EINVAL,
                    f"entries_log2 {r.entries_log2} is outside "
                    f"{lib.IRQD_RING_MIN_LOG2}..{lib.IRQD_RING_MAX_LOG2}",
                    24,
                )
            if not _is_eventfd(doorbell):
                raise OpError(errno.EINVAL, "RING_SETUP: the second fd (doorbell) is not an eventfd")
            if not stat.S_ISREG(os.fstat(memfd).st_mode):
                raise OpError(errno.EINVAL, "RING_SETUP: the first fd is not a memfd")
            if d._uid_fds(dev.owner) + 1 > d.limits.max_fds_per_uid:
                raise OpError(
                    errno.ENOSPC, f"uid {dev.owner} would pass --max-fds-per-uid {d.limits.max_fds_per_uid}"
                )
            rc = lib.irqd_ring_start(
                dev.x, memfd, doorbell, r.entries_log2, self.notify_fd, self.out, self.why, 256
            )
            if rc < 0:
                raise OpError(-rc, "RING_SETUP: " + ffi.string(self.why).decode(errors="replace"))
        except BaseException:
            _close(memfd)
            _close(doorbell)
            raise
        _close(memfd)  # mapped: the mapping keeps the memory
        self.rings[dev.handle] = _Ring(dev, self.out[0])
        d._ack(req, hdr)
        log.info("device %d: ring of %d entries set up by %s", dev.handle, 1 << r.entries_log2, conn)


def manager(daemon, create: bool = True) -> RingManager | None:
    m = daemon.__dict__.get("ring_manager")
    if m is None and create:
        m = daemon.ring_manager = RingManager(daemon)
    return m


# -- the hooks Daemon calls -------------------------------------------------------
def op_ring_setup(daemon, conn, w, req, payload, hdr) -> None:
    manager(daemon).setup(conn, w, req, payload, hdr)


def drop(daemon, dev) -> None:
    m = manager(daemon, create=False)
    if m is not None:
        m.drop(dev)


def rebind(daemon, dev) -> None:
    m = manager(daemon, create=False)
    if m is not None:
        m.rebind(dev)


def nfds(daemon, uid: int) -> int:
    m = manager(daemon, create=False)
    return m.nfds(uid) if m is not None else 0


def stats(daemon, handle: int) -> dict[str, int] | None:
    """The daemon-side counters of a device's ring (None without ring)."""
    m = manager(daemon, create=False)
    ring = m.rings.get(handle) if m is not None else None
    if ring is None:
        return None
    lib.irqd_ring_get_stats(ring.ptr, m.stats)
    s = m.stats
    return {
        "applied": s.applied,
        "errors": s.errors,
        "resyncs": s.resyncs,
        "sleeps": s.sleeps,
        "spin_ns": s.spin_ns,
    }
