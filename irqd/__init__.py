"""irqd: the POWER XICS interrupt controller of Linux KVM, in userspace.

``irqd.Xics()`` is the emulator in this process; ``irqd.open()`` picks the
daemon backend when ``$IRQD_SOCKET`` is set and the in-process one otherwise.
"""

from __future__ import annotations

import os

from irqd.errors import IrqdError, error_for

__all__ = ["IrqdError", "error_for", "Xics", "open", "__version__"]
__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "Xics":  # lazy: importing irqd must not need the built core
        from irqd.inproc import Xics

        return Xics
    raise AttributeError(name)


def open(socket: str | None = None):  # noqa: A001 - mirrors os.open-style factories
    """Return a new XICS device: on the daemon at ``socket`` / ``$IRQD_SOCKET``
    if either is given, else in this process."""
    path = socket or os.environ.get("IRQD_SOCKET")
    if path:
        from irqd.client import Client

        return Client(path).create_device()
    from irqd.inproc import Xics

    return Xics()
