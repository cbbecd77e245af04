"""include/irqd/abi.h: compiles on its own (C11 and C++11, warnings as
errors), and its layouts as cffi sees them agree with abi.md.

The expected sizes and offsets are taken out of place: from the struct
declarations printed in abi.md (``struct irqd_x { u32 a; u64 b; }`` (16 B)),
laid out by hand with natural alignment, and from a table copied from abi.md
below, so that a change to abi.h that abi.md does not follow fails here.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from irqd._core import ffi, lib

ROOT = Path(__file__).resolve().parents[1]
HEADER = ROOT / "include" / "irqd" / "abi.h"
ABI_MD = ROOT.parent / "shared" / "abi.md"

# (struct, size, {field: offset}) as abi.md sections 2 and 4 give them
EXPECTED = {
    "irqd_msghdr": (16, {"len": 0, "type": 4, "flags": 6, "seq": 8, "pid": 12}),
    "irqd_hello": (
        32,
        {
            "version": 0,
            "features": 4,
            "max_record": 8,
            "max_devices": 12,
            "max_servers": 16,
            "max_irqs": 20,
            "max_fds": 24,
            "reserved": 28,
        },
    ),
    "irqd_create_device": (16, {"type": 0, "handle": 4, "flags": 8, "reserved": 12}),
    "irqd_handle": (8, {"handle": 0, "reserved": 4}),
    "irqd_device_info": (
        40,
        {
            "handle": 0,
            "type": 4,
            "owner_uid": 8,
            "flags": 12,
            "nr_ics": 16,
            "nr_sources": 20,
            "nr_servers": 24,
            "holders": 28,
            "generation": 32,
        },
    ),
    "irqd_irq_level": (16, {"handle": 0, "irq": 4, "level": 8, "reserved": 12}),
    "irqd_irq_batch": (8, {"handle": 0, "count": 4}),
    "irqd_irq_batch_entry": (8, {"irq": 0, "level": 4}),
    "irqd_device_attr": (32, {"handle": 0, "flags": 4, "group": 8, "reserved": 12, "attr": 16, "value": 24}),
    "irqd_create_ics": (16, {"handle": 0, "first_irq": 4, "count": 8, "flags": 12}),
    "irqd_connect_vcpu": (16, {"handle": 0, "server": 4, "flags": 8, "reserved": 12}),
    "irqd_one_reg": (24, {"handle": 0, "server": 4, "id": 8, "value": 16}),
    "irqd_hcall": (48, {"handle": 0, "server": 4, "nr": 8, "reg": 16}),
    "irqd_rtas": (64, {"handle": 0, "token": 4, "nargs": 8, "nret": 12, "buf": 16}),
    "irqd_irqfd": (16, {"handle": 0, "gsi": 4, "flags": 8, "reserved": 12}),
    "irqd_output": (16, {"handle": 0, "server": 4, "flags": 8, "reserved": 12}),
    "irqd_source_state": (16, {"handle": 0, "irq": 4, "state": 8}),
    "irqd_icp_state": (16, {"handle": 0, "server": 4, "state": 8}),
    "irqd_source_stats": (16, {"handle": 0, "irq": 4, "triggers": 8, "deliveries": 12}),
    "irqd_server_stats": (
        24,
        {"handle": 0, "server": 4, "deliveries": 8, "rejects": 12, "resends": 16, "ipis": 20},
    ),
}

# numbers abi.md / xics-constants.md fix (spot checks of the cdef'd #defines)
NUMBERS = {
    "IRQD_MSG_HELLO": 0x10,
    "IRQD_MSG_IRQ_LINE": 0x15,
    "IRQD_MSG_HCALL": 0x1E,
    "IRQD_MSG_RTAS": 0x1F,
    "IRQD_MSG_DUMP_STATE": 0x22,
    "IRQD_MSG_RESTORE_ABORT": 0x29,
    "IRQD_H_XIRR": 0x74,
    "IRQD_H_XIRR_X": 0x2FC,
    "IRQD_H_EOI": 0x64,
    "IRQD_H_CPPR": 0x68,
    "IRQD_H_IPI": 0x6C,
    "IRQD_H_IPOLL": 0x70,
    "IRQD_H_PARAMETER": -4,
    "IRQD_KVM_REG_PPC_ICP_STATE": 0x103000000000008C,
    "IRQD_KVM_XICS_PENDING": 1 << 42,
    "IRQD_KVM_INTERRUPT_SET_LEVEL": 0xFFFFFFFD,
    "IRQD_KVMPPC_XICS_NR_IRQS": 1048576,
    "IRQD_XICS_IPI": 2,
    "IRQD_RTAS_PARAM_ERROR": -3,
}

_SIZES = {"u8": 1, "u16": 2, "u32": 4, "u64": 8, "s32": 4, "s64": 8}


def _compile(cmd: list[str], tmp_path: Path, src: str) -> None:
    f = tmp_path / src
    f.write_text('#include "irqd/abi.h"\nint main(void) { return 0; }\n')
    res = subprocess.run(
        cmd + ["-I", str(ROOT / "include"), str(f), "-o", str(tmp_path / "a.out")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0 and not res.stderr, res.stderr


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")
def test_abi_header_compiles_alone_as_c11(tmp_path):
    _compile(["gcc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic"], tmp_path, "t.c")


@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed")
def test_abi_header_compiles_alone_as_cxx11(tmp_path):
    _compile(["g++", "-std=c++11", "-Wall", "-Wextra", "-Werror"], tmp_path, "t.cc")


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")
def test_core_header_compiles_alone_as_c11(tmp_path):
    f = tmp_path / "core.c"
    f.write_text('#include "irqd/core/xics.h"\nint main(void) { return 0; }\n')
    res = subprocess.run(
        [
            "gcc",
            "-std=c11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-I",
            str(ROOT / "include"),
            "-I",
            str(ROOT),
            str(f),
            "-o",
            str(tmp_path / "a.out"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0 and not res.stderr, res.stderr


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_cffi_layout_matches_abi_md_table(name):
    size, offsets = EXPECTED[name]
    assert ffi.sizeof(f"struct {name}") == size
    for field, off in offsets.items():
        assert ffi.offsetof(f"struct {name}", field) == off, field


def _abi_md_structs() -> dict[str, tuple[int, dict[str, int]]]:
    """Lay out every `struct irqd_x { ... }` (N B) printed in abi.md."""
    text = ABI_MD.read_text()
    out = {}
    for m in re.finditer(r"`struct (irqd_\w+) \{([^`]*)\}`\s*\((\d+)", text):
        name, body, size = m.group(1), m.group(2), int(m.group(3))
        off, offsets = 0, {}
        for decl in body.split(";"):
            decl = decl.strip()
            if not decl:
                continue
            dm = re.match(r"(u8|u16|u32|u64|s32|s64)\s+(\w+)(?:\[(\w+)\])?$", decl)
            if not dm:  # nested anonymous struct (batch entries): stop there
                break
            t, field, n = dm.groups()
            align = _SIZES[t]
            off = (off + align - 1) // align * align
            offsets[field] = off
            count = int(n) if n and n.isdigit() else (0 if n else 1)
            off += align * count
        out[name] = (size, offsets)
    return out


@pytest.mark.skipif(not ABI_MD.exists(), reason="abi.md not available")
def test_cffi_layout_matches_structs_printed_in_abi_md():
    structs = _abi_md_structs()
    # the doc prints every struct of the table above (the contract is complete)
    missing = set(EXPECTED) - {"irqd_irq_batch_entry", "irqd_msghdr"} - set(structs)  # those two: tables
    assert not missing, missing
    for name, (size, offsets) in structs.items():
        assert ffi.sizeof(f"struct {name}") == size, name
        for field, off in offsets.items():
            assert ffi.offsetof(f"struct {name}", field) == off, f"{name}.{field}"


@pytest.mark.parametrize("name", sorted(NUMBERS))
def test_numbers_reach_python_from_the_header(name):
    assert getattr(lib, name) == NUMBERS[name]


def test_payloads_are_multiples_of_8():
    # abi.md section 1: every request payload is a multiple of 8 bytes
    for name in EXPECTED:
        if name != "irqd_msghdr":
            assert ffi.sizeof(f"struct {name}") % 8 == 0, name
