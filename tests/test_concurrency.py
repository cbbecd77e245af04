"""Concurrency and load (reliability issue, part 3).

64 clients (threads, one connection each) run a seeded random mix of
triggers (acked and fire-and-forget), batches, hcalls (H_XIRR then H_EOI of
what it returned, H_CPPR, H_IPI, H_IPOLL), RTAS, GETs, dumps, stats,
DESTROY + CREATE + all-or-nothing restores of their own device from its
dump, ATTACH to shared and to other clients' devices, and irqfd triggers, on
four shared PERSIST devices and on 64 private ones, for a bounded number of
operations.  The daemon runs with ``--trace``; after SIGTERM the trace is
replayed in order on the reference model (tests/model.py), and:

* every record each client sent is in the trace, whole and in order, and
  nothing else is (nothing lost, nothing invented);
* every reply each client received equals the replay's answer for that
  (pid, seq) - errnos, hcall/RTAS results, GET values, dumps and stats
  (a dump the daemon flagged NLM_F_DUMP_INTR is a retry hint and is not
  compared) - i.e. the daemon's answers are those of a sequential execution
  in the order it logged: linearizable;
* the final DUMP_STATE and GET_STATS of every device (trigger counters: no
  edge lost) equal the replay's.

Plus connection storms beyond ``--max-clients``: refused cleanly (accepted
and closed), the admitted clients unaffected, and recovery once they leave.
"""

from __future__ import annotations

import os
import random
import socket
import struct
import threading

import pytest
from irqd._core import lib
from reliability_util import (
    ACK,
    DUMP_INTR,
    ICP_STATE,
    P_ATTR,
    P_BATCH,
    P_CREATE,
    P_ENTRY,
    P_HANDLE,
    P_HCALL,
    P_ICS,
    P_IRQFD,
    P_LEVEL,
    P_REG,
    P_RTAS,
    P_STATE,
    P_VCPU,
    REQ,
    Daemon,
    Raw,
    Replay,
    T,
    eventfd,
    msg,
    norm_reply,
    read_trace,
    settle_fds,
    split_record,
    wait_until,
)

N_CLIENTS = 64
OPS_PER_CLIENT = 60          # records per client (each 1-4 operations)
SEED = int(os.environ.get("IRQD_LOAD_SEED", "20261125"))
SHARED_EDGE = (32, 32)
SHARED_LEVEL = (64, 16)
PRIV_EDGE = (32, 16)
PRIV_LEVEL = (48, 8)
KVM_EDGE = lib.IRQD_KVM_INTERRUPT_SET


class LoadClient:
    """One connection; every request gets a unique seq and the client's pid
    (= its index + 1000) in the header, so replies can be matched with the
    replay whatever connection id the daemon gave it."""

    def __init__(self, path: str, pid: int):
        self.raw = Raw(path, timeout=60)
        self.pid = pid
        self.seq = 0
        self.sent: list[bytes] = []
        self.replies: dict[int, list] = {}
        self.fds: list[int] = []

    def record(self, msgs, fds=()) -> list[list]:
        """Send one record of (type, payload, flags) plus a NOOP|ACK marker;
        return the replies of each message."""
        parts, seqs = [], []
        for t, pl, fl in msgs + [(T.IRQD_MSG_NOOP, b"", REQ | ACK)]:
            self.seq += 1
            seqs.append(self.seq)
            parts.append(msg(t, pl, fl, self.seq, self.pid))
        rec = b"".join(parts)
        self.sent.append(rec)
        self.raw.send(rec, fds)
        marker = seqs[-1]
        for s in seqs:
            self.replies[s] = []
        while True:
            done = False
            for r in self.raw.recv():
                assert r.pid == self.pid and r.seq in self.replies, f"reply for someone else: {r}"
                self.replies[r.seq].append(r)
                if r.seq == marker:
                    done = True
            if done:
                break
        return [self.replies[s] for s in seqs[:-1]]


class World:
    def __init__(self):
        self.lock = threading.Lock()
        self.private: dict[int, int] = {}      # client index -> current private handle
        self.shared: list[int] = []


def data_of(replies, t):
    got = [r for r in replies if r.type == t]
    return got[0].payload if got else None


def make_private(c: LoadClient, w: World, idx: int, rng: random.Random, irqfd: bool = True) -> int:
    (r,) = c.record([(T.IRQD_MSG_CREATE_DEVICE, P_CREATE.pack(3, 0, 0, 0), REQ)])
    h = P_CREATE.unpack(data_of(r, T.IRQD_MSG_CREATE_DEVICE))[1]
    setup = [(T.IRQD_MSG_CONNECT_VCPU, P_VCPU.pack(h, s, 0, 0), REQ | ACK) for s in (0, 1)]
    setup += [(T.IRQD_MSG_CREATE_ICS, P_ICS.pack(h, PRIV_EDGE[0], PRIV_EDGE[1], 0), REQ | ACK),
              (T.IRQD_MSG_CREATE_ICS, P_ICS.pack(h, PRIV_LEVEL[0], PRIV_LEVEL[1], 1), REQ | ACK)]
    for irq in range(PRIV_EDGE[0], PRIV_LEVEL[0] + PRIV_LEVEL[1]):
        setup.append((T.IRQD_MSG_RTAS, P_RTAS.pack(h, lib.IRQD_RTAS_SET_XIVE, 3, 1, irq, irq & 1, rng.choice((3, 5, 7)),
                                                   *[0] * 9), REQ))
    c.record(setup)
    if irqfd and idx % 4 == 0:  # an irqfd on gsi 40 for a quarter of the clients
        fd = eventfd()
        c.fds.append(fd)
        c.record([(T.IRQD_MSG_IRQFD, P_IRQFD.pack(h, 40, 0, 0), REQ | ACK)], fds=[fd])
    with w.lock:
        w.private[idx] = h
    return h


def random_ops(rng: random.Random, h: int, servers: int, edge, level, pending_xirr: dict) -> list:
    """1-4 operations on device h."""
    ops = []
    for _ in range(rng.choice((1, 1, 2, 3, 4))):
        k = rng.random()
        s = rng.randrange(servers)
        irq_e = rng.randrange(edge[0], edge[0] + edge[1])
        irq_l = rng.randrange(level[0], level[0] + level[1])
        if k < 0.22:
            ops.append((T.IRQD_MSG_IRQ_LINE, P_LEVEL.pack(h, irq_e, KVM_EDGE, 0), REQ | (ACK if rng.random() < .6 else 0)))
        elif k < 0.30:
            ops.append((T.IRQD_MSG_IRQ_LINE, P_LEVEL.pack(h, irq_l, rng.choice((0, 1)), 0), REQ | ACK))
        elif k < 0.36:
            ents = [(rng.choice((irq_e, irq_l, 5, 200)), rng.choice((1, 0, KVM_EDGE))) for _ in range(rng.randrange(1, 9))]
            ops.append((T.IRQD_MSG_IRQ_LINE_BATCH, P_BATCH.pack(h, len(ents)) + b"".join(P_ENTRY.pack(*e) for e in ents),
                        REQ | ACK))
        elif k < 0.50:
            ops.append((T.IRQD_MSG_HCALL, P_HCALL.pack(h, s, lib.IRQD_H_XIRR, 0, 0, 0, 0), REQ))
        elif k < 0.58 and pending_xirr:
            (srv, dev), xirr = pending_xirr.popitem()
            if dev == h:
                ops.append((T.IRQD_MSG_HCALL, P_HCALL.pack(h, srv, lib.IRQD_H_EOI, xirr, 0, 0, 0), REQ))
        elif k < 0.63:
            ops.append((T.IRQD_MSG_HCALL, P_HCALL.pack(h, s, lib.IRQD_H_CPPR, rng.choice((0xFF, 0xFF, 6, 4, 0)), 0, 0, 0), REQ))
        elif k < 0.67:
            ops.append((T.IRQD_MSG_HCALL, P_HCALL.pack(h, s, lib.IRQD_H_IPI, rng.randrange(servers + 1),
                                                       rng.choice((0xFF, 0xFF, 2, 6)), 0, 0), REQ))
        elif k < 0.69:
            ops.append((T.IRQD_MSG_HCALL, P_HCALL.pack(h, s, lib.IRQD_H_IPOLL, rng.randrange(servers), 0, 0, 0), REQ))
        elif k < 0.75:
            tok = rng.choice((lib.IRQD_RTAS_SET_XIVE, lib.IRQD_RTAS_GET_XIVE, lib.IRQD_RTAS_INT_OFF, lib.IRQD_RTAS_INT_ON))
            na, nr = {1: (3, 1), 2: (1, 3), 3: (1, 1), 4: (1, 1)}[tok]
            irq = rng.choice((irq_e, irq_l))
            # return words zero, as a client fills them (abi.md: ignored in the request; the daemon
            # leaves them as sent where it writes only the status, the model zeroes them)
            args = [irq, rng.randrange(servers + 1), rng.choice((5, 3, 0xFF))][:na]
            ops.append((T.IRQD_MSG_RTAS, P_RTAS.pack(h, tok, na, nr, *args, *[0] * (12 - na)), REQ))
        elif k < 0.80:
            ops.append((T.IRQD_MSG_GET_DEVICE_ATTR, P_ATTR.pack(h, 0, 1, 0, rng.choice((irq_e, irq_l, 20)), 0), REQ))
        elif k < 0.83:
            ops.append((T.IRQD_MSG_GET_ONE_REG, P_REG.pack(h, rng.randrange(servers + 1), ICP_STATE, 0), REQ))
        elif k < 0.88:
            ops.append((T.IRQD_MSG_DUMP_STATE, P_HANDLE.pack(h, 0), REQ))
        elif k < 0.91:
            ops.append((T.IRQD_MSG_GET_STATS, P_HANDLE.pack(h, 0), REQ))
        elif k < 0.94:
            ops.append((T.IRQD_MSG_SET_DEVICE_ATTR, P_ATTR.pack(h, 0, 1, 0, irq_e, rng.choice(
                (5 << 32 | s, 0xFF << 32 | 1 << 41, 7 << 32 | s))), REQ | ACK))
        elif k < 0.96:
            ops.append((T.IRQD_MSG_SET_ONE_REG, P_REG.pack(h, s, ICP_STATE, 0xFF << 56 | 0xFF << 24 | 0xFF << 16),
                        REQ | ACK))
        else:
            ops.append((T.IRQD_MSG_ATTACH, P_HANDLE.pack(h, 0), REQ | ACK))
    return ops


def restore_cycle(c: LoadClient, w: World, idx: int, rng: random.Random, irqfd: bool = True) -> None:
    """Dump the private device, destroy it, create a new one and restore the
    dump into it with RESTORE_BEGIN .. COMMIT (three records: others can
    interleave and must see EBADF / EBUSY)."""
    h = w.private[idx]
    (r,) = c.record([(T.IRQD_MSG_DUMP_STATE, P_HANDLE.pack(h, 0), REQ)])
    if not r or r[0].type == T.IRQD_MSG_ERROR or any(x.flags & DUMP_INTR for x in r):
        return
    srcs = [P_STATE.unpack(x.payload) for x in r if x.type == T.IRQD_MSG_SOURCE_STATE]
    icps = [P_STATE.unpack(x.payload) for x in r if x.type == T.IRQD_MSG_ICP_STATE]
    r = c.record([(T.IRQD_MSG_DESTROY_DEVICE, P_HANDLE.pack(h, 0), REQ | ACK),
                  (T.IRQD_MSG_CREATE_DEVICE, P_CREATE.pack(3, 0, 0, 0), REQ)])
    nh = P_CREATE.unpack(data_of(r[1], T.IRQD_MSG_CREATE_DEVICE))[1]
    with w.lock:
        w.private[idx] = nh
    body = [(T.IRQD_MSG_RESTORE_BEGIN, P_HANDLE.pack(nh, 0), REQ | ACK)]
    body += [(T.IRQD_MSG_CONNECT_VCPU, P_VCPU.pack(nh, s, 0, 0), REQ | ACK) for _, s, _ in icps]
    body += [(T.IRQD_MSG_SET_DEVICE_ATTR, P_ATTR.pack(nh, 0, 1, 0, irq, word), REQ | ACK) for _, irq, word in srcs]
    body += [(T.IRQD_MSG_SET_ONE_REG, P_REG.pack(nh, s, ICP_STATE, word), REQ | ACK) for _, s, word in icps]
    c.record(body)
    if rng.random() < 0.1:
        c.record([(T.IRQD_MSG_RESTORE_ABORT, P_HANDLE.pack(nh, 0), REQ | ACK)])
        c.record([(T.IRQD_MSG_CREATE_ICS, P_ICS.pack(nh, PRIV_EDGE[0], PRIV_EDGE[1], 0), REQ | ACK),
                  (T.IRQD_MSG_CREATE_ICS, P_ICS.pack(nh, PRIV_LEVEL[0], PRIV_LEVEL[1], 1), REQ | ACK)]
                 + [(T.IRQD_MSG_CONNECT_VCPU, P_VCPU.pack(nh, s, 0, 0), REQ | ACK) for s in (0, 1)])
    else:
        c.record([(T.IRQD_MSG_RESTORE_COMMIT, P_HANDLE.pack(nh, 0), REQ | ACK)])
    if irqfd and idx % 4 == 0:
        fd = eventfd()
        c.fds.append(fd)
        c.record([(T.IRQD_MSG_IRQFD, P_IRQFD.pack(nh, 40, 0, 0), REQ | ACK)], fds=[fd])


def client_main(c: LoadClient, w: World, idx: int, errors: list, start: threading.Barrier) -> None:
    rng = random.Random(SEED * 1000 + idx)
    pending: dict = {}
    try:
        make_private(c, w, idx, rng)
        start.wait()
        for n in range(OPS_PER_CLIENT):
            k = rng.random()
            if k < 0.04:
                restore_cycle(c, w, idx, rng)
                continue
            if k < 0.10 and c.fds:
                os.eventfd_write(c.fds[-1], 1)
            with w.lock:
                if k < 0.55:
                    h, servers, edge, level = rng.choice(w.shared), 4, SHARED_EDGE, SHARED_LEVEL
                elif k < 0.62:
                    h, servers, edge, level = rng.choice(list(w.private.values())), 2, PRIV_EDGE, PRIV_LEVEL
                else:
                    h, servers, edge, level = w.private[idx], 2, PRIV_EDGE, PRIV_LEVEL
            ops = random_ops(rng, h, servers, edge, level, pending)
            if not ops:
                continue
            replies = c.record(ops)
            for (t, pl, _), rs in zip(ops, replies):
                if t == T.IRQD_MSG_HCALL and struct.unpack_from("<Q", pl, 8)[0] == lib.IRQD_H_XIRR:
                    p = data_of(rs, T.IRQD_MSG_HCALL)
                    if p is not None:
                        xirr = struct.unpack_from("<Q", p, 24)[0]
                        if xirr & 0xFFFFFF:
                            pending[(struct.unpack_from("<I", pl, 4)[0], h)] = xirr
    except BaseException as e:  # noqa: BLE001 - reported by the test
        errors.append((idx, repr(e)))


def test_64_clients_mixed_load_is_linearizable_and_loses_nothing(tmp_path):
    trace = str(tmp_path / "trace.bin")
    d = Daemon("--trace", trace, "--max-devices-per-uid", "256")
    w = World()
    setup = LoadClient(d.path, 999)
    rng = random.Random(SEED)
    for _ in range(4):
        (r,) = setup.record([(T.IRQD_MSG_CREATE_DEVICE, P_CREATE.pack(3, 0, lib.IRQD_CREATE_PERSIST, 0), REQ)])
        h = P_CREATE.unpack(data_of(r, T.IRQD_MSG_CREATE_DEVICE))[1]
        ops = [(T.IRQD_MSG_CONNECT_VCPU, P_VCPU.pack(h, s, 0, 0), REQ | ACK) for s in range(4)]
        ops += [(T.IRQD_MSG_CREATE_ICS, P_ICS.pack(h, SHARED_EDGE[0], SHARED_EDGE[1], 0), REQ | ACK),
                (T.IRQD_MSG_CREATE_ICS, P_ICS.pack(h, SHARED_LEVEL[0], SHARED_LEVEL[1], 1), REQ | ACK)]
        for irq in range(SHARED_EDGE[0], SHARED_LEVEL[0] + SHARED_LEVEL[1]):
            ops.append((T.IRQD_MSG_RTAS, P_RTAS.pack(h, 1, 3, 1, irq, irq % 4, rng.choice((3, 5, 7)), *[0] * 9), REQ))
        setup.record(ops)
        w.shared.append(h)

    clients = [LoadClient(d.path, 1000 + i) for i in range(N_CLIENTS)]
    errors: list = []
    start = threading.Barrier(N_CLIENTS, timeout=60)
    threads = [threading.Thread(target=client_main, args=(c, w, i, errors, start), daemon=True)
               for i, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "a client hung"
    assert not errors, errors[:5]

    # let pending irqfd events land, then final dumps and stats of every device
    for c in clients:
        c.record([])
    final = sorted(set(w.shared) | set(w.private.values()))
    setup.record([(T.IRQD_MSG_DUMP_STATE, P_HANDLE.pack(h, 0), REQ) for h in final]
                 + [(T.IRQD_MSG_GET_STATS, P_HANDLE.pack(h, 0), REQ) for h in final])
    assert d.stop() == 0, d.log_text()[-3000:]
    everyone = [setup] + clients
    for c in everyone:
        c.raw.close()
        for fd in c.fds:
            os.close(fd)

    entries = read_trace(trace)
    # 1. the trace holds exactly the records each client sent, whole and in order
    by_conn: dict[int, list[bytes]] = {}
    for kind, cid, uid, data in entries:
        if kind == 1:
            by_conn.setdefault(cid, []).append(data)
    by_pid = {}
    for cid, recs in by_conn.items():
        pids = {m[3] for rec in recs for m in split_record(rec)}
        if pids == {0}:
            continue  # the Daemon helper's readiness probe
        assert len(pids) == 1, f"conn {cid} carried several clients' records"
        by_pid[pids.pop()] = recs
    for c in everyone:
        if by_pid.get(c.pid) != c.sent:
            pytest.fail(f"client {c.pid}: the trace does not hold exactly what it sent "
                        f"({len(by_pid.get(c.pid, []))} traced, {len(c.sent)} sent)")

    # 2. replay sequentially in the logged order; every reply must match
    rp = Replay()
    rp.run(entries)
    compared = skipped = 0
    mismatches: list = []
    for c in everyone:
        for seq, got in c.replies.items():
            want = rp.expected[(c.pid, seq)]
            if any(r.flags & DUMP_INTR for r in got):
                skipped += 1
                continue
            have = [norm_reply(r) for r in got]
            if have != want:
                mismatches.append((c.pid, seq, have[:4], want[:4]))
            compared += 1
    if mismatches:
        pytest.fail(f"{len(mismatches)} replies differ from the sequential replay; first: {mismatches[:3]}")
    n_irqfd = sum(1 for e in entries if e[0] == 2)
    print(f"\nconcurrency: {len(everyone)} connections, {rp.messages} messages replayed, {compared} replies "
          f"compared, {skipped} interrupted dumps skipped, {n_irqfd} irqfd events")
    assert compared > N_CLIENTS * OPS_PER_CLIENT
    assert n_irqfd > 0


# ---------------------------------------------------------------------------------------------------------
# connection storms

def _refused(path: str) -> bool:
    """A connection past --max-clients: accepted and closed at once (EOF or
    reset), never served."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(30)
    try:
        s.connect(path)
        try:
            s.send(msg(T.IRQD_MSG_NOOP, b"", REQ | ACK, 1))
            data = s.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return True
        return data == b""
    finally:
        s.close()


def test_connection_storm_beyond_max_clients_is_refused_and_recovered():
    d = Daemon("--max-clients", "8")
    try:
        base_fds = settle_fds(d, d.fd_count())
        admitted = [d.connect() for _ in range(8)]
        for c in admitted:
            c.hello()
        hs = [c.create_device() for c in admitted[:2]]
        refused = sum(_refused(d.path) for _ in range(200))
        assert refused == 200
        for c in admitted:                     # the admitted ones are unaffected
            assert c.hello()[0] == 1
        assert [x[0] for x in admitted[0].list_devices()] == hs
        for c in admitted:
            c.close()
        # recovery: once they are gone, new clients are served again
        assert wait_until(lambda: not _refused(d.path), 30)
        assert settle_fds(d, base_fds) == base_fds
        with d.connect() as c:
            assert c.list_devices() == []      # the closed clients' devices went with them
    finally:
        assert d.stop() == 0


def test_connect_close_storm_with_half_sent_records_leaves_no_trace():
    """Hundreds of connections opened and closed at once, some after sending
    a request they never read the answer of, some with fds in flight."""
    d = Daemon("--max-clients", "32")
    try:
        base_fds = settle_fds(d, d.fd_count())
        rss0 = d.rss_kib()
        rng = random.Random(SEED)
        for round_ in range(10):
            socks = []
            for i in range(48):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                try:
                    s.connect(d.path)
                    k = rng.random()
                    if k < 0.3:
                        s.send(msg(T.IRQD_MSG_CREATE_DEVICE, P_CREATE.pack(3, 0, 0, 0), REQ, 1))
                    elif k < 0.5:
                        fd = eventfd()
                        s.sendmsg([msg(T.IRQD_MSG_NOOP, b"", REQ, 1)],
                                  [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", fd))])
                        os.close(fd)
                    elif k < 0.6:
                        s.send(msg(T.IRQD_MSG_LIST_DEVICES, b"", REQ, 1))
                except OSError:
                    pass  # refused past --max-clients: fine
                socks.append(s)
            for s in socks:
                s.close()
        assert settle_fds(d, base_fds) == base_fds
        with d.connect() as c:
            assert c.list_devices() == []
            assert c.hello()[0] == 1
        assert d.rss_kib() < rss0 + 16 * 1024
    finally:
        assert d.stop() == 0


# ---------------------------------------------------------------------------------------------------------
# the same load on the daemon's C fast path (no --trace: tracing keeps connections in Python)

def shared_triggers(rng: random.Random, h: int, sent: dict) -> list:
    """Edge triggers and batches of edges on a shared device; ``sent`` counts them per (h, irq)."""
    ops = []
    for _ in range(rng.choice((1, 2, 4))):
        if rng.random() < 0.7:
            irq = rng.randrange(SHARED_EDGE[0], SHARED_EDGE[0] + SHARED_EDGE[1])
            ops.append((T.IRQD_MSG_IRQ_LINE, P_LEVEL.pack(h, irq, KVM_EDGE, 0), REQ | (ACK if rng.random() < .5 else 0)))
            sent[(h, irq)] = sent.get((h, irq), 0) + 1
        else:
            irqs = [rng.randrange(SHARED_EDGE[0], SHARED_EDGE[0] + SHARED_EDGE[1]) for _ in range(rng.randrange(1, 33))]
            ops.append((T.IRQD_MSG_IRQ_LINE_BATCH, P_BATCH.pack(h, len(irqs)) + b"".join(P_ENTRY.pack(i, KVM_EDGE)
                                                                                         for i in irqs), REQ | ACK))
            for i in irqs:
                sent[(h, i)] = sent.get((h, i), 0) + 1
    return ops


def fast_client_main(c: LoadClient, w: World, idx: int, errors: list, start: threading.Barrier, sent: dict) -> None:
    rng = random.Random(SEED * 7919 + idx)
    pending: dict = {}
    try:
        make_private(c, w, idx, rng, irqfd=False)
        start.wait()
        for _ in range(OPS_PER_CLIENT):
            k = rng.random()
            if k < 0.04:
                restore_cycle(c, w, idx, rng, irqfd=False)
                continue
            if k < 0.5:
                ops = shared_triggers(rng, rng.choice(w.shared), sent)
            else:
                h = w.private[idx]
                ops = random_ops(rng, h, 2, PRIV_EDGE, PRIV_LEVEL, pending)
            if not ops:
                continue
            replies = c.record(ops)
            for (t, pl, _), rs in zip(ops, replies):
                if t == T.IRQD_MSG_HCALL and struct.unpack_from("<Q", pl, 8)[0] == lib.IRQD_H_XIRR:
                    p = data_of(rs, T.IRQD_MSG_HCALL)
                    if p is not None:
                        xirr = struct.unpack_from("<Q", p, 24)[0]
                        if xirr & 0xFFFFFF:
                            pending[(struct.unpack_from("<I", pl, 4)[0], struct.unpack_from("<I", pl, 0)[0])] = xirr
    except BaseException as e:  # noqa: BLE001 - reported by the test
        errors.append((idx, repr(e)))


def test_64_clients_on_the_fast_path_answer_as_a_per_device_replay_and_lose_no_edge():
    """Without --trace the order across connections is not logged, so: every
    client's own device is used by it alone (its requests, in its order, are
    the device's sequential history: every reply must equal the model's),
    and the shared devices get only edges, whose per-source trigger counters
    (GET_STATS) must equal the number of edges all clients sent: none lost,
    none counted twice."""
    d = Daemon("--max-devices-per-uid", "256")
    try:
        w = World()
        setup = LoadClient(d.path, 999)
        for _ in range(4):
            (r,) = setup.record([(T.IRQD_MSG_CREATE_DEVICE, P_CREATE.pack(3, 0, lib.IRQD_CREATE_PERSIST, 0), REQ)])
            h = P_CREATE.unpack(data_of(r, T.IRQD_MSG_CREATE_DEVICE))[1]
            setup.record([(T.IRQD_MSG_CONNECT_VCPU, P_VCPU.pack(h, s, 0, 0), REQ | ACK) for s in range(4)]
                         + [(T.IRQD_MSG_CREATE_ICS, P_ICS.pack(h, SHARED_EDGE[0], SHARED_EDGE[1], 0), REQ | ACK)]
                         + [(T.IRQD_MSG_RTAS, P_RTAS.pack(h, 1, 3, 1, irq, irq % 4, 5, *[0] * 9), REQ)
                            for irq in range(SHARED_EDGE[0], SHARED_EDGE[0] + SHARED_EDGE[1])])
            w.shared.append(h)
        clients = [LoadClient(d.path, 1000 + i) for i in range(N_CLIENTS)]
        errors: list = []
        sents: list[dict] = [{} for _ in clients]
        start = threading.Barrier(N_CLIENTS, timeout=60)
        threads = [threading.Thread(target=fast_client_main, args=(c, w, i, errors, start, sents[i]), daemon=True)
                   for i, c in enumerate(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not any(t.is_alive() for t in threads), "a client hung"
        assert not errors, errors[:5]
        for c in clients:
            c.record([])                     # every fire-and-forget trigger sent before is applied
        # shared devices: triggers counted exactly once each
        total: dict = {}
        for sent in sents:
            for k, v in sent.items():
                total[k] = total.get(k, 0) + v
        stats = {h: setup.raw.get_stats(h)[0] for h in w.shared}
        got = {(h, irq): v[0] for h in w.shared for irq, v in stats[h].items() if v[0]}
        assert got == total, "trigger counters differ from the edges sent"
        # private devices: each client's history replayed alone
        compared = 0
        mismatches = []
        for c in clients:
            handles = {}
            for rec in c.sent:
                for t, _, s, p, _ in split_record(rec):
                    if t == T.IRQD_MSG_CREATE_DEVICE:
                        pl = data_of(c.replies[s], T.IRQD_MSG_CREATE_DEVICE)
                        handles[(p, s)] = P_CREATE.unpack(pl)[1] if pl else None
            rp = Replay(handles)
            for h in w.shared:   # only edges go there: a configured stand-in answers them the same
                rp.devs[h] = shared_standin(rp)
            rp.run([(1, 1, 0, rec) for rec in c.sent])
            for seq, got_r in c.replies.items():
                have = [norm_reply(r) for r in got_r]
                if have != rp.expected[(c.pid, seq)]:
                    mismatches.append((c.pid, seq, have[:3], rp.expected[(c.pid, seq)][:3]))
                compared += 1
        if mismatches:
            pytest.fail(f"{len(mismatches)} replies differ from the per-device replay; first: {mismatches[:3]}")
        print(f"\nfast path: {compared} replies compared, {sum(total.values())} shared edges counted")
        assert compared > N_CLIENTS * OPS_PER_CLIENT
        for c in clients + [setup]:
            c.raw.close()
    finally:
        assert d.stop() == 0, d.log_text()[-3000:]


def shared_standin(rp: Replay):
    from reliability_util import _RDev
    dev = _RDev(rp.XicsModel(), 0, True)
    for s in range(4):
        dev.model.connect_vcpu(s)
    dev.model.create_ics(SHARED_EDGE[0], SHARED_EDGE[1], False)
    return dev
