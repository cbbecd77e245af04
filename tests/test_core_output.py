"""The in-process backend's eventfd side and its state transfer:

* SET_OUTPUT: one count per 0 -> 1 transition of a server's output, one at
  once when attached while asserted, replaced / cleared cleanly;
* irqfd: trigger eventfds fired by pump() and by the helper thread, errors
  dropped and counted, RESAMPLE reset + signal at EOI (S3.12);
* raw export / import (restart) and dump / restore (migration) round trips.
"""

from __future__ import annotations

import os
import random
import select
import threading

import pytest
from irqd._core import ffi, lib

from irqd.backend import SET, DeviceState
from irqd.inproc import Xics

H_SUCCESS = lib.IRQD_H_SUCCESS


def count(fd: int) -> int:
    """Read an eventfd's count without blocking (0 if nothing)."""
    r, _, _ = select.select([fd], [], [], 0)
    return os.eventfd_read(fd) if r else 0


@pytest.fixture
def s0():
    """S0 of the scenarios, with server 0's output attached."""
    d = Xics()
    d.connect_vcpu(0)
    out = os.eventfd(0)
    d.set_output(0, out)
    d.create_ics(16, 16)
    d.create_ics(32, 16, level=True)
    assert d.h_cppr(0, 0xFF) == H_SUCCESS
    yield d, out
    d.close()
    os.close(out)


def rises(d: Xics, server: int) -> int:
    r = ffi.new("uint64_t *")
    assert lib.irqd_xics_output_rises(d._x, server, r) == 0
    return r[0]


# -- output ---------------------------------------------------------------------------


def test_output_counts_each_rise_once(s0):
    d, out = s0
    d.set_xive(16, 0, 5)
    d.set_xive(17, 0, 3)
    d.edge(16)
    assert count(out) == 1 and rises(d, 0) == 1
    d.edge(17)  # displaces 16 while the output stays asserted: no transition
    assert count(out) == 0
    assert d.h_xirr(0) == (H_SUCCESS, 0xFF000011)
    assert count(out) == 0
    assert d.h_eoi(0, 0xFF000011) == H_SUCCESS  # resend presents 16: a rise
    assert count(out) == 1 and rises(d, 0) == 2
    assert lib.irqd_xics_output_asserted(d._x, 0) == 1


def test_output_counts_rises_that_happen_in_one_call(s0):
    d, out = s0
    d.connect_vcpu(1)
    out1 = os.eventfd(0)
    d.set_output(1, out1)
    d.h_cppr(1, 0xFF)
    d.set_xive(16, 1, 5)
    d.edge(16)
    assert count(out1) == 1
    d.h_xirr(1)
    d.edge(16)  # queued
    assert d.h_cppr(1, 0xFF) == H_SUCCESS  # server 1 ready again (16 still P)
    # one EOI by server 0: Down_CPPR of server 0 presents its IPI and the
    # ICS EOI presents 16 again on server 1: one rise on each
    assert d.h_ipi(0, 0, 4) == H_SUCCESS
    assert count(out) == 1
    d.h_xirr(0)
    assert d.h_eoi(0, 0xFF000010) == H_SUCCESS
    assert count(out) == 1 and count(out1) == 1
    os.close(out1)


def test_set_output_while_asserted_signals_at_once_and_replaces(s0):
    d, out = s0
    d.set_xive(16, 0, 5)
    d.edge(16)
    assert count(out) == 1
    second = os.eventfd(0)
    d.set_output(0, second)  # replaces: the first one no longer counts
    assert count(second) == 1
    d.h_xirr(0)
    d.h_eoi(0, 0xFF000010)
    d.edge(16)
    assert count(second) == 1 and count(out) == 0
    d.clear_output(0)
    d.h_xirr(0)
    d.h_eoi(0, 0xFF000010)
    d.edge(16)
    assert count(second) == 0
    d.clear_output(0)  # nothing attached: fine
    os.close(second)


def test_output_fd_is_duplicated(s0):
    d, _ = s0
    mine = os.eventfd(0)
    d.set_output(0, mine)
    reader = os.dup(mine)
    os.close(mine)  # the caller may close its copy at once
    d.set_xive(16, 0, 5)
    d.edge(16)
    assert count(reader) == 1
    os.close(reader)


def test_rises_survive_many_cycles(s0):
    d, out = s0
    d.set_xive(16, 0, 5)
    for _ in range(200):
        d.edge(16)
        assert d.h_xirr(0) == (H_SUCCESS, 0xFF000010)
        assert d.h_eoi(0, 0xFF000010) == H_SUCCESS
    assert count(out) == 200 == rises(d, 0)
    assert lib.irqd_xics_output_seq(d._x) == 200


# -- irqfd ------------------------------------------------------------------------------


def test_pump_fires_each_readable_trigger_once(s0):
    d, out = s0
    d.set_xive(16, 0, 5)
    t16, t50 = os.eventfd(0), os.eventfd(0)
    d.irqfd(16, t16)
    d.irqfd(5000, t50)  # valid gsi, no source yet: dropped and counted
    assert d.pump() == 0
    os.eventfd_write(t16, 3)  # several counts are one trigger
    os.eventfd_write(t50, 1)
    assert d.pump() == 2
    assert d.get_source(16) == 0x0000080500000000
    assert d.stats().sources[16] == (1, 1)
    assert d.dropped_triggers == 1
    assert count(out) == 1
    assert count(t16) == 0  # consumed
    d.irqfd_deassign(16)
    os.eventfd_write(t16, 1)
    assert d.pump() == 0
    assert count(t16) == 1  # nobody reads a deassigned fd
    for fd in (t16, t50):
        os.close(fd)


def test_helper_thread_fires_triggers(s0):
    d, out = s0
    d.set_xive(17, 0, 5)
    t = os.eventfd(0)
    d.start()
    d.start()  # idempotent
    d.irqfd(17, t)
    os.eventfd_write(t, 1)
    # wait for the output (not a timing assertion: a generous bound)
    r, _, _ = select.select([out], [], [], 30)
    assert r and os.eventfd_read(out) == 1
    assert d.h_xirr(0) == (H_SUCCESS, 0xFF000011)
    d.stop()
    d.stop()
    os.close(t)


def test_resample_lsi_reset_after_redelivery_and_signalled(s0):
    d, _ = s0
    d.set_xive(32, 0, 5)
    trig, res = os.eventfd(0), os.eventfd(0)
    d.irqfd(32, trig, res)
    os.eventfd_write(trig, 1)
    assert d.pump() == 1
    assert d.get_source(32) == 0x00000D0500000000
    assert d.h_xirr(0) == (H_SUCCESS, 0xFF000020)
    assert d.h_eoi(0, 0xFF000020) == H_SUCCESS
    # presented again first (P was still set), then the line reset
    assert d.get_icp(0) == 0xFF000020FF050000
    assert d.get_source(32) == 0x0000010500000000
    assert count(res) == 1
    assert d.h_xirr(0) == (H_SUCCESS, 0xFF000020)
    assert d.h_eoi(0, 0xFF000020) == H_SUCCESS
    assert d.get_icp(0) == 0xFF000000FFFF0000
    assert count(res) == 1
    d.irqfd_deassign(32)
    d.level_set(32)
    d.h_xirr(0)
    d.h_eoi(0, 0xFF000020)
    assert count(res) == 0  # no longer flagged: no reset, no signal
    assert d.get_source(32) == 0x00000D0500000000
    os.close(trig)
    os.close(res)


def test_resample_registered_before_the_source_exists(s0):
    d, _ = s0
    trig, res = os.eventfd(0), os.eventfd(0)
    d.irqfd(3000, trig, res)
    d.create_ics(3000, 1, level=True)
    d.set_xive(3000, 0, 5)
    d.level_set(3000)
    assert d.h_xirr(0) == (H_SUCCESS, 0xFF000BB8)
    assert d.h_eoi(0, 0xFF000BB8) == H_SUCCESS
    assert count(res) == 1
    os.close(trig)
    os.close(res)


def test_acks_between_two_drains_coalesce_and_drain_is_ascending(s0):
    d, _ = s0
    x = d._x
    for irq in (40, 33, 2000):
        assert lib.irqd_xics_set_resample(x, irq, 1) == 0
    seq = lib.irqd_xics_ack_seq(x)
    for irq in (40, 33, 40, 2000, 1000):
        assert lib.irqd_xics_hcall(x, 0, lib.IRQD_H_EOI, ffi.new("uint64_t[4]", [0xFF000000 | irq])) == 0
    assert lib.irqd_xics_ack_seq(x) == seq + 3  # 2000 has no ICS, 1000 no flag
    buf = ffi.new("uint32_t[8]")
    assert lib.irqd_xics_drain_acks(x, buf, 2) == 2
    assert list(buf[0:2]) == [33, 40]
    assert lib.irqd_xics_drain_acks(x, buf, 8) == 0  # 2000: ICS 1 absent, no EOI
    assert lib.irqd_xics_set_resample(x, 40, 0) == 0


# -- restart: raw export / import -----------------------------------------------------------


def complex_device() -> Xics:
    d = Xics()
    for s in (0, 1, 2, 700):
        d.connect_vcpu(s)
    d.create_ics(16, 64)
    d.create_ics(100, 30, level=True)
    d.create_ics(5000, 10)
    d.h_cppr(0, 0xFF)
    d.h_cppr(1, 0x80)
    for irq, srv, pr in (
        (16, 0, 5),
        (17, 0, 6),
        (18, 1, 5),
        (19, 2, 5),
        (100, 1, 4),
        (5001, 0, 3),
        (20, 700, 5),
    ):
        d.set_xive(irq, srv, pr)
    d.int_off(21)
    for irq in (16, 16, 17, 18, 19, 21, 100, 5001, 20):
        d.edge(irq)
    d.h_ipi(0, 1, 2)
    d.h_xirr(1)
    d.set_source(60, 0x0000040900000002)  # PENDING on a blocked ICP -> resend
    d.rtas(lib.IRQD_RTAS_SET_XIVE, [15, 0, 9], 1)  # an unconfigured entry touched by RTAS
    for irq in (100, 17):
        assert lib.irqd_xics_set_resample(d._x, irq, 1) == 0
    assert lib.irqd_xics_set_resample(d._x, 9000, 1) == 0  # no ICS 8: not exported
    return d


def test_export_import_round_trip_is_identical():
    a = complex_device()
    src, icp = a.export_raw()
    assert any(s["resend"] for s in src) and any(s["masked_pending"] for s in src)
    assert any(i["need_resend"] for i in icp) and any(any(i["resend_map"]) for i in icp)
    assert len(src) == 2 * 1024  # every entry of every existing ICS
    b = Xics()
    b.import_raw(src, icp)
    assert b.dump() == a.dump()
    assert b.export_raw() == (src, icp)
    assert b.stats() == a.stats()
    info_a, info_b = a.info(), b.info()
    assert (info_a.nr_ics, info_a.nr_sources, info_a.nr_servers) == (
        info_b.nr_ics,
        info_b.nr_sources,
        info_b.nr_servers,
    )
    # and it behaves the same from there on (resend scans, rejects, acks)
    rng = random.Random(7)
    for _ in range(400):
        op = rng.randrange(5)
        srv = rng.choice((0, 1, 2, 700))
        args = {
            0: ("hcall", srv, lib.IRQD_H_XIRR),
            1: ("hcall", srv, lib.IRQD_H_EOI, 0xFF000000 | rng.choice((16, 17, 18, 19, 100, 5001, 2))),
            2: ("hcall", srv, lib.IRQD_H_CPPR, rng.choice((0xFF, 0x80, 5, 3))),
            3: ("irq_line", rng.choice((16, 17, 18, 19, 20, 21, 100, 5001)), rng.choice((1, 0, SET))),
            4: ("hcall", srv, lib.IRQD_H_IPI, rng.choice((0, 1, 2)), rng.choice((2, 6, 0xFF))),
        }[op]
        for dev in (a, b):
            getattr(dev, args[0])(*args[1:])
        assert a.dump() == b.dump()
    assert a.export_raw() == b.export_raw()
    a.close()
    b.close()


def test_import_keeps_output_without_counting_a_rise():
    a = Xics()
    a.connect_vcpu(0)
    a.create_ics(16, 1)
    a.h_cppr(0, 0xFF)
    a.set_xive(16, 0, 5)
    a.edge(16)
    src, icp = a.export_raw()
    b = Xics()
    b.import_raw(src, icp)
    assert lib.irqd_xics_output_asserted(b._x, 0) == 1
    assert rises(b, 0) == 1  # carried, not re-counted
    out = os.eventfd(0)
    b.set_output(0, out)  # a restored vCPU must be woken
    assert count(out) == 1
    os.close(out)
    a.close()
    b.close()


# -- migration: dump / restore --------------------------------------------------------------------


def test_restore_reproduces_dump_and_generation_grows():
    a = complex_device()
    st = a.dump()
    b = Xics()
    g = b.generation
    out = os.eventfd(0)
    b.restore(st)
    assert b.dump() == st
    assert b.generation > g
    b.set_output(0, out)
    assert count(out) == 1  # server 0 has 16 presented
    os.close(out)
    a.close()
    b.close()


def test_restore_keeps_resample_registrations():
    d = Xics()
    trig, res = os.eventfd(0), os.eventfd(0)
    d.irqfd(32, trig, res)
    d.restore(DeviceState(sources={32: 0x0000010500000000}, icps={0: 0xFF000000FFFF0000}))
    d.level_set(32)
    assert d.h_xirr(0) == (H_SUCCESS, 0xFF000020)
    assert d.h_eoi(0, 0xFF000020) == H_SUCCESS
    assert count(res) == 1
    assert d.get_source(32) == 0x0000010500000000
    d.close()
    os.close(trig)
    os.close(res)


def test_concurrent_calls_and_output_signalling_are_consistent():
    """Several threads drive one server each; every rise is signalled
    exactly once to its own eventfd."""
    d = Xics()
    n = 4
    outs = []
    d.create_ics(16, n)
    for s in range(n):
        d.connect_vcpu(s)
        fd = os.eventfd(0)
        outs.append(fd)
        d.set_output(s, fd)
        d.h_cppr(s, 0xFF)
        d.set_xive(16 + s, s, 5)

    def vcpu(s):
        for _ in range(300):
            d.edge(16 + s)
            st, xirr = d.h_xirr(s)
            assert (st, xirr) == (H_SUCCESS, 0xFF000010 + s)
            d.h_eoi(s, xirr)

    ts = [threading.Thread(target=vcpu, args=(s,)) for s in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for s in range(n):
        assert count(outs[s]) == 300 == rises(d, s)
    d.close()
    for fd in outs:
        os.close(fd)
