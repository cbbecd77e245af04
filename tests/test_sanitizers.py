"""AddressSanitizer + UndefinedBehaviorSanitizer runs of every C line we have.

- the core's C unit tests and scenarios (tests/c/test_core.c linked with
  irqd/core/*.c) with LeakSanitizer on;
- the cffi module built instrumented in build/asan (mk/c.mk), under the
  core's Python tests (test_core_*, the scenarios, the differential tests
  against tests/model.py) and, through daemons started with the same
  environment, under the scenarios on the daemon backend and the
  malformed-message table;
- the C harness (the C client instrumented) against a daemon whose module
  is the instrumented one, so wire.c and the core see every malformed
  request of the harness under ASan too.

Any sanitizer report fails the test (UBSan is built with
-fno-sanitize-recover, ASan aborts on its first report).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "c"))
from c_support import ASAN_DIR, ROOT, SANITIZER_RE, OwnDaemon, asan_env, make, parse_results  # noqa: E402

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def asan_build():
    make("c-asan-build")
    return ASAN_DIR


def _no_reports(text: str) -> None:
    m = SANITIZER_RE.search(text)
    assert m is None, f"sanitizer report:\n{text[max(0, m.start() - 2000): m.start() + 4000]}"


def test_asan_module_is_instrumented(asan_build):
    so = next(asan_build.glob("irqd/_core*.so"))
    syms = subprocess.run(["nm", "-D", str(so)], capture_output=True, text=True, check=True).stdout
    assert "__asan_report_load" in syms
    assert "__ubsan_handle" in syms
    # and Python picks it, not the plain one
    p = subprocess.run(
        [sys.executable, "-c", "import irqd._core as m; print(m.__file__)"],
        cwd=ROOT, env=asan_env(), capture_output=True, text=True,
    )
    assert p.returncode == 0, p.stderr
    assert Path(p.stdout.strip()).resolve() == so.resolve()


def test_core_c_unit_tests_under_asan_ubsan_lsan(asan_build):
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:use_sigaltstack=0", UBSAN_OPTIONS="print_stacktrace=1")
    p = subprocess.run([str(asan_build / "test_core")], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    out = p.stdout + p.stderr
    _no_reports(out)
    res, summary = parse_results(p.stdout)
    assert p.returncode == 0, out
    assert summary is not None and summary[1] == 0 and summary[0] >= 30, out


def _python_core_tests() -> list[str]:
    tests = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_core_*.py"))
    # the core in-process, then the daemon's C paths (wire.c dispatcher,
    # loop.c epoll loop, ring.c consumer) through daemons started by the tests
    for name in ("test_scenarios.py", "test_differential.py", "test_malformed.py", "test_ring.py",
                 "test_daemon.py", "test_client.py"):
        if (ROOT / "tests" / name).exists():
            tests.append(f"tests/{name}")
    return tests


def test_core_python_tests_and_daemon_against_asan_module(asan_build, tmp_path):
    """The core's Python tests in-process, and the scenario and malformed-
    message suites against daemons that inherit this environment (so they
    load the instrumented module too).  Reports go to files under tmp_path,
    whichever process makes them."""
    tests = _python_core_tests()
    assert tests, "no core tests to run"
    logs = tmp_path / "reports"
    logs.mkdir()
    env = asan_env()
    env["ASAN_OPTIONS"] += f":log_path={logs}/asan"
    env["UBSAN_OPTIONS"] += f":log_path={logs}/ubsan"
    cmd = [
        sys.executable, "-m", "pytest", "-q", "-p", "asan_pytest_plugin", "--import-mode=append",
        "-p", "no:cacheprovider", "-x", "-k", "not model", *tests,
    ]
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=540)
    out = p.stdout + p.stderr
    for f in sorted(logs.iterdir()):
        _no_reports(f.read_text(errors="replace"))
        raise AssertionError(f"sanitizer log {f.name}:\n{f.read_text(errors='replace')[-5000:]}")
    _no_reports(out)
    assert "asan plugin: irqd._core = " + str(ASAN_DIR.resolve()) in out, out[-3000:]
    assert p.returncode == 0, out[-5000:]
    assert " passed" in out


def test_c_harness_under_asan_against_asan_daemon(asan_build, tmp_path):
    daemon = OwnDaemon(tmp_path / "irqd.sock", tmp_path / "daemon.log", env=asan_env())
    try:
        maps = Path(f"/proc/{daemon.proc.pid}/maps").read_text()
        assert str((ASAN_DIR / "irqd").resolve()) + "/_core" in maps, "daemon did not load the ASan module"
        assert "libasan" in maps
        env = dict(os.environ, IRQD_SOCKET=str(daemon.sock), ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:use_sigaltstack=0",
                   UBSAN_OPTIONS="print_stacktrace=1")
        p = subprocess.run([str(asan_build / "harness")], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=300)
    finally:
        rc = daemon.stop()
    out = p.stdout + p.stderr
    _no_reports(out)
    _no_reports(daemon.output())
    res, summary = parse_results(p.stdout)
    assert p.returncode == 0, out
    assert summary is not None and summary[1] == 0 and summary[0] >= 40, out
    assert rc == 0, f"ASan daemon exited {rc}:\n{daemon.output()[-5000:]}"
