"""Smoke test of `make bench`: every benchmark program builds and, run for a
tiny time, prints well-formed positive figures; the driver's parsing and goal
logic are right.  No timing goal is asserted here (that is `make bench`'s job).
"""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location("bench_run", os.path.join(ROOT, "bench", "run.py"))
run = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(run)

TINY = "0.02"  # seconds per figure


@pytest.fixture(scope="module")
def exe():
    built, errors = run.build(verbose=False)
    assert errors == {}, errors
    return built


def positive(figs: dict, name: str, unit: str) -> float:
    assert name in figs, f"{name} missing from {sorted(figs)}"
    v = figs[name]["value"]
    assert figs[name]["unit"] == unit
    assert math.isfinite(v) and v > 0, f"{name} = {v}"
    return v


def test_parse_accepts_figures_and_skips_and_rejects_garbage():
    figs, skipped = run.parse("a_b 1.5 ns\nskipped: kvm_x: /dev/kvm absent\nc 2e+06 M/s\n")
    assert figs == {"a_b": {"value": 1.5, "unit": "ns"}, "c": {"value": 2e6, "unit": "M/s"}}
    assert skipped == {"kvm_x": "/dev/kvm absent"}
    with pytest.raises(ValueError):
        run.parse("a 1 ns extra\n")
    with pytest.raises(ValueError):
        run.parse("a notanumber ns\n")


def test_goals_compare_figures_of_the_run():
    f = {
        k: {"value": v, "unit": "-"}
        for k, v in {
            "kvm_irq_line": 250.0,  # 4 M ioctls/s
            "irqd_batch1000_same": 12.0,  # 12 M/s: 3.0x -> PASS (boundary)
            "irqd_batch1000_cross": 11.9,  # 2.975x -> MISS
            "irqd_rtt_same": 6.0,
            "floor_rtt_same": 5.0,  # 1.2x -> PASS
            "irqd_rtt_cross": 61.0,
            "floor_rtt_cross": 50.0,  # 1.22x -> MISS
            "irqd_oneway_same": 0.5,
            "floor_oneway_same": 1.0,  # 0.5x -> PASS
            "core_cycle_c": 101.0,  # > 100 ns -> MISS
            "core_cycle_model": 5050.0,  # 50x -> PASS
            "mem_per_source": 16.0,  # PASS
            "irqd_clients_served_same": 255.0,
            "irqd_clients_total_same": 256.0,
            "irqd_clients_median_same": 10.0,
            "irqd_clients_p99_same": 99.0,
        }.items()
    }
    g = {x["name"]: x for x in run.ratios(f)}
    assert g["batch1000_vs_kvm_irq_line_same"]["result"] == "PASS"
    assert g["batch1000_vs_kvm_irq_line_same"]["value"] == pytest.approx(3.0)
    assert g["batch1000_vs_kvm_irq_line_cross"]["result"] == "MISS"
    assert g["rtt_vs_floor_same"]["result"] == "PASS"
    assert g["rtt_vs_floor_cross"]["result"] == "MISS"
    assert g["oneway_vs_floor_same"]["result"] == "PASS"
    assert g["oneway_vs_floor_cross"]["result"] == "N/A"  # a figure is missing
    assert g["core_cycle_c"]["result"] == "MISS"
    assert g["model_vs_core_cycle"]["value"] == pytest.approx(50.0)
    assert g["model_vs_core_cycle"]["result"] == "PASS"
    assert g["mem_per_source"]["result"] == "PASS"
    assert g["clients_served_same"]["result"] == "MISS"  # one client not served
    assert g["clients_p99_vs_median_same"]["result"] == "PASS"


def test_kvm_anchor(exe):
    figs, skipped = run.run_prog([exe["kvm_anchor"], "--seconds", TINY])
    if os.path.exists("/dev/kvm"):
        assert skipped == {}
        positive(figs, "kvm_irq_line", "ns/op")
        positive(figs, "kvm_irqfd_write", "ns/op")
    else:
        assert figs == {} and set(skipped) == {"kvm_irq_line", "kvm_irqfd_write"}


@pytest.mark.parametrize("tag,server_cpu", [("same", 0), ("cross", 1)])
def test_seqpacket_floor(exe, tag, server_cpu):
    if server_cpu not in os.sched_getaffinity(0):
        pytest.skip(f"CPU {server_cpu} is not usable here: no {tag} placement")
    figs, skipped = run.run_prog(
        [
            exe["seqpacket_floor"],
            "--client-cpu",
            "0",
            "--server-cpu",
            str(server_cpu),
            "--tag",
            tag,
            "--seconds",
            TINY,
        ]
    )
    assert skipped == {}
    positive(figs, f"floor_rtt_{tag}", "us")
    positive(figs, f"floor_server_cpu_rtt_{tag}", "us/request")
    positive(figs, f"floor_server_cpu_oneway_{tag}", "us/record")
    for kind in ("oneway", "batch64", "batch1000"):
        positive(figs, f"floor_{kind}_{tag}", "M/s")


def test_core_cycle(exe):
    figs, skipped = run.run_prog([exe["core_cycle"], "--seconds", TINY])
    assert skipped == {}
    positive(figs, "core_cycle_c", "ns")
    positive(figs, "core_batch1000_c", "ns/entry")
    positive(figs, "wire_irq_line_ack_c", "ns/record")
    positive(figs, "wire_batch1000_c", "ns/entry")
    positive(figs, "core_bytes_per_source", "B/source")


def test_cffi_and_model_cycles():
    figs, skipped = run.inproc("cffi", "0.01")  # in a child, as make bench runs it
    assert skipped == {}
    positive(figs, "core_cycle_cffi", "ns")
    figs, skipped = run.inproc("model", "0.01")
    assert skipped == {}
    positive(figs, "core_cycle_model", "ns")


@pytest.fixture(scope="module")
def bench_daemon():
    try:
        d = run.Daemon(cpu=0)
    except run.DaemonError as e:
        if "not built yet" in str(e):
            pytest.skip("the daemon is still the placeholder")
        raise
    yield d
    d.stop()


def test_irqd_bench(exe, bench_daemon):
    figs, skipped = run.run_prog(
        [
            exe["irqd_bench"],
            "--socket",
            bench_daemon.path,
            "--cpu",
            "0",
            "--tag",
            "same",
            "--seconds",
            TINY,
            "--clients",
            "8",
            "--rounds",
            "3",
            "--daemon-pid",
            str(bench_daemon.proc.pid),
        ]
    )
    assert skipped == {}
    positive(figs, "irqd_rtt_same", "us")
    for kind in ("oneway", "batch64", "batch1000"):
        positive(figs, f"irqd_{kind}_same", "M/s")
    positive(figs, "irqd_daemon_cpu_rtt_same", "us/request")
    positive(figs, "irqd_daemon_cpu_oneway_same", "us/record")
    positive(figs, "irqd_daemon_cpu_batch64_same", "ns/entry")
    positive(figs, "irqd_daemon_cpu_batch1000_same", "ns/entry")
    waited = figs["irqd_clients_daemon_waited_same"]
    assert waited["unit"] == "ms" and waited["value"] >= 0
    assert figs["irqd_clients_total_same"]["value"] == 8
    assert figs["irqd_clients_served_same"]["value"] == 8
    med = positive(figs, "irqd_clients_median_same", "us")
    assert positive(figs, "irqd_clients_p99_same", "us") >= med
    assert bench_daemon.alive()


def test_python_client_figures(bench_daemon):
    figs, skipped = run.run_prog(
        [
            run.VPY,
            os.path.join(ROOT, "bench", "run.py"),
            "--pyclient",
            bench_daemon.path,
            "same",
            "0",
            "--seconds",
            TINY,
        ]
    )
    assert skipped == {}
    positive(figs, "pyclient_rtt_same", "us")
    positive(figs, "pyclient_oneway_same", "M/s")


def test_irqd_bench_reports_a_daemon_that_is_not_there(exe, tmp_path):
    r = subprocess.run(
        [exe["irqd_bench"], "--socket", str(tmp_path / "nothing.sock"), "--seconds", TINY],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert r.returncode != 0
    assert "connect" in r.stderr and r.stdout == ""


def test_memory_figure(bench_daemon):
    figs, skipped = run.inproc("memory", "0")
    assert skipped == {}
    empty = positive(figs, "mem_rss_empty", "KiB")
    assert positive(figs, "mem_rss_full", "KiB") >= empty
    assert figs["mem_per_source"]["unit"] == "B/source"
    assert positive(figs, "mem_slope_per_source", "B/source") > 0
