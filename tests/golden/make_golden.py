"""Regenerate tests/golden/*.dump: ``.venv/bin/python tests/golden/make_golden.py``.

The byte vectors here are packed with plain ``struct`` from abi.md's tables
and the expected JSON is written out by hand, independently of
``irqd/protocol.py`` (the codec under test), so the golden test compares two
implementations of abi.md.  Type numbers and flags are literal on purpose:
a change to abi.h that moves a number must show up as a failing golden test.
See README.md beside this file for the format.
"""

from __future__ import annotations

import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

REQ, MULTI, ACK, DUMP_INTR, CAPPED, ACK_TLVS = 0x1, 0x2, 0x4, 0x10, 0x100, 0x200


def hdr(length, mtype, flags, seq, pid=0):
    return struct.pack("<IHHII", length, mtype, flags, seq, pid)


def jhdr(length, mtype, flags, seq, pid=0):
    return {"length": length, "type": mtype, "flags": flags, "sequence_number": seq, "pid": pid}


def msg(mtype, flags, seq, fmt, names, values, pid=0, extra=None):
    payload = struct.pack("<" + fmt, *[v for v in _flat(values)])
    b = hdr(16 + len(payload), mtype, flags, seq, pid) + payload
    d = {"header": jhdr(16 + len(payload), mtype, flags, seq, pid)}
    d.update(zip(names, values))
    if extra:
        d.update(extra)
    return b, d


def _flat(values):
    for v in values:
        if isinstance(v, list):
            yield from v
        else:
            yield v


def nla(atype, data):
    b = struct.pack("<HH", 4 + len(data), atype) + data
    return b + bytes(-len(b) % 4)


def error(seq, err, echo, msg_text=None, offs=None, flags=None):
    """ERROR: s32 error, the 16-byte echoed header (CAPPED), extack TLVs."""
    attrs_b = b""
    attrs_j = []
    if msg_text is not None:
        attrs_b += nla(1, msg_text.encode() + b"\0")
        attrs_j.append(["NLMSGERR_ATTR_MSG", msg_text])
    if offs is not None:
        attrs_b += nla(2, struct.pack("<I", offs))
        attrs_j.append(["NLMSGERR_ATTR_OFFS", offs])
    if flags is None:
        flags = CAPPED | (ACK_TLVS if attrs_b else 0)
    body = struct.pack("<i", err) + struct.pack("<IHHII", *echo) + attrs_b
    length = 16 + len(body)
    d = {
        "header": jhdr(length, 2, flags, seq),
        "error": err,
        "msg": dict(zip(("len", "type", "flags", "seq", "pid"), echo)),
        "attrs": attrs_j,
    }
    return hdr(length, 2, flags, seq) + body, d


def done(seq, flags=MULTI):
    return hdr(20, 3, flags, seq) + struct.pack("<i", 0), {"header": jhdr(20, 3, flags, seq), "error": 0}


HANDLE = ("handle", "reserved")
ATTR = ("handle", "flags", "group", "reserved", "attr", "value")
ONE_REG = ("handle", "server", "id", "value")
HCALL = ("handle", "server", "nr", "reg")
RTAS = ("handle", "token", "nargs", "nret", "buf")
HELLO = ("version", "features", "max_record", "max_devices", "max_servers", "max_irqs", "max_fds", "reserved")
INFO = ("handle", "type", "owner_uid", "flags", "nr_ics", "nr_sources", "nr_servers", "holders", "generation")
ICP_ID = 0x103000000000008C

CASES: dict[str, tuple[str, list]] = {}


def case(name, comment, *msgs):
    CASES[name] = (comment, list(msgs))


# ---- requests ---------------------------------------------------------------
case(
    "noop_ack",
    "NOOP with NLM_F_ACK (no payload)",
    (hdr(16, 0x01, REQ | ACK, 1), {"header": jhdr(16, 1, REQ | ACK, 1)}),
)
case(
    "hello_request",
    "HELLO request: version 1, features 0, limits 0",
    msg(0x10, REQ, 1, "8I", HELLO, [1, 0, 0, 0, 0, 0, 0, 0]),
)
case(
    "create_device_request",
    "CREATE_DEVICE type 3 (XICS), flags PERSIST, with ACK",
    msg(0x11, REQ | ACK, 2, "4I", ("type", "handle", "flags", "reserved"), [3, 0, 2, 0]),
)
case("destroy_device_request", "DESTROY_DEVICE handle 7", msg(0x12, REQ | ACK, 3, "2I", HANDLE, [7, 0]))
case("attach_request", "ATTACH handle 7", msg(0x13, REQ | ACK, 4, "2I", HANDLE, [7, 0]))
case(
    "list_devices_request",
    "LIST_DEVICES (dump, no payload)",
    (hdr(16, 0x14, REQ | 0x300, 5), {"header": jhdr(16, 0x14, REQ | 0x300, 5)}),
)
case(
    "irq_line_edge",
    "IRQ_LINE handle 1 irq 16 level KVM_INTERRUPT_SET (edge), fire-and-forget",
    msg(0x15, REQ, 6, "4I", ("handle", "irq", "level", "reserved"), [1, 16, 0xFFFFFFFF, 0]),
)
case(
    "irq_line_ack",
    "IRQ_LINE handle 1 irq 32 level 1 with ACK",
    msg(0x15, REQ | ACK, 7, "4I", ("handle", "irq", "level", "reserved"), [1, 32, 1, 0]),
)
case(
    "irq_line_batch",
    "IRQ_LINE_BATCH handle 1, 3 entries, with ACK",
    msg(
        0x16,
        REQ | ACK,
        8,
        "2I6I",
        ("handle", "count"),
        [1, 3, 16, 0xFFFFFFFF, 32, 1, 48, 0],
        extra={"entries": [[16, 0xFFFFFFFF], [32, 1], [48, 0]]},
    ),
)
case(
    "irq_line_batch_empty",
    "IRQ_LINE_BATCH with count 0 (a valid no-op)",
    msg(0x16, REQ | ACK, 9, "2I", ("handle", "count"), [1, 0], extra={"entries": []}),
)
case(
    "set_device_attr_request",
    "SET_DEVICE_ATTR group SOURCES irq 16 word 0x0000050000000000 (prio 5, server 0, PENDING)",
    msg(0x17, REQ | ACK, 10, "4I2Q", ATTR, [1, 0, 1, 0, 16, 0x0000040500000000]),
)
case(
    "get_device_attr_request",
    "GET_DEVICE_ATTR group SOURCES irq 0x100000000+16 (reads irq 16: X-051)",
    msg(0x18, REQ, 11, "4I2Q", ATTR, [1, 0, 1, 0, 0x100000010, 0]),
)
case(
    "has_device_attr_request",
    "HAS_DEVICE_ATTR group SOURCES irq 1048575",
    msg(0x19, REQ, 12, "4I2Q", ATTR, [1, 0, 1, 0, 1048575, 0]),
)
case(
    "create_ics_request",
    "CREATE_ICS handle 1 first 32 count 16 flags IRQD_ICS_LEVEL",
    msg(0x1A, REQ | ACK, 13, "4I", ("handle", "first_irq", "count", "flags"), [1, 32, 16, 1]),
)
case(
    "connect_vcpu_request",
    "CONNECT_VCPU handle 1 server 2047",
    msg(0x1B, REQ | ACK, 14, "4I", ("handle", "server", "flags", "reserved"), [1, 2047, 0, 0]),
)
case(
    "get_one_reg_request",
    "GET_ONE_REG server 0 id KVM_REG_PPC_ICP_STATE",
    msg(0x1C, REQ, 15, "2I2Q", ONE_REG, [1, 0, ICP_ID, 0]),
)
case(
    "set_one_reg_request",
    "SET_ONE_REG server 1 word 0xFF000010FF050000 (CPPR 0xFF, XISR 0x10, MFRR 0xFF, PPRI 5)",
    msg(0x1D, REQ | ACK, 16, "2I2Q", ONE_REG, [1, 1, ICP_ID, 0xFF000010FF050000]),
)
case(
    "hcall_request",
    "HCALL H_EOI(0xFF000010) as server 0",
    msg(0x1E, REQ, 17, "2I5Q", HCALL, [1, 0, 0x64, [0xFF000010, 0, 0, 0]]),
)
case(
    "rtas_request",
    "RTAS ibm,set-xive(irq 16, server 0, priority 5), nargs 3 nret 1",
    msg(0x1F, REQ, 18, "4I12I", RTAS, [1, 1, 3, 1, [16, 0, 5] + [0] * 9]),
)
case(
    "irqfd_request",
    "IRQFD gsi 32 RESAMPLE (takes two fds by SCM_RIGHTS)",
    msg(0x20, REQ | ACK, 19, "4I", ("handle", "gsi", "flags", "reserved"), [1, 32, 2, 0]),
)
case(
    "irqfd_deassign_request",
    "IRQFD gsi 32 DEASSIGN (no fd)",
    msg(0x20, REQ | ACK, 20, "4I", ("handle", "gsi", "flags", "reserved"), [1, 32, 1, 0]),
)
case(
    "set_output_request",
    "SET_OUTPUT server 0 (one fd by SCM_RIGHTS)",
    msg(0x21, REQ | ACK, 21, "4I", ("handle", "server", "flags", "reserved"), [1, 0, 0, 0]),
)
case(
    "ring_setup_request",
    "RING_SETUP 2^10 entries (takes two fds by SCM_RIGHTS: memfd, doorbell eventfd)",
    msg(0x40, REQ | ACK, 40, "4I", ("handle", "flags", "entries_log2", "reserved"), [1, 0, 10, 0]),
)
case(
    "ring_setup_deassign_request",
    "RING_SETUP DEASSIGN (no fd)",
    msg(0x40, REQ | ACK, 41, "4I", ("handle", "flags", "entries_log2", "reserved"), [1, 1, 0, 0]),
)
case(
    "dump_state_request", "DUMP_STATE handle 1 (NLM_F_DUMP)", msg(0x22, REQ | 0x300, 22, "2I", HANDLE, [1, 0])
)
case(
    "get_stats_request",
    "GET_STATS handle 1 (request type 0x25 carries struct irqd_handle)",
    msg(0x25, REQ | 0x300, 23, "2I", HANDLE, [1, 0]),
)
case("restore_begin_request", "RESTORE_BEGIN handle 2", msg(0x27, REQ | ACK, 24, "2I", HANDLE, [2, 0]))
case("restore_commit_request", "RESTORE_COMMIT handle 2", msg(0x28, REQ | ACK, 25, "2I", HANDLE, [2, 0]))
case("restore_abort_request", "RESTORE_ABORT handle 2", msg(0x29, REQ | ACK, 26, "2I", HANDLE, [2, 0]))

# ---- replies ----------------------------------------------------------------
case(
    "hello_reply",
    "HELLO reply: version 1, no features, irqd's default limits",
    msg(0x10, 0, 1, "8I", HELLO, [1, 0, 65536, 16, 2048, 1048576, 253, 0]),
)
case(
    "create_device_reply",
    "CREATE_DEVICE reply (handle 7) followed by its ERROR(0) ack in the same record",
    msg(0x11, 0, 2, "4I", ("type", "handle", "flags", "reserved"), [3, 7, 2, 0]),
    error(2, 0, (32, 0x11, REQ | ACK, 2, 0)),
)
case(
    "ack",
    "ERROR(0): acknowledgement of an IRQ_LINE, CAPPED, no TLVs",
    error(7, 0, (32, 0x15, REQ | ACK, 7, 0)),
)
case(
    "error_extack_msg",
    "ERROR EINVAL with NLMSGERR_ATTR_MSG only",
    error(7, -22, (32, 0x15, REQ | ACK, 7, 0), "irq 48 is not configured"),
)
case(
    "error_extack_msg_offs",
    "ERROR EINVAL with MSG and OFFS 24 (IRQ_LINE.level at payload offset 8)",
    error(7, -22, (32, 0x15, REQ, 7, 0), "invalid level 0x2", 24),
)
case(
    "error_batch_offs_past_echo",
    "ERROR for an IRQ_LINE_BATCH: OFFS 40 points at entry 2, past the ERROR's own length",
    error(8, -22, (48, 0x16, REQ | ACK, 8, 0), "1 of 3 entries failed: irq 48 is not configured", 40),
)
case(
    "error_ebadf",
    "ERROR EBADF for a handle that names no device",
    error(3, -9, (24, 0x12, REQ | ACK, 3, 0), "handle 7 names no device", 16),
)
case(
    "error_unframed",
    "ERROR EINVAL for a header with len 8: the echo is the 16 bytes found there",
    error(0, -22, (8, 0x15, REQ, 0, 0), "message len 8 < 16", 0),
)
case(
    "get_device_attr_reply",
    "GET_DEVICE_ATTR reply: irq 16 masked, saved priority 0xFF, server 0",
    msg(0x18, 0, 11, "4I2Q", ATTR, [1, 0, 1, 0, 16, 0x000002FF00000000]),
)
case(
    "get_one_reg_reply",
    "GET_ONE_REG reply: fresh ICP word",
    msg(0x1C, 0, 15, "2I2Q", ONE_REG, [1, 0, ICP_ID, 0x00000000FFFF0000]),
)
case(
    "hcall_reply",
    "HCALL H_XIRR reply: status H_SUCCESS, r4 = XIRR 0xFF000010",
    msg(0x1E, 0, 17, "2I5Q", HCALL, [1, 0, 0x74, [0, 0xFF000010, 0, 0]]),
)
case(
    "hcall_reply_negative_status",
    "HCALL H_EOI reply: status H_PARAMETER (-4) as a u64",
    msg(0x1E, 0, 17, "2I5Q", HCALL, [1, 0, 0x64, [0xFFFFFFFFFFFFFFFC, 0, 0, 0]]),
)
case(
    "rtas_reply",
    "RTAS ibm,get-xive(16) reply: status 0, server 0, priority 5",
    msg(0x1F, 0, 18, "4I12I", RTAS, [1, 2, 1, 3, [16, 0, 0, 5] + [0] * 8]),
)
case(
    "list_devices_reply",
    "LIST_DEVICES reply: two devices then DONE, all NLM_F_MULTI",
    msg(0x14, MULTI, 5, "8IQ", INFO, [1, 3, 0, 0, 2, 32, 2, 1, 12]),
    msg(0x14, MULTI, 5, "8IQ", INFO, [7, 3, 1000, 2, 0, 0, 0, 0, 0]),
    done(5),
)
case(
    "dump_state_reply",
    "DUMP_STATE reply: two SOURCE_STATE, one ICP_STATE, DONE",
    msg(0x23, MULTI, 22, "2IQ", ("handle", "irq", "state"), [1, 16, 0x000002FF00000000]),
    msg(0x23, MULTI, 22, "2IQ", ("handle", "irq", "state"), [1, 32, 0x00000D0500000000]),
    msg(0x24, MULTI, 22, "2IQ", ("handle", "server", "state"), [1, 0, 0x05000020FF050000]),
    done(22),
)
case(
    "dump_state_reply_intr",
    "DUMP_STATE reply interrupted: the device changed, messages from then on carry DUMP_INTR",
    msg(0x23, MULTI, 22, "2IQ", ("handle", "irq", "state"), [1, 16, 0x000002FF00000000]),
    msg(0x23, MULTI | DUMP_INTR, 22, "2IQ", ("handle", "irq", "state"), [1, 17, 0x000002FF00000000]),
    done(22, MULTI | DUMP_INTR),
)
case(
    "get_stats_reply",
    "GET_STATS reply: SOURCE_STATS (0x25), SERVER_STATS (0x26), DONE",
    msg(0x25, MULTI, 23, "4I", ("handle", "irq", "triggers", "deliveries"), [1, 16, 3, 2]),
    msg(
        0x26,
        MULTI,
        23,
        "6I",
        ("handle", "server", "deliveries", "rejects", "resends", "ipis"),
        [1, 0, 2, 1, 1, 0],
    ),
    done(23),
)
case("empty_dump_reply", "a dump with nothing to report: DONE only", done(5))
case(
    "two_replies_one_record",
    "two replies sharing a record: a GET reply, then an ERROR that ends the record",
    msg(0x18, 0, 30, "4I2Q", ATTR, [1, 0, 1, 0, 17, 0x000002FF00000000]),
    error(31, -2, (48, 0x18, REQ, 31, 0), "irq 40 is not configured", 32),
)


HEADER = """\
# irqd golden vector: {name}
# {comment}
#
# Format (tests/golden/README.md): one record as colon-separated hex bytes
# (pyroute2 load_dump; '#' starts a comment), then a '#: application/json'
# line and a JSON list with one object per message of the record, as
# irqd.protocol decodes it.  Generated by make_golden.py; do not edit.
"""


def write_all(outdir: str = HERE) -> list[str]:
    names = []
    for name, (comment, msgs) in CASES.items():
        record = b""
        decoded = []
        for b, d in msgs:
            record += b + bytes(-len(b) % 4)
            decoded.append(d)
        hexlines = [record[i : i + 16].hex(":") for i in range(0, len(record), 16)]
        text = HEADER.format(name=name, comment=comment) + "\n".join(hexlines) + "\n\n#: application/json\n"
        text += json.dumps(decoded, indent=2, sort_keys=True) + "\n"
        with open(os.path.join(outdir, name + ".dump"), "w") as f:
            f.write(text)
        names.append(name)
    return names


if __name__ == "__main__":
    print(f"wrote {len(write_all())} vectors")
