"""Malformed-message table (reliability issue, part 1; abi.md section 3).

Every row sends one record with one thing wrong (a length, a count, a flag,
a reserved field, a handle, an irq number, a server, a level, an hcall
number, RTAS nargs/nret/token, an attribute group, a state word, an fd
count) and asserts, on the daemon over its real socket:

* the errno (and the NLMSGERR_ATTR_OFFS offset where one field is to blame),
* a non-empty extack message,
* that the same connection keeps working (HELLO answered),
* that DUMP_STATE, GET_STATS and LIST_DEVICES (generation included) are
  exactly as before, and
* that the daemon's fd count is back to what it was (every fd it received
  was closed).

Rows whose answer is an H_* / RTAS status instead of an errno (abi.md: "H_*
and RTAS statuses are results, not failures") are in STATUS_CASES: the
status is asserted and the device state must be unchanged (their
``generation`` may grow: abi.md allows it on a request that changes nothing).
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from irqd._core import lib
from reliability_util import (
    ACK,
    HDRLEN,
    ICP_STATE,
    MAX_RECORD,
    NR_IRQS,
    P_ATTR,
    P_BATCH,
    P_CREATE,
    P_ENTRY,
    P_HANDLE,
    P_HCALL,
    P_HELLO,
    P_ICS,
    P_IRQFD,
    P_LEVEL,
    P_OUTPUT,
    P_REG,
    P_RTAS,
    P_VCPU,
    REQ,
    Daemon,
    T,
    close_all,
    eventfd,
    msg,
    setup_device,
)

EDGE = (32, 64)       # configured edge sources 32..95
LEVEL = (96, 32)      # configured level sources 96..127
SERVERS = (0, 1)
MAX_IRQ = NR_IRQS - 1
BAD_IRQS = {"0": 0, "1": 1, "15": 15, "16_unconfigured": 16, "max_unconfigured": MAX_IRQ, "max+1": NR_IRQS,
            "0xFFFFFFFF": 0xFFFFFFFF}
EACH_BAD_HDR_FLAG = [0x008, 0x020, 0x040, 0x080, 0x400, 0x800, 0x1000, 0x2000, 0x4000, 0x8000]


@dataclass
class Ctx:
    h: int          # a configured device (servers 0,1; edge 32..95; level 96..127)
    gone: int       # a destroyed device's handle
    busy: int = 0   # an empty device another connection is restoring (RESTORE_BEGIN)


@dataclass
class Case:
    name: str
    build: Callable[[Ctx], bytes]
    err: int
    offs: int | None = None          # expected NLMSGERR_ATTR_OFFS (None: not checked)
    nfds: int = 0                    # eventfds sent with the record
    fd_kind: str = "eventfd"         # or "pipe", "socket", "devnull"


CASES: list[Case] = []


def case(name, build, err, offs=None, nfds=0, fd_kind="eventfd"):
    CASES.append(Case(name, build, err, offs, nfds, fd_kind))


def m(mtype, payload=b"", flags=REQ | ACK, length=None):
    return msg(mtype, payload, flags, seq=77, pid=4242, length=length)


# payload builders of valid requests (ctx -> payload); a row mutates one field
VALID: dict[int, tuple[str, Callable[[Ctx], bytes]]] = {
    T.IRQD_MSG_HELLO: ("HELLO", lambda c: P_HELLO.pack(1, 0, 0, 0, 0, 0, 0, 0)),
    T.IRQD_MSG_CREATE_DEVICE: ("CREATE_DEVICE", lambda c: P_CREATE.pack(3, 0, lib.IRQD_CREATE_TEST, 0)),
    T.IRQD_MSG_DESTROY_DEVICE: ("DESTROY_DEVICE", lambda c: P_HANDLE.pack(c.h, 0)),
    T.IRQD_MSG_ATTACH: ("ATTACH", lambda c: P_HANDLE.pack(c.h, 0)),
    T.IRQD_MSG_LIST_DEVICES: ("LIST_DEVICES", lambda c: b""),
    T.IRQD_MSG_IRQ_LINE: ("IRQ_LINE", lambda c: P_LEVEL.pack(c.h, 40, 0xFFFFFFFF, 0)),
    T.IRQD_MSG_IRQ_LINE_BATCH: ("IRQ_LINE_BATCH", lambda c: P_BATCH.pack(c.h, 1) + P_ENTRY.pack(40, 0xFFFFFFFF)),
    T.IRQD_MSG_SET_DEVICE_ATTR: ("SET_DEVICE_ATTR", lambda c: P_ATTR.pack(c.h, 0, 1, 0, 40, 0xFF << 32 | 1 << 41)),
    T.IRQD_MSG_GET_DEVICE_ATTR: ("GET_DEVICE_ATTR", lambda c: P_ATTR.pack(c.h, 0, 1, 0, 40, 0)),
    T.IRQD_MSG_HAS_DEVICE_ATTR: ("HAS_DEVICE_ATTR", lambda c: P_ATTR.pack(c.h, 0, 1, 0, 40, 0)),
    T.IRQD_MSG_CREATE_ICS: ("CREATE_ICS", lambda c: P_ICS.pack(c.h, 200, 8, 0)),
    T.IRQD_MSG_CONNECT_VCPU: ("CONNECT_VCPU", lambda c: P_VCPU.pack(c.h, 7, 0, 0)),
    T.IRQD_MSG_GET_ONE_REG: ("GET_ONE_REG", lambda c: P_REG.pack(c.h, 0, ICP_STATE, 0)),
    T.IRQD_MSG_SET_ONE_REG: ("SET_ONE_REG", lambda c: P_REG.pack(c.h, 0, ICP_STATE, 0xFF << 16)),
    T.IRQD_MSG_HCALL: ("HCALL", lambda c: P_HCALL.pack(c.h, 0, lib.IRQD_H_IPOLL, 0, 0, 0, 0)),
    T.IRQD_MSG_RTAS: ("RTAS", lambda c: P_RTAS.pack(c.h, lib.IRQD_RTAS_GET_XIVE, 1, 3, 40, *[0] * 11)),
    T.IRQD_MSG_IRQFD: ("IRQFD", lambda c: P_IRQFD.pack(c.h, 40, lib.IRQD_IRQFD_DEASSIGN, 0)),
    T.IRQD_MSG_SET_OUTPUT: ("SET_OUTPUT", lambda c: P_OUTPUT.pack(c.h, 0, lib.IRQD_OUTPUT_DEASSIGN, 0)),
    T.IRQD_MSG_DUMP_STATE: ("DUMP_STATE", lambda c: P_HANDLE.pack(c.h, 0)),
    T.IRQD_MSG_GET_STATS: ("GET_STATS", lambda c: P_HANDLE.pack(c.h, 0)),
    T.IRQD_MSG_RESTORE_BEGIN: ("RESTORE_BEGIN", lambda c: P_HANDLE.pack(c.h, 0)),
    T.IRQD_MSG_RESTORE_COMMIT: ("RESTORE_COMMIT", lambda c: P_HANDLE.pack(c.h, 0)),
    T.IRQD_MSG_RESTORE_ABORT: ("RESTORE_ABORT", lambda c: P_HANDLE.pack(c.h, 0)),
}
STRUCT_SIZE = {t: len(b(Ctx(1, 2))) for t, (_, b) in VALID.items()}
STRUCT_SIZE[T.IRQD_MSG_IRQ_LINE_BATCH] = 8
HAS_HANDLE = [t for t in VALID if t not in (T.IRQD_MSG_HELLO, T.IRQD_MSG_CREATE_DEVICE, T.IRQD_MSG_LIST_DEVICES)]


def put32(payload: bytes, off: int, value: int) -> bytes:
    b = bytearray(payload)
    struct.pack_into("<I", b, off, value & 0xFFFFFFFF)
    return bytes(b)


def put64(payload: bytes, off: int, value: int) -> bytes:
    b = bytearray(payload)
    struct.pack_into("<Q", b, off, value & 0xFFFFFFFFFFFFFFFF)
    return bytes(b)


def mutated(t: int, off: int, value: int, width: int = 4, flags: int = REQ | ACK):
    put = put32 if width == 4 else put64
    return lambda c: m(t, put(VALID[t][1](c), off, value), flags)


# ---- header: flags, types, sizes (every type) ------------------------------------------
for t, (name, build) in VALID.items():
    case(f"{name}-no-REQUEST", lambda c, t=t, b=build: m(t, b(c), ACK), errno.EINVAL, 6)
    case(f"{name}-flag-0x400", lambda c, t=t, b=build: m(t, b(c), REQ | ACK | 0x400), errno.EINVAL, 6)
    size = STRUCT_SIZE[t]
    if size:
        case(f"{name}-payload-empty", lambda c, t=t: m(t, b""), errno.EINVAL, 0)
        case(f"{name}-payload-short-by-4", lambda c, t=t, b=build, s=size: m(t, b(c)[: s - 4]), errno.EINVAL, 0)
    if t != T.IRQD_MSG_IRQ_LINE_BATCH:
        case(f"{name}-payload-long-nonzero", lambda c, t=t, b=build: m(t, b(c) + b"\0\0\0\x01"), errno.E2BIG,
             HDRLEN + size + 3)
        case(f"{name}-payload-long-nonzero-first", lambda c, t=t, b=build: m(t, b(c) + b"\x01" + bytes(7)),
             errno.E2BIG, HDRLEN + size)
for bit in EACH_BAD_HDR_FLAG:
    case(f"GET_ONE_REG-hdr-flag-{bit:#x}", lambda c, bit=bit: m(T.IRQD_MSG_GET_ONE_REG,
                                                                 VALID[T.IRQD_MSG_GET_ONE_REG][1](c),
                                                                 REQ | ACK | bit), errno.EINVAL, 6)
for t in []:
    pass
for t in [0x23, 0x24, 0x26, 0x2A, 0x3F, 0x41, 0x100, 0x7FFF, 0xFFFF]:
    case(f"type-{t:#x}-unknown", lambda c, t=t: m(t, P_HANDLE.pack(c.h, 0)), errno.EOPNOTSUPP, 4)

# ---- handles (every type that takes one) ---------------------------------------------------
for t in HAS_HANDLE:
    name, build = VALID[t]
    for hname, hv in (("0", lambda c: 0), ("destroyed", lambda c: c.gone), ("never", lambda c: 999999),
                      ("0xFFFFFFFF", lambda c: 0xFFFFFFFF)):
        case(f"{name}-handle-{hname}", lambda c, t=t, b=build, hv=hv: m(t, put32(b(c), 0, hv(c))), errno.EBADF,
             HDRLEN)

# ---- reserved fields and flag words --------------------------------------------------------
RESERVED = {  # type -> [(field name, payload offset, bad values, errno)]
    T.IRQD_MSG_HELLO: [("reserved", 28, [1, 0x80000000], errno.EINVAL)],
    T.IRQD_MSG_CREATE_DEVICE: [("flags", 8, [4, 0x80000000, 0xFFFFFFFF], errno.EINVAL),
                               ("reserved", 12, [1, 0xFFFFFFFF], errno.EINVAL)],
    T.IRQD_MSG_IRQ_LINE: [("reserved", 12, [1, 0xFFFFFFFF], errno.EINVAL)],
    T.IRQD_MSG_SET_DEVICE_ATTR: [("flags", 4, [1, 0x80000000], errno.EINVAL), ("reserved", 12, [1], errno.EINVAL)],
    T.IRQD_MSG_GET_DEVICE_ATTR: [("flags", 4, [1, 0x80000000], errno.EINVAL), ("reserved", 12, [1], errno.EINVAL)],
    T.IRQD_MSG_HAS_DEVICE_ATTR: [("flags", 4, [1], errno.EINVAL), ("reserved", 12, [1], errno.EINVAL)],
    T.IRQD_MSG_CREATE_ICS: [("flags", 12, [2, 0x80000000, 0xFFFFFFFF], errno.EINVAL)],
    T.IRQD_MSG_CONNECT_VCPU: [("flags", 8, [1, 0x80000000], errno.EINVAL), ("reserved", 12, [1], errno.EINVAL)],
    T.IRQD_MSG_IRQFD: [("flags", 8, [4, 0x80000000, 0xFFFFFFFF], errno.EINVAL), ("reserved", 12, [1], errno.EINVAL)],
    T.IRQD_MSG_SET_OUTPUT: [("flags", 8, [2, 0x80000000], errno.EINVAL), ("reserved", 12, [1], errno.EINVAL)],
}
for t in (T.IRQD_MSG_DESTROY_DEVICE, T.IRQD_MSG_ATTACH, T.IRQD_MSG_DUMP_STATE, T.IRQD_MSG_GET_STATS,
          T.IRQD_MSG_RESTORE_BEGIN, T.IRQD_MSG_RESTORE_COMMIT, T.IRQD_MSG_RESTORE_ABORT):
    RESERVED[t] = [("reserved", 4, [1, 0xFFFFFFFF], errno.EINVAL)]
for t, rows in RESERVED.items():
    for fname, off, values, err in rows:
        for v in values:
            case(f"{VALID[t][0]}-{fname}-{v:#x}", mutated(t, off, v), err, HDRLEN + off)

# ---- IRQ_LINE: irq numbers and levels ---------------------------------------------------------
for iname, irq in BAD_IRQS.items():
    for lname, lv in (("edge", 0xFFFFFFFF), ("set", 1), ("unset", 0)):
        case(f"IRQ_LINE-irq-{iname}-{lname}", lambda c, irq=irq, lv=lv: m(T.IRQD_MSG_IRQ_LINE,
                                                                            P_LEVEL.pack(c.h, irq, lv, 0)),
             errno.EINVAL, HDRLEN + 4)
for lv in (2, 3, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFC):
    case(f"IRQ_LINE-level-{lv:#x}", lambda c, lv=lv: m(T.IRQD_MSG_IRQ_LINE, P_LEVEL.pack(c.h, 40, lv, 0)),
         errno.EINVAL, HDRLEN + 8)

# ---- IRQ_LINE_BATCH: counts and entries (every entry fails, so nothing changes) -------------------
for cname, count, n in (("count1-entries0", 1, 0), ("count0-entries1", 0, 1), ("count2-entries1", 2, 1),
                        ("count-0xFFFFFFFF", 0xFFFFFFFF, 1), ("count-0x20000000", 0x20000000, 0),
                        ("count-0x80000000", 0x80000000, 2)):
    case(f"IRQ_LINE_BATCH-{cname}",
         lambda c, count=count, n=n: m(T.IRQD_MSG_IRQ_LINE_BATCH,
                                       P_BATCH.pack(c.h, count) + P_ENTRY.pack(40, 0xFFFFFFFF) * n),
         errno.EINVAL, HDRLEN + 4)
case("IRQ_LINE_BATCH-odd-tail", lambda c: m(T.IRQD_MSG_IRQ_LINE_BATCH, P_BATCH.pack(c.h, 1) + P_ENTRY.pack(40, 1)
                                            + b"\0\0\0\0"), errno.EINVAL, HDRLEN + 4)
for iname, irq in BAD_IRQS.items():
    case(f"IRQ_LINE_BATCH-entry0-irq-{iname}",
         lambda c, irq=irq: m(T.IRQD_MSG_IRQ_LINE_BATCH, P_BATCH.pack(c.h, 1) + P_ENTRY.pack(irq, 0xFFFFFFFF)),
         errno.EINVAL, HDRLEN + 8)
case("IRQ_LINE_BATCH-all-3-fail-offs-first",
     lambda c: m(T.IRQD_MSG_IRQ_LINE_BATCH, P_BATCH.pack(c.h, 3) + P_ENTRY.pack(15, 1) + P_ENTRY.pack(40, 7)
                 + P_ENTRY.pack(NR_IRQS, 1)), errno.EINVAL, HDRLEN + 8)
case("IRQ_LINE_BATCH-level-bad", lambda c: m(T.IRQD_MSG_IRQ_LINE_BATCH, P_BATCH.pack(c.h, 1) + P_ENTRY.pack(40, 5)),
     errno.EINVAL, HDRLEN + 8)
case("IRQ_LINE_BATCH-1000-entries-all-bad",
     lambda c: m(T.IRQD_MSG_IRQ_LINE_BATCH, P_BATCH.pack(c.h, 1000) + P_ENTRY.pack(16, 1) * 1000),
     errno.EINVAL, HDRLEN + 8)

# ---- DEVICE_ATTR: groups, attrs, state words ------------------------------------------------------
for t in (T.IRQD_MSG_SET_DEVICE_ATTR, T.IRQD_MSG_GET_DEVICE_ATTR, T.IRQD_MSG_HAS_DEVICE_ATTR):
    for g in (0, lib.IRQD_KVM_DEV_XICS_GRP_CTRL, 3, 0x80000000, 0xFFFFFFFF):
        case(f"{VALID[t][0]}-group-{g:#x}", mutated(t, 8, g), errno.ENXIO, HDRLEN + 8)
for aname, attr, err_get, err_set in (("0", 0, errno.ENOENT, errno.ENOENT), ("15", 15, errno.ENOENT, errno.ENOENT),
                                      ("16_unconfigured", 16, errno.ENOENT, None),
                                      ("max+1", NR_IRQS, errno.ENOENT, errno.ENOENT),
                                      ("2^32", 1 << 32, errno.ENOENT, errno.ENOENT),
                                      ("u64max", (1 << 64) - 1, errno.ENOENT, errno.ENOENT)):
    case(f"GET_DEVICE_ATTR-attr-{aname}", mutated(T.IRQD_MSG_GET_DEVICE_ATTR, 16, attr, 8), err_get, HDRLEN + 16)
    if err_set:
        case(f"SET_DEVICE_ATTR-attr-{aname}", mutated(T.IRQD_MSG_SET_DEVICE_ATTR, 16, attr, 8), err_set,
             HDRLEN + 16)
for aname, attr in (("0", 0), ("15", 15), ("max+1", NR_IRQS), ("u64max", (1 << 64) - 1)):
    case(f"HAS_DEVICE_ATTR-attr-{aname}", mutated(T.IRQD_MSG_HAS_DEVICE_ATTR, 16, attr, 8), errno.ENXIO, HDRLEN + 16)
# a source word naming a server without an ICP (unmasked, or masked with a saved priority: both need it)
for wname, word in (("prio5-server9", 5 << 32 | 9), ("prio0-server2", 2),
                    ("prio5-server-0xFFFFFFFF", 5 << 32 | 0xFFFFFFFF),
                    ("pending-prio5-server9", 1 << 42 | 5 << 32 | 9),
                    ("level-presented-prio1-server3", 1 << 40 | 1 << 43 | 1 << 32 | 3)):
    case(f"SET_DEVICE_ATTR-word-{wname}", mutated(T.IRQD_MSG_SET_DEVICE_ATTR, 24, word, 8), errno.EINVAL,
         HDRLEN + 24)

# ---- CREATE_DEVICE, CREATE_ICS, CONNECT_VCPU ------------------------------------------------------------
for ty in (0, 1, 2, 4, 0xFFFFFFFF):
    case(f"CREATE_DEVICE-type-{ty:#x}", mutated(T.IRQD_MSG_CREATE_DEVICE, 0, ty), errno.ENODEV, HDRLEN)
for first, count, err in ((0, 8, errno.EINVAL), (1, 8, errno.EINVAL), (15, 1, errno.EINVAL), (15, 8, errno.EINVAL),
                          (200, 0, errno.EINVAL), (MAX_IRQ, 2, errno.EINVAL), (NR_IRQS, 1, errno.EINVAL),
                          (0xFFFFFFFF, 2, errno.EINVAL), (16, 0xFFFFFFFF, errno.EINVAL),
                          (16, NR_IRQS - 15, errno.EINVAL), (0x80000000, 0x80000000, errno.EINVAL),
                          (40, 1, errno.EEXIST), (90, 10, errno.EEXIST), (16, 100, errno.EEXIST)):
    case(f"CREATE_ICS-range-{first}+{count}",
         lambda c, first=first, count=count: m(T.IRQD_MSG_CREATE_ICS, P_ICS.pack(c.h, first, count, 0)), err)
for server, err in ((0, errno.EEXIST), (1, errno.EEXIST), (lib.IRQD_MAX_SERVERS, errno.EINVAL),
                    (lib.IRQD_MAX_SERVERS + 1, errno.EINVAL), (0xFFFFFFFF, errno.EINVAL)):
    case(f"CONNECT_VCPU-server-{server:#x}", mutated(T.IRQD_MSG_CONNECT_VCPU, 4, server), err, HDRLEN + 4)

# ---- ONE_REG: ids, servers, ICP state words with each bad field ---------------------------------------------
for t in (T.IRQD_MSG_GET_ONE_REG, T.IRQD_MSG_SET_ONE_REG):
    for rid in (0, ICP_STATE ^ 1, ICP_STATE + 1, 0xFFFFFFFFFFFFFFFF, ICP_STATE & 0xFFFFFFFF):
        case(f"{VALID[t][0]}-id-{rid:#x}", mutated(t, 8, rid, 8), errno.EINVAL, HDRLEN + 8)
    for server in (2, 1000, lib.IRQD_MAX_SERVERS, 0xFFFFFFFF):
        case(f"{VALID[t][0]}-server-{server:#x}", mutated(t, 4, server), errno.ENOENT, HDRLEN + 4)


def icp_word(cppr, xisr, mfrr, ppri):
    return cppr << 56 | xisr << 32 | mfrr << 24 | ppri << 16


for wname, word in (("no-xisr-but-ppri5", icp_word(0xFF, 0, 0xFF, 5)),
                    ("ipi-ppri-ne-mfrr", icp_word(0xFF, 2, 5, 6)),
                    ("ipi-ppri-ge-cppr", icp_word(4, 2, 5, 5)),
                    ("xisr40-ppri-ge-mfrr", icp_word(0xFF, 40, 5, 5)),
                    ("xisr40-ppri-ge-cppr", icp_word(5, 40, 0xFF, 5)),
                    ("xisr-no-ics-0x800", icp_word(0xFF, 0x800, 0xFF, 5)),
                    ("xisr-max-0xFFFFFF", icp_word(0xFF, 0xFFFFFF, 0xFF, 5))):
    case(f"SET_ONE_REG-word-{wname}", mutated(T.IRQD_MSG_SET_ONE_REG, 16, word, 8), errno.EINVAL, HDRLEN + 16)

# ---- HCALL: numbers and servers --------------------------------------------------------------------------
for nr in (0, 4, 0x60, 0x65, 0x78, 0x2F8, 0x300, 0xFFFFFFFF, 1 << 32 | lib.IRQD_H_XIRR, 0xFFFFFFFFFFFFFFFF):
    case(f"HCALL-nr-{nr:#x}", mutated(T.IRQD_MSG_HCALL, 8, nr, 8), errno.EOPNOTSUPP, HDRLEN + 8)
for server in (2, lib.IRQD_MAX_SERVERS, 0xFFFFFFFF):
    for nr in (lib.IRQD_H_XIRR, lib.IRQD_H_EOI, lib.IRQD_H_CPPR, lib.IRQD_H_IPI, lib.IRQD_H_IPOLL, lib.IRQD_H_XIRR_X):
        case(f"HCALL-{nr:#x}-server-{server:#x}",
             lambda c, server=server, nr=nr: m(T.IRQD_MSG_HCALL, P_HCALL.pack(c.h, server, nr, 0, 0, 0, 0)),
             errno.ENOENT, HDRLEN + 4)

# ---- RTAS: tokens, nargs/nret ---------------------------------------------------------------------------------
for tok in (0, 5, 6, 0x80000000, 0xFFFFFFFF):
    case(f"RTAS-token-{tok:#x}", mutated(T.IRQD_MSG_RTAS, 4, tok), errno.EINVAL, HDRLEN + 4)
for nargs, nret in ((12, 0), (12, 1), (13, 0), (1, 12), (11, 2), (6, 7), (0xFFFFFFFF, 1), (1, 0xFFFFFFFF),
                    (0x80000000, 0x80000000)):
    for tok in (lib.IRQD_RTAS_GET_XIVE, lib.IRQD_RTAS_SET_XIVE):
        case(f"RTAS-{tok}-nargs{nargs:#x}-nret{nret:#x}",
             lambda c, nargs=nargs, nret=nret, tok=tok: m(T.IRQD_MSG_RTAS,
                                                          P_RTAS.pack(c.h, tok, nargs, nret, 40, 0, 5, *[0] * 9)),
             errno.EINVAL, HDRLEN + 8)

# ---- IRQFD, SET_OUTPUT: gsis, servers, fd counts 0/1/2/3/253, non-eventfds -----------------------------------------
for gname, gsi in (("0", 0), ("1", 1), ("15", 15), ("max+1", NR_IRQS), ("0xFFFFFFFF", 0xFFFFFFFF)):
    case(f"IRQFD-gsi-{gname}", lambda c, gsi=gsi: m(T.IRQD_MSG_IRQFD, P_IRQFD.pack(c.h, gsi, 0, 0)),
         errno.EINVAL, HDRLEN + 4, nfds=1)
    case(f"IRQFD-resample-gsi-{gname}",
         lambda c, gsi=gsi: m(T.IRQD_MSG_IRQFD, P_IRQFD.pack(c.h, gsi, lib.IRQD_IRQFD_RESAMPLE, 0)),
         errno.EINVAL, HDRLEN + 4, nfds=2)
    case(f"IRQFD-deassign-gsi-{gname}",
         lambda c, gsi=gsi: m(T.IRQD_MSG_IRQFD, P_IRQFD.pack(c.h, gsi, lib.IRQD_IRQFD_DEASSIGN, 0)),
         errno.EINVAL, HDRLEN + 4)
for flags, takes in ((0, 1), (lib.IRQD_IRQFD_RESAMPLE, 2), (lib.IRQD_IRQFD_DEASSIGN, 0),
                     (lib.IRQD_IRQFD_DEASSIGN | lib.IRQD_IRQFD_RESAMPLE, 0)):
    for n in (0, 1, 2, 3, 253):
        if n == takes or takes == 0:   # a message taking 0 fds is no fd-taking message: handled normally
            continue
        case(f"IRQFD-flags{flags}-takes{takes}-sent{n}",
             lambda c, flags=flags: m(T.IRQD_MSG_IRQFD, P_IRQFD.pack(c.h, 40, flags, 0)), errno.EBADF, nfds=n)
for flags, takes in ((0, 1), (lib.IRQD_OUTPUT_DEASSIGN, 0)):
    for n in (0, 1, 2, 3, 253):
        if n == takes or takes == 0:
            continue
        case(f"SET_OUTPUT-flags{flags}-takes{takes}-sent{n}",
             lambda c, flags=flags: m(T.IRQD_MSG_SET_OUTPUT, P_OUTPUT.pack(c.h, 0, flags, 0)), errno.EBADF, nfds=n)
for kind in ("pipe", "socket", "devnull"):
    case(f"IRQFD-not-an-eventfd-{kind}", lambda c: m(T.IRQD_MSG_IRQFD, P_IRQFD.pack(c.h, 40, 0, 0)), errno.EINVAL,
         nfds=1, fd_kind=kind)
    case(f"IRQFD-resample-not-an-eventfd-{kind}",
         lambda c: m(T.IRQD_MSG_IRQFD, P_IRQFD.pack(c.h, 100, lib.IRQD_IRQFD_RESAMPLE, 0)), errno.EINVAL,
         nfds=2, fd_kind=kind)
    case(f"SET_OUTPUT-not-an-eventfd-{kind}", lambda c: m(T.IRQD_MSG_SET_OUTPUT, P_OUTPUT.pack(c.h, 0, 0, 0)),
         errno.EINVAL, nfds=1, fd_kind=kind)
for server in (2, lib.IRQD_MAX_SERVERS, 0xFFFFFFFF):
    case(f"SET_OUTPUT-server-{server:#x}", lambda c, server=server: m(T.IRQD_MSG_SET_OUTPUT,
                                                                       P_OUTPUT.pack(c.h, server, 0, 0)),
         errno.ENOENT, HDRLEN + 4, nfds=1)
    case(f"SET_OUTPUT-deassign-server-{server:#x}",
         lambda c, server=server: m(T.IRQD_MSG_SET_OUTPUT, P_OUTPUT.pack(c.h, server, 1, 0)), errno.ENOENT,
         HDRLEN + 4)
# a message that takes no fd, sent with fds: the fds are closed, the message itself is handled normally
# (tested in test_fds_on_a_message_that_takes_none below)

# ---- a device being restored by another connection: every operation naming it is EBUSY ------------------
for t in HAS_HANDLE:
    name, build = VALID[t]
    case(f"{name}-device-being-restored", lambda c, t=t, b=build: m(t, put32(b(c), 0, c.busy)), errno.EBUSY, HDRLEN)

# ---- RESTORE_*: state errors ----------------------------------------------------------------------------------
case("RESTORE_BEGIN-configured-device", lambda c: m(T.IRQD_MSG_RESTORE_BEGIN, P_HANDLE.pack(c.h, 0)), errno.EEXIST)

# ---- the check table's order (two faults in one message: the earlier check wins) ---------------------------------
case("order-flags-before-type", lambda c: m(0x2A, b"", ACK), errno.EINVAL, 6)
case("order-type-before-size", lambda c: m(0x2A, b""), errno.EOPNOTSUPP, 4)
case("order-size-before-handle", lambda c: m(T.IRQD_MSG_IRQ_LINE, P_LEVEL.pack(c.gone, 40, 1, 0)[:12]),
     errno.EINVAL, 0)
case("order-extra-before-reserved", lambda c: m(T.IRQD_MSG_IRQ_LINE, P_LEVEL.pack(c.h, 40, 1, 1) + b"\x01\0\0\0"),
     errno.E2BIG, HDRLEN + 16)
case("order-reserved-before-handle", lambda c: m(T.IRQD_MSG_IRQ_LINE, P_LEVEL.pack(c.gone, 40, 1, 1)),
     errno.EINVAL, HDRLEN + 12)
case("order-handle-before-level", lambda c: m(T.IRQD_MSG_IRQ_LINE, P_LEVEL.pack(c.gone, 40, 7, 0)),
     errno.EBADF, HDRLEN)
case("order-group-before-handle", lambda c: m(T.IRQD_MSG_GET_DEVICE_ATTR, P_ATTR.pack(c.gone, 0, 2, 0, 40, 0)),
     errno.ENXIO, HDRLEN + 8)
case("order-flags-before-handle-irqfd", lambda c: m(T.IRQD_MSG_IRQFD, P_IRQFD.pack(c.gone, 40, 8, 0)),
     errno.EINVAL, HDRLEN + 8)
case("order-reg-id-before-server", lambda c: m(T.IRQD_MSG_GET_ONE_REG, P_REG.pack(c.h, 1000, 0, 0)),
     errno.EINVAL, HDRLEN + 8)
case("order-handle-before-fd-mismatch", lambda c: m(T.IRQD_MSG_IRQFD, P_IRQFD.pack(c.gone, 40, 0, 0)),
     errno.EBADF, HDRLEN, nfds=2)

# ---- record framing (abi.md: len < 16 or past the record, trailing bytes, oversized records) -------------------------
VALID_TRIGGER = lambda c: m(T.IRQD_MSG_IRQ_LINE, P_LEVEL.pack(c.h, 40, 0xFFFFFFFF, 0))
for ln in (0, 1, 4, 15):
    case(f"record-len-{ln}-then-valid-trigger-dropped",
         lambda c, ln=ln: m(T.IRQD_MSG_IRQ_LINE, P_LEVEL.pack(c.h, 40, 0xFFFFFFFF, 0), length=ln)[:16]
         + VALID_TRIGGER(c), errno.EINVAL)
for extra in (4, 1000, 0x7FFFFFFF, 0xFFFFFFFF - 32):
    case(f"record-len-past-end-by-{extra}",
         lambda c, extra=extra: m(T.IRQD_MSG_IRQ_LINE, P_LEVEL.pack(c.h, 40, 0xFFFFFFFF, 0), length=32 + extra),
         errno.EINVAL)
for tail in (1, 4, 8, 15):
    case(f"record-{tail}-trailing-bytes", lambda c, tail=tail: m(T.IRQD_MSG_GET_ONE_REG,
                                                                  P_REG.pack(c.h, 0, ICP_STATE, 0)) + b"\x11" * tail,
         errno.EINVAL)
case("record-too-short-for-header", lambda c: b"\x10\x00\x00\x00\x10\x00\x05\x00", errno.EINVAL)
case("record-oversized-65537-dropped-whole",
     lambda c: (VALID_TRIGGER(c) * ((MAX_RECORD + 64) // 32 + 1))[: MAX_RECORD + 1], errno.EMSGSIZE)
case("record-oversized-200000-dropped-whole",
     lambda c: VALID_TRIGGER(c) * (200000 // 32), errno.EMSGSIZE)
case("record-oversized-with-irqfd-and-its-fd", lambda c: (m(T.IRQD_MSG_IRQFD, P_IRQFD.pack(c.h, 40, 0, 0))
                                                         + VALID_TRIGGER(c) * 2100), errno.EMSGSIZE, nfds=1)
case("record-oversized-with-3-fds", lambda c: VALID_TRIGGER(c) * 2100, errno.EMSGSIZE, nfds=3)


# ---------------------------------------------------------------------------------------------------------
# status results (H_* / RTAS): no errno, state unchanged

@dataclass
class StatusCase:
    name: str
    build: Callable[[Ctx], bytes]
    rtype: int
    status: int


STATUS_CASES: list[StatusCase] = []
H_PARAMETER = lib.IRQD_H_PARAMETER
RTAS_P = lib.IRQD_RTAS_PARAM_ERROR


def hc(nr, *regs, server=0):
    regs = list(regs) + [0] * (4 - len(regs))
    return lambda c: m(T.IRQD_MSG_HCALL, P_HCALL.pack(c.h, server, nr, *regs), REQ)


for tgt in (2, 9, lib.IRQD_MAX_SERVERS, 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF):
    STATUS_CASES.append(StatusCase(f"H_IPI-target-{tgt:#x}", hc(lib.IRQD_H_IPI, tgt, 5), T.IRQD_MSG_HCALL,
                                   H_PARAMETER))
    STATUS_CASES.append(StatusCase(f"H_IPOLL-target-{tgt:#x}", hc(lib.IRQD_H_IPOLL, tgt), T.IRQD_MSG_HCALL,
                                   H_PARAMETER))
for xirr in (0x800, 0xFFFFF, 0x100000, 0xFFFFFF):  # cppr byte 0 (= current CPPR), irq without an ICS
    STATUS_CASES.append(StatusCase(f"H_EOI-xirr-{xirr:#x}", hc(lib.IRQD_H_EOI, xirr), T.IRQD_MSG_HCALL, H_PARAMETER))


def rt(tok, nargs, nret, *args):
    buf = list(args) + [0] * (12 - len(args))
    return lambda c: m(T.IRQD_MSG_RTAS, P_RTAS.pack(c.h, tok, nargs, nret, *buf), REQ)


for tok, (na, nr) in {lib.IRQD_RTAS_SET_XIVE: (3, 1), lib.IRQD_RTAS_GET_XIVE: (1, 3),
                      lib.IRQD_RTAS_INT_OFF: (1, 1), lib.IRQD_RTAS_INT_ON: (1, 1)}.items():
    for bad_na, bad_nr in ((na - 1, nr), (na + 1, nr), (na, nr - 1), (na, nr + 1), (0, 0)):
        if bad_na < 0 or bad_nr < 0 or (bad_na, bad_nr) == (na, nr):
            continue
        STATUS_CASES.append(StatusCase(f"RTAS-{tok}-counts-{bad_na}-{bad_nr}", rt(tok, bad_na, bad_nr, 40, 0, 5),
                                       T.IRQD_MSG_RTAS, RTAS_P))
    # irq numbers without an ICS (0 and 15 are in ICS 0, which exists: the kernel accepts them there)
    for iname, irq in (("0x800", 0x800), ("0x3FC00", 0x3FC00), ("max+1", NR_IRQS), ("0xFFFFFFFF", 0xFFFFFFFF)):
        STATUS_CASES.append(StatusCase(f"RTAS-{tok}-irq-{iname}", rt(tok, na, nr, irq, 0, 5), T.IRQD_MSG_RTAS,
                                       RTAS_P))
for server in (2, lib.IRQD_MAX_SERVERS, 0xFFFFFFFF):
    STATUS_CASES.append(StatusCase(f"RTAS-set-xive-server-{server:#x}", rt(lib.IRQD_RTAS_SET_XIVE, 3, 1, 40, server, 5),
                                   T.IRQD_MSG_RTAS, RTAS_P))


# ---------------------------------------------------------------------------------------------------------
# fixtures and the checks

@pytest.fixture(scope="module")
def env():
    d = Daemon()
    c = d.connect()
    h = setup_device(c, persist=False, servers=SERVERS, edge=EDGE, level=LEVEL)
    # leave some interesting state behind: a presented interrupt, a queued one, a masked pending one
    c.check_ok(T.IRQD_MSG_IRQ_LINE, P_LEVEL.pack(h, 33, 0xFFFFFFFF, 0))
    c.check_ok(T.IRQD_MSG_IRQ_LINE, P_LEVEL.pack(h, 100, 1, 0))
    gone = c.create_device()
    c.check_ok(T.IRQD_MSG_DESTROY_DEVICE, P_HANDLE.pack(gone, 0))
    r = d.connect()                      # another connection holds a restore open on an empty device
    busy = r.create_device(persist=True)
    r.check_ok(T.IRQD_MSG_RESTORE_BEGIN, P_HANDLE.pack(busy, 0))
    r.check_ok(T.IRQD_MSG_CONNECT_VCPU, P_VCPU.pack(busy, 0, 0, 0))
    ctx = Ctx(h, gone, busy)
    yield d, c, ctx
    r.check_ok(T.IRQD_MSG_RESTORE_ABORT, P_HANDLE.pack(busy, 0))
    assert r.dump_state(busy) == ({}, {})   # nothing any failed request did was staged or applied
    r.close()
    c.close()
    assert d.stop() == 0, d.log_text()


def snapshot(c, ctx):
    return c.list_devices(), c.dump_state(ctx.h), c.get_stats(ctx.h)


def make_fds(n: int, kind: str) -> list[int]:
    fds: list[int] = []
    for _ in range(n):
        if kind == "eventfd":
            fds.append(eventfd())
        elif kind == "pipe":
            r, w = os.pipe()
            os.close(w)
            fds.append(r)
        elif kind == "socket":
            a, b = socket.socketpair()
            b.close()
            fds.append(a.detach())
        else:
            fds.append(os.open("/dev/null", os.O_RDONLY))
    return fds


def check_unchanged(d, c, ctx, before, fd_base, gen_may_grow=False):
    assert c.hello()[0] == 1                 # the same connection still works
    after = snapshot(c, ctx)
    if gen_may_grow:
        # a call answering a status may still bump generation and run a resend scan (H_EOI's
        # Down_CPPR does, as in the kernel): state words and source counters must be the same
        assert [x[:8] for x in after[0]] == [x[:8] for x in before[0]]
        assert after[1] == before[1]
        assert after[2][0] == before[2][0]
    else:
        assert after == before
    assert d.fd_count() == fd_base           # every fd the daemon received was closed


@pytest.mark.parametrize("cs", CASES, ids=[cs.name for cs in CASES])
def test_malformed_request_fails_cleanly(env, cs: Case):
    d, c, ctx = env
    before = snapshot(c, ctx)
    fd_base = d.fd_count()
    fds = make_fds(cs.nfds, cs.fd_kind)
    try:
        rec = cs.build(ctx)
        replies = c.exchange(rec, fds)
    finally:
        close_all(fds)
    errors = [r for r in replies if r.type == T.IRQD_MSG_ERROR and r.error != 0]
    data = [r for r in replies if r.type != T.IRQD_MSG_ERROR]
    assert len(errors) >= 1, f"no ERROR for {cs.name}: {replies}"
    e = errors[-1] if cs.name.startswith("record-") else errors[0]
    assert e.errno == cs.err, f"{cs.name}: errno {e.errno} ({e.extack}), want {cs.err}"
    assert e.flags & lib.IRQD_NLM_F_CAPPED and e.flags & lib.IRQD_NLM_F_ACK_TLVS
    assert e.extack, f"{cs.name}: empty extack"
    if cs.offs is not None:
        assert e.offs == cs.offs, f"{cs.name}: offs {e.offs}, want {cs.offs} ({e.extack})"
    assert e == replies[-1] or cs.name.startswith("record-"), "an ERROR ends the replies"
    if not cs.name.startswith("record-"):
        assert len(errors) == 1 and not data, replies
        assert e.echoed[:4] == struct.unpack_from("<IHHI", rec)  # the request's header echoed
    if cs.name.startswith("record-len") or cs.name == "record-too-short-for-header" or cs.err == errno.EMSGSIZE:
        assert e.echoed == struct.unpack("<IHHII", (rec[:16] + bytes(16))[:16])  # first 16 bytes, zero-padded
        assert len(errors) == 1 and not data, replies
    check_unchanged(d, c, ctx, before, fd_base)


@pytest.mark.parametrize("cs", STATUS_CASES, ids=[cs.name for cs in STATUS_CASES])
def test_bad_call_arguments_answer_a_status_and_change_nothing(env, cs: StatusCase):
    d, c, ctx = env
    before = snapshot(c, ctx)
    fd_base = d.fd_count()
    rec = cs.build(ctx)
    replies = c.exchange(rec)
    assert len(replies) == 1 and replies[0].type == cs.rtype, replies
    p = replies[0].payload
    if cs.rtype == T.IRQD_MSG_HCALL:
        status = struct.unpack_from("<q", p, 16)[0]
    else:
        nargs = struct.unpack_from("<I", p, 8)[0]
        status = struct.unpack_from("<i", p, 16 + 4 * nargs)[0]
    assert status == cs.status
    check_unchanged(d, c, ctx, before, fd_base, gen_may_grow=True)


@pytest.mark.parametrize("what", ["HELLO", "IRQFD-DEASSIGN", "SET_OUTPUT-DEASSIGN-server9"])
def test_fds_on_a_message_that_takes_none_are_closed_and_it_is_handled(env, what):
    """abi.md: a count mismatch fails only fd-taking messages; a message
    taking 0 fds (HELLO, a DEASSIGN) is handled normally and the fds closed."""
    d, c, ctx = env
    fd_base = d.fd_count()
    rec, want = {
        "HELLO": (m(T.IRQD_MSG_HELLO, P_HELLO.pack(1, 0, 0, 0, 0, 0, 0, 0), REQ), [(T.IRQD_MSG_HELLO, None)]),
        "IRQFD-DEASSIGN": (m(T.IRQD_MSG_IRQFD, P_IRQFD.pack(ctx.h, 40, lib.IRQD_IRQFD_DEASSIGN, 0)),
                           [(T.IRQD_MSG_ERROR, 0)]),
        "SET_OUTPUT-DEASSIGN-server9": (m(T.IRQD_MSG_SET_OUTPUT, P_OUTPUT.pack(ctx.h, 9, 1, 0)),
                                        [(T.IRQD_MSG_ERROR, errno.ENOENT)]),
    }[what]
    before = snapshot(c, ctx)
    for n in (1, 2, 3, 253):
        fds = make_fds(n, "eventfd")
        try:
            replies = c.exchange(rec, fds)
        finally:
            close_all(fds)
        assert [(r.type, r.errno if r.type == T.IRQD_MSG_ERROR else None) for r in replies] == want, replies
        assert d.fd_count() == fd_base
    check_unchanged(d, c, ctx, before, fd_base, gen_may_grow=(what == "IRQFD-DEASSIGN"))


def test_254_fds_cannot_travel_in_one_record_and_253_plus_1_are_all_closed(env):
    d, c, ctx = env
    before = snapshot(c, ctx)
    fd_base = d.fd_count()
    fds = make_fds(254, "eventfd")
    try:
        rec = m(T.IRQD_MSG_IRQFD, P_IRQFD.pack(ctx.h, 40, 0, 0))
        with pytest.raises(OSError):      # SCM_MAX_FD: the kernel refuses, nothing reaches the daemon
            c.send(rec, fds)
        r1 = c.exchange(rec, fds[:253])
        r2 = c.exchange(m(T.IRQD_MSG_NOOP, b"", REQ | ACK), fds[253:])
    finally:
        close_all(fds)
    assert [(r.type, r.errno) for r in r1] == [(T.IRQD_MSG_ERROR, errno.EBADF)]
    assert [(r.type, r.error) for r in r2] == [(T.IRQD_MSG_ERROR, 0)]
    check_unchanged(d, c, ctx, before, fd_base)


def test_mismatched_fd_record_fails_only_its_fd_taking_messages(env):
    """abi.md: EBADF for each fd-taking message; the other messages are handled normally."""
    d, c, ctx = env
    fd_base = d.fd_count()
    seq = 500
    rec = (msg(T.IRQD_MSG_GET_ONE_REG, P_REG.pack(ctx.h, 0, ICP_STATE, 0), REQ, seq)
           + msg(T.IRQD_MSG_IRQFD, P_IRQFD.pack(ctx.h, 40, 0, 0), REQ, seq + 1)
           + msg(T.IRQD_MSG_SET_OUTPUT, P_OUTPUT.pack(ctx.h, 0, 0, 0), REQ, seq + 2)
           + msg(T.IRQD_MSG_HAS_DEVICE_ATTR, P_ATTR.pack(ctx.h, 0, 1, 0, 40, 0), REQ, seq + 3))
    before = snapshot(c, ctx)
    fds = make_fds(3, "eventfd")           # the record's messages take 2
    try:
        replies = c.exchange(rec, fds)
    finally:
        close_all(fds)
    got = [(r.seq, r.type, r.errno if r.type == T.IRQD_MSG_ERROR else None) for r in replies]
    assert got == [(seq, T.IRQD_MSG_GET_ONE_REG, None), (seq + 1, T.IRQD_MSG_ERROR, errno.EBADF),
                   (seq + 2, T.IRQD_MSG_ERROR, errno.EBADF), (seq + 3, T.IRQD_MSG_ERROR, 0)]
    check_unchanged(d, c, ctx, before, fd_base)


def test_extensible_struct_zero_tail_is_accepted(env):
    _d, c, ctx = env
    replies = c.exchange(m(T.IRQD_MSG_GET_ONE_REG, P_REG.pack(ctx.h, 0, ICP_STATE, 0) + bytes(64), REQ))
    assert [r.type for r in replies] == [T.IRQD_MSG_GET_ONE_REG]
    assert struct.unpack_from("<Q", replies[0].payload, 16)[0] == c.dump_state(ctx.h)[1][0]


def test_restore_commit_without_begin_is_a_clean_error(env):
    """Not in abi.md's table, but "every error path answers errno + message
    and changes nothing": COMMIT with no restore in progress must
    not be an internal error (EIO "internal error in irqd")."""
    d, c, ctx = env
    before = snapshot(c, ctx)
    fd_base = d.fd_count()
    replies = c.exchange(m(T.IRQD_MSG_RESTORE_COMMIT, P_HANDLE.pack(ctx.h, 0)))
    assert len(replies) == 1 and replies[0].type == T.IRQD_MSG_ERROR
    e = replies[0]
    assert e.errno in (errno.EINVAL, errno.ENOENT, errno.EBADFD), (e.errno, e.extack)
    assert "internal error" not in (e.extack or "")
    check_unchanged(d, c, ctx, before, fd_base)


def test_case_counts():
    """The report's count of malformed cases (and a guard that no table shrank)."""
    print(f"malformed cases: {len(CASES)} errno rows + {len(STATUS_CASES)} status rows + "
          f"{len(STAGED_BAD)} staged-restore rows")
    assert len(CASES) >= 500 and len(STATUS_CASES) >= 50 and len(STAGED_BAD) >= 15


# ---------------------------------------------------------------------------------------------------------
# staged restore messages: checked for form like any other (abi.md 0x27-0x29), a failure stages nothing

STAGED_BAD = [
    ("CONNECT_VCPU-server-2048", lambda h: m(T.IRQD_MSG_CONNECT_VCPU, P_VCPU.pack(h, lib.IRQD_MAX_SERVERS, 0, 0)),
     errno.EINVAL, HDRLEN + 4),
    ("CONNECT_VCPU-server-0xFFFFFFFF", lambda h: m(T.IRQD_MSG_CONNECT_VCPU, P_VCPU.pack(h, 0xFFFFFFFF, 0, 0)),
     errno.EINVAL, HDRLEN + 4),
    ("CONNECT_VCPU-flags", lambda h: m(T.IRQD_MSG_CONNECT_VCPU, P_VCPU.pack(h, 3, 1, 0)), errno.EINVAL, HDRLEN + 8),
    ("CONNECT_VCPU-reserved", lambda h: m(T.IRQD_MSG_CONNECT_VCPU, P_VCPU.pack(h, 3, 0, 1)), errno.EINVAL, HDRLEN + 12),
    ("CONNECT_VCPU-staged-twice", lambda h: m(T.IRQD_MSG_CONNECT_VCPU, P_VCPU.pack(h, 0, 0, 0)), errno.EEXIST, None),
    ("SET_DEVICE_ATTR-group-2", lambda h: m(T.IRQD_MSG_SET_DEVICE_ATTR, P_ATTR.pack(h, 0, 2, 0, 40, 0)), errno.ENXIO,
     HDRLEN + 8),
    ("SET_DEVICE_ATTR-flags", lambda h: m(T.IRQD_MSG_SET_DEVICE_ATTR, P_ATTR.pack(h, 1, 1, 0, 40, 0)), errno.EINVAL,
     HDRLEN + 4),
    ("SET_DEVICE_ATTR-reserved", lambda h: m(T.IRQD_MSG_SET_DEVICE_ATTR, P_ATTR.pack(h, 0, 1, 1, 40, 0)),
     errno.EINVAL, HDRLEN + 12),
    ("SET_DEVICE_ATTR-attr-0", lambda h: m(T.IRQD_MSG_SET_DEVICE_ATTR, P_ATTR.pack(h, 0, 1, 0, 0, 0)), errno.ENOENT,
     None),
    ("SET_DEVICE_ATTR-attr-15", lambda h: m(T.IRQD_MSG_SET_DEVICE_ATTR, P_ATTR.pack(h, 0, 1, 0, 15, 0)), errno.ENOENT,
     None),
    ("SET_DEVICE_ATTR-attr-max+1", lambda h: m(T.IRQD_MSG_SET_DEVICE_ATTR, P_ATTR.pack(h, 0, 1, 0, NR_IRQS, 0)),
     errno.ENOENT, None),
    ("SET_DEVICE_ATTR-attr-2^32+40", lambda h: m(T.IRQD_MSG_SET_DEVICE_ATTR, P_ATTR.pack(h, 0, 1, 0, (1 << 32) + 40, 0)),
     errno.ENOENT, None),
    ("SET_ONE_REG-id", lambda h: m(T.IRQD_MSG_SET_ONE_REG, P_REG.pack(h, 0, 0, 0)), errno.EINVAL, HDRLEN + 8),
    ("SET_ONE_REG-short", lambda h: m(T.IRQD_MSG_SET_ONE_REG, P_REG.pack(h, 0, ICP_STATE, 0)[:16]), errno.EINVAL, 0),
    ("SET_DEVICE_ATTR-long-nonzero", lambda h: m(T.IRQD_MSG_SET_DEVICE_ATTR, P_ATTR.pack(h, 0, 1, 0, 40, 0) + b"\1\0\0\0"),
     errno.E2BIG, HDRLEN + 32),
    ("RESTORE_BEGIN-again", lambda h: m(T.IRQD_MSG_RESTORE_BEGIN, P_HANDLE.pack(h, 0)), errno.EBUSY, None),
    ("DUMP_STATE-own-restore", lambda h: m(T.IRQD_MSG_DUMP_STATE, P_HANDLE.pack(h, 0), REQ), errno.EBUSY, None),
    ("IRQ_LINE-own-restore", lambda h: m(T.IRQD_MSG_IRQ_LINE, P_LEVEL.pack(h, 40, 1, 0)), errno.EBUSY, None),
]


def test_staged_restore_messages_are_checked_and_failures_stage_nothing(env):
    d, _c, _ctx = env
    with d.connect() as r:
        h = r.create_device()
        good_word = 5 << 32 | 0          # priority 5 on server 0
        r.check_ok(T.IRQD_MSG_RESTORE_BEGIN, P_HANDLE.pack(h, 0))
        r.check_ok(T.IRQD_MSG_CONNECT_VCPU, P_VCPU.pack(h, 0, 0, 0))
        r.check_ok(T.IRQD_MSG_SET_DEVICE_ATTR, P_ATTR.pack(h, 0, 1, 0, 40, good_word))
        for name, build, err, offs in STAGED_BAD:
            replies = r.exchange(build(h))
            assert len(replies) == 1 and replies[0].type == T.IRQD_MSG_ERROR, (name, replies)
            e = replies[0]
            assert e.errno == err, (name, e.errno, e.extack)
            assert e.extack, name
            if offs is not None:
                assert e.offs == offs, (name, e.offs)
        r.check_ok(T.IRQD_MSG_RESTORE_COMMIT, P_HANDLE.pack(h, 0))
        src, icps = r.dump_state(h)
        assert src == {40: good_word}                 # only what was staged successfully
        assert list(icps) == [0]
        r.check_ok(T.IRQD_MSG_DESTROY_DEVICE, P_HANDLE.pack(h, 0))
