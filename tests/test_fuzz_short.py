"""Short libFuzzer runs of each fuzz target (fuzz/), so a regression in the
record parser, the core, the trigger ring's consumer or the client's reply parser is caught by `make test`.

Each target runs FUZZ_SHORT_SECONDS (default 14; 4 targets, <= 60 s in all)
on a scratch corpus seeded from fuzz/corpus/<target>; any crash, sanitizer
report, leak or timeout fails it.  `make fuzz FUZZ_SECONDS=300` runs longer.
The executions per second each run reached are printed (pytest -s shows
them); they are not asserted, timing belongs to benchmarks.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "c"))
from c_support import ROOT, SANITIZER_RE, make  # noqa: E402

TARGETS = ["fuzz_wire", "fuzz_core", "fuzz_client", "fuzz_ring"]
# <= 60 s of fuzzing in all
SECONDS = min(int(os.environ.get("FUZZ_SHORT_SECONDS", "14")), 60 // len(TARGETS))


@pytest.fixture(scope="module")
def fuzz_build():
    make("fuzz-build")
    return ROOT / "fuzz" / "build"


def _stat(out: str, name: str) -> int:
    m = re.search(rf"^stat::{name}:\s+(\d+)", out, re.M)
    return int(m.group(1)) if m else -1


@pytest.mark.parametrize("target", TARGETS)
def test_fuzz_target_runs_clean(fuzz_build, target, tmp_path):
    seeds = ROOT / "fuzz" / "corpus" / target
    assert len(list(seeds.iterdir())) >= 5, f"{seeds}: too few committed seeds"
    work = tmp_path / "corpus"
    work.mkdir()
    cmd = [
        str(fuzz_build / target), f"-max_total_time={SECONDS}", "-timeout=10", "-rss_limit_mb=2048",
        "-print_final_stats=1", f"-artifact_prefix={tmp_path}/", str(work), str(seeds),
    ]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=SECONDS + 120)
    out = p.stdout + p.stderr
    crashes = sorted(str(a) for a in tmp_path.glob("*") if a.name.split("-")[0] in ("crash", "leak", "timeout", "oom"))
    m = SANITIZER_RE.search(out)
    assert p.returncode == 0 and not crashes and m is None, f"{target} found something: {crashes}\n{out[-6000:]}"
    execs = _stat(out, "number_of_executed_units")
    rate = _stat(out, "average_exec_per_sec")
    # every committed seed was loaded and run, then the fuzzer made progress
    assert execs > len(list(seeds.iterdir())), out[-3000:]
    print(f"{target}: {execs} executions in {SECONDS} s, {rate} exec/s, corpus {len(list(work.iterdir()))} new units")
