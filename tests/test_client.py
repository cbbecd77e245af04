"""irqd.client against a real daemon: lifetime (holders, PERSIST, DESTROY),
errors (errno + extack + nothing changed), fire-and-forget, batches, fds,
dump/restore, threads, reconnect."""

from __future__ import annotations

import errno
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest
from irqd._core import lib

from irqd import protocol as P
from irqd.backend import SET, DeviceState
from irqd.client import Client, ConnectionLost, RemoteXics
from irqd.errors import IrqdError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class OwnDaemon:
    """An irqd process of this module's own, restartable on the same socket
    path (conftest's Daemon picks a new directory each time)."""

    def __init__(self, tmp: str, *extra: str):
        self.path = os.path.join(tmp, "irqd.sock")
        self.log = os.path.join(tmp, "irqd.log")
        self.extra = list(extra)
        self.proc: subprocess.Popen | None = None

    def start(self) -> OwnDaemon:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "irqd.daemon",
                    "--socket",
                    self.path,
                    "--log-level",
                    "warning",
                    *self.extra,
                ],
                cwd=ROOT,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            try:
                s.connect(self.path)
                return self
            except OSError:
                if self.proc.poll() is not None:
                    with open(self.log) as f:
                        raise RuntimeError(f"irqd exited: {f.read()}") from None
                time.sleep(0.02)
            finally:
                s.close()
        raise RuntimeError("irqd did not start")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(20)
        self.proc = None


@pytest.fixture(scope="module")
def sock(daemon):
    """The socket of conftest's module-scoped daemon."""
    return daemon.path


@pytest.fixture
def client(sock):
    c = Client(sock)
    yield c
    c.close()


@pytest.fixture
def dev(client):
    """S0 of xics-semantics.md 8.1: server 0 open, 16-31 MSI, 32-47 LSI."""
    d = client.create_device()
    d.connect_vcpu(0)
    d.create_ics(16, 16)
    d.create_ics(32, 16, level=True)
    assert d.h_cppr(0, 0xFF) == 0
    yield d
    d.close()


def handles(c: Client) -> dict[int, object]:
    return {d.handle: d for d in c.list_devices()}


# ---- connection ------------------------------------------------------------------


def test_hello_reports_version_and_limits(client):
    h = client.hello
    assert h.version == lib.IRQD_ABI_VERSION
    assert h.max_record >= 65536 and h.max_fds >= 16
    assert h.max_servers == lib.IRQD_MAX_SERVERS
    assert h.max_irqs == lib.IRQD_KVMPPC_XICS_NR_IRQS


def test_socket_path_comes_from_irqd_socket_env(sock, monkeypatch):
    monkeypatch.setenv("IRQD_SOCKET", sock)
    with Client() as c:
        assert c.path == sock and c.hello.version == 1


def test_connect_to_missing_socket_raises_oserror(tmp_path):
    with pytest.raises(FileNotFoundError):
        Client(str(tmp_path / "nothing"))


# ---- lifetime ----------------------------------------------------------------------


def test_device_lives_while_any_holder_is_connected(sock):
    a, b = Client(sock), Client(sock)
    d = a.create_device()
    assert handles(a)[d.handle].holders == 1
    db = b.attach(d.handle)
    assert handles(a)[d.handle].holders == 2
    db.create_ics(16, 4)
    assert d.get_source(16) == 0x000002FF00000000  # X-002 via the other connection
    a.close()  # first holder gone: b still holds it
    assert handles(b)[d.handle].holders == 1
    assert db.get_source(16) == 0x000002FF00000000
    b.close()
    with Client(sock) as c:
        assert d.handle not in handles(c)


def test_second_attach_by_the_same_connection_changes_nothing(client):
    d = client.create_device()
    client.attach(d.handle)
    assert handles(client)[d.handle].holders == 1
    d.close()


def test_persist_device_outlives_its_creator_until_destroyed(sock):
    with Client(sock) as a:
        d = a.create_device(persist=True)
        assert d.info().flags & lib.IRQD_CREATE_PERSIST
    with Client(sock) as b:
        info = handles(b)[d.handle]
        assert info.holders == 0 and info.flags == lib.IRQD_CREATE_PERSIST
        b.destroy(d.handle)
        assert d.handle not in handles(b)
        with pytest.raises(IrqdError) as ei:
            RemoteXics(b, d.handle).get_icp(0)
        assert ei.value.errno == errno.EBADF and ei.value.strerror


def test_destroy_frees_the_device_for_every_holder(sock):
    with Client(sock) as a, Client(sock) as b:
        d = a.create_device()
        db = b.attach(d.handle)
        b.destroy(d.handle)
        with pytest.raises(IrqdError) as ei:
            d.create_ics(16, 1)
        assert ei.value.errno == errno.EBADF
        with pytest.raises(IrqdError):
            db.connect_vcpu(0)


def test_close_destroys_own_device_only_when_no_one_else_holds_it(sock):
    with Client(sock) as a, Client(sock) as b:
        d1 = a.create_device()
        d1.close()
        assert d1.handle not in handles(a)
        d2 = a.create_device()
        b.attach(d2.handle)
        d2.close()  # b still holds it: close only drops a's use of it
        assert handles(a)[d2.handle].holders == 2
        p = a.create_device(persist=True)
        p.close()  # PERSIST: close never destroys
        assert p.handle in handles(a)
        a.destroy(p.handle)
        with pytest.raises(IrqdError) as ei:
            d1.get_icp(0)
        assert ei.value.errno == errno.EBADF


def test_create_device_test_flag_creates_nothing(client):
    before = set(handles(client))
    assert client.create_device(test=True) is None
    assert set(handles(client)) == before


# ---- errors: errno, extack, nothing changed ---------------------------------------------


@pytest.mark.parametrize(
    "op, err, text, offset",
    [
        (lambda d: d.irq_line(48, 1), errno.EINVAL, "not configured", 20),
        (lambda d: d.irq_line(16, 2), errno.EINVAL, "level", 24),
        (lambda d: d.create_ics(20, 4), errno.EEXIST, "", None),
        (lambda d: d.create_ics(8, 4), errno.EINVAL, "", None),
        (lambda d: d.connect_vcpu(0), errno.EEXIST, "", None),
        (lambda d: d.connect_vcpu(lib.IRQD_MAX_SERVERS), errno.EINVAL, "", None),
        (lambda d: d.get_source(48), errno.ENOENT, "", None),
        (lambda d: d.get_icp(5), errno.ENOENT, "", None),
        (lambda d: d.set_icp(0, 0xFF00000205040000), errno.EINVAL, "", None),
        (lambda d: d.hcall(7, lib.IRQD_H_XIRR), errno.ENOENT, "", None),
        (lambda d: d.hcall(0, 0x1234), errno.EOPNOTSUPP, "", None),
        (lambda d: d.rtas(99, [16], 1), errno.EINVAL, "", None),
        (lambda d: d.set_output(9, os.eventfd(0)), errno.ENOENT, "", None),
    ],
    ids=[
        "line_unconfigured",
        "line_bad_level",
        "ics_exists",
        "ics_below_16",
        "connect_exists",
        "connect_max",
        "get_unconfigured",
        "get_icp_unknown",
        "set_icp_inconsistent",
        "hcall_unknown_server",
        "hcall_unknown_nr",
        "rtas_bad_token",
        "output_unknown_server",
    ],
)
def test_failure_answers_errno_and_message_and_changes_nothing(dev, op, err, text, offset):
    gen = dev.generation
    before = dev.dump()
    with pytest.raises(IrqdError) as ei:
        op(dev)
    e = ei.value
    assert e.errno == err
    # the daemon's extended-ack reason came (error_for falls back to strerror without one)
    assert e.strerror and e.strerror != os.strerror(err)
    assert text in e.strerror
    if offset is not None:
        assert e.offset == offset
    assert dev.dump() == before
    assert dev.generation == gen


def test_enoent_and_eexist_inherit_builtins(dev):
    with pytest.raises(FileNotFoundError):
        dev.get_icp(9)
    with pytest.raises(FileExistsError):
        dev.connect_vcpu(0)


def test_has_source_answers_by_range(dev):
    assert dev.has_source(16) and dev.has_source(1048575) and dev.has_source(500)
    assert not dev.has_source(15) and not dev.has_source(1048576)


def test_values_that_do_not_fit_raise_locally(dev):
    with pytest.raises(ValueError):
        dev.irq_line(1 << 32, 1)
    with pytest.raises(ValueError):
        dev.hcall(0, lib.IRQD_H_EOI, 1 << 64)
    with pytest.raises(ValueError):
        dev.hcall(0, lib.IRQD_H_EOI, 1, 2, 3, 4, 5)


# ---- the guest's view ---------------------------------------------------------------------


def test_msi_presented_accepted_and_eoid(dev):
    assert dev.set_xive(16, 0, 5) == 0
    dev.edge(16)
    assert dev.get_icp(0) >> 32 & 0xFFFFFF == 16
    st, xirr = dev.h_xirr(0)
    assert (st, xirr) == (0, 0xFF000010)
    assert dev.h_eoi(0, xirr) == 0
    assert dev.get_icp(0) == 0xFF000000FFFF0000
    assert dev.h_eoi(0, 0xFF000000 | 5000) == lib.IRQD_H_PARAMETER  # negative status comes back signed
    assert dev.get_xive(16) == (0, 0, 5)
    assert dev.rtas(lib.IRQD_RTAS_GET_XIVE, [16], 1) == [-3]  # wrong nret: status -3, signed


def test_batch_applies_the_others_and_reports_first_failure_index_and_count(dev):
    for irq in (16, 17, 18):
        dev.set_xive(irq, 0, 5)
    with pytest.raises(IrqdError) as ei:
        dev.irq_line_batch([(16, SET), (60, 1), (17, SET), (61, 1), (18, 7)])
    e = ei.value
    assert e.errno == errno.EINVAL and e.index == 1 and e.failed == 3
    assert e.offset == 16 + 8 + 8 * 1
    stats = dev.stats()
    assert stats.sources[16][0] == 1 and stats.sources[17][0] == 1 and stats.sources[18][0] == 0


def test_large_batch_is_split_and_index_counts_from_the_callers_list(dev):
    per = (dev.client.hello.max_record - 24) // 8
    entries = [(16, SET)] * (per + 10) + [(99, 1)]
    with pytest.raises(IrqdError) as ei:
        dev.irq_line_batch(entries)
    assert ei.value.index == per + 10 and ei.value.failed == 1
    assert dev.stats().sources[16][0] == per + 10
    dev.irq_line_batch([])  # count 0 is a valid no-op


def test_nowait_failures_are_raised_by_sync_in_order(dev):
    dev.irq_line_nowait(16, SET)
    dev.irq_line_nowait(70, 1)
    dev.batch_nowait([(17, SET), (71, 1)])
    with pytest.raises(IrqdError) as ei:
        dev.sync()
    e = ei.value
    assert e.errno == errno.EINVAL and "70" in e.strerror
    assert [x.errno for x in e.errors] == [errno.EINVAL, errno.EINVAL]
    assert e.errors[1].index == 1 and e.errors[1].failed == 1
    dev.sync()  # nothing left
    assert dev.stats().sources[16][0] == 1 and dev.stats().sources[17][0] == 1


def test_many_nowait_triggers_without_reading_do_not_deadlock(dev):
    # every one fails (so every one is answered): the client must drain while sending
    for _ in range(20000):
        dev.irq_line_nowait(99, 1)
    with pytest.raises(IrqdError) as ei:
        dev.sync()
    assert len(ei.value.errors) == 20000


def test_replies_sharing_a_record_are_all_parsed(dev):
    c = dev.client
    s1, s2, s3 = c._next_seq(), c._next_seq(), c._next_seq()
    rec = (
        P.pack(P.DeviceAttr, lib.IRQD_MSG_GET_DEVICE_ATTR, 1, s1, dev.handle, 0, 1, 0, 16, 0)
        + P.pack(P.DeviceAttr, lib.IRQD_MSG_GET_DEVICE_ATTR, 1 | 4, s2, dev.handle, 0, 1, 0, 33, 0)
        + P.pack(P.OneReg, lib.IRQD_MSG_GET_ONE_REG, 1, s3, dev.handle, 3, lib.IRQD_KVM_REG_PPC_ICP_STATE, 0)
    )
    w1, w2, w3 = c._exchange(rec, [(s1, "data", False), (s2, "data", True), (s3, "data", False)])
    assert w1.msgs[0][1][5] == 0x000002FF00000000
    assert w2.msgs[0][1][5] == 0x000003FF00000000 and w2.acked
    assert w3.error is not None and w3.error.errno == errno.ENOENT


# ---- eventfds ---------------------------------------------------------------------------------


def _wait_readable(fd: int, timeout: float = 5.0) -> bool:
    return bool(select.select([fd], [], [], timeout)[0])


def test_irqfd_fires_its_gsi_and_output_eventfd_rises(dev):
    trig, out = os.eventfd(0, os.EFD_NONBLOCK), os.eventfd(0, os.EFD_NONBLOCK)
    try:
        dev.set_xive(20, 0, 5)
        dev.set_output(0, out)
        dev.irqfd(20, trig)
        os.eventfd_write(trig, 1)
        assert _wait_readable(out)
        assert os.eventfd_read(out) == 1
        assert dev.h_xirr(0) == (0, 0xFF000014)
        dev.irqfd_deassign(20)
        dev.clear_output(0)
    finally:
        os.close(trig)
        os.close(out)


def test_irqfd_resample_signals_at_eoi(dev):
    trig, res = os.eventfd(0, os.EFD_NONBLOCK), os.eventfd(0, os.EFD_NONBLOCK)
    try:
        dev.set_xive(40, 0, 5)
        dev.irqfd(40, trig, res)
        dev.level_set(40)
        st, xirr = dev.h_xirr(0)
        assert st == 0 and xirr & 0xFFFFFF == 40
        dev.h_eoi(0, xirr)
        assert _wait_readable(res)
        assert os.eventfd_read(res) == 1
    finally:
        os.close(trig)
        os.close(res)


def test_irqfd_with_a_non_eventfd_is_einval_and_the_fd_is_not_kept(dev):
    r, w = os.pipe()
    try:
        with pytest.raises(IrqdError) as ei:
            dev.irqfd(20, r)
        assert ei.value.errno == errno.EINVAL
        os.close(r)
        r = -1
        # the daemon closed its copy: the write end sees no reader
        with pytest.raises(BrokenPipeError):
            for _ in range(10):
                os.write(w, b"x")
                time.sleep(0.05)
    finally:
        if r >= 0:
            os.close(r)
        os.close(w)


# ---- migration ---------------------------------------------------------------------------------


def test_dump_restore_into_a_fresh_device_reads_back_identical(client, dev):
    dev.connect_vcpu(1)
    dev.h_cppr(1, 0xFF)
    dev.set_xive(16, 1, 5)
    dev.set_xive(33, 0, 3)
    dev.edge(16)
    dev.level_set(33)
    dev.h_xirr(0)
    saved = dev.dump()
    assert saved.sources[16] & lib.IRQD_KVM_XICS_PRESENTED
    new = client.create_device()
    seen = []
    new.restore(saved, progress=lambda done, total: seen.append((done, total)))
    assert new.dump() == saved
    assert seen and seen[-1] == (len(saved.sources) + 2 * len(saved.icps),) * 2
    new.close()


def test_restore_is_all_or_nothing(client, dev):
    saved = dev.dump()
    bad = DeviceState(sources=dict(saved.sources), icps={0: saved.icps[0], 1: 0xFF00000205040000})
    new = client.create_device()
    gen = new.generation
    with pytest.raises(IrqdError) as ei:
        new.restore(bad)
    assert ei.value.errno == errno.EINVAL and ei.value.strerror
    assert new.dump() == DeviceState() and new.generation == gen
    new.restore(saved)  # the failed restore ended: a new one works
    assert new.dump() == saved
    with pytest.raises(IrqdError) as ei:
        new.restore(saved)  # not empty any more
    assert ei.value.errno == errno.EEXIST
    assert new.dump() == saved
    new.close()


def test_dump_of_a_large_device_spans_records(client):
    d = client.create_device()
    d.create_ics(16, 5000)
    st = d.dump()
    assert len(st.sources) == 5000 and set(st.sources.values()) == {0x000002FF00000000}
    d.close()


# ---- threads --------------------------------------------------------------------------------


def test_one_client_shared_by_threads(dev):
    dev.set_xive(16, 0, 5)
    n, errors = 300, []

    def work(k):
        try:
            for _ in range(n):
                dev.irq_line(17 + k, SET)
                assert dev.get_source(16) >> 32 & 0xFF == 5
        except Exception as e:  # noqa: BLE001 - reported by the assert below
            errors.append(e)

    ts = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert errors == []
    stats = dev.stats()
    assert [stats.sources[17 + k][0] for k in range(4)] == [n] * 4


# ---- reconnect -------------------------------------------------------------------------------------


def test_reconnects_after_a_daemon_restart_and_reports_lost_handles(tmp_path):
    d = OwnDaemon(str(tmp_path)).start()
    try:
        c = Client(d.path, reconnect_attempts=40, reconnect_backoff=0.05)
        dev = c.create_device()
        d.stop()
        d.start()  # a daemon without saved state: the device is gone
        assert handles(c) == {}  # idempotent: retried transparently on the new connection
        assert c.reconnects == 1 and c.lost_handles == [dev.handle] and c.held == frozenset()
        d2 = c.create_device()
        assert c.held == {d2.handle}
        c.close()
    finally:
        d.stop()


def test_restart_with_saved_state_keeps_devices_and_reattaches(tmp_path):
    state = str(tmp_path / "state")
    d = OwnDaemon(str(tmp_path), "--state-file", state, "--reattach-grace", "30").start()
    try:
        c = Client(d.path, reconnect_attempts=40, reconnect_backoff=0.05)
        dev = c.create_device()  # not PERSIST: only the re-ATTACH keeps it past the grace period
        dev.create_ics(16, 4)
        word = dev.get_source(16)
        d.stop()
        if not os.path.exists(state):
            pytest.skip("this daemon does not save --state-file yet (irqd/state.py)")
        d.start()
        assert dev.get_source(16) == word
        assert c.reconnects == 1 and c.lost_handles == []
        assert handles(c)[dev.handle].holders == 1
        c.close()
    finally:
        d.stop()


def test_lost_reply_is_retried_only_for_idempotent_requests(client):
    c = client
    # PERSIST: shutting our read side also stops the daemon's sends, which
    # makes it drop the old connection (and a non-PERSIST device with it)
    dev = c.create_device(persist=True)
    dev.create_ics(16, 4)
    before = c.reconnects
    c._sock.shutdown(socket.SHUT_RD)  # our next recv sees EOF after the request went out
    with pytest.raises(ConnectionLost):
        dev.create_ics(100, 4)  # not idempotent: may or may not have been applied
    assert c.reconnects == before + 1
    c._sock.shutdown(socket.SHUT_RD)
    assert dev.get_source(16) == 0x000002FF00000000  # idempotent: retried
    assert c.reconnects == before + 2 and dev.handle in c.held
    dev.destroy()


def test_reconnect_gives_up_with_connection_lost(fresh_daemon):
    c = Client(fresh_daemon.path, reconnect_attempts=2, reconnect_backoff=0.01)
    c.create_device()
    assert fresh_daemon.stop() == 0
    with pytest.raises(ConnectionLost):
        c.list_devices()
    with pytest.raises(ConnectionLost):  # and again: each exchange tries anew
        c.noop()
    c.close()


# ---- against a scripted peer (deterministic protocol corner cases) ------------------------------


class FakeDaemon:
    """A scripted peer on a SEQPACKET socket: answers HELLO itself and hands
    every other record to ``script(record) -> list of reply records``."""

    def __init__(self, tmp: str, script):
        self.path = os.path.join(tmp, "fake.sock")
        self.script = script
        self.requests: list[bytes] = []
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.listener.bind(self.path)
        self.listener.listen(4)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            while True:
                rec = conn.recv(1 << 20)
                if not rec:
                    return
                out = []
                raws = list(P.walk(rec))
                if raws[0].type == lib.IRQD_MSG_HELLO:
                    out.append(
                        P.pack(
                            P.Hello, lib.IRQD_MSG_HELLO, 0, raws[0].seq, 1, 0, 65536, 8, 2048, 1 << 20, 253, 0
                        )
                    )
                else:
                    self.requests.append(rec)
                    out = self.script(rec)
                for r in out:
                    conn.send(r)

    def close(self) -> None:
        self.listener.close()


def _done(seq: int, flags: int = P.F_MULTI) -> bytes:
    return P.pack(P.Done, lib.IRQD_MSG_DONE, flags, seq, 0)


def _ack(seq: int, err: int = 0, text: str | None = None) -> bytes:
    payload = {"error": err, "msg": {"len": 16, "type": 1, "flags": 5, "seq": seq}}
    flags = P.F_CAPPED
    if text is not None:
        payload["attrs"] = [["NLMSGERR_ATTR_MSG", text]]
        flags |= P.F_ACK_TLVS
    return P.encode(lib.IRQD_MSG_ERROR, payload, flags=flags, seq=seq)


def test_dump_is_retried_while_the_reply_carries_dump_intr(tmp_path):
    calls = []

    def script(rec):
        raw = next(P.walk(rec))
        assert raw.type == lib.IRQD_MSG_DUMP_STATE and raw.flags & P.F_DUMP == P.F_DUMP
        calls.append(raw.seq)
        src = lib.IRQD_MSG_SOURCE_STATE
        if len(calls) == 1:  # the device changed while it was dumped
            return [
                P.pack(P.SourceState, src, P.F_MULTI, raw.seq, 1, 16, 0x1)
                + P.pack(P.SourceState, src, P.F_MULTI | P.F_DUMP_INTR, raw.seq, 1, 17, 0x2),
                _done(raw.seq, P.F_MULTI | P.F_DUMP_INTR),
            ]
        return [
            P.pack(P.SourceState, src, P.F_MULTI, raw.seq, 1, 16, 0x000002FF00000000),
            P.pack(P.IcpState, lib.IRQD_MSG_ICP_STATE, P.F_MULTI, raw.seq, 1, 0, 0xFF) + _done(raw.seq),
        ]

    fake = FakeDaemon(str(tmp_path), script)
    try:
        with Client(fake.path) as c:
            st = RemoteXics(c, 1).dump()
        assert len(calls) == 2 and calls[0] != calls[1]
        assert st == DeviceState(sources={16: 0x000002FF00000000}, icps={0: 0xFF})
    finally:
        fake.close()


def test_every_message_of_a_record_is_accounted_for(tmp_path):
    """A record holding an ERROR for an earlier fire-and-forget message, a
    reply for a sequence number nobody waits for, then the awaited reply."""

    def script(rec):
        raw = next(P.walk(rec))
        stale = P.pack(P.DeviceAttr, lib.IRQD_MSG_GET_DEVICE_ATTR, 0, 0x7777, 1, 0, 1, 0, 99, 1)
        reply = P.pack(
            P.OneReg, lib.IRQD_MSG_GET_ONE_REG, 0, raw.seq, 1, 0, lib.IRQD_KVM_REG_PPC_ICP_STATE, 0xAB
        )
        return [stale + reply, _ack(raw.seq - 1, -22, "irq 99 is not configured")]

    fake = FakeDaemon(str(tmp_path), script)
    try:
        with Client(fake.path) as c:
            assert RemoteXics(c, 1).get_icp(0) == 0xAB
            # the ERROR arrived after the reply: it is read by the next exchange
            c._recv_one()
            assert [(e.errno, e.strerror) for e in c.pending_errors] == [(22, "irq 99 is not configured")]
    finally:
        fake.close()


def test_a_reply_record_larger_than_max_record_is_emsgsize(tmp_path):
    def script(rec):
        raw = next(P.walk(rec))
        return [P.pack(P.Empty, lib.IRQD_MSG_NOOP, 0, raw.seq) * 5000]  # 80000 bytes

    fake = FakeDaemon(str(tmp_path), script)
    try:
        with Client(fake.path) as c:
            with pytest.raises(IrqdError) as ei:
                c.noop()
            assert ei.value.errno == errno.EMSGSIZE
    finally:
        fake.close()


def test_restore_aborts_on_a_local_error(client):
    d = client.create_device()
    with pytest.raises(ValueError):
        d.restore(DeviceState(sources={16: 1 << 64}))
    assert d.dump() == DeviceState()
    good = DeviceState(sources={16: 0x000002FF00000000}, icps={0: 0xFF000000FFFF0000})
    d.restore(good)  # not EBUSY: the failed restore was aborted
    assert d.dump() == good
    d.close()


def test_a_malformed_reply_record_is_eproto(tmp_path):
    def script(rec):
        raw = next(P.walk(rec))
        return [struct.pack("<IHHII", 64, lib.IRQD_MSG_GET_ONE_REG, 0, raw.seq, 0)]  # len past the end

    fake = FakeDaemon(str(tmp_path), script)
    try:
        with Client(fake.path) as c:
            with pytest.raises(IrqdError) as ei:
                RemoteXics(c, 1).get_icp(0)
            assert ei.value.errno == errno.EPROTO and "past the end" in ei.value.strerror
    finally:
        fake.close()


def test_another_uid_gets_eacces_and_sees_only_its_own_devices():
    import json
    import shutil
    import tempfile

    sockdir = tempfile.mkdtemp(prefix="irqd-uid-")  # pytest's tmp_path is not reachable by nobody
    os.chmod(sockdir, 0o755)
    d = OwnDaemon(sockdir, "--mode", "0666").start()
    try:
        with Client(d.path) as root:
            mine = root.create_device(persist=True)
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:  # child: become nobody, report what the daemon answers
                res = {}
                try:
                    os.setgroups([])
                    os.setgid(65534)
                    os.setuid(65534)
                    with Client(d.path) as c:
                        res["list"] = [x.handle for x in c.list_devices()]
                        for name, op in (
                            ("get", lambda: RemoteXics(c, mine.handle).get_icp(0)),
                            ("attach", lambda: c.attach(mine.handle)),
                        ):
                            try:
                                op()
                                res[name] = "ok"
                            except PermissionError as e:
                                res[name] = [e.errno, isinstance(e, IrqdError), bool(e.strerror)]
                        res["own"] = c.create_device(persist=True).handle
                except BaseException as e:  # noqa: BLE001 - reported to the parent
                    res["error"] = repr(e)
                os.write(w, json.dumps(res).encode())
                os._exit(0)
            os.close(w)
            with os.fdopen(r) as f:
                res = json.loads(f.read() or "{}")
            os.waitpid(pid, 0)
            assert "error" not in res, res
            assert res["list"] == []
            assert res["get"] == [errno.EACCES, True, True]
            assert res["attach"] == [errno.EACCES, True, True]
            owners = {x.handle: x.owner_uid for x in root.list_devices()}  # root sees all
            assert owners == {mine.handle: 0, res["own"]: 65534}
    finally:
        d.stop()
        shutil.rmtree(sockdir, ignore_errors=True)


def test_acked_trigger_on_a_dropped_connection(client):
    dev = client.create_device(persist=True)
    dev.create_ics(16, 1)
    dev.connect_vcpu(0)
    dev.set_xive(16, 0, 5)
    # the send fails (peer gone for writing): never delivered, so sent again once
    client._sock.shutdown(socket.SHUT_WR)
    dev.irq_line(16, SET)
    assert dev.stats().sources[16][0] == 1
    # the reply is lost after the send: an IRQ_LINE is not idempotent
    client._sock.shutdown(socket.SHUT_RD)
    with pytest.raises(ConnectionLost):
        dev.irq_line(16, SET)
    assert client.reconnects == 2
    dev.destroy()
