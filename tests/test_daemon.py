"""The daemon over a real socket: abi.md section 3's check table row by row
(in its order), replies and acknowledgements, dumps, holders and lifetime,
backpressure, fd accounting, uid ownership.

Messages are packed by hand here (irqd.protocol's fast packers) so that
every malformed variant can be sent; replies are decoded with the codec.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import struct
import time

import pytest

from irqd import protocol as P
from irqd._core import lib
from conftest import Daemon
from reliability_util import fork_as

R, A = lib.IRQD_NLM_F_REQUEST, lib.IRQD_NLM_F_ACK
SET = 0xFFFFFFFF
HDR = struct.Struct("<IHHII")


def msg(mtype: int, payload: bytes, flags: int = R | A, seq: int = 0, length: int | None = None) -> bytes:
    ln = 16 + len(payload) if length is None else length
    m = HDR.pack(ln, mtype, flags, seq, 0) + payload
    return m + b"\0" * (-len(m) % 4)


class Raw:
    """A raw SOCK_SEQPACKET connection to the daemon."""

    def __init__(self, path: str):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.s.connect(path)
        self.seq = 100

    def close(self) -> None:
        self.s.close()

    def send(self, record: bytes, fds: list[int] = ()) -> None:
        if fds:
            socket.send_fds(self.s, [record], list(fds))
        else:
            self.s.send(record)

    def recv(self, timeout: float = 5.0) -> bytes | None:
        r, _, _ = select.select([self.s], [], [], timeout)
        return self.s.recv(1 << 17) if r else None

    def replies(self, n: int, timeout: float = 5.0) -> list:
        """Decode the next n reply messages (any records)."""
        got = []
        while len(got) < n:
            rec = self.recv(timeout)
            assert rec is not None, f"timed out after {len(got)} of {n} replies"
            got.extend(P.decode(rec, raw) for raw in P.walk(rec))
        assert len(got) == n, f"expected {n} replies, got {len(got)}"
        return got

    def records(self, timeout: float = 0.3) -> list[bytes]:
        out = []
        while (rec := self.recv(timeout)) is not None:
            out.append(rec)
        return out

    def call(self, mtype: int, payload: bytes, flags: int = R | A) -> list:
        """One request; returns its replies up to and including the ERROR."""
        self.seq += 1
        self.send(msg(mtype, payload, flags, self.seq))
        out = []
        while True:
            rec = self.recv()
            assert rec is not None, "no reply"
            for raw in P.walk(rec):
                m = P.decode(rec, raw)
                assert raw.seq == self.seq
                out.append(m)
                if raw.type in (lib.IRQD_MSG_ERROR, lib.IRQD_MSG_DONE):
                    return out

    def create(self, flags: int = 0) -> int:
        rep = self.call(lib.IRQD_MSG_CREATE_DEVICE, struct.pack("<4I", 3, 0, flags, 0))
        assert rep[-1]["error"] == 0, rep[-1]
        return rep[0]["handle"]

    def ok(self, mtype: int, payload: bytes) -> list:
        rep = self.call(mtype, payload)
        assert rep[-1]["error"] == 0, (hex(mtype), errmsg(rep[-1]))
        return rep

    def setup(self) -> int:
        """A device with server 0 (CPPR open), MSIs 16..31 at priority 5."""
        h = self.create()
        self.ok(lib.IRQD_MSG_CREATE_ICS, struct.pack("<4I", h, 16, 16, 0))
        self.ok(lib.IRQD_MSG_CONNECT_VCPU, struct.pack("<4I", h, 0, 0, 0))
        self.ok(lib.IRQD_MSG_HCALL, struct.pack("<IIQ4Q", h, 0, lib.IRQD_H_CPPR, 0xFF, 0, 0, 0))
        for irq in range(16, 32):
            self.ok(lib.IRQD_MSG_RTAS, struct.pack("<4I12I", h, 1, 3, 1, irq, 0, 5, *[0] * 9))
        return h

    def dump(self, h: int) -> list[tuple[int, int, int]]:
        rep = self.call(lib.IRQD_MSG_DUMP_STATE, struct.pack("<2I", h, 0), flags=R)
        assert rep[-1]["header"]["type"] == lib.IRQD_MSG_DONE, rep[-1]
        return [(m["header"]["type"], m.get("irq", m.get("server")), m["state"]) for m in rep[:-1]]

    def devices(self) -> list[tuple]:
        rep = self.call(lib.IRQD_MSG_LIST_DEVICES, b"", flags=R)
        return [(m["handle"], m["owner_uid"], m["flags"], m["holders"], m["generation"]) for m in rep[:-1]]


def errmsg(m) -> str:
    return m.get_attr("NLMSGERR_ATTR_MSG") if hasattr(m, "get_attr") else str(m)


def err_of(m) -> tuple[int, str | None, int | None]:
    """(errno, extack message, offset) of an ERROR message."""
    assert m["header"]["type"] == lib.IRQD_MSG_ERROR, m
    return -m["error"], m.get_attr("NLMSGERR_ATTR_MSG"), m.get_attr("NLMSGERR_ATTR_OFFS")


@pytest.fixture
def raw(daemon):
    conns = []

    def connect():
        c = Raw(daemon.path)
        conns.append(c)
        return c

    yield connect
    for c in conns:
        c.close()


# ---------------------------------------------------------------------------
# abi.md section 3: every check row, in order

def assert_failure(c: Raw, h: int, record: bytes, err: int, offs: int | None = "any", fds=()):
    before_dump, before_list = c.dump(h), c.devices()
    c.send(record, fds)
    rec = c.recv()
    assert rec is not None, "no ERROR for a failing request"
    msgs = [P.decode(rec, r) for r in P.walk(rec)]
    e, text, off = err_of(msgs[-1])
    assert e == err, f"expected {errno.errorcode[err]}, got {errno.errorcode.get(e, e)}: {text}"
    assert text, "failure without an extack message"
    assert msgs[-1]["header"]["flags"] & lib.IRQD_NLM_F_CAPPED
    assert msgs[-1]["header"]["flags"] & lib.IRQD_NLM_F_ACK_TLVS
    if offs != "any":
        assert off == offs, f"NLMSGERR_ATTR_OFFS {off}, expected {offs}"
    assert c.dump(h) == before_dump, "a failed request changed the device"
    assert c.devices() == before_list, "a failed request changed LIST_DEVICES"
    return text


def test_check1_record_longer_than_max_record_is_emsgsize_and_dropped(raw):
    c = raw()
    h = c.setup()
    big = msg(lib.IRQD_MSG_IRQ_LINE, struct.pack("<4I", h, 16, SET, 0))
    record = big + b"\0" * (lib.IRQD_MAX_RECORD + 64 - len(big))
    c.s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    assert_failure(c, h, record, errno.EMSGSIZE, offs=None)


def test_check2_len_below_16_or_past_the_record_drops_the_rest(raw):
    c = raw()
    h = c.setup()
    good = msg(lib.IRQD_MSG_IRQ_LINE, struct.pack("<4I", h, 16, SET, 0), seq=7)
    # len 8: EINVAL, and the valid trigger after it is not applied (rest dropped)
    assert_failure(c, h, msg(lib.IRQD_MSG_NOOP, b"", length=8) + good, errno.EINVAL)
    assert_failure(c, h, msg(lib.IRQD_MSG_NOOP, b"\0" * 8, length=64) + good, errno.EINVAL)
    assert c.records(0.2) == []
    # fewer than 16 bytes left at the end: the echo is zero-padded
    c.send(msg(lib.IRQD_MSG_NOOP, b"", flags=R) + b"\x05\x00\x00\x00\x15\x00")
    rec = c.recv()
    m = P.decode(rec)
    assert -m["error"] == errno.EINVAL
    assert rec[20:36] == b"\x05\x00\x00\x00\x15\x00" + b"\0" * 10


@pytest.mark.parametrize("flags", [A, R | 0x8, R | 0x40, R | 0x1000, 0])
def test_check3_missing_request_or_unknown_header_flags(raw, flags):
    c = raw()
    h = c.setup()
    assert_failure(c, h, msg(lib.IRQD_MSG_IRQ_LINE, struct.pack("<4I", h, 16, SET, 0), flags=flags),
                   errno.EINVAL, offs=6)


@pytest.mark.parametrize("mtype", [0x0F + 0x30, 0x23, 0x24, 0x26, 0x2A, 0x3F, 0xFFFF])
def test_check4_unknown_type_is_eopnotsupp(raw, mtype):
    c = raw()
    h = c.setup()
    assert_failure(c, h, msg(mtype, struct.pack("<4I", h, 16, SET, 0)), errno.EOPNOTSUPP, offs=4)


def test_check5_short_payload_and_check6_extensible_struct(raw):
    c = raw()
    h = c.setup()
    assert_failure(c, h, msg(lib.IRQD_MSG_IRQ_LINE, struct.pack("<3I", h, 16, SET)), errno.EINVAL)
    # longer with a non-zero extra byte: E2BIG at that byte
    assert_failure(c, h, msg(lib.IRQD_MSG_IRQ_LINE, struct.pack("<4I", h, 16, SET, 0) + b"\0\0\1\0"),
                   errno.E2BIG, offs=16 + 16 + 2)
    # longer with zero bytes: accepted (extensible-struct rule) and applied
    c.ok(lib.IRQD_MSG_IRQ_LINE, struct.pack("<4I", h, 16, SET, 0) + b"\0" * 8)
    assert dict((i, s) for t, i, s in c.dump(h) if t == lib.IRQD_MSG_SOURCE_STATE)[16] == 0x0000080500000000


def test_check7_reserved_fields_and_payload_flags(raw):
    c = raw()
    h = c.setup()
    cases = [
        (lib.IRQD_MSG_IRQ_LINE, struct.pack("<4I", h, 16, SET, 1), 28),
        (lib.IRQD_MSG_SET_DEVICE_ATTR, struct.pack("<4I2Q", h, 1, 1, 0, 16, 0), 20),
        (lib.IRQD_MSG_GET_DEVICE_ATTR, struct.pack("<4I2Q", h, 0, 1, 9, 16, 0), 28),
        (lib.IRQD_MSG_CREATE_ICS, struct.pack("<4I", h, 100, 1, 2), 28),
        (lib.IRQD_MSG_CONNECT_VCPU, struct.pack("<4I", h, 1, 1, 0), 24),
        (lib.IRQD_MSG_CONNECT_VCPU, struct.pack("<4I", h, 1, 0, 1), 28),
        (lib.IRQD_MSG_DUMP_STATE, struct.pack("<2I", h, 1), 20),
        (lib.IRQD_MSG_IRQFD, struct.pack("<4I", h, 16, 4 | 1, 0), 24),
        (lib.IRQD_MSG_SET_OUTPUT, struct.pack("<4I", h, 0, 1, 5), 28),
        (lib.IRQD_MSG_CREATE_DEVICE, struct.pack("<4I", 3, 0, 4, 0), 24),
        (lib.IRQD_MSG_HELLO, struct.pack("<8I", 1, 0, 0, 0, 0, 0, 0, 1), 44),
    ]
    for mtype, payload, offs in cases:
        assert_failure(c, h, msg(mtype, payload), errno.EINVAL, offs=offs)


def test_check8_unknown_handle_is_ebadf_for_every_handle_operation(raw):
    c = raw()
    h = c.setup()
    bad = h + 1000
    payloads = {
        lib.IRQD_MSG_DESTROY_DEVICE: struct.pack("<2I", bad, 0),
        lib.IRQD_MSG_ATTACH: struct.pack("<2I", bad, 0),
        lib.IRQD_MSG_IRQ_LINE: struct.pack("<4I", bad, 16, SET, 0),
        lib.IRQD_MSG_IRQ_LINE_BATCH: struct.pack("<2I", bad, 0),
        lib.IRQD_MSG_GET_DEVICE_ATTR: struct.pack("<4I2Q", bad, 0, 1, 0, 16, 0),
        lib.IRQD_MSG_CREATE_ICS: struct.pack("<4I", bad, 100, 1, 0),
        lib.IRQD_MSG_CONNECT_VCPU: struct.pack("<4I", bad, 1, 0, 0),
        lib.IRQD_MSG_GET_ONE_REG: struct.pack("<IIQQ", bad, 0, lib.IRQD_KVM_REG_PPC_ICP_STATE, 0),
        lib.IRQD_MSG_HCALL: struct.pack("<IIQ4Q", bad, 0, lib.IRQD_H_XIRR, 0, 0, 0, 0),
        lib.IRQD_MSG_RTAS: struct.pack("<4I12I", bad, 2, 1, 3, 16, *[0] * 11),
        lib.IRQD_MSG_IRQFD: struct.pack("<4I", bad, 16, 1, 0),
        lib.IRQD_MSG_SET_OUTPUT: struct.pack("<4I", bad, 0, 1, 0),
        lib.IRQD_MSG_DUMP_STATE: struct.pack("<2I", bad, 0),
        lib.IRQD_MSG_GET_STATS: struct.pack("<2I", bad, 0),
        lib.IRQD_MSG_RESTORE_BEGIN: struct.pack("<2I", bad, 0),
        lib.IRQD_MSG_RESTORE_COMMIT: struct.pack("<2I", bad, 0),
        lib.IRQD_MSG_RESTORE_ABORT: struct.pack("<2I", bad, 0),
    }
    for mtype, payload in payloads.items():
        assert_failure(c, h, msg(mtype, payload), errno.EBADF, offs=16)


def test_checks_run_in_table_order(raw):
    """A message wrong in several ways fails with the first row's errno."""
    c = raw()
    h = c.setup()
    bad = h + 1000
    # unknown header flag + unknown type -> flags first (EINVAL)
    assert_failure(c, h, msg(0x3E, b"", flags=R | 0x8), errno.EINVAL, offs=6)
    # unknown type + short payload -> EOPNOTSUPP
    assert_failure(c, h, msg(0x3E, b""), errno.EOPNOTSUPP)
    # short payload + bad handle -> EINVAL
    assert_failure(c, h, msg(lib.IRQD_MSG_IRQ_LINE, struct.pack("<2I", bad, 16)), errno.EINVAL)
    # reserved set + bad handle -> EINVAL
    assert_failure(c, h, msg(lib.IRQD_MSG_IRQ_LINE, struct.pack("<4I", bad, 16, SET, 1)), errno.EINVAL)
    # bad handle + bad level -> EBADF
    assert_failure(c, h, msg(lib.IRQD_MSG_IRQ_LINE, struct.pack("<4I", bad, 16, 7, 0)), errno.EBADF)


def test_check10_fd_count_mismatch_is_ebadf_for_fd_messages_only(daemon, raw):
    c = raw()
    h = c.setup()
    base = settled_fd_count(daemon)
    efds = [os.eventfd(0) for _ in range(3)]
    try:
        # two IRQFDs (1 fd each) and a trigger, but three fds sent
        record = (msg(lib.IRQD_MSG_IRQFD, struct.pack("<4I", h, 16, 0, 0), seq=1)
                  + msg(lib.IRQD_MSG_IRQ_LINE, struct.pack("<4I", h, 17, SET, 0), seq=2)
                  + msg(lib.IRQD_MSG_IRQFD, struct.pack("<4I", h, 18, 0, 0), seq=3))
        c.send(record, efds)
        rep = c.replies(3)
        assert [err_of(m)[0] for m in rep] == [errno.EBADF, 0, errno.EBADF]
        assert all(err_of(m)[1] for m in (rep[0], rep[2]))
        src = dict((i, s) for t, i, s in c.dump(h) if t == lib.IRQD_MSG_SOURCE_STATE)
        assert src[17] == 0x0000080500000000  # the trigger in between was applied
        assert daemon.fd_count() == base, "received fds were not all closed"
        # no fds at all for an fd-taking message
        assert_failure(c, h, msg(lib.IRQD_MSG_SET_OUTPUT, struct.pack("<4I", h, 0, 0, 0)), errno.EBADF)
        assert daemon.fd_count() == base
    finally:
        for fd in efds:
            os.close(fd)


def test_check11_device_limit_is_enospc():
    d = Daemon("--max-devices-per-uid", "2")
    try:
        c = Raw(d.path)
        c.create()
        h = c.create()
        before = c.devices()
        rep = c.call(lib.IRQD_MSG_CREATE_DEVICE, struct.pack("<4I", 3, 0, 0, 0))
        e, text, _ = err_of(rep[-1])
        assert e == errno.ENOSPC and "max-devices-per-uid" in text
        assert c.devices() == before
        hello = c.call(lib.IRQD_MSG_HELLO, struct.pack("<8I", 1, 0, 0, 0, 0, 0, 0, 0))[0]
        assert hello["max_devices"] == 2
        c.ok(lib.IRQD_MSG_DESTROY_DEVICE, struct.pack("<2I", h, 0))
        c.create()  # room again
        c.close()
    finally:
        assert d.stop() == 0


def test_source_limit_counts_ics_blocks_and_is_enospc():
    d = Daemon("--max-sources-per-uid", str(3 * 1024))
    try:
        c = Raw(d.path)
        h = c.create()
        c.ok(lib.IRQD_MSG_CREATE_ICS, struct.pack("<4I", h, 16, 2000, 0))  # ICS 0 and 1
        before = c.dump(h)
        rep = c.call(lib.IRQD_MSG_CREATE_ICS, struct.pack("<4I", h, 3000, 2000, 0))  # ICS 2, 3, 4
        assert err_of(rep[-1])[0] == errno.ENOSPC
        assert c.dump(h) == before
        c.ok(lib.IRQD_MSG_SET_DEVICE_ATTR, struct.pack("<4I2Q", h, 0, 1, 0, 9000, 0xFF00000000))  # 3rd block
        before = c.dump(h)
        rep = c.call(lib.IRQD_MSG_SET_DEVICE_ATTR, struct.pack("<4I2Q", h, 0, 1, 0, 20000, 0xFF00000000))
        assert err_of(rep[-1])[0] == errno.ENOSPC
        assert c.dump(h) == before
        c.ok(lib.IRQD_MSG_CREATE_ICS, struct.pack("<4I", h, 9100, 100, 0))  # inside an existing block: fine
        c.close()
    finally:
        assert d.stop() == 0


# ---------------------------------------------------------------------------
# replies

def test_hello_reports_the_real_limits(raw):
    c = raw()
    rep = c.call(lib.IRQD_MSG_HELLO, struct.pack("<8I", 7, 0xFFFF, 0, 0, 0, 0, 0, 0))
    hello, ack = rep
    assert hello["version"] == 1  # min(7, 1); unknown feature bits are not an error
    assert hello["max_record"] == lib.IRQD_MAX_RECORD
    assert hello["max_servers"] == lib.IRQD_MAX_SERVERS
    assert hello["max_irqs"] == 1048576
    assert hello["max_fds"] == 253
    assert hello["max_devices"] == 64
    assert err_of(ack)[0] == 0


def test_ack_rules_and_several_messages_per_record(raw):
    c = raw()
    h = c.setup()
    # no ACK: a successful trigger is silent, a failing one is not
    c.send(msg(lib.IRQD_MSG_IRQ_LINE, struct.pack("<4I", h, 16, SET, 0), flags=R, seq=1))
    assert c.records(0.2) == []
    c.send(msg(lib.IRQD_MSG_IRQ_LINE, struct.pack("<4I", h, 48, SET, 0), flags=R, seq=2))
    e, text, off = err_of(c.replies(1)[0])
    assert (e, off) == (errno.EINVAL, 20) and "48" in text
    # GET with ACK: the data reply then ERROR(0), the ERROR last in its record
    c.send(msg(lib.IRQD_MSG_GET_DEVICE_ATTR, struct.pack("<4I2Q", h, 0, 1, 0, 16, 0), seq=3))
    rec = c.recv()
    raws = list(P.walk(rec))
    assert [r.type for r in raws] == [lib.IRQD_MSG_GET_DEVICE_ATTR, lib.IRQD_MSG_ERROR]
    assert P.decode(rec, raws[0])["value"] == 0x0000080500000000
    # HAS is always acknowledged, ACK or not; NOOP with ACK is acknowledged
    c.send(msg(lib.IRQD_MSG_HAS_DEVICE_ATTR, struct.pack("<4I2Q", h, 0, 1, 0, 5, 0), flags=R, seq=4)
           + msg(lib.IRQD_MSG_NOOP, b"", seq=5)
           + msg(lib.IRQD_MSG_HAS_DEVICE_ATTR, struct.pack("<4I2Q", h, 0, 1, 0, 5000, 0), flags=R, seq=6))
    rep = c.replies(3)
    assert [(m["header"]["sequence_number"], err_of(m)[0]) for m in rep] == [(4, errno.ENXIO), (5, 0), (6, 0)]


def test_batch_reports_first_failure_with_its_offset_and_applies_the_rest(raw):
    c = raw()
    h = c.setup()
    entries = [(16, SET), (48, SET), (17, 5), (18, SET)]
    payload = struct.pack("<2I", h, len(entries)) + b"".join(struct.pack("<2I", *e) for e in entries)
    rep = c.call(lib.IRQD_MSG_IRQ_LINE_BATCH, payload)
    e, text, off = err_of(rep[-1])
    assert e == errno.EINVAL and off == 16 + 8 + 8 * 1 and "2 of 4" in text
    src = dict((i, s) for t, i, s in c.dump(h) if t == lib.IRQD_MSG_SOURCE_STATE)
    assert src[16] & lib.IRQD_KVM_XICS_PRESENTED and src[18] & lib.IRQD_KVM_XICS_PENDING
    assert src[17] == 0x0000000500000000
    # len must match count exactly
    assert_failure(c, h, msg(lib.IRQD_MSG_IRQ_LINE_BATCH, struct.pack("<2I", h, 3) + struct.pack("<2I", 16, 1)),
                   errno.EINVAL, offs=20)


def test_dump_is_interrupted_when_the_device_changes_meanwhile(daemon, raw):
    a, b = raw(), raw()
    h = a.create()
    a.ok(lib.IRQD_MSG_CREATE_ICS, struct.pack("<4I", h, 16, 300000, 0))  # ~9.6 MB of dump
    a.send(msg(lib.IRQD_MSG_DUMP_STATE, struct.pack("<2I", h, 0), flags=R, seq=9))
    first = a.recv()
    assert not any(r.flags & lib.IRQD_NLM_F_DUMP_INTR for r in P.walk(first))
    time.sleep(0.2)  # the daemon has paused this dump: a is not reading
    b.ok(lib.IRQD_MSG_CONNECT_VCPU, struct.pack("<4I", h, 3, 0, 0))  # a change from elsewhere
    msgs, flags = [], []
    for rec in [first] + iter_until_done(a):
        for r in P.walk(rec):
            msgs.append(r.type)
            flags.append(r.flags)
    assert msgs[-1] == lib.IRQD_MSG_DONE
    assert msgs.count(lib.IRQD_MSG_SOURCE_STATE) == 300000
    assert all(f & lib.IRQD_NLM_F_MULTI for f in flags)
    assert flags[-1] & lib.IRQD_NLM_F_DUMP_INTR, "DONE of an interrupted dump lacks NLM_F_DUMP_INTR"
    # every record stays within max_record
    assert len(first) <= lib.IRQD_MAX_RECORD


def iter_until_done(c: Raw) -> list[bytes]:
    out = []
    while True:
        rec = c.recv()
        assert rec is not None
        out.append(rec)
        if any(r.type == lib.IRQD_MSG_DONE for r in P.walk(rec)):
            return out


# ---------------------------------------------------------------------------
# holders, PERSIST, DESTROY, ATTACH

def test_device_lives_while_held_and_persist_outlives_connections(raw):
    a = raw()
    h = a.create()
    hp = a.create(lib.IRQD_CREATE_PERSIST)
    b = raw()
    b.ok(lib.IRQD_MSG_ATTACH, struct.pack("<2I", h, 0))
    b.ok(lib.IRQD_MSG_ATTACH, struct.pack("<2I", h, 0))  # a second ATTACH changes nothing
    assert {d[0]: d[3] for d in b.devices()}[h] == 2
    a.close()
    time.sleep(0.2)
    listed = {d[0]: d for d in b.devices()}
    assert h in listed and listed[h][3] == 1 and hp in listed
    b.close()
    c = raw()
    time.sleep(0.2)
    listed = {d[0]: d for d in c.devices()}
    assert h not in listed, "device outlived its last holder"
    assert hp in listed and listed[hp][2] == lib.IRQD_CREATE_PERSIST
    c.ok(lib.IRQD_MSG_DESTROY_DEVICE, struct.pack("<2I", hp, 0))
    rep = c.call(lib.IRQD_MSG_ATTACH, struct.pack("<2I", hp, 0))
    assert err_of(rep[-1])[0] == errno.EBADF
    h2 = c.create()
    assert h2 > hp, "a handle was reused"


def test_destroy_closes_the_devices_eventfds(daemon, raw):
    c = raw()
    h = c.setup()
    base = settled_fd_count(daemon)
    efd, out_fd = os.eventfd(0), os.eventfd(0)
    try:
        c.send(msg(lib.IRQD_MSG_IRQFD, struct.pack("<4I", h, 16, 0, 0), seq=1)
               + msg(lib.IRQD_MSG_SET_OUTPUT, struct.pack("<4I", h, 0, 0, 0), seq=2), [efd, out_fd])
        assert [err_of(m)[0] for m in c.replies(2)] == [0, 0]
        assert daemon.fd_count() == base + 2
        os.eventfd_write(efd, 1)  # irqfd fires 16; the output rises
        deadline = time.monotonic() + 5
        while not select.select([out_fd], [], [], 0.05)[0]:
            assert time.monotonic() < deadline, "output eventfd never signalled"
        assert os.eventfd_read(out_fd) == 1
        c.ok(lib.IRQD_MSG_DESTROY_DEVICE, struct.pack("<2I", h, 0))
        assert daemon.fd_count() == base
    finally:
        os.close(efd)
        os.close(out_fd)


def test_restore_is_all_or_nothing_and_busy_for_others(raw):
    a, b = raw(), raw()
    h = a.create()
    a.ok(lib.IRQD_MSG_RESTORE_BEGIN, struct.pack("<2I", h, 0))
    for other in (b, a):  # other operations on the device, from anyone: EBUSY
        rep = other.call(lib.IRQD_MSG_IRQ_LINE, struct.pack("<4I", h, 16, SET, 0))
        assert err_of(rep[-1])[0] == errno.EBUSY
    rep = a.call(lib.IRQD_MSG_RESTORE_BEGIN, struct.pack("<2I", h, 0))
    assert err_of(rep[-1])[0] == errno.EBUSY
    a.ok(lib.IRQD_MSG_CONNECT_VCPU, struct.pack("<4I", h, 0, 0, 0))
    a.ok(lib.IRQD_MSG_SET_DEVICE_ATTR, struct.pack("<4I2Q", h, 0, 1, 0, 16, 0x0000000500000000))
    a.ok(lib.IRQD_MSG_SET_DEVICE_ATTR, struct.pack("<4I2Q", h, 0, 1, 0, 17, 0x0000000500000009))  # server 9
    rep = a.call(lib.IRQD_MSG_RESTORE_COMMIT, struct.pack("<2I", h, 0))
    e, text, _ = err_of(rep[-1])
    assert e == errno.EINVAL and "17" in text
    assert a.dump(h) == [], "a failed commit left state behind"
    # the restore has ended: a good one now
    a.ok(lib.IRQD_MSG_RESTORE_BEGIN, struct.pack("<2I", h, 0))
    a.ok(lib.IRQD_MSG_CONNECT_VCPU, struct.pack("<4I", h, 0, 0, 0))
    a.ok(lib.IRQD_MSG_SET_DEVICE_ATTR, struct.pack("<4I2Q", h, 0, 1, 0, 16, 0x0000080500000000))
    a.ok(lib.IRQD_MSG_SET_ONE_REG, struct.pack("<IIQQ", h, 0, lib.IRQD_KVM_REG_PPC_ICP_STATE, 0xFF000010FF050000))
    a.ok(lib.IRQD_MSG_RESTORE_COMMIT, struct.pack("<2I", h, 0))
    assert b.dump(h) == [(lib.IRQD_MSG_SOURCE_STATE, 16, 0x0000080500000000),
                         (lib.IRQD_MSG_ICP_STATE, 0, 0xFF000010FF050000)]
    rep = a.call(lib.IRQD_MSG_RESTORE_BEGIN, struct.pack("<2I", h, 0))
    assert err_of(rep[-1])[0] == errno.EEXIST


# ---------------------------------------------------------------------------
# robustness: slow readers, dead clients

def test_client_that_never_reads_does_not_stall_others(daemon, raw):
    hog = raw()
    h = hog.setup()
    hog.s.setblocking(False)
    one = msg(lib.IRQD_MSG_IRQ_LINE, struct.pack("<4I", h, 16, SET, 0))  # acked: a reply each
    sent = 0
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        try:
            hog.s.send(one * 64)
            sent += 1
        except BlockingIOError:
            break
    assert sent > 10
    other = raw()
    for _ in range(20):
        t0 = time.monotonic()
        assert other.call(lib.IRQD_MSG_HELLO, struct.pack("<8I", 1, 0, 0, 0, 0, 0, 0, 0))[-1]["error"] == 0
        assert time.monotonic() - t0 < 5
    # the hog's replies are all still there when it finally reads: none lost
    hog.s.setblocking(True)
    got = 0
    while got < sent * 64:
        rec = hog.recv(5)
        assert rec is not None, f"only {got} of {sent * 64} acknowledgements arrived"
        got += sum(1 for _ in P.walk(rec))
    assert got == sent * 64


def settled_fd_count(d: Daemon, quiet: float = 0.3, timeout: float = 10) -> int:
    """The daemon's fd count once it has stopped changing (earlier tests'
    connections may still be closing on a loaded machine)."""
    deadline = time.monotonic() + timeout
    last, since = d.fd_count(), time.monotonic()
    while time.monotonic() - since < quiet and time.monotonic() < deadline:
        time.sleep(0.05)
        now = d.fd_count()
        if now != last:
            last, since = now, time.monotonic()
    return last


def test_killed_client_leaks_no_fd(daemon):
    import subprocess
    import sys

    base = settled_fd_count(daemon)
    code = f"""
import os, socket, struct, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET); s.connect({daemon.path!r})
def m(t, p, f=5): return struct.pack('<IHHII', 16 + len(p), t, f, 1, 0) + p
s.send(m(0x11, struct.pack('<4I', 3, 0, 0, 0))); r = s.recv(999); h = struct.unpack_from('<I', r, 20)[0]
s.send(m(0x1A, struct.pack('<4I', h, 16, 100, 0))); s.recv(999)
s.send(m(0x1B, struct.pack('<4I', h, 0, 0, 0))); s.recv(999)
efds = [os.eventfd(0) for _ in range(3)]
socket.send_fds(s, [m(0x20, struct.pack('<4I', h, 16, 2, 0)) + m(0x21, struct.pack('<4I', h, 0, 0, 0))], efds)
s.recv(999)
s.send(m(0x22, struct.pack('<2I', h, 0), 1))   # a dump, never read
print('ready', flush=True)
time.sleep(60)
"""
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    assert daemon.fd_count() > base
    p.kill()
    p.wait()
    deadline = time.monotonic() + 20
    while daemon.fd_count() > base and time.monotonic() < deadline:
        time.sleep(0.05)
    assert daemon.fd_count() <= base, "fds of a killed client were not all closed"


# ---------------------------------------------------------------------------
# ownership

def _as_uid(uid: int, path: str, fn) -> int:
    """Run fn(Raw) in a forked child with uid dropped; returns its exit code."""
    return os.waitpid(fork_as(uid, lambda: fn(Raw(path))), 0)[1]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to other uids")
def test_devices_belong_to_their_uid():
    d = Daemon("--mode", "0666")
    os.chmod(d.dir, 0o755)  # mkdtemp's 0700 would keep the other uid out before the daemon does
    try:
        root = Raw(d.path)
        h = root.setup()

        def other(c: Raw):
            assert c.devices() == []
            for mtype, payload in [
                (lib.IRQD_MSG_IRQ_LINE, struct.pack("<4I", h, 16, SET, 0)),
                (lib.IRQD_MSG_ATTACH, struct.pack("<2I", h, 0)),
                (lib.IRQD_MSG_DESTROY_DEVICE, struct.pack("<2I", h, 0)),
                (lib.IRQD_MSG_DUMP_STATE, struct.pack("<2I", h, 0)),
            ]:
                rep = c.call(mtype, payload)
                assert err_of(rep[-1])[0] == errno.EACCES, hex(mtype)
            mine = c.create()
            assert [x[0] for x in c.devices()] == [mine]

        assert _as_uid(65534, d.path, other) == 0
        owners = {x[0]: x[1] for x in root.devices()}  # root sees every device
        assert owners[h] == 0 and 65534 not in owners.values()  # the child's died with its connection
        assert root.dump(h)[0] == (lib.IRQD_MSG_SOURCE_STATE, 16, 0x0000000500000000)
    finally:
        assert d.stop() == 0


def test_socket_path_safety(tmp_path):
    import subprocess
    import sys

    link = tmp_path / "link.sock"
    target = tmp_path / "elsewhere"
    target.write_text("keep")
    link.symlink_to(target)
    plain = tmp_path / "plain.sock"
    plain.write_text("keep")
    for path, words in [(link, "symbolic link"), (plain, "not a socket")]:
        p = subprocess.run([sys.executable, "-m", "irqd", "--socket", str(path)], capture_output=True,
                           text=True, timeout=30)
        assert p.returncode == 1 and words in p.stderr, p.stderr
    assert link.is_symlink() and target.read_text() == "keep" and plain.read_text() == "keep"


def test_second_daemon_refuses_a_live_socket_and_replaces_a_stale_one(daemon, tmp_path):
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-m", "irqd", "--socket", daemon.path], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 1 and "already running" in p.stderr
    stale = tmp_path / "stale.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.bind(str(stale))
    s.close()  # bound, never listening: connect is refused
    d = Daemon()
    d.stop()
    d2 = subprocess.Popen([sys.executable, "-m", "irqd", "--socket", str(stale)], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                Raw(str(stale)).close()
                break
            except OSError:
                assert time.monotonic() < deadline and d2.poll() is None
                time.sleep(0.05)
        assert oct(os.stat(stale).st_mode & 0o777) == oct(0o660)
    finally:
        d2.terminate()
        d2.wait(10)
    assert not stale.exists(), "the daemon did not remove its own socket"
