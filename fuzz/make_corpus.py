#!/usr/bin/env python3
"""Generate the committed seed corpora of the fuzz targets (fuzz/corpus/<target>/).

    python3 fuzz/make_corpus.py      # rewrites fuzz/corpus/*/seed-*

- fuzz_wire:   every request record of tests/golden, plus records built here:
               scenario-like sequences on handle 1 (the device fuzz_wire sets
               up), batches, every request type, and malformed framings;
- fuzz_client: every reply record of tests/golden (ERRORs with extack, dumps,
               several replies in one record);
- fuzz_core:   operation programs in fuzz_core.c's encoding (X-008, X-009,
               X-013, X-016, X-029, X-065-like sequences);
- fuzz_ring:   ring sessions in fuzz_ring.c's encoding (proper posts, garbage
               heads in and past the window, raw slots, damaged headers).

Numbers come from include/irqd/abi.h (parsed here), never repeated.
Deterministic: the same files every run.
"""

from __future__ import annotations

import hashlib
import re
import struct
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "fuzz" / "corpus"


def abi() -> dict[str, int]:
    text = (ROOT / "include" / "irqd" / "abi.h").read_text()
    return {m.group(1): int(m.group(2), 0) for m in re.finditer(r"^#define (IRQD_\w+)\s+(-?(?:0x[0-9A-Fa-f]+|\d+))\b", text, re.M)}


A = abi()
REQ, ACK = A["IRQD_NLM_F_REQUEST"], A["IRQD_NLM_F_ACK"]
H = 1  # the handle fuzz_wire gives the peer's own device


def msg(type_: int, payload: bytes = b"", flags: int = REQ | ACK, seq: int = 1, length: int | None = None) -> bytes:
    n = 16 + len(payload) if length is None else length
    body = struct.pack("<IHHII", n, type_, flags, seq, 0) + payload
    return body + b"\0" * (-len(body) % 4)


def irq_line(irq: int, level: int, handle: int = H, flags: int = REQ | ACK) -> bytes:
    return msg(A["IRQD_MSG_IRQ_LINE"], struct.pack("<IIII", handle, irq, level, 0), flags)


def rtas(token: int, nargs: int, nret: int, *args: int, handle: int = H) -> bytes:
    buf = list(args) + [0] * (12 - len(args))
    return msg(A["IRQD_MSG_RTAS"], struct.pack("<IIII12I", handle, token, nargs, nret, *buf))


def hcall(server: int, nr: int, *regs: int, handle: int = H) -> bytes:
    r = list(regs) + [0] * (4 - len(regs))
    return msg(A["IRQD_MSG_HCALL"], struct.pack("<IIQ4Q", handle, server, nr, *r))


def dev_attr(type_: int, irq: int, value: int = 0, group: int = A["IRQD_KVM_DEV_XICS_GRP_SOURCES"]) -> bytes:
    return msg(type_, struct.pack("<IIIIQQ", H, 0, group, 0, irq, value))


def one_reg(type_: int, server: int, value: int = 0) -> bytes:
    return msg(type_, struct.pack("<IIQQ", H, server, A["IRQD_KVM_REG_PPC_ICP_STATE"], value))


def handle_msg(type_: int, handle: int = H) -> bytes:
    return msg(type_, struct.pack("<II", handle, 0))


def batch(entries: list[tuple[int, int]], handle: int = H, count: int | None = None) -> bytes:
    n = len(entries) if count is None else count
    return msg(A["IRQD_MSG_IRQ_LINE_BATCH"], struct.pack("<II", handle, n) + b"".join(struct.pack("<II", *e) for e in entries))


SET = A["IRQD_KVM_INTERRUPT_SET"]
XIRR, EOI, CPPR, IPI, IPOLL = (A[f"IRQD_H_{n}"] for n in ("XIRR", "EOI", "CPPR", "IPI", "IPOLL"))
SET_XIVE, GET_XIVE, INT_OFF, INT_ON = (A[f"IRQD_RTAS_{n}"] for n in ("SET_XIVE", "GET_XIVE", "INT_OFF", "INT_ON"))


def wire_seeds() -> list[bytes]:
    s: list[bytes] = []
    # X-008 in one record: set-xive, trigger, accept, EOI
    s.append(rtas(SET_XIVE, 3, 1, 16, 0, 5) + irq_line(16, SET) + hcall(0, XIRR) + hcall(0, EOI, 0xFF000010))
    # queued triggers, fire-and-forget
    s.append(rtas(SET_XIVE, 3, 1, 16, 0, 5) + b"".join(irq_line(16, SET, flags=REQ) for _ in range(3))
             + hcall(0, XIRR) + hcall(0, EOI, 0xFF000010) + hcall(0, XIRR))
    # LSI
    s.append(rtas(SET_XIVE, 3, 1, 32, 0, 5) + irq_line(32, 1) + hcall(0, XIRR) + hcall(0, EOI, 0xFF000020) + irq_line(32, 0))
    # masked MSI presented on int-on
    s.append(rtas(SET_XIVE, 3, 1, 16, 0, 5) + rtas(INT_OFF, 1, 1, 16) + irq_line(16, SET) + rtas(INT_ON, 1, 1, 16)
             + rtas(GET_XIVE, 1, 3, 16))
    # IPIs
    s.append(hcall(0, IPI, 0, 4) + hcall(0, XIRR) + hcall(0, EOI, 0xFF000002) + hcall(0, IPI, 1, 5) + hcall(0, IPOLL, 1))
    # batches: 32 entries over MSIs and LSIs, one bad entry, count 0, len/count mismatch
    s.append(rtas(SET_XIVE, 3, 1, 17, 1, 3) + batch([(16 + i, SET if i < 16 else 1) for i in range(32)]))
    s.append(batch([(16, SET), (15, SET), (17, 2), (2048, SET)]))
    s.append(batch([]))
    s.append(batch([(16, SET)], count=2))
    # source and ICP words
    s.append(dev_attr(A["IRQD_MSG_SET_DEVICE_ATTR"], 16, 0x0000040500000000) + dev_attr(A["IRQD_MSG_GET_DEVICE_ATTR"], 16)
             + dev_attr(A["IRQD_MSG_HAS_DEVICE_ATTR"], 1048576) + dev_attr(A["IRQD_MSG_GET_DEVICE_ATTR"], 16, group=2))
    s.append(one_reg(A["IRQD_MSG_SET_ONE_REG"], 0, 0xFF000010FF05FFFF) + one_reg(A["IRQD_MSG_SET_ONE_REG"], 0, 0xFF000000FF050000)
             + one_reg(A["IRQD_MSG_GET_ONE_REG"], 1))
    # configuration, dumps, lifetime and other handles (2: root's, 9: none)
    s.append(msg(A["IRQD_MSG_CREATE_ICS"], struct.pack("<IIII", H, 1020, 8, A["IRQD_ICS_LEVEL"]))
             + msg(A["IRQD_MSG_CONNECT_VCPU"], struct.pack("<IIII", H, 7, 0, 0))
             + handle_msg(A["IRQD_MSG_DUMP_STATE"]) + handle_msg(A["IRQD_MSG_GET_STATS"]))
    s.append(irq_line(16, SET, handle=2) + irq_line(16, SET, handle=9) + handle_msg(A["IRQD_MSG_DUMP_STATE"], 2)
             + msg(A["IRQD_MSG_LIST_DEVICES"]) + msg(A["IRQD_MSG_NOOP"]))
    s.append(handle_msg(A["IRQD_MSG_RESTORE_BEGIN"]) + one_reg(A["IRQD_MSG_SET_ONE_REG"], 0, 0xFF000000FFFF0000)
             + handle_msg(A["IRQD_MSG_RESTORE_COMMIT"]))
    s.append(msg(A["IRQD_MSG_IRQFD"], struct.pack("<IIII", H, 16, A["IRQD_IRQFD_RESAMPLE"], 0))
             + msg(A["IRQD_MSG_SET_OUTPUT"], struct.pack("<IIII", H, 0, A["IRQD_OUTPUT_DEASSIGN"], 0)))
    # malformed framing and checks of abi.md's table
    line = struct.pack("<IIII", H, 16, SET, 0)
    s.append(msg(A["IRQD_MSG_IRQ_LINE"], line, length=8))                        # len < 16
    s.append(msg(A["IRQD_MSG_IRQ_LINE"], line, length=200))                      # len past the record
    s.append(msg(A["IRQD_MSG_IRQ_LINE"], line, flags=ACK))                       # no REQUEST
    s.append(msg(A["IRQD_MSG_IRQ_LINE"], line, flags=REQ | 0x800))              # unknown flag
    s.append(msg(0x3F, line))                                                   # unknown type
    s.append(msg(A["IRQD_MSG_IRQ_LINE"], line[:8]))                              # short payload
    s.append(msg(A["IRQD_MSG_IRQ_LINE"], line + b"\0" * 8) + msg(A["IRQD_MSG_IRQ_LINE"], line + b"\1" + b"\0" * 7))
    s.append(msg(A["IRQD_MSG_IRQ_LINE"], struct.pack("<IIII", H, 16, SET, 1)))  # reserved
    s.append(irq_line(16, SET) + b"\x10\x00\x00")                                # stray tail
    s.append(rtas(SET_XIVE, 12, 0, 16) + rtas(9, 1, 1, 16) + rtas(SET_XIVE, 2, 1, 16, 0))
    return s


def dump_records() -> tuple[list[bytes], list[bytes]]:
    """(request records, reply records) of tests/golden."""
    reqs, reps = [], []
    for p in sorted((ROOT / "tests" / "golden").glob("*.dump")):
        data = bytearray()
        for ln in p.read_text().splitlines():
            if ln.startswith("#: application/json"):
                break
            ln = ln.split("#", 1)[0].strip()
            if ln:
                data += bytes(int(h, 16) for h in ln.split(":"))
        if len(data) >= 16:
            flags = struct.unpack_from("<H", data, 6)[0]
            (reqs if flags & REQ else reps).append(bytes(data))
    return reqs, reps


# ---- fuzz_core programs (encoding: see fuzz/fuzz_core.c) ----
OP_IRQ_LINE, OP_SET_SRC, OP_SET_ICP, OP_HCALL, OP_RTAS, OP_EXPORT, OP_CONNECT, OP_BATCH = 2, 7, 11, 12, 15, 19, 0, 5
IRQ16, IRQ32 = 0x00, 0x10          # irq selectors: 16 + (sel & 0x3F)
SRV0, SRV1 = 0x00, 0x01
LV_SET, LV_0, LV_1 = 2, 0, 1       # level selector indices
HC = {"xirr": 0, "eoi": 2, "cppr": 3, "ipi": 4, "ipoll": 5}


def prio(p: int) -> int:           # take_arg selector for a priority 0..31
    return 0x40 | p


def xirr_of(irq_sel: int) -> int:  # take_arg selector for 0xFF000000 | irq
    return irq_sel


def core_seeds() -> list[bytes]:
    set_xive = lambda irq, srv, p: bytes([OP_RTAS, 1, irq, srv, prio(p)])  # noqa: E731
    line = lambda irq, lv: bytes([OP_IRQ_LINE, irq, lv])  # noqa: E731
    call = lambda srv, nr, a0=0x40, a1=0x40: bytes([OP_HCALL, srv, HC[nr], a0, a1])  # noqa: E731
    int_off = lambda irq: bytes([OP_RTAS, 3, irq, 0, 0])  # noqa: E731
    int_on = lambda irq: bytes([OP_RTAS, 4, irq, 0, 0])  # noqa: E731
    x008 = set_xive(IRQ16, SRV0, 5) + line(IRQ16, LV_SET) + call(SRV0, "xirr") + call(SRV0, "eoi", xirr_of(IRQ16))
    x009 = set_xive(IRQ16, SRV0, 5) + line(IRQ16, LV_SET) + call(SRV0, "xirr") + line(IRQ16, LV_SET) + call(SRV0, "eoi", xirr_of(IRQ16))
    x013 = set_xive(IRQ32, SRV0, 5) + line(IRQ32, LV_1) + call(SRV0, "xirr") + call(SRV0, "eoi", xirr_of(IRQ32)) + line(IRQ32, LV_0)
    x016 = set_xive(IRQ16, SRV0, 5) + int_off(IRQ16) + line(IRQ16, LV_SET) + line(IRQ16, LV_SET) + int_on(IRQ16)
    x029 = call(SRV0, "ipi", 0x40, prio(4)) + call(SRV0, "xirr") + call(SRV0, "eoi", 0x80) + call(SRV0, "ipi", 0x40, 0x60)
    two = (bytes([OP_CONNECT, SRV1]) + call(SRV1, "cppr", 0x60) + set_xive(IRQ16, SRV0, 5) + set_xive(IRQ16 + 1, SRV1, 5)
           + line(IRQ16, LV_SET) + line(IRQ16 + 1, LV_SET) + set_xive(IRQ16 + 2, SRV0, 3) + line(IRQ16 + 2, LV_SET)
           + bytes([OP_EXPORT]) + call(SRV1, "xirr") + call(SRV0, "eoi", xirr_of(IRQ16 + 2)))
    words = bytes([OP_SET_SRC, IRQ16, 0x05, 0]) + bytes([OP_SET_ICP, SRV0, 0xC4]) + struct.pack("<Q", 0xFF000010FF050000)
    batch = bytes([OP_BATCH, 4, IRQ16, LV_SET, IRQ16 + 1, LV_SET, 0xA0, LV_SET, IRQ32, LV_1])
    return [x008, x009, x013, x016, x029, two, words, batch, x008 + bytes([OP_EXPORT]) + x013]


# ---- fuzz_ring programs (encoding: see fuzz/fuzz_ring.c) ----
def ring_seeds() -> list[bytes]:
    post = lambda *e: bytes([0, len(e)]) + b"".join(bytes([irq, lv]) for irq, lv in e)  # noqa: E731
    seeds = [
        bytes([0]) + post((0, 2), (1, 2), (16, 1)),                           # X-008-like MSIs, an LSI assert
        bytes([0]) + post((0, 2), (0, 2), (0, 2)) + post((16, 1), (16, 0)),   # coalescing, LSI deassert
        bytes([0]) + post((0xE0, 2)) + b"\x00\x00\x00\x00" + post((0, 5)),   # bad irq and bad level
        bytes([0, 2, 3]),                                                    # garbage head inside the window
        bytes([0, 0x82]) + struct.pack("<Q", 1 << 40) + post((0, 2)),        # head far past it: resync
        bytes([0, 3, 2]) + struct.pack("<QQ", 16 | SET << 32, 0xFFFFFFFF_00000001),   # raw slots
        bytes([1]) + struct.pack("<I", 0x12345678),                          # bad magic
        bytes([3]) + struct.pack("<I", 2),                                   # bad version
        bytes([5]) + struct.pack("<I", 32),                                  # wrong entries
        bytes([7]) + struct.pack("<Q", 5) + post((0, 2)),                    # head ahead at setup (in window)
        bytes([7]) + struct.pack("<Q", 100),                                 # head past the window at setup
        bytes([0x80 | 5]),                                                   # log2 the memfd is too small for
    ]
    return seeds


def write(target: str, seeds: list[bytes]) -> None:
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    for old in d.glob("seed-*"):
        old.unlink()
    for s in seeds:
        (d / f"seed-{hashlib.sha1(s).hexdigest()[:16]}").write_bytes(s)
    print(f"{target}: {len(seeds)} seeds")


def main() -> None:
    reqs, reps = dump_records()
    write("fuzz_wire", reqs + wire_seeds())
    write("fuzz_client", reps)
    write("fuzz_core", core_seeds())
    write("fuzz_ring", ring_seeds())


if __name__ == "__main__":
    main()
