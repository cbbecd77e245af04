"""Drive the C programs of tests/c from pytest, one pytest case per C test.

- harness: the C test harness (include/irqd/client.h against a daemon we
  start here, $IRQD_SOCKET pointing at it);
- test_core: the same scenarios on the C core called directly, plus core
  unit tests;
- golden_dump: the C client's record walker and ERROR parser on every
  tests/golden vector, compared with the vector's JSON;
- the README's C example, compiled as written (-Wall -Wextra -Werror) and run;
- the client compiles clean with gcc and clang.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "c"))
from c_support import C_BUILD, ROOT, make, parse_results, declared_tests  # noqa: E402

HARNESS_TESTS = declared_tests("harness.c", "scenarios.c")
CORE_TESTS = declared_tests("test_core.c", "scenarios.c")
GOLDEN = sorted((ROOT / "tests" / "golden").glob("*.dump"))


@pytest.fixture(scope="module")
def c_build():
    make("c-test-build")
    return C_BUILD


@pytest.fixture(scope="module")
def c_daemon(daemon, c_build):
    """The socket of conftest's module-scoped daemon (python -m irqd)."""
    return Path(daemon.path)


def _run(cmd, env=None, timeout=300):
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def harness_results(c_build, c_daemon):
    p = _run([str(c_build / "harness")], env=dict(os.environ, IRQD_SOCKET=str(c_daemon)))
    return p, parse_results(p.stdout)


@pytest.fixture(scope="module")
def core_results(c_build):
    p = _run([str(c_build / "test_core")])
    return p, parse_results(p.stdout)


def _check(run, name):
    p, (res, summary) = run
    assert summary is not None, f"no summary line (exit {p.returncode}):\n{p.stdout}\n{p.stderr}"
    assert name in res, f"{name} did not run:\n{p.stdout}\n{p.stderr}"
    status, msg = res[name]
    assert status == "ok", f"{name}: {msg}"


@pytest.mark.parametrize("name", HARNESS_TESTS)
def test_c_harness(harness_results, name):
    _check(harness_results, name)


@pytest.mark.parametrize("name", CORE_TESTS)
def test_c_core(core_results, name):
    _check(core_results, name)


def test_runner_lists_exactly_the_declared_tests_and_counts_them(c_build, harness_results, core_results):
    for prog, names, run in (("harness", HARNESS_TESTS, harness_results), ("test_core", CORE_TESTS, core_results)):
        listed = _run([str(c_build / prog), "--list"]).stdout.split()
        assert listed == names
        p, (res, summary) = run
        failed = sorted(n for n, (s, _) in res.items() if s == "FAIL")
        assert summary == (len(names) - len(failed), len(failed)), p.stdout
        assert p.returncode == (1 if failed else 0)


def test_runner_reports_a_failing_test_and_exits_1(c_build):
    p = _run([str(c_build / "test_core"), "x008_msi_presented_accepted_eoi", "no_such_test"])
    assert p.returncode == 1
    res, summary = parse_results(p.stdout)
    assert res["x008_msi_presented_accepted_eoi"][0] == "ok"
    assert res["no_such_test"] == ("FAIL", "no such test")
    assert summary == (1, 1)


def test_harness_without_daemon_says_so(c_build, tmp_path):
    p = _run([str(c_build / "harness")], env=dict(os.environ, IRQD_SOCKET=str(tmp_path / "none.sock")))
    assert p.returncode == 2
    assert "cannot reach the daemon" in p.stderr


# ---- golden vectors: the C client parses them as the Python codec does ----


def _golden_json(path: Path):
    text = path.read_text()
    return json.loads(re.split(r"^#: application/json$", text, maxsplit=1, flags=re.M)[1])


@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_golden_vector_decodes_in_c_as_in_python(c_build, path):
    p = _run([str(c_build / "golden_dump"), str(path)])
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout)
    want = _golden_json(path)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g["header"] == w["header"]
        if w["header"]["type"] == 2:  # ERROR
            assert g["error"] == w["error"]
            assert g["msg"] == w["msg"]
            assert g["attrs"] == [list(a) for a in w.get("attrs", [])]
        if w["header"]["type"] == 3:  # DONE
            assert g["error"] == w["error"]


def test_golden_vectors_cover_errors_and_dumps():
    stems = {p.stem for p in GOLDEN}
    assert any(s.startswith("error_") for s in stems)
    assert any("dump" in s and "reply" in s for s in stems)


# ---- the client itself ----


@pytest.mark.parametrize("cc", ["gcc", "clang"])
def test_client_compiles_clean(cc, tmp_path):
    if shutil.which(cc) is None:
        pytest.skip(f"{cc} not installed")
    flags = ["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Iinclude"]
    p = _run([cc, *flags, "-c", "clib/irqd_client.c", "-o", str(tmp_path / "c.o")])
    assert p.returncode == 0, p.stderr
    # the header alone, from C++ too is not promised; from C with nothing else:
    (tmp_path / "h.c").write_text('#include "irqd/client.h"\nint main(void) { return 0; }\n')
    p = _run([cc, *flags, str(tmp_path / "h.c"), "-o", str(tmp_path / "h")])
    assert p.returncode == 0, p.stderr


def test_client_takes_every_number_from_abi_h():
    """No message type, flag or errno literal in the client: abi.h has them."""
    src = (ROOT / "clib" / "irqd_client.c").read_text()
    code = re.sub(r"/\*.*?\*/", "", src, flags=re.S)
    for lit in re.findall(r"\b0x[0-9A-Fa-f]+\b", code):
        raise AssertionError(f"hex literal {lit} in clib/irqd_client.c")
    assert "IRQD_MSG_" in code and "IRQD_NLM_F_" in code


# ---- README example ----


def _readme_example() -> str:
    readme = (ROOT / "README.md").read_text()
    sec = readme.split("<!-- BEGIN c-client -->", 1)[1].split("<!-- END c-client -->", 1)[0]
    m = re.search(r"```c\n(.*?)```", sec, re.S)
    assert m, "no ```c block in the README's c-client section"
    return m.group(1)


def test_readme_c_example_compiles_as_written_and_runs(tmp_path, c_daemon):
    (tmp_path / "example.c").write_text(_readme_example())
    readme = (ROOT / "README.md").read_text()
    cmd = re.search(r"^cc (-std=c11 .*)$", readme, re.M)
    assert cmd, "README shows no cc command line for the example"
    args = cmd.group(1).split()
    args = [str(tmp_path / a) if a in ("example.c", "example") else a for a in args]
    p = _run(["cc", *args])
    assert p.returncode == 0, p.stderr
    p = _run([str(tmp_path / "example")], env=dict(os.environ, IRQD_SOCKET=str(c_daemon)))
    assert p.returncode == 0, p.stdout + p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == "XIRR 0xff000010"
    assert lines[1].startswith("irq 15: Invalid argument (") and len(lines[1]) > len("irq 15: Invalid argument ()")
    # the output the README shows is the output it gives
    assert f"# {lines[0]}" in readme
    assert f"# {lines[1]}" in readme
