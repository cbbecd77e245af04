"""The core stores a source in 12 bytes (a 32-bit word and the two GET_STATS
counters): priority and saved priority share one field, and a server that
does not fit the word's 17 bits lives in a per-block side array.  These are
the corners of that packing that the scenarios and the differential tests
do not reach: the kernel lets a masked source (priority field 0xFF) name any
u32 server, and GET must give it back unchanged.
"""

from __future__ import annotations

import errno

import pytest
from irqd._core import ffi, lib

from irqd.errors import IrqdError
from irqd.inproc import Xics

MASKED = lib.IRQD_KVM_XICS_MASKED
PRIO_SHIFT = lib.IRQD_KVM_XICS_PRIORITY_SHIFT
LEVEL = lib.IRQD_KVM_XICS_LEVEL_SENSITIVE
PRESENTED = lib.IRQD_KVM_XICS_PRESENTED
ESC = 0x1FFFF  # the first server that does not fit the stored word

BIG_SERVERS = (ESC - 1, ESC, ESC + 1, 0x7FFFFFFF, 0xFFFFFFFF)


def raw(dev: Xics, irq: int) -> dict:
    return next(s for s in dev.export_raw()[0] if s["irq"] == irq)


@pytest.fixture
def dev():
    d = Xics()
    d.connect_vcpu(0)
    d.create_ics(16, 64)
    d.create_ics(2048, 16, level=True)
    yield d
    d.close()


@pytest.mark.parametrize("server", BIG_SERVERS)
def test_masked_source_keeps_any_server(dev, server):
    word = server | 0xFF << PRIO_SHIFT | MASKED
    dev.set_source(20, word)
    assert dev.get_source(20) == word
    r = raw(dev, 20)
    assert (r["server"], r["priority"], r["saved_priority"]) == (server, 0xFF, 0xFF)
    # the same through DUMP_STATE and after INT_OFF (which keeps the server)
    assert dev.dump().sources[20] == word
    assert dev.int_off(20) == 0
    assert dev.get_source(20) == word
    # INT_ON needs an ICP there: refused, nothing changed
    assert dev.int_on(20) == lib.IRQD_RTAS_PARAM_ERROR
    assert dev.get_source(20) == word


def test_big_servers_are_kept_per_source_beside_ordinary_ones(dev):
    words = {}
    for i, server in enumerate(BIG_SERVERS):
        irq = 16 + 2 * i
        words[irq] = server | 0xFF << PRIO_SHIFT | MASKED
        dev.set_source(irq, words[irq])
    assert dev.set_xive(17, 0, 5) == 0  # an ordinary neighbour in the same block
    dev.set_source(2048, 0xFFFFFFFF | 0xFF << PRIO_SHIFT | LEVEL | PRESENTED)
    words[2048] = dev.get_source(2048)
    assert words[2048] & 0xFFFFFFFF == 0xFFFFFFFF and words[2048] & LEVEL and words[2048] & PRESENTED
    dev.edge(17)
    assert dev.h_cppr(0, 0xFF) == lib.IRQD_H_SUCCESS
    assert dev.h_xirr(0) == (lib.IRQD_H_SUCCESS, 0xFF000000 | 17)  # old CPPR, XISR
    for irq, word in words.items():
        assert dev.get_source(irq) == word
    # moving one of them back to an ordinary server leaves the others alone
    dev.set_source(18, 0 | 5 << PRIO_SHIFT)
    assert dev.get_source(18) == 5 << PRIO_SHIFT
    for irq, word in words.items():
        if irq != 18:
            assert dev.get_source(irq) == word


def test_restart_export_import_keeps_big_servers(dev):
    dev.set_source(21, 0xFFFFFFFF | 0xFF << PRIO_SHIFT | MASKED)
    dev.set_source(22, ESC | 0xFF << PRIO_SHIFT | MASKED)
    dev.set_source(23, 0x40000 | 0xFF << PRIO_SHIFT | LEVEL | PRESENTED)
    srcs, icps = dev.export_raw()
    other = Xics()
    try:
        other.import_raw(srcs, icps)
        assert other.export_raw() == (srcs, icps)
        for irq in (21, 22, 23):
            assert other.get_source(irq) == dev.get_source(irq)
    finally:
        other.close()


def test_set_source_unmasked_on_a_missing_server_is_refused(dev):
    before = dev.get_source(22)
    with pytest.raises(IrqdError) as e:
        dev.set_source(22, ESC | 0x03 << PRIO_SHIFT | MASKED)  # saved prio 3: server must exist
    assert e.value.errno == errno.EINVAL
    assert dev.get_source(22) == before


@pytest.mark.parametrize("prio,saved,ok", [(5, 5, True), (0xFF, 6, True), (0xFF, 0xFF, True),
                                           (5, 6, False), (5, 0xFF, False)])
def test_import_takes_only_states_the_core_can_make(dev, prio, saved, ok):
    """Unless masked, saved priority equals priority after every operation
    (write_xive, SET, CREATE_ICS, as in the kernel); the stored form relies
    on it, so a restart record that breaks it is refused and changes nothing."""
    src = ffi.new("struct irqd_xics_raw_source *",
                  {"irq": 30, "server": 0, "priority": prio, "saved_priority": saved, "exists": 1})
    gen = dev.generation
    before = raw(dev, 30)
    ret = lib.irqd_xics_import_source(dev._x, src)
    if ok:
        assert ret == 0
        r = raw(dev, 30)
        assert (r["priority"], r["saved_priority"]) == (prio, saved)
    else:
        assert ret == -errno.EINVAL
        assert raw(dev, 30) == before and dev.generation == gen
