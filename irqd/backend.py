"""The one interface every XICS backend offers (crosvm's ``IrqChip`` model).

Two backends implement :class:`XicsDevice`:

* :class:`irqd.inproc.Xics` -- the C core inside this process (cffi);
* :class:`irqd.client.RemoteXics` -- a device of an ``irqd`` daemon, over its
  socket (``irqd.client.Client.create_device``).

User code switches backend with one line; the scenario suite (X-nnn) runs
unchanged against both.  All methods raise :class:`irqd.errors.IrqdError`
(an ``OSError``) with the errno the core / daemon answered.  H_* hcall and
RTAS statuses are results, not exceptions.

File descriptors passed in (irqfd, output) are duplicated by the backend:
the caller may close its own copy at once.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Sequence

from irqd._core import lib  # noqa: F401  (numbers come from abi.h via lib)

#: KVM level values (xics-constants.md section 5)
SET = 0xFFFFFFFF
UNSET = 0xFFFFFFFE
SET_LEVEL = 0xFFFFFFFD


@dataclasses.dataclass
class DeviceState:
    """A device's migration state: DUMP_STATE words, ascending by irq / server."""

    sources: dict[int, int] = dataclasses.field(default_factory=dict)
    icps: dict[int, int] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class DeviceStats:
    """GET_STATS: per source (triggers, deliveries); per server
    (deliveries, rejects, resends, ipis)."""

    sources: dict[int, tuple[int, int]] = dataclasses.field(default_factory=dict)
    servers: dict[int, tuple[int, int, int, int]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class DeviceInfo:
    """LIST_DEVICES entry."""

    handle: int
    type: int
    owner_uid: int
    flags: int
    nr_ics: int
    nr_sources: int
    nr_servers: int
    holders: int
    generation: int


class XicsDevice(abc.ABC):
    """One XICS device: ICS sources, ICPs (servers), hcalls, RTAS, irqfds."""

    handle: int

    # -- configuration ------------------------------------------------------
    @abc.abstractmethod
    def create_ics(self, first: int, count: int, level: bool = False) -> None:
        """CREATE_ICS: configure sources first..first+count-1, masked."""

    @abc.abstractmethod
    def connect_vcpu(self, server: int) -> None:
        """CONNECT_VCPU: create the ICP of ``server``."""

    # -- shooting interrupts ---------------------------------------------------
    @abc.abstractmethod
    def irq_line(self, irq: int, level: int) -> None:
        """IRQ_LINE with one of the five KVM level values."""

    @abc.abstractmethod
    def irq_line_batch(self, entries: Sequence[tuple[int, int]]) -> None:
        """IRQ_LINE_BATCH: apply (irq, level) pairs in order.  If any failed,
        raise the first failure's error; its ``index`` attribute is the entry
        index and ``failed`` how many failed (the others were applied)."""

    def edge(self, irq: int) -> None:
        """Fire an edge (an MSI): IRQ_LINE level KVM_INTERRUPT_SET."""
        self.irq_line(irq, SET)

    def level_set(self, irq: int) -> None:
        self.irq_line(irq, 1)

    def level_reset(self, irq: int) -> None:
        self.irq_line(irq, 0)

    # -- state words -------------------------------------------------------------
    @abc.abstractmethod
    def get_source(self, irq: int) -> int:
        """GET_DEVICE_ATTR group SOURCES: the 64-bit source word."""

    @abc.abstractmethod
    def set_source(self, irq: int, word: int) -> None:
        """SET_DEVICE_ATTR group SOURCES."""

    @abc.abstractmethod
    def has_source(self, irq: int) -> bool:
        """HAS_DEVICE_ATTR group SOURCES (True = 0, False = ENXIO)."""

    @abc.abstractmethod
    def get_icp(self, server: int) -> int:
        """GET_ONE_REG KVM_REG_PPC_ICP_STATE."""

    @abc.abstractmethod
    def set_icp(self, server: int, word: int) -> None:
        """SET_ONE_REG KVM_REG_PPC_ICP_STATE."""

    # -- what the guest does -------------------------------------------------------
    @abc.abstractmethod
    def hcall(self, server: int, nr: int, *args: int) -> tuple[int, int, int, int]:
        """Run hcall ``nr`` as vCPU ``server`` with r4.. = args.
        Returns (status, r4, r5, r6); status is signed (H_PARAMETER = -4)."""

    def h_xirr(self, server: int) -> tuple[int, int]:
        st, r4, _, _ = self.hcall(server, lib.IRQD_H_XIRR)
        return st, r4

    def h_xirr_x(self, server: int) -> tuple[int, int, int]:
        st, r4, r5, _ = self.hcall(server, lib.IRQD_H_XIRR_X)
        return st, r4, r5

    def h_eoi(self, server: int, xirr: int) -> int:
        return self.hcall(server, lib.IRQD_H_EOI, xirr)[0]

    def h_cppr(self, server: int, cppr: int) -> int:
        return self.hcall(server, lib.IRQD_H_CPPR, cppr)[0]

    def h_ipi(self, server: int, target: int, mfrr: int) -> int:
        return self.hcall(server, lib.IRQD_H_IPI, target, mfrr)[0]

    def h_ipoll(self, server: int, target: int) -> tuple[int, int, int]:
        st, r4, r5, _ = self.hcall(server, lib.IRQD_H_IPOLL, target)
        return st, r4, r5

    @abc.abstractmethod
    def rtas(self, token: int, args: Sequence[int], nret: int, nargs: int | None = None) -> list[int]:
        """RTAS call: buf[0..nargs-1] = args (nargs defaults to len(args)).
        Returns the nret return words buf[nargs..] (status first; the status
        word is returned even when nret is 0, so the list has max(nret, 1)
        entries), signed 32-bit."""

    def set_xive(self, irq: int, server: int, priority: int) -> int:
        return self.rtas(lib.IRQD_RTAS_SET_XIVE, [irq, server, priority], 1)[0]

    def get_xive(self, irq: int) -> tuple[int, int, int]:
        st, server, prio = self.rtas(lib.IRQD_RTAS_GET_XIVE, [irq], 3)
        return st, server & 0xFFFFFFFF, prio & 0xFFFFFFFF

    def int_off(self, irq: int) -> int:
        return self.rtas(lib.IRQD_RTAS_INT_OFF, [irq], 1)[0]

    def int_on(self, irq: int) -> int:
        return self.rtas(lib.IRQD_RTAS_INT_ON, [irq], 1)[0]

    # -- eventfds --------------------------------------------------------------------
    @abc.abstractmethod
    def irqfd(self, gsi: int, fd: int, resample_fd: int | None = None) -> None:
        """IRQFD assign: each count on ``fd`` fires ``gsi`` (RESAMPLE: asserts
        it as a level; the EOI resets it and writes ``resample_fd``)."""

    @abc.abstractmethod
    def irqfd_deassign(self, gsi: int) -> None:
        """IRQFD DEASSIGN: remove every irqfd of ``gsi``."""

    @abc.abstractmethod
    def set_output(self, server: int, fd: int) -> None:
        """SET_OUTPUT: write 1 to ``fd`` on each 0 -> 1 of the server's output."""

    @abc.abstractmethod
    def clear_output(self, server: int) -> None:
        """SET_OUTPUT DEASSIGN."""

    # -- migration, observation -----------------------------------------------------
    @abc.abstractmethod
    def dump(self) -> DeviceState:
        """DUMP_STATE (retried until not interrupted)."""

    @abc.abstractmethod
    def restore(self, state: DeviceState) -> None:
        """All-or-nothing restore (RESTORE_BEGIN / SETs / COMMIT) into this
        device, which must have no configured source and no ICP."""

    @abc.abstractmethod
    def stats(self) -> DeviceStats:
        """GET_STATS."""

    @abc.abstractmethod
    def info(self) -> DeviceInfo:
        """This device's LIST_DEVICES entry."""

    @property
    def generation(self) -> int:
        return self.info().generation

    @abc.abstractmethod
    def close(self) -> None:
        """Release this handle on the device (in-process: free it)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
