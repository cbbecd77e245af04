"""The real daemon under the service protocol, without PID 1:

- socket activation end to end: `systemd-socket-activate --seqpacket` owns
  the listening socket and starts `python -m irqd` on the first connection,
  which serves on the inherited fd and leaves the socket file alone;
- sd_notify: a datagram socket bound as $NOTIFY_SOCKET sees READY=1 (with
  STATUS=) once the daemon serves, STATUS= following clients and devices,
  WATCHDOG=1 pings when $WATCHDOG_USEC is set (and only then), STOPPING=1
  on SIGTERM, all sent by the daemon's own pid (NotifyAccess=main).
"""

from __future__ import annotations

import array
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid

import pytest

from irqd.client import Client

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ACTIVATE = shutil.which("systemd-socket-activate")
CRED = struct.Struct("3i")
WAIT = 30.0  # upper bound for anything to happen; never a timing assertion


class NotifySocket:
    """The service manager's end of $NOTIFY_SOCKET."""

    def __init__(self, address: str):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address if address[0] == "/" else "\0" + address[1:])
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.address = address
        self.seen: list[tuple[str, int]] = []  # (datagram, sender pid)

    def _recv(self, timeout: float) -> bool:
        self.sock.settimeout(timeout)
        try:
            data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(CRED.size) + socket.CMSG_SPACE(64))
        except TimeoutError:
            return False
        pid = None
        for level, kind, payload in anc:
            if (level, kind) == (socket.SOL_SOCKET, socket.SCM_CREDENTIALS):
                pid = CRED.unpack(payload[: CRED.size])[0]
            elif (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS):  # none expected; do not leak
                fds = array.array("i")
                fds.frombytes(payload[: len(payload) - len(payload) % 4])
                for fd in fds:
                    os.close(fd)
        self.seen.append((data.decode(), pid))
        return True

    def wait_for(self, predicate, what: str, count: int = 1) -> tuple[str, int]:
        """Read datagrams until ``count`` of them satisfy ``predicate``; return the last."""
        deadline = time.monotonic() + WAIT
        while True:
            hits = [msg for msg in self.seen if predicate(msg[0])]
            if len(hits) >= count:
                return hits[count - 1]
            left = deadline - time.monotonic()
            assert left > 0, f"no {what} within {WAIT}s; seen {self.seen}"
            self._recv(left)

    def drain(self) -> None:
        while self._recv(0.01):
            pass

    def close(self) -> None:
        self.sock.close()


def fields(datagram: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in datagram.split("\n"))


@pytest.fixture(params=["path", "abstract"])
def notify_socket(request, tmp_path):
    address = str(tmp_path / "notify") if request.param == "path" else f"@irqd-e2e-{uuid.uuid4().hex}"
    ns = NotifySocket(address)
    yield ns
    ns.close()


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LISTEN_", "WATCHDOG_", "NOTIFY_"))}
    env["PYTHONPATH"] = ROOT
    env.pop("IRQD_SOCKET", None)
    return env


def start_daemon(sock_path: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "irqd", "--socket", sock_path, "--log-level", "info"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop(proc: subprocess.Popen) -> tuple[int, str]:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(timeout=WAIT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
    err = proc.stderr.read()
    proc.stderr.close()
    return rc, err


def test_ready_status_stopping_from_the_daemon(notify_socket, tmp_path):
    env = base_env()
    env["NOTIFY_SOCKET"] = notify_socket.address
    sock_path = str(tmp_path / "irqd.sock")
    proc = start_daemon(sock_path, env)
    try:
        text, pid = notify_socket.wait_for(lambda t: "READY=1" in t.split("\n"), "READY=1")
        assert pid == proc.pid  # NotifyAccess=main: the daemon itself, no helper
        ready = fields(text)
        assert ready["STATUS"] == "0 clients, 0 devices"
        # READY=1 means it serves: a client gets its HELLO answered now.
        client = Client(sock_path)
        dev = client.create_device()
        dev.create_ics(16, 4)
        text, pid = notify_socket.wait_for(
            lambda t: fields(t).get("STATUS") == "1 clients, 1 devices", "STATUS with the client and device"
        )
        assert pid == proc.pid
        client.close()
        notify_socket.wait_for(
            lambda t: fields(t).get("STATUS") == "0 clients, 0 devices", "STATUS after close"
        )
        proc.send_signal(signal.SIGTERM)
        text, pid = notify_socket.wait_for(lambda t: "STOPPING=1" in t.split("\n"), "STOPPING=1")
        assert pid == proc.pid
    finally:
        rc, err = stop(proc)
    assert rc == 0, err
    # No watchdog was asked for, so none was sent; READY came before anything else.
    assert not [t for t, _ in notify_socket.seen if "WATCHDOG=1" in t.split("\n")]
    assert "READY=1" in notify_socket.seen[0][0].split("\n")
    assert not os.path.exists(sock_path)  # a socket it bound itself is removed


@pytest.mark.parametrize("usec", ["200000", "1000000"])
def test_watchdog_pings_when_watchdog_usec_is_set(notify_socket, tmp_path, usec):
    env = base_env()
    env["NOTIFY_SOCKET"] = notify_socket.address
    env["WATCHDOG_USEC"] = usec
    proc = start_daemon(str(tmp_path / "irqd.sock"), env)
    try:
        notify_socket.wait_for(lambda t: "READY=1" in t.split("\n"), "READY=1")
        # more than one: it keeps pinging while idle
        _, pid = notify_socket.wait_for(lambda t: t == "WATCHDOG=1", "two WATCHDOG=1", count=2)
        assert pid == proc.pid
    finally:
        rc, err = stop(proc)
    assert rc == 0, err


def test_no_watchdog_pings_for_another_pid(notify_socket, tmp_path):
    env = base_env()
    env["NOTIFY_SOCKET"] = notify_socket.address
    env["WATCHDOG_USEC"] = "100000"
    env["WATCHDOG_PID"] = "1"  # meant for someone else
    proc = start_daemon(str(tmp_path / "irqd.sock"), env)
    try:
        notify_socket.wait_for(lambda t: "READY=1" in t.split("\n"), "READY=1")
        # a client round trip after READY: the loop has run several times by now
        Client(str(tmp_path / "irqd.sock")).close()
        proc.send_signal(signal.SIGTERM)
        notify_socket.wait_for(lambda t: "STOPPING=1" in t.split("\n"), "STOPPING=1")
    finally:
        rc, err = stop(proc)
    assert rc == 0, err
    assert not [t for t, _ in notify_socket.seen if t == "WATCHDOG=1"]


@pytest.mark.skipif(
    ACTIVATE is None, reason="systemd-socket-activate is not installed (Debian package systemd)"
)
def test_socket_activation_end_to_end(notify_socket, tmp_path):
    sock_path = str(tmp_path / "irqd.sock")
    env = base_env()
    cmd = [
        ACTIVATE,
        "--seqpacket",
        "-l",
        sock_path,
        "--fdname=irqd.socket",
        f"--setenv=PYTHONPATH={ROOT}",
        f"--setenv=NOTIFY_SOCKET={notify_socket.address}",
        # no --socket: the daemon must take the inherited one (as ExecStart does)
        sys.executable,
        "-m",
        "irqd",
        "--log-level",
        "info",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + WAIT
        while not os.path.exists(sock_path):
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "systemd-socket-activate never listened"
            time.sleep(0.02)
        st = os.stat(sock_path)
        # The first connection starts the daemon; it is answered by it on
        # the inherited socket (HELLO inside Client()).
        client = Client(sock_path, timeout=WAIT)
        assert client.hello.version == 1
        _text, pid = notify_socket.wait_for(lambda t: "READY=1" in t.split("\n"), "READY=1")
        assert pid == proc.pid  # systemd-socket-activate execs the daemon in place
        dev = client.create_device()
        dev.create_ics(16, 2)
        dev.connect_vcpu(0)
        dev.irq_line(16, 0xFFFFFFFF)
        assert dev.get_source(16) != 0
        second = Client(sock_path, timeout=WAIT)  # more clients on the same inherited socket
        assert [d.handle for d in second.list_devices()] == [d.handle for d in client.list_devices()]
        second.close()
        client.close()
        proc.send_signal(signal.SIGTERM)
        notify_socket.wait_for(lambda t: "STOPPING=1" in t.split("\n"), "STOPPING=1")
    finally:
        rc, err = stop(proc)
    assert rc == 0, err
    assert "passed by systemd" in err
    # The socket belongs to the manager: the daemon leaves the file in place.
    st2 = os.stat(sock_path)
    assert (st2.st_dev, st2.st_ino) == (st.st_dev, st.st_ino)
