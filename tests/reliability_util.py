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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

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

    def __init__(self, *extra: str, path: str | None = None, preexec=None):
        self.dir = tempfile.mkdtemp(prefix="irqd-rel-")
        os.chmod(self.dir, 0o755)
        self.path = path or os.path.join(self.dir, "irqd.sock")
        self.log_path = os.path.join(self.dir, "irqd.log")
        self.log = open(self.log_path, "wb")
        cmd = [sys.executable, "-m", "irqd", "--socket", self.path, "--log-level", "info", *extra]
        env = dict(os.environ)
        env.pop("LISTEN_FDS", None)
        env.pop("LISTEN_PID", None)
        env.pop("NOTIFY_SOCKET", None)
        self.proc = subprocess.Popen(cmd, cwd=str(ROOT), stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                     preexec_fn=preexec)
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
