"""A device with every valid source configured: 1,048,560 sources in 1024
ICS blocks (12 B per source in the core)."""

from __future__ import annotations

import errno

import pytest
from irqd._core import ffi, lib

from irqd.backend import SET
from irqd.errors import IrqdError
from irqd.inproc import Xics

FIRST, NR = lib.IRQD_KVMPPC_XICS_FIRST_IRQ, lib.IRQD_KVMPPC_XICS_NR_IRQS
ALL = NR - FIRST  # 1,048,560


@pytest.fixture(scope="module")
def full():
    d = Xics()
    d.create_ics(FIRST, ALL)
    d.connect_vcpu(0)
    d.connect_vcpu(lib.IRQD_MAX_SERVERS - 1)
    yield d
    d.close()


def test_every_source_configured(full):
    info = full.info()
    assert (info.nr_sources, info.nr_ics, info.nr_servers) == (ALL, 1024, 2)
    assert lib.irqd_xics_nr_sources(full._x) == 1048560
    for irq in (16, 1023, 1024, 524288, 1048575):
        assert full.get_source(irq) == 0x000002FF00000000
    with pytest.raises(IrqdError) as ei:
        full.create_ics(1048575, 1)
    assert ei.value.errno == errno.EEXIST
    with pytest.raises(IrqdError) as ei:
        full.get_source(15)
    assert ei.value.errno == errno.ENOENT


def test_full_device_delivers_and_resends_across_all_ics(full):
    top = lib.IRQD_MAX_SERVERS - 1
    irqs = [16, 1024 * 511 + 7, 1048575]
    for i, irq in enumerate(irqs):
        assert full.set_xive(irq, top, 5 + i) == 0
        full.edge(irq)  # CPPR 0: every one goes to resend, three ICS bits
    raw = ffi.new("struct irqd_xics_raw_source *")
    for irq in irqs:
        assert lib.irqd_xics_export_sources(full._x, irq, raw, 1) == 1
        assert raw.irq == irq and raw.resend == 1
    assert full.h_cppr(top, 0xFF) == lib.IRQD_H_SUCCESS  # one scan over 0..1023
    seen = []
    for _ in irqs:
        _, xirr = full.h_xirr(top)
        seen.append(xirr & 0xFFFFFF)
        assert full.h_eoi(top, 0xFF000000 | seen[-1]) == lib.IRQD_H_SUCCESS
    assert seen == irqs  # most favoured first: 5, 6, 7
    assert full.h_xirr(top) == (lib.IRQD_H_SUCCESS, 0xFF000000)


def test_full_device_dump_and_stats_cover_every_source(full):
    st = full.dump()
    assert len(st.sources) == ALL
    assert min(st.sources) == FIRST and max(st.sources) == NR - 1
    assert sorted(st.icps) == [0, lib.IRQD_MAX_SERVERS - 1]
    sbuf = ffi.new("struct irqd_source_stats[]", 65536)
    total, frm = 0, 0
    while n := lib.irqd_xics_source_stats(full._x, frm, sbuf, 65536):
        total += n
        frm = sbuf[n - 1].irq + 1
    assert total == ALL
    # chunked C readers resume exactly where they stopped
    buf = ffi.new("struct irqd_source_state[]", 1000)
    n = lib.irqd_xics_dump_sources(full._x, 1048000, buf, 1000)
    assert n == 576 and buf[0].irq == 1048000 and buf[n - 1].irq == 1048575


def test_full_device_batch_of_triggers(full):
    full.set_xive(2000, 0, 5)
    full.irq_line_batch([(2000, SET)] * 1000)
    one = ffi.new("struct irqd_source_stats *")
    assert lib.irqd_xics_source_stats(full._x, 2000, one, 1) == 1
    assert (one.irq, one.triggers, one.deliveries) == (2000, 1000, 0)
    assert full.get_source(2000) == 0x00001C0500000000  # resend (CPPR 0), P, Q
