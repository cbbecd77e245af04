"""Restart without losing state (abi.md section 6).

* ``--state-file``: devices, configured sources, pending and presented
  interrupts, CPPR/MFRR, counters and generation identical across a
  SIGTERM + start; a client keeps working through the restart (it
  reconnects and re-ATTACHes); holder-less non-PERSIST devices wait
  ``--reattach-grace`` seconds, then go.
* the fd store: the test plays systemd with the real protocol: it binds the
  NOTIFY_SOCKET, collects the FDSTORE=1 datagrams and their fds, and starts
  the next daemon with them as LISTEN_FDS / LISTEN_FDNAMES.  The irqfd and
  output eventfds survive: an irqfd written after the restart still fires.
"""

from __future__ import annotations

import array
import fcntl
import os
import select
import socket
import subprocess
import sys
import time

import pytest

from conftest import ROOT, Daemon
from irqd.client import Client

SET = 0xFFFFFFFF


def populate(dev) -> None:
    """Pending, presented, queued, masked-pending and resend interrupts, an IPI."""
    dev.create_ics(16, 16)
    dev.create_ics(4000, 4, level=True)
    for s in (0, 1):
        dev.connect_vcpu(s)
    dev.h_cppr(0, 0xFF)
    dev.set_xive(16, 0, 5)
    dev.set_xive(17, 0, 6)
    dev.set_xive(18, 1, 5)      # server 1 keeps CPPR 0: 18 waits in resend
    dev.set_xive(19, 0, 5)
    dev.int_off(19)
    dev.set_xive(4001, 0, 4)
    dev.edge(16)
    dev.edge(16)                # queued (Q)
    dev.edge(17)                # displaced / resend
    dev.edge(18)
    dev.edge(19)                # masked pending
    dev.level_set(4001)         # presented, displaces 16
    dev.h_ipi(0, 1, 7)          # MFRR of server 1


def snapshot(dev):
    st = dev.dump()
    return st.sources, st.icps, dev.stats(), dev.info().generation


def test_state_file_round_trip_with_a_client_that_reconnects(tmp_path):
    state = tmp_path / "state.bin"
    a = Daemon("--state-file", str(state))
    client = Client(a.path)
    dev = client.create_device()            # not PERSIST: kept by the grace period
    keep = client.create_device(persist=True)
    populate(dev)
    keep.create_ics(100, 10)
    before, before_keep = snapshot(dev), snapshot(keep)
    assert a.stop() == 0
    assert state.exists() and (state.stat().st_mode & 0o777) == 0o600
    # the next daemon on the same socket path takes the state back
    b = Daemon("--state-file", str(state), "--reattach-grace", "30")
    b.path, b_path = a.path, b.path          # noqa: F841 (the client knows only a.path)
    b.stop()
    c = subprocess.Popen([sys.executable, "-m", "irqd", "--socket", a.path, "--state-file", str(state)],
                         cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        wait_socket(a.path)
        # the same Client object: its next request reconnects and re-ATTACHes
        assert snapshot(dev) == before
        assert snapshot(keep) == before_keep
        # delivery continues from the restored state exactly as it would have
        st, xirr = dev.h_xirr(0)
        assert (st, xirr) == (0, 0xFF000FA1)   # the LSI 4001 at priority 4
        assert dev.info().holders == 1
    finally:
        client.close()
        c.terminate()
        c.wait(20)


def test_unattached_device_is_destroyed_after_the_grace_period(tmp_path):
    state = tmp_path / "state.bin"
    a = Daemon("--state-file", str(state))
    client = Client(a.path)
    gone = client.create_device()
    stays = client.create_device(persist=True)
    handles = (gone.handle, stays.handle)
    assert a.stop() == 0
    client.close()
    b = Daemon("--state-file", str(state), "--reattach-grace", "0.5")
    try:
        c2 = Client(b.path)
        assert sorted(d.handle for d in c2.list_devices()) == sorted(handles)
        deadline = time.monotonic() + 10
        while len(c2.list_devices()) == 2:
            assert time.monotonic() < deadline, "grace period never ended"
            time.sleep(0.1)
        assert [d.handle for d in c2.list_devices()] == [handles[1]]
        assert c2.create_device().handle > max(handles), "a handle was reused after the restart"
        c2.close()
    finally:
        assert b.stop() == 0


def test_corrupt_state_file_refuses_to_start(tmp_path):
    state = tmp_path / "state.bin"
    state.write_bytes(b"IRQD-RESTART\n\x05\x00\x00\x00{bad}")
    p = subprocess.run([sys.executable, "-m", "irqd", "--socket", str(tmp_path / "s.sock"),
                        "--state-file", str(state)], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and "corrupt" in p.stderr
    assert not (tmp_path / "s.sock").exists()


# ---------------------------------------------------------------------------
# the fd store, simulated with systemd's own protocol

class FakeManager:
    """The service manager's side: NOTIFY_SOCKET with an fd store."""

    def __init__(self, path: str):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.path = path
        self.store: dict[str, int] = {}
        self.seen: list[str] = []

    def pump(self, timeout: float = 0.2) -> None:
        while select.select([self.sock], [], [], timeout)[0]:
            data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(16 * 4))
            fds = array.array("i")
            for level, kind, cdata in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.frombytes(cdata[: len(cdata) - len(cdata) % 4])
            fields = dict(line.split("=", 1) for line in data.decode().split("\n") if "=" in line)
            self.seen.append(data.decode())
            if fields.get("FDSTOREREMOVE") == "1":
                old = self.store.pop(fields["FDNAME"], None)
                if old is not None:
                    os.close(old)
            elif fields.get("FDSTORE") == "1":
                for fd in fds:
                    self.store[fields.get("FDNAME", "stored")] = fd
            else:
                for fd in fds:
                    os.close(fd)
            timeout = 0.05

    def start(self, *args: str) -> subprocess.Popen:
        """Start irqd with the stored fds at 3.. (LISTEN_FDS, LISTEN_FDNAMES, LISTEN_PID)."""
        names = list(self.store)
        high = [fcntl.fcntl(self.store[n], fcntl.F_DUPFD_CLOEXEC, 200) for n in names]
        launcher = (
            "import os, sys\n"
            "fds = [int(x) for x in sys.argv[1].split(',') if x]\n"
            "for i, fd in enumerate(fds):\n"
            "    os.dup2(fd, 3 + i, inheritable=True)\n"
            "os.environ['LISTEN_FDS'] = str(len(fds))\n"
            "os.environ['LISTEN_PID'] = str(os.getpid())\n"
            "os.execv(sys.executable, [sys.executable, '-m', 'irqd'] + sys.argv[2:])\n"
        )
        env = {**os.environ, "NOTIFY_SOCKET": self.path, "LISTEN_FDNAMES": ":".join(names)}
        p = subprocess.Popen([sys.executable, "-c", launcher, ",".join(map(str, high)), *args],
                             cwd=ROOT, env=env, pass_fds=high, stderr=subprocess.PIPE, text=True)
        for fd in high:
            os.close(fd)
        return p

    def close(self) -> None:
        for fd in self.store.values():
            os.close(fd)
        self.sock.close()


def wait_socket(path: str, proc: subprocess.Popen | None = None, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            s.connect(path)
            s.close()
            return
        except OSError:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(proc.stderr.read())
            assert time.monotonic() < deadline, f"nothing listening on {path}"
            time.sleep(0.05)


def stop(p: subprocess.Popen) -> int:
    p.terminate()
    try:
        return p.wait(20)
    finally:
        if p.poll() is None:
            p.kill()


def test_fd_store_carries_state_and_eventfds_across_a_restart(tmp_path):
    mgr = FakeManager(str(tmp_path / "notify"))
    sock = str(tmp_path / "irqd.sock")
    efd, rfd, outfd = (os.eventfd(0, os.EFD_NONBLOCK) for _ in range(3))
    a = mgr.start("--socket", sock, "--fd-store")
    try:
        wait_socket(sock, a)
        client = Client(sock)
        dev = client.create_device()
        populate(dev)
        dev.irqfd(20, efd)                        # an MSI device
        dev.irqfd(4002, efd_l := os.eventfd(0, os.EFD_NONBLOCK), rfd)  # a VFIO INTx style LSI
        dev.set_output(1, outfd)
        dev.set_xive(20, 1, 3)
        dev.set_xive(4002, 1, 2)
        before = snapshot(dev)
        handle = dev.handle
        assert stop(a) == 0                       # the VMM is still running: a real restart
        mgr.pump()
        assert "irqd-state" in mgr.store and len(mgr.store) == 5  # state + irqfd, irqfd + resample, output
        assert any("STOPPING=1" in t for t in mgr.seen)
        b = mgr.start("--socket", sock, "--fd-store")
        wait_socket(sock, b)
        mgr.pump()
        c2 = Client(sock)
        restored = c2.attach(handle)
        assert snapshot(restored) == before
        # an irqfd written after the restart still fires, through the restored eventfd
        while select.select([outfd], [], [], 0)[0]:
            os.eventfd_read(outfd)
        os.eventfd_write(efd, 1)
        deadline = time.monotonic() + 10
        while restored.get_source(20) & 0x0000080000000000 == 0:
            assert time.monotonic() < deadline, "irqfd written after the restart did not fire"
            time.sleep(0.02)
        # server 1 never opened its CPPR: the IPI and 20 wait; open it and the output rises
        restored.h_cppr(1, 0xFF)
        assert select.select([outfd], [], [], 10)[0] == [outfd], "output eventfd lost in the restart"
        # the resample eventfd came back too: the LSI's EOI signals it
        os.eventfd_write(efd_l, 1)
        deadline = time.monotonic() + 10
        while True:
            st, xirr = restored.h_xirr(1)
            if xirr & 0xFFFFFF == 4002:
                break
            if xirr & 0xFFFFFF:
                restored.h_eoi(1, xirr)
                if xirr & 0xFFFFFF == 2:
                    restored.h_ipi(1, 1, 0xFF)
            assert time.monotonic() < deadline, "the LSI of the restored irqfd was never presented"
            time.sleep(0.01)
        restored.h_eoi(1, xirr)
        assert select.select([rfd], [], [], 10)[0] == [rfd], "resample eventfd lost in the restart"
        c2.close()
        assert stop(b) == 0
    finally:
        for p in ("a", "b"):
            proc = locals().get(p)
            if proc is not None and proc.poll() is None:
                proc.kill()
        for fd in (efd, rfd, outfd):
            os.close(fd)
        mgr.close()


@pytest.fixture(autouse=True)
def _no_inherited_notify(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.delenv("LISTEN_FDS", raising=False)
