"""irqctl: inspect and drive an irqd daemon from the shell.

``irqctl [--socket PATH] [--json] COMMAND ...``; ``irqctl COMMAND --help``
for each command.  Every command is its own connection, so ``create`` makes
PERSIST devices (they would die with irqctl otherwise) and ``destroy`` is how
they go away (decisions.md).  Output is a human-readable table, or JSON with
``--json``.  Exit status: 0 success, 1 the operation failed (the daemon's
errno and extended-ack message are printed, e.g. ``irqctl: trigger: Invalid
argument: irq 48 is not configured``), 2 usage error.  Numbers are decimal or
``0x`` hex.

Saved state file (``save`` / ``restore``), JSON, written atomically (a
temporary file in the same directory, fsync, rename)::

    {
      "format": "irqd-state",          # fixed
      "version": 1,                    # this layout; readers refuse newer ones
      "saved": "2026-11-25T12:00:00Z", # UTC, informational
      "source": {"socket": "...", "handle": 3, "generation": 42},  # informational
      "sources": [{"irq": 16, "state": "0x000002ff00000000"}, ...],  # ascending irq
      "icps": [{"server": 0, "state": "0x00000000ffff0000"}, ...]     # ascending server
    }

``state`` words are exactly what DUMP_STATE (GET_DEVICE_ATTR / GET_ONE_REG)
return, as hex strings (64-bit values do not survive every JSON parser as
numbers).  ``restore`` puts them into an empty device with RESTORE_BEGIN,
CONNECT_VCPU + SET_DEVICE_ATTR + SET_ONE_REG, RESTORE_COMMIT: all or nothing.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
from collections.abc import Callable
from typing import Any

from irqd import protocol as P
from irqd._core import lib
from irqd.backend import SET, DeviceState
from irqd.client import Client, RemoteXics
from irqd.errors import IrqdError

STATE_FORMAT = "irqd-state"
STATE_VERSION = 1


class UsageError(Exception):
    """Bad command-line input that argparse could not catch (exit 2)."""


class Failure(Exception):
    """The operation did not succeed (exit 1) for a reason that is not an errno."""


def num(text: str) -> int:
    """Decimal or 0x hex, non-negative."""
    t = text.strip().lower()
    try:
        v = int(t, 16) if t.startswith("0x") else int(t, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r} (decimal or 0x hex)") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
    return v


# ---- decoding state words (xics-constants.md sections 2 and 3) ---------------------


def decode_source(irq: int, word: int) -> dict[str, Any]:
    prio = (word >> lib.IRQD_KVM_XICS_PRIORITY_SHIFT) & lib.IRQD_KVM_XICS_PRIORITY_MASK
    masked = bool(word & lib.IRQD_KVM_XICS_MASKED)
    return {
        "irq": irq,
        "state": f"{word:#018x}",
        "server": (word >> lib.IRQD_KVM_XICS_DESTINATION_SHIFT) & lib.IRQD_KVM_XICS_DESTINATION_MASK,
        # a masked source reports its saved priority in the priority field
        "priority": lib.IRQD_XICS_MASKED if masked else prio,
        "saved_priority": prio,
        "masked": masked,
        "type": "level" if word & lib.IRQD_KVM_XICS_LEVEL_SENSITIVE else "edge",
        "pending": bool(word & lib.IRQD_KVM_XICS_PENDING),
        "presented": bool(word & lib.IRQD_KVM_XICS_PRESENTED),
        "queued": bool(word & lib.IRQD_KVM_XICS_QUEUED),
    }


def decode_icp(server: int, word: int) -> dict[str, Any]:
    def f(name: str) -> int:
        return (word >> getattr(lib, f"IRQD_KVM_REG_PPC_ICP_{name}_SHIFT")) & getattr(
            lib, f"IRQD_KVM_REG_PPC_ICP_{name}_MASK"
        )

    return {
        "server": server,
        "state": f"{word:#018x}",
        "cppr": f("CPPR"),
        "xisr": f("XISR"),
        "mfrr": f("MFRR"),
        "pending_pri": f("PPRI"),
    }


def table(rows: list[list[Any]], header: list[str]) -> str:
    cells = [header] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(r, widths)).rstrip() for r in cells)


def flag_names(flags: int) -> str:
    names = []
    if flags & lib.IRQD_CREATE_PERSIST:
        names.append("persist")
    rest = flags & ~lib.IRQD_CREATE_PERSIST
    if rest:
        names.append(f"{rest:#x}")
    return ",".join(names) or "-"


def yn(b: bool) -> str:
    return "yes" if b else "no"


# ---- state file --------------------------------------------------------------------


def state_to_json(state: DeviceState, meta: dict[str, Any]) -> dict[str, Any]:
    return {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "saved": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "source": meta,
        "sources": [{"irq": i, "state": f"{w:#018x}"} for i, w in sorted(state.sources.items())],
        "icps": [{"server": s, "state": f"{w:#018x}"} for s, w in sorted(state.icps.items())],
    }


def state_from_json(doc: Any) -> DeviceState:
    if not isinstance(doc, dict) or doc.get("format") != STATE_FORMAT:
        raise Failure(f'not an irqd state file ("format" is not {STATE_FORMAT!r})')
    v = doc.get("version")
    if v != STATE_VERSION:
        raise Failure(
            f"state file version {v!r} is not supported (this irqctl reads version {STATE_VERSION})"
        )
    st = DeviceState()

    def word(entry: Any, key: str, where: str) -> tuple[int, int]:
        try:
            k = entry[key]
            s = entry["state"]
            if not isinstance(k, int) or isinstance(k, bool) or k < 0 or not isinstance(s, str):
                raise TypeError
            w = int(s, 16)
            if not 0 <= w < 1 << 64:
                raise ValueError
            return k, w
        except (KeyError, TypeError, ValueError):
            raise Failure(f"bad {where} entry: {entry!r}") from None

    for e in doc.get("sources", []):
        k, w = word(e, "irq", "sources")
        if k in st.sources:
            raise Failure(f"irq {k} appears twice")
        st.sources[k] = w
    for e in doc.get("icps", []):
        k, w = word(e, "server", "icps")
        if k in st.icps:
            raise Failure(f"server {k} appears twice")
        st.icps[k] = w
    return st


def write_atomically(path: str, text: str) -> None:
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=d)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


class Progress:
    """A progress bar on stderr, only when it is a terminal and the job is large."""

    def __init__(self, label: str, stream=None, min_total: int = 2000):
        self.label = label
        self.stream = stream or sys.stderr
        self.min_total = min_total
        self.active = False
        self.last = -1

    def __call__(self, done: int, total: int) -> None:
        if total < self.min_total or not self.stream.isatty():
            return
        self.active = True
        pct = done * 100 // total
        if pct == self.last and done != total:
            return
        self.last = pct
        bar = "#" * (pct * 30 // 100)
        self.stream.write(f"\r{self.label} [{bar:<30}] {done}/{total} {pct:3d}%")
        self.stream.flush()

    def finish(self) -> None:
        if self.active:
            self.stream.write("\n")
            self.stream.flush()


# ---- commands ------------------------------------------------------------------------
# Each returns (json-able object, human text).


def _dev(c: Client, handle: int) -> RemoteXics:
    # any connection of the owner uid may use a handle; holding only decides
    # lifetime, so irqctl does not ATTACH
    return RemoteXics(c, handle)


def cmd_hello(c: Client, a) -> tuple[Any, str]:
    h = c.hello
    obj = {
        "socket": c.path,
        "version": h.version,
        "features": h.features,
        "max_record": h.max_record,
        "max_devices": h.max_devices,
        "max_servers": h.max_servers,
        "max_irqs": h.max_irqs,
        "max_fds": h.max_fds,
    }
    feats = [n for n in ("RING",) if h.features & getattr(lib, "IRQD_FEAT_" + n)]
    text = "\n".join(
        [
            f"socket       {c.path}",
            f"version      {h.version}",
            f"features     {h.features:#x}" + (f" ({', '.join(feats)})" if feats else ""),
            f"max_record   {h.max_record}",
            f"max_devices  {h.max_devices} per uid",
            f"max_servers  {h.max_servers}",
            f"max_irqs     {h.max_irqs} (interrupt numbers {lib.IRQD_KVMPPC_XICS_FIRST_IRQ}..{h.max_irqs - 1})",
            f"max_fds      {h.max_fds} per record",
        ]
    )
    return obj, text


def cmd_list(c: Client, a) -> tuple[Any, str]:
    devs = c.list_devices()
    obj = [d.__dict__.copy() for d in devs]
    rows = [
        [
            d.handle,
            d.owner_uid,
            flag_names(d.flags),
            d.nr_ics,
            d.nr_sources,
            d.nr_servers,
            d.holders,
            d.generation,
        ]
        for d in devs
    ]
    hdr = ["HANDLE", "UID", "FLAGS", "ICS", "SOURCES", "SERVERS", "HOLDERS", "GENERATION"]
    return obj, table(rows, hdr) if devs else "no devices"


def cmd_create(c: Client, a) -> tuple[Any, str]:
    dev = c.create_device(persist=True)
    assert dev is not None
    return {"handle": dev.handle, "flags": lib.IRQD_CREATE_PERSIST}, str(dev.handle)


def cmd_destroy(c: Client, a) -> tuple[Any, str]:
    c.destroy(a.handle)
    return {"handle": a.handle, "destroyed": True}, f"device {a.handle} destroyed"


def _show(c: Client, handle: int) -> dict[str, Any]:
    info = c.device_info(handle)
    st = _dev(c, handle).dump()
    sources = [decode_source(i, w) for i, w in sorted(st.sources.items())]
    blocks: dict[int, list[int]] = {}
    for i in st.sources:
        blocks.setdefault(i >> lib.IRQD_KVMPPC_XICS_ICS_SHIFT, []).append(i)
    ics = [
        {
            "id": b,
            "first": b << lib.IRQD_KVMPPC_XICS_ICS_SHIFT,
            "last": ((b + 1) << lib.IRQD_KVMPPC_XICS_ICS_SHIFT) - 1,
            "configured": len(v),
            "level": sum(1 for i in v if st.sources[i] & lib.IRQD_KVM_XICS_LEVEL_SENSITIVE),
        }
        for b, v in sorted(blocks.items())
    ]
    return {
        "info": info.__dict__.copy(),
        "ics": ics,
        "sources": sources,
        "servers": [decode_icp(s, w) for s, w in sorted(st.icps.items())],
    }


def cmd_show(c: Client, a) -> tuple[Any, str]:
    obj = _show(c, a.handle)
    i = obj["info"]
    out = [
        (
            f"device {i['handle']}: owner uid {i['owner_uid']}, flags {flag_names(i['flags'])}, "
            f"{i['holders']} holder(s), generation {i['generation']}"
        ),
        "",
        (
            f"ICS blocks ({len(obj['ics'])}; sources configured in them, "
            f"{lib.IRQD_KVMPPC_XICS_IRQ_PER_ICS} numbers each):"
        ),
    ]
    if obj["ics"]:
        out.append(
            table(
                [[b["id"], f"{b['first']}-{b['last']}", b["configured"], b["level"]] for b in obj["ics"]],
                ["ICS", "RANGE", "CONFIGURED", "LEVEL"],
            )
        )
    out += ["", f"sources ({len(obj['sources'])}):"]
    if obj["sources"]:
        rows = []
        for s in obj["sources"]:
            pq = ("P" if s["presented"] else "-") + ("Q" if s["queued"] else "-")
            rows.append(
                [
                    s["irq"],
                    s["type"],
                    s["server"],
                    "masked" if s["masked"] else f"{s['priority']:#04x}",
                    f"{s['saved_priority']:#04x}",
                    pq,
                    yn(s["pending"]),
                    s["state"],
                ]
            )
        out.append(table(rows, ["IRQ", "TYPE", "SERVER", "PRIORITY", "SAVED", "PQ", "PENDING", "STATE"]))
    out += ["", f"servers ({len(obj['servers'])}):"]
    if obj["servers"]:
        rows = [
            [
                s["server"],
                f"{s['cppr']:#04x}",
                f"{s['xisr']:#08x}",
                f"{s['mfrr']:#04x}",
                f"{s['pending_pri']:#04x}",
                s["state"],
            ]
            for s in obj["servers"]
        ]
        out.append(table(rows, ["SERVER", "CPPR", "XISR", "MFRR", "PENDING_PRI", "STATE"]))
    return obj, "\n".join(out)


def cmd_stats(c: Client, a) -> tuple[Any, str]:
    dev = _dev(c, a.handle)
    stats = dev.stats()
    state = dev.dump()
    sources = []
    for irq, (trig, deliv) in sorted(stats.sources.items()):
        w = state.sources.get(irq)
        d = decode_source(irq, w) if w is not None else None
        sources.append(
            {
                "irq": irq,
                "triggers": trig,
                "deliveries": deliv,
                "server": d["server"] if d else None,
                "priority": d["priority"] if d else None,
                "masked": d["masked"] if d else None,
                "type": d["type"] if d else None,
            }
        )
    servers = [
        {"server": s, "deliveries": v[0], "rejects": v[1], "resends": v[2], "ipis": v[3]}
        for s, v in sorted(stats.servers.items())
    ]
    obj = {"handle": a.handle, "sources": sources, "servers": servers}
    # /proc/interrupts style: one row per source, counters first
    rows = [
        [
            s["irq"],
            s["triggers"],
            s["deliveries"],
            "-" if s["server"] is None else s["server"],
            "-" if s["priority"] is None else f"{s['priority']:#04x}",
            "-" if s["masked"] is None else yn(s["masked"]),
            s["type"] or "-",
        ]
        for s in sources
    ]
    out = [table(rows, ["IRQ", "TRIGGERS", "DELIVERIES", "SERVER", "PRIORITY", "MASKED", "TYPE"])]
    out += [
        "",
        table(
            [[s["server"], s["deliveries"], s["rejects"], s["resends"], s["ipis"]] for s in servers],
            ["SERVER", "DELIVERIES", "REJECTS", "RESENDS", "IPIS"],
        ),
    ]
    return obj, "\n".join(out)


def cmd_dump(c: Client, a) -> tuple[Any, str]:
    st = _dev(c, a.handle).dump()
    obj = {
        "sources": {str(i): f"{w:#018x}" for i, w in sorted(st.sources.items())},
        "icps": {str(s): f"{w:#018x}" for s, w in sorted(st.icps.items())},
    }
    lines = [f"source {i} {w:#018x}" for i, w in sorted(st.sources.items())]
    lines += [f"icp {s} {w:#018x}" for s, w in sorted(st.icps.items())]
    return obj, "\n".join(lines)


def cmd_save(c: Client, a) -> tuple[Any, str]:
    dev = _dev(c, a.handle)
    st = dev.dump()
    info = c.device_info(a.handle)
    doc = state_to_json(st, {"socket": c.path, "handle": a.handle, "generation": info.generation})
    write_atomically(a.file, json.dumps(doc, indent=1) + "\n")
    obj = {"file": a.file, "sources": len(st.sources), "icps": len(st.icps)}
    return obj, f"saved {len(st.sources)} sources and {len(st.icps)} servers of device {a.handle} to {a.file}"


def cmd_restore(c: Client, a) -> tuple[Any, str]:
    try:
        with open(a.file) as f:
            doc = json.load(f)
    except json.JSONDecodeError as e:
        raise Failure(f"{a.file}: not JSON: {e}") from None
    try:
        st = state_from_json(doc)
    except Failure as e:
        raise Failure(f"{a.file}: {e}") from None
    bar = Progress("restore")
    try:
        _dev(c, a.handle).restore(st, progress=bar)
    finally:
        bar.finish()
    obj = {"handle": a.handle, "sources": len(st.sources), "icps": len(st.icps)}
    return obj, f"restored {len(st.sources)} sources and {len(st.icps)} servers into device {a.handle}"


def cmd_trigger(c: Client, a) -> tuple[Any, str]:
    level = {"edge": SET, "set": 1, "reset": 0}[a.how]
    _dev(c, a.handle).irq_line(a.irq, level)
    return {"handle": a.handle, "irq": a.irq, "level": level}, f"irq {a.irq}: {a.how}"


def cmd_ics(c: Client, a) -> tuple[Any, str]:
    _dev(c, a.handle).create_ics(a.first, a.count, level=a.level)
    kind = "level" if a.level else "edge"
    return (
        {"handle": a.handle, "first": a.first, "count": a.count, "type": kind},
        f"sources {a.first}..{a.first + a.count - 1} configured ({kind}, masked)",
    )


def cmd_connect(c: Client, a) -> tuple[Any, str]:
    _dev(c, a.handle).connect_vcpu(a.server)
    return {"handle": a.handle, "server": a.server}, f"server {a.server} connected"


RTAS_STATUS = {0: "success", -1: "hardware error", -2: "busy", -3: "parameter error"}
H_STATUS = {
    lib.IRQD_H_SUCCESS: "H_SUCCESS",
    lib.IRQD_H_HARDWARE: "H_HARDWARE",
    lib.IRQD_H_PARAMETER: "H_PARAMETER",
}


def _status_check(kind: str, status: int, names: dict[int, str]) -> None:
    if status != 0:
        raise Failure(f"{kind} status {status} ({names.get(status, 'unknown')})")


def cmd_xive(c: Client, a) -> tuple[Any, str]:
    st = _dev(c, a.handle).set_xive(a.irq, a.server, a.priority)
    _status_check("ibm,set-xive", st, RTAS_STATUS)
    return (
        {"handle": a.handle, "irq": a.irq, "server": a.server, "priority": a.priority, "status": st},
        f"irq {a.irq} -> server {a.server} priority {a.priority:#04x}",
    )


def cmd_cppr(c: Client, a) -> tuple[Any, str]:
    st = _dev(c, a.handle).h_cppr(a.server, a.cppr)
    _status_check("H_CPPR", st, H_STATUS)
    return {
        "handle": a.handle,
        "server": a.server,
        "cppr": a.cppr,
        "status": st,
    }, f"server {a.server} CPPR {a.cppr:#04x}"


def cmd_xirr(c: Client, a) -> tuple[Any, str]:
    st, xirr = _dev(c, a.handle).h_xirr(a.server)
    _status_check("H_XIRR", st, H_STATUS)
    xisr = xirr & 0xFFFFFF
    obj = {
        "handle": a.handle,
        "server": a.server,
        "status": st,
        "xirr": xirr,
        "cppr": xirr >> 24,
        "xisr": xisr,
    }
    what = "none pending" if xisr == 0 else ("IPI" if xisr == lib.IRQD_XICS_IPI else f"irq {xisr}")
    return obj, f"{xirr:#010x} ({what}; previous CPPR {xirr >> 24:#04x})"


def cmd_eoi(c: Client, a) -> tuple[Any, str]:
    st = _dev(c, a.handle).h_eoi(a.server, a.xirr)
    _status_check("H_EOI", st, H_STATUS)
    return {"handle": a.handle, "server": a.server, "xirr": a.xirr, "status": st}, f"EOI {a.xirr:#010x}"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="irqctl",
        description="Inspect and drive an irqd daemon (POWER XICS interrupt controller).",
        epilog="Numbers are decimal or 0x hex.  Exit status: 0 ok, 1 operation failed, 2 usage.",
    )
    p.add_argument(
        "--socket", metavar="PATH", help=f"daemon socket (default: $IRQD_SOCKET, else {P.DEFAULT_SOCKET})"
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def cmd(name: str, fn: Callable, help: str, *args: tuple[str, str]) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        for a, h in args:
            sp.add_argument(a, type=num, help=h)
        sp.set_defaults(fn=fn)
        return sp

    H = ("handle", "device handle (see 'irqctl list')")
    cmd("hello", cmd_hello, "show the daemon's ABI version, features and limits")
    cmd("list", cmd_list, "list your devices (root: all)")
    cmd("show", cmd_show, "show a device: ICS blocks, sources, servers (CPPR/XISR/MFRR decoded)", H)
    cmd("stats", cmd_stats, "per-source and per-server counters, /proc/interrupts style", H)
    cmd("dump", cmd_dump, "print the DUMP_STATE words (migration state)", H)
    sp = cmd("save", cmd_save, "save a device's state to a JSON file (atomically)", H)
    sp.add_argument("file", help="state file to write")
    sp = cmd("restore", cmd_restore, "restore a state file into an empty device (all or nothing)", H)
    sp.add_argument("file", help="state file written by 'irqctl save'")
    sp = cmd("trigger", cmd_trigger, "shoot an interrupt (IRQ_LINE)", H, ("irq", "interrupt number"))
    g = sp.add_mutually_exclusive_group(required=True)
    g.add_argument(
        "--edge", dest="how", action="store_const", const="edge", help="edge / MSI (KVM_INTERRUPT_SET)"
    )
    g.add_argument("--set", dest="how", action="store_const", const="set", help="assert the level (1)")
    g.add_argument("--reset", dest="how", action="store_const", const="reset", help="deassert the level (0)")
    cmd("create", cmd_create, "create a device (always PERSIST: it outlives irqctl); prints its handle")
    cmd("destroy", cmd_destroy, "destroy a device now", H)
    sp = cmd(
        "ics",
        cmd_ics,
        "configure sources FIRST..FIRST+COUNT-1 (masked)",
        H,
        ("first", "first interrupt number (>= 16)"),
        ("count", "how many"),
    )
    sp.add_argument("--level", action="store_true", help="level-sensitive (LSI) instead of edge (MSI)")
    cmd(
        "connect",
        cmd_connect,
        "create the presentation controller (ICP) of a server",
        H,
        ("server", "server number"),
    )
    cmd(
        "xive",
        cmd_xive,
        "route and prioritise a source (RTAS ibm,set-xive)",
        H,
        ("irq", "interrupt number"),
        ("server", "server number"),
        ("priority", "priority (0 most favoured, 0xff masked)"),
    )
    cmd(
        "cppr",
        cmd_cppr,
        "set a server's CPPR as its vCPU would (H_CPPR)",
        H,
        ("server", "server number"),
        ("cppr", "new CPPR (0xff accepts everything)"),
    )
    cmd(
        "xirr",
        cmd_xirr,
        "accept the pending interrupt as the server's vCPU (H_XIRR)",
        H,
        ("server", "server number"),
    )
    cmd(
        "eoi",
        cmd_eoi,
        "end an interrupt as the server's vCPU (H_EOI)",
        H,
        ("server", "server number"),
        ("xirr", "XIRR as returned by 'xirr'"),
    )
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        a = parser.parse_args(argv)
    except SystemExit as e:  # --help: 0, usage errors: 2
        return int(e.code or 0)
    path = a.socket or os.environ.get("IRQD_SOCKET") or P.DEFAULT_SOCKET
    try:
        client = Client(path, reconnect_attempts=1)
    except (OSError, ConnectionError) as e:
        print(f"irqctl: cannot connect to {path}: {e.strerror or e}", file=sys.stderr)
        return 1
    try:
        obj, text = a.fn(client, a)
    except IrqdError as e:
        reason = os.strerror(e.errno)
        msg = e.strerror if e.strerror and e.strerror != reason else None
        print(f"irqctl: {a.command}: {reason}" + (f": {msg}" if msg else ""), file=sys.stderr)
        return 1
    except (Failure, ConnectionError) as e:
        print(f"irqctl: {a.command}: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # files (save / restore)
        print(
            f"irqctl: {a.command}: {e.filename + ': ' if e.filename else ''}{e.strerror or e}",
            file=sys.stderr,
        )
        return 1
    except ValueError as e:  # a number that does not fit its wire field
        print(f"irqctl: {a.command}: {e}", file=sys.stderr)
        return 2
    finally:
        client.close()
    if a.json:
        print(json.dumps(obj, indent=2))
    elif text:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
