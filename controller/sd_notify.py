"""The systemd notification protocol (sd_notify(3)) in a few lines of the standard library, no dependency.

A service of ``Type=notify`` finds a datagram socket in ``$NOTIFY_SOCKET`` (a path, or ``@name`` in the
abstract namespace) and sends newline-separated ``KEY=VALUE`` lines: ``READY=1``, ``WATCHDOG=1``,
``STATUS=...``, ``STOPPING=1``. ``$WATCHDOG_USEC`` (with ``$WATCHDOG_PID`` naming this process, when set)
is the unit's ``WatchdogSec=``. Sending never blocks and never raises: a notification that cannot be
delivered is logged and dropped, because the controller must keep running without systemd.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


class Notifier:
    """A datagram socket to systemd's notification socket; ``send`` delivers one message."""

    def __init__(self, address: str) -> None:
        """Notify ``address`` (an absolute path or ``@abstract``); ValueError for any other form."""
        if address.startswith("@") and len(address) > 1:
            self._target = "\0" + address[1:]  # the abstract namespace: a leading NUL byte
        elif address.startswith("/"):
            self._target = address
        else:
            raise ValueError(f"unsupported NOTIFY_SOCKET {address!r} (expected an absolute path or @name)")
        self.address = address
        self._socket: socket.socket | None = None
        self._failed = False

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> Notifier | None:
        """The notifier systemd asked for in ``$NOTIFY_SOCKET``, or None when not started as ``Type=notify``."""
        address = environ.get("NOTIFY_SOCKET", "")
        if not address:
            return None
        try:
            return cls(address)
        except ValueError as exc:
            log.warning("%s: systemd is not notified", exc)
            return None

    def send(self, *assignments: str) -> bool:
        """Send ``KEY=VALUE`` assignments as one datagram; False (logged once per outage) when it was not delivered."""
        message = "\n".join(assignments).encode("utf-8", "replace")
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._socket.setblocking(False)  # a full queue drops the message instead of stalling the loop
            self._socket.sendto(message, self._target)
        except OSError as exc:
            if not self._failed:
                log.warning("cannot notify systemd at %s: %s", self.address, exc)
            self._failed = True
            return False
        if self._failed:
            log.info("notifying systemd at %s again", self.address)
        self._failed = False
        return True

    def close(self) -> None:
        """Close the socket (idempotent); a later ``send`` opens a new one."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def watchdog_timeout_s(environ: Mapping[str, str] = os.environ, pid: int | None = None) -> float | None:
    """The unit's ``WatchdogSec=`` in seconds from ``$WATCHDOG_USEC``, or None when there is no watchdog for us.

    As sd_watchdog_enabled(3): ``$WATCHDOG_PID``, when set, must be this process (``pid``, default
    ``os.getpid()``); a missing, malformed or zero value means no watchdog.
    """
    usec = environ.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    owner = environ.get("WATCHDOG_PID", "")
    if owner and owner != str(os.getpid() if pid is None else pid):
        return None
    return int(usec) / 1_000_000
