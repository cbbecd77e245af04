"""Shared helpers of the reliability tests (malformed input, fuzzing,
concurrency, faults, isolation).

Everything here packs and parses bytes with ``struct`` (abi.md sections 2-4)
instead of using irqd.client, so the tests can send what no well-behaved
client would, and keep working while the client library changes.  Numbers
come from ``irqd._core.lib`` (abi.h), never copied.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from irqd._core import lib

ROOT = Path(__file__).resolve().parent.parent
HDR = struct.Struct("<IHHII")
HDRLEN = 16
REQ = lib.IRQD_NLM_F_REQUEST
ACK = lib.IRQD_NLM_F_ACK
MULTI = lib.IRQD_NLM_F_MULTI
DUMP_INTR = lib.IRQD_NLM_F_DUMP_INTR
MAX_RECORD = lib.IRQD_MAX_RECORD
NR_IRQS = lib.IRQD_KVMPPC_XICS_NR_IRQS
ICP_STATE = lib.IRQD_KVM_REG_PPC_ICP_STATE

T = lib  # short alias: T.IRQD_MSG_*

# payload layouts (abi.h), little-endian
P_HELLO = struct.Struct("<8I")
P_CREATE = struct.Struct("<4I")
P_HANDLE = struct.Struct("<2I")
P_INFO = struct.Struct("<8IQ")
P_LEVEL = struct.Struct("<4I")
P_BATCH = struct.Struct("<2I")
P_ENTRY = struct.Struct("<2I")
P_ATTR = struct.Struct("<4IQQ")
P_ICS = struct.Struct("<4I")
P_VCPU = struct.Struct("<4I")
P_REG = struct.Struct("<2IQQ")
P_HCALL = struct.Struct("<2IQ4Q")
P_RTAS = struct.Struct("<4I12I")
P_IRQFD = struct.Struct("<4I")
P_OUTPUT = struct.Struct("<4I")
P_STATE = struct.Struct("<2IQ")
P_SSTATS = struct.Struct("<4I")
P_VSTATS = struct.Struct("<6I")


def align(n: int) -> int:
    return (n + 3) & ~3


def msg(mtype: int, payload: bytes = b"", flags: int = REQ | ACK, seq: int = 0, pid: int = 0,
        length: int | None = None) -> bytes:
    """One message, padded to 4 bytes; ``length`` overrides the header's len."""
    n = HDRLEN + len(payload) if length is None else length
    data = HDR.pack(n & 0xFFFFFFFF, mtype & 0xFFFF, flags & 0xFFFF, seq & 0xFFFFFFFF, pid & 0xFFFFFFFF) + payload
    return data + bytes(align(len(data)) - len(data))


@dataclass
class Reply:
    type: int
    flags: int
    seq: int
    pid: int
    payload: bytes

    @property
    def error(self) -> int:
        """ERROR's s32 (0 or -errno)."""
        assert self.type == T.IRQD_MSG_ERROR, self
        return struct.unpack_from("<i", self.payload)[0]

    @property
    def errno(self) -> int:
        return -self.error

    def attrs(self) -> dict[int, bytes]:
        """Extended-ack attributes after the capped echo (abi.md section 3)."""
        out: dict[int, bytes] = {}
        off = 4 + HDRLEN
        while off + 4 <= len(self.payload):
            alen, atype = struct.unpack_from("<HH", self.payload, off)
            if alen < 4:
                break
            out[atype] = self.payload[off + 4: off + alen]
            off += align(alen)
        return out

    @property
    def extack(self) -> str | None:
        a = self.attrs().get(lib.IRQD_NLMSGERR_ATTR_MSG)
        if a is None:
            return None
        return a.rstrip(b"\0").decode(errors="replace")

    @property
    def offs(self) -> int | None:
        a = self.attrs().get(lib.IRQD_NLMSGERR_ATTR_OFFS)
        return None if a is None else struct.unpack_from("<I", a)[0]

    @property
    def echoed(self) -> tuple:
        return HDR.unpack_from(self.payload, 4)


def parse_record(rec: bytes) -> list[Reply]:
    out = []
    off = 0
    while off + HDRLEN <= len(rec):
        n, t, f, s, p = HDR.unpack_from(rec, off)
        assert HDRLEN <= n <= len(rec) - off, f"daemon sent a malformed record: {rec!r}"
        out.append(Reply(t, f, s, p, bytes(rec[off + HDRLEN: off + n])))
        off += align(n)
        # abi.md section 3: an ERROR or a DONE is always the last message of its record
        assert t not in (T.IRQD_MSG_ERROR, T.IRQD_MSG_DONE) or off >= len(rec), \
            f"an ERROR/DONE is not the last message of its record: {rec!r}"

    assert off >= len(rec), f"trailing bytes in a reply record: {rec!r}"
    return out


class DaemonGone(Exception):
    pass


class Raw:
    """A raw SOCK_SEQPACKET connection to the daemon."""

    SYNC_BASE = 0xF0000000

    def __init__(self, path: str, timeout: float = 20.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.seq = 1
        self.sync_seq = self.SYNC_BASE
        self.records: list[bytes] = []       # every reply record received, in order

    def close(self) -> None:
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def send(self, rec: bytes, fds: Sequence[int] = ()) -> None:
        if fds:
            self.sock.sendmsg([rec], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))])
        else:
            self.sock.send(rec)

    def recv(self) -> list[Reply]:
        rec = self.sock.recv(MAX_RECORD + 64)
        if not rec:
            raise DaemonGone("connection closed by the daemon")
        self.records.append(rec)
        return parse_record(rec)

    def sync(self) -> list[Reply]:
        """Send a NOOP|ACK marker in its own record and return every reply
        that came before its acknowledgement (replies are in request order)."""
        self.sync_seq += 1
        marker = self.sync_seq
        self.send(msg(T.IRQD_MSG_NOOP, flags=REQ | ACK, seq=marker))
        got: list[Reply] = []
        while True:
            for r in self.recv():
                if r.type == T.IRQD_MSG_ERROR and r.seq == marker and r.error == 0:
                    return got
                got.append(r)

    def exchange(self, rec: bytes, fds: Sequence[int] = ()) -> list[Reply]:
        """Send one record (with fds), return all of its replies."""
        self.send(rec, fds)
        return self.sync()

    def one(self, mtype: int, payload: bytes = b"", flags: int = REQ | ACK) -> list[Reply]:
        return self.exchange(msg(mtype, payload, flags, self.next_seq()))

    def check_ok(self, mtype: int, payload: bytes = b"", flags: int = REQ | ACK) -> list[Reply]:
        replies = self.one(mtype, payload, flags)
        for r in replies:
            if r.type == T.IRQD_MSG_ERROR and r.error:
                raise AssertionError(f"type {mtype:#x} failed: errno {r.errno} {r.extack}")
        return replies

    # -- operations ---------------------------------------------------------------
    def hello(self) -> tuple:
        replies = self.one(T.IRQD_MSG_HELLO, P_HELLO.pack(1, 0, 0, 0, 0, 0, 0, 0), REQ)
        data = [r for r in replies if r.type == T.IRQD_MSG_HELLO]
        assert len(data) == 1, replies
        return P_HELLO.unpack(data[0].payload)

    def create_device(self, persist: bool = False) -> int:
        flags = lib.IRQD_CREATE_PERSIST if persist else 0
        replies = self.one(T.IRQD_MSG_CREATE_DEVICE, P_CREATE.pack(3, 0, flags, 0), REQ)
        data = [r for r in replies if r.type == T.IRQD_MSG_CREATE_DEVICE]
        if not data:
            e = replies[0]
            raise OSError(e.errno, e.extack)
        return P_CREATE.unpack(data[0].payload)[1]

    def create_ics(self, h: int, first: int, count: int, level: bool = False) -> None:
        self.check_ok(T.IRQD_MSG_CREATE_ICS, P_ICS.pack(h, first, count, 1 if level else 0))

    def connect_vcpu(self, h: int, server: int) -> None:
        self.check_ok(T.IRQD_MSG_CONNECT_VCPU, P_VCPU.pack(h, server, 0, 0))

    def set_xive(self, h: int, irq: int, server: int, prio: int) -> int:
        buf = [irq, server, prio] + [0] * 9
        r = self.check_ok(T.IRQD_MSG_RTAS, P_RTAS.pack(h, lib.IRQD_RTAS_SET_XIVE, 3, 1, *buf), REQ)
        return struct.unpack_from("<i", r[0].payload, 16 + 12)[0]

    def list_devices(self) -> list[tuple]:
        replies = self.one(T.IRQD_MSG_LIST_DEVICES, b"", REQ | lib.IRQD_NLM_F_DUMP)
        assert replies and replies[-1].type == T.IRQD_MSG_DONE, replies
        return [P_INFO.unpack(r.payload) for r in replies if r.type == T.IRQD_MSG_LIST_DEVICES]

    def dump_state(self, h: int, retries: int = 50) -> tuple[dict, dict]:
        """(sources {irq: word}, icps {server: word}); retried on DUMP_INTR."""
        for _ in range(retries):
            replies = self.one(T.IRQD_MSG_DUMP_STATE, P_HANDLE.pack(h, 0), REQ)
            if replies and replies[0].type == T.IRQD_MSG_ERROR:
                raise OSError(replies[0].errno, replies[0].extack)
            assert replies[-1].type == T.IRQD_MSG_DONE, replies
            if any(r.flags & DUMP_INTR for r in replies):
                continue
            src = {}
            icp = {}
            for r in replies:
                if r.type == T.IRQD_MSG_SOURCE_STATE:
                    _, irq, w = P_STATE.unpack(r.payload)
                    src[irq] = w
                elif r.type == T.IRQD_MSG_ICP_STATE:
                    _, srv, w = P_STATE.unpack(r.payload)
                    icp[srv] = w
            return src, icp
        raise AssertionError("DUMP_STATE interrupted every time")

    def get_stats(self, h: int) -> tuple[dict, dict]:
        replies = self.one(T.IRQD_MSG_GET_STATS, P_HANDLE.pack(h, 0), REQ)
        if replies and replies[0].type == T.IRQD_MSG_ERROR:
            raise OSError(replies[0].errno, replies[0].extack)
        src, srv = {}, {}
        for r in replies:
            if r.type == T.IRQD_MSG_SOURCE_STATS:
                _, irq, trig, deliv = P_SSTATS.unpack(r.payload)
                src[irq] = (trig, deliv)
            elif r.type == T.IRQD_MSG_SERVER_STATS:
                v = P_VSTATS.unpack(r.payload)
                srv[v[1]] = v[2:]
        return src, srv


# ---------------------------------------------------------------------------
# the daemon under test

def _proc_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class Daemon:
    """``python -m irqd --socket PATH *extra`` in a temporary directory."""

    def __init__(self, *extra: str, path: str | None = None, nofile: int | None = None):
        self.dir = tempfile.mkdtemp(prefix="irqd-rel-")
        os.chmod(self.dir, 0o755)
        self.path = path or os.path.join(self.dir, "irqd.sock")
        self.log_path = os.path.join(self.dir, "irqd.log")
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        cmd = [sys.executable, "-m", "irqd", "--socket", self.path, "--log-level", "info", *extra]
        env = dict(os.environ)
        env.pop("LISTEN_FDS", None)
        env.pop("LISTEN_PID", None)
        env.pop("NOTIFY_SOCKET", None)
        if nofile is not None:   # a small fd table (RLIMIT_NOFILE), through prlimit(1): no preexec_fn
            cmd = ["prlimit", f"--nofile={nofile}:{nofile}", "--", *cmd]
        self.proc = subprocess.Popen(cmd, cwd=str(ROOT), stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"irqd exited with {self.proc.returncode}: {self.log_text()}")
            try:
                with Raw(self.path, timeout=5) as c:
                    c.hello()
                return
            except (FileNotFoundError, ConnectionRefusedError):
                time.sleep(0.02)
        raise RuntimeError(f"irqd did not come up: {self.log_text()}")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def connect(self, timeout: float = 20.0) -> Raw:
        return Raw(self.path, timeout=timeout)

    def fd_count(self) -> int:
        return _proc_fds(self.pid)

    def rss_kib(self) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_text(self) -> str:
        if not self.log.closed:
            self.log.flush()
        try:
            return Path(self.log_path).read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def fork_as(uid: int, fn, *args) -> int:
    """Run fn(*args) in a child with uid/gid ``uid`` (no supplementary
    groups) that exits 0, or 1 if fn raised (said on stderr); returns the child's pid."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            fn(*args)
        except BaseException as e:  # noqa: BLE001 - report, exit without pytest's machinery
            os.write(2, f"child uid {uid}: {e!r}\n".encode())
            code = 1
        finally:
            os._exit(code)
    return pid


def wait_until(pred, timeout: float = 20.0, step: float = 0.01) -> bool:
    """Poll ``pred`` (no timing assertion: the timeout only bounds a hang)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


def settle_fds(d: Daemon, baseline: int, timeout: float = 20.0) -> int:
    """Wait until the daemon's fd count is back to ``baseline``; return it.
    A HELLO round trip first, so every earlier close has been processed."""
    def done() -> bool:
        try:
            with d.connect(timeout=5) as c:
                c.hello()
        except OSError:
            return False
        return d.fd_count() == baseline
    wait_until(done, timeout, 0.05)
    return d.fd_count()


def eventfd() -> int:
    return os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)


def close_all(fds: Iterable[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def setup_device(c: Raw, persist: bool = False, servers: Sequence[int] = (0, 1),
                 edge: tuple[int, int] = (32, 64), level: tuple[int, int] = (96, 32),
                 prio: int = 5) -> int:
    """A device with ICPs, an edge range and a level range, all unmasked
    (priority ``prio``, round robin over the servers)."""
    h = c.create_device(persist)
    for s in servers:
        c.connect_vcpu(h, s)
    c.create_ics(h, edge[0], edge[1], False)
    c.create_ics(h, level[0], level[1], True)
    irqs = list(range(edge[0], edge[0] + edge[1])) + list(range(level[0], level[0] + level[1]))
    for i, irq in enumerate(irqs):
        assert c.set_xive(h, irq, servers[i % len(servers)], prio) == 0
    return h


ERRNO_NAMES = {v: k for k, v in errno.errorcode.items()}


# ---------------------------------------------------------------------------
# trace replay on the reference model (linearizability check)

TRACE_HEAD = struct.Struct("<IQII")   # irqd/daemon.py TRACE_HEAD: kind, conn id, uid, length
TRACE_RECORD = 1
TRACE_IRQFD = 2


def read_trace(path: str) -> list[tuple[int, int, int, bytes]]:
    """[(kind, conn_id, uid, data)] in the order the daemon applied them."""
    data = Path(path).read_bytes()
    out = []
    off = 0
    while off < len(data):
        assert off + TRACE_HEAD.size <= len(data), "truncated trace entry"
        kind, cid, uid, n = TRACE_HEAD.unpack_from(data, off)
        off += TRACE_HEAD.size
        assert off + n <= len(data), "truncated trace entry"
        out.append((kind, cid, uid, data[off:off + n]))
        off += n
    return out


def split_record(rec: bytes) -> list[tuple[int, int, int, int, bytes]]:
    """Well-framed request record -> [(type, flags, seq, pid, payload)]."""
    out = []
    off = 0
    while off < len(rec):
        n, t, f, s, p = HDR.unpack_from(rec, off)
        out.append((t, f, s, p, rec[off + HDRLEN: off + n]))
        off += align(n)
    return out


def norm_reply(r: Reply) -> tuple:
    """What a reply must equal in the replay: ERROR -> errno; data -> type,
    flags without DUMP_INTR, payload."""
    if r.type == T.IRQD_MSG_ERROR:
        return ("ERR", r.errno)
    return (r.type, r.flags & ~DUMP_INTR, r.payload)


class _RDev:
    def __init__(self, model, owner: int, persist: bool):
        self.model = model
        self.owner = owner
        self.persist = persist
        self.holders: set[int] = set()
        self.stage: dict | None = None       # {"conn", "servers", "sources", "icps"}


class Replay:
    """Applies the daemon's trace, in order, to tests/model.py's XicsModel,
    one per device, with the daemon's own bookkeeping (handles, holders,
    staged restores) written from abi.md.  ``expected[(pid, seq)]`` is the
    list of normalised replies each request must have had.  Covers the
    well-formed requests the load tests send (no framing errors)."""

    def __init__(self, handles: dict | None = None):
        """``handles``: (pid, seq) -> the handle the daemon gave that
        CREATE_DEVICE, when the replay does not see every connection (a
        client replaying its own requests only); default: the daemon's
        counter, replayed."""
        from model import XicsModel  # tests/model.py
        self.XicsModel = XicsModel
        self.handles = handles
        self.devs: dict[int, _RDev] = {}
        self.next_handle = 1
        self.expected: dict[tuple[int, int], list[tuple]] = {}
        self.messages = 0
        self.irqfd_events = 0

    def run(self, trace) -> None:
        for kind, cid, uid, data in trace:
            if kind == TRACE_RECORD:
                for t, f, s, p, pl in split_record(data):
                    self.messages += 1
                    self.cur = (p, s)
                    self.expected[(p, s)] = self._one(cid, uid, t, f, pl)
            elif kind == TRACE_IRQFD:
                self.irqfd_events += 1
                handle, gsi, pulse = struct.unpack("<III", data)
                dev = self.devs[handle]
                try:
                    dev.model.irq_line(gsi, 1)
                    if pulse:
                        dev.model.irq_line(gsi, 0)
                except OSError:
                    pass

    # -- one message ----------------------------------------------------------
    def _one(self, cid: int, uid: int, t: int, f: int, pl: bytes) -> list[tuple]:
        ack = [("ERR", 0)] if f & ACK else []
        try:
            return self._op(cid, uid, t, f, pl, ack)
        except OSError as e:
            return [("ERR", e.errno)]

    def _dev(self, cid: int, uid: int, handle: int, t: int) -> _RDev:
        dev = self.devs.get(handle)
        if dev is None:
            raise OSError(errno.EBADF, "no device")
        if uid != 0 and uid != dev.owner:
            raise OSError(errno.EACCES, "not yours")
        if dev.stage is not None:
            staged_types = (T.IRQD_MSG_CONNECT_VCPU, T.IRQD_MSG_SET_DEVICE_ATTR, T.IRQD_MSG_SET_ONE_REG,
                            T.IRQD_MSG_RESTORE_COMMIT, T.IRQD_MSG_RESTORE_ABORT)
            if not (dev.stage["conn"] == cid and t in staged_types):
                raise OSError(errno.EBUSY, "being restored")
        return dev

    def _op(self, cid, uid, t, f, pl, ack):
        L = lib
        if t < 0x10:
            return ack
        if t == T.IRQD_MSG_HELLO:
            v = P_HELLO.unpack_from(pl)
            return [(t, 0, P_HELLO.pack(min(v[0], 1), 0, MAX_RECORD, *self.hello_limits))] + ack
        if t == T.IRQD_MSG_CREATE_DEVICE:
            ty, _, flags, _ = P_CREATE.unpack_from(pl)
            if self.handles is not None:
                h = self.handles[self.cur]
            else:
                h = self.next_handle
                self.next_handle += 1
            dev = _RDev(self.XicsModel(), uid, bool(flags & L.IRQD_CREATE_PERSIST))
            dev.holders.add(cid)
            self.devs[h] = dev
            return [(t, 0, P_CREATE.pack(ty, h, flags, 0))] + ack
        handle = struct.unpack_from("<I", pl)[0]
        dev = self._dev(cid, uid, handle, t)
        x = dev.model
        if t == T.IRQD_MSG_DESTROY_DEVICE:
            del self.devs[handle]
            x.close()
            return ack
        if t == T.IRQD_MSG_ATTACH:
            dev.holders.add(cid)
            return ack
        if t == T.IRQD_MSG_IRQ_LINE:
            _, irq, level, _ = P_LEVEL.unpack_from(pl)
            x.irq_line(irq, level)
            return ack
        if t == T.IRQD_MSG_IRQ_LINE_BATCH:
            _, count = P_BATCH.unpack_from(pl)
            x.irq_line_batch([P_ENTRY.unpack_from(pl, 8 + 8 * i) for i in range(count)])
            return ack
        if t == T.IRQD_MSG_CREATE_ICS:
            _, first, count, flags = P_ICS.unpack_from(pl)
            x.create_ics(first, count, bool(flags & 1))
            return ack
        if t == T.IRQD_MSG_CONNECT_VCPU:
            server = P_VCPU.unpack_from(pl)[1]
            if dev.stage is not None:
                if server in dev.stage["servers"]:
                    raise OSError(errno.EEXIST, "staged twice")
                dev.stage["servers"].add(server)
            else:
                x.connect_vcpu(server)
            return ack
        if t in (T.IRQD_MSG_SET_DEVICE_ATTR, T.IRQD_MSG_GET_DEVICE_ATTR):
            h, fl, group, res, attr, value = P_ATTR.unpack_from(pl)
            if t == T.IRQD_MSG_GET_DEVICE_ATTR:
                return [(t, 0, P_ATTR.pack(h, fl, group, res, attr, x.get_source(attr)))] + ack
            if dev.stage is not None:
                dev.stage["sources"][attr] = value
            else:
                x.set_source(attr, value)
            return ack
        if t in (T.IRQD_MSG_SET_ONE_REG, T.IRQD_MSG_GET_ONE_REG):
            h, server, rid, value = P_REG.unpack_from(pl)
            if t == T.IRQD_MSG_GET_ONE_REG:
                return [(t, 0, P_REG.pack(h, server, rid, x.get_icp(server)))] + ack
            if dev.stage is not None:
                dev.stage["icps"][server] = value
            else:
                x.set_icp(server, value)
            return ack
        if t == T.IRQD_MSG_HCALL:
            h, server, nr, *regs = P_HCALL.unpack_from(pl)
            st, r4, r5, r6 = x.hcall(server, nr, *regs)
            return [(t, 0, P_HCALL.pack(h, server, nr, st & (2**64 - 1), r4, r5, r6))] + ack
        if t == T.IRQD_MSG_RTAS:
            h, tok, nargs, nret, *buf = P_RTAS.unpack_from(pl)
            rets = x.rtas(tok, buf[:nargs], nret, nargs)
            for i, v in enumerate(rets):
                buf[nargs + i] = v & 0xFFFFFFFF
            return [(t, 0, P_RTAS.pack(h, tok, nargs, nret, *buf))] + ack
        if t == T.IRQD_MSG_DUMP_STATE:
            st = x.dump()
            out = [(T.IRQD_MSG_SOURCE_STATE, MULTI, P_STATE.pack(handle, irq, w)) for irq, w in sorted(st.sources.items())]
            out += [(T.IRQD_MSG_ICP_STATE, MULTI, P_STATE.pack(handle, s, w)) for s, w in sorted(st.icps.items())]
            return out + [(T.IRQD_MSG_DONE, MULTI, struct.pack("<i", 0))]
        if t == T.IRQD_MSG_GET_STATS:
            st = x.stats()
            out = [(T.IRQD_MSG_SOURCE_STATS, MULTI, P_SSTATS.pack(handle, irq, *v)) for irq, v in sorted(st.sources.items())]
            out += [(T.IRQD_MSG_SERVER_STATS, MULTI, P_VSTATS.pack(handle, s, *v)) for s, v in sorted(st.servers.items())]
            return out + [(T.IRQD_MSG_DONE, MULTI, struct.pack("<i", 0))]
        if t == T.IRQD_MSG_IRQFD:
            _, gsi, flags, _ = P_IRQFD.unpack_from(pl)
            if not (16 <= gsi < NR_IRQS):
                raise OSError(errno.EINVAL, "gsi")
            return ack
        if t == T.IRQD_MSG_RESTORE_BEGIN:
            if x._configured() or x.icps:
                raise OSError(errno.EEXIST, "not empty")
            dev.stage = {"conn": cid, "servers": set(), "sources": {}, "icps": {}}
            return ack
        if t == T.IRQD_MSG_RESTORE_ABORT:
            dev.stage = None
            return ack
        if t == T.IRQD_MSG_RESTORE_COMMIT:
            st, dev.stage = dev.stage, None
            if st is None:
                raise OSError(errno.EINVAL, "no restore in progress")
            nx = self.XicsModel()
            try:
                for s in sorted(st["servers"]):
                    nx.connect_vcpu(s)
                for irq in sorted(st["sources"]):
                    nx.set_source(irq, st["sources"][irq])
                for s in sorted(st["icps"]):
                    nx.set_icp(s, st["icps"][s])
            except OSError:
                nx.close()
                raise
            x.close()
            dev.model = nx
            return ack
        raise AssertionError(f"replay does not cover type {t:#x}")

    hello_limits = (64, lib.IRQD_MAX_SERVERS, NR_IRQS, lib.IRQD_MAX_FDS, 0)
