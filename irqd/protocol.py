"""irqd wire codec: one pyroute2 message class per struct of ``abi.h``.

Every class quotes its C struct (``include/irqd/abi.h``, the single source of
the ABI; ``../shared/abi.md`` explains it) and its ``fields`` table lists the
struct's members in order, with the same names, so that
``struct irqd_create_ics`` <-> :class:`CreateIcs` <-> ``IRQD_MSG_CREATE_ICS``.
``tests/test_protocol.py`` checks every table against ``ffi.sizeof`` /
``ffi.offsetof`` of the compiled header.  Numbers come from ``irqd._core.lib``.

The 16-byte message header is pyroute2's ``nlmsghdr`` table; its keys are
pyroute2's names for ``struct irqd_msghdr``'s members:
``length`` = ``len``, ``type``, ``flags``, ``sequence_number`` = ``seq``,
``pid``.

Three things pyroute2 0.9 does not do right for irqd, done here instead
(``../shared/notes.md``):

* :func:`walk` splits a record into messages itself: headers at 4-byte
  aligned offsets, each message bounded by its own ``len``, a framing error
  reported instead of guessed around.  ``Marshal.parse`` is never used.
* :class:`Error` honours ``NLM_F_CAPPED``: only the request's 16-byte header
  is echoed, so the extended-ack attributes start right after it, not after
  the request's full ``len`` as pyroute2's ``nlmsgerr`` assumes.
* :func:`encode_irq_line` / :func:`encode_irq_batch` pack the trigger
  messages with precompiled ``struct`` formats; pyroute2's generic encoder
  (~155 k messages/s) is for control operations only.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple

from pyroute2.netlink import nlmsg, nlmsgerr

from irqd._core import lib

__all__ = [
    "DEFAULT_SOCKET",
    "MESSAGE_CLASSES",
    "REPLY_CLASSES",
    "REQUEST_CLASSES",
    "FramingError",
    "RawMsg",
    "class_for",
    "decode",
    "decode_record",
    "encode",
    "encode_irq_batch",
    "encode_irq_line",
    "walk",
]

#: Default socket path.  Same value as ``IRQD_DEFAULT_SOCKET`` in
#: include/irqd/abi.h; string #defines do not reach cffi's ``lib``, so this is
#: the one Python copy of it.
DEFAULT_SOCKET = "/run/irqd/irqd.sock"

HDRLEN: int = lib.IRQD_NLMSG_HDRLEN
ALIGNTO: int = lib.IRQD_NLMSG_ALIGNTO
F_REQUEST: int = lib.IRQD_NLM_F_REQUEST
F_MULTI: int = lib.IRQD_NLM_F_MULTI
F_ACK: int = lib.IRQD_NLM_F_ACK
F_DUMP_INTR: int = lib.IRQD_NLM_F_DUMP_INTR
F_DUMP: int = lib.IRQD_NLM_F_DUMP
F_CAPPED: int = lib.IRQD_NLM_F_CAPPED
F_ACK_TLVS: int = lib.IRQD_NLM_F_ACK_TLVS

_HDR = struct.Struct("<IHHII")
assert sys.byteorder == "little", "irqd's wire is little-endian; pyroute2 encodes its header natively"


def align(n: int) -> int:
    """NLMSG_ALIGN: round up to the 4-byte message alignment."""
    return (n + ALIGNTO - 1) & ~(ALIGNTO - 1)


# ---------------------------------------------------------------------------
# message classes
# ---------------------------------------------------------------------------


class MsgHdr:
    """``struct irqd_msghdr`` (= ``struct nlmsghdr``) as a nested field
    (the request header an ERROR echoes).  Decodes to a dict with abi.h's
    member names: ``len``, ``type``, ``flags``, ``seq``, ``pid``."""

    size = HDRLEN
    names = ("len", "type", "flags", "seq", "pid")
    fields = (("len", "<I"), ("type", "<H"), ("flags", "<H"), ("seq", "<I"), ("pid", "<I"))

    @staticmethod
    def decode_from(data, offset: int):
        return dict(zip(MsgHdr.names, _HDR.unpack_from(data, offset))), offset + HDRLEN

    @staticmethod
    def encode_into(data, offset: int, value) -> int:
        value = value or {}
        data.extend(bytes(HDRLEN))
        _HDR.pack_into(data, offset, *(int(value.get(n, 0)) for n in MsgHdr.names))
        return offset + HDRLEN


class IrqdMsg(nlmsg):
    """Base of every irqd message: pyroute2's nlmsg.  Payload fields are
    explicitly little-endian (abi.md section 1); the header is pyroute2's
    native-order table (its encoder joins the header formats, which rules out
    byte-order prefixes), which is the same thing on every host irqd runs on
    (asserted below).

    ``c_struct`` names the C struct (for the ffi layout test); ``types`` the
    IRQD_MSG_* names this struct is the payload of."""

    __slots__ = ()
    fields: tuple = ()
    c_struct: str | None = None
    types: tuple[str, ...] = ()

    @classmethod
    def payload_size(cls) -> int:
        """Size of the payload struct (the sum of the field sizes: abi.h has
        no implicit padding)."""
        n = 0
        for _, fmt in cls.fields:
            n += fmt.size if isinstance(fmt, type) else struct.calcsize(fmt)
        return n

    def decode(self):
        super().decode()
        # multi-value fields (arrays) come back as tuples: lists are what
        # JSON gives and what encode takes
        for name, fmt in self.fields:
            if isinstance(self.get(name), tuple):
                self[name] = list(self[name])


class Empty(IrqdMsg):
    """No payload: NOOP and the LIST_DEVICES request."""

    __slots__ = ()
    fields = ()
    types = ("NOOP", "LIST_DEVICES")


class Hello(IrqdMsg):
    """0x10 HELLO, request and reply::

    struct irqd_hello {
            uint32_t version;
            uint32_t features;
            uint32_t max_record;
            uint32_t max_devices;
            uint32_t max_servers;
            uint32_t max_irqs;
            uint32_t max_fds;
            uint32_t reserved;
    };
    """

    __slots__ = ()
    c_struct = "irqd_hello"
    types = ("HELLO",)
    fields = (
        ("version", "<I"),
        ("features", "<I"),
        ("max_record", "<I"),
        ("max_devices", "<I"),
        ("max_servers", "<I"),
        ("max_irqs", "<I"),
        ("max_fds", "<I"),
        ("reserved", "<I"),
    )


class CreateDevice(IrqdMsg):
    """0x11 CREATE_DEVICE, request and reply (``handle`` filled in)::

    struct irqd_create_device {
            uint32_t type;
            uint32_t handle;
            uint32_t flags;
            uint32_t reserved;
    };
    """

    __slots__ = ()
    c_struct = "irqd_create_device"
    types = ("CREATE_DEVICE",)
    fields = (("type", "<I"), ("handle", "<I"), ("flags", "<I"), ("reserved", "<I"))


class Handle(IrqdMsg):
    """0x12 DESTROY_DEVICE, 0x13 ATTACH, 0x22 DUMP_STATE, 0x25 GET_STATS,
    0x27-0x29 RESTORE_BEGIN / COMMIT / ABORT requests::

    struct irqd_handle {
            uint32_t handle;
            uint32_t reserved;
    };
    """

    __slots__ = ()
    c_struct = "irqd_handle"
    types = (
        "DESTROY_DEVICE",
        "ATTACH",
        "DUMP_STATE",
        "GET_STATS",
        "RESTORE_BEGIN",
        "RESTORE_COMMIT",
        "RESTORE_ABORT",
    )
    fields = (("handle", "<I"), ("reserved", "<I"))


class DeviceInfo(IrqdMsg):
    """0x14 LIST_DEVICES reply (one per device, NLM_F_MULTI)::

    struct irqd_device_info {
            uint32_t handle;
            uint32_t type;
            uint32_t owner_uid;
            uint32_t flags;
            uint32_t nr_ics;
            uint32_t nr_sources;
            uint32_t nr_servers;
            uint32_t holders;
            uint64_t generation;
    };
    """

    __slots__ = ()
    c_struct = "irqd_device_info"
    types = ("LIST_DEVICES",)
    fields = (
        ("handle", "<I"),
        ("type", "<I"),
        ("owner_uid", "<I"),
        ("flags", "<I"),
        ("nr_ics", "<I"),
        ("nr_sources", "<I"),
        ("nr_servers", "<I"),
        ("holders", "<I"),
        ("generation", "<Q"),
    )


class IrqLevel(IrqdMsg):
    """0x15 IRQ_LINE::

    struct irqd_irq_level {
            uint32_t handle;
            uint32_t irq;
            uint32_t level;
            uint32_t reserved;
    };
    """

    __slots__ = ()
    c_struct = "irqd_irq_level"
    types = ("IRQ_LINE",)
    fields = (("handle", "<I"), ("irq", "<I"), ("level", "<I"), ("reserved", "<I"))


class IrqBatchEntry:
    """One entry of IRQ_LINE_BATCH (a nested field type)::

    struct irqd_irq_batch_entry {
            uint32_t irq;
            uint32_t level;
    };
    """

    c_struct = "irqd_irq_batch_entry"
    fields = (("irq", "<I"), ("level", "<I"))
    size = 8
    _S = struct.Struct("<II")


class IrqBatch(IrqdMsg):
    """0x16 IRQ_LINE_BATCH: the head below, then ``count`` entries of
    ``struct irqd_irq_batch_entry`` (decoded as ``entries``: a list of
    ``[irq, level]``; ``len`` must be exactly 24 + 8 * count)::

    struct irqd_irq_batch {
            uint32_t handle;
            uint32_t count;
    };
    """

    __slots__ = ()
    c_struct = "irqd_irq_batch"
    types = ("IRQ_LINE_BATCH",)
    fields = (("handle", "<I"), ("count", "<I"))

    def decode(self):
        super().decode()
        base = self.offset + HDRLEN + 8
        end = self.offset + self.length
        n = max(0, (end - base) // IrqBatchEntry.size)
        self["entries"] = [list(e) for e in struct.iter_unpack("<II", bytes(self.data[base : base + 8 * n]))]

    def encode(self):
        entries = self.get("entries") or []
        if self.get("count") is None:
            self["count"] = len(entries)
        super().encode()
        tail = b"".join(IrqBatchEntry._S.pack(int(i), int(lv)) for i, lv in entries)
        self.data.extend(tail)
        self.length = self["header"]["length"] = self.length + len(tail)
        struct.pack_into("<I", self.data, self.offset, self.length)


class DeviceAttr(IrqdMsg):
    """0x17 SET_DEVICE_ATTR, 0x18 GET_DEVICE_ATTR (request and reply),
    0x19 HAS_DEVICE_ATTR::

    struct irqd_device_attr {
            uint32_t handle;
            uint32_t flags;
            uint32_t group;
            uint32_t reserved;
            uint64_t attr;
            uint64_t value;
    };
    """

    __slots__ = ()
    c_struct = "irqd_device_attr"
    types = ("SET_DEVICE_ATTR", "GET_DEVICE_ATTR", "HAS_DEVICE_ATTR")
    fields = (
        ("handle", "<I"),
        ("flags", "<I"),
        ("group", "<I"),
        ("reserved", "<I"),
        ("attr", "<Q"),
        ("value", "<Q"),
    )


class CreateIcs(IrqdMsg):
    """0x1A CREATE_ICS::

    struct irqd_create_ics {
            uint32_t handle;
            uint32_t first_irq;
            uint32_t count;
            uint32_t flags;
    };
    """

    __slots__ = ()
    c_struct = "irqd_create_ics"
    types = ("CREATE_ICS",)
    fields = (("handle", "<I"), ("first_irq", "<I"), ("count", "<I"), ("flags", "<I"))


class ConnectVcpu(IrqdMsg):
    """0x1B CONNECT_VCPU::

    struct irqd_connect_vcpu {
            uint32_t handle;
            uint32_t server;
            uint32_t flags;
            uint32_t reserved;
    };
    """

    __slots__ = ()
    c_struct = "irqd_connect_vcpu"
    types = ("CONNECT_VCPU",)
    fields = (("handle", "<I"), ("server", "<I"), ("flags", "<I"), ("reserved", "<I"))


class OneReg(IrqdMsg):
    """0x1C GET_ONE_REG (request and reply), 0x1D SET_ONE_REG::

    struct irqd_one_reg {
            uint32_t handle;
            uint32_t server;
            uint64_t id;
            uint64_t value;
    };
    """

    __slots__ = ()
    c_struct = "irqd_one_reg"
    types = ("GET_ONE_REG", "SET_ONE_REG")
    fields = (("handle", "<I"), ("server", "<I"), ("id", "<Q"), ("value", "<Q"))


class Hcall(IrqdMsg):
    """0x1E HCALL, request and reply (``reg[0]`` = status, ``reg[1..3]`` =
    r4-r6)::

    struct irqd_hcall {
            uint32_t handle;
            uint32_t server;
            uint64_t nr;
            uint64_t reg[4];
    };
    """

    __slots__ = ()
    c_struct = "irqd_hcall"
    types = ("HCALL",)
    fields = (("handle", "<I"), ("server", "<I"), ("nr", "<Q"), ("reg", "<4Q"))


class Rtas(IrqdMsg):
    """0x1F RTAS, request and reply (``buf[nargs..]`` = returns)::

    struct irqd_rtas {
            uint32_t handle;
            uint32_t token;
            uint32_t nargs;
            uint32_t nret;
            uint32_t buf[12];
    };
    """

    __slots__ = ()
    c_struct = "irqd_rtas"
    types = ("RTAS",)
    fields = (("handle", "<I"), ("token", "<I"), ("nargs", "<I"), ("nret", "<I"), ("buf", "<12I"))


class Irqfd(IrqdMsg):
    """0x20 IRQFD (+ 1 or 2 eventfds by SCM_RIGHTS, none with DEASSIGN)::

    struct irqd_irqfd {
            uint32_t handle;
            uint32_t gsi;
            uint32_t flags;
            uint32_t reserved;
    };
    """

    __slots__ = ()
    c_struct = "irqd_irqfd"
    types = ("IRQFD",)
    fields = (("handle", "<I"), ("gsi", "<I"), ("flags", "<I"), ("reserved", "<I"))


class Output(IrqdMsg):
    """0x21 SET_OUTPUT (+ one eventfd, none with DEASSIGN)::

    struct irqd_output {
            uint32_t handle;
            uint32_t server;
            uint32_t flags;
            uint32_t reserved;
    };
    """

    __slots__ = ()
    c_struct = "irqd_output"
    types = ("SET_OUTPUT",)
    fields = (("handle", "<I"), ("server", "<I"), ("flags", "<I"), ("reserved", "<I"))


class RingSetup(IrqdMsg):
    """0x40 RING_SETUP (+ memfd and doorbell eventfd by SCM_RIGHTS, none
    with DEASSIGN); the ring's memory layout is abi.h's struct irqd_ring_hdr::

    struct irqd_ring_setup {
            uint32_t handle;
            uint32_t flags;
            uint32_t entries_log2;
            uint32_t reserved;
    };
    """

    __slots__ = ()
    c_struct = "irqd_ring_setup"
    types = ("RING_SETUP",)
    fields = (("handle", "<I"), ("flags", "<I"), ("entries_log2", "<I"), ("reserved", "<I"))


class SourceState(IrqdMsg):
    """0x23 SOURCE_STATE (DUMP_STATE reply, NLM_F_MULTI)::

    struct irqd_source_state {
            uint32_t handle;
            uint32_t irq;
            uint64_t state;
    };
    """

    __slots__ = ()
    c_struct = "irqd_source_state"
    types = ("SOURCE_STATE",)
    fields = (("handle", "<I"), ("irq", "<I"), ("state", "<Q"))


class IcpState(IrqdMsg):
    """0x24 ICP_STATE (DUMP_STATE reply, NLM_F_MULTI)::

    struct irqd_icp_state {
            uint32_t handle;
            uint32_t server;
            uint64_t state;
    };
    """

    __slots__ = ()
    c_struct = "irqd_icp_state"
    types = ("ICP_STATE",)
    fields = (("handle", "<I"), ("server", "<I"), ("state", "<Q"))


class SourceStats(IrqdMsg):
    """0x25 SOURCE_STATS (GET_STATS reply, NLM_F_MULTI)::

    struct irqd_source_stats {
            uint32_t handle;
            uint32_t irq;
            uint32_t triggers;
            uint32_t deliveries;
    };
    """

    __slots__ = ()
    c_struct = "irqd_source_stats"
    types = ("SOURCE_STATS",)
    fields = (("handle", "<I"), ("irq", "<I"), ("triggers", "<I"), ("deliveries", "<I"))


class ServerStats(IrqdMsg):
    """0x26 SERVER_STATS (GET_STATS reply, NLM_F_MULTI)::

    struct irqd_server_stats {
            uint32_t handle;
            uint32_t server;
            uint32_t deliveries;
            uint32_t rejects;
            uint32_t resends;
            uint32_t ipis;
    };
    """

    __slots__ = ()
    c_struct = "irqd_server_stats"
    types = ("SERVER_STATS",)
    fields = (
        ("handle", "<I"),
        ("server", "<I"),
        ("deliveries", "<I"),
        ("rejects", "<I"),
        ("resends", "<I"),
        ("ipis", "<I"),
    )


class Done(IrqdMsg):
    """0x03 DONE, ends a dump (flagged NLM_F_MULTI, ``error`` 0)::

    struct irqd_done {
            int32_t error;
    };
    """

    __slots__ = ()
    c_struct = "irqd_done"
    types = ("DONE",)
    fields = (("error", "<i"),)


class Error(IrqdMsg, nlmsgerr):
    """0x02 ERROR: ``error`` 0 (acknowledgement) or -errno, the echoed request
    header ``msg`` (NLM_F_CAPPED: only its 16 bytes), then with
    NLM_F_ACK_TLVS the extended-ack attributes ``NLMSGERR_ATTR_MSG``
    (NUL-terminated reason) and ``NLMSGERR_ATTR_OFFS`` (u32 offset of the
    offending field from the first byte of the request)::

    struct irqd_error {
            int32_t error;
            struct irqd_msghdr msg;
    };

    pyroute2's ``nlmsgerr`` looks for the attributes after the request's
    full ``len``; with CAPPED they start right after the 16-byte echo.  An
    ERROR without CAPPED (a peer echoing the whole request, as netlink does
    by default) is handled too: the attributes then follow the echoed
    request, aligned.
    """

    __slots__ = ()
    c_struct = "irqd_error"
    types = ("ERROR",)
    fields = (("error", "<i"), ("msg", MsgHdr))
    nla_map = (
        (lib.IRQD_NLMSGERR_ATTR_MSG, "NLMSGERR_ATTR_MSG", "asciiz"),
        (lib.IRQD_NLMSGERR_ATTR_OFFS, "NLMSGERR_ATTR_OFFS", "uint32"),
    )

    def decode(self):
        # the generic decoder: header, fields (error, the 16-byte echo), then
        # attributes right after them -- correct when CAPPED is set
        flags = struct.unpack_from("<H", self.data, self.offset + 6)[0]
        if flags & F_CAPPED or not flags & F_ACK_TLVS:
            IrqdMsg.decode(self)
            if not flags & F_ACK_TLVS:
                self.pop("attrs", None)
                self["attrs"] = []
            return
        # uncapped: skip the whole echoed request
        IrqdMsg.decode(self)
        echoed = align(max(self["msg"]["len"], HDRLEN))
        self["attrs"] = []
        start = self.offset + HDRLEN + 4 + echoed
        if start < self.offset + self.length:
            self.decode_nlas(start)

    @property
    def errno(self) -> int:
        return -self["error"]

    @property
    def message(self) -> str | None:
        m = self.get_attr("NLMSGERR_ATTR_MSG")
        if isinstance(m, bytes):
            m = m.decode("utf-8", "replace")
        return m.rstrip("\0") if m is not None else None

    @property
    def offs(self) -> int | None:
        return self.get_attr("NLMSGERR_ATTR_OFFS")


def _t(name: str) -> int:
    return getattr(lib, "IRQD_MSG_" + name)


#: every message class of the ABI
MESSAGE_CLASSES: tuple[type[IrqdMsg], ...] = (
    Empty,
    Hello,
    CreateDevice,
    Handle,
    DeviceInfo,
    IrqLevel,
    IrqBatch,
    DeviceAttr,
    CreateIcs,
    ConnectVcpu,
    OneReg,
    Hcall,
    Rtas,
    Irqfd,
    Output,
    RingSetup,
    SourceState,
    IcpState,
    SourceStats,
    ServerStats,
    Done,
    Error,
)

#: payload class of each request type (NLM_F_REQUEST set)
REQUEST_CLASSES: dict[int, type[IrqdMsg]] = {
    _t("NOOP"): Empty,
    _t("HELLO"): Hello,
    _t("CREATE_DEVICE"): CreateDevice,
    _t("DESTROY_DEVICE"): Handle,
    _t("ATTACH"): Handle,
    _t("LIST_DEVICES"): Empty,
    _t("IRQ_LINE"): IrqLevel,
    _t("IRQ_LINE_BATCH"): IrqBatch,
    _t("SET_DEVICE_ATTR"): DeviceAttr,
    _t("GET_DEVICE_ATTR"): DeviceAttr,
    _t("HAS_DEVICE_ATTR"): DeviceAttr,
    _t("CREATE_ICS"): CreateIcs,
    _t("CONNECT_VCPU"): ConnectVcpu,
    _t("GET_ONE_REG"): OneReg,
    _t("SET_ONE_REG"): OneReg,
    _t("HCALL"): Hcall,
    _t("RTAS"): Rtas,
    _t("IRQFD"): Irqfd,
    _t("SET_OUTPUT"): Output,
    _t("DUMP_STATE"): Handle,
    _t("GET_STATS"): Handle,
    _t("RESTORE_BEGIN"): Handle,
    _t("RESTORE_COMMIT"): Handle,
    _t("RESTORE_ABORT"): Handle,
    _t("RING_SETUP"): RingSetup,
}

#: payload class of each reply type (NLM_F_REQUEST clear)
REPLY_CLASSES: dict[int, type[IrqdMsg]] = {
    _t("ERROR"): Error,
    _t("DONE"): Done,
    _t("HELLO"): Hello,
    _t("CREATE_DEVICE"): CreateDevice,
    _t("LIST_DEVICES"): DeviceInfo,
    _t("GET_DEVICE_ATTR"): DeviceAttr,
    _t("GET_ONE_REG"): OneReg,
    _t("HCALL"): Hcall,
    _t("RTAS"): Rtas,
    _t("SOURCE_STATE"): SourceState,
    _t("ICP_STATE"): IcpState,
    _t("SOURCE_STATS"): SourceStats,
    _t("SERVER_STATS"): ServerStats,
}

#: IRQD_MSG_* name of each type number (GET_STATS and SOURCE_STATS share 0x25)
TYPE_NAMES: dict[int, str] = {}
for _n in dir(lib):
    if _n.startswith("IRQD_MSG_"):
        TYPE_NAMES.setdefault(getattr(lib, _n), _n[len("IRQD_MSG_") :])
TYPE_NAMES[_t("GET_STATS")] = "GET_STATS"


def class_for(msg_type: int, flags: int) -> type[IrqdMsg] | None:
    """The payload class of a message: requests (NLM_F_REQUEST) and replies
    share type numbers but not always payloads (LIST_DEVICES, 0x25)."""
    table = REQUEST_CLASSES if flags & F_REQUEST else REPLY_CLASSES
    return table.get(msg_type)


# ---------------------------------------------------------------------------
# record walking, decoding, encoding
# ---------------------------------------------------------------------------


class FramingError(ValueError):
    """A record cannot be split into messages: ``offset`` is where it went
    wrong (a ``len`` below 16 or past the record's end, or fewer than 16
    bytes left where a header should start)."""

    def __init__(self, offset: int, reason: str):
        super().__init__(f"offset {offset}: {reason}")
        self.offset = offset
        self.reason = reason


class RawMsg(NamedTuple):
    """One message of a record, framed but not decoded."""

    offset: int  # of its header in the record
    length: int  # its header's len
    type: int
    flags: int
    seq: int
    pid: int


def walk(record: bytes | bytearray | memoryview) -> Iterator[RawMsg]:
    """Split a record into messages (abi.md section 2): each header at a
    4-byte aligned offset, each message bounded by its ``len``.  Raises
    :class:`FramingError` at the first header that cannot be framed (the
    messages before it have been yielded)."""
    n = len(record)
    off = 0
    unpack = _HDR.unpack_from
    while off < n:
        if n - off < HDRLEN:
            raise FramingError(off, f"{n - off} bytes left, less than a header")
        length, mtype, flags, seq, pid = unpack(record, off)
        if length < HDRLEN:
            raise FramingError(off, f"len {length} < {HDRLEN}")
        if length > n - off:
            raise FramingError(off, f"len {length} past the end of the record ({n - off} bytes left)")
        yield RawMsg(off, length, mtype, flags, seq, pid)
        off += align(length)


class ShortMessage(ValueError):
    """A message whose payload is shorter than its type's struct."""


def decode(record, raw: RawMsg | None = None, cls: type[IrqdMsg] | None = None) -> IrqdMsg:
    """Decode one message: ``raw`` frames it inside ``record`` (default: the
    whole of ``record`` is one message).  Only the message's own ``len``
    bytes are handed to the class.  Unknown types decode as :class:`Empty`
    (header only).  Raises :class:`ShortMessage` for a truncated payload."""
    if raw is None:
        raw = next(walk(record))
    if cls is None:
        cls = class_for(raw.type, raw.flags) or Empty
    data = bytearray(record[raw.offset : raw.offset + raw.length])
    need = HDRLEN + cls.payload_size()
    if raw.length < need:
        raise ShortMessage(f"{cls.__name__}: len {raw.length} < {need}")
    msg = cls(data)
    msg.decode()
    return msg


def decode_record(record) -> list[IrqdMsg]:
    """Decode every message of a record (tests, tools; the client decodes
    lazily from :func:`walk`)."""
    return [decode(record, raw) for raw in walk(record)]


def encode(
    msg_type: int,
    payload: dict[str, Any] | None = None,
    flags: int = F_REQUEST,
    seq: int = 0,
    pid: int = 0,
    cls: type[IrqdMsg] | None = None,
) -> bytes:
    """Encode one message with pyroute2.  ``payload`` holds the struct's
    fields by name (missing ones are 0; ERROR: ``error``, ``msg`` and
    ``attrs``; IRQ_LINE_BATCH: ``entries``).  Raises ``ValueError`` for a
    value that does not fit its field."""
    if cls is None:
        cls = class_for(msg_type, flags)
        if cls is None:
            raise ValueError(f"no payload class for type {msg_type:#x} flags {flags:#x}")
    msg = cls()
    msg["header"] = {"type": msg_type, "flags": flags, "sequence_number": seq, "pid": pid}
    if payload:
        for k, v in payload.items():
            if k != "header":
                msg[k] = v
    try:
        msg.encode()
    except struct.error as e:
        raise ValueError(f"{cls.__name__}: {e}") from None
    return bytes(msg.data)


def dump(msg: IrqdMsg) -> dict[str, Any]:
    """JSON-able dict of a decoded message (the golden files' format)."""
    # built by hand: pyroute2's dump() treats a field named ``value``
    # (irqd_device_attr, irqd_one_reg) as an NLA's atomic value
    d: dict[str, Any] = {"header": dict(msg["header"])}
    for name, _ in msg.fields:
        d[name] = msg[name]
    if "entries" in msg:
        d["entries"] = [list(e) for e in msg["entries"]]
    if msg.nla_map:
        d["attrs"] = [[a[0], a[1]] for a in msg.get("attrs", [])]
    return d


def load(d: dict[str, Any]) -> bytes:
    """Encode a :func:`dump` dict back to bytes."""
    h = d["header"]
    cls = class_for(h["type"], h["flags"]) or Empty
    return encode(h["type"], d, flags=h["flags"], seq=h["sequence_number"], pid=h["pid"], cls=cls)


# ---------------------------------------------------------------------------
# fast paths: triggers
# ---------------------------------------------------------------------------

_IRQ_LINE = struct.Struct("<IHHII" + "IIII")
_IRQ_LINE_LEN = _IRQ_LINE.size  # 32
_BATCH_HEAD = struct.Struct("<IHHII" + "II")
_T_IRQ_LINE: int = lib.IRQD_MSG_IRQ_LINE
_T_BATCH: int = lib.IRQD_MSG_IRQ_LINE_BATCH

#: bytes of one IRQ_LINE message and of an IRQ_LINE_BATCH's header+head
IRQ_LINE_LEN = _IRQ_LINE_LEN
BATCH_HEAD_LEN = _BATCH_HEAD.size  # 24
BATCH_ENTRY_LEN = 8


def encode_irq_line(seq: int, handle: int, irq: int, level: int, flags: int = F_REQUEST) -> bytes:
    """One IRQ_LINE message (32 bytes), packed with a precompiled struct."""
    try:
        return _IRQ_LINE.pack(_IRQ_LINE_LEN, _T_IRQ_LINE, flags, seq, 0, handle, irq, level, 0)
    except struct.error as e:
        raise ValueError(f"IRQ_LINE: {e}") from None


def pack_irq_line_into(
    buf, offset: int, seq: int, handle: int, irq: int, level: int, flags: int = F_REQUEST
) -> int:
    """Pack an IRQ_LINE at ``offset`` of a writable buffer; returns the next offset."""
    try:
        _IRQ_LINE.pack_into(buf, offset, _IRQ_LINE_LEN, _T_IRQ_LINE, flags, seq, 0, handle, irq, level, 0)
    except struct.error as e:
        raise ValueError(f"IRQ_LINE: {e}") from None
    return offset + _IRQ_LINE_LEN


def encode_irq_batch(
    seq: int,
    handle: int,
    entries: Sequence[tuple[int, int]] | Iterable[tuple[int, int]],
    flags: int = F_REQUEST,
) -> bytes:
    """One IRQ_LINE_BATCH message: 24 + 8 * count bytes."""
    if not isinstance(entries, (list, tuple)):
        entries = list(entries)
    n = len(entries)
    flat: list[int] = []
    for e in entries:
        flat.extend(e)
    if len(flat) != 2 * n:
        raise ValueError("batch entries must be (irq, level) pairs")
    length = BATCH_HEAD_LEN + BATCH_ENTRY_LEN * n
    try:
        return _BATCH_HEAD.pack(length, _T_BATCH, flags, seq, 0, handle, n) + struct.pack(f"<{2 * n}I", *flat)
    except struct.error as e:
        raise ValueError(f"IRQ_LINE_BATCH: {e}") from None


def batch_entry_index(offs: int | None) -> int | None:
    """Entry index that an ERROR's NLMSGERR_ATTR_OFFS points at (offsets
    count from the request's first header byte), or None."""
    if offs is None or offs < BATCH_HEAD_LEN:
        return None
    return (offs - BATCH_HEAD_LEN) // BATCH_ENTRY_LEN


def packer(cls: type[IrqdMsg]) -> struct.Struct:
    """A precompiled ``struct`` for header + payload of a fixed-size class,
    derived from the class's own ``fields`` table (so the fast path and the
    pyroute2 class cannot disagree; tests/test_protocol.py checks both
    against each other).  Pack with (len, type, flags, seq, pid, *fields),
    arrays flattened."""
    s = _PACKERS.get(cls)
    if s is None:
        fmts = []
        for _, fmt in cls.fields:
            if isinstance(fmt, type) or not fmt.startswith("<"):
                raise TypeError(f"{cls.__name__} has no fixed little-endian layout")
            fmts.append(fmt[1:])
        s = _PACKERS[cls] = struct.Struct("<IHHII" + "".join(fmts))
    return s


_PACKERS: dict[type, struct.Struct] = {}


def pack(cls: type[IrqdMsg], msg_type: int, flags: int, seq: int, *values: int) -> bytes:
    """Fast encode of a fixed-size message (restore, bulk operations)."""
    s = packer(cls)
    try:
        return s.pack(s.size, msg_type, flags, seq, 0, *values)
    except struct.error as e:
        raise ValueError(f"{cls.__name__}: {e}") from None


def unpack_payload(cls: type[IrqdMsg], record, raw: RawMsg) -> tuple:
    """Fast decode of a fixed-size message's payload fields (arrays
    flattened); the message must be at least as long as the struct."""
    s = packer(cls)
    if raw.length < s.size:
        raise ShortMessage(f"{cls.__name__}: len {raw.length} < {s.size}")
    return s.unpack_from(record, raw.offset)[5:]


_ERR_HEAD = struct.Struct("<i")


def error_code(record, raw: RawMsg) -> int:
    """The ``error`` field of an ERROR message, without building a pyroute2
    object (the common acknowledgement path)."""
    if raw.length < HDRLEN + 4:
        raise ShortMessage(f"ERROR: len {raw.length}")
    return _ERR_HEAD.unpack_from(record, raw.offset + HDRLEN)[0]


def echoed_header(record, raw: RawMsg) -> tuple[int, int, int, int, int] | None:
    """The (len, type, flags, seq, pid) an ERROR echoes, if present."""
    if raw.length < HDRLEN + 4 + HDRLEN:
        return None
    return _HDR.unpack_from(record, raw.offset + HDRLEN + 4)
