"""Isolation (reliability issue, part 5; abi.md section 5).

Several uids, each a forked child that drops its privileges, share one
daemon (socket mode 0666 so they may connect at all):

* each sees only its own devices in LIST_DEVICES (root sees all);
* every operation that names a handle, on another uid's device, answers
  EACCES (after the checks that come before it in abi.md's table) and
  changes nothing - including ATTACH and DESTROY, and IRQFD/SET_OUTPUT,
  whose fds are closed;
* an unprivileged uid can neither delete, replace nor bind over the
  daemon's socket, nor start a second daemon on it.

Socket path attacks at start-up: a symlink (to a file, to nothing, to a
directory), a regular file, a directory or a FIFO at the path -> the
daemon refuses to start with a clear message and touches nothing; a live
daemon's socket -> "already running"; a stale socket -> replaced.
"""

from __future__ import annotations

import errno
import os
import pickle
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import time

import pytest
from irqd._core import lib
from reliability_util import (
    ACK,
    HDRLEN,
    NR_IRQS,
    P_HANDLE,
    P_IRQFD,
    P_LEVEL,
    REQ,
    ROOT,
    Daemon,
    Raw,
    T,
    close_all,
    eventfd,
    fork_as,
    msg,
    setup_device,
)
from test_malformed import HAS_HANDLE, VALID, Ctx

import irqd.daemon  # noqa: F401 - imported before forking: the children cannot read the stdlib under /root

UIDS = (10101, 10102, 10103)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch uids")


def as_uid(uid: int, fn, *args):
    """Run fn(*args) in a child with uid/gid ``uid``, no supplementary
    groups; return its (pickled) result or raise its exception text."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            try:
                res = ("ok", fn(*args))
            except BaseException as e:  # noqa: BLE001
                import traceback
                res = ("err", f"{e!r}\n{traceback.format_exc()}")
            data = pickle.dumps(res)
            with os.fdopen(w, "wb") as f:
                f.write(data)
        except BaseException:  # noqa: BLE001
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    kind, val = pickle.loads(data)
    if kind == "err":
        raise AssertionError(f"child uid {uid}: {val}")
    return val


@pytest.fixture(scope="module")
def world():
    d = Daemon("--mode", "0666")
    root = d.connect()
    # each uid creates two PERSIST devices (they outlive the child's connection)

    def make(path):
        c = Raw(path)
        hs = [setup_device(c, persist=True), c.create_device(persist=True)]
        c.close()
        return hs

    owned = {uid: as_uid(uid, make, d.path) for uid in UIDS}
    owned[0] = [setup_device(root, persist=True)]
    yield d, root, owned
    root.close()
    assert d.stop() == 0, d.log_text()[-2000:]


def snapshot_all(root: Raw, owned) -> dict:
    out = {"list": root.list_devices()}
    for hs in owned.values():
        for h in hs:
            out[h] = root.dump_state(h)
    return out


def test_each_uid_sees_only_its_own_devices(world):
    d, root, owned = world

    def listing(path):
        with Raw(path) as c:
            return [(x[0], x[2]) for x in c.list_devices()]

    for uid in UIDS:
        assert as_uid(uid, listing, d.path) == [(h, uid) for h in sorted(owned[uid])]
    everything = sorted((h, uid) for uid, hs in owned.items() for h in hs)
    assert [(x[0], x[2]) for x in root.list_devices()] == everything


def _attack(path: str, victims: list[int]) -> list:
    """Every handle-taking operation on every victim handle; returns
    [(victim, type name, errno, offs, extack)]."""
    out = []
    with Raw(path) as c:
        for h in victims:
            ctx = Ctx(h, 0)
            for t in HAS_HANDLE:
                name, build = VALID[t]
                flags = lib.IRQD_IRQFD_RESAMPLE if t == T.IRQD_MSG_IRQFD else 0
                payload = build(ctx)
                fds = []
                if t == T.IRQD_MSG_IRQFD:
                    payload = P_IRQFD.pack(h, 40, flags, 0)
                    fds = [eventfd(), eventfd()]
                elif t == T.IRQD_MSG_SET_OUTPUT:
                    payload = struct_output(h)
                    fds = [eventfd()]
                try:
                    replies = c.exchange(msg(t, payload, REQ | ACK, 9), fds)
                finally:
                    close_all(fds)
                r = replies[0]
                out.append((h, name, r.errno if r.type == T.IRQD_MSG_ERROR else None, r.offs, r.extack,
                            len(replies)))
            # the order of the checks: a reserved field is checked before the owner
            r = c.exchange(msg(T.IRQD_MSG_IRQ_LINE, P_LEVEL.pack(h, 40, 1, 1), REQ | ACK, 10))[0]
            out.append((h, "IRQ_LINE-reserved", r.errno, r.offs, r.extack, 1))
            # and the owner before a bad level
            r = c.exchange(msg(T.IRQD_MSG_IRQ_LINE, P_LEVEL.pack(h, 40, 7, 0), REQ | ACK, 11))[0]
            out.append((h, "IRQ_LINE-badlevel", r.errno, r.offs, r.extack, 1))
        assert c.hello()[0] == 1
    return out


def struct_output(h: int) -> bytes:
    return struct.pack("<4I", h, 0, 0, 0)


def test_every_operation_on_another_uids_device_is_eacces_and_changes_nothing(world):
    d, root, owned = world
    before = snapshot_all(root, owned)
    fd_base = d.fd_count()
    n = want = 0
    for attacker in UIDS:
        victims = [h for uid, hs in owned.items() if uid != attacker for h in hs]
        want += len(victims) * (len(HAS_HANDLE) + 2)
        for h, name, err, offs, extack, nrep in as_uid(attacker, _attack, d.path, victims):
            n += 1
            if name == "IRQ_LINE-reserved":
                assert err == errno.EINVAL and offs == HDRLEN + 12, (h, name, err, extack)
                continue
            assert err == errno.EACCES, (attacker, h, name, err, extack)
            assert offs == HDRLEN and extack and nrep == 1
    assert n == want
    assert snapshot_all(root, owned) == before          # nothing attached, destroyed or changed
    assert d.fd_count() == fd_base                      # the IRQFD / SET_OUTPUT fds were closed
    print(f"\nisolation: {n} cross-uid requests refused")


def test_root_may_use_every_device(world):
    _d, root, owned = world
    for uid in UIDS:
        h = owned[uid][0]
        assert root.dump_state(h)[1]                    # root reads it
        root.check_ok(T.IRQD_MSG_ATTACH, P_HANDLE.pack(h, 0))


def test_unprivileged_uid_cannot_remove_replace_or_bind_over_the_socket(world):
    d, root, _owned = world
    st0 = os.lstat(d.path)

    def attack(path):
        results = {}
        for what, fn in (("unlink", lambda: os.unlink(path)),
                         ("rename-over", lambda: _rename_over(path)),
                         ("bind", lambda: _bind(path)),
                         ("chmod", lambda: os.chmod(path, 0o777))):
            try:
                fn()
                results[what] = "succeeded"
            except OSError as e:
                results[what] = e.errno
        # a second daemon started by this uid on the same path (the interpreter under /root is not
        # executable for it, so the daemon's own start-up function, in this process)
        from irqd.daemon import SocketPathError, open_listener
        try:
            open_listener(path, 0o660, None)
            results["second-daemon"] = (0, "started")
        except SocketPathError as e:
            results["second-daemon"] = (1, str(e))
        return results

    res = as_uid(UIDS[0], attack, d.path)
    assert res["unlink"] in (errno.EACCES, errno.EPERM)
    assert res["rename-over"] in (errno.EACCES, errno.EPERM)
    assert res["bind"] in (errno.EADDRINUSE, errno.EACCES)
    assert res["chmod"] == errno.EPERM
    rc, err = res["second-daemon"]
    assert rc != 0 and "already running" in err, err
    st1 = os.lstat(d.path)
    assert (st1.st_ino, st1.st_mode, st1.st_uid) == (st0.st_ino, st0.st_mode, st0.st_uid)
    assert root.hello()[0] == 1


def _rename_over(path):
    tmp = os.path.join(os.path.dirname(path), "evil")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.bind(tmp)
    os.rename(tmp, path)


def _bind(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.bind(path)


def test_sticky_world_writable_directory_protects_the_socket():
    """In a /tmp-like directory (1777) another uid may create files but not
    remove or replace the daemon's socket."""
    base = tempfile.mkdtemp(prefix="irqd-sticky-")
    os.chmod(base, 0o1777)
    path = os.path.join(base, "irqd.sock")
    d = Daemon("--mode", "0666", path=path)
    try:
        st0 = os.lstat(path)

        def attack(p):
            out = {}
            for what, fn in (("unlink", lambda: os.unlink(p)), ("rename-over", lambda: _rename_over(p))):
                try:
                    fn()
                    out[what] = "succeeded"
                except OSError as e:
                    out[what] = e.errno
            return out

        res = as_uid(UIDS[1], attack, path)
        assert res == {"unlink": errno.EPERM, "rename-over": errno.EPERM}, res
        assert os.lstat(path).st_ino == st0.st_ino
        with d.connect() as c:
            assert c.hello()[0] == 1
    finally:
        assert d.stop() == 0
    assert not os.path.exists(path)       # the daemon removed its own socket, and only that


# ---------------------------------------------------------------------------------------------------------
# socket path attacks at start-up

def _start(path: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "irqd", "--socket", path], capture_output=True, text=True,
                          timeout=60, cwd=str(ROOT), check=False)


def _tree(dirpath: str) -> dict:
    out = {}
    for name in sorted(os.listdir(dirpath)):
        p = os.path.join(dirpath, name)
        st = os.lstat(p)
        content = None
        if stat.S_ISREG(st.st_mode):
            with open(p, "rb") as f:
                content = f.read()
        elif stat.S_ISLNK(st.st_mode):
            content = os.readlink(p)
        out[name] = (st.st_ino, st.st_mode, st.st_size, st.st_mtime_ns, content)
    return out


@pytest.mark.parametrize("kind", ["symlink-to-file", "symlink-to-nothing", "symlink-to-dir", "symlink-to-socket",
                                  "regular-file", "empty-file", "directory", "fifo"])
def test_daemon_refuses_a_hostile_socket_path_and_touches_nothing(tmp_path, kind):
    victim_dir = tmp_path / "victim"
    victim_dir.mkdir()
    target = victim_dir / "precious"
    target.write_bytes(b"do not touch\n")
    path = str(tmp_path / "irqd.sock")
    other = None
    if kind == "symlink-to-file":
        os.symlink(target, path)
    elif kind == "symlink-to-nothing":
        os.symlink(victim_dir / "missing", path)
    elif kind == "symlink-to-dir":
        os.symlink(victim_dir, path)
    elif kind == "symlink-to-socket":
        other = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        other.bind(str(victim_dir / "sock"))
        os.symlink(victim_dir / "sock", path)
    elif kind == "regular-file":
        with open(path, "wb") as f:
            f.write(b"some file\n")
    elif kind == "empty-file":
        open(path, "wb").close()
    elif kind == "directory":
        os.mkdir(path)
    elif kind == "fifo":
        os.mkfifo(path)
    before = (_tree(str(tmp_path)), _tree(str(victim_dir)))
    p = _start(path)
    after = (_tree(str(tmp_path)), _tree(str(victim_dir)))
    if other:
        other.close()
    assert p.returncode != 0
    assert "refusing to start" in p.stderr and path in p.stderr, p.stderr
    want = "symbolic link" if kind.startswith("symlink") else "not a socket"
    assert want in p.stderr, p.stderr
    assert after == before, "the daemon touched something while refusing to start"
    assert "Traceback" not in p.stderr


def test_daemon_refuses_a_live_daemons_socket_and_replaces_a_stale_one(tmp_path):
    path = str(tmp_path / "irqd.sock")
    d = Daemon(path=path)
    try:
        ino = os.lstat(path).st_ino
        p = _start(path)
        assert p.returncode != 0 and "already running" in p.stderr, p.stderr
        assert os.lstat(path).st_ino == ino
        with d.connect() as c:
            assert c.hello()[0] == 1
    finally:
        d.stop()
    # a stale socket (nobody listening): replaced
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.bind(path)
    s.close()
    d2 = Daemon(path=path)
    try:
        with d2.connect() as c:
            assert c.hello()[0] == 1
    finally:
        d2.stop()
    assert not os.path.exists(path)


def test_eventfds_passed_to_the_daemon_keep_their_blocking_mode():
    """The daemon must not change what it does not own: an eventfd a client
    passes (IRQFD trigger and resample, SET_OUTPUT) shares its open file
    description with the client's copy, so setting O_NONBLOCK on the
    daemon's copy makes the client's blocking read() of it (a vCPU thread
    waiting for its output line) fail with EAGAIN.  KVM_IRQFD leaves the
    flags alone; so must irqd (read only after EPOLLIN, poll for POLLOUT
    before a write)."""
    d = Daemon()
    try:
        with d.connect() as c:
            h = setup_device(c)
            fo, ft, fr = os.eventfd(0), os.eventfd(0), os.eventfd(0)   # blocking, as a VMM opens them
            try:
                r1 = c.exchange(msg(T.IRQD_MSG_SET_OUTPUT, struct_output(h), REQ | ACK, 1), [fo])
                r2 = c.exchange(msg(T.IRQD_MSG_IRQFD, P_IRQFD.pack(h, 100, lib.IRQD_IRQFD_RESAMPLE, 0), REQ | ACK, 2),
                                [ft, fr])
                assert [(r.type, r.error) for r in r1 + r2] == [(T.IRQD_MSG_ERROR, 0)] * 2
                assert {"output": os.get_blocking(fo), "trigger": os.get_blocking(ft),
                        "resample": os.get_blocking(fr)} == {"output": True, "trigger": True, "resample": True}
            finally:
                close_all([fo, ft, fr])
    finally:
        assert d.stop() == 0


def _fd_hoarder(path: str, ready_w: int, go_r: int) -> None:
    """Runs as an unprivileged uid: queue fd-taking messages behind a dump
    that never finishes (the client does not read), on many connections,
    until the daemon's fd table is full; then hold on."""
    c = Raw(path)
    small = setup_device(c, persist=True)
    big = c.create_device(persist=True)
    c.connect_vcpu(big, 0)
    c.create_ics(big, 16, NR_IRQS - 16)        # its dump is ~32 MB of replies: it pauses on us
    socks = []
    try:
        for i in range(400):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            s.settimeout(2)            # a full accept backlog blocks connect: that is the end
            s.connect(path)
            n = 253 if i < 3 else 1
            rec = msg(T.IRQD_MSG_DUMP_STATE, P_HANDLE.pack(big, 0), REQ, 1) + b"".join(
                msg(T.IRQD_MSG_IRQFD, P_IRQFD.pack(small, 40, 0, 0), REQ | ACK, 10 + k) for k in range(n))
            fds = [eventfd() for _ in range(n)]
            try:
                s.sendmsg([rec], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct_i(fds))])
            finally:
                close_all(fds)
            socks.append(s)
    except OSError:
        pass   # connect refused or EMFILE on our side: enough
    os.write(ready_w, struct_i([len(socks)]))
    os.read(go_r, 1)
    for s in socks:
        s.close()
    c.close()


def struct_i(values) -> bytes:
    return struct.pack(f"{len(values)}i", *values)


def test_one_uid_cannot_exhaust_the_daemons_fd_table_with_fds_in_flight():
    """fds travel with records; the daemon holds them until it reaches the
    messages that take them.  A uid that queues fd-taking messages behind a
    dump it never reads holds 253 fds per connection, uncounted by
    --max-fds-per-uid: with enough connections the daemon's fd table is full
    and it can no longer accept anyone (accept: EMFILE).  Another uid must
    still be served: fds a record carries count against its uid's limit
    from the moment they are received (or the daemon keeps fd headroom)."""
    d = Daemon("--mode", "0666", "--max-fds-per-uid", "256", "--max-clients", "1000", nofile=1024)
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = fork_as(UIDS[2], _fd_hoarder, d.path, ready_w, go_r)
    try:
        data = os.read(ready_r, 4)
        n = struct.unpack("i", data)[0] if len(data) == 4 else -1
        served = []
        for _ in range(2):
            # the hoarder left the accept backlog full: a client retries (bounded), as any would
            deadline = time.monotonic() + 30
            while True:
                try:
                    with Raw(d.path, timeout=5) as v:
                        served.append(v.hello()[0] == 1)
                    break
                except OSError as e:
                    if time.monotonic() > deadline:
                        served.append(repr(e))
                        break
                    time.sleep(0.2)
        held = d.fd_count()
        assert served == [True, True], (f"another uid is not served while uid {UIDS[2]} holds {held} fds "
                                              f"over {n} connections: {served}; log: {d.log_text()[-300:]}")
    finally:
        os.write(go_w, b"g")
        os.waitpid(pid, 0)
        for fd in (ready_r, ready_w, go_r, go_w):
            os.close(fd)
        assert d.stop() == 0


def _queue_hog(path: str, out_w: int, go_r: int) -> None:
    """Runs as an unprivileged uid: 8 connections each ask for a ~8 MB dump
    and never read; then one more connection of the same uid says HELLO."""
    c = Raw(path)
    big = c.create_device(persist=True)
    c.connect_vcpu(big, 0)
    c.create_ics(big, 16, 1 << 18)
    hogs = []
    for _ in range(8):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.connect(path)
        s.send(msg(T.IRQD_MSG_DUMP_STATE, P_HANDLE.pack(big, 0), REQ, 1))
        hogs.append(s)
    time.sleep(1.0)                      # the daemon fills what it may
    late = Raw(path, timeout=1.5)
    late.send(msg(T.IRQD_MSG_HELLO, struct.pack("<8I", 1, 0, 0, 0, 0, 0, 0, 0), REQ, 7))
    try:
        late.recv()
        stalled = False
    except socket.timeout:
        stalled = True
    os.write(out_w, b"S" if stalled else b"s")
    os.read(go_r, 1)                     # the parent has looked
    for s in hogs:
        s.close()
    if not stalled:
        return
    late.sock.settimeout(20)
    replies = late.recv()                # the HELLO, now that the uid drained
    os.write(out_w, b"H" if replies and replies[0].seq == 7 and replies[0].type == T.IRQD_MSG_HELLO else b"h")
    late.close()
    c.close()


def test_one_uid_cannot_make_the_daemon_hold_unbounded_replies():
    """Each connection that does not read holds at most OUTQ_LIMIT reply
    records in the daemon; with many connections one uid could still make
    it hold GiBs.  --max-queued-per-uid bounds the sum: past it, that uid's
    connections (a new one too) are not read until they drain, while other
    uids are served; when the hogs go, the waiting connection is answered."""
    d = Daemon("--mode", "0666", "--max-queued-per-uid", str(2 << 20))
    out_r, out_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = fork_as(UIDS[1], _queue_hog, d.path, out_w, go_r)
    try:
        assert os.read(out_r, 1) == b"S", "a connection of a uid over its queue cap was served"
        assert "pausing its connections" in d.log_text()
        with Raw(d.path, timeout=5) as other:          # root is another uid: served at once
            t0 = time.monotonic()
            assert other.hello()[0] == 1
            assert time.monotonic() - t0 < 2
        os.write(go_w, b"g")
        assert os.read(out_r, 1) == b"H", "the waiting connection was not answered after the uid drained"
    finally:
        os.write(go_w, b"g")   # never leave the child waiting (a second byte is harmless)
        os.waitpid(pid, 0)
        for fd in (out_r, out_w, go_r, go_w):
            os.close(fd)
    assert d.stop() == 0, d.log_text()[-2000:]
