"""The codec (irqd/protocol.py) against abi.h: layouts, framing, ERROR
decoding with NLM_F_CAPPED, the fast trigger encoders."""

from __future__ import annotations

import struct

import pytest
from irqd._core import ffi, lib

from irqd import protocol as p

STRUCT_CLASSES = [c for c in p.MESSAGE_CLASSES if c.c_struct] + [p.IrqBatchEntry]


def _layout(cls) -> list[tuple[str, int, int]]:
    out, off = [], 0
    for name, fmt in cls.fields:
        size = fmt.size if isinstance(fmt, type) else struct.calcsize(fmt)
        out.append((name, off, size))
        off += size
    return out


@pytest.mark.parametrize("cls", STRUCT_CLASSES, ids=lambda c: c.__name__)
def test_field_table_matches_abi_h_layout(cls):
    ctype = "struct " + cls.c_struct
    layout = _layout(cls)
    # same members, same order, same offsets and sizes, no padding
    assert [f[0] for f in layout] == [f[0] for f in ffi.typeof(ctype).fields]
    for name, off, size in layout:
        assert ffi.offsetof(ctype, name) == off, name
        field_type = dict(ffi.typeof(ctype).fields)[name].type
        assert ffi.sizeof(field_type) == size, name
    assert sum(f[2] for f in layout) == ffi.sizeof(ctype)


def test_msghdr_nested_field_matches_irqd_msghdr():
    assert [n for n, _ in p.MsgHdr.fields] == [f[0] for f in ffi.typeof("struct irqd_msghdr").fields]
    assert p.MsgHdr.size == ffi.sizeof("struct irqd_msghdr") == lib.IRQD_NLMSG_HDRLEN
    off = 0
    for name, fmt in p.MsgHdr.fields:
        assert ffi.offsetof("struct irqd_msghdr", name) == off
        off += struct.calcsize(fmt)


def test_every_struct_of_abi_h_has_a_class():
    import os
    import re

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "include", "irqd", "abi.h")) as f:
        declared = set(re.findall(r"^struct (irqd_\w+) \{", f.read(), re.MULTILINE))
    # irqd_ring_hdr is shared memory, not a message (tests/test_ring.py checks it)
    covered = {c.c_struct for c in STRUCT_CLASSES} | {"irqd_msghdr", "irqd_nlattr", "irqd_ring_hdr"}
    assert len(declared) == 25 and declared == covered


def test_class_names_map_one_to_one_to_struct_and_message_names():
    for cls in STRUCT_CLASSES:
        words = cls.c_struct[len("irqd_") :].split("_")
        camel = "".join(w.capitalize() for w in words)
        assert cls.__name__.lower() == camel.lower(), cls
    for cls in p.MESSAGE_CLASSES:
        for t in cls.types:
            assert hasattr(lib, "IRQD_MSG_" + t), t


def test_type_tables_use_abi_h_numbers():
    assert p.REQUEST_CLASSES[lib.IRQD_MSG_CREATE_ICS] is p.CreateIcs
    assert p.REQUEST_CLASSES[lib.IRQD_MSG_GET_STATS] is p.Handle
    assert p.REPLY_CLASSES[lib.IRQD_MSG_SOURCE_STATS] is p.SourceStats
    assert p.REQUEST_CLASSES[lib.IRQD_MSG_LIST_DEVICES] is p.Empty
    assert p.REPLY_CLASSES[lib.IRQD_MSG_LIST_DEVICES] is p.DeviceInfo
    for t, cls in {**p.REQUEST_CLASSES, **p.REPLY_CLASSES}.items():
        assert p.TYPE_NAMES[t] in cls.types or cls is p.SourceStats


# ---- walker ------------------------------------------------------------------


def _ack(seq, err=0):
    return p.encode(
        lib.IRQD_MSG_ERROR,
        {"error": err, "msg": {"len": 32, "type": 0x15, "seq": seq}},
        flags=p.F_CAPPED,
        seq=seq,
    )


def test_walk_aligns_every_header_to_4_bytes():
    # a message whose len is not a multiple of 4, then one at the next aligned offset
    odd = struct.pack("<IHHII", 18, 0x40, 0, 1, 0) + b"\x01\x02"
    rec = odd + b"\0\0" + _ack(2)
    got = list(p.walk(rec))
    assert [(m.offset, m.length, m.seq) for m in got] == [(0, 18, 1), (20, 36, 2)]


def test_walk_bounds_each_message_by_its_len():
    rec = p.encode(lib.IRQD_MSG_DONE, {"error": 0}, flags=p.F_MULTI, seq=9) + _ack(10)
    msgs = p.decode_record(rec)
    assert [type(m) for m in msgs] == [p.Done, p.Error]
    assert msgs[0]["header"]["sequence_number"] == 9 and msgs[1]["header"]["sequence_number"] == 10


@pytest.mark.parametrize(
    "record, offset",
    [
        (struct.pack("<IHHII", 8, 1, 1, 0, 0), 0),  # len < 16
        (struct.pack("<IHHII", 64, 1, 1, 0, 0), 0),  # len past the end
        (struct.pack("<IHHII", 16, 1, 1, 0, 0) + b"\0" * 8, 16),  # 8 bytes left
    ],
    ids=["len_below_header", "len_past_end", "short_tail"],
)
def test_walk_reports_framing_errors_with_their_offset(record, offset):
    with pytest.raises(p.FramingError) as ei:
        list(p.walk(record))
    assert ei.value.offset == offset


def test_walk_of_empty_record_yields_nothing():
    assert list(p.walk(b"")) == []


def test_decode_rejects_payload_shorter_than_the_struct():
    short = struct.pack("<IHHII", 20, lib.IRQD_MSG_GET_ONE_REG, 0, 1, 0) + b"\0" * 4
    with pytest.raises(p.ShortMessage):
        p.decode(short)


def test_decode_ignores_bytes_past_the_struct_within_len():
    b = p.encode(lib.IRQD_MSG_ATTACH, {"handle": 5}, seq=3)
    longer = struct.pack("<I", len(b) + 8) + b[4:] + b"\0" * 8
    m = p.decode(longer)
    assert m["handle"] == 5 and m["header"]["length"] == 32


# ---- ERROR --------------------------------------------------------------------


def test_capped_error_finds_extack_after_the_16_byte_echo_of_a_long_request():
    # the request (an HCALL, 64 bytes) is longer than 16: pyroute2's own
    # nlmsgerr would look for attributes after 64 echoed bytes and miss them
    echo = struct.pack("<IHHII", 64, lib.IRQD_MSG_HCALL, 1, 77, 0)
    text = b"server 3 has no ICP\0"
    attrs = struct.pack("<HH", 4 + len(text), 1) + text + bytes(-len(text) % 4)
    attrs += struct.pack("<HHI", 8, 2, 20)
    body = struct.pack("<i", -2) + echo + attrs
    rec = struct.pack("<IHHII", 16 + len(body), 2, p.F_CAPPED | p.F_ACK_TLVS, 77, 0) + body
    m = p.decode(rec)
    assert isinstance(m, p.Error)
    assert (m.errno, m.message, m.offs) == (2, "server 3 has no ICP", 20)
    assert m["msg"] == {"len": 64, "type": lib.IRQD_MSG_HCALL, "flags": 1, "seq": 77, "pid": 0}


def test_uncapped_error_skips_the_whole_echoed_request():
    req = p.encode(lib.IRQD_MSG_CREATE_ICS, {"handle": 1, "first_irq": 8, "count": 1}, seq=4)
    text = b"first_irq 8 < 16\0"
    attrs = (
        struct.pack("<HH", 4 + len(text), 1) + text + bytes(-len(text) % 4) + struct.pack("<HHI", 8, 2, 20)
    )
    body = struct.pack("<i", -22) + req + attrs
    rec = struct.pack("<IHHII", 16 + len(body), 2, p.F_ACK_TLVS, 4, 0) + body
    m = p.decode(rec)
    assert (m.errno, m.message, m.offs) == (22, "first_irq 8 < 16", 20)


def test_ack_without_tlvs_has_no_message():
    m = p.decode(_ack(5))
    assert (m.errno, m.message, m.offs) == (0, None, None)
    assert p.error_code(_ack(5, -22), next(p.walk(_ack(5, -22)))) == -22
    assert p.echoed_header(_ack(5), next(p.walk(_ack(5))))[3] == 5


# ---- fast encoders --------------------------------------------------------------


@pytest.mark.parametrize("level", [0, 1, lib.IRQD_KVM_INTERRUPT_SET, lib.IRQD_KVM_INTERRUPT_UNSET, 7])
def test_fast_irq_line_encoder_matches_the_pyroute2_class(level):
    fast = p.encode_irq_line(0x1234, 9, 1048575, level, p.F_REQUEST | p.F_ACK)
    slow = p.encode(
        lib.IRQD_MSG_IRQ_LINE, {"handle": 9, "irq": 1048575, "level": level}, p.F_REQUEST | p.F_ACK, 0x1234
    )
    assert fast == slow and len(fast) == p.IRQ_LINE_LEN == 16 + ffi.sizeof("struct irqd_irq_level")
    buf = bytearray(40)
    assert p.pack_irq_line_into(buf, 4, 0x1234, 9, 1048575, level, p.F_REQUEST | p.F_ACK) == 36
    assert bytes(buf[4:36]) == fast


@pytest.mark.parametrize("n", [0, 1, 5, 1000])
def test_fast_batch_encoder_matches_the_pyroute2_class(n):
    entries = [(16 + i, (i * 7) & 1) for i in range(n)]
    fast = p.encode_irq_batch(3, 2, entries, p.F_REQUEST)
    slow = p.encode(lib.IRQD_MSG_IRQ_LINE_BATCH, {"handle": 2, "entries": entries}, p.F_REQUEST, 3)
    assert fast == slow
    assert len(fast) == 16 + ffi.sizeof("struct irqd_irq_batch") + n * ffi.sizeof(
        "struct irqd_irq_batch_entry"
    )
    m = p.decode(fast)
    assert m["count"] == n and [tuple(e) for e in m["entries"]] == entries


def test_batch_entry_index_from_extack_offset():
    # offsets count from the request's first header byte: entry i at 24 + 8 i
    assert p.batch_entry_index(24) == 0
    assert p.batch_entry_index(24 + 8 * 41 + 4) == 41  # the level word of entry 41
    assert p.batch_entry_index(20) is None and p.batch_entry_index(None) is None


def test_values_that_do_not_fit_raise_value_error():
    with pytest.raises(ValueError):
        p.encode_irq_line(1, 1, 1 << 32, 0)
    with pytest.raises(ValueError):
        p.encode_irq_batch(1, 1, [(16, -1)])
    with pytest.raises(ValueError):
        p.encode(lib.IRQD_MSG_CREATE_ICS, {"handle": 1, "count": 1 << 32})


def test_default_socket_matches_abi_h():
    import os
    import re

    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(here, "include", "irqd", "abi.h")) as f:
        m = re.search(r'#define\s+IRQD_DEFAULT_SOCKET\s+"([^"]+)"', f.read())
    assert m and m.group(1) == p.DEFAULT_SOCKET


FIXED = [c for c in p.MESSAGE_CLASSES if c not in (p.Error, p.IrqBatch)]


@pytest.mark.parametrize("cls", FIXED, ids=lambda c: c.__name__)
def test_fast_packer_matches_the_pyroute2_class(cls):
    values, payload = [], {}
    for i, (name, fmt) in enumerate(cls.fields):
        n = struct.calcsize(fmt) // struct.calcsize(fmt[-1])
        v = [(i + 1) * 0x01010101 + j for j in range(n)]
        payload[name] = v if n > 1 else v[0]
        values += v
    t = cls.types and getattr(lib, "IRQD_MSG_" + cls.types[0])
    fast = p.pack(cls, t, p.F_REQUEST | p.F_ACK, 99, *values)
    slow = p.encode(t, payload, p.F_REQUEST | p.F_ACK, 99, cls=cls)
    assert fast == slow
    assert p.unpack_payload(cls, fast, next(p.walk(fast))) == tuple(values)


# ---- arbitrary input -------------------------------------------------------------


def _mutated_records():
    from hypothesis import strategies as st

    golden = [
        p.encode(lib.IRQD_MSG_CREATE_ICS, {"handle": 1, "first_irq": 16, "count": 4}, seq=1),
        p.encode(
            lib.IRQD_MSG_ERROR,
            {
                "error": -22,
                "msg": {"len": 32},
                "attrs": [["NLMSGERR_ATTR_MSG", "x"], ["NLMSGERR_ATTR_OFFS", 20]],
            },
            flags=p.F_CAPPED | p.F_ACK_TLVS,
        ),
        p.encode_irq_batch(3, 1, [(16, 1), (17, 0)]),
    ]
    base = st.sampled_from(golden).flatmap(
        lambda b: st.lists(st.tuples(st.integers(0, len(b) - 1), st.integers(0, 255)), max_size=6).map(
            lambda muts: bytes(_apply(b, muts))
        )
    )
    return st.one_of(st.binary(max_size=200), base, st.lists(base, max_size=3).map(b"".join))


def _apply(b: bytes, muts) -> bytearray:
    out = bytearray(b)
    for i, v in muts:
        out[i] = v
    return out


def test_walk_and_decode_never_fail_other_than_as_documented():
    from hypothesis import given, settings

    @settings(max_examples=400, deadline=None)
    @given(_mutated_records())
    def check(rec):
        try:
            raws = list(p.walk(rec))
        except p.FramingError as e:
            assert 0 <= e.offset < len(rec)
            return
        for raw in raws:
            assert raw.offset % 4 == 0 and raw.offset + raw.length <= len(rec)
            try:
                m = p.decode(rec, raw)
            except p.ShortMessage:
                continue
            assert m["header"]["length"] == raw.length
            p.dump(m)

    check()
