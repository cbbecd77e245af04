"""Live migration of the simulated VM's XICS (irqd.sim) and the restore it
relies on (abi.md RESTORE_BEGIN / COMMIT, xics-semantics.md S3.17).

* mid-run between two daemons (two sockets, two processes): nothing lost or
  duplicated, DUMP_STATE of A when stopped equals B's after the restore, and
  what was in flight (presented, in service, queued, pending) is delivered
  on B after the resume;
* the same between two in-process devices and across backends;
* a restore into a device that is not empty, or of corrupt words, fails with
  the right errno and leaves the target exactly as it was.
"""

from __future__ import annotations

import errno

import pytest

from irqd.backend import SET, DeviceState
from irqd.client import Client
from irqd.errors import IrqdError
from irqd.sim import Config, DaemonBackend, InprocBackend, Sim, SimError

COUNT = 20_000


def _migrating_run(src, dst, mode: str, count: int = COUNT, seed: int = 5) -> tuple[Sim, dict]:
    cfg = Config(vcpus=4, msi=64, lsi=8, ipis=True, mask=True, count=count, seconds=90, seed=seed)
    sim = Sim(src, cfg)
    try:
        r = sim.run(migrate_to=dst, migrate_at=0.5, mode=mode)
    finally:
        sim.close()
    return sim, r


def _assert_clean_migration(r: dict) -> dict:
    assert r["failures"] == [] and r["problems"] == []
    for kind in ("msi", "lsi", "ipi"):
        assert r[kind]["lost"] == 0, (kind, r[kind])
        assert r[kind]["duplicated"] == 0, (kind, r[kind])
    assert r["msi"]["delivered"] + r["msi"]["coalesced"] == r["msi"]["fired"]
    assert r["lsi"]["serviced"] == r["lsi"]["fired"]
    assert r["ipi"]["handled"] == r["ipi"]["fired"]
    assert r["drained_idle"] and r["ok"]
    (m,) = r["migrations"]
    assert m["equal"], m.get("diff")
    assert m["sources"] == 72 and m["icps"] == 4
    # all that was in flight arrived on B after the resume
    assert m["inflight_delivered_after"]["ok"], m["inflight_delivered_after"]
    inf = m["inflight"]
    if m["mode"] == "stop":
        # stopped under load, mid-flight: there was something to carry
        assert len(inf["queued"]) + len(inf["pending"]) + len(inf["presented"]) + len(inf["in_service"]) > 0
        assert m["inflight_delivered_after"]["checked"] > 0
    else:
        assert m["drain_dumps"] >= 1
    assert 0 < m["downtime_ns"] <= m["device_pause_ns"]
    return m


@pytest.mark.parametrize("mode", ["stop", "drain"])
def test_migration_mid_run_between_two_daemons_loses_nothing(daemon, fresh_daemon, mode):
    assert daemon.proc.pid != fresh_daemon.proc.pid and daemon.path != fresh_daemon.path
    before_a = {d.handle for d in Client(daemon.path).list_devices()}
    sim, r = _migrating_run(DaemonBackend(daemon.path), DaemonBackend(fresh_daemon.path), mode)
    m = _assert_clean_migration(r)
    assert m["from"] == f"daemon {daemon.path}" and m["to"] == f"daemon {fresh_daemon.path}"
    assert r["fired_total"] == COUNT
    # traffic ran on both sides of the migration
    t_resume = sim.migrations[0]["t"]["resume"]
    t_freeze = sim.migrations[0]["t"]["freeze"]
    accepts = [a for v in sim.vcpus for (a, _, _) in v.log]
    assert any(a < t_freeze for a in accepts) and any(a > t_resume for a in accepts)
    # A's device went away with the VM; nothing is left on either daemon
    assert {d.handle for d in Client(daemon.path).list_devices()} <= before_a
    assert Client(fresh_daemon.path).list_devices() == []


def test_migration_between_in_process_devices():
    _, r = _migrating_run(InprocBackend(), InprocBackend(), "stop", count=30_000)
    _assert_clean_migration(r)


def test_migration_from_in_process_device_to_daemon(daemon):
    _, r = _migrating_run(InprocBackend(), DaemonBackend(daemon.path), "drain", count=10_000)
    _assert_clean_migration(r)


def test_refused_restore_keeps_the_vm_running_on_a(daemon):
    """A target that already has sources refuses the state (EEXIST); the VM
    carries on on A and nothing is lost."""

    class Occupied(DaemonBackend):
        def create(self):
            dev = super().create()
            dev.create_ics(16, 1)
            return dev

    cfg = Config(count=6000, seconds=60, seed=9)
    sim = Sim(InprocBackend(), cfg)
    try:
        sim.start()
        sim.wait_fired(3000)
        with pytest.raises(SimError, match="still running on inproc") as ei:
            sim.migrate(Occupied(daemon.path), "stop")
        assert isinstance(ei.value.__cause__, IrqdError) and ei.value.__cause__.errno == errno.EEXIST
        sim.wait_fired(cfg.count)
        r = sim.account(sim.drain())
    finally:
        sim.close()
    assert r["ok"], r["problems"]
    assert r["fired_total"] == cfg.count and r["migrations"] == []


# -- restore errors leave the target unchanged (both backends) ----------------------------


def _state_in_flight(make_device) -> DeviceState:
    """X-065's device A: 16 presented with a queued occurrence, 18
    masked-pending, 19 in resend, LSI 32 in service on server 1."""
    a = make_device()
    for s in (0, 1):
        a.connect_vcpu(s)
        assert a.h_cppr(s, 0xFF) == 0
    a.create_ics(16, 16)
    a.create_ics(32, 16, level=True)
    assert [a.set_xive(16, 0, 5), a.set_xive(18, 1, 6), a.int_off(18), a.set_xive(19, 0, 7),
            a.set_xive(32, 1, 4)] == [0] * 5
    for irq in (16, 16, 18, 19):
        a.irq_line(irq, SET)
    a.irq_line(32, 1)
    assert a.h_xirr(1) == (0, 0xFF000020)
    st = a.dump()
    assert st.sources[16] == 0x0000180500000000 and st.icps[1] == 0x04000000FFFF0000
    return st


def _snapshot(dev) -> tuple:
    i = dev.info()
    return dev.dump(), i.nr_ics, i.nr_sources, i.nr_servers, i.generation


def test_restore_into_a_configured_device_fails_eexist_and_changes_nothing(make_device):
    state = _state_in_flight(make_device)
    b = make_device()
    b.connect_vcpu(0)
    b.create_ics(16, 4)
    assert b.set_xive(17, 0, 5) == 0
    b.irq_line(17, SET)
    before = _snapshot(b)
    with pytest.raises(IrqdError) as ei:
        b.restore(state)
    assert ei.value.errno == errno.EEXIST
    assert _snapshot(b) == before


def test_restore_into_a_device_with_only_an_icp_fails_eexist(make_device):
    state = _state_in_flight(make_device)
    b = make_device()
    b.connect_vcpu(3)
    before = _snapshot(b)
    with pytest.raises(IrqdError) as ei:
        b.restore(state)
    assert ei.value.errno == errno.EEXIST
    assert _snapshot(b) == before


CORRUPT = [
    # (what, change to the saved state, errno)
    ("ICP word: pending priority without XISR", ("icp", 0, 0xFF000000FF050000), errno.EINVAL),
    ("ICP word: IPI with pending priority != MFRR", ("icp", 1, 0xFF00000205040000), errno.EINVAL),
    ("ICP word: XISR of an ICS that does not exist", ("icp", 0, 0xFF000800FF050000), errno.EINVAL),
    ("ICP word: external interrupt not below CPPR", ("icp", 0, 0x05000010FF050000), errno.EINVAL),
    ("source routed to a server without ICP", ("src", 20, 0x0000000500000009), errno.EINVAL),
    ("source number below 16", ("src", 15, 0x0000000500000000), errno.ENOENT),
    ("source number past the last ICS", ("src", 1 << 20, 0x0000000500000000), errno.ENOENT),
]


@pytest.mark.parametrize("what,change,err", CORRUPT, ids=[c[0] for c in CORRUPT])
def test_restore_of_corrupt_words_fails_and_leaves_the_target_empty(make_device, what, change, err):
    good = _state_in_flight(make_device)
    bad = DeviceState(dict(good.sources), dict(good.icps))
    kind, key, word = change
    (bad.icps if kind == "icp" else bad.sources)[key] = word
    b = make_device()
    before = _snapshot(b)
    with pytest.raises(IrqdError) as ei:
        b.restore(bad)
    assert ei.value.errno == err, ei.value
    assert _snapshot(b) == before
    assert before[0] == DeviceState() and before[1:4] == (0, 0, 0)
    # the failed restore ended: the good state goes in, word for word
    b.restore(good)
    assert b.dump() == good
