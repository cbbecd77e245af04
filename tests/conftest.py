"""Shared fixtures.

* ``daemon``: an irqd daemon started on a socket in a temporary directory
  (one per test module); ``daemon.path`` is its socket, ``daemon.proc`` the
  process.  ``fresh_daemon`` is the same, one per test.
* ``make_device``: parametrised over the backends (``inproc``, ``daemon``):
  ``make_device()`` returns a new XICS device on that backend.  The scenario
  suite (X-nnn) and every backend-agnostic test use it, as crosvm runs one
  IrqChip test suite on each chip.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), "shared")


class Daemon:
    """An irqd process on a private socket; stopped (SIGTERM) by stop()."""

    def __init__(self, *extra_args: str, env: dict | None = None):
        self.dir = tempfile.mkdtemp(prefix="irqd-test-")
        self.path = os.path.join(self.dir, "irqd.sock")
        self.log_path = os.path.join(self.dir, "irqd.log")
        self.args = [sys.executable, "-m", "irqd", "--socket", self.path, "--log-level", "debug", *extra_args]
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.args, stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT,
                                     env={**os.environ, **(env or {})})
        self.wait_ready()

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"irqd exited with {self.proc.returncode}:\n{self.log()}")
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                s.connect(self.path)
                s.close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"irqd did not come up on {self.path}:\n{self.log()}")

    def log(self) -> str:
        self._log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def fd_count(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def rss_kib(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


@pytest.fixture(scope="module")
def daemon():
    d = Daemon()
    yield d
    rc = d.stop()
    assert rc == 0, f"irqd exited {rc}:\n{d.log()}"


@pytest.fixture
def fresh_daemon():
    d = Daemon()
    yield d
    d.stop()


BACKENDS = ["inproc", "daemon"]


@pytest.fixture(params=BACKENDS)
def make_device(request):
    """Factory of fresh devices on one backend; everything is closed after."""
    made = []
    if request.param == "inproc":
        from irqd.inproc import Xics

        def factory():
            dev = Xics()
            made.append(dev)
            return dev
    else:
        d = request.getfixturevalue("daemon")
        from irqd.client import Client

        client = Client(d.path)
        made.append(client)

        def factory():
            dev = client.create_device()
            made.append(dev)
            return dev

    factory.backend = request.param
    yield factory
    for obj in reversed(made):
        try:
            obj.close()
        except Exception:
            pass
