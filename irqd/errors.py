"""Exceptions shared by every backend (in-process core and daemon client).

``IrqdError`` is an ``OSError``: ``errno`` is the Linux errno the core or the
daemon answered, ``strerror`` its extended-ack message, ``offset`` the byte
offset of the field to blame (netlink's NLMSGERR_ATTR_OFFS) or ``None``.
As in PyNaCl, each errno with a natural builtin counterpart gets a subclass
that inherits both, so ``except PermissionError`` and ``except IrqdError``
both catch an EACCES.
"""

from __future__ import annotations

import errno as _errno
import os

__all__ = ["IrqdError", "error_for"]


class IrqdError(OSError):
    """An operation failed with ``errno``; nothing was changed."""

    offset: int | None

    def __init__(self, err: int, message: str | None = None, offset: int | None = None):
        super().__init__(err, message or os.strerror(err))
        self.offset = offset

    def __reduce__(self):  # keep errno/message/offset through pickling
        return (error_for, (self.errno, self.strerror, self.offset))


def _sub(name: str, builtin: type[OSError]) -> type[IrqdError]:
    return type(name, (IrqdError, builtin), {"__module__": __name__})


_SUBCLASSES: dict[int, type[IrqdError]] = {
    _errno.EACCES: _sub("IrqdPermissionError", PermissionError),
    _errno.EPERM: _sub("IrqdNotPermittedError", PermissionError),
    _errno.ENOENT: _sub("IrqdNotFoundError", FileNotFoundError),
    _errno.EEXIST: _sub("IrqdExistsError", FileExistsError),
}
globals().update({cls.__name__: cls for cls in _SUBCLASSES.values()})
__all__ += [cls.__name__ for cls in _SUBCLASSES.values()]


def error_for(err: int, message: str | None = None, offset: int | None = None) -> IrqdError:
    """Build the right ``IrqdError`` subclass for a positive errno."""
    err = abs(err)
    return _SUBCLASSES.get(err, IrqdError)(err, message, offset)


def check(ret: int, message: str | None = None, offset: int | None = None) -> int:
    """Raise for a negative errno return (the core's convention), else pass it on."""
    if ret < 0:
        raise error_for(-ret, message, offset)
    return ret
