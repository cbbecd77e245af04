"""Restart without losing state (abi.md section 6): the daemon's hook.

``attach(daemon, args, extra_fds)`` is called once at start-up with the fds
systemd passed besides the listening socket (LISTEN_FDNAMES names them).
It restores a saved state if one is there and registers the saving hook
in ``daemon.on_shutdown``.  The implementation lands with the systemd issue;
until then no state is saved or restored.
"""

from __future__ import annotations


class StateError(Exception):
    """A saved state exists but cannot be restored: the daemon refuses to start."""


def attach(daemon, args, extra_fds) -> None:
    for fd, _name in extra_fds:  # nothing to restore from yet: do not leak them
        import os

        os.close(fd)
