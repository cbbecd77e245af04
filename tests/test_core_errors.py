"""Every failing operation of the in-process core answers its errno with a
message and changes nothing: generation, DUMP_STATE words, the complete raw
internal state and the stats are identical before and after.

Also: H_* / RTAS "failures" (H_PARAMETER, -3) that the semantics say change
nothing really change nothing.  Errnos are xics-semantics.md S3 as amended
by S7.
"""

from __future__ import annotations

import errno
import os

import pytest
from irqd._core import ffi, lib

from irqd.backend import SET, DeviceState
from irqd.errors import IrqdError
from irqd.inproc import Xics

H_SUCCESS = lib.IRQD_H_SUCCESS
H_PARAMETER = lib.IRQD_H_PARAMETER


def busy_device() -> Xics:
    """A device with something in every kind of state: presented, queued,
    resend, masked-pending, IPI pending, LSI asserted, need_resend set."""
    d = Xics()
    d.connect_vcpu(0)
    d.connect_vcpu(1)
    d.connect_vcpu(3)  # CPPR 0: deliveries to it fail into resend
    d.create_ics(16, 16)
    d.create_ics(32, 16, level=True)
    d.create_ics(2048, 4)
    assert d.h_cppr(0, 0xFF) == H_SUCCESS
    assert d.h_cppr(1, 0xFF) == H_SUCCESS
    for irq, server, prio in ((16, 0, 5), (17, 0, 6), (18, 1, 5), (19, 3, 5), (32, 1, 4), (2048, 0, 7)):
        assert d.set_xive(irq, server, prio) == 0
    assert d.int_off(20) == 0
    d.edge(16)
    d.edge(16)  # queued
    d.edge(17)  # resend behind 16
    d.edge(19)  # resend on server 3
    d.level_set(32)  # LSI presented on server 1
    d.edge(20)  # masked-pending
    assert d.h_ipi(0, 1, 2) == H_SUCCESS  # IPI displaces LSI 32 on server 1 -> resend
    d.edge(2048)
    return d


def snapshot(d: Xics):
    return (d.generation, d.dump(), d.export_raw(), d.stats(), d.info())


@pytest.fixture
def dev():
    d = busy_device()
    yield d
    d.close()


def fails(d: Xics, err: int, fn, *args):
    """Call fn(*args), expect IrqdError(err) with a message, nothing changed."""
    before = snapshot(d)
    with pytest.raises(IrqdError) as ei:
        fn(*args)
    assert ei.value.errno == err, ei.value
    assert ei.value.strerror and ei.value.strerror != os.strerror(err)  # our own message
    assert snapshot(d) == before
    return ei.value


def unchanged(d: Xics, fn, *args):
    before = snapshot(d)
    res = fn(*args)
    assert snapshot(d) == before
    return res


def test_busy_device_is_busy(dev):
    """The fixture really has the states the error tests must preserve."""
    assert dev.get_source(16) == 0x0000180500000000  # P + Q
    assert dev.get_source(17) == 0x00000C0600000000  # resend
    assert dev.get_source(20) == 0x00000EFF00000000  # masked-pending (int_off saved 0xFF)
    assert dev.get_source(32) == 0x00000D0400000001  # LSI asserted
    assert dev.get_icp(1) == 0xFF00000202020000  # IPI in XISR
    srcs, icps = dev.export_raw()
    assert any(i["need_resend"] for i in icps)
    assert any(s["resend"] for s in srcs)


# -- CREATE_ICS ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "first,count",
    [
        (0, 4),
        (15, 2),
        (16, 0),
        (1048575, 2),
        (1048576, 1),
        (0xFFFFFFF0, 0x20),
        (0xFFFFFFFF, 1),
        (16, 0xFFFFFFFF),
    ],
)
def test_create_ics_einval(dev, first, count):
    e = fails(dev, errno.EINVAL, dev.create_ics, first, count)
    assert str(first) in e.strerror


@pytest.mark.parametrize("first,count", [(10 + 6, 1), (40, 100), (2047, 2), (2051, 1), (1, 1 << 20)])
def test_create_ics_eexist_or_einval_changes_nothing(dev, first, count):
    err = errno.EINVAL if first < 16 or first + count > 1 << 20 else errno.EEXIST
    fails(dev, err, dev.create_ics, first, count, True)


def test_create_ics_eexist_creates_no_ics_for_the_rest_of_the_range(dev):
    # 2051 exists; 2052..5000 would need ICS 2..4, which must not appear
    fails(dev, errno.EEXIST, dev.create_ics, 2051, 3000)
    assert dev.info().nr_ics == 2
    assert dev.rtas(lib.IRQD_RTAS_GET_XIVE, [4000], 3)[0] == -3


def test_create_ics_unknown_flag_einval_in_core(dev):
    before = snapshot(dev)
    assert lib.irqd_xics_create_ics(dev._x, 100, 1, 2) == -errno.EINVAL
    assert snapshot(dev) == before


# -- CONNECT_VCPU -----------------------------------------------------------------------


def test_connect_vcpu_errors(dev):
    fails(dev, errno.EINVAL, dev.connect_vcpu, lib.IRQD_MAX_SERVERS)
    fails(dev, errno.EINVAL, dev.connect_vcpu, 0xFFFFFFFF)
    e = fails(dev, errno.EEXIST, dev.connect_vcpu, 1)
    assert "1" in e.strerror


# -- IRQ_LINE / IRQ_LINE_BATCH -------------------------------------------------------------


@pytest.mark.parametrize(
    "irq,level",
    [
        (48, SET),
        (0, SET),
        (15, 1),
        (2052, 1),
        (4096, 1),
        (1048576, SET),
        (0xFFFFFFFF, 1),
        (16, 2),
        (16, 0xFFFFFFFC),
        (16, 0x80000000),
        (32, 3),
        (48, 0),
    ],
)
def test_irq_line_einval(dev, irq, level):
    e = fails(dev, errno.EINVAL, dev.irq_line, irq, level)
    assert ("level" in e.strerror) if level not in (0, 1, SET) else (str(irq) in e.strerror)


def test_irq_line_batch_all_failing_changes_nothing(dev):
    e = fails(dev, errno.EINVAL, dev.irq_line_batch, [(48, 1), (16, 7), (5000, SET)])
    assert e.index == 0 and e.failed == 3


def test_irq_line_batch_failures_do_not_stop_the_rest(dev):
    before = dev.get_source(18)
    g = dev.generation
    with pytest.raises(IrqdError) as ei:
        dev.irq_line_batch([(18, SET), (48, SET), (21, SET), (16, 9)])
    assert ei.value.errno == errno.EINVAL
    assert ei.value.index == 1 and ei.value.failed == 2
    assert before == 0x0000000500000001 and dev.get_source(18) == 0x00000C0500000001  # behind the IPI: resend
    assert dev.get_source(21) == 0x00000EFF00000000  # masked: masked-pending
    assert dev.generation > g


def test_irq_line_batch_empty_is_a_no_op(dev):
    unchanged(dev, dev.irq_line_batch, [])


def test_irq_batch_core_reports_first_failure(dev):
    arr = ffi.new("struct irqd_irq_batch_entry[]", [(16, 5), (48, 1), (17, 1)])
    nf, first = ffi.new("uint32_t *"), ffi.new("uint32_t *")
    assert lib.irqd_xics_irq_batch(dev._x, arr, 3, nf, first) == -errno.EINVAL
    assert (nf[0], first[0]) == (2, 0)


# -- GET / SET / HAS_DEVICE_ATTR ---------------------------------------------------------------


@pytest.mark.parametrize("irq", [48, 15, 0, 1024, 4096, 1048575, 1048576, 0x100000030])
def test_get_source_enoent(dev, irq):
    fails(dev, errno.ENOENT, dev.get_source, irq)


@pytest.mark.parametrize("irq", [0, 15, 1048576, 0x100000010, 0xFFFFFFFFFFFFFFFF])
def test_set_source_enoent_out_of_range(dev, irq):
    fails(dev, errno.ENOENT, dev.set_source, irq, 0x0000000500000000)


@pytest.mark.parametrize(
    "irq,word",
    [
        (16, 0x0000000500000007),  # configured source, unknown server
        (4096, 0x0000000500000002),  # would create ICS 4: must not
        (4096, 0x0000020500000002),  # MASKED bit does not exempt
        (48, 0x0000040000000009),
    ],
)
def test_set_source_einval_unknown_server_creates_nothing(dev, irq, word):
    fails(dev, errno.EINVAL, dev.set_source, irq, word)
    assert dev.info().nr_ics == 2


@pytest.mark.parametrize("irq", [0, 15, 1048576, 0x100000010])
def test_has_source_enxio_is_false(dev, irq):
    assert unchanged(dev, dev.has_source, irq) is False
    assert lib.irqd_xics_has_source(dev._x, irq) == -errno.ENXIO


def test_has_source_true_whether_configured_or_not(dev):
    assert unchanged(dev, dev.has_source, 100000) is True


# -- GET / SET_ONE_REG -------------------------------------------------------------------------------


def test_one_reg_enoent(dev):
    fails(dev, errno.ENOENT, dev.get_icp, 2)
    fails(dev, errno.ENOENT, dev.set_icp, 2, 0xFF000000FFFF0000)
    fails(dev, errno.ENOENT, dev.set_icp, lib.IRQD_MAX_SERVERS + 5, 0xFF000000FFFF0000)


@pytest.mark.parametrize(
    "word",
    [
        0xFF000000FF050000,
        0xFF00000205040000,
        0x0500000205050000,
        0xFF00001005050000,
        0x05000010FF050000,
        0xFF001000FF050000,
        0xFF400000FF050000,
        0xFF000002FF040000,
        0xFF0000100505FFFF,
    ],
)
def test_set_icp_einval(dev, word):
    e = fails(dev, errno.EINVAL, dev.set_icp, 0, word)
    assert "ICP state word" in e.strerror


# -- HCALL ------------------------------------------------------------------------------------


@pytest.mark.parametrize("nr", [0, 0x04, 0x60, 0x78, 0xF000, 1 << 40])
def test_hcall_eopnotsupp_checked_before_server(dev, nr):
    fails(dev, errno.EOPNOTSUPP, dev.hcall, 0, nr)
    fails(dev, errno.EOPNOTSUPP, dev.hcall, 7, nr)


@pytest.mark.parametrize(
    "nr", ["IRQD_H_XIRR", "IRQD_H_XIRR_X", "IRQD_H_EOI", "IRQD_H_CPPR", "IRQD_H_IPI", "IRQD_H_IPOLL"]
)
def test_hcall_enoent_unknown_server(dev, nr):
    fails(dev, errno.ENOENT, dev.hcall, 2, getattr(lib, nr), 0xFF000010, 4)


def test_h_ipi_and_h_ipoll_unknown_target_change_nothing(dev):
    assert unchanged(dev, dev.h_ipi, 0, 7, 4) == H_PARAMETER
    assert unchanged(dev, dev.h_ipoll, 0, 7)[0] == H_PARAMETER
    assert unchanged(dev, dev.h_ipoll, 0, 1) == (H_SUCCESS, 0xFF000002, 2)


def test_h_cppr_equal_and_h_xirr_empty_change_nothing(dev):
    assert unchanged(dev, dev.h_cppr, 3, 0) == H_SUCCESS
    assert unchanged(dev, dev.h_xirr, 3) == (H_SUCCESS, 0)


# -- RTAS ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token,args,nret,nargs",
    [
        (0, [16], 1, None),
        (5, [16], 1, None),
        (0xFFFFFFFF, [16], 1, None),
        (1, [16, 0, 5], 10, None),
        (2, [16], 12, None),
        (1, [0] * 12, 0, None),
        (3, [16], 0xFFFFFFFF, None),
        (3, [16], 1, 0xFFFFFFFF),
    ],
)
def test_rtas_einval(dev, token, args, nret, nargs):
    fails(dev, errno.EINVAL, dev.rtas, token, args, nret, nargs)


@pytest.mark.parametrize(
    "token,args,nret",
    [
        (1, [16, 0], 1),
        (1, [16, 0, 5], 2),
        (2, [16], 1),
        (3, [16, 0], 1),
        (4, [16], 3),
        (1, [4096, 0, 5], 1),
        (1, [16, 2, 5], 1),
        (1, [16, 0xFFFFFFFF, 5], 1),
        (2, [4096], 3),
        (3, [4096], 1),
        (4, [4096], 1),
        (4, [19 + 4000], 1),
    ],
)
def test_rtas_parameter_error_changes_nothing(dev, token, args, nret):
    assert unchanged(dev, dev.rtas, token, args, nret)[0] == -3


def test_rtas_int_on_unknown_server_changes_nothing(dev):
    dev.set_source(22, 0x000002FF00000007)  # server 7 has no ICP
    assert unchanged(dev, dev.int_on, 22) == -3


def test_rtas_parameter_error_writes_only_the_status_word(dev):
    buf = ffi.new("uint32_t[12]", list(range(100, 112)))
    assert lib.irqd_xics_rtas(dev._x, 2, 1, 3, buf) == 0 and buf[0] == 100
    buf = ffi.new("uint32_t[12]", [4096] + list(range(101, 112)))
    assert lib.irqd_xics_rtas(dev._x, 2, 1, 3, buf) == 0
    assert [buf[i] for i in range(4)] == [4096, 0xFFFFFFFD, 102, 103]
    buf = ffi.new("uint32_t[12]", [100] + list(range(101, 112)))
    assert lib.irqd_xics_rtas(dev._x, 2, 1, 3, buf) == 0
    assert [buf[i] for i in range(5)] == [100, 0, 0, 0xFF, 104]


# -- eventfds -------------------------------------------------------------------------------------


def test_irqfd_errors(dev):
    efd = os.eventfd(0)
    r, w = os.pipe()
    try:
        fails(dev, errno.EINVAL, dev.irqfd, 15, efd)
        fails(dev, errno.EINVAL, dev.irqfd, 1048576, efd)
        fails(dev, errno.EINVAL, dev.irqfd, 16, r)
        fails(dev, errno.EINVAL, dev.irqfd, 16, efd, w)
        fails(dev, errno.EINVAL, dev.irqfd, 16, 987654)
    finally:
        for fd in (efd, r, w):
            os.close(fd)


def test_set_output_errors(dev):
    efd = os.eventfd(0)
    r, w = os.pipe()
    try:
        fails(dev, errno.ENOENT, dev.set_output, 2, efd)
        fails(dev, errno.EINVAL, dev.set_output, 0, r)
        fails(dev, errno.ENOENT, dev.clear_output, 2)
    finally:
        for fd in (efd, r, w):
            os.close(fd)


def test_set_resample_einval_in_core(dev):
    for irq in (0, 15, 1 << 20, 0xFFFFFFFF):
        before = snapshot(dev)
        assert lib.irqd_xics_set_resample(dev._x, irq, 1) == -errno.EINVAL
        assert snapshot(dev) == before


# -- restore / import ----------------------------------------------------------------------------


def test_restore_into_a_used_device_eexist(dev):
    fails(dev, errno.EEXIST, dev.restore, DeviceState())


def test_restore_eexist_with_only_an_icp():
    d = Xics()
    d.connect_vcpu(5)
    fails(d, errno.EEXIST, d.restore, DeviceState(sources={16: 0x000002FF00000000}))
    d.close()


@pytest.mark.parametrize(
    "state,names",
    [
        (DeviceState(sources={16: 0x0000000500000000}, icps={0: 0xFF000002FF040000}), "server 0"),
        (DeviceState(sources={16: 0x0000000500000009}, icps={0: 0xFF000000FFFF0000}), "irq 16"),
        (DeviceState(sources={16: 0x0000000500000000, 1048576: 0}, icps={0: 0}), "irq 1048576"),
        (DeviceState(sources={}, icps={0: 0, 4096: 0}), "server 4096"),
    ],
)
def test_restore_failure_is_all_or_nothing(state, names):
    d = Xics()
    e = fails(d, e_no(state), d.restore, state)
    assert names in e.strerror
    assert d.info().nr_ics == 0 and d.info().nr_servers == 0
    d.restore(DeviceState(sources={16: 0x000002FF00000000}, icps={0: 0xFF000000FFFF0000}))
    assert d.get_source(16) == 0x000002FF00000000
    d.close()


def e_no(state):
    return errno.ENOENT if 1048576 in state.sources else errno.EINVAL


def test_import_range_errors_change_nothing(dev):
    before = snapshot(dev)
    src = ffi.new("struct irqd_xics_raw_source *", {"irq": 1 << 20})
    assert lib.irqd_xics_import_source(dev._x, src) == -errno.EINVAL
    src = ffi.new("struct irqd_xics_raw_source *", {"irq": 16, "pq": 4})
    assert lib.irqd_xics_import_source(dev._x, src) == -errno.EINVAL
    icp = ffi.new("struct irqd_xics_raw_icp *", {"server": lib.IRQD_MAX_SERVERS})
    assert lib.irqd_xics_import_icp(dev._x, icp) == -errno.EINVAL
    icp = ffi.new("struct irqd_xics_raw_icp *", {"server": 9, "xisr": 1 << 24})
    assert lib.irqd_xics_import_icp(dev._x, icp) == -errno.EINVAL
    assert snapshot(dev) == before


# -- lifetime -----------------------------------------------------------------------------------------


def test_closed_device_ebadf_and_close_idempotent():
    d = Xics()
    d.close()
    d.close()
    for fn, args in ((d.connect_vcpu, (0,)), (d.irq_line, (16, 1)), (d.dump, ()), (d.info, ())):
        with pytest.raises(IrqdError) as ei:
            fn(*args)
        assert ei.value.errno == errno.EBADF


def test_values_that_do_not_fit_are_value_errors(dev):
    before = snapshot(dev)
    with pytest.raises(ValueError):
        dev.irq_line(1 << 32, 1)
    with pytest.raises(ValueError):
        dev.set_source(16, 1 << 64)
    with pytest.raises(ValueError):
        dev.hcall(0, lib.IRQD_H_CPPR, -1)
    assert snapshot(dev) == before
