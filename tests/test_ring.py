"""0x40 RING_SETUP: the shared-memory trigger ring (abi.h, irqd/core/ring.c,
irqd/ringd.py, irqd/ring.py).

Setup/teardown errors answer the right errno and leave no fd behind;
triggers posted through the ring reach the device (source state, stats,
output eventfd); a full ring refuses posts (backpressure) and loses
nothing; garbage written into a ring only costs its own device errors
counted; a killed producer leaks nothing once its device is gone.  Bounded:
every wait has a deadline, counts are small.
"""

from __future__ import annotations

import errno
import fcntl
import gc
import json
import mmap
import os
import random
import select
import signal
import socket
import struct
import time

import pytest
from conftest import Daemon
from irqd._core import ffi, lib

from irqd.client import Client
from irqd.errors import IrqdError
from irqd.ring import Ring, _setup

MSI = 0x1000  # first source of an edge/MSI ICS
LSI = 0x2000  # first source of a level ICS
SET = lib.IRQD_KVM_INTERRUPT_SET
PENDING = lib.IRQD_KVM_XICS_PENDING
HDR = lib.IRQD_RING_HDR_SIZE


@pytest.fixture
def client(daemon):
    with Client(daemon.path) as c:
        # the daemon creates its ring-notify eventfd on the first RING_SETUP:
        # make that happen before any test takes an fd baseline
        warm = c.create_device()
        Ring(warm, 4).close()
        warm.destroy()
        yield c


def _device(client):
    dev = client.create_device()
    dev.create_ics(MSI, 16)
    dev.create_ics(LSI, 16, level=True)
    dev.connect_vcpu(0)
    return dev


def _all_threads_stopped(pid: int) -> bool:
    """Every thread of pid in state T: SIGSTOP is delivered asynchronously,
    so kill() returning does not mean the consumer threads have stopped."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] != "T":
                return False
    return True


def _wait(pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.002)
    return pred()


def _settled_fds(daemon, timeout=5.0):
    """The daemon's fd count once it stopped moving (closes are asynchronous)."""
    last, since = daemon.fd_count(), time.monotonic()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.02)
        n = daemon.fd_count()
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since > 0.1:
            break
    return last


def _threads(daemon) -> int:
    return len(os.listdir(f"/proc/{daemon.proc.pid}/task"))


def _memfd(log2=4, seal=True, size=None, fmt=True):
    fd = os.memfd_create("t", os.MFD_CLOEXEC | (os.MFD_ALLOW_SEALING if seal else 0))
    total = lib.irqd_ring_size(log2) if size is None else size
    os.ftruncate(fd, total)
    if fmt and total >= HDR:
        with mmap.mmap(fd, total) as mm:
            buf = ffi.from_buffer("uint8_t[]", mm)
            lib.irqd_ring_init(buf, lib.irqd_ring_size(log2) if size is None else total, log2)
            ffi.release(buf)
    if seal:
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK)
    return fd


def _eventfd():
    return os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)


# ---- negotiation, layout ----------------------------------------------------------------


def test_hello_reports_the_ring_feature(client):
    assert client.hello.features & lib.IRQD_FEAT_RING


def test_ring_header_layout_puts_each_hot_field_on_its_own_cache_line():
    offs = {
        f: ffi.offsetof("struct irqd_ring_hdr", f)
        for f in ("head", "tail", "need_wakeup", "errors", "applied")
    }
    assert offs == {"head": 64, "tail": 128, "need_wakeup": 192, "errors": 256, "applied": 320}
    assert ffi.sizeof("struct irqd_ring_hdr") == HDR == 4096
    assert lib.irqd_ring_size(4) == 4096 + 16 * 8
    assert ffi.sizeof("struct irqd_ring_setup") == 16


# ---- setup / teardown errors ---------------------------------------------------------


def _expect(dev, flags, log2, fds, err, offset=None):
    with pytest.raises(IrqdError) as ei:
        _setup(dev, flags, log2, fds)
    assert ei.value.errno == err, ei.value
    assert ei.value.strerror
    if offset is not None:
        assert ei.value.offset == offset
    return ei.value


BAD_SETUPS = [
    # name, fds builder, log2, errno, extack fragment
    ("one-fd", lambda: [_memfd()], 4, errno.EBADF, "takes 2 fds"),
    ("no-fd", list, 4, errno.EBADF, "takes 2 fds"),
    ("three-fds", lambda: [_memfd(), _eventfd(), _eventfd()], 4, errno.EBADF, None),
    ("doorbell-not-eventfd", lambda: [_memfd(), _memfd()], 4, errno.EINVAL, "not an eventfd"),
    ("ring-is-an-eventfd", lambda: [_eventfd(), _eventfd()], 4, errno.EINVAL, "not a memfd"),
    ("ring-is-a-socket", lambda: [socket.socket(socket.AF_UNIX).detach(), _eventfd()], 4, errno.EINVAL, None),
    ("memfd-without-seals", lambda: [_memfd(seal=False), _eventfd()], 4, errno.EINVAL, "F_SEAL_SHRINK"),
    ("memfd-too-small", lambda: [_memfd(size=HDR + 8 * 15), _eventfd()], 4, errno.EINVAL, "needed"),
    ("memfd-empty", lambda: [_memfd(size=0), _eventfd()], 4, errno.EINVAL, None),
    ("header-not-formatted", lambda: [_memfd(fmt=False), _eventfd()], 4, errno.EINVAL, "header"),
    (
        "header-for-another-size",
        lambda: [_memfd(log2=5, size=lib.irqd_ring_size(5)), _eventfd()],
        4,
        errno.EINVAL,
        "header",
    ),
    ("log2-too-small", lambda: [_memfd(), _eventfd()], 3, errno.EINVAL, "entries_log2"),
    ("log2-too-big", lambda: [_memfd(), _eventfd()], 17, errno.EINVAL, "entries_log2"),
]


@pytest.mark.parametrize("name,build,log2,err,frag", BAD_SETUPS, ids=[b[0] for b in BAD_SETUPS])
def test_bad_ring_setup_is_refused_and_closes_every_fd(daemon, client, name, build, log2, err, frag):
    dev = _device(client)
    base = _settled_fds(daemon)
    gen = dev.info().generation
    fds = build()
    try:
        e = _expect(dev, 0, log2, fds, err)
    finally:
        for fd in fds:
            os.close(fd)
    if frag:
        assert frag in e.strerror
    if name.startswith("log2"):
        assert e.offset == 16 + 8
    assert _settled_fds(daemon) == base
    assert dev.info().generation == gen
    # the device still takes a good ring afterwards
    with dev.open_ring(4) as r:
        assert r.post(MSI, SET)
        assert r.wait_consumed()
    dev.destroy()


def test_ring_setup_field_checks(client):
    dev = _device(client)
    _expect(dev, 0x2, 4, [], errno.EINVAL, offset=16 + 4)  # unknown flag, before fds
    # reserved field
    c = client
    with c._lock:
        seq = c._next_seq()
        rec = struct.pack("<IHHII4I", 32, lib.IRQD_MSG_RING_SETUP, 5, seq, 0, dev.handle, 0, 4, 7)
        with pytest.raises(IrqdError) as ei:
            c._call(rec, seq, "ack", True, lib.IRQD_MSG_RING_SETUP, [])
    assert ei.value.errno == errno.EINVAL and ei.value.offset == 16 + 12
    _expect(dev, lib.IRQD_RING_DEASSIGN, 0, [], errno.ENOENT)  # no ring to remove
    dead = client.create_device()
    dead.destroy()
    _expect(dead, lib.IRQD_RING_DEASSIGN, 0, [], errno.EBADF)  # bad handle
    dead._closed = False
    m, e = _memfd(), _eventfd()
    try:
        _expect(dead, 0, 4, [m, e], errno.EBADF)
    finally:
        os.close(m)
        os.close(e)
    r = dev.open_ring(4)
    m, e = _memfd(), _eventfd()
    try:
        _expect(dev, 0, 4, [m, e], errno.EEXIST)  # one ring per device
    finally:
        os.close(m)
        os.close(e)
    r.close()
    with dev.open_ring(5) as r2:  # a new one after DEASSIGN
        assert r2.entries == 32
    dev.destroy()


def test_ring_of_another_uid_is_eacces():
    d = Daemon("--mode", "0666")
    os.chmod(d.dir, 0o755)
    try:
        with Client(d.path) as root:
            mine = root.create_device(persist=True)
            rfd, wfd = os.pipe()
            pid = os.fork()
            if pid == 0:
                res = {}
                try:
                    os.setgroups([])
                    os.setgid(65534)
                    os.setuid(65534)
                    from irqd.client import RemoteXics

                    with Client(d.path) as c:
                        try:
                            Ring(RemoteXics(c, mine.handle), 4)
                            res["ring"] = "ok"
                        except PermissionError as e:
                            res["ring"] = [e.errno, isinstance(e, IrqdError)]
                        own = c.create_device()
                        own.create_ics(MSI, 1)
                        with own.open_ring(4) as r:  # its own device: fine
                            r.post(MSI, SET)
                            res["own"] = [r.wait_consumed(), r.applied]
                except BaseException as e:  # noqa: BLE001 - reported to the parent
                    res["error"] = repr(e)
                os.write(wfd, json.dumps(res).encode())
                os._exit(0)
            os.close(wfd)
            with os.fdopen(rfd) as f:
                res = json.loads(f.read() or "{}")
            os.waitpid(pid, 0)
            assert "error" not in res, res
            assert res["ring"] == [errno.EACCES, True]
            assert res["own"] == [True, 1]
    finally:
        d.stop()


def test_ring_doorbell_counts_against_the_fd_limit():
    # fds count from the moment they arrive: a ring record brings 2, keeps 1
    d = Daemon("--max-fds-per-uid", "3")
    try:
        with Client(d.path) as c:
            a, b = _device(c), _device(c)
            e1, e2 = _eventfd(), _eventfd()
            a.set_output(0, e1)
            ra = a.open_ring(4)  # output + doorbell = 2
            m, e = _memfd(), _eventfd()
            try:
                _expect(b, 0, 4, [m, e], errno.ENOSPC)
            finally:
                os.close(m)
                os.close(e)
            ra.close()  # doorbell released
            b.set_output(0, e2)  # room again
            os.close(e1)
            os.close(e2)
    finally:
        d.stop()


# ---- triggers take effect -----------------------------------------------------------------


def test_ring_triggers_reach_the_device(client):
    dev = _device(client)
    with dev.open_ring(6) as r:
        assert r.post(LSI + 3, 1)  # level set on a masked LSI: pending
        assert r.post_many([(MSI + i, SET) for i in range(5)]) == 5
        assert r.wait_consumed()
        assert r.applied == 6 and r.errors == 0 and r.tail == r.head == 6
        assert dev.get_source(LSI + 3) & PENDING
        st = dev.dump()
        assert st.sources[MSI + 2] & PENDING  # masked MSI fired: P recorded
        assert not st.sources[MSI + 7] & PENDING
        assert dev.stats().sources[MSI + 4][0] == 1
        assert r.post(LSI + 3, 0)  # and reset again
        assert r.wait_consumed()
        assert not dev.get_source(LSI + 3) & PENDING
    dev.destroy()


def test_ring_trigger_raises_the_vcpu_output_eventfd(client):
    dev = _device(client)
    dev.set_xive(MSI, 0, 5)
    dev.hcall(0, lib.IRQD_H_CPPR, 0xFF)  # the vCPU accepts interrupts
    out = _eventfd()
    try:
        dev.set_output(0, out)
        with dev.open_ring(4) as r:
            time.sleep(0.2)  # let the consumer fall asleep first
            assert r.post(MSI, SET)
            assert select.select([out], [], [], 5.0)[0] == [out]
            assert os.eventfd_read(out) == 1
            # the guest takes it: XIRR presents MSI
            status, xirr, _, _ = dev.hcall(0, lib.IRQD_H_XIRR)
            assert status == 0 and xirr & 0xFFFFFF == MSI
    finally:
        os.close(out)
    dev.destroy()


def test_dropped_ring_gives_back_its_fds_and_mapping(client):
    dev = _device(client)
    before = set(os.listdir("/proc/self/fd"))
    r = dev.open_ring(6)
    mine = {str(r.memfd), str(r.doorbell)}
    assert mine <= set(os.listdir("/proc/self/fd"))
    maps = open("/proc/self/maps").read().count("irqd-ring")
    assert maps >= 1
    with pytest.warns(ResourceWarning, match="was not closed"):
        del r
        gc.collect()
    assert set(os.listdir("/proc/self/fd")) - before == set()
    assert open("/proc/self/maps").read().count("irqd-ring") == maps - 1
    # the daemon's side is untouched: the device still has its ring
    with pytest.raises(OSError) as e:
        dev.open_ring(6)
    assert e.value.errno == errno.EEXIST
    dev.destroy()


def test_ring_sleeps_and_is_woken_by_the_doorbell(client):
    dev = _device(client)
    with dev.open_ring(4) as r:
        for i in range(3):
            assert _wait(lambda: r.need_wakeup)  # idle consumer announced its sleep
            assert r.post(MSI + i, SET)
            assert r.wait_consumed()
        assert r.applied == 3
    dev.destroy()


def test_full_ring_refuses_posts_and_loses_nothing(daemon, client):
    dev = _device(client)
    with dev.open_ring(4) as r:
        os.kill(daemon.proc.pid, signal.SIGSTOP)  # no consumer runs
        try:
            assert _wait(lambda: _all_threads_stopped(daemon.proc.pid))
            posted = r.post_many([(MSI + (i % 16), SET) for i in range(40)])
            assert posted == 16  # the ring holds 16, the rest is refused
            assert not r.post(MSI, SET)
            assert r.head - r.tail == 16
        finally:
            os.kill(daemon.proc.pid, signal.SIGCONT)
        assert r.wait_consumed()
        assert r.applied == 16
        # a producer that retries on "full": every entry applied exactly once
        todo = [(MSI + (i % 16), SET) for i in range(3000)]
        full = 0
        deadline = time.monotonic() + 20
        while todo and time.monotonic() < deadline:
            n = r.post_many(todo)
            if n < len(todo):
                full += 1
            todo = todo[n:]
            if not n:
                time.sleep(0)
        assert not todo and r.wait_consumed()
        assert r.applied == 3016 and r.errors == 0
        assert sum(t for t, _ in dev.stats().sources.values()) == 3016
    dev.destroy()


# ---- hostile rings ----------------------------------------------------------------------


def test_garbage_in_a_ring_counts_errors_and_hurts_only_its_device(daemon, client):
    victim = _device(client)
    bystander = _device(client)
    bystander.set_xive(MSI, 0, 5)
    bystander.irq_line(LSI, 1)
    before = bystander.dump()
    r = victim.open_ring(4)
    # bad irq numbers and levels: each counted, none applied
    assert r.post_many([(5, SET), (1 << 20, SET), (MSI, 2), (MSI + 20, SET), (MSI, SET)]) == 5
    assert r.wait_consumed()
    assert (r.errors, r.applied) == (4, 1)
    # head far ahead of tail: one error, the consumer resyncs to it
    struct.pack_into("<Q", r.mm, 64, r.tail + 1_000_000)
    os.eventfd_write(r.doorbell, 1)
    assert _wait(lambda: r.tail == r.head)
    assert r.errors == 5
    # head behind tail (a huge unsigned distance): same
    struct.pack_into("<Q", r.mm, 64, r.tail - 3)
    os.eventfd_write(r.doorbell, 1)
    assert _wait(lambda: r.tail == r.head) and r.errors == 6
    # the daemon-owned fields scribbled over are simply rewritten
    struct.pack_into("<QQ", r.mm, 256, 0, 0)
    assert r.post(MSI + 1, SET) and r.wait_consumed()
    assert r.errors == 6 and r.applied == 2
    # random bytes over the whole ring, header included, many times
    rng = random.Random(1234)
    for _ in range(50):
        junk = rng.randbytes(r.size)
        r.mm[:] = junk
        os.eventfd_write(r.doorbell, 1)
        time.sleep(0.001)
    r.close()
    # the daemon is alive, the bystander untouched, the victim still usable
    assert client.list_devices()
    with Client(daemon.path) as other:
        assert other.hello.version == 1
    assert bystander.dump() == before
    with victim.open_ring(4) as r2:
        assert r2.post(MSI + 2, SET) and r2.wait_consumed() and r2.applied == 1
    assert victim.dump().sources[MSI + 2] & PENDING
    assert daemon.proc.poll() is None
    victim.destroy()
    bystander.destroy()


def test_ring_follows_its_device_through_a_restore(client):
    dev = client.create_device()
    with dev.open_ring(4) as r:
        src = _device(client)
        src.set_xive(MSI, 0, 5)
        state = src.dump()
        dev.restore(state)  # RESTORE_BEGIN .. COMMIT swaps the core device
        assert r.post(LSI + 1, 1) and r.wait_consumed()
        assert r.applied == 1 and r.errors == 0
        assert dev.get_source(LSI + 1) & PENDING
        src.destroy()
    dev.destroy()


def test_doorbell_keeps_its_blocking_mode_and_a_stolen_count_cannot_hang_the_daemon():
    """The doorbell's file description is shared with the client: the daemon
    must not set O_NONBLOCK on it.  A client that reads its own doorbell can
    leave the consumer's read() blocked: removing the ring must still work."""
    import threading

    d = Daemon()
    try:
        with Client(d.path) as c:
            dev = _device(c)
            for _ in range(20):
                m, bell = _memfd(), os.eventfd(0, os.EFD_CLOEXEC)  # blocking, as a VMM opens it
                try:
                    _setup(dev, 0, 4, [m, bell])
                    assert os.get_blocking(bell)
                    hdr = mmap.mmap(m, HDR)
                    try:
                        assert _wait(lambda hdr=hdr: struct.unpack_from("<I", hdr, 192)[0] == 1)  # asleep
                        os.eventfd_write(bell, 1)
                        try:  # steal the count back (if the consumer was not faster)
                            os.preadv(bell, [bytearray(8)], -1, os.RWF_NOWAIT)
                        except BlockingIOError:
                            pass
                    finally:
                        hdr.close()
                    done = threading.Event()

                    def deassign(done=done):
                        _setup(dev, lib.IRQD_RING_DEASSIGN, 0, [])
                        done.set()

                    t = threading.Thread(target=deassign, daemon=True)
                    t.start()
                    if not done.wait(10):
                        d.proc.kill()
                        pytest.fail("RING_SETUP DEASSIGN hung: consumer stuck in read(doorbell)")
                    assert os.get_blocking(bell)
                finally:
                    os.close(m)
                    os.close(bell)
            assert c.list_devices()
    finally:
        assert d.stop() == 0


# ---- lifetime ---------------------------------------------------------------------------


_PRODUCER = r"""
import os, sys, time
sys.path.insert(0, {root!r})
from irqd.client import Client
c = Client({path!r})
dev = c.create_device(persist={persist})
dev.create_ics(0x1000, 16)
r = dev.open_ring(6)
n = 0
print(dev.handle, flush=True)
while True:
    n += r.post_many([(0x1000 + (n % 16), 0xFFFFFFFF)] * 8)
"""


@pytest.mark.parametrize("persist", [False, True], ids=["last-holder-gone", "destroy"])
def test_killed_producer_leaks_no_fd_or_thread(daemon, client, persist):
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    base_fds, base_threads = _settled_fds(daemon), _threads(daemon)
    p = subprocess.Popen(
        [sys.executable, "-c", _PRODUCER.format(root=root, path=daemon.path, persist=persist)],
        stdout=subprocess.PIPE,
    )
    try:
        handle = int(p.stdout.readline())
        assert _wait(lambda: _threads(daemon) == base_threads + 1)
        time.sleep(0.1)  # posting at full speed
    finally:
        p.kill()
        p.wait()
        p.stdout.close()
    if persist:
        assert handle in [d.handle for d in client.list_devices()]
        client.destroy(handle)
    assert _wait(lambda: handle not in [d.handle for d in client.list_devices()])
    assert _wait(lambda: _threads(daemon) == base_threads)
    assert _settled_fds(daemon) == base_fds
    assert daemon.proc.poll() is None


def test_daemon_stops_cleanly_with_rings_running():
    d = Daemon()
    try:
        with Client(d.path) as c:
            dev = _device(c)
            r = dev.open_ring(4)
            assert r.post(MSI, SET) and r.wait_consumed()
            assert d.stop() == 0
            r._release()
    finally:
        d.stop()


# ---- the C client ------------------------------------------------------------------------


def test_c_client_ring_posts_and_counts(daemon, tmp_path):
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    exe = tmp_path / "ring_client"
    subprocess.run(
        [
            "gcc",
            "-std=gnu11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-O2",
            "-I",
            os.path.join(root, "include"),
            "-I",
            root,
            "-o",
            str(exe),
            os.path.join(root, "tests", "c", "ring_client.c"),
            os.path.join(root, "clib", "irqd_client.c"),
        ],
        check=True,
    )
    r = subprocess.run([str(exe), daemon.path], check=False, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["applied", "1000", "errors", "2"]


@pytest.mark.parametrize("sanitizer", ["thread", "address,undefined"])
def test_ring_protocol_under_sanitizers(tmp_path, sanitizer):
    """Consumer (ring.c) and producer (ring_producer.h) in one process under
    TSan (the C11 orderings are what make it race-free) and ASan/UBSan."""
    import shutil
    import subprocess

    if not shutil.which("clang"):
        pytest.skip("clang not installed (make sysdeps)")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    core = sorted(
        os.path.join(root, "irqd", "core", f) for f in os.listdir(os.path.join(root, "irqd", "core"))
    )
    exe = tmp_path / "ring_stress"
    subprocess.run(
        [
            "clang",
            "-std=gnu11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-g",
            "-O1",
            f"-fsanitize={sanitizer}",
            "-fno-sanitize-recover=all",
            "-I",
            os.path.join(root, "include"),
            "-I",
            root,
            "-o",
            str(exe),
            os.path.join(root, "tests", "c", "ring_stress.c"),
            *[c for c in core if c.endswith(".c")],
            "-lpthread",
        ],
        check=True,
    )
    r = subprocess.run(
        [str(exe), "100000"],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        # its own runtime only (the ASan suite runs this file with libasan preloaded)
        env={**{k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}, "TSAN_OPTIONS": "halt_on_error=1"},
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "WARNING" not in r.stderr and "ERROR" not in r.stderr, r.stderr
    assert r.stdout.split()[:4] == ["posted", "100000", "applied", "100000"]
