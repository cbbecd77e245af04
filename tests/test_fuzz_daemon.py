"""Daemon fuzzing (reliability issue, part 2), bounded for `make test`.

* The atheris target (fuzz/atheris/fuzz_daemon.py: the daemon's whole
  record path, in-process, under coverage guidance) runs on its committed
  corpus plus a few thousand mutations.  `make fuzz-daemon` runs it for
  FUZZ_SECONDS.

* A socket-level mutation fuzzer: an unprivileged uid (a forked child)
  sends mutated valid records - bit flips, fields set to interesting
  values, lengths corrupted, records truncated, extended, concatenated,
  0-4 fds of several kinds attached - to a real daemon, handles of its own
  devices and of root's devices alike.  After each batch the parent checks
  that the daemon still answers HELLO and that root's devices (which the
  fuzzer may name but never own) are exactly as before: DUMP_STATE,
  GET_STATS and their LIST_DEVICES entries, generation included.  Every
  reply record must be well framed with ERROR/DONE last.  Duration:
  IRQD_SOCKET_FUZZ_SECONDS (default 6; `make fuzz-daemon` sets FUZZ_SECONDS).
"""

from __future__ import annotations

import os
import pickle
import random
import re
import struct
import subprocess
import sys
import time

from irqd._core import lib
from reliability_util import (
    ACK,
    ICP_STATE,
    NR_IRQS,
    P_ATTR,
    P_BATCH,
    P_CREATE,
    P_ENTRY,
    P_HANDLE,
    P_HCALL,
    P_ICS,
    P_IRQFD,
    P_LEVEL,
    P_OUTPUT,
    P_REG,
    P_RTAS,
    P_VCPU,
    REQ,
    ROOT,
    Daemon,
    Raw,
    T,
    close_all,
    eventfd,
    fork_as,
    msg,
    settle_fds,
    setup_device,
)

FUZZ_UID = 10201
SOCKET_FUZZ_SECONDS = float(os.environ.get("IRQD_SOCKET_FUZZ_SECONDS", "6"))
ATHERIS_RUNS = int(os.environ.get("IRQD_ATHERIS_RUNS", "4000"))


def test_atheris_target_runs_clean_on_its_corpus(tmp_path):
    corpus = ROOT / "fuzz" / "atheris" / "corpus"
    seeds = list(corpus.iterdir())
    assert len(seeds) >= 40
    scratch = tmp_path / "corpus"
    scratch.mkdir()
    p = subprocess.run([sys.executable, str(ROOT / "fuzz" / "atheris" / "fuzz_daemon.py"), f"-runs={ATHERIS_RUNS}",
                        "-max_total_time=60", "-timeout=30", f"-artifact_prefix={tmp_path}/", str(scratch), str(corpus)],
                       capture_output=True, text=True, timeout=240, cwd=str(ROOT), check=False)
    assert p.returncode == 0, p.stderr[-4000:]
    m = re.search(r"Done (\d+) runs", p.stderr)
    assert m, p.stderr[-2000:]
    runs = int(m.group(1))
    assert runs >= min(ATHERIS_RUNS, len(seeds))
    assert not list(tmp_path.glob("crash-*"))
    print(f"\natheris: {runs} executions")


# ---------------------------------------------------------------------------------------------------------
# socket-level mutation fuzzer

INTERESTING32 = [0, 1, 2, 3, 4, 15, 16, 17, 0x3FF, 0x400, 0x7FF, 0xFF, 0x100, 0xFFFF, 0x10000, NR_IRQS - 1, NR_IRQS,
                 lib.IRQD_MAX_SERVERS, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFD, 0xFFFFFFFE, 0xFFFFFFFF]


def templates(own: list[int], foreign: list[int], rng: random.Random) -> list[tuple[bytes, int]]:
    """Valid requests (as records) and how many fds each takes."""
    h = rng.choice(own + own + foreign)
    irq = rng.choice((32, 40, 100, 16, 1000))
    s = rng.choice((0, 1, 2))
    nr = rng.choice((lib.IRQD_H_XIRR, lib.IRQD_H_XIRR_X, lib.IRQD_H_EOI, lib.IRQD_H_CPPR, lib.IRQD_H_IPI,
                     lib.IRQD_H_IPOLL))
    out = [
        (msg(T.IRQD_MSG_HELLO, struct.pack("<8I", 1, 0, 0, 0, 0, 0, 0, 0), REQ), 0),
        (msg(T.IRQD_MSG_CREATE_DEVICE, P_CREATE.pack(3, 0, rng.choice((0, 1, 2)), 0), REQ), 0),
        (msg(T.IRQD_MSG_DESTROY_DEVICE, P_HANDLE.pack(h, 0)), 0),
        (msg(T.IRQD_MSG_ATTACH, P_HANDLE.pack(h, 0)), 0),
        (msg(T.IRQD_MSG_LIST_DEVICES, b"", REQ | 0x300), 0),
        (msg(T.IRQD_MSG_IRQ_LINE, P_LEVEL.pack(h, irq, rng.choice((0, 1, 0xFFFFFFFF)), 0), REQ), 0),
        (msg(T.IRQD_MSG_IRQ_LINE_BATCH, P_BATCH.pack(h, 2) + P_ENTRY.pack(irq, 1) + P_ENTRY.pack(irq + 1, 0xFFFFFFFF)), 0),
        (msg(T.IRQD_MSG_SET_DEVICE_ATTR, P_ATTR.pack(h, 0, 1, 0, irq, rng.choice((5 << 32 | s, 0xFF << 32 | 1 << 41,
                                                                                1 << 42 | 3 << 32)))), 0),
        (msg(T.IRQD_MSG_GET_DEVICE_ATTR, P_ATTR.pack(h, 0, 1, 0, irq, 0), REQ), 0),
        (msg(T.IRQD_MSG_HAS_DEVICE_ATTR, P_ATTR.pack(h, 0, 1, 0, irq, 0), REQ), 0),
        (msg(T.IRQD_MSG_CREATE_ICS, P_ICS.pack(h, rng.choice((200, 2000, 70000)), rng.choice((1, 16, 1024)), 1)), 0),
        (msg(T.IRQD_MSG_CONNECT_VCPU, P_VCPU.pack(h, rng.choice((2, 3, 100)), 0, 0)), 0),
        (msg(T.IRQD_MSG_GET_ONE_REG, P_REG.pack(h, s, ICP_STATE, 0), REQ), 0),
        (msg(T.IRQD_MSG_SET_ONE_REG, P_REG.pack(h, s, ICP_STATE, rng.choice((0xFF00_0000_FFFF_0000,
                                                                             0x0500_0028_FF03_0000)))), 0),
        (msg(T.IRQD_MSG_HCALL, P_HCALL.pack(h, s, nr, rng.choice((0, 1, 0xFF000028, 2)), 5, 0, 0), REQ), 0),
        (msg(T.IRQD_MSG_RTAS, P_RTAS.pack(h, rng.choice((1, 2, 3, 4)), 3, 1, irq, s, 5, *[0] * 9), REQ), 0),
        (msg(T.IRQD_MSG_IRQFD, P_IRQFD.pack(h, irq, 0, 0)), 1),
        (msg(T.IRQD_MSG_IRQFD, P_IRQFD.pack(h, irq, 2, 0)), 2),
        (msg(T.IRQD_MSG_IRQFD, P_IRQFD.pack(h, irq, 1, 0)), 0),
        (msg(T.IRQD_MSG_SET_OUTPUT, P_OUTPUT.pack(h, s, 0, 0)), 1),
        (msg(T.IRQD_MSG_SET_OUTPUT, P_OUTPUT.pack(h, s, 1, 0)), 0),
        (msg(T.IRQD_MSG_DUMP_STATE, P_HANDLE.pack(h, 0), REQ), 0),
        (msg(T.IRQD_MSG_GET_STATS, P_HANDLE.pack(h, 0), REQ), 0),
        (msg(T.IRQD_MSG_RESTORE_BEGIN, P_HANDLE.pack(h, 0)), 0),
        (msg(T.IRQD_MSG_RESTORE_COMMIT, P_HANDLE.pack(h, 0)), 0),
        (msg(T.IRQD_MSG_RESTORE_ABORT, P_HANDLE.pack(h, 0)), 0),
    ]
    return out


def mutate(rec: bytes, rng: random.Random, own: list[int], foreign: list[int]) -> bytes:
    b = bytearray(rec)
    for _ in range(rng.choice((1, 1, 1, 2, 3, 5))):
        k = rng.random()
        if not b:
            b = bytearray(rng.randbytes(rng.randrange(1, 40)))
        pos = rng.randrange(len(b))
        if k < 0.25:
            b[pos] ^= 1 << rng.randrange(8)
        elif k < 0.45 and len(b) >= 4:
            off = rng.randrange(0, len(b) - 3) & ~3
            struct.pack_into("<I", b, off, rng.choice(INTERESTING32 + own + foreign))
        elif k < 0.55:
            b[pos] = rng.choice((0, 0xFF, 0x7F, 0x80, 1))
        elif k < 0.62 and len(b) >= 4:   # corrupt the first header's len
            struct.pack_into("<I", b, 0, rng.choice((0, 1, 15, 16, len(b) - 1, len(b) + 4, 0xFFFFFFFF, 65536)))
        elif k < 0.70:   # header flags / type
            if len(b) >= 8:
                struct.pack_into("<H", b, rng.choice((4, 6)), rng.randrange(0x10000))
        elif k < 0.78:
            del b[rng.randrange(len(b)):]
        elif k < 0.86:
            b += rng.choice((bytes(rng.randrange(1, 16)), rng.randbytes(rng.randrange(1, 16))))
        else:
            b[pos:pos] = rng.randbytes(rng.randrange(1, 8))
    return bytes(b)


def make_fds(rng: random.Random, n: int) -> list[int]:
    fds = []
    for _ in range(n):
        k = rng.random()
        if k < 0.8:
            fds.append(eventfd())
        elif k < 0.9:
            fds.append(os.open("/dev/null", os.O_RDONLY))
        else:
            r, w = os.pipe()
            os.close(w)
            fds.append(r)
    return fds


def _fuzz_child(path: str, foreign: list[int], seconds: float, seed: int, to_parent: int, from_parent: int) -> int:
    """Runs as FUZZ_UID.  Returns the number of records sent."""
    rng = random.Random(seed)
    c = Raw(path, timeout=30)
    own = [setup_device(c, persist=False), setup_device(c, persist=True)]
    sent = 0
    deadline = time.monotonic() + seconds
    batch = 0
    while time.monotonic() < deadline:
        for _ in range(64):
            tmpl = templates(own, foreign, rng)
            parts = []
            nfds = 0
            for _ in range(rng.choice((1, 1, 1, 2, 3, 6))):
                rec, n = rng.choice(tmpl)
                parts.append(rec)
                nfds += n
            rec = b"".join(parts)
            if rng.random() < 0.9:
                rec = mutate(rec, rng, own, foreign)
            if not rec:
                continue
            if rng.random() < 0.3:
                nfds = rng.randrange(5)
            fds = make_fds(rng, nfds)
            try:
                if len(rec) > 65536 + 4096:
                    rec = rec[:65536 + 4096]
                if rng.random() < 0.2:
                    c.send(rec, fds)         # pipelined: answered with the next sync
                else:
                    c.exchange(rec, fds)
            finally:
                close_all(fds)
            sent += 1
            if rng.random() < 0.05:
                # new device handles appear: let the fuzzer name them too
                own = own[:2] + [x[0] for x in c.list_devices()][-4:]
        c.sync()
        assert c.hello()[0] == 1
        batch += 1
        os.write(to_parent, struct.pack("<I", batch))
        assert os.read(from_parent, 1) == b"k", "parent found a changed witness"
    c.close()
    return sent


def test_socket_mutation_fuzzer_never_breaks_the_daemon_or_foreign_devices():
    d = Daemon("--mode", "0666", "--max-devices-per-uid", "64", "--max-fds-per-uid", "512")
    try:
        base_fds = settle_fds(d, d.fd_count())
        root = d.connect()
        w1 = setup_device(root, persist=False)
        root.check_ok(T.IRQD_MSG_IRQ_LINE, P_LEVEL.pack(w1, 33, 0xFFFFFFFF, 0))
        root.check_ok(T.IRQD_MSG_IRQ_LINE, P_LEVEL.pack(w1, 100, 1, 0))
        w2 = root.create_device(persist=True)
        fd = eventfd()
        root.exchange(msg(T.IRQD_MSG_IRQFD, P_IRQFD.pack(w1, 40, 0, 0), REQ | ACK, 5), [fd])
        foreign = [w1, w2]

        def witness():
            listing = {x[0]: x for x in root.list_devices()}
            return ([listing[h] for h in foreign], root.dump_state(w1), root.get_stats(w1), root.dump_state(w2))

        before = witness()
        to_p_r, to_p_w = os.pipe()
        from_p_r, from_p_w = os.pipe()
        res_r, res_w = os.pipe()
        seed = int(os.environ.get("IRQD_FUZZ_SEED", str(int(time.time()))))
        def child() -> None:
            try:
                res = ("ok", _fuzz_child(d.path, foreign, SOCKET_FUZZ_SECONDS, seed, to_p_w, from_p_r))
            except BaseException as e:  # noqa: BLE001
                import traceback
                res = ("err", f"{e!r}\n{traceback.format_exc()}")
            os.write(res_w, pickle.dumps(res))

        pid = fork_as(FUZZ_UID, child)
        for x in (to_p_w, from_p_r, res_w):
            os.close(x)
        batches = 0
        try:
            while True:
                data = os.read(to_p_r, 4)
                if not data:
                    break
                batches += 1
                assert d.alive(), d.log_text()[-3000:]
                ok = witness() == before
                os.write(from_p_w, b"k" if ok else b"x")
                assert ok, f"seed {seed}: a device the fuzzer does not own changed after batch {batches}"
        finally:
            os.close(from_p_w)
            os.waitpid(pid, 0)
            with os.fdopen(res_r, "rb") as f:
                raw = f.read()
            os.close(to_p_r)
        kind, val = pickle.loads(raw)
        assert kind == "ok", f"seed {seed}: {val}"
        assert witness() == before
        assert root.hello()[0] == 1
        # clean up the fuzzer's PERSIST devices; then every fd it made the daemon take is gone
        for info in root.list_devices():
            if info[2] == FUZZ_UID:
                root.check_ok(T.IRQD_MSG_DESTROY_DEVICE, P_HANDLE.pack(info[0], 0))
        root.check_ok(T.IRQD_MSG_DESTROY_DEVICE, P_HANDLE.pack(w2, 0))
        root.close()
        os.close(fd)
        assert settle_fds(d, base_fds) == base_fds
        print(f"\nsocket fuzzer: seed {seed}, {val} mutated records in {batches} batches, witnesses unchanged")
        assert val > 100 and batches >= 1
    finally:
        assert d.stop() == 0, d.log_text()[-3000:]
