"""irqd: the XICS daemon.

One thread runs an epoll loop whose hot path is C (``irqd/core/loop.c``;
asyncio cannot do SOCK_SEQPACKET anyway): an idle connection's records are
read, checked and applied by the C dispatcher (``irqd/core/wire.c``) and
answered without entering Python.  Python sees only what needs the daemon's
own state (devices, holders, eventfds, dumps, restores), new connections,
irqfd events, and connections whose replies could not all be sent.  Replies
are queued per connection as whole records; a connection whose queue is
full is not read again until the client drains it, so one slow client never
blocks the others and no buffer grows without bound.

Devices belong to the SO_PEERCRED uid of their creator; only that uid and
root may use them.  A device is held by the connections that created or
attached it and is destroyed when the last holder goes, unless PERSIST.
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import errno
import grp
import logging
import os
import resource
import select
import signal
import socket
import stat
import struct
import sys
import time
from typing import Callable

from irqd._core import ffi, lib

from irqd import ringd, sd, state

log = logging.getLogger("irqd")

MAX_RECORD = lib.IRQD_MAX_RECORD
MAX_FDS = lib.IRQD_MAX_FDS
OUT_CAP = 1 << 20
OUT_MAX_ENDS = 16384
READ_BURST = 32          # records read from one connection per wakeup
OUTQ_LIMIT = 16          # reply records (<= 64 KiB each) queued before a connection stops being served
EVENTFD_ONE = struct.pack("<Q", 1)
ANC_SIZE = socket.CMSG_SPACE(MAX_FDS * 4)
PEERCRED = struct.Struct("3i")
# --trace file format: entries of TRACE_HEAD (kind, conn id, uid, length) + data.
# TRACE_RECORD: a received record, before it is processed (records are
# processed one at a time in this order: the daemon has one thread).
# TRACE_IRQFD: an irqfd fired: <u32 handle, u32 gsi, u32 pulse>.
TRACE_HEAD = struct.Struct("<IQII")
TRACE_RECORD = 1
TRACE_IRQFD = 2


class Limits:
    def __init__(self, args: argparse.Namespace):
        self.max_clients: int = args.max_clients
        self.max_devices_per_uid: int = args.max_devices_per_uid
        self.max_sources_per_uid: int = args.max_sources_per_uid
        self.max_fds_per_uid: int = args.max_fds_per_uid
        self.max_queued_per_uid: int = args.max_queued_per_uid
        self.reattach_grace: float = args.reattach_grace


class IrqFd:
    __slots__ = ("dev", "gsi", "fd", "resample_fd", "tag")

    def __init__(self, dev: "Device", gsi: int, fd: int, resample_fd: int | None):
        self.dev, self.gsi, self.fd, self.resample_fd = dev, gsi, fd, resample_fd
        self.tag = 0


class Stage:
    """A RESTORE_BEGIN .. COMMIT in progress (abi.md 0x27-0x29)."""

    __slots__ = ("conn_id", "servers", "sources", "icps")

    def __init__(self, conn_id: int):
        self.conn_id = conn_id
        self.servers: set[int] = set()
        self.sources: dict[int, int] = {}
        self.icps: dict[int, int] = {}


class Device:
    __slots__ = ("handle", "x", "owner", "flags", "holders", "irqfds", "outputs", "signalled",
                 "stage", "dropped", "orphan_deadline")

    def __init__(self, handle: int, x, owner: int, flags: int):
        self.handle = handle
        self.x = x
        self.owner = owner
        self.flags = flags
        self.holders: set[int] = set()
        self.irqfds: dict[int, list[IrqFd]] = {}
        self.outputs: dict[int, int] = {}       # server -> eventfd
        self.signalled: dict[int, int] = {}     # server -> rises already written
        self.stage: Stage | None = None
        self.dropped = 0                        # irqfd triggers of unconfigured sources
        self.orphan_deadline: float | None = None

    @property
    def persist(self) -> bool:
        return bool(self.flags & lib.IRQD_CREATE_PERSIST)

    def nfds(self) -> int:
        return len(self.outputs) + sum(1 + (f.resample_fd is not None) for fs in self.irqfds.values() for f in fs)


class Work:
    """A received record being processed (possibly paused in a dump)."""

    __slots__ = ("data", "cbuf", "length", "flags", "fds", "taken", "mismatch", "dump", "dump_dev",
                 "dump_hdr", "after_dump", "fd_refusal")

    def __init__(self, data: bytes, flags: int, fds: list[int], mismatch: bool):
        self.data = data
        self.cbuf = ffi.from_buffer("uint8_t[]", data)
        self.length = len(data)
        self.flags = flags
        self.fds = fds
        self.taken = [False] * len(fds)
        self.mismatch = mismatch
        self.dump = None
        self.dump_dev: Device | None = None
        self.dump_hdr = None
        self.after_dump = 0
        self.fd_refusal: str | None = None   # the record's fds passed its uid's limit: why

    def take_fds(self, wc, n: int) -> list[int]:
        i = wc.fd_index
        wc.fd_index = i + n
        got = self.fds[i:i + n]
        for k in range(i, min(i + n, len(self.fds))):
            self.taken[k] = True
        return got

    def untaken(self) -> int:
        return sum(1 for t in self.taken if not t)

    def close_untaken(self) -> None:
        for fd, taken in zip(self.fds, self.taken):
            if not taken:
                _close(fd)
        self.fds = []
        self.taken = []


class Conn:
    __slots__ = ("sock", "fd", "id", "pid", "uid", "gid", "held", "outq", "work", "wc", "pos", "mode",
                 "closed", "tag")

    def __init__(self, sock: socket.socket, conn_id: int, pid: int, uid: int, gid: int):
        self.sock = sock
        self.fd = sock.fileno()
        self.id = conn_id
        self.pid, self.uid, self.gid = pid, uid, gid
        self.held: set[int] = set()
        self.outq: collections.deque[bytes] = collections.deque()
        self.work: Work | None = None
        self.wc = ffi.new("struct irqd_wire_conn *", {"uid": uid, "conn_id": conn_id})
        self.pos = ffi.new("uint32_t *")
        self.mode: tuple[int, int] | None = None   # (fast, epoll events) registered with the loop
        self.closed = False
        self.tag = 0

    def __str__(self) -> str:
        return f"conn {self.id} (pid {self.pid} uid {self.uid})"


class OpError(Exception):
    """A daemon-side operation failure: answered as ERROR(-errno)."""

    def __init__(self, err: int, msg: str, offs: int = -1):
        super().__init__(msg)
        self.err, self.msg, self.offs = err, msg, offs


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


try:  # glibc: return freed heap to the system after a big device goes
    _malloc_trim = ctypes.CDLL(None).malloc_trim
    _malloc_trim.argtypes = [ctypes.c_size_t]
except (OSError, AttributeError):
    _malloc_trim = None


def _spare() -> int | None:
    try:
        return os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None


def _is_eventfd(fd: int) -> bool:
    try:
        return os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:[eventfd]"
    except OSError:
        return False


# Eventfds come from clients and share their open file description with the
# client's copy: the daemon must not set O_NONBLOCK on them (a vCPU thread's
# blocking read would then fail with EAGAIN; KVM_IRQFD leaves them alone too).
# Reads use RWF_NOWAIT, which is per call.  Writes cannot (eventfd has no
# write_iter): the daemon writes only when poll says POLLOUT, and a write that
# blocks anyway (the client itself filled its counter to 2^64-2 in between)
# is broken off by a 50 ms SIGALRM rather than hanging the daemon.

class _EventfdStuck(Exception):
    pass


_writing_eventfd = False


def _on_alarm(signum, frame) -> None:
    if _writing_eventfd:
        raise _EventfdStuck()


def _write_eventfd(fd: int, n: int = 1) -> None:
    global _writing_eventfd
    try:
        if not select.select([], [fd], [], 0)[1]:
            return  # counter saturated: the reader has a wake-up pending already
        guard = signal.getsignal(signal.SIGALRM) is _on_alarm
        if guard:
            signal.setitimer(signal.ITIMER_REAL, 0.05)
        _writing_eventfd = True
        try:
            os.write(fd, EVENTFD_ONE if n == 1 else struct.pack("<Q", n))
        finally:
            _writing_eventfd = False
            if guard:
                signal.setitimer(signal.ITIMER_REAL, 0)
    except (OSError, ValueError, _EventfdStuck):  # closed by the peer, or stuck: nothing to do
        pass


def _read_eventfd(fd: int) -> bool:
    """Consume an eventfd's count without blocking; False when it was 0."""
    try:
        return os.preadv(fd, [bytearray(8)], -1, os.RWF_NOWAIT) == 8
    except BlockingIOError:
        return False
    except OSError as e:
        if e.errno != errno.EOPNOTSUPP:
            raise
    # kernels before eventfd honoured RWF_NOWAIT: poll, then read
    if not select.select([fd], [], [], 0)[0]:
        return False
    return len(os.read(fd, 8)) == 8


# ---------------------------------------------------------------------------
# the listening socket

class SocketPathError(Exception):
    pass


def open_listener(path: str, mode: int, group: str | None) -> tuple[socket.socket, tuple[int, int]]:
    """Bind a SOCK_SEQPACKET socket at ``path`` safely: never follow a symlink,
    never replace a non-socket or a live daemon's socket; bind to a temporary
    name with the final mode (umask) and group, then rename into place.
    Returns the socket and the (st_dev, st_ino) to unlink on exit."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None:
        if stat.S_ISLNK(st.st_mode):
            raise SocketPathError(f"refusing to start: {path} is a symbolic link")
        if not stat.S_ISSOCK(st.st_mode):
            raise SocketPathError(f"refusing to start: {path} exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            probe.connect(path)
        except ConnectionRefusedError:
            log.info("replacing stale socket %s", path)
        except OSError as e:
            raise SocketPathError(f"refusing to start: cannot probe {path}: {e.strerror}") from e
        else:
            raise SocketPathError(f"refusing to start: another irqd is already running on {path}")
        finally:
            probe.close()
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise SocketPathError(f"refusing to start: directory {parent} does not exist")
    gid = -1
    if group is not None:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            raise SocketPathError(f"refusing to start: no group named {group!r}") from None
    tmp = os.path.join(parent, f".{os.path.basename(path)}.{os.getpid()}.{time.monotonic_ns()}")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    old_umask = os.umask(0o777 & ~mode)
    try:
        sock.bind(tmp)
    except OSError as e:
        sock.close()
        raise SocketPathError(f"refusing to start: cannot bind in {parent}: {e.strerror}") from e
    finally:
        os.umask(old_umask)
    try:
        if gid != -1:
            os.chown(tmp, -1, gid, follow_symlinks=False)
        os.rename(tmp, path)
        st = os.lstat(path)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        sock.close()
        raise SocketPathError(f"refusing to start: cannot install {path}: {e.strerror}") from e
    sock.listen(128)
    return sock, (st.st_dev, st.st_ino)


def _inherited_listener() -> tuple[socket.socket | None, list[tuple[int, str]]]:
    """The listening socket passed by systemd (LISTEN_FDS), and the other fds."""
    fds = sd.listen_fds()
    listener, rest = None, []
    for fd, name in fds:
        if listener is None:
            try:
                s = socket.socket(fileno=fd)
                if (s.family == socket.AF_UNIX and s.type == socket.SOCK_SEQPACKET
                        and s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)):
                    listener = s
                    continue
                s.detach()
            except OSError:
                pass
        rest.append((fd, name))
    return listener, rest


# ---------------------------------------------------------------------------
# the daemon

class Daemon:
    def __init__(self, listener: socket.socket, limits: Limits, owned: tuple[int, int] | None,
                 path: str | None):
        self.listener = listener
        self.limits = limits
        self.owned = owned
        self.path = path
        loop = lib.irqd_loop_new()
        if loop == ffi.NULL:
            raise OSError(errno.ENOMEM, "cannot create the event loop")
        self.loop = ffi.gc(loop, lib.irqd_loop_free)
        self.rec = ffi.new("struct irqd_loop_record *")
        self.recbuf = ffi.new("uint8_t[]", MAX_RECORD)
        self.rec.buf = self.recbuf
        self.evs = ffi.new("struct irqd_loop_event[]", 64)
        self.watchers: dict[int, Callable[[int], None]] = {}   # loop tag -> handler(epoll events)
        self.next_tag = 1
        self.fast = True                 # serve idle connections in C (off while tracing)
        self.conns: dict[int, Conn] = {}
        # reply bytes queued in the daemon per uid (--max-queued-per-uid), the
        # connections waiting for their uid to drain, and uids to look at again
        self.uid_queued: dict[int, int] = {}
        self.uid_paused: dict[int, set[Conn]] = {}
        self.resume_uids: set[int] = set()
        self.stopping = False
        self.devices: dict[int, Device] = {}
        self.next_handle = 1
        self.next_conn = 1
        self.reg = ffi.gc(lib.irqd_registry_new(), lib.irqd_registry_free)
        lib.irqd_registry_set_limits(self.reg, limits.max_sources_per_uid)
        self.outbuf = ffi.new("uint8_t[]", OUT_CAP)
        self.ends = ffi.new("uint32_t[]", OUT_MAX_ENDS)
        self.out = ffi.new("struct irqd_wire_out *")
        lib.irqd_wire_out_init(self.out, self.outbuf, OUT_CAP, self.ends, OUT_MAX_ENDS)
        self.u64 = ffi.new("uint64_t *")
        self.acks = ffi.new("uint32_t[]", 256)
        self.irqfd_by_fd: dict[int, IrqFd] = {}
        self._spare_fd = _spare()        # freed to refuse a client cleanly when out of fds
        self.cur: Conn | None = None     # connection whose message a handler is answering
        # restart without losing state (irqd/state.py): run at shutdown after
        # every record already read is answered, before devices are freed
        self.on_shutdown: list[Callable[["Daemon"], None]] = []
        self.keep_socket = False         # a hook handed the listener on (fd store)
        self.trace = None                # --trace: binary log of what was applied, in order
        self.stop_requested = False
        self.force_stop = False
        self.watchdog = sd.watchdog_interval()
        self.next_ping = 0.0
        self.last_status = ""
        self.next_status = 0.0
        listener.setblocking(False)
        self.listen_tag = self.watch(listener.fileno(), self._on_accept)
        rfd, wfd = socket.socketpair()
        rfd.setblocking(False)
        wfd.setblocking(False)
        self._wake_r, self._wake_w = rfd, wfd
        self.watch(rfd.fileno(), self._on_wakeup)
        self.handlers: dict[int, Callable] = {
            lib.IRQD_MSG_HELLO: self.op_hello,
            lib.IRQD_MSG_CREATE_DEVICE: self.op_create_device,
            lib.IRQD_MSG_DESTROY_DEVICE: self.op_destroy,
            lib.IRQD_MSG_ATTACH: self.op_attach,
            lib.IRQD_MSG_LIST_DEVICES: self.op_list,
            lib.IRQD_MSG_IRQFD: self.op_irqfd,
            lib.IRQD_MSG_SET_OUTPUT: self.op_set_output,
            lib.IRQD_MSG_DUMP_STATE: self.op_dump,
            lib.IRQD_MSG_GET_STATS: self.op_dump,
            lib.IRQD_MSG_RESTORE_BEGIN: self.op_restore_begin,
            lib.IRQD_MSG_RESTORE_COMMIT: self.op_restore_commit,
            lib.IRQD_MSG_RESTORE_ABORT: self.op_restore_abort,
            lib.IRQD_MSG_CONNECT_VCPU: self.op_staged,
            lib.IRQD_MSG_SET_DEVICE_ATTR: self.op_staged,
            lib.IRQD_MSG_SET_ONE_REG: self.op_staged,
            lib.IRQD_MSG_RING_SETUP: self.op_ring_setup,
        }

    # -- signals and the loop -------------------------------------------------
    def install_signals(self) -> None:
        signal.set_wakeup_fd(self._wake_w.fileno(), warn_on_full_buffer=False)

        def on_stop(signum, frame):
            log.info("received %s", signal.Signals(signum).name)
            if self.stop_requested and signum == signal.SIGINT:
                self.force_stop = True
            self.stop_requested = True

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        signal.signal(signal.SIGALRM, _on_alarm)

    # -- the loop ---------------------------------------------------------------
    def watch(self, fd: int, handler: Callable[[int], None], events: int = select.EPOLLIN) -> int:
        """Have the loop report fd's events to handler(events); returns its tag."""
        tag = self.next_tag
        self.next_tag += 1
        rc = lib.irqd_loop_watch(self.loop, fd, tag, events)
        if rc < 0:
            raise OSError(-rc, f"cannot watch fd {fd}: {os.strerror(-rc)}")
        self.watchers[tag] = handler
        return tag

    def unwatch(self, fd: int, tag: int) -> None:
        lib.irqd_loop_forget(self.loop, fd)
        self.watchers.pop(tag, None)

    def watch_irqfd(self, f: IrqFd) -> None:
        f.tag = self.watch(f.fd, lambda events, f=f: self._on_irqfd(f))
        self.irqfd_by_fd[f.fd] = f

    def _dispatch(self, ev) -> None:
        kind = ev.kind
        if kind == lib.IRQD_EV_FD:
            handler = self.watchers.get(ev.tag)
            if handler is not None:
                handler(ev.events)
            return
        conn = self.conns.get(ev.tag >> 32)
        if conn is None:
            return
        if kind == lib.IRQD_EV_HANDOFF:
            rec = self.rec
            fds = [rec.fds[i] for i in range(rec.nfds)]
            rec.nfds = 0
            self._collect(conn)   # replies the loop could not send come first
            self._start_work(conn, bytes(ffi.buffer(rec.buf, rec.len)), fds, bool(rec.flags), bool(rec.ctrunc),
                             rec.pos)
        elif kind == lib.IRQD_EV_BLOCKED:
            self._collect(conn)
        elif kind == lib.IRQD_EV_NOTIFY:
            self._notify_devices(self.out)
        elif kind == lib.IRQD_EV_CLOSED:
            self.close_conn(conn, "end of stream")
            return
        if not conn.closed:
            self._update_interest(conn)

    def _on_wakeup(self, events: int) -> None:
        try:
            while self._wake_r.recv(512):
                pass
        except BlockingIOError:
            pass

    def notify(self, text: str) -> None:
        sd.notify(text)

    def status_text(self) -> str:
        return f"{len(self.conns)} clients, {len(self.devices)} devices"

    def serve_forever(self) -> int:
        self.notify(f"READY=1\nSTATUS={self.status_text()}")
        log.info("ready: %s", self.status_text())
        while not self.stop_requested:
            timeout = 1.0
            if self.watchdog:
                timeout = min(timeout, self.watchdog / 2)
            n = lib.irqd_loop_run(self.loop, self.reg, self.out, self.rec, int(timeout * 1000), self.evs, 64)
            if n < 0:
                log.error("event loop failed: %s", os.strerror(-n))
                self.stop_requested = True
            for i in range(max(n, 0)):
                self._dispatch(self.evs[i])
            if self.resume_uids:
                self._resume_paused()
            self._periodic()
        return self.shutdown()

    def _periodic(self) -> None:
        now = time.monotonic()
        if self.watchdog and now >= self.next_ping:
            self.notify("WATCHDOG=1")
            self.next_ping = now + self.watchdog / 2
        if now >= self.next_status:
            text = self.status_text()
            if text != self.last_status:
                self.notify(f"STATUS={text}")
                self.last_status = text
            self.next_status = now + 1.0
        for dev in [d for d in self.devices.values() if d.orphan_deadline is not None]:
            if not dev.holders and now >= dev.orphan_deadline:
                log.info("device %d: no holder reattached within the grace period, destroying", dev.handle)
                self.destroy_device(dev)

    def shutdown(self) -> int:
        """Stop accepting, answer every record already read, run the
        shutdown hooks (state saving), then close everything."""
        self.notify("STOPPING=1")
        log.info("stopping: %s", self.status_text())
        self.stopping = True   # answer what was read, whatever the queue caps
        self.unwatch(self.listener.fileno(), self.listen_tag)
        deadline = time.monotonic() + 2.0
        for conn in list(self.conns.values()):
            while conn.work is not None and not conn.closed and time.monotonic() < deadline:
                self._serve(conn)
                if conn.work is not None:
                    self._flush(conn, block_until=deadline)
            self._flush(conn, block_until=deadline)
        rc = 0
        for hook in self.on_shutdown:
            try:
                hook(self)
            except Exception:
                log.exception("shutdown hook failed")
                rc = 1
        for conn in list(self.conns.values()):
            self.close_conn(conn, "daemon stopping")
        for dev in list(self.devices.values()):
            self.destroy_device(dev)
        self.listener.close()
        if not self.keep_socket:
            self.remove_socket()
        log.info("stopped")
        return rc

    def remove_socket(self) -> None:
        """Unlink the socket path only if it is still the inode we bound."""
        if not self.path or not self.owned:
            return
        try:
            st = os.lstat(self.path)
            if (st.st_dev, st.st_ino) == self.owned:
                os.unlink(self.path)
        except OSError:
            pass
        self.owned = None

    # -- connections ------------------------------------------------------------
    def _on_accept(self, events: int) -> None:
        for _ in range(64):
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno in (errno.EMFILE, errno.ENFILE) and self._spare_fd is not None:
                    # out of fds: free the spare to accept and refuse the client cleanly, else
                    # the listener stays readable and the loop spins
                    _close(self._spare_fd)
                    try:
                        s, _ = self.listener.accept()
                        s.close()
                    except OSError:
                        pass
                    self._spare_fd = _spare()
                    log.warning("refused a connection: the daemon is out of file descriptors")
                    continue
                log.warning("accept failed: %s", e.strerror)
                return
            pid, uid, gid = PEERCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                            PEERCRED.size))
            if len(self.conns) >= self.limits.max_clients:
                log.warning("refused pid %d uid %d: --max-clients %d reached", pid, uid,
                            self.limits.max_clients)
                sock.close()
                continue
            sock.setblocking(False)
            conn = Conn(sock, self.next_conn, pid, uid, gid)
            self.next_conn += 1
            self.conns[conn.id] = conn
            conn.tag = conn.id << 32   # connection tags: the id in the high half (fd watchers stay below 2^32)
            self.watchers[conn.tag] = lambda events, conn=conn: self._on_conn(conn, events)
            self._update_interest(conn)
            log.debug("accepted %s", conn)

    def close_conn(self, conn: Conn, why: str) -> None:
        if conn.closed:
            return
        conn.closed = True
        log.debug("closing %s: %s", conn, why)
        self.unwatch(conn.fd, conn.tag)
        conn.sock.close()
        if conn.work is not None:
            conn.work.close_untaken()
            conn.work = None
        self._dequeued(conn, sum(len(r) for r in conn.outq))
        conn.outq.clear()
        self.uid_paused.get(conn.uid, set()).discard(conn)
        del self.conns[conn.id]
        for handle in sorted(conn.held):
            dev = self.devices.get(handle)
            if dev is None:
                continue
            dev.holders.discard(conn.id)
            if dev.stage is not None and dev.stage.conn_id == conn.id:
                self._end_restore(dev)
            if not dev.holders and not dev.persist:
                self.destroy_device(dev)
        for dev in self.devices.values():  # a restore by a non-holder connection
            if dev.stage is not None and dev.stage.conn_id == conn.id:
                self._end_restore(dev)

    def _on_conn(self, conn: Conn, events: int) -> None:
        """A connection in slow mode (replies queued, or tracing)."""
        if events & (select.EPOLLOUT | select.EPOLLHUP | select.EPOLLERR):
            self._flush(conn)
            if not conn.closed and conn.work is not None and self._servable(conn):
                self._serve(conn)
        if events & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR):
            # several records per wakeup while the connection keeps up with its replies
            for _ in range(READ_BURST):
                if (conn.closed or conn.work is not None or conn.outq or self._over(conn.uid)
                        or not self._read_record(conn)):
                    break
        if (not conn.closed and events & (select.EPOLLHUP | select.EPOLLERR) and not conn.outq
                and self._over(conn.uid)):
            # paused for its uid's queue and the peer is gone: epoll reports
            # HUP whatever the interest, so waiting would spin
            self.close_conn(conn, "peer hung up while its uid's reply queue was full")
        if not conn.closed:
            self._update_interest(conn)

    # -- reply queues: per connection (OUTQ_LIMIT) and per uid (--max-queued-per-uid) --
    def _over(self, uid: int) -> bool:
        return self.uid_queued.get(uid, 0) >= self.limits.max_queued_per_uid and not self.stopping

    def _servable(self, conn: Conn) -> bool:
        return len(conn.outq) < OUTQ_LIMIT and not self._over(conn.uid)

    def _queue(self, conn: Conn, rec: bytes) -> None:
        conn.outq.append(rec)
        uid = conn.uid
        was = self.uid_queued.get(uid, 0)
        self.uid_queued[uid] = was + len(rec)
        if was < self.limits.max_queued_per_uid <= was + len(rec):
            # over: stop reading every connection of this uid (the idle ones
            # are served by the C loop, which does not look at the cap)
            log.info("uid %d has %d reply bytes queued (--max-queued-per-uid %d): pausing its connections",
                     uid, was + len(rec), self.limits.max_queued_per_uid)
            for c in [c for c in self.conns.values() if c.uid == uid and c is not conn and not c.outq]:
                self._update_interest(c)

    def _dequeued(self, conn: Conn, n: int) -> None:
        if not n:
            return
        uid = conn.uid
        left = self.uid_queued.get(uid, 0) - n
        if left > 0:
            self.uid_queued[uid] = left
        else:
            self.uid_queued.pop(uid, None)
        if self.uid_paused.get(uid) and left < self.limits.max_queued_per_uid:
            self.resume_uids.add(uid)

    def _resume_paused(self) -> None:
        """Serve again the connections of uids that drained below their cap."""
        uids, self.resume_uids = self.resume_uids, set()
        for uid in uids:
            if self._over(uid):
                continue
            for conn in sorted(self.uid_paused.pop(uid, ()), key=lambda c: c.id):
                if conn.closed:
                    continue
                if conn.work is not None and self._servable(conn):
                    self._serve(conn)
                if not conn.closed:
                    self._update_interest(conn)

    def _update_interest(self, conn: Conn) -> None:
        """Fast (served by the C loop) when idle; else report writability;
        nothing while its uid's queue is over the cap (paused)."""
        if conn.outq:
            want = (0, select.EPOLLOUT)
        elif self._over(conn.uid):
            want = (0, 0)
            self.uid_paused.setdefault(conn.uid, set()).add(conn)
        elif conn.work is not None:
            want = (0, select.EPOLLOUT)
        else:
            want = (1, select.EPOLLIN) if self.fast else (0, select.EPOLLIN)
        if want != conn.mode:
            rc = lib.irqd_loop_conn(self.loop, conn.fd, conn.tag, conn.wc, want[0], want[1])
            if rc < 0:
                self.close_conn(conn, f"event loop: {os.strerror(-rc)}")
                return
            conn.mode = want

    def _read_record(self, conn: Conn) -> bool:
        """Read and process one record; False when none was there (or the peer left)."""
        try:
            data, anc, mflags, _ = conn.sock.recvmsg(MAX_RECORD, ANC_SIZE, socket.MSG_CMSG_CLOEXEC)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as e:
            self.close_conn(conn, e.strerror or "recv failed")
            return False
        fds: list[int] = []
        for level, kind, cdata in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                n = len(cdata) // 4
                fds.extend(struct.unpack(f"{n}i", cdata[: n * 4]))
        if not data:
            for fd in fds:
                _close(fd)
            self.close_conn(conn, "end of stream")
            return False
        self._start_work(conn, data, fds, bool(mflags & socket.MSG_TRUNC), bool(mflags & socket.MSG_CTRUNC), 0)
        return True

    def _start_work(self, conn: Conn, data: bytes, fds: list[int], trunc: bool, ctrunc: bool, pos: int) -> None:
        """Process a received record from pos (> 0 when the C loop did a prefix)."""
        flags = 0
        mismatch = ctrunc
        if trunc:
            flags = lib.IRQD_WIRE_TRUNCATED
            mismatch = True
        elif fds or mismatch:
            mismatch = mismatch or lib.irqd_wire_fd_count(data, len(data)) != len(fds)
        elif b"\x20\x00" in data or b"\x21\x00" in data:  # cheap pre-filter: IRQFD / SET_OUTPUT types
            mismatch = lib.irqd_wire_fd_count(data, len(data)) != 0
        refusal = None
        if fds and not mismatch:
            # fds count against their uid from the moment they arrive: a record
            # parked behind a paused dump holds them (--max-fds-per-uid)
            held = self._uid_fds(conn.uid) + self._inflight_fds(conn.uid)
            if held + len(fds) > self.limits.max_fds_per_uid:
                refusal = (f"the record's {len(fds)} fds would pass uid {conn.uid}'s --max-fds-per-uid "
                           f"{self.limits.max_fds_per_uid} ({held} held)")
        if (mismatch or refusal) and fds:
            for fd in fds:
                _close(fd)
            fds = []
        if self.trace is not None and pos == 0:
            self.trace_event(TRACE_RECORD, conn.id, conn.uid, data)
        conn.work = Work(data, flags, fds, mismatch)
        conn.work.fd_refusal = refusal
        conn.pos[0] = pos
        if pos == 0:
            conn.wc.fd_index = 0
        self._serve(conn)

    def _collect(self, conn: Conn) -> None:
        out = self.out
        n = out.n_ends
        if n:
            buf = ffi.buffer(out.buf, out.len)
            start = 0
            for i in range(n):
                end = out.ends[i]
                self._queue(conn, buf[start:end])
                start = end
        lib.irqd_wire_out_compact(out)

    def _serve(self, conn: Conn) -> None:
        """Process conn's current record until it is done or its reply queue is full."""
        out = self.out
        w = conn.work
        while w is not None and not conn.closed and self._servable(conn):
            if w.dump is not None:
                dev = w.dump_dev
                if dev.x == ffi.NULL:  # destroyed while this dump was paused
                    self.cur = conn
                    self._put_error(ffi.cast("uint8_t *", w.dump_hdr), -errno.EBADF,
                                    f"device {dev.handle} was destroyed during the dump", -1)
                    more = 0
                else:
                    more = lib.irqd_wire_dump_step(dev.x, dev.handle, w.dump_hdr, w.dump, out)
                self._collect(conn)
                if not more:
                    w.dump = w.dump_dev = w.dump_hdr = None
                    conn.pos[0] = w.after_dump
                continue
            out.n_errors = 0
            out.n_notify = 0
            out.notify_overflow = 0
            rc = lib.irqd_wire_run(self.reg, conn.wc, w.cbuf, w.length, w.flags, conn.pos, out)
            if out.n_notify or out.notify_overflow:
                self._notify_devices(out)
            if out.n_errors:
                log.debug("%s: %d failed request(s), last: %s (%s)", conn, out.n_errors,
                          errno.errorcode.get(-out.last_error, out.last_error),
                          ffi.string(out.last_msg).decode(errors="replace"))
            if rc == lib.IRQD_WIRE_FULL:
                self._collect(conn)
                continue
            if rc == lib.IRQD_WIRE_PYTHON:
                pos = conn.pos[0]
                end = lib.irqd_wire_msg_end(w.cbuf, w.length, pos)
                self._python_op(conn, w, pos)
                if w.dump is not None:
                    w.after_dump = end
                else:
                    conn.pos[0] = end
                continue
            lib.irqd_wire_out_flush(out)
            self._collect(conn)
            w.close_untaken()
            conn.work = w = None
        if w is not None:  # paused: queue what is built so the shared buffer is empty
            lib.irqd_wire_out_flush(out)
            self._collect(conn)
        self._flush(conn)

    def _flush(self, conn: Conn, block_until: float | None = None) -> None:
        q = conn.outq
        while q and not conn.closed:
            try:
                conn.sock.send(q[0])
            except (BlockingIOError, InterruptedError):
                if block_until is None or time.monotonic() >= block_until:
                    return
                time.sleep(0.001)
                continue
            except OSError as e:
                self.close_conn(conn, e.strerror or "send failed")
                return
            self._dequeued(conn, len(q.popleft()))

    # -- output eventfds and resample ------------------------------------------
    def _notify_devices(self, out) -> None:
        if out.notify_overflow:
            devs = list(self.devices.values())
        else:
            devs = [self.devices.get(out.notify[i]) for i in range(out.n_notify)]
        for dev in devs:
            if dev is not None:
                self.signal_device(dev)

    def signal_device(self, dev: Device) -> None:
        """Write the output eventfds for new 0 -> 1 transitions and the
        resample eventfds for EOIs the core recorded (abi.md SET_OUTPUT, IRQFD)."""
        for server, fd in dev.outputs.items():
            if lib.irqd_xics_output_rises(dev.x, server, self.u64) == 0:
                rises = self.u64[0]
                done = dev.signalled.get(server, rises)
                if rises != done:
                    dev.signalled[server] = rises
                    _write_eventfd(fd, (rises - done) & 0xFFFFFFFFFFFFFFFF)
        while True:
            n = lib.irqd_xics_drain_acks(dev.x, self.acks, 256)
            for i in range(n):
                for f in dev.irqfds.get(self.acks[i], ()):
                    if f.resample_fd is not None:
                        _write_eventfd(f.resample_fd)
            if n < 256:
                break

    # -- daemon-side operations ---------------------------------------------------
    def _python_op(self, conn: Conn, w: Work, pos: int) -> None:
        hdr = w.cbuf + pos
        req = ffi.new("struct irqd_msghdr *")
        ffi.memmove(req, hdr, 16)
        payload = w.data[pos + 16: pos + req.len]
        self.cur = conn
        try:
            handler = self.handlers[req.type]
            handler(conn, w, req, payload, hdr)
        except OpError as e:
            self._put_error(hdr, -e.err, e.msg, e.offs)
            log.debug("%s: type 0x%x failed: %s", conn, req.type, e.msg)
        except MemoryError:
            self._put_error(hdr, -errno.ENOMEM, "out of memory", -1)
        except Exception:  # never let one request take the daemon down
            log.exception("%s: internal error on message type 0x%x", conn, req.type)
            self._put_error(hdr, -errno.EIO, "internal error in irqd (logged)", -1)

    def _put(self, conn: Conn, req, mtype: int, flags: int, payload) -> None:
        """Append a data reply (payload: a pointer to its struct), moving full
        records to conn's queue as needed."""
        size = ffi.sizeof(payload[0])
        if lib.irqd_wire_put(self.out, req, mtype, flags, payload, size) < 0:
            self._collect(conn)
            if lib.irqd_wire_put(self.out, req, mtype, flags, payload, size) < 0:
                raise MemoryError

    def _put_error(self, hdr, err: int, msg: str | None, offs: int) -> None:
        m = msg.encode()[: lib.IRQD_WIRE_MSG_MAX - 1] if msg else ffi.NULL
        if lib.irqd_wire_put_error(self.out, hdr, err, m, offs) < 0:
            self._collect(self.cur)
            lib.irqd_wire_put_error(self.out, hdr, err, m, offs)

    def _ack(self, req, hdr) -> None:
        if req.flags & lib.IRQD_NLM_F_ACK:
            self._put_error(hdr, 0, None, -1)

    @staticmethod
    def _struct(ctype: str, payload: bytes):
        p = ffi.new(ctype + " *")
        ffi.memmove(p, payload, min(len(payload), ffi.sizeof(ctype)))
        return p

    def _device(self, handle: int) -> Device:
        return self.devices[handle]  # the dispatcher already checked it exists and is ours

    def op_hello(self, conn, w, req, payload, hdr) -> None:
        h = self._struct("struct irqd_hello", payload)
        rep = ffi.new("struct irqd_hello *", {
            "version": min(h.version, lib.IRQD_ABI_VERSION),
            "features": lib.IRQD_FEAT_RING,
            "max_record": MAX_RECORD,
            "max_devices": self.limits.max_devices_per_uid,
            "max_servers": lib.IRQD_MAX_SERVERS,
            "max_irqs": lib.IRQD_KVMPPC_XICS_NR_IRQS,
            "max_fds": MAX_FDS,
        })
        self._put(conn, req, req.type, 0, rep)
        self._ack(req, hdr)

    def op_create_device(self, conn, w, req, payload, hdr) -> None:
        c = self._struct("struct irqd_create_device", payload)
        if c.type != lib.IRQD_KVM_DEV_TYPE_XICS:
            raise OpError(errno.ENODEV, f"device type {c.type} is not supported (only 3, KVM_DEV_TYPE_XICS)", 16)
        if c.flags & lib.IRQD_CREATE_TEST:
            c.handle = 0
            self._put(conn, req, req.type, 0, c)
            self._ack(req, hdr)
            return
        owned = sum(1 for d in self.devices.values() if d.owner == conn.uid)
        if owned >= self.limits.max_devices_per_uid:
            raise OpError(errno.ENOSPC, f"uid {conn.uid} already has {owned} devices "
                                        f"(--max-devices-per-uid {self.limits.max_devices_per_uid})")
        if self.next_handle > 0xFFFFFFFF:
            raise OpError(errno.ENOSPC, "device handles exhausted")
        x = lib.irqd_xics_new()
        if x == ffi.NULL:
            raise OpError(errno.ENOMEM, "cannot allocate a device")
        handle = self.next_handle
        rc = lib.irqd_registry_add(self.reg, handle, x, conn.uid)
        if rc < 0:
            lib.irqd_xics_free(x)
            raise OpError(-rc, "cannot register the device")
        self.next_handle += 1
        dev = Device(handle, x, conn.uid, c.flags & lib.IRQD_CREATE_PERSIST)
        dev.holders.add(conn.id)
        conn.held.add(handle)
        self.devices[handle] = dev
        c.handle = handle
        self._put(conn, req, req.type, 0, c)
        self._ack(req, hdr)
        log.info("device %d created by %s%s", handle, conn, " (persist)" if dev.persist else "")

    def destroy_device(self, dev: Device) -> None:
        if self.devices.pop(dev.handle, None) is None:
            return
        ringd.drop(self, dev)  # stop and join its ring consumer before the core device goes
        for fs in dev.irqfds.values():
            for f in fs:
                self._drop_irqfd(f)
        dev.irqfds.clear()
        for fd in dev.outputs.values():
            _close(fd)
        dev.outputs.clear()
        lib.irqd_registry_remove(self.reg, dev.handle)
        lib.irqd_xics_free(dev.x)
        dev.x = ffi.NULL
        for cid in dev.holders:
            c = self.conns.get(cid)
            if c is not None:
                c.held.discard(dev.handle)
        if _malloc_trim is not None:
            _malloc_trim(0)  # a full device is 12 MiB of ICS blocks: give it back to the system now
        log.info("device %d destroyed", dev.handle)

    def op_destroy(self, conn, w, req, payload, hdr) -> None:
        handle = struct.unpack_from("<I", payload)[0]
        self.destroy_device(self._device(handle))
        conn.held.discard(handle)
        self._ack(req, hdr)

    def op_attach(self, conn, w, req, payload, hdr) -> None:
        handle = struct.unpack_from("<I", payload)[0]
        dev = self._device(handle)
        dev.holders.add(conn.id)
        dev.orphan_deadline = None
        conn.held.add(handle)
        self._ack(req, hdr)

    def op_list(self, conn, w, req, payload, hdr) -> None:
        info = ffi.new("struct irqd_device_info *")
        for handle in sorted(self.devices):
            dev = self.devices[handle]
            if conn.uid != 0 and dev.owner != conn.uid:
                continue
            info.handle = handle
            info.type = lib.IRQD_KVM_DEV_TYPE_XICS
            info.owner_uid = dev.owner
            info.flags = dev.flags
            info.nr_ics = lib.irqd_xics_nr_ics(dev.x)
            info.nr_sources = lib.irqd_xics_nr_sources(dev.x)
            info.nr_servers = lib.irqd_xics_nr_servers(dev.x)
            info.holders = len(dev.holders)
            info.generation = lib.irqd_xics_generation(dev.x)
            self._put(conn, req, req.type, lib.IRQD_NLM_F_MULTI, info)
        if lib.irqd_wire_put_done(self.out, req, 0) < 0:
            self._collect(conn)
            lib.irqd_wire_put_done(self.out, req, 0)  # an empty buffer always has room

    def _uid_fds(self, uid: int) -> int:
        return sum(d.nfds() for d in self.devices.values() if d.owner == uid) + ringd.nfds(self, uid)

    def _inflight_fds(self, uid: int) -> int:
        return sum(c.work.untaken() for c in self.conns.values() if c.uid == uid and c.work is not None)

    def op_ring_setup(self, conn, w, req, payload, hdr) -> None:
        """0x40 RING_SETUP (abi.h): irqd/ringd.py."""
        ringd.op_ring_setup(self, conn, w, req, payload, hdr)

    def _take_eventfds(self, conn, w, n: int, what: str) -> list[int]:
        if w.fd_refusal:
            w.take_fds(conn.wc, n)
            raise OpError(errno.ENOSPC, f"{what}: {w.fd_refusal}")
        if w.mismatch:
            raise OpError(errno.EBADF, f"{what} takes {n} fd(s) but the record's SCM_RIGHTS did not match "
                                       f"its fd-taking messages ({len(w.fds)} received)")
        fds = w.take_fds(conn.wc, n)
        if len(fds) != n:
            for fd in fds:
                _close(fd)
            raise OpError(errno.EBADF, f"{what} takes {n} fd(s), {len(fds)} left in the record")
        for fd in fds:
            if not _is_eventfd(fd):
                for f in fds:
                    _close(f)
                raise OpError(errno.EINVAL, f"{what}: fd is not an eventfd")
        return fds

    def op_irqfd(self, conn, w, req, payload, hdr) -> None:
        r = self._struct("struct irqd_irqfd", payload)
        dev = self._device(r.handle)
        deassign = r.flags & lib.IRQD_IRQFD_DEASSIGN
        resample = bool(r.flags & lib.IRQD_IRQFD_RESAMPLE) and not deassign
        nfds = 0 if deassign else (2 if resample else 1)
        fds = self._take_eventfds(conn, w, nfds, "IRQFD") if nfds else []
        if not (lib.IRQD_KVMPPC_XICS_FIRST_IRQ <= r.gsi < lib.IRQD_KVMPPC_XICS_NR_IRQS):
            for fd in fds:
                _close(fd)
            raise OpError(errno.EINVAL, f"gsi {r.gsi} is not a valid interrupt number (16 to 1048575)", 20)
        if deassign:
            for f in dev.irqfds.pop(r.gsi, []):
                self._drop_irqfd(f)
            lib.irqd_xics_set_resample(dev.x, r.gsi, 0)
            self._ack(req, hdr)
            return
        if self._uid_fds(dev.owner) + nfds > self.limits.max_fds_per_uid:
            for fd in fds:
                _close(fd)
            raise OpError(errno.ENOSPC, f"uid {dev.owner} would pass --max-fds-per-uid "
                                        f"{self.limits.max_fds_per_uid}")
        if resample:
            rc = lib.irqd_xics_set_resample(dev.x, r.gsi, 1)
            if rc < 0:
                for fd in fds:
                    _close(fd)
                raise OpError(-rc, f"cannot flag gsi {r.gsi} for resample")
        f = IrqFd(dev, r.gsi, fds[0], fds[1] if resample else None)
        dev.irqfds.setdefault(r.gsi, []).append(f)
        self.watch_irqfd(f)
        # a count already pending when assigned goes through KVM's irqfd_inject:
        # level 1 then 0 without RESAMPLE (a pulse for an LSI), level 1 with it
        try:
            if _read_eventfd(f.fd):
                self._fire(f, pulse=not resample)
        except OSError:
            pass
        self._ack(req, hdr)

    def _drop_irqfd(self, f: IrqFd) -> None:
        self.irqfd_by_fd.pop(f.fd, None)
        self.unwatch(f.fd, f.tag)
        _close(f.fd)
        if f.resample_fd is not None:
            _close(f.resample_fd)

    def trace_event(self, kind: int, conn_id: int, uid: int, data: bytes) -> None:
        """One trace entry: kind, connection, uid, length, then the bytes."""
        self.trace.write(TRACE_HEAD.pack(kind, conn_id, uid, len(data)) + data)

    def _fire(self, f: IrqFd, pulse: bool = False) -> None:
        dev = f.dev
        if dev.x == ffi.NULL:
            return
        if self.trace is not None:
            self.trace_event(TRACE_IRQFD, 0, 0, struct.pack("<III", dev.handle, f.gsi, pulse))
        if lib.irqd_xics_irq_line(dev.x, f.gsi, 1) < 0:
            dev.dropped += 1
        elif pulse:
            lib.irqd_xics_irq_line(dev.x, f.gsi, 0)
        self.signal_device(dev)

    def _on_irqfd(self, f: IrqFd) -> None:
        if self.irqfd_by_fd.get(f.fd) is not f:
            return
        try:
            if not _read_eventfd(f.fd):
                return
        except OSError:
            self._drop_irqfd(f)
            return
        self._fire(f)

    def op_set_output(self, conn, w, req, payload, hdr) -> None:
        r = self._struct("struct irqd_output", payload)
        dev = self._device(r.handle)
        deassign = r.flags & lib.IRQD_OUTPUT_DEASSIGN
        fds = [] if deassign else self._take_eventfds(conn, w, 1, "SET_OUTPUT")
        if lib.irqd_xics_output_rises(dev.x, r.server, self.u64) < 0:
            for fd in fds:
                _close(fd)
            raise OpError(errno.ENOENT, f"server {r.server} has no ICP", 20)
        old = dev.outputs.pop(r.server, None)
        if old is not None:
            _close(old)
        dev.signalled.pop(r.server, None)
        if not deassign:
            if old is None and self._uid_fds(dev.owner) + 1 > self.limits.max_fds_per_uid:
                _close(fds[0])
                raise OpError(errno.ENOSPC, f"uid {dev.owner} would pass --max-fds-per-uid "
                                            f"{self.limits.max_fds_per_uid}")
            dev.outputs[r.server] = fds[0]
            dev.signalled[r.server] = self.u64[0]
            if lib.irqd_xics_output_asserted(dev.x, r.server) == 1:
                _write_eventfd(fds[0])  # a restored vCPU must be woken
        self._ack(req, hdr)

    def op_dump(self, conn, w, req, payload, hdr) -> None:
        handle = struct.unpack_from("<I", payload)[0]
        dev = self._device(handle)
        w.dump = ffi.new("struct irqd_wire_dump *", {
            "kind": lib.IRQD_MSG_DUMP_STATE if req.type == lib.IRQD_MSG_DUMP_STATE else lib.IRQD_MSG_GET_STATS,
            "gen0": lib.irqd_xics_generation(dev.x)})
        w.dump_dev = dev
        w.dump_hdr = req

    # -- all-or-nothing restore -------------------------------------------------------
    def op_restore_begin(self, conn, w, req, payload, hdr) -> None:
        dev = self._device(struct.unpack_from("<I", payload)[0])
        if lib.irqd_xics_nr_sources(dev.x) or lib.irqd_xics_nr_servers(dev.x):
            raise OpError(errno.EEXIST, f"device {dev.handle} already has configured sources or ICPs: "
                                        "restore needs an empty device", 16)
        dev.stage = Stage(conn.id)
        lib.irqd_registry_set_busy(self.reg, dev.handle, conn.id)
        self._ack(req, hdr)

    def _end_restore(self, dev: Device) -> None:
        dev.stage = None
        if dev.x != ffi.NULL:
            lib.irqd_registry_set_busy(self.reg, dev.handle, 0)

    def _staged(self, dev: Device) -> Stage:
        if dev.stage is None:  # (a restore by another connection is EBUSY in the dispatcher)
            raise OpError(errno.EINVAL, f"device {dev.handle} has no restore in progress (RESTORE_BEGIN first)", 16)
        return dev.stage

    def op_restore_abort(self, conn, w, req, payload, hdr) -> None:
        dev = self._device(struct.unpack_from("<I", payload)[0])
        self._staged(dev)
        self._end_restore(dev)
        self._ack(req, hdr)

    def op_staged(self, conn, w, req, payload, hdr) -> None:
        handle = struct.unpack_from("<I", payload)[0]
        dev = self._device(handle)
        st = dev.stage
        assert st is not None and st.conn_id == conn.id  # the dispatcher only hands these over then
        if req.type == lib.IRQD_MSG_CONNECT_VCPU:
            server = struct.unpack_from("<I", payload, 4)[0]
            if server in st.servers:
                raise OpError(errno.EEXIST, f"server {server} is already staged", 20)
            st.servers.add(server)
        elif req.type == lib.IRQD_MSG_SET_DEVICE_ATTR:
            a = self._struct("struct irqd_device_attr", payload)
            if not (lib.IRQD_KVMPPC_XICS_FIRST_IRQ <= a.attr < lib.IRQD_KVMPPC_XICS_NR_IRQS):
                raise OpError(errno.ENOENT, f"attribute {a.attr} is not a valid interrupt number", 32)
            st.sources[a.attr] = a.value
        else:
            r = self._struct("struct irqd_one_reg", payload)
            st.icps[r.server] = r.value
        self._ack(req, hdr)

    def op_restore_commit(self, conn, w, req, payload, hdr) -> None:
        dev = self._device(struct.unpack_from("<I", payload)[0])
        st = self._staged(dev)
        self._end_restore(dev)
        blocks = len({irq >> lib.IRQD_KVMPPC_XICS_ICS_SHIFT for irq in st.sources})
        used = lib.irqd_registry_capacity(self.reg, dev.owner)
        if used + blocks * lib.IRQD_KVMPPC_XICS_IRQ_PER_ICS > self.limits.max_sources_per_uid:
            raise OpError(errno.ENOSPC, f"restore needs {blocks} ICS blocks, past uid {dev.owner}'s "
                                        f"source limit {self.limits.max_sources_per_uid}")
        x = lib.irqd_xics_new()
        if x == ffi.NULL:
            raise OpError(errno.ENOMEM, "cannot allocate the restored device")
        try:
            for server in sorted(st.servers):
                rc = lib.irqd_xics_connect_vcpu(x, server)
                if rc < 0:
                    raise OpError(-rc, f"restore failed at CONNECT_VCPU of server {server}")
            for irq in sorted(st.sources):
                rc = lib.irqd_xics_set_source(x, irq, st.sources[irq])
                if rc < 0:
                    raise OpError(-rc, f"restore failed at irq {irq}: state word 0x{st.sources[irq]:016x} "
                                       f"refused")
            for server in sorted(st.icps):
                rc = lib.irqd_xics_set_icp(x, server, st.icps[server])
                if rc < 0:
                    raise OpError(-rc, f"restore failed at server {server}: ICP word 0x{st.icps[server]:016x} "
                                       "refused")
            for gsi, fs in dev.irqfds.items():
                if any(f.resample_fd is not None for f in fs) and lib.irqd_xics_set_resample(x, gsi, 1) < 0:
                    raise OpError(errno.ENOMEM, f"cannot flag gsi {gsi} for resample")
        except OpError:
            lib.irqd_xics_free(x)
            raise
        lib.irqd_xics_set_generation(x, lib.irqd_xics_generation(dev.x) + 1)
        old = lib.irqd_registry_replace(self.reg, dev.handle, x)
        dev.x = x
        ringd.rebind(self, dev)  # its ring consumer leaves the old device before it is freed
        lib.irqd_xics_free(old)
        dev.signalled.clear()
        self._ack(req, hdr)
        log.info("device %d restored by %s: %d sources, %d servers", dev.handle, conn,
                 len(st.sources), len(st.icps) or len(st.servers))


# ---------------------------------------------------------------------------
# command line

def _octal(text: str) -> int:
    try:
        value = int(text, 8)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an octal file mode") from None
    if not 0 <= value <= 0o777:
        raise argparse.ArgumentTypeError(f"{text!r} is not a file mode (000-777)")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be positive")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="irqd",
        description="Userspace POWER XICS interrupt controller (Linux KVM semantics) served over a "
                    "SOCK_SEQPACKET Unix socket.  Runs in the foreground; under systemd it takes the "
                    "socket passed in LISTEN_FDS and reports readiness with sd_notify.",
    )
    p.add_argument("--socket", metavar="PATH", default=os.environ.get("IRQD_SOCKET", "/run/irqd/irqd.sock"),
                   help="listening socket path (default: $IRQD_SOCKET or /run/irqd/irqd.sock); "
                        "ignored when systemd passes a socket")
    p.add_argument("--mode", type=_octal, default=0o660, help="socket file mode, octal (default 0660)")
    p.add_argument("--group", help="group owning the socket file (default: the daemon's)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                   help="log verbosity (default info)")
    p.add_argument("--max-clients", type=_positive, default=1024,
                   help="connections served at once; more are accepted and closed (default 1024)")
    p.add_argument("--max-devices-per-uid", type=_positive, default=64,
                   help="devices one uid may own (default 64; ENOSPC past it)")
    p.add_argument("--max-sources-per-uid", type=_positive, default=4 * 1048576,
                   help="ICS source slots (1024 per ICS block) one uid's devices may hold "
                        "(default 4194304: four fully configured devices; ENOSPC past it)")
    p.add_argument("--max-fds-per-uid", type=_positive, default=4096,
                   help="irqfd and output eventfds one uid's devices may hold (default 4096)")
    p.add_argument("--max-queued-per-uid", type=_positive, default=32 << 20, metavar="BYTES",
                   help="reply bytes the daemon holds for one uid's connections that do not read "
                        "them; past it, that uid's connections are not read until they drain "
                        "(default 33554432: 32 MiB)")
    p.add_argument("--trace", metavar="PATH",
                   help="debugging and tests: append every received record and irqfd event, in the order "
                        "applied, to PATH (binary; see TRACE_HEAD in irqd/daemon.py)")
    p.add_argument("--state-file", metavar="PATH",
                   help="restart without losing state outside systemd: load devices from PATH at start "
                        "(if it exists) and save them there on SIGTERM")
    p.add_argument("--fd-store", action="store_true",
                   help="under systemd (FileDescriptorStoreMax=): on SIGTERM hand every device's state and "
                        "eventfds to the service's fd store, and take them back at the next start "
                        "(implied when systemd sets $FDSTORE)")
    p.add_argument("--reattach-grace", type=float, default=30.0, metavar="SECONDS",
                   help="after a restart, how long a restored device without holders waits for its "
                        "clients to ATTACH (default 30)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=getattr(logging, args.log_level.upper()), stream=sys.stderr,
                        format="irqd: %(levelname)s: %(message)s")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:  # eventfds are fds: use what the administrator allows
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass
    limits = Limits(args)
    listener, extra_fds = _inherited_listener()
    owned, path = None, None
    if listener is None:
        try:
            listener, owned = open_listener(args.socket, args.mode, args.group)
        except SocketPathError as e:
            log.error("%s", e)
            return 1
        path = args.socket
        log.info("listening on %s (mode %04o)", path, args.mode)
    else:
        log.info("using the listening socket passed by systemd")
    daemon = Daemon(listener, limits, owned, path)
    if args.trace:
        daemon.trace = open(args.trace, "ab", buffering=1 << 16)
        daemon.fast = False  # every record passes through Python to be logged
        daemon.on_shutdown.append(lambda d: d.trace.flush())
    daemon.install_signals()
    try:
        state.attach(daemon, args, extra_fds)
    except state.StateError as e:
        log.error("%s", e)
        daemon.remove_socket()
        return 1
    try:
        return daemon.serve_forever()
    finally:
        if not daemon.keep_socket:
            daemon.remove_socket()


if __name__ == "__main__":
    raise SystemExit(main())
