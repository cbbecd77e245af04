"""Direct tests of the reference model's primitives (tests/model.py), and
of the scenario interpreter's ability to catch a wrong implementation."""

from __future__ import annotations

import errno
import os

import pytest
from irqd._core import lib
from model import MASKED, XICS_IPI, XicsModel
from scenarios import SCENARIOS
from test_scenarios import ScenarioFailure, run_scenario

from irqd.backend import DeviceState

H_CPPR, H_EOI, H_XIRR = lib.IRQD_H_CPPR, lib.IRQD_H_EOI, lib.IRQD_H_XIRR


def live(servers=(0,), cppr=0xFF) -> XicsModel:
    m = XicsModel()
    for s in servers:
        m.connect_vcpu(s)
        m.hcall(s, H_CPPR, cppr)
    m.create_ics(16, 16)
    return m


def test_try_to_deliver_is_strict_on_all_three_priorities():
    m = live()
    icp = m.icps[0]
    icp.cppr, icp.mfrr, icp.pending_pri = 5, 6, 7
    assert m._try_to_deliver(icp, 16, 5) == (False, 0) and icp.need_resend == 1
    icp.need_resend = 0
    icp.cppr = 0xFF
    assert m._try_to_deliver(icp, 16, 6) == (False, 0)  # not below MFRR
    assert m._try_to_deliver(icp, 16, 5) == (True, 0)
    assert (icp.xisr, icp.pending_pri, icp.out_ee, icp.rises) == (16, 5, 1, 1)
    assert m._try_to_deliver(icp, 17, 5) == (False, 0)  # equal pending priority
    assert m._try_to_deliver(icp, 17, 4) == (True, 16)
    assert icp.rises == 1  # the output stayed up: no new transition


def test_delivery_to_a_server_without_icp_is_dropped():
    m = live()
    m.set_source(16, 0x0000000500000000 | 0)  # server 0, priority 5
    s = m._entry(16)
    s.server = 9  # no ICP 9
    m.irq_line(16, lib.IRQD_KVM_INTERRUPT_SET)
    assert (s.pq, s.resend, s.masked_pending) == (1, 0, 0)
    assert m.icps[0].need_resend == 0


def test_masked_delivery_becomes_masked_pending_even_for_a_resend():
    m = live()
    m.set_xive(16, 0, 5)
    s = m._entry(16)
    s.resend = 1
    m.icps[0].resend_map |= 1
    m.icps[0].need_resend = 1
    m.int_off(16)
    assert s.resend == 1  # int-off does not clear resend (priority 0xFF)
    m.hcall(0, H_EOI, 0xFF000002)  # Down_CPPR -> scan -> masked
    assert (s.resend, s.masked_pending) == (0, 1)
    assert m.icps[0].resends == 1


def test_resend_scan_sees_a_higher_ics_flagged_during_the_scan():
    m = live()
    m.create_ics(1030, 2)
    m.set_xive(16, 0, 5)
    m.set_xive(1030, 0, 4)
    icp = m.icps[0]
    # 16 waits in resend; 1030 waits in resend too but its bit is set only
    # by a failure during the scan of ICS 0.
    m._entry(16).resend = 1
    icp.resend_map = 1
    icp.need_resend = 1
    icp.cppr = 0xFF
    orig = m._deliver

    def deliver(hint, irq, check):
        orig(hint, irq, check)
        if irq == 16 and not m._entry(1030).resend:
            m._entry(1030).resend = 1
            icp.resend_map |= 1 << 1

    m._deliver = deliver
    m._check_resend(icp)
    assert icp.xisr == 1030 and m._entry(16).resend == 1  # 1030 displaced 16, 16 failed again
    assert icp.resend_map == 1  # ICS 0's bit set again by that failure


def test_write_xive_tests_the_32_bit_priority():
    m = live()
    s = m._entry(16)
    s.masked_pending = 1
    assert m._write_xive(s, 0, 0x1FF, 0x1FF) is True
    assert (s.priority, s.saved_priority, s.masked_pending) == (MASKED, MASKED, 0)
    s.masked_pending = 1
    assert m._write_xive(s, 0, MASKED, 5) is False and s.masked_pending == 1


def test_down_cppr_puts_the_ipi_over_an_external_without_reject():
    m = live()
    icp = m.icps[0]
    icp.cppr, icp.xisr, icp.pending_pri, icp.mfrr = 0, 16, 5, 3
    m._down_cppr(icp, 0xFF)
    assert (icp.xisr, icp.pending_pri, icp.rejects, icp.ipis) == (XICS_IPI, 3, 0, 1)


def test_fresh_state_and_raw_export():
    m = XicsModel()
    m.connect_vcpu(5)
    assert m.get_icp(5) == 0x00000000FFFF0000
    m.create_ics(1030, 1, level=True)
    raw = m.raw_sources()
    assert len(raw) == 1024 and raw[0][0] == 1024 and raw[-1][0] == 2047
    assert raw[6] == (1030, 0, 0xFF, 0xFF, 0, 1, 1, 0, 0, 0, 0, 0)
    assert raw[7] == (1031, 0, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0)
    (icp,) = m.raw_icps()
    assert icp["server"] == 5 and icp["resend_map"] == [0] * 16 and icp["rises"] == 0
    assert m.info().nr_ics == 1 and m.info().nr_sources == 1 and m.info().nr_servers == 1


def test_failed_set_source_creates_no_ics():
    m = XicsModel()
    with pytest.raises(OSError) as e:
        m.set_source(16, 0x0000000500000007)
    assert e.value.errno == errno.EINVAL and m.ics == {}


def test_restore_is_all_or_nothing_and_needs_an_empty_device():
    good = DeviceState(sources={16: 0x00000C0500000000}, icps={0: 0xFF000000FFFF0000})
    m = XicsModel()
    m.restore(good)
    assert m.dump() == good
    assert m.raw_icps()[0]["need_resend"] == 1  # step 2's failed delivery (S3.17)
    with pytest.raises(OSError) as e:
        m.restore(good)
    assert e.value.errno == errno.EEXIST and m.dump() == good
    bad = DeviceState(sources={16: 0x0000000500000000}, icps={0: 0xFF000000FF050000})
    n = XicsModel()
    with pytest.raises(OSError) as e:
        n.restore(bad)
    assert e.value.errno == errno.EINVAL
    assert n.dump() == DeviceState() and n.ics == {} and n.icps == {}


def test_set_output_signals_at_once_when_already_asserted():
    m = live()
    m.set_xive(16, 0, 5)
    m.irq_line(16, 1)
    fd = os.eventfd(0, os.EFD_NONBLOCK)
    try:
        m.set_output(0, fd)
        assert os.eventfd_read(fd) == 1
        m.hcall(0, H_XIRR)
        m.hcall(0, H_EOI, 0xFF000010)
        m.irq_line(16, 1)
        assert os.eventfd_read(fd) == 1
        with pytest.raises(OSError) as e:
            m.set_output(3, fd)
        assert e.value.errno == errno.ENOENT
    finally:
        m.close()
        os.close(fd)


def test_resample_resets_an_lsi_after_its_redelivery():
    m = live()
    m.create_ics(32, 1, level=True)
    m.set_xive(32, 0, 5)
    trig, res = os.eventfd(0, os.EFD_NONBLOCK), os.eventfd(0, os.EFD_NONBLOCK)
    try:
        m.irqfd(32, trig, res)
        m.irq_line(32, 1)
        assert m.hcall(0, H_XIRR)[1] == 0xFF000020
        m.hcall(0, H_EOI, 0xFF000020)
        assert m.get_icp(0) == 0xFF000020FF050000  # re-presented first
        assert m._entry(32).pq == 0 and os.eventfd_read(res) == 1
        os.eventfd_write(trig, 3)
        m.hcall(0, H_XIRR)
        m.hcall(0, H_EOI, 0xFF000020)  # pq 0: no re-presentation now
        assert m.pump() == 1 and m._entry(32).pq == 1  # the trigger asserted it again
        assert m.stats().sources[32] == (2, 3)  # two asserts; three presentations
    finally:
        m.close()
        os.close(trig)
        os.close(res)


# -- the interpreter catches wrong behaviour ------------------------------------


class EqualPriorityDisplaces(XicsModel):
    """A wrong model: an interrupt of equal priority displaces the pending one."""

    def _try_to_deliver(self, icp, irq, prio):
        return super()._try_to_deliver(icp, irq, max(prio - 1, 0) if icp.xisr else prio)


class NoQueue(XicsModel):
    """A wrong model: QEMU-like, no Q coalescing (QUIRK-1)."""

    def _irq_line(self, irq, level):
        s = self._entry(irq)
        if s is not None and not s.lsi:
            s.pq &= 1
            if s.pq:
                s.pq = 0
        return super()._irq_line(irq, level)


@pytest.mark.parametrize(
    "wrong, sid, where", [(EqualPriorityDisplaces, "X-023", "step 3"), (NoQueue, "X-009", "step 4")]
)
def test_interpreter_reports_scenario_step_expected_and_got(wrong, sid, where):
    sc = next(s for s in SCENARIOS if s["id"] == sid)
    with pytest.raises(ScenarioFailure) as e:
        run_scenario(sc, wrong)
    msg = str(e.value)
    assert sid in msg and where in msg and "expected:" in msg and "got:" in msg
    run_scenario(sc, XicsModel)  # the right model passes the same scenario
