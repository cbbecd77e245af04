"""The service-manager protocol: sd_notify, socket activation, watchdog, fd store.

This module is irqd's one implementation of the protocol systemd speaks with
the services it starts (sd_notify(3), sd_listen_fds(3), sd_watchdog_enabled(3)),
in plain Python with no dependency.  Outside systemd every call is a cheap
no-op (``notify`` returns False, ``listen_fds`` returns [], ``watchdog_interval``
returns None), so the daemon calls these unconditionally.

Notification (``notify`` and the helpers around it)
    One datagram per call to the AF_UNIX socket named by ``$NOTIFY_SOCKET``
    (a path, or an abstract address written with a leading ``@``), holding
    newline-separated ``KEY=VALUE`` assignments.  File descriptors go along
    as SCM_RIGHTS (``FDSTORE=1``).  The sender must be the service's main
    process (the unit says ``NotifyAccess=main``): call these from the daemon
    itself, never from a forked helper.  A failed send is logged and reported
    as False, never raised: a lost STATUS= must not take the daemon down (a
    lost READY=1 makes systemd time the start out, which is the right outcome).

    Typical life of the daemon::

        for fd, name in sd.listen_fds():   # inherited socket + fd store
            ...
        sd.ready(f"serving, {n} devices")  # once it can answer requests
        period = sd.watchdog_interval()    # None or seconds; ping at period / 2
        ...  sd.watchdog()  ...  sd.status("3 clients, 2 devices")  ...
        sd.stopping()                      # first thing on SIGTERM

Socket activation and the fd store
    ``listen_fds`` returns the fds systemd passed (fd 3 upwards) with their
    names from ``$LISTEN_FDNAMES``: the listening socket of irqd.socket is
    named ``irqd.socket``; fds the daemon parked with ``fdstore(fd, name)``
    before a restart come back under the name it gave them.  systemd keeps a
    stored fd until the service is stopped for good (``systemctl restart`` and
    automatic restarts keep them), until ``fdstore_remove(name)``, or until the
    fd reports EPOLLHUP/EPOLLERR (an eventfd or memfd never does).  Storing the
    same open file twice keeps one entry; storing two files under one name
    keeps both, so remove a name before storing its new contents.
"""

from __future__ import annotations

import array
import logging
import os
import socket
from collections.abc import Sequence

__all__ = [
    "LISTEN_FDS_START",
    "fdstore",
    "fdstore_remove",
    "listen_fds",
    "notify",
    "ready",
    "status",
    "stopping",
    "watchdog",
    "watchdog_interval",
]

log = logging.getLogger("irqd.sd")

#: The first inherited fd (SD_LISTEN_FDS_START).
LISTEN_FDS_START = 3
#: systemd's limit on a file descriptor name (FDNAME_MAX).
_FDNAME_MAX = 255
#: How long a notification may wait for room in the manager's queue before
#: it is dropped.  libsystemd blocks without bound; irqd's single-threaded
#: loop would stop serving meanwhile, so a manager that stopped reading costs
#: it at most this long per message (systemd itself drains its queue at once).
_SEND_TIMEOUT = 1.0


# --------------------------------------------------------------------------
# sd_notify


def notify(state: str, fds: Sequence[int] = (), unset_environment: bool = False) -> bool:
    """Send ``state`` (e.g. ``"READY=1\\nSTATUS=serving"``) to the service manager.

    ``fds`` travel with it as SCM_RIGHTS (for ``FDSTORE=1``; the caller keeps
    its own copies open).  Returns True when the datagram was sent, False when
    ``$NOTIFY_SOCKET`` is not set (not under systemd) or the send failed
    (logged).  ``unset_environment`` removes ``$NOTIFY_SOCKET`` afterwards, so
    later calls and child processes do not notify.  Raises ValueError for a
    ``state`` the manager would reject (empty, or holding a NUL byte).
    """
    if not isinstance(state, str) or not state:
        raise ValueError("sd_notify state must be a non-empty string")
    if "\0" in state:
        raise ValueError("sd_notify state must not contain NUL bytes (the manager drops such messages)")
    fd_list = [int(fd) for fd in fds]
    address = os.environ.get("NOTIFY_SOCKET")
    if unset_environment:
        os.environ.pop("NOTIFY_SOCKET", None)
    if not address:
        return False
    if address[0] == "@":  # abstract namespace: NUL instead of the '@'
        sockaddr = "\0" + address[1:]
    elif address[0] == "/":
        sockaddr = address
    else:  # vsock: and relative paths are not for us (neither is sent by systemd to a local service)
        log.warning(
            "NOTIFY_SOCKET=%r is not an absolute path or an @abstract address; not notifying", address
        )
        return False
    ancillary = []
    if fd_list:
        ancillary.append((socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fd_list).tobytes()))
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:  # close-on-exec (PEP 446)
            sock.settimeout(_SEND_TIMEOUT)
            # Connected, so that waiting for room sleeps: poll() on an
            # unconnected datagram socket reports it writable while the
            # receiver's queue is full, and Python's timeout loop would spin
            # on EAGAIN for the whole timeout.
            sock.connect(sockaddr)
            sock.sendmsg([state.encode()], ancillary, socket.MSG_NOSIGNAL)
    except OSError as e:
        log.warning("sd_notify to %s failed (%s): %r not delivered", address, e, state)
        return False
    return True


def _one_line(what: str, text: str) -> str:
    # A newline would start a new assignment: "STATUS=x\nREADY=1" must not
    # be expressible by accident.
    if "\n" in text:
        raise ValueError(f"{what} must be a single line")
    return text


def ready(status: str | None = None) -> bool:
    """Tell systemd the daemon serves now (``READY=1``), with an optional ``STATUS=`` line."""
    return notify("READY=1" if status is None else f"READY=1\nSTATUS={_one_line('status', status)}")


def stopping(status: str | None = None) -> bool:
    """Tell systemd the daemon is shutting down (``STOPPING=1``)."""
    return notify("STOPPING=1" if status is None else f"STOPPING=1\nSTATUS={_one_line('status', status)}")


def status(text: str) -> bool:
    """Set the one-line status shown by ``systemctl status`` (``STATUS=``)."""
    return notify(f"STATUS={_one_line('status', text)}")


def watchdog() -> bool:
    """Ping the service watchdog (``WATCHDOG=1``); see ``watchdog_interval``."""
    return notify("WATCHDOG=1")


def _check_fdname(name: str) -> str:
    # systemd's fdname_is_valid(), minus the empty name (which systemd would
    # replace by "stored", so nothing could find it again).
    if not isinstance(name, str) or not 0 < len(name) <= _FDNAME_MAX:
        raise ValueError(f"fd name must be 1..{_FDNAME_MAX} characters")
    if any(c == ":" or not " " <= c <= "~" for c in name):
        raise ValueError(f"fd name {name!r} must be printable ASCII without ':'")
    return name


def fdstore(fd: int, name: str) -> bool:
    """Park a duplicate of ``fd`` in the service's fd store under ``name``
    (``FDSTORE=1``, ``FDNAME=``).  The unit needs ``FileDescriptorStoreMax=``;
    the fd comes back through ``listen_fds()`` on the next start."""
    return notify(f"FDSTORE=1\nFDNAME={_check_fdname(name)}", [fd])


def fdstore_remove(name: str) -> bool:
    """Drop every fd stored under ``name`` (``FDSTOREREMOVE=1``, ``FDNAME=``)."""
    return notify(f"FDSTOREREMOVE=1\nFDNAME={_check_fdname(name)}")


# --------------------------------------------------------------------------
# Socket activation


def _parse_int(var: str, value: str) -> int:
    try:
        return int(value, 10)
    except ValueError:
        raise ValueError(f"${var}={value!r} is not a decimal integer") from None


def listen_fds(unset_environment: bool = True) -> list[tuple[int, str]]:
    """Return the fds the service manager passed to this process, as (fd, name).

    They are ``$LISTEN_FDS`` consecutive fds from 3, meant for this process
    only if ``$LISTEN_PID`` is our pid (otherwise they were inherited through
    a parent and are not ours: returns []).  Names come from ``$LISTEN_FDNAMES``
    (colon-separated, "unknown" when it is absent).  Each fd gets FD_CLOEXEC,
    so it does not leak into child processes.  ``unset_environment`` (the
    default, as sd_listen_fds) removes the three variables in every case, so
    they cannot mislead a child.  Raises ValueError for malformed variables
    meant for us, OSError if a promised fd is not open.
    """
    try:
        pid_text = os.environ.get("LISTEN_PID")
        if not pid_text or _parse_int("LISTEN_PID", pid_text) != os.getpid():
            return []
        count_text = os.environ.get("LISTEN_FDS")
        if not count_text:
            return []
        count = _parse_int("LISTEN_FDS", count_text)
        if count < 0:
            raise ValueError(f"$LISTEN_FDS={count_text!r} is negative")
        names_text = os.environ.get("LISTEN_FDNAMES")
        if names_text is None:
            names = ["unknown"] * count
        else:
            names = names_text.split(":") if count else []
            if len(names) != count:
                raise ValueError(f"$LISTEN_FDNAMES names {len(names)} fds but $LISTEN_FDS={count}")
        fds = list(range(LISTEN_FDS_START, LISTEN_FDS_START + count))
        for fd in fds:
            os.set_inheritable(fd, False)  # sets FD_CLOEXEC; EBADF if systemd's promise is broken
        return list(zip(fds, names))
    finally:
        if unset_environment:
            for var in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
                os.environ.pop(var, None)


# --------------------------------------------------------------------------
# Watchdog


def watchdog_interval(unset_environment: bool = False) -> float | None:
    """Return the watchdog timeout in seconds (``$WATCHDOG_USEC``), or None.

    None when no watchdog is configured or ``$WATCHDOG_PID`` names another
    process.  systemd kills the service when no ``watchdog()`` ping arrives
    within this time: ping every ``interval / 2`` seconds, as sd_watchdog_enabled(3)
    recommends.  Raises ValueError for a malformed variable meant for us.
    """
    try:
        usec_text = os.environ.get("WATCHDOG_USEC")
        if not usec_text:
            return None
        pid_text = os.environ.get("WATCHDOG_PID")
        if pid_text and _parse_int("WATCHDOG_PID", pid_text) != os.getpid():
            return None
        usec = _parse_int("WATCHDOG_USEC", usec_text)
        if usec <= 0:
            raise ValueError(f"$WATCHDOG_USEC={usec_text!r} must be positive")
        return usec / 1_000_000
    finally:
        if unset_environment:
            os.environ.pop("WATCHDOG_USEC", None)
            os.environ.pop("WATCHDOG_PID", None)
