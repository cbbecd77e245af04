#!/usr/bin/env python3
"""Write the seed corpus of fuzz/atheris/fuzz_daemon.py into fuzz/atheris/corpus/.

One file per seed: byte 0 = how many eventfds travel with the record (0-4),
then the record.  Seeds: one valid request of every operation on device 1
(the target's pre-configured device), the same with NLM_F_ACK, fd-taking
messages with the right and wrong fd counts, multi-message records, a
restore sequence, a batch, and every golden vector's record
(tests/golden/*.dump).  Deterministic: re-running it rewrites the same files.
"""

from __future__ import annotations

import hashlib
import struct
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

from irqd._core import lib

HDR = struct.Struct("<IHHII")
R, A = 1, 4
ICP = lib.IRQD_KVM_REG_PPC_ICP_STATE


def m(t, pl=b"", f=R | A, seq=1):
    data = HDR.pack(16 + len(pl), t, f, seq, 0) + pl
    return data + bytes(-len(data) % 4)


def seeds():
    h = 1
    yield "hello", 0, m(lib.IRQD_MSG_HELLO, struct.pack("<8I", 1, 0, 0, 0, 0, 0, 0, 0), R)
    yield "create", 0, m(lib.IRQD_MSG_CREATE_DEVICE, struct.pack("<4I", 3, 0, 0, 0), R)
    yield "create_persist", 0, m(lib.IRQD_MSG_CREATE_DEVICE, struct.pack("<4I", 3, 0, 2, 0), R)
    yield "create_test", 0, m(lib.IRQD_MSG_CREATE_DEVICE, struct.pack("<4I", 3, 0, 1, 0), R)
    yield "attach", 0, m(lib.IRQD_MSG_ATTACH, struct.pack("<2I", h, 0))
    yield "destroy2", 0, m(lib.IRQD_MSG_DESTROY_DEVICE, struct.pack("<2I", 2, 0))
    yield "list", 0, m(lib.IRQD_MSG_LIST_DEVICES, b"", R | 0x300)
    yield "irq_edge", 0, m(lib.IRQD_MSG_IRQ_LINE, struct.pack("<4I", h, 20, 0xFFFFFFFF, 0))
    yield "irq_level", 0, m(lib.IRQD_MSG_IRQ_LINE, struct.pack("<4I", h, 81, 1, 0), R)
    yield "batch", 0, m(lib.IRQD_MSG_IRQ_LINE_BATCH, struct.pack("<2I", h, 3) + struct.pack("<6I", 20, 1, 81, 1, 81, 0))
    yield "set_attr", 0, m(lib.IRQD_MSG_SET_DEVICE_ATTR, struct.pack("<4IQQ", h, 0, 1, 0, 30, 5 << 32 | 1))
    yield "get_attr", 0, m(lib.IRQD_MSG_GET_DEVICE_ATTR, struct.pack("<4IQQ", h, 0, 1, 0, 30, 0), R)
    yield "has_attr", 0, m(lib.IRQD_MSG_HAS_DEVICE_ATTR, struct.pack("<4IQQ", h, 0, 1, 0, 30, 0), R)
    yield "create_ics", 0, m(lib.IRQD_MSG_CREATE_ICS, struct.pack("<4I", h, 2000, 16, 1))
    yield "connect", 0, m(lib.IRQD_MSG_CONNECT_VCPU, struct.pack("<4I", h, 3, 0, 0))
    yield "get_reg", 0, m(lib.IRQD_MSG_GET_ONE_REG, struct.pack("<2IQQ", h, 0, ICP, 0), R)
    yield "set_reg", 0, m(lib.IRQD_MSG_SET_ONE_REG, struct.pack("<2IQQ", h, 0, ICP, 0xFF << 56 | 0xFF << 24 | 0xFF << 16))
    for nr, args in ((lib.IRQD_H_XIRR, ()), (lib.IRQD_H_XIRR_X, ()), (lib.IRQD_H_EOI, (0xFF000014,)),
                     (lib.IRQD_H_CPPR, (0xFF,)), (lib.IRQD_H_IPI, (1, 4)), (lib.IRQD_H_IPOLL, (0,))):
        regs = list(args) + [0] * (4 - len(args))
        yield f"hcall_{nr:x}", 0, m(lib.IRQD_MSG_HCALL, struct.pack("<2IQ4Q", h, 0, nr, *regs), R)
    for tok, na, nr, args in ((1, 3, 1, (20, 1, 5)), (2, 1, 3, (20,)), (3, 1, 1, (20,)), (4, 1, 1, (20,))):
        buf = list(args) + [0] * (12 - len(args))
        yield f"rtas_{tok}", 0, m(lib.IRQD_MSG_RTAS, struct.pack("<4I12I", h, tok, na, nr, *buf), R)
    yield "irqfd", 1, m(lib.IRQD_MSG_IRQFD, struct.pack("<4I", h, 20, 0, 0))
    yield "irqfd_resample", 2, m(lib.IRQD_MSG_IRQFD, struct.pack("<4I", h, 81, 2, 0))
    yield "irqfd_deassign", 0, m(lib.IRQD_MSG_IRQFD, struct.pack("<4I", h, 20, 1, 0))
    yield "irqfd_wrong_count", 3, m(lib.IRQD_MSG_IRQFD, struct.pack("<4I", h, 20, 0, 0))
    yield "output", 1, m(lib.IRQD_MSG_SET_OUTPUT, struct.pack("<4I", h, 0, 0, 0))
    yield "output_deassign", 0, m(lib.IRQD_MSG_SET_OUTPUT, struct.pack("<4I", h, 0, 1, 0))
    yield "dump", 0, m(lib.IRQD_MSG_DUMP_STATE, struct.pack("<2I", h, 0), R)
    yield "stats", 0, m(lib.IRQD_MSG_GET_STATS, struct.pack("<2I", h, 0), R)
    # a whole restore into a new device (handle 2 on a fresh daemon), in one record
    rest = [m(lib.IRQD_MSG_CREATE_DEVICE, struct.pack("<4I", 3, 0, 0, 0), R, 1),
            m(lib.IRQD_MSG_RESTORE_BEGIN, struct.pack("<2I", 2, 0), R | A, 2),
            m(lib.IRQD_MSG_CONNECT_VCPU, struct.pack("<4I", 2, 0, 0, 0), R | A, 3),
            m(lib.IRQD_MSG_SET_DEVICE_ATTR, struct.pack("<4IQQ", 2, 0, 1, 0, 20, 5 << 32 | 1 << 42), R | A, 4),
            m(lib.IRQD_MSG_SET_ONE_REG, struct.pack("<2IQQ", 2, 0, ICP, 0xFF << 56 | 0xFF << 24 | 0xFF << 16), R | A, 5),
            m(lib.IRQD_MSG_RESTORE_COMMIT, struct.pack("<2I", 2, 0), R | A, 6)]
    yield "restore", 0, b"".join(rest)
    yield "restore_abort", 0, b"".join(rest[:4]) + m(lib.IRQD_MSG_RESTORE_ABORT, struct.pack("<2I", 2, 0), R | A, 7)
    yield "mixed", 1, b"".join([
        m(lib.IRQD_MSG_IRQ_LINE, struct.pack("<4I", h, 21, 0xFFFFFFFF, 0), R, 1),
        m(lib.IRQD_MSG_HCALL, struct.pack("<2IQ4Q", h, 1, lib.IRQD_H_XIRR, 0, 0, 0, 0), R, 2),
        m(lib.IRQD_MSG_IRQFD, struct.pack("<4I", h, 22, 0, 0), R | A, 3),
        m(lib.IRQD_MSG_DUMP_STATE, struct.pack("<2I", h, 0), R, 4),
        m(lib.IRQD_MSG_NOOP, b"", R | A, 5)])
    for p in sorted((ROOT / "tests" / "golden").glob("*.dump")):
        hexpart = []
        for line in p.read_text().splitlines():
            if line.startswith("#:"):
                break
            line = line.split("#", 1)[0].strip()
            if line:
                hexpart.append(line)
        data = bytes(int(x, 16) for x in ":".join(hexpart).split(":") if x)
        if data:
            yield f"golden_{p.stem}", 0, data


def main() -> None:
    out = HERE / "corpus"
    out.mkdir(exist_ok=True)
    n = 0
    for name, nfds, rec in seeds():
        data = bytes([nfds]) + rec
        (out / f"{name}-{hashlib.sha1(data).hexdigest()[:8]}").write_bytes(data)
        n += 1
    print(f"{n} seeds in {out}")


if __name__ == "__main__":
    main()
