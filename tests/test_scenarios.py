"""The X-nnn scenarios of xics-semantics.md section 8, one test each.

The scenarios are data (tests/scenarios.py, generated from the doc by
tools/extract_scenarios.py) in the doc's own notation; a small interpreter
below runs them.  For every scenario there are two test functions:

* ``test_x016_<title>`` takes the ``make_device`` fixture (conftest.py), so it
  runs on every backend (inproc, daemon);
* ``test_x016_<title>_model`` runs it on the reference model
  (tests/model.py), which checks the model against the doc.

Notation (section 8.1): ``S0``/``S1`` setup macros; ``B.``/``C.`` prefix an
operation on another fresh device; ``rises S`` counts writes to a SET_OUTPUT
eventfd attached right after ``connect S``; ``resamples I`` counts writes to
the resample eventfd of ``irqfd I resample``; ``out S`` is I1 applied to
``get_icp S``; ``migrate A B`` restores A's dump into fresh B by a plain
sequence (connect every server, set every source ascending, set every ICP
ascending); ``same A B`` compares dumps.
"""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import os
import re
from pathlib import Path

import pytest
from irqd._core import lib
from model import XicsModel
from scenarios import SCENARIOS

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT.parent / "shared" / "xics-semantics.md"

MACROS = {
    "S0": ["connect 0", "ics 16 16 edge", "ics 32 16 level", "cppr 0 0xFF"],
    "S1": ["S0", "connect 1", "cppr 1 0xFF"],
}
NAMES = {
    "MAX": lib.IRQD_MAX_SERVERS,
    "SET": lib.IRQD_KVM_INTERRUPT_SET,
    "UNSET": lib.IRQD_KVM_INTERRUPT_UNSET,
    "SET_LEVEL": lib.IRQD_KVM_INTERRUPT_SET_LEVEL,
}
STATUS = {
    "H_SUCCESS": lib.IRQD_H_SUCCESS,
    "H_PARAMETER": lib.IRQD_H_PARAMETER,
    "H_HARDWARE": lib.IRQD_H_HARDWARE,
}
STATUS_NAME = {v: k for k, v in STATUS.items()}
ICP_STATE = lib.IRQD_KVM_REG_PPC_ICP_STATE


def num(tok: str) -> int:
    if tok in NAMES:
        return NAMES[tok]
    return int(tok, 0)


class Err:
    """A result that is a failure (compared by errno number: EOPNOTSUPP is
    ENOTSUP on Linux)."""

    def __init__(self, err: int | str):
        self.errno = getattr(errno, err.lstrip("-")) if isinstance(err, str) else err

    def __eq__(self, other):
        return isinstance(other, Err) and other.errno == self.errno

    def __hash__(self):
        return hash(self.errno)

    def __str__(self):
        names = [n for n, v in vars(errno).items() if n.startswith("E") and v == self.errno]
        return "-" + (max(names, key=len) if names else str(self.errno))

    __repr__ = __str__


def slug(title: str) -> str:
    t = title.lower().replace("ibm,", "")
    return re.sub(r"[^a-z0-9]+", "_", t).strip("_")


def scenario_test_name(sc: dict) -> str:
    return f"test_x{sc['id'][2:]}_{slug(sc['title'])}"


# ---------------------------------------------------------------------------
# The interpreter


class ScenarioFailure(AssertionError):
    pass


class Runner:
    def __init__(self, factory, sc: dict):
        self.factory = factory
        self.sc = sc
        self.devs: dict[str, object] = {}
        self.rises: dict[tuple[str, int], list] = {}  # (dev, server) -> [fd, count]
        self.resamples: dict[tuple[str, int], list] = {}
        self.fds: list[int] = []
        self.where = "setup"

    # -- devices and eventfds ----------------------------------------------------
    def dev(self, name: str):
        if name not in self.devs:
            self.devs[name] = self.factory()
        return self.devs[name]

    def eventfd(self) -> int:
        fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.fds.append(fd)
        return fd

    @staticmethod
    def drain(entry: list) -> int:
        try:
            entry[1] += os.eventfd_read(entry[0])
        except BlockingIOError:
            pass
        return entry[1]

    def close(self) -> None:
        for d in self.devs.values():
            with contextlib.suppress(OSError):
                d.close()
        for fd in self.fds:
            os.close(fd)

    # -- operations ----------------------------------------------------------------
    def op(self, text: str):
        """Run one operation in the doc's notation; returns the result as a
        list of tokens (ints, or Err('-ENAME'), or 'yes'/'no')."""
        name, _, rest = text.partition(" ")
        devname = "A"
        if re.match(r"^[A-C]\.", name):
            devname, name = name[0], name[2:]
        a = rest.split()
        try:
            return self._op(devname, name, a)
        except OSError as e:
            if e.errno is None:
                raise
            return [Err(e.errno)]

    def _op(self, devname: str, name: str, a: list[str]):
        d = self.dev(devname)
        if name == "connect":
            server = num(a[0])
            d.connect_vcpu(server)
            fd = self.eventfd()
            d.set_output(server, fd)  # "attached right after connect S"
            self.rises[(devname, server)] = [fd, 0]
            return [0]
        if name == "ics":
            assert a[2] in ("edge", "level"), a
            d.create_ics(num(a[0]), num(a[1]), a[2] == "level")
            return [0]
        if name == "line":
            d.irq_line(num(a[0]), num(a[1]))
            return [0]
        if name == "get_src":
            return [d.get_source(num(a[0]))]
        if name == "set_src":
            d.set_source(num(a[0]), num(a[1]))
            return [0]
        if name == "has_src":
            return [0] if d.has_source(num(a[0])) else [Err("-ENXIO")]
        if name == "get_icp":
            return [d.get_icp(num(a[0]))]
        if name == "set_icp":
            d.set_icp(num(a[0]), num(a[1]))
            return [0]
        if name == "xirr":
            st, r4, _, _ = d.hcall(num(a[0]), lib.IRQD_H_XIRR)
            return [st, r4] if st == 0 else [st]
        if name == "xirr_x":
            st, r4, r5, _ = d.hcall(num(a[0]), lib.IRQD_H_XIRR_X)
            return [st, r4, r5] if st == 0 else [st]
        if name == "eoi":
            return [d.hcall(num(a[0]), lib.IRQD_H_EOI, num(a[1]))[0]]
        if name == "cppr":
            return [d.hcall(num(a[0]), lib.IRQD_H_CPPR, num(a[1]))[0]]
        if name == "ipi":
            return [d.hcall(num(a[0]), lib.IRQD_H_IPI, num(a[1]), num(a[2]))[0]]
        if name == "ipoll":
            st, r4, r5, _ = d.hcall(num(a[0]), lib.IRQD_H_IPOLL, num(a[1]))
            return [st, r4, r5] if st == 0 else [st]
        if name == "hcall":
            return [d.hcall(num(a[0]), num(a[1]))[0]]
        if name == "set_xive":
            return d.rtas(lib.IRQD_RTAS_SET_XIVE, [num(x) for x in a], 1)[:1]
        if name == "get_xive":
            st, server, prio = d.rtas(lib.IRQD_RTAS_GET_XIVE, [num(a[0])], 3)
            return [st, server & 0xFFFFFFFF, prio & 0xFFFFFFFF] if st == 0 else [st]
        if name == "int_off":
            return d.rtas(lib.IRQD_RTAS_INT_OFF, [num(a[0])], 1)[:1]
        if name == "int_on":
            return d.rtas(lib.IRQD_RTAS_INT_ON, [num(a[0])], 1)[:1]
        if name == "rtas":
            token, nargs, nret = num(a[0]), num(a[1]), num(a[2])
            return d.rtas(token, [num(x) for x in a[3:]], nret, nargs)[:1]
        if name == "irqfd":
            assert a[1:] == ["resample"], a
            gsi = num(a[0])
            trig, res = self.eventfd(), self.eventfd()
            d.irqfd(gsi, trig, res)
            self.resamples[(devname, gsi)] = [res, 0]
            return [0]
        if name == "migrate":
            return self.migrate(a[0], a[1])
        if name == "same":
            return ["yes" if self.dev(a[0]).dump() == self.dev(a[1]).dump() else "no"]
        # queries
        if name == "out":
            w = d.get_icp(num(a[0]))
            cppr, xisr, ppri = w >> 56, (w >> 32) & 0xFFFFFF, (w >> 16) & 0xFF
            return [1 if xisr != 0 and ppri < cppr else 0]
        if name == "rises":
            return [self.drain(self.rises[(devname, num(a[0]))])]
        if name == "resamples":
            return [self.drain(self.resamples[(devname, num(a[0]))])]
        raise AssertionError(f"unknown operation {name!r}")

    def migrate(self, src: str, dst: str):
        """S3.17 by a plain sequence of operations (not restore())."""
        state = self.dev(src).dump()
        for server in sorted(state.icps):
            got = self.op(f"{dst}.connect {server}")
            if got != [0]:
                return got
        d = self.dev(dst)
        for irq in sorted(state.sources):
            d.set_source(irq, state.sources[irq])
        for server in sorted(state.icps):
            d.set_icp(server, state.icps[server])
        return [0]

    # -- checking --------------------------------------------------------------------
    @staticmethod
    def parse_expected(text: str) -> list:
        out = []
        for tok in text.split():
            if tok in STATUS:
                out.append(STATUS[tok])
            elif tok.startswith("-E"):
                out.append(Err(tok))
            elif tok in ("tb", "yes", "no"):
                out.append(tok)
            else:
                out.append(int(tok, 0))
        return out

    @staticmethod
    def fmt(got: list, expected_text: str) -> str:
        hexy = "0x" in expected_text
        parts = []
        for g in got:
            if isinstance(g, int) and not isinstance(g, bool):
                if g in STATUS_NAME and expected_text.split()[0].startswith("H_"):
                    parts.append(STATUS_NAME[g])
                    continue
                parts.append(f"{g:#x}" if hexy and g >= 0 else str(g))
            else:
                parts.append(str(g))
        return " ".join(parts)

    def check(self, label: str, text: str, expected_text: str) -> None:
        got = self.op(text)
        exp = self.parse_expected(expected_text)
        ok = len(got) == len(exp) and all(
            e == "tb" or (type(e) is type(g) and e == g) for e, g in zip(exp, got)
        )
        if not ok:
            raise ScenarioFailure(
                f"{self.sc['id']} {self.sc['title']}\n  {label}: `{text}`\n"
                f"  expected: {expected_text}\n  got:      {self.fmt(got, expected_text)}"
                + (f"\n  note: {self.sc['notes']}" if self.sc["notes"] else "")
            )

    def setup(self, items: list[str]) -> None:
        for item in items:
            if item in MACROS:
                self.setup(MACROS[item])
                continue
            got = self.op(item)
            if not got or got[0] != 0:
                raise ScenarioFailure(
                    f"{self.sc['id']} setup `{item}` must succeed, got {self.fmt(got, '0x')}"
                )

    def run(self) -> None:
        self.dev("A")
        self.setup(self.sc["setup"])
        for i, (text, expected) in enumerate(self.sc["steps"], 1):
            self.check(f"step {i}", text, expected)
        for query, expected in self.sc["expect"]:
            self.check("expect", query, expected)


def run_scenario(sc: dict, factory) -> None:
    r = Runner(factory, sc)
    try:
        r.run()
    finally:
        r.close()


def _device_factory(make_device):
    """conftest's make_device is a factory of fresh devices."""
    return make_device


@pytest.fixture
def model_device():
    devs = []

    def make():
        d = XicsModel()
        devs.append(d)
        return d

    yield make
    for d in devs:
        d.close()


def _generate() -> None:
    g = globals()
    for sc in SCENARIOS:
        name = scenario_test_name(sc)

        def backend_test(make_device, sc=sc):
            run_scenario(sc, _device_factory(make_device))

        def model_test(model_device, sc=sc):
            run_scenario(sc, model_device)

        for fn, fname in ((backend_test, name), (model_test, name + "_model")):
            fn.__name__ = fn.__qualname__ = fname
            fn.__doc__ = f"{sc['id']} {sc['title']}"
            assert fname not in g, f"duplicate test name {fname}"
            g[fname] = fn


_generate()


# ---------------------------------------------------------------------------
# The data itself


def test_scenario_data_is_complete():
    ids = [sc["id"] for sc in SCENARIOS]
    assert ids == [f"X-{i:03d}" for i in range(1, 71)]
    names = [scenario_test_name(sc) for sc in SCENARIOS]
    assert len(set(names)) == 70
    assert all(re.fullmatch(r"test_x\d{3}_[a-z0-9_]+", n) for n in names)
    assert "test_x016_msi_fired_while_masked_is_presented_on_int_on" in names
    for sc in SCENARIOS:
        assert sc["steps"] and sc["expect"], sc["id"]


def test_scenario_data_matches_doc():
    if not DOC.exists():
        pytest.skip(
            f"{DOC} not present next to the checkout; cannot compare the committed "
            "scenario data with the semantics doc"
        )
    spec = importlib.util.spec_from_file_location(
        "extract_scenarios", ROOT / "tools" / "extract_scenarios.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    fresh = mod.parse(DOC.read_text(encoding="utf-8"))
    assert fresh == SCENARIOS, (
        "tests/scenarios.py is stale: regenerate it with "
        "`python tools/extract_scenarios.py > tests/scenarios.py`"
    )
    assert (ROOT / "tests" / "scenarios.py").read_text() == mod.render(fresh)
