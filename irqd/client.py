"""Python client of the irqd daemon: :class:`Client` (one connection) and
:class:`RemoteXics` (one device over it, the daemon backend of
:class:`irqd.backend.XicsDevice`).

Connection.  ``Client(path)`` connects ``AF_UNIX``/``SOCK_SEQPACKET`` to
``path``, else ``$IRQD_SOCKET``, else ``/run/irqd/irqd.sock``
(:data:`irqd.protocol.DEFAULT_SOCKET`), and sends HELLO at once; the reply
is kept as :attr:`Client.hello` (version, features, limits).

Requests and replies (abi.md section 3).  Each call sends one record and
reads reply records until every message it sent is answered: a data reply,
an ERROR, or a dump's DONE.  Every message of every record is parsed (several
replies may share a record).  Failures raise :class:`irqd.errors.IrqdError`
built by :func:`irqd.errors.error_for` from the daemon's errno, its
extended-ack message and offset.  A lock serialises exchanges, so one
``Client`` may be shared by threads.

Fire and forget.  :meth:`RemoteXics.irq_line_nowait` and
:meth:`RemoteXics.batch_nowait` send without NLM_F_ACK: success costs no
reply.  A failure still gets its ERROR (no failure is silent); the client
collects those as they arrive (while sending, or during any later exchange)
and :meth:`Client.sync` (a NOOP round trip: replies come in order, so every
earlier message has been answered once its ack arrives) raises the first, with
``.errors`` listing all.  Sending drains incoming replies whenever the socket
is full, so a sender that never waits cannot deadlock with a daemon that
stops reading from clients that do not read.

Device lifetime (abi.md 0x11-0x13).  A device created by a connection is held
by it, and so is one it ATTACHes; a non-PERSIST device dies when its last
holder disconnects.  There is no "detach" message, so
:meth:`RemoteXics.close` means: if this client created the device, it is not
PERSIST and this connection is its only holder, DESTROY_DEVICE (exactly what
dropping the last hold would do); otherwise nothing (the hold goes when the
client closes).  :meth:`Client.close` closes the connection, dropping every
hold at once.

Transparent reconnect.  When the connection drops (the daemon restarted), the
next exchange reconnects: up to ``reconnect_attempts`` connects with
exponential backoff from ``reconnect_backoff`` seconds (capped at 1 s), a new
HELLO, and an ATTACH of every handle this client held (a restarted daemon
keeps holder-less non-PERSIST devices for its ``--reattach-grace``; handles
that no longer exist are dropped and listed in :attr:`Client.lost_handles`).
Then the failed request is retried once if it is safe: always when the send
itself failed (a SEQPACKET record is delivered whole or not at all), and
after a lost reply only for idempotent requests (HELLO, ATTACH, NOOP,
LIST_DEVICES, GET_*/HAS_*, DUMP_STATE, GET_STATS).  Otherwise
:class:`ConnectionLost` is raised: the request may or may not have been
applied.  Errors of fire-and-forget messages sent on the old connection are
lost with it, and a restore in progress is aborted by the daemon.
"""

from __future__ import annotations

import array
import dataclasses
import errno
import os
import re
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable, Sequence

from irqd import protocol as P
from irqd._core import lib
from irqd.backend import DeviceInfo, DeviceState, DeviceStats, XicsDevice
from irqd.errors import IrqdError, error_for

__all__ = ["Client", "ConnectionLost", "RemoteXics", "ServerHello"]

_T = {n[len("IRQD_MSG_") :]: getattr(lib, n) for n in dir(lib) if n.startswith("IRQD_MSG_")}
T_NOOP = _T["NOOP"]
T_ERROR = _T["ERROR"]
T_DONE = _T["DONE"]

REQ = P.F_REQUEST
ACK = P.F_ACK
DUMP = P.F_DUMP

IDEMPOTENT = frozenset(
    _T[n]
    for n in (
        "NOOP",
        "HELLO",
        "ATTACH",
        "LIST_DEVICES",
        "GET_DEVICE_ATTR",
        "HAS_DEVICE_ATTR",
        "GET_ONE_REG",
        "DUMP_STATE",
        "GET_STATS",
    )
)

_MSG_TRUNC = int(socket.MSG_TRUNC)  # plain ints: enum flag arithmetic costs ~1 us per call
_MSG_DONTWAIT = int(socket.MSG_DONTWAIT)

_ACK_HEAD = struct.Struct("<IHHIIi")  # header + ERROR's error field
_ACK_LEN = P.HDRLEN + 4 + P.HDRLEN  # ERROR(0): CAPPED echo, no TLVs

U32 = 0xFFFFFFFF
U64 = 0xFFFFFFFFFFFFFFFF
_BATCH_FAILED = re.compile(r"^(\d+) of (\d+) entries failed")


class ConnectionLost(ConnectionError):
    """The connection dropped while a non-idempotent request was in flight:
    the client reconnected, but the request may or may not have been applied."""


@dataclasses.dataclass(frozen=True)
class ServerHello:
    """The daemon's HELLO reply: ABI version, feature bits and limits."""

    version: int
    features: int
    max_record: int
    max_devices: int
    max_servers: int
    max_irqs: int
    max_fds: int


class _Wait:
    """What one sent message still waits for."""

    __slots__ = ("ack", "acked", "done", "error", "intr", "kind", "msgs")

    def __init__(self, kind: str, ack: bool):
        self.kind = kind  # "ack": an ERROR; "data": a reply (+ ERROR(0) with ack); "dump": up to DONE
        self.ack = ack
        self.done = False
        self.error: IrqdError | None = None
        self.msgs: list = []
        self.intr = False
        self.acked = False


class _Lost(Exception):
    """Internal: the connection dropped; ``sent`` says whether the record went out."""

    def __init__(self, sent: bool, cause: BaseException | None = None):
        super().__init__(str(cause))
        self.sent = sent
        self.cause = cause


def _u(value: int, bits: int, what: str) -> int:
    """A register value for a ``bits``-wide field: negative values (signed
    registers) wrap; anything that does not fit in ``bits`` is a ValueError."""
    if not isinstance(value, int):
        raise TypeError(f"{what}: expected int, got {type(value).__name__}")
    if not -(1 << (bits - 1)) <= value < (1 << bits):
        raise ValueError(f"{what}: {value:#x} does not fit in {bits} bits")
    return value & ((1 << bits) - 1)


def _s64(v: int) -> int:
    return v - (1 << 64) if v & (1 << 63) else v


def _s32(v: int) -> int:
    return v - (1 << 32) if v & (1 << 31) else v


class Client:
    """One connection to an irqd daemon (see the module docstring)."""

    def __init__(
        self,
        path: str | None = None,
        timeout: float | None = 10.0,
        reconnect_attempts: int = 8,
        reconnect_backoff: float = 0.05,
    ):
        self.path = path or os.environ.get("IRQD_SOCKET") or P.DEFAULT_SOCKET
        self.timeout = timeout
        self.reconnect_attempts = reconnect_attempts
        self.reconnect_backoff = reconnect_backoff
        self.lost_handles: list[int] = []
        self.reconnects = 0
        self._lock = threading.RLock()
        self._seq = 0
        self._waits: dict[int, _Wait] = {}
        self._held: set[int] = set()
        self._async_errors: list[IrqdError] = []
        self._batch_base: dict[int, int] = {}
        self._sock: socket.socket | None = None
        self._closed = False
        self.hello: ServerHello
        self._open()

    # -- connection ----------------------------------------------------------------
    def _open(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.path)
            # blocking socket with a kernel receive timeout: one syscall per recv
            sock.settimeout(None)
            if self.timeout is not None:
                sec = int(self.timeout)
                usec = int((self.timeout - sec) * 1e6)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", sec, usec))
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self._rbuf = bytearray(lib.IRQD_MAX_RECORD)
        self._waits.clear()
        self._batch_base.clear()
        self.hello = self._do_hello()
        if self.hello.max_record > len(self._rbuf):
            self._rbuf = bytearray(self.hello.max_record)

    def _do_hello(self) -> ServerHello:
        seq = self._next_seq()
        rec = P.pack(P.Hello, _T["HELLO"], REQ, seq, lib.IRQD_ABI_VERSION, 0, 0, 0, 0, 0, 0, 0)
        (w,) = self._exchange(rec, [(seq, "data", False)], retry=False)
        self._raise(w)
        v = w.msgs[0][1]
        return ServerHello(*v[:7])

    def _reconnect(self) -> None:
        """Reconnect with backoff, HELLO, re-ATTACH every held handle.  The
        old socket is closed only afterwards: if the daemon still has that
        connection (only our side failed), closing it first would drop the
        last hold of our non-PERSIST devices before the new ATTACH."""
        old = self._sock
        self._sock = None
        try:
            self._reconnect_from(old)
        finally:
            if old is not None:
                old.close()

    def _reconnect_from(self, old: socket.socket | None) -> None:
        last: BaseException | None = None
        for attempt in range(max(1, self.reconnect_attempts)):
            if attempt:
                time.sleep(min(1.0, self.reconnect_backoff * (2 ** (attempt - 1))))
            try:
                self._open()
                break
            except (OSError, _Lost) as e:
                last = e
                if self._sock is not None and self._sock is not old:
                    self._sock.close()
                self._sock = None
                self._waits.clear()
        else:
            raise ConnectionLost(
                f"irqd at {self.path}: reconnect failed after {self.reconnect_attempts} attempts: {last}"
            )
        self.reconnects += 1
        for h in sorted(self._held):
            seq = self._next_seq()
            rec = P.pack(P.Handle, _T["ATTACH"], REQ | ACK, seq, h, 0)
            (w,) = self._exchange(rec, [(seq, "ack", True)], retry=False)
            if w.error is not None:
                self._held.discard(h)
                self.lost_handles.append(h)

    def _drop_socket(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None
        self._waits.clear()

    def close(self) -> None:
        """Close the connection: every device this client held loses the
        hold (non-PERSIST devices with no other holder are destroyed)."""
        with self._lock:
            self._closed = True
            self._drop_socket()
            self._held.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def fileno(self) -> int:
        return self._sock.fileno() if self._sock else -1

    # -- low level ---------------------------------------------------------------------
    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & U32 or 1
        return self._seq

    def _send_record(self, rec: bytes, fds: Sequence[int] = ()) -> None:
        """Send one record; while the socket is full, read what the daemon
        sends (it stops reading from a client that does not read)."""
        sock = self._sock
        if sock is None:
            raise _Lost(False, ConnectionError("not connected"))
        anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())] if fds else []
        while True:
            try:
                if anc:
                    sock.sendmsg([rec], anc, _MSG_DONTWAIT)
                else:
                    sock.send(rec, _MSG_DONTWAIT)
                return
            except BlockingIOError:
                pass
            except (
                BrokenPipeError,
                ConnectionResetError,
                ConnectionRefusedError,
                ConnectionAbortedError,
            ) as e:
                raise _Lost(False, e) from e
            # full: wait for room or for replies to drain
            po = select.poll()
            po.register(sock, select.POLLIN | select.POLLOUT)
            ev = po.poll(None if self.timeout is None else self.timeout * 1000)
            if not ev:
                raise TimeoutError(f"irqd at {self.path}: send timed out")
            if ev[0][1] & (select.POLLIN | select.POLLHUP | select.POLLERR):
                self._recv_one()

    def _recv_one(self) -> None:
        """Read one record and account for every message in it."""
        sock = self._sock
        if sock is None:
            raise _Lost(True, ConnectionError("not connected"))
        try:
            # MSG_TRUNC: a SEQPACKET recv returns the record's real length
            n = sock.recv_into(self._rbuf, 0, _MSG_TRUNC)
        except BlockingIOError:
            raise TimeoutError(f"irqd at {self.path}: no reply within {self.timeout} s") from None
        except (ConnectionResetError, ConnectionAbortedError) as e:
            raise _Lost(True, e) from e
        if n == 0:  # records are never empty: this is EOF
            raise _Lost(True, ConnectionError("connection closed by irqd"))
        if n > len(self._rbuf):
            raise IrqdError(errno.EMSGSIZE, f"reply record of {n} bytes, larger than {len(self._rbuf)}")
        if n == _ACK_LEN:
            # the common reply, a lone ERROR(0) acknowledgement: no generic walk
            length, t, _, seq, _, code = _ACK_HEAD.unpack_from(self._rbuf)
            if length == n and t == T_ERROR and code == 0:
                w = self._waits.get(seq)
                if w is not None:
                    w.acked = w.done = True
                return
        rec = bytes(memoryview(self._rbuf)[:n])
        try:
            self._account(rec)
        except (P.FramingError, P.ShortMessage) as e:
            # the daemon never sends this; say so rather than guess around it
            raise error_for(errno.EPROTO, f"malformed reply record from irqd: {e}") from None

    def _account(self, rec: bytes) -> None:
        waits = self._waits
        for raw in P.walk(rec):
            w = waits.get(raw.seq)
            t = raw.type
            if t == T_ERROR:
                code = P.error_code(rec, raw)
                if w is None:
                    if code < 0:
                        self._async_errors.append(self._error(rec, raw))
                    continue
                if code < 0:
                    w.error = self._error(rec, raw)
                else:
                    w.acked = True
                w.done = True
            elif w is None:
                continue
            elif t == T_DONE:
                w.done = True
                w.intr = w.intr or bool(raw.flags & P.F_DUMP_INTR)
            else:
                w.msgs.append((t, self._decode(rec, raw)))
                w.intr = w.intr or bool(raw.flags & P.F_DUMP_INTR)
                if w.kind == "data" and not w.ack:
                    w.done = True

    @staticmethod
    def _decode(rec: bytes, raw: P.RawMsg):
        cls = P.class_for(raw.type, raw.flags)
        if cls is None or cls in (P.Error, P.IrqBatch):
            return P.decode(rec, raw)
        return P.unpack_payload(cls, rec, raw)

    def _error(self, rec: bytes, raw: P.RawMsg) -> IrqdError:
        m = P.decode(rec, raw)
        e = error_for(m.errno, m.message, m.offs)
        e.seq = raw.seq  # type: ignore[attr-defined]
        e.request_type = m["msg"]["type"]  # type: ignore[attr-defined]
        base = self._batch_base.pop(raw.seq, None)
        if e.request_type == _T["IRQ_LINE_BATCH"]:  # type: ignore[attr-defined]
            self._annotate_batch(e, base or 0)
        return e

    @staticmethod
    def _annotate_batch(e: IrqdError, base: int) -> None:
        idx = P.batch_entry_index(e.offset)
        e.index = None if idx is None else base + idx  # type: ignore[attr-defined]
        mt = _BATCH_FAILED.match(e.strerror or "")
        e.failed = int(mt.group(1)) if mt else (1 if idx is not None else 0)  # type: ignore[attr-defined]

    def _exchange(
        self,
        rec: bytes,
        expect: list[tuple[int, str, bool]],
        fds: Sequence[int] = (),
        retry: bool = True,
        idempotent: bool = False,
    ) -> list[_Wait]:
        """Send ``rec`` and wait until each (seq, kind, ack) in ``expect`` is
        answered.  Reconnects and retries as the module docstring says."""
        with self._lock:
            if self._closed:
                raise error_for(errno.EBADF, "client is closed")
            for attempt in (0, 1):
                waits = [_Wait(kind, ack) for _, kind, ack in expect]
                for (seq, _, _), w in zip(expect, waits):
                    self._waits[seq] = w
                try:
                    self._send_record(rec, fds)
                    for w in waits:
                        while not w.done:
                            self._recv_one()
                    return waits
                except _Lost as lost:
                    if not retry or attempt:
                        raise ConnectionLost(f"irqd at {self.path}: connection lost: {lost}") from lost.cause
                    self._reconnect()
                    if lost.sent and not idempotent:
                        raise ConnectionLost(
                            f"irqd at {self.path}: connection lost after the request was sent; "
                            "reconnected, but the request may or may not have been applied"
                        ) from lost.cause
                finally:
                    for seq, _, _ in expect:
                        self._waits.pop(seq, None)
            raise AssertionError("unreachable")

    @staticmethod
    def _raise(w: _Wait) -> None:
        if w.error is not None:
            raise w.error

    def _ack_fast(self, rec: bytes, seq: int, msg_type: int) -> None:
        """Send one message with NLM_F_ACK and wait for its ERROR: the
        trigger path, without _exchange's generality.  Falls back to it
        (reconnect rules included) when the connection drops."""
        if self._closed:
            raise error_for(errno.EBADF, "client is closed")
        w = _Wait("ack", True)
        waits = self._waits
        waits[seq] = w
        try:
            self._send_record(rec)
            while not w.done:
                self._recv_one()
        except _Lost as lost:
            waits.pop(seq, None)
            self._reconnect()
            if lost.sent and msg_type not in IDEMPOTENT:
                raise ConnectionLost(
                    f"irqd at {self.path}: connection lost after the request was sent; "
                    "reconnected, but the request may or may not have been applied"
                ) from lost.cause
            self._call(rec, seq, "ack", True, msg_type)  # never delivered: send it again, once
            return
        finally:
            waits.pop(seq, None)
        if w.error is not None:
            raise w.error

    def _call(
        self, rec: bytes, seq: int, kind: str, ack: bool, msg_type: int, fds: Sequence[int] = ()
    ) -> _Wait:
        (w,) = self._exchange(rec, [(seq, kind, ack)], fds, idempotent=msg_type in IDEMPOTENT)
        self._raise(w)
        return w

    def _simple(
        self,
        cls,
        msg_type: int,
        *values: int,
        kind: str = "ack",
        flags: int = REQ | ACK,
        fds: Sequence[int] = (),
    ) -> _Wait:
        with self._lock:
            seq = self._next_seq()
            rec = P.pack(cls, msg_type, flags, seq, *values)
            return self._call(rec, seq, kind, bool(flags & ACK) and kind != "dump", msg_type, fds)

    def _send_nowait(self, rec: bytes) -> None:
        """Fire and forget: send, absorbing a dropped connection once."""
        with self._lock:
            if self._closed:
                raise error_for(errno.EBADF, "client is closed")
            try:
                self._send_record(rec)
            except _Lost:
                self._reconnect()
                self._send_record(rec)  # never sent before: safe to resend

    # -- operations -------------------------------------------------------------------------
    def noop(self) -> None:
        """NOOP with ACK: one round trip."""
        self._simple(P.Empty, T_NOOP)

    def sync(self) -> None:
        """Round trip (NOOP with ACK), then raise the first ERROR that arrived
        for earlier fire-and-forget messages (``.errors`` lists them all)."""
        with self._lock:
            self.noop()
            self._batch_base.clear()
            errs, self._async_errors = self._async_errors, []
            if errs:
                first = errs[0]
                first.errors = errs  # type: ignore[attr-defined]
                raise first

    @property
    def pending_errors(self) -> list[IrqdError]:
        """Failures of fire-and-forget messages received so far (not yet raised by sync)."""
        return list(self._async_errors)

    def create_device(self, persist: bool = False, test: bool = False) -> RemoteXics | None:
        """CREATE_DEVICE type XICS.  ``persist``: the device outlives its
        connections (IRQD_CREATE_PERSIST).  ``test``: only check that the type
        is supported (IRQD_CREATE_TEST); returns None then."""
        flags = (lib.IRQD_CREATE_PERSIST if persist else 0) | (lib.IRQD_CREATE_TEST if test else 0)
        with self._lock:
            w = self._simple(
                P.CreateDevice,
                _T["CREATE_DEVICE"],
                lib.IRQD_KVM_DEV_TYPE_XICS,
                0,
                flags,
                0,
                kind="data",
                flags=REQ,
            )
            if test:
                return None
            handle = w.msgs[0][1][1]
            self._held.add(handle)
        return RemoteXics(self, handle, created=True, persist=persist)

    def attach(self, handle: int) -> RemoteXics:
        """ATTACH: this connection becomes a holder of ``handle`` too."""
        with self._lock:
            self._simple(P.Handle, _T["ATTACH"], _u(handle, 32, "handle"), 0)
            self._held.add(handle)
        info = self.device_info(handle)
        return RemoteXics(self, handle, created=False, persist=bool(info.flags & lib.IRQD_CREATE_PERSIST))

    def destroy(self, handle: int) -> None:
        """DESTROY_DEVICE: free the device now, for every holder."""
        with self._lock:
            self._simple(P.Handle, _T["DESTROY_DEVICE"], _u(handle, 32, "handle"), 0)
            self._held.discard(handle)

    def list_devices(self) -> list[DeviceInfo]:
        """LIST_DEVICES: this uid's devices (root: all), ascending handle."""
        w = self._simple(P.Empty, _T["LIST_DEVICES"], kind="dump", flags=REQ | DUMP)
        return [DeviceInfo(*v) for _, v in w.msgs]

    def device_info(self, handle: int) -> DeviceInfo:
        for d in self.list_devices():
            if d.handle == handle:
                return d
        raise error_for(errno.EBADF, f"handle {handle} names no device")

    @property
    def held(self) -> frozenset[int]:
        """Handles this connection holds (created or attached)."""
        return frozenset(self._held)


class RemoteXics(XicsDevice):
    """A device of an irqd daemon, through a :class:`Client`'s connection.

    Every :class:`irqd.backend.XicsDevice` method is one exchange (or a few:
    large batches, dumps, restore).  Extra daemon-side methods:
    :meth:`irq_line_nowait`, :meth:`batch_nowait`, :meth:`sync`."""

    def __init__(self, client: Client, handle: int, created: bool = False, persist: bool = False):
        self.client = client
        self.handle = handle
        self.created = created
        self.persist = persist
        self._closed = False

    def __repr__(self) -> str:
        return f"<RemoteXics handle={self.handle} path={self.client.path!r}>"

    def _check(self) -> None:
        if self._closed:
            raise error_for(errno.EBADF, f"device {self.handle} was closed by this client")

    def _ack(self, cls, msg_type: int, *values: int, fds: Sequence[int] = ()) -> None:
        self._check()
        self.client._simple(cls, msg_type, self.handle, *values, fds=fds)

    def _data(self, cls, msg_type: int, *values: int) -> tuple:
        self._check()
        return self.client._simple(cls, msg_type, self.handle, *values, kind="data", flags=REQ).msgs[0][1]

    # -- configuration ------------------------------------------------------------
    def create_ics(self, first: int, count: int, level: bool = False) -> None:
        self._ack(P.CreateIcs, _T["CREATE_ICS"], first, count, lib.IRQD_ICS_LEVEL if level else 0)

    def connect_vcpu(self, server: int) -> None:
        self._ack(P.ConnectVcpu, _T["CONNECT_VCPU"], server, 0, 0)

    # -- triggers ---------------------------------------------------------------------
    def irq_line(self, irq: int, level: int) -> None:
        self._check()
        c = self.client
        with c._lock:
            seq = c._next_seq()
            c._ack_fast(P.encode_irq_line(seq, self.handle, irq, level, REQ | ACK), seq, _T["IRQ_LINE"])

    def irq_line_nowait(self, irq: int, level: int) -> None:
        """IRQ_LINE without ACK: no reply on success; a failure is raised by
        a later :meth:`sync`."""
        self._check()
        c = self.client
        with c._lock:
            c._send_nowait(P.encode_irq_line(c._next_seq(), self.handle, irq, level))

    def _chunks(self, entries: Sequence[tuple[int, int]]) -> Iterable[tuple[int, Sequence[tuple[int, int]]]]:
        per = (self.client.hello.max_record - P.BATCH_HEAD_LEN) // P.BATCH_ENTRY_LEN
        if not isinstance(entries, (list, tuple)):
            entries = list(entries)
        if not entries:
            yield 0, entries
            return
        for base in range(0, len(entries), per):
            yield base, entries[base : base + per]

    def irq_line_batch(self, entries: Sequence[tuple[int, int]]) -> None:
        """IRQ_LINE_BATCH with ACK (split into messages of at most
        ``max_record`` bytes).  If entries failed, raises the first failure;
        ``.index`` is its entry index in ``entries`` (from
        NLMSGERR_ATTR_OFFS), ``.failed`` how many failed in all."""
        self._check()
        c = self.client
        chunks = list(self._chunks(entries))
        with c._lock:
            if len(chunks) == 1:
                seq = c._next_seq()
                rec = P.encode_irq_batch(seq, self.handle, chunks[0][1], REQ | ACK)
                c._ack_fast(rec, seq, _T["IRQ_LINE_BATCH"])
                return
            # several messages: send them all, then collect the answers (the
            # daemon handles them in order; the send path drains replies)
            waits: list[tuple[int, int, _Wait]] = []
            try:
                for base, chunk in chunks:
                    seq = c._next_seq()
                    w = _Wait("ack", True)
                    c._waits[seq] = w
                    waits.append((base, seq, w))
                    try:
                        c._send_record(P.encode_irq_batch(seq, self.handle, chunk, REQ | ACK))
                    except _Lost as lost:
                        c._reconnect()
                        raise ConnectionLost(
                            f"irqd at {c.path}: connection lost during a batch of {len(chunks)} messages; "
                            f"the first {len(waits) - 1} may or may not have been applied"
                        ) from lost.cause
                for _, _, w in waits:
                    while not w.done:
                        try:
                            c._recv_one()
                        except _Lost as lost:
                            c._reconnect()
                            raise ConnectionLost(
                                f"irqd at {c.path}: connection lost during a batch; "
                                "it may or may not have been applied"
                            ) from lost.cause
            finally:
                for _, seq, _ in waits:
                    c._waits.pop(seq, None)
        first: IrqdError | None = None
        failed = 0
        for base, _, w in waits:
            e = w.error
            if e is None:
                continue
            if getattr(e, "index", None) is not None:
                e.index += base  # type: ignore[attr-defined]
            failed += getattr(e, "failed", 1)
            if first is None:
                first = e
        if first is not None:
            first.failed = failed  # type: ignore[attr-defined]
            raise first

    def batch_nowait(self, entries: Sequence[tuple[int, int]]) -> None:
        """IRQ_LINE_BATCH without ACK; failures are raised by :meth:`sync`
        (``.index`` relative to this call's ``entries``)."""
        self._check()
        c = self.client
        with c._lock:
            for base, chunk in self._chunks(entries):
                seq = c._next_seq()
                if base:
                    if len(c._batch_base) > 65536:
                        c._batch_base.clear()
                    c._batch_base[seq] = base
                c._send_nowait(P.encode_irq_batch(seq, self.handle, chunk, REQ))

    def sync(self) -> None:
        """See :meth:`Client.sync` (errors of every device of the client)."""
        self.client.sync()

    # -- state words ----------------------------------------------------------------------
    def get_source(self, irq: int) -> int:
        v = self._data(
            P.DeviceAttr,
            _T["GET_DEVICE_ATTR"],
            0,
            lib.IRQD_KVM_DEV_XICS_GRP_SOURCES,
            0,
            _u(irq, 64, "irq"),
            0,
        )
        return v[5]

    def set_source(self, irq: int, word: int) -> None:
        self._ack(
            P.DeviceAttr,
            _T["SET_DEVICE_ATTR"],
            0,
            lib.IRQD_KVM_DEV_XICS_GRP_SOURCES,
            0,
            _u(irq, 64, "irq"),
            _u(word, 64, "word"),
        )

    def has_source(self, irq: int) -> bool:
        try:
            self._ack(
                P.DeviceAttr,
                _T["HAS_DEVICE_ATTR"],
                0,
                lib.IRQD_KVM_DEV_XICS_GRP_SOURCES,
                0,
                _u(irq, 64, "irq"),
                0,
            )
        except IrqdError as e:
            if e.errno == errno.ENXIO:
                return False
            raise
        return True

    def get_icp(self, server: int) -> int:
        return self._data(P.OneReg, _T["GET_ONE_REG"], server, lib.IRQD_KVM_REG_PPC_ICP_STATE, 0)[3]

    def set_icp(self, server: int, word: int) -> None:
        self._ack(P.OneReg, _T["SET_ONE_REG"], server, lib.IRQD_KVM_REG_PPC_ICP_STATE, _u(word, 64, "word"))

    # -- guest calls -----------------------------------------------------------------------
    def hcall(self, server: int, nr: int, *args: int) -> tuple[int, int, int, int]:
        if len(args) > 4:
            raise ValueError(f"hcall takes at most 4 arguments (r4-r7), got {len(args)}")
        regs = [_u(a, 64, f"r{4 + i}") for i, a in enumerate(args)] + [0] * (4 - len(args))
        v = self._data(P.Hcall, _T["HCALL"], server, _u(nr, 64, "nr"), *regs)
        return _s64(v[3]), v[4], v[5], v[6]

    def rtas(self, token: int, args: Sequence[int], nret: int, nargs: int | None = None) -> list[int]:
        nwords = lib.IRQD_RTAS_BUF_WORDS
        if nargs is None:
            nargs = len(args)
        if len(args) > nwords:
            raise ValueError(f"RTAS takes at most {nwords} words, got {len(args)} arguments")
        buf = [_u(a, 32, f"arg{i}") for i, a in enumerate(args)] + [0] * (nwords - len(args))
        v = self._data(P.Rtas, _T["RTAS"], token, nargs, nret, *buf)
        out = list(v[4:])
        return [_s32(w) for w in out[nargs : nargs + max(nret, 1)]]

    # -- eventfds -----------------------------------------------------------------------------
    def irqfd(self, gsi: int, fd: int, resample_fd: int | None = None) -> None:
        fds = [fd] if resample_fd is None else [fd, resample_fd]
        flags = 0 if resample_fd is None else lib.IRQD_IRQFD_RESAMPLE
        self._ack(P.Irqfd, _T["IRQFD"], gsi, flags, 0, fds=fds)

    def irqfd_deassign(self, gsi: int) -> None:
        self._ack(P.Irqfd, _T["IRQFD"], gsi, lib.IRQD_IRQFD_DEASSIGN, 0)

    def set_output(self, server: int, fd: int) -> None:
        self._ack(P.Output, _T["SET_OUTPUT"], server, 0, 0, fds=[fd])

    def clear_output(self, server: int) -> None:
        self._ack(P.Output, _T["SET_OUTPUT"], server, lib.IRQD_OUTPUT_DEASSIGN, 0)

    def open_ring(self, entries_log2: int = 10):
        """0x40 RING_SETUP: a shared-memory trigger ring for this device
        (:class:`irqd.ring.Ring`: post() / post_many() without a syscall)."""
        from irqd.ring import Ring

        return Ring(self, entries_log2)

    # -- migration, observation ------------------------------------------------------------
    def dump(self, retries: int = 32) -> DeviceState:
        """DUMP_STATE, retried while the reply carries NLM_F_DUMP_INTR."""
        self._check()
        for _ in range(retries):
            w = self.client._simple(P.Handle, _T["DUMP_STATE"], self.handle, 0, kind="dump", flags=REQ | DUMP)
            if w.intr:
                continue
            st = DeviceState()
            for t, v in w.msgs:
                (st.sources if t == _T["SOURCE_STATE"] else st.icps)[v[1]] = v[2]
            return st
        raise error_for(errno.EAGAIN, f"device {self.handle} kept changing during {retries} dumps")

    def restore(self, state: DeviceState, progress: Callable[[int, int], None] | None = None) -> None:
        """All-or-nothing restore: RESTORE_BEGIN, then CONNECT_VCPU for every
        server, SET_DEVICE_ATTR for every source (ascending), SET_ONE_REG for
        every ICP (ascending), many messages per record and unacknowledged
        (only failures answer), a NOOP round trip to collect failures, then
        RESTORE_COMMIT, or RESTORE_ABORT if anything failed (here or on the
        daemon).  ``progress(done, total)`` is called after each record."""
        self._check()
        c = self.client
        h = self.handle
        msgs: list[tuple[type, int, tuple]] = []
        for server in sorted(state.icps):
            msgs.append((P.ConnectVcpu, _T["CONNECT_VCPU"], (h, server, 0, 0)))
        for irq in sorted(state.sources):
            msgs.append(
                (
                    P.DeviceAttr,
                    _T["SET_DEVICE_ATTR"],
                    (h, 0, lib.IRQD_KVM_DEV_XICS_GRP_SOURCES, 0, irq, state.sources[irq]),
                )
            )
        for server in sorted(state.icps):
            msgs.append(
                (P.OneReg, _T["SET_ONE_REG"], (h, server, lib.IRQD_KVM_REG_PPC_ICP_STATE, state.icps[server]))
            )
        total = len(msgs)
        with c._lock:
            c._simple(P.Handle, _T["RESTORE_BEGIN"], h, 0)
            ok = False
            try:
                staged: set[int] = set()
                maxrec = c.hello.max_record
                i = 0
                while i < total:
                    parts: list[bytes] = []
                    size = 0
                    while i < total and size + P.packer(msgs[i][0]).size <= maxrec:
                        cls, t, vals = msgs[i]
                        seq = c._next_seq()
                        staged.add(seq)
                        parts.append(P.pack(cls, t, REQ, seq, *vals))
                        size += len(parts[-1])
                        i += 1
                    try:
                        c._send_record(b"".join(parts))
                    except _Lost as lost:
                        raise ConnectionLost(
                            f"irqd at {c.path}: connection lost during restore (the daemon aborts it)"
                        ) from lost.cause
                    if progress:
                        progress(i, total)
                # every staged SET has been answered once this round trip is
                before = len(c._async_errors)
                c.noop()
                errs = [e for e in c._async_errors[before:] if getattr(e, "seq", None) in staged]
                c._async_errors[before:] = [e for e in c._async_errors[before:] if e not in errs]
                if errs:
                    raise errs[0]
                c._simple(P.Handle, _T["RESTORE_COMMIT"], h, 0)
                ok = True
            finally:
                if not ok:
                    try:
                        c._simple(P.Handle, _T["RESTORE_ABORT"], h, 0)
                    except (IrqdError, OSError):
                        pass  # COMMIT failing ends the restore too; a lost connection aborts it

    def stats(self) -> DeviceStats:
        self._check()
        w = self.client._simple(P.Handle, _T["GET_STATS"], self.handle, 0, kind="dump", flags=REQ | DUMP)
        st = DeviceStats()
        for t, v in w.msgs:
            if t == _T["SOURCE_STATS"]:
                st.sources[v[1]] = (v[2], v[3])
            else:
                st.servers[v[1]] = tuple(v[2:6])  # type: ignore[assignment]
        return st

    def info(self) -> DeviceInfo:
        self._check()
        return self.client.device_info(self.handle)

    def destroy(self) -> None:
        """DESTROY_DEVICE now, whoever else holds it."""
        self._check()
        self.client.destroy(self.handle)
        self._closed = True

    def close(self) -> None:
        """Drop this client's use of the device: DESTROY_DEVICE if this client
        created it, it is not PERSIST and this connection is its only holder
        (what dropping the last hold does); otherwise nothing."""
        if self._closed:
            return
        self._closed = True
        c = self.client
        if not self.created or self.persist or c._closed:
            return
        try:
            info = c.device_info(self.handle)
            if info.holders <= 1:
                c.destroy(self.handle)
        except (IrqdError, ConnectionError):
            pass  # already gone
