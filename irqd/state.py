"""Restart without losing state (abi.md section 6).

A restart is the same program taking its own state back, so it carries the
complete internal state: every entry of every ICS (with ``resend``,
``masked_pending``, P/Q, counters), every ICP (``need_resend``,
``resend_map``, ``out_ee``, rises, counters), handles and the next-handle
counter, owners, flags, ``generation``, irqfd and output registrations with
their eventfds.  The listening socket survives as systemd's (irqd.socket);
a socket the daemon bound itself is removed on exit and bound anew.

Two carriers:

* **systemd's fd store** (``--fd-store``, as irqd.service passes, or when
  systemd sets ``$FDSTORE``): on SIGTERM the
  daemon parks a sealed memfd holding the state (``FDNAME=irqd-state``),
  and every eventfd (``irqd-efd-<handle>-<n>``); systemd hands them back in
  ``LISTEN_FDS`` / ``LISTEN_FDNAMES`` to the next start (``systemctl restart``,
  ``Restart=on-failure``; the unit sets ``FileDescriptorStoreMax=``).
* **``--state-file PATH``** (tests, manual use): the same blob in a file,
  written atomically, mode 0600.  A file cannot hold eventfds: irqfd and
  output registrations are dropped (logged), everything else comes back.

Devices come back without holders: a non-PERSIST device waits
``--reattach-grace`` seconds for a client to ATTACH (irqd.client does so
transparently when it reconnects), then is destroyed as if its last holder
had closed.

Blob layout: ``MAGIC``, u32 length of a JSON header, the header, then per
device its raw source entries (``struct irqd_xics_raw_source``) and raw ICPs
(``struct irqd_xics_raw_icp``) as the core exports them.  The header records
both struct sizes: the blob is only for the build that wrote it.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import struct
import time

from irqd import sd
from irqd._core import ffi, lib

log = logging.getLogger("irqd")

MAGIC = b"IRQD-RESTART\n"
VERSION = 1
STATE_NAME = "irqd-state"
CHUNK = 4096


class StateError(Exception):
    """A saved state exists but cannot be restored: the daemon refuses to start."""


# ---------------------------------------------------------------------------
# encoding

def _export(x, what: str):
    """All raw entries of one kind (sources / icps) as one bytes object."""
    ctype = "struct irqd_xics_raw_source" if what == "sources" else "struct irqd_xics_raw_icp"
    fn = lib.irqd_xics_export_sources if what == "sources" else lib.irqd_xics_export_icps
    arr = ffi.new(f"{ctype}[]", CHUNK)
    size = ffi.sizeof(ctype)
    parts, n, start = [], 0, 0
    while True:
        got = fn(x, start, arr, CHUNK)
        if not got:
            break
        parts.append(bytes(ffi.buffer(arr, got * size)))
        n += got
        last = arr[got - 1].irq if what == "sources" else arr[got - 1].server
        if got < CHUNK or last == 0xFFFFFFFF:
            break
        start = last + 1
    return b"".join(parts), n


def encode(daemon) -> tuple[bytes, list[tuple[int, str]]]:
    """The state blob, and the (fd, name) pairs of the eventfds it names."""
    header = {
        "format": "irqd-restart", "version": VERSION, "saved_at": time.time(),
        "raw_source_size": ffi.sizeof("struct irqd_xics_raw_source"),
        "raw_icp_size": ffi.sizeof("struct irqd_xics_raw_icp"),
        "next_handle": daemon.next_handle, "devices": [],
    }
    blobs, fds = [], []
    for handle in sorted(daemon.devices):
        dev = daemon.devices[handle]
        src, nsrc = _export(dev.x, "sources")
        icp, nicp = _export(dev.x, "icps")
        irqfds, outputs = [], []
        for gsi in sorted(dev.irqfds):
            for f in dev.irqfds[gsi]:
                names = []
                for fd in (f.fd, f.resample_fd):
                    if fd is not None:
                        name = f"irqd-efd-{handle}-{len(fds)}"
                        fds.append((fd, name))
                        names.append(name)
                irqfds.append({"gsi": gsi, "fd": names[0], "resample_fd": names[1] if len(names) > 1 else None})
        for server in sorted(dev.outputs):
            name = f"irqd-efd-{handle}-{len(fds)}"
            fds.append((dev.outputs[server], name))
            outputs.append({"server": server, "fd": name, "signalled": dev.signalled.get(server, 0)})
        header["devices"].append({
            "handle": handle, "owner": dev.owner, "flags": dev.flags, "holders": len(dev.holders),
            "generation": lib.irqd_xics_generation(dev.x), "dropped": dev.dropped,
            "sources": nsrc, "icps": nicp, "irqfds": irqfds, "outputs": outputs,
        })
        blobs += [src, icp]
    head = json.dumps(header, separators=(",", ":")).encode()
    return MAGIC + struct.pack("<I", len(head)) + head + b"".join(blobs), fds


def decode(blob: bytes) -> tuple[dict, list[tuple[bytes, bytes]]]:
    """Parse a blob: (header, [(raw sources, raw icps)] per device)."""
    if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + 4:
        raise StateError("not an irqd restart state (bad magic)")
    (hlen,) = struct.unpack_from("<I", blob, len(MAGIC))
    off = len(MAGIC) + 4
    try:
        header = json.loads(blob[off:off + hlen])
    except ValueError as e:
        raise StateError(f"restart state header is corrupt: {e}") from None
    off += hlen
    if header.get("format") != "irqd-restart" or header.get("version") != VERSION:
        raise StateError(f"restart state format {header.get('format')!r} v{header.get('version')} "
                         f"is not irqd-restart v{VERSION}")
    ssz, isz = ffi.sizeof("struct irqd_xics_raw_source"), ffi.sizeof("struct irqd_xics_raw_icp")
    if header.get("raw_source_size") != ssz or header.get("raw_icp_size") != isz:
        raise StateError("restart state was written by a different build (raw struct sizes differ)")
    parts = []
    for d in header["devices"]:
        a, b = off + d["sources"] * ssz, off + d["sources"] * ssz + d["icps"] * isz
        if b > len(blob):
            raise StateError(f"restart state is truncated (device {d['handle']})")
        parts.append((blob[off:a], blob[a:b]))
        off = b
    return header, parts


# ---------------------------------------------------------------------------
# restoring

def _import(x, raw: bytes, what: str) -> None:
    ctype = "struct irqd_xics_raw_source" if what == "sources" else "struct irqd_xics_raw_icp"
    fn = lib.irqd_xics_import_source if what == "sources" else lib.irqd_xics_import_icp
    size = ffi.sizeof(ctype)
    item = ffi.new(ctype + " *")
    for off in range(0, len(raw), size):
        ffi.memmove(item, raw[off:off + size], size)
        rc = fn(x, item)
        if rc < 0:
            raise StateError(f"restart state: importing a {what[:-1]} failed: {os.strerror(-rc)}")


def restore(daemon, blob: bytes, fds: dict[str, int]) -> list[str]:
    """Rebuild every device of a blob into the daemon; returns the fd names used."""
    from irqd.daemon import Device, IrqFd

    header, parts = decode(blob)
    used: list[str] = []
    grace_until = time.monotonic() + daemon.limits.reattach_grace
    for d, (src, icp) in zip(header["devices"], parts):
        x = lib.irqd_xics_new()
        if x == ffi.NULL:
            raise StateError("out of memory restoring the state")
        try:
            _import(x, icp, "icps")      # ICPs first, then sources (xics.h)
            _import(x, src, "sources")
        except StateError:
            lib.irqd_xics_free(x)
            raise
        handle = d["handle"]
        rc = lib.irqd_registry_add(daemon.reg, handle, x, d["owner"])
        if rc < 0:
            lib.irqd_xics_free(x)
            raise StateError(f"restart state: device {handle} cannot be registered: {os.strerror(-rc)}")
        dev = Device(handle, x, d["owner"], d["flags"])
        dev.dropped = d.get("dropped", 0)
        if not dev.persist:
            dev.orphan_deadline = grace_until
        daemon.devices[handle] = dev
        for r in d["irqfds"]:
            fd, rfd = fds.get(r["fd"]), fds.get(r["resample_fd"]) if r["resample_fd"] else None
            if fd is None or (r["resample_fd"] and rfd is None):
                log.warning("device %d: irqfd of gsi %d lost in the restart (its eventfd did not come back)",
                            handle, r["gsi"])
                continue
            if rfd is not None and lib.irqd_xics_set_resample(x, r["gsi"], 1) < 0:
                raise StateError(f"restart state: cannot flag gsi {r['gsi']} for resample")
            f = IrqFd(dev, r["gsi"], fd, rfd)
            dev.irqfds.setdefault(r["gsi"], []).append(f)
            daemon.watch_irqfd(f)
            used += [r["fd"]] + ([r["resample_fd"]] if rfd is not None else [])
        for o in d["outputs"]:
            fd = fds.get(o["fd"])
            if fd is None:
                log.warning("device %d: output eventfd of server %d lost in the restart", handle, o["server"])
                continue
            dev.outputs[o["server"]] = fd
            dev.signalled[o["server"]] = o["signalled"]
            used.append(o["fd"])
        lib.irqd_xics_set_generation(x, d["generation"])  # last: re-flagging resample counts as a change
        daemon.signal_device(dev)   # rises or acks owed across the restart
    daemon.next_handle = max(daemon.next_handle, header["next_handle"])
    log.info("restored %d device(s) from the restart state (saved %.1f s ago)", len(header["devices"]),
             time.time() - header.get("saved_at", time.time()))
    return used


def _read_fd(fd: int) -> bytes:
    parts, off = [], 0
    while True:
        chunk = os.pread(fd, 1 << 20, off)
        if not chunk:
            return b"".join(parts)
        parts.append(chunk)
        off += len(chunk)


# ---------------------------------------------------------------------------
# saving

def _memfd(blob: bytes) -> int:
    fd = os.memfd_create(STATE_NAME, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    view = memoryview(blob)
    while view:
        view = view[os.write(fd, view):]
    fcntl.fcntl(fd, fcntl.F_ADD_SEALS,
                fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE)
    return fd


def save_to_file(daemon, path: str) -> None:
    blob, fds = encode(daemon)
    if fds:
        log.warning("--state-file cannot carry eventfds: %d irqfd/output registration(s) will not survive",
                    len(fds))
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(blob)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    log.info("saved %d device(s) to %s (%d bytes)", len(daemon.devices), path, len(blob))


def save_to_fdstore(daemon) -> None:
    blob, fds = encode(daemon)
    memfd = _memfd(blob)
    try:
        sd.fdstore_remove(STATE_NAME)
        ok = sd.fdstore(memfd, STATE_NAME)
    finally:
        os.close(memfd)
    for fd, name in fds:
        ok = sd.fdstore(fd, name) and ok
    if ok:
        log.info("handed %d device(s) and %d eventfd(s) to the fd store", len(daemon.devices), len(fds))
    else:
        log.warning("the fd store did not take the restart state: devices will not survive")


# ---------------------------------------------------------------------------
# the daemon's hook

def attach(daemon, args, extra_fds: list[tuple[int, str]]) -> None:
    """Restore what the fd store or --state-file holds; register the saving hook."""
    by_name = {name: fd for fd, name in extra_fds}
    used: set[str] = set()
    if STATE_NAME in by_name:
        blob = _read_fd(by_name[STATE_NAME])
        used.update(restore(daemon, blob, by_name))
        used.add(STATE_NAME)
    elif args.state_file and os.path.exists(args.state_file):
        with open(args.state_file, "rb") as f:
            blob = f.read()
        used.update(restore(daemon, blob, by_name))
    for fd, name in extra_fds:
        if name not in used:
            os.close(fd)
        if name.startswith("irqd-"):
            sd.fdstore_remove(name)  # taken back: the next save stores the current set
    if args.fd_store or os.environ.get("FDSTORE"):  # systemd >= 254 sets $FDSTORE to FileDescriptorStoreMax
        daemon.on_shutdown.append(save_to_fdstore)
    if args.state_file:
        daemon.on_shutdown.append(lambda d: save_to_file(d, args.state_file))
