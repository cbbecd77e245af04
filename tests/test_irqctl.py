"""irqctl end to end against a real daemon: the README walk-through, --json
output, save -> restore into a new device -> identical dump, error messages
and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from irqd.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def sock(daemon):
    """The socket of conftest's module-scoped daemon."""
    return daemon.path


@pytest.fixture
def ctl(sock, capsys):
    """Run irqctl in this process: returns (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        rc = main(["--socket", sock, *args])
        out, err = capsys.readouterr()
        return rc, out, err

    return run


@pytest.fixture
def ctlj(ctl):
    """irqctl --json: parsed output; the command must succeed."""

    def run(*args: str):
        rc, out, err = ctl("--json", *args)
        assert rc == 0, err
        return json.loads(out)

    return run


def test_walkthrough_create_configure_trigger_accept_eoi(ctl, ctlj):
    h = str(ctlj("create")["handle"])
    assert ctl("ics", h, "16", "16")[0] == 0
    assert ctl("ics", h, "0x20", "0x10", "--level")[0] == 0
    assert ctl("connect", h, "0")[0] == 0
    assert ctl("cppr", h, "0", "0xff")[0] == 0
    assert ctl("xive", h, "16", "0", "5")[0] == 0
    rc, out, _ = ctl("trigger", h, "16", "--edge")
    assert rc == 0 and "16" in out
    x = ctlj("xirr", h, "0")
    assert (x["xirr"], x["xisr"], x["cppr"]) == (0xFF000010, 16, 0xFF)
    rc, out, _ = ctl("xirr", h, "0")  # nothing more pending
    assert rc == 0 and "none pending" in out
    assert ctl("eoi", h, "0", hex(x["xirr"]))[0] == 0
    show = ctlj("show", h)
    assert show["info"]["flags"] == 2 and show["info"]["holders"] == 0  # PERSIST, irqctl does not hold
    assert show["ics"] == [{"id": 0, "first": 0, "last": 1023, "configured": 32, "level": 16}]
    src16 = show["sources"][0]
    assert src16 == {
        "irq": 16,
        "state": "0x0000000500000000",
        "server": 0,
        "priority": 5,
        "saved_priority": 5,
        "masked": False,
        "type": "edge",
        "pending": False,
        "presented": False,
        "queued": False,
    }
    assert show["sources"][16]["type"] == "level" and show["sources"][16]["masked"]
    assert show["servers"] == [
        {
            "server": 0,
            "state": "0xff000000ffff0000",
            "cppr": 0xFF,
            "xisr": 0,
            "mfrr": 0xFF,
            "pending_pri": 0xFF,
        }
    ]
    rc, out, _ = ctl("show", h)
    assert rc == 0 and "CPPR" in out and "XISR" in out and "MFRR" in out and "0xff" in out
    st = ctlj("stats", h)
    s16 = next(s for s in st["sources"] if s["irq"] == 16)
    assert (s16["triggers"], s16["deliveries"], s16["priority"], s16["masked"], s16["type"]) == (
        1,
        1,
        5,
        False,
        "edge",
    )
    assert st["servers"] == [{"server": 0, "deliveries": 1, "rejects": 0, "resends": 0, "ipis": 0}]
    rc, out, _ = ctl("stats", h)
    assert rc == 0 and "TRIGGERS" in out and "REJECTS" in out
    assert ctl("destroy", h)[0] == 0


def test_list_shows_persist_devices_and_destroy_removes_them(ctl, ctlj):
    h = ctlj("create")["handle"]
    devs = {d["handle"]: d for d in ctlj("list")}
    assert devs[h]["flags"] == 2 and devs[h]["type"] == 3 and devs[h]["holders"] == 0
    rc, out, _ = ctl("list")
    assert rc == 0 and "persist" in out and "GENERATION" in out
    assert ctlj("destroy", str(h))["destroyed"] is True
    assert h not in {d["handle"] for d in ctlj("list")}
    rc, _, err = ctl("destroy", str(h))
    assert rc == 1 and err.startswith("irqctl: destroy: Bad file descriptor")


def test_hello_shows_limits(ctl, ctlj):
    h = ctlj("hello")
    assert h["version"] == 1 and h["max_servers"] == 2048 and h["max_record"] >= 65536
    rc, out, _ = ctl("hello")
    assert rc == 0 and "max_irqs" in out


def test_failure_prints_the_daemons_extack_and_exits_1(ctl, ctlj):
    h = str(ctlj("create")["handle"])
    ctl("ics", h, "16", "16")
    before = ctlj("dump", h)
    rc, out, err = ctl("trigger", h, "48", "--set")
    assert rc == 1 and out == ""
    assert err == "irqctl: trigger: Invalid argument: irq 48 is not configured\n"
    assert ctlj("dump", h) == before
    rc, _, err = ctl("ics", h, "16", "1")
    assert rc == 1 and err.startswith("irqctl: ics: File exists")
    rc, _, err = ctl("xive", h, "16", "7", "5")  # no ICP for server 7: RTAS status -3
    assert rc == 1 and "status -3" in err
    ctl("destroy", h)


def test_usage_errors_exit_2(ctl):
    assert ctl("trigger", "1", "16")[0] == 2  # no --edge/--set/--reset
    assert ctl("trigger", "1", "sixteen", "--edge")[0] == 2
    assert ctl("frobnicate")[0] == 2
    assert ctl()[0] == 2
    rc, out, _ = ctl("show", "--help")
    assert rc == 0 and "usage: irqctl show" in out


def test_unreachable_daemon_exits_1(tmp_path, capsys):
    assert main(["--socket", str(tmp_path / "none"), "list"]) == 1
    assert "cannot connect" in capsys.readouterr().err


def test_save_restore_into_a_new_device_gives_an_identical_dump(ctl, ctlj, tmp_path):
    a = str(ctlj("create")["handle"])
    for args in (
        ["ics", a, "16", "16"],
        ["ics", a, "1024", "8", "--level"],
        ["connect", a, "0"],
        ["connect", a, "3"],
        ["cppr", a, "0", "0xff"],
        ["xive", a, "16", "0", "5"],
        ["xive", a, "1025", "3", "2"],
        ["trigger", a, "16", "--edge"],
        ["trigger", a, "1025", "--set"],
    ):
        assert ctl(*args)[0] == 0, args
    f = tmp_path / "a.json"
    saved = ctlj("save", a, str(f))
    assert saved == {"file": str(f), "sources": 24, "icps": 2}
    doc = json.loads(f.read_text())
    assert doc["format"] == "irqd-state" and doc["version"] == 1
    assert doc["sources"][0] == {"irq": 16, "state": "0x0000080500000000"}  # presented (P) to server 0
    assert [e["server"] for e in doc["icps"]] == [0, 3]
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".a.json")]  # no temporary left behind
    b = str(ctlj("create")["handle"])
    assert ctlj("restore", b, str(f)) == {"handle": int(b), "sources": 24, "icps": 2}
    assert ctlj("dump", b) == ctlj("dump", a)
    # not empty any more: all-or-nothing refuses, nothing changes
    rc, _, err = ctl("restore", b, str(f))
    assert rc == 1 and err.startswith("irqctl: restore: File exists")
    assert ctlj("dump", b) == ctlj("dump", a)
    ctl("destroy", a)
    ctl("destroy", b)


@pytest.mark.parametrize(
    "doc, text",
    [
        ({"format": "irqd-state", "version": 2, "sources": [], "icps": []}, "version 2 is not supported"),
        ({"format": "other", "version": 1}, "not an irqd state file"),
        ({"format": "irqd-state", "version": 1, "sources": [{"irq": 16}]}, "bad sources entry"),
        (
            {"format": "irqd-state", "version": 1, "sources": [{"irq": 16, "state": "0x1"}] * 2},
            "appears twice",
        ),
    ],
    ids=["newer_version", "wrong_format", "missing_state", "duplicate"],
)
def test_restore_refuses_bad_files_and_changes_nothing(ctl, ctlj, tmp_path, doc, text):
    b = str(ctlj("create")["handle"])
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(doc))
    rc, _, err = ctl("restore", b, str(f))
    assert rc == 1 and text in err
    assert ctlj("dump", b) == {"sources": {}, "icps": {}}
    ctl("destroy", b)


def test_restore_failing_in_the_daemon_leaves_the_device_empty(ctl, ctlj, tmp_path):
    b = str(ctlj("create")["handle"])
    f = tmp_path / "bad.json"
    doc = {
        "format": "irqd-state",
        "version": 1,
        "sources": [{"irq": 16, "state": "0x000002ff00000000"}],
        "icps": [{"server": 0, "state": "0xff00000205040000"}],  # IPI in XISR with PPRI != MFRR
    }
    f.write_text(json.dumps(doc))
    rc, _, err = ctl("restore", b, str(f))
    assert rc == 1 and err.startswith("irqctl: restore: Invalid argument")
    assert ctlj("dump", b) == {"sources": {}, "icps": {}}
    ctl("destroy", b)


def test_console_script_runs_with_exit_codes(sock):
    exe = os.path.join(os.path.dirname(sys.executable), "irqctl")
    cmd = [exe] if os.path.exists(exe) else [sys.executable, "-m", "irqd.cli"]
    env = dict(os.environ, IRQD_SOCKET=sock)
    r = subprocess.run(
        [*cmd, "--json", "hello"], env=env, capture_output=True, text=True, cwd=ROOT, timeout=60, check=False
    )
    assert r.returncode == 0 and json.loads(r.stdout)["version"] == 1
    r = subprocess.run(
        [*cmd, "trigger", "0x7fffffff", "16", "--edge"],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert r.returncode == 1 and r.stderr.startswith("irqctl: trigger: Bad file descriptor")
    r = subprocess.run(
        [*cmd, "nonsense"], env=env, capture_output=True, text=True, cwd=ROOT, timeout=60, check=False
    )
    assert r.returncode == 2


class _Stream:
    def __init__(self, tty: bool):
        self.tty, self.text = tty, ""

    def isatty(self) -> bool:
        return self.tty

    def write(self, s: str) -> None:
        self.text += s

    def flush(self) -> None:
        pass


def test_progress_bar_only_on_a_terminal_and_for_large_jobs():
    from irqd.cli import Progress

    tty = _Stream(True)
    bar = Progress("restore", stream=tty, min_total=100)
    for done in (50, 100):
        bar(done, 100)
    bar.finish()
    assert (
        "50/100  50%" in tty.text and tty.text.rstrip().endswith("100/100 100%") and tty.text.endswith("\n")
    )
    small, pipe = _Stream(True), _Stream(False)
    for stream, total in ((small, 10), (pipe, 1000)):
        b = Progress("restore", stream=stream, min_total=100)
        b(total, total)
        b.finish()
        assert stream.text == ""
