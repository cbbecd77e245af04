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
            data, anc, _, _ = self.sock.recvmsg(
                4096, socket.CMSG_SPACE(CRED.size) + socket.CMSG_SPACE(253 * 4)
            )
        except TimeoutError:
            return False
        pid = None
        for level, kind, payload in anc:
            if (level, kind) == (socket.SOL_SOCKET, socket.SCM_CREDENTIALS):
                pid = CRED.unpack(payload[: CRED.size])[0]
            elif (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS):  # FDSTORE=1: do not leak
                fds = array.array("i")
                fds.frombytes(payload[: len(payload) - len(payload) % 4])
                for fd in fds:
                    os.close(fd)
        self.seen.append((data.decode(), pid))
        return True

    def wait_for(self, predicate, what: str, count: int = 1, since: int = 0) -> tuple[str, int]:
        """Read datagrams until ``count`` of those from index ``since`` on
        satisfy ``predicate``; return the last of them."""
        deadline = time.monotonic() + WAIT
        while True:
            hits = [msg for msg in self.seen[since:] if predicate(msg[0])]
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


def sigterm(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.sigterm_sent = True


def stop(proc: subprocess.Popen) -> tuple[int, str]:
    """SIGTERM unless sent already (systemd sends one, then SIGKILL after
    TimeoutStopSec), wait, return (exit status, stderr)."""
    if not getattr(proc, "sigterm_sent", False) and proc.poll() is None:
        sigterm(proc)
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
        since = len(notify_socket.seen)
        client.close()
        notify_socket.wait_for(
            lambda t: fields(t).get("STATUS") == "0 clients, 0 devices", "STATUS after close", since=since
        )
        sigterm(proc)
        text, pid = notify_socket.wait_for(lambda t: "STOPPING=1" in t.split("\n"), "STOPPING=1")
        assert pid == proc.pid
    finally:
        rc, err = stop(proc)
    assert rc == 0, err
    # No watchdog was asked for, so none was sent; READY came before anything else.
    assert not [t for t, _ in notify_socket.seen if "WATCHDOG=1" in t.split("\n")]
    assert "READY=1" in notify_socket.seen[0][0].split("\n")


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
        sigterm(proc)
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
        sigterm(proc)
        notify_socket.wait_for(lambda t: "STOPPING=1" in t.split("\n"), "STOPPING=1")
    finally:
        rc, err = stop(proc)
    assert rc == 0, err
    assert "passed by systemd" in err
    # The socket belongs to the manager: the daemon leaves the file in place.
    st2 = os.stat(sock_path)
    assert (st2.st_dev, st2.st_ino) == (st.st_dev, st.st_ino)


SANDBOX_LAUNCHER = """
import ctypes, os, sys
# What irqd.service leaves the daemon, as far as it can be had without PID 1:
# no capabilities at all (CapabilityBoundingSet=), no new privileges, its own
# network namespace (PrivateNetwork=), and W^X enforced by the kernel
# (MemoryDenyWriteExecute=; PR_SET_MDWE survives the exec below).
status = dict(line.split(":\\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\\t" in line)
assert int(status["CapBnd"], 16) == 0 and int(status["CapEff"], 16) == 0, status
assert status["NoNewPrivs"].strip() == "1", status
if ctypes.CDLL(None, use_errno=True).prctl(65, 1, 0, 0, 0) != 0:
    sys.exit(3)
os.execv(sys.executable, [sys.executable, "-m", "irqd", *sys.argv[1:]])
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="a network namespace needs root")
def test_daemon_serves_inside_an_approximation_of_the_units_sandbox(tmp_path):
    import select

    from irqd._core import lib

    unshare, setpriv = shutil.which("unshare"), shutil.which("setpriv")
    if not unshare or not setpriv:
        pytest.skip("unshare/setpriv (util-linux) not installed")
    sock_path = str(tmp_path / "irqd.sock")
    env = base_env()
    # A path: an abstract address would belong to the network namespace
    # the daemon leaves (systemd's own notify socket is a path too).
    notify_socket = NotifySocket(str(tmp_path / "notify"))
    env["NOTIFY_SOCKET"] = notify_socket.address
    cmd = [unshare, "--net", setpriv, "--no-new-privs", "--bounding-set=-all", "--inh-caps=-all"]
    cmd += [sys.executable, "-c", SANDBOX_LAUNCHER, "--socket", sock_path, "--log-level", "info"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    out_fd = in_fd = None
    try:
        deadline = time.monotonic() + WAIT
        while not os.path.exists(sock_path):
            if proc.poll() is not None:
                if proc.returncode == 3:
                    pytest.skip("kernel has no PR_SET_MDWE (Linux >= 6.3)")
                pytest.fail(proc.stderr.read())
            assert time.monotonic() < deadline, "daemon never listened"
            time.sleep(0.02)
        notify_socket.wait_for(lambda t: "READY=1" in t.split("\n"), "READY=1")
        client = Client(sock_path, timeout=WAIT)
        dev = client.create_device()
        dev.create_ics(16, 4)
        dev.connect_vcpu(0)
        assert dev.rtas(lib.IRQD_RTAS_SET_XIVE, [16, 0, 5], 1) == [0]
        assert dev.hcall(0, lib.IRQD_H_CPPR, 0xFF)[0] == 0
        out_fd, in_fd = os.eventfd(0, os.EFD_CLOEXEC), os.eventfd(0, os.EFD_CLOEXEC)
        dev.set_output(0, out_fd)
        dev.irqfd(16, in_fd)
        os.eventfd_write(in_fd, 1)  # the device's MSI, through the daemon's irqfd
        assert select.select([out_fd], [], [], WAIT)[0] == [out_fd], "vCPU output never raised"
        assert os.eventfd_read(out_fd) == 1
        status, xirr, _, _ = dev.hcall(0, lib.IRQD_H_XIRR)
        assert (status, xirr) == (0, 0xFF000010)  # CPPR 0xff, XISR 16
        client.close()
    finally:
        for fd in (out_fd, in_fd):
            if fd is not None:
                os.close(fd)
        rc, err = stop(proc)
    assert rc == 0, err
    notify_socket.drain()  # everything the daemon sent is queued by now
    notify_socket.close()
    assert any("STOPPING=1" in t.split("\n") for t, _ in notify_socket.seen)


def syscall_group(name: str, seen: set[str] | None = None) -> set[str]:
    """A SystemCallFilter= group expanded to syscall names, as systemd has it."""
    seen = set() if seen is None else seen
    out = subprocess.run(
        [shutil.which("systemd-analyze"), "syscall-filter", "--no-pager", name],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    names = set()
    for line in out.splitlines()[1:]:  # the first line is the group's own name
        word = line.strip()
        if not word or word.startswith("#"):
            continue
        if word.startswith("@"):
            if word not in seen:
                seen.add(word)
                names |= syscall_group(word, seen)
        else:
            names.add(word)
    assert names, f"{name} expands to nothing"
    return names


def unit_syscall_allowlist() -> set[str]:
    """irqd.service's SystemCallFilter= lines: allow-lists, then ~deny-lists."""
    allowed: set[str] = set()
    with open(os.path.join(ROOT, "systemd", "irqd.service")) as f:
        for line in f:
            if not line.startswith("SystemCallFilter="):
                continue
            value = line.split("=", 1)[1].strip()
            deny = value.startswith("~")
            names: set[str] = set()
            for item in value.lstrip("~").split():
                names |= syscall_group(item) if item.startswith("@") else {item}
            allowed = allowed - names if deny else allowed | names
    assert allowed
    return allowed


@pytest.mark.skipif(
    not shutil.which("strace") or not shutil.which("systemd-analyze"),
    reason="needs strace and systemd-analyze",
)
def test_daemon_makes_only_system_calls_the_unit_allows(tmp_path):
    # SystemCallFilter= answers anything else with EPERM: every call the
    # daemon makes from exec to exit, while serving a client that uses
    # devices, irqfds, outputs, dumps and stats, must be on the list.
    import select

    from irqd._core import lib

    allowed = unit_syscall_allowlist()
    sock_path = str(tmp_path / "irqd.sock")
    summary = str(tmp_path / "strace.txt")
    notify_socket = NotifySocket(str(tmp_path / "notify"))
    env = base_env()
    env["NOTIFY_SOCKET"] = notify_socket.address
    env["WATCHDOG_USEC"] = "100000"
    cmd = [shutil.which("strace"), "-f", "-qq", "-c", "-U", "name,calls", "-o", summary]
    cmd += [sys.executable, "-m", "irqd", "--socket", sock_path, "--log-level", "info"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    fds = []
    daemon_pid = None
    try:
        # strace's child: the sender of READY=1 (SIGTERM to strace would
        # only detach it).
        _, daemon_pid = notify_socket.wait_for(lambda t: "READY=1" in t.split("\n"), "READY=1")
        assert daemon_pid not in (None, proc.pid)
        client = Client(sock_path, timeout=WAIT)
        dev = client.create_device()
        dev.create_ics(16, 4)
        dev.connect_vcpu(0)
        dev.rtas(lib.IRQD_RTAS_SET_XIVE, [16, 0, 5], 1)
        dev.hcall(0, lib.IRQD_H_CPPR, 0xFF)
        fds = [os.eventfd(0, os.EFD_CLOEXEC) for _ in range(2)]
        dev.set_output(0, fds[0])
        dev.irqfd(16, fds[1])
        os.eventfd_write(fds[1], 1)
        assert select.select([fds[0]], [], [], WAIT)[0] == [fds[0]]
        dev.hcall(0, lib.IRQD_H_XIRR)
        dev.dump()
        dev.stats()
        client.list_devices()
        notify_socket.wait_for(lambda t: t == "WATCHDOG=1", "WATCHDOG=1")
        client.close()
    finally:
        for fd in fds:
            os.close(fd)
        if daemon_pid:
            os.kill(daemon_pid, signal.SIGTERM)  # strace exits with its tracee's status
            proc.sigterm_sent = True
        else:  # never got going: take the tracee down, then strace
            try:
                with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as f:
                    for child in f.read().split():
                        os.kill(int(child), signal.SIGKILL)
            except OSError:
                pass
            proc.kill()
        rc, err = stop(proc)
        notify_socket.close()
    assert rc == 0, err
    used = set()
    with open(summary) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit() and parts[0] != "total":
                used.add(parts[0])
    assert {"execve", "accept4", "recvmsg", "sendmsg", "epoll_wait"} <= used, used  # the summary is real
    assert used - allowed == set()
