"""irqd.sd: the sd_notify / socket-activation / watchdog protocol, against
fakes of the service manager's side (python-systemd's test_daemon.py does
the same): a datagram socket bound as $NOTIFY_SOCKET, and real sockets
placed at fd 3.. of a child process with $LISTEN_PID naming it."""

from __future__ import annotations

import array
import fcntl
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

from irqd import sd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV_VARS = ("NOTIFY_SOCKET", "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "WATCHDOG_USEC", "WATCHDOG_PID")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)


class Manager:
    """The service manager's end of $NOTIFY_SOCKET."""

    def __init__(self, sock: socket.socket, env_value: str):
        self.sock = sock
        self.env_value = env_value
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        sock.settimeout(5)

    def recv(self) -> tuple[str, list[int], int]:
        """One datagram: (text, fds received, sender pid from SCM_CREDENTIALS)."""
        fd_space = socket.CMSG_SPACE(16 * array.array("i").itemsize)
        cred_space = socket.CMSG_SPACE(struct.calcsize("3i"))
        data, ancdata, flags, _ = self.sock.recvmsg(4096, fd_space + cred_space)
        fds, pid = [], None
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                a = array.array("i")
                a.frombytes(payload[: len(payload) - len(payload) % a.itemsize])
                fds.extend(a)
            elif level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("3i", payload[: struct.calcsize("3i")])[0]
        assert not flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC), flags
        return data.decode(), fds, pid

    def assert_empty(self) -> None:
        self.sock.setblocking(False)
        try:
            with pytest.raises(BlockingIOError):
                self.sock.recv(4096)
        finally:
            self.sock.settimeout(5)


@pytest.fixture(params=["path", "abstract"])
def manager(request, tmp_path, monkeypatch):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if request.param == "path":
        path = str(tmp_path / "notify")
        sock.bind(path)
        env_value = path
    else:
        name = f"irqd-test-notify-{uuid.uuid4().hex}"
        sock.bind("\0" + name)
        env_value = "@" + name
    monkeypatch.setenv("NOTIFY_SOCKET", env_value)
    yield Manager(sock, env_value)
    sock.close()


# --------------------------------------------------------------------------
# notify


def test_each_helper_sends_exactly_its_datagram(manager):
    cases = [
        (lambda: sd.ready(), "READY=1"),
        (lambda: sd.ready("serving, 0 clients, 0 devices"), "READY=1\nSTATUS=serving, 0 clients, 0 devices"),
        (lambda: sd.status("3 clients, 2 devices"), "STATUS=3 clients, 2 devices"),
        (lambda: sd.watchdog(), "WATCHDOG=1"),
        (lambda: sd.stopping(), "STOPPING=1"),
        (lambda: sd.stopping("draining 2 clients"), "STOPPING=1\nSTATUS=draining 2 clients"),
        (lambda: sd.fdstore_remove("state"), "FDSTOREREMOVE=1\nFDNAME=state"),
        (lambda: sd.notify("RELOADING=1\nMONOTONIC_USEC=12"), "RELOADING=1\nMONOTONIC_USEC=12"),
    ]
    for call, expected in cases:
        assert call() is True
        text, fds, pid = manager.recv()
        assert (text, fds) == (expected, [])
        # systemd's NotifyAccess=main compares the kernel-attached sender pid
        # with the main pid: it must be this process, not a helper.
        assert pid == os.getpid()
    manager.assert_empty()


def test_non_ascii_status_is_sent_as_utf8(manager):
    assert sd.status("Gerät ✓")
    assert manager.recv()[0] == "STATUS=Gerät ✓"


def test_fdstore_passes_the_fd_and_its_name(manager):
    fd = os.memfd_create("irqd-state", os.MFD_CLOEXEC)
    try:
        os.write(fd, b"state bytes")
        assert sd.fdstore(fd, "state") is True
        text, fds, _ = manager.recv()
        assert text == "FDSTORE=1\nFDNAME=state"
        assert len(fds) == 1
        got = fds[0]
        try:
            assert got != fd
            a, b = os.fstat(fd), os.fstat(got)
            assert (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
            assert os.pread(got, 64, 0) == b"state bytes"
        finally:
            os.close(got)
        os.fstat(fd)  # the sender's own fd stays open
    finally:
        os.close(fd)
    manager.assert_empty()


def test_notify_passes_several_fds_in_order(manager):
    fds = [os.eventfd(0, os.EFD_CLOEXEC) for _ in range(3)]
    try:
        for i, fd in enumerate(fds):
            os.eventfd_write(fd, i + 1)
        assert sd.notify("FDSTORE=1\nFDNAME=irqfd", fds)
        text, got, _ = manager.recv()
        assert text == "FDSTORE=1\nFDNAME=irqfd"
        assert [os.eventfd_read(fd) for fd in got] == [1, 2, 3]
        for fd in got:
            os.close(fd)
    finally:
        for fd in fds:
            os.close(fd)


def test_notify_without_notify_socket_is_a_no_op(monkeypatch):
    assert "NOTIFY_SOCKET" not in os.environ
    assert sd.notify("READY=1") is False
    assert sd.ready("x") is False
    assert sd.watchdog() is False
    monkeypatch.setenv("NOTIFY_SOCKET", "")
    assert sd.stopping() is False


def test_unset_environment_removes_notify_socket_after_sending(manager):
    assert sd.notify("READY=1", unset_environment=True) is True
    assert manager.recv()[0] == "READY=1"
    assert "NOTIFY_SOCKET" not in os.environ
    assert sd.notify("STATUS=late") is False
    manager.assert_empty()


def test_notify_keeps_environment_by_default(manager):
    assert sd.watchdog()
    assert os.environ["NOTIFY_SOCKET"] == manager.env_value


def test_failed_send_returns_false_and_does_not_raise(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens-here"))
    assert sd.ready() is False
    assert "nobody-listens-here" in caplog.text
    monkeypatch.setenv("NOTIFY_SOCKET", "relative/path")
    assert sd.ready() is False
    monkeypatch.setenv("NOTIFY_SOCKET", "@irqd-test-unbound-" + uuid.uuid4().hex)
    assert sd.ready() is False


def test_manager_that_stopped_reading_costs_a_dropped_message_not_a_hang(manager):
    # Fill the manager's queue (net.unix.max_dgram_qlen datagrams) without
    # reading it, as a stuck manager would.
    queued = 0
    while True:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.setblocking(False)
            try:
                s.connect(manager.sock.getsockname())
                s.send(b"FILLER=1")
            except BlockingIOError:
                break
        queued += 1
        assert queued < 100_000
    assert sd.status("lost") is False
    for _ in range(queued):
        assert manager.recv()[0] == "FILLER=1"
    manager.assert_empty()  # the dropped one never arrives
    assert sd.status("after") is True
    assert manager.recv()[0] == "STATUS=after"


@pytest.mark.parametrize(
    "call",
    [
        lambda: sd.notify(""),
        lambda: sd.notify("READY=1\0"),
        lambda: sd.status("two\nlines"),
        lambda: sd.ready("READY=1\nSTATUS=x"),
        lambda: sd.fdstore(0, ""),
        lambda: sd.fdstore(0, "a:b"),
        lambda: sd.fdstore(0, "tab\there"),
        lambda: sd.fdstore(0, "é"),
        lambda: sd.fdstore(0, "x" * 256),
        lambda: sd.fdstore_remove("a:b"),
    ],
)
def test_invalid_messages_are_refused_before_anything_is_sent(manager, call):
    with pytest.raises(ValueError):
        call()
    manager.assert_empty()


def test_longest_valid_fd_name_is_accepted(manager):
    name = "x" * 255
    assert sd.fdstore_remove(name)
    assert manager.recv()[0] == f"FDSTOREREMOVE=1\nFDNAME={name}"


# --------------------------------------------------------------------------
# listen_fds: the child gets real sockets at fd 3.. and $LISTEN_PID set to
# its own pid before it starts, as systemd does.

CHILD = textwrap.dedent(
    """
    import json, os, socket, sys
    from irqd import sd
    unset = sys.argv[1] == "unset"
    result = {"fds": sd.listen_fds(unset_environment=unset)}
    result["env"] = {k: os.environ.get(k) for k in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")}
    result["cloexec"] = [not os.get_inheritable(fd) for fd, _ in result["fds"]]
    result["sockets"] = []
    for fd, _ in result["fds"]:
        s = socket.socket(fileno=fd)
        result["sockets"].append([s.family, s.type, s.getsockname()])
        s.detach()
    print(json.dumps(result))
    """
)


# Plays systemd's part between fork and exec: fds to 3.., LISTEN_PID = the
# pid that the exec'd program will have (exec keeps it).
LAUNCHER = textwrap.dedent(
    """
    import os, sys
    fds = [int(x) for x in sys.argv[1].split(",") if x]
    for i, fd in enumerate(fds):
        os.dup2(fd, 3 + i)  # dup2 clears close-on-exec
    for fd in fds:
        if fd >= 3 + len(fds):
            os.close(fd)
    os.environ["LISTEN_PID"] = sys.argv[2] if sys.argv[2] != "self" else str(os.getpid())
    os.execv(sys.executable, [sys.executable, "-c", sys.argv[3], sys.argv[4]])
    """
)


def run_child(socks, env_extra, mode="unset", listen_pid="self"):
    """Start CHILD with ``socks`` at fds 3.. and the LISTEN_* variables set."""
    # Move the sockets above the target range first, so placing one at fd 3
    # cannot overwrite another that happens to sit there.
    high = [fcntl.fcntl(s.fileno(), fcntl.F_DUPFD_CLOEXEC, 100) for s in socks]
    try:
        env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
        env.update(env_extra)
        env["PYTHONPATH"] = ROOT
        out = subprocess.run(
            [sys.executable, "-c", LAUNCHER, ",".join(map(str, high)), listen_pid, CHILD, mode],
            pass_fds=high,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        for fd in high:
            os.close(fd)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture
def listeners(tmp_path):
    socks = []
    for name, kind in (("a.sock", socket.SOCK_SEQPACKET), ("b.sock", socket.SOCK_STREAM)):
        s = socket.socket(socket.AF_UNIX, kind)
        s.bind(str(tmp_path / name))
        s.listen()
        socks.append(s)
    yield socks
    for s in socks:
        s.close()


def test_listen_fds_returns_inherited_sockets_with_names(listeners, tmp_path):
    r = run_child(listeners, {"LISTEN_FDS": "2", "LISTEN_FDNAMES": "irqd.socket:state"})
    assert r["fds"] == [[3, "irqd.socket"], [4, "state"]]
    assert r["sockets"] == [
        [socket.AF_UNIX, socket.SOCK_SEQPACKET, str(tmp_path / "a.sock")],
        [socket.AF_UNIX, socket.SOCK_STREAM, str(tmp_path / "b.sock")],
    ]
    assert r["cloexec"] == [True, True]
    assert r["env"] == {"LISTEN_PID": None, "LISTEN_FDS": None, "LISTEN_FDNAMES": None}


def test_listen_fds_names_are_unknown_without_listen_fdnames(listeners):
    r = run_child(listeners[:1], {"LISTEN_FDS": "1"})
    assert r["fds"] == [[3, "unknown"]]


def test_listen_fds_keeps_environment_when_asked(listeners):
    r = run_child(listeners[:1], {"LISTEN_FDS": "1", "LISTEN_FDNAMES": "irqd.socket"}, mode="keep")
    assert r["fds"] == [[3, "irqd.socket"]]
    assert r["env"]["LISTEN_FDS"] == "1" and r["env"]["LISTEN_FDNAMES"] == "irqd.socket"
    assert r["env"]["LISTEN_PID"].isdigit()


def test_listen_fds_for_another_pid_are_ignored_and_still_unset(listeners):
    # LISTEN_PID of the test process: the fds were meant for someone else.
    r = run_child(listeners, {"LISTEN_FDS": "2"}, listen_pid=str(os.getpid()))
    assert r["fds"] == []
    assert r["env"] == {"LISTEN_PID": None, "LISTEN_FDS": None, "LISTEN_FDNAMES": None}
    r = run_child(listeners, {"LISTEN_FDS": "2"}, mode="keep", listen_pid=str(os.getpid()))
    assert r["fds"] == []
    assert r["env"]["LISTEN_FDS"] == "2"


def test_listen_fds_outside_systemd_is_empty():
    assert sd.listen_fds() == []


def test_listen_fds_wrong_pid_in_this_process(monkeypatch):
    monkeypatch.setenv("LISTEN_PID", str(os.getpid() + 1))
    monkeypatch.setenv("LISTEN_FDS", "1")
    assert sd.listen_fds(unset_environment=False) == []
    assert os.environ["LISTEN_FDS"] == "1"
    assert sd.listen_fds() == []
    assert "LISTEN_FDS" not in os.environ and "LISTEN_PID" not in os.environ


@pytest.mark.parametrize(
    "env",
    [
        {"LISTEN_PID": "12x"},
        {"LISTEN_FDS": "two"},
        {"LISTEN_FDS": "-1"},
        {"LISTEN_FDS": "2", "LISTEN_FDNAMES": "only-one"},
        {"LISTEN_FDS": "1", "LISTEN_FDNAMES": "a:b"},
    ],
)
def test_listen_fds_malformed_variables_raise_and_are_unset(monkeypatch, env):
    monkeypatch.setenv("LISTEN_PID", str(os.getpid()))
    monkeypatch.setenv("LISTEN_FDS", "1")
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ValueError):
        sd.listen_fds()
    assert not any(k in os.environ for k in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"))


def test_listen_fds_from_systemd_socket_activate(tmp_path):
    tool = shutil.which("systemd-socket-activate")
    if tool is None:
        pytest.skip("systemd-socket-activate is not installed (Debian package systemd)")
    path = str(tmp_path / "irqd.sock")
    out_path = tmp_path / "out.json"
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    env["PYTHONPATH"] = ROOT
    child = (
        "import json, sys; from irqd import sd; "
        f"open({str(out_path)!r}, 'w').write(json.dumps(sd.listen_fds()))"
    )
    proc = subprocess.Popen(
        [tool, "--seqpacket", "-l", path, "--fdname=irqd.socket", sys.executable, "-c", child],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        # systemd-socket-activate starts the command on the first connection.
        deadline = time.monotonic() + 30
        while True:
            try:
                c = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                c.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                c.close()
                assert time.monotonic() < deadline, "systemd-socket-activate never listened"
                time.sleep(0.05)
        assert proc.wait(timeout=60) == 0, proc.stderr.read()
        c.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    assert json.loads(out_path.read_text()) == [[3, "irqd.socket"]]


# --------------------------------------------------------------------------
# watchdog


def test_watchdog_interval_from_environment(monkeypatch):
    assert sd.watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    assert sd.watchdog_interval() == 30.0
    monkeypatch.setenv("WATCHDOG_USEC", "1500")
    assert sd.watchdog_interval() == 0.0015
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert sd.watchdog_interval() == 0.0015
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert sd.watchdog_interval() is None


def test_watchdog_interval_unsets_environment_when_asked(monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert sd.watchdog_interval(unset_environment=True) == 2.0
    assert "WATCHDOG_USEC" not in os.environ and "WATCHDOG_PID" not in os.environ
    assert sd.watchdog_interval() is None


@pytest.mark.parametrize("usec,pid", [("0", None), ("-5", None), ("30s", None), ("1000", "me")])
def test_watchdog_interval_malformed_raises(monkeypatch, usec, pid):
    monkeypatch.setenv("WATCHDOG_USEC", usec)
    if pid:
        monkeypatch.setenv("WATCHDOG_PID", pid)
    with pytest.raises(ValueError):
        sd.watchdog_interval()
