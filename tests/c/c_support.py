"""Helpers for the pytest drivers of the C programs (test_c_harness.py,
test_sanitizers.py, test_fuzz_short.py): make targets, a daemon of our own
(optionally under ASan), and the C runner's output format."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
C_DIR = ROOT / "tests" / "c"
C_BUILD = C_DIR / "build"
ASAN_DIR = ROOT / "build" / "asan"

_TEST_RE = re.compile(r"^TEST\((\w+)\)", re.M)
_RESULT_RE = re.compile(r"^(ok|FAIL) (\w+)(?:: (.*))?$", re.M)
_SUMMARY_RE = re.compile(r"^(\d+) passed, (\d+) failed$", re.M)
# what ASan / UBSan / LSan print when they find something
SANITIZER_RE = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: UndefinedBehaviorSanitizer")


def make(*targets: str) -> None:
    """Run make in the project; on failure show what the compiler said."""
    p = subprocess.run(["make", "-s", *targets], cwd=ROOT, capture_output=True, text=True)
    if p.returncode != 0:
        raise AssertionError(f"make {' '.join(targets)} failed:\n{p.stdout}\n{p.stderr}")


def declared_tests(*sources: str) -> list[str]:
    """TEST(name) declarations of the C sources, in the runner's (sorted) order."""
    names: list[str] = []
    for s in sources:
        names += _TEST_RE.findall((C_DIR / s).read_text())
    return sorted(names)


def parse_results(out: str) -> tuple[dict[str, tuple[str, str]], tuple[int, int] | None]:
    """Per-test (status, message) and the `N passed, N failed` line."""
    res = {m.group(2): (m.group(1), m.group(3) or "") for m in _RESULT_RE.finditer(out)}
    s = _SUMMARY_RE.search(out)
    return res, (int(s.group(1)), int(s.group(2))) if s else None


def asan_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment to run Python with the ASan+UBSan module of build/asan.

    The interpreter is not instrumented, so the ASan runtime is preloaded and
    leak detection is off for it (CPython's own allocations at exit are not
    ours); UBSan aborts on the first report."""
    env = dict(os.environ)
    gcc = lambda lib: subprocess.run(  # noqa: E731
        ["gcc", f"-print-file-name={lib}"], capture_output=True, text=True, check=True
    ).stdout.strip()
    env.update(
        PYTHONPATH=str(ASAN_DIR),
        PYTHONSAFEPATH="1",  # no '' / cwd in sys.path: /work/main/irqd must not shadow build/asan/irqd
        IRQD_ASAN_DIR=str(ASAN_DIR),
        LD_PRELOAD=f"{gcc('libasan.so')} {gcc('libubsan.so')}",
        # use_sigaltstack=0: gcc 12's libasan reports a stack-use-after-scope in
        # its own sigaltstack interceptor when a thread exits (AsanThread::Destroy
        # -> UnsetAlternateSignalStack), a false positive seen here with the
        # ring consumer and Python threads; no irqd frame is involved
        ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:use_sigaltstack=0",
        UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1",
    )
    env.update(extra or {})
    return env


def _connectable(path: str) -> bool:
    with contextlib.closing(socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)) as s:
        try:
            s.connect(path)
            return True
        except OSError:
            return False


class OwnDaemon:
    """`python -m irqd --socket PATH` in a child process, stderr to a file."""

    def __init__(self, sock: Path, log: Path, env: dict[str, str] | None = None):
        self.sock = sock
        self.log = log
        self._logf = open(log, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "irqd", "--socket", str(sock), "--log-level", "warning"],
            cwd=str(sock.parent),  # not the project root: see PYTHONSAFEPATH above
            env=env if env is not None else dict(os.environ, PYTHONPATH=str(ROOT)),
            stdout=self._logf,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while not _connectable(str(sock)):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"daemon did not start:\n{self.output()}")
            time.sleep(0.05)

    def output(self) -> str:
        if not self._logf.closed:
            self._logf.flush()
        return self.log.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._logf.close()
        return self.proc.returncode
