"""Bounded connections for the HTTP server: a cap, request and keep-alive timeouts, throttled logging.

Resources are bounded, so a flood of connections cannot starve the controller of file descriptors
(asyncio then stops accepting for a second at a time, and every client waits): at most
``max_connections`` are open; above that the longest-idle connection without a request in progress is
closed, or the new one when every connection is busy. A connection must deliver its request (headers and
body) within ``header_timeout_s`` of opening or of its previous answer, and an idle kept-alive connection
is closed after ``keepalive_timeout_s``. Accept failures and cap hits are logged at most once per 10 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import math
import resource
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, ClassVar

from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

log = logging.getLogger("controller.api.server")  # the server's log: one name to raise or mute

DEFAULT_MAX_CONNECTIONS = 256  # far above what a charger's local clients open; well below 1024 descriptors
DEFAULT_HEADER_TIMEOUT_S = 10.0  # a request that is not in after this long is not coming (slowloris)
DEFAULT_KEEPALIVE_TIMEOUT_S = 5.0  # uvicorn's default
LISTEN_BACKLOG = 128  # connections the kernel queues before accept; also the most accepted in one go
LOG_INTERVAL_S = 10.0  # at most one line per interval for each repeating connection-level failure
NOFILE_CEILING = 65536  # raise_nofile_limit() goes no higher, even when the hard limit allows it
_FDS_KEPT_FREE = 0.5  # the connection cap leaves at least this share of RLIMIT_NOFILE to everything else
ACCEPT_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})

LoopExceptionHandler = Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object]


class ThrottledLog:
    """One log line per ``interval_s`` for a repeating condition; the rest are counted and the count is logged
    when the interval ends, so a flood of identical failures shows as a few lines, not thousands."""

    def __init__(
        self,
        logger: logging.Logger,
        level: int,
        what: str,
        *,
        interval_s: float = LOG_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._level = level
        self._what = what
        self._interval_s = interval_s
        self._clock = clock
        self._quiet_until = -math.inf
        self._suppressed = 0
        self._last = ""
        self._flush: asyncio.TimerHandle | None = None
        self.total = 0

    def note(self, detail: str) -> None:
        """Log ``what: detail`` now, or count it for the summary line at the end of the quiet interval."""
        self.total += 1
        now = self._clock()
        self._last = detail
        if now >= self._quiet_until:
            self._logger.log(self._level, "%s: %s", self._what, detail)
            self._quiet_until = now + self._interval_s
            return
        self._suppressed += 1
        if self._flush is None:
            with contextlib.suppress(RuntimeError):  # no running loop: the count waits for the next line
                loop = asyncio.get_running_loop()
                self._flush = loop.call_later(self._quiet_until - now, self.flush)

    def flush(self) -> None:
        """Log how many were counted since the last line (if any), and start a new quiet interval."""
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        if self._suppressed:
            self._logger.log(self._level, "%s: %d more in the last %.0f s (last: %s)", self._what, self._suppressed,
                             self._interval_s, self._last)
            self._suppressed = 0
            self._quiet_until = self._clock() + self._interval_s


class ConnectionGuard:
    """The open connections of one server, least recently active first, and the cap on their number."""

    def __init__(self, max_connections: int, header_timeout_s: float, keepalive_timeout_s: float) -> None:
        self.max_connections = max_connections
        self.header_timeout_s = header_timeout_s
        self.keepalive_timeout_s = keepalive_timeout_s
        self.open: OrderedDict[GuardedH11Protocol, None] = OrderedDict()
        self.evicted = 0
        self.refused = 0
        self.timed_out = 0
        self.cap_log = ThrottledLog(log, logging.WARNING, "HTTP API at its cap of open connections")
        self.timeout_log = ThrottledLog(log, logging.INFO, "HTTP API closed a connection without a request")

    def admit(self, connection: GuardedH11Protocol) -> bool:
        """Take a new connection; at the cap, close the longest-idle one for it, or refuse it if none is idle."""
        if len(self.open) >= self.max_connections:
            victim = next((c for c in self.open if not c.request_in_progress()), None)
            if victim is None:
                self.refused += 1
                self.cap_log.note(f"{len(self.open)} busy, a new connection refused")
                return False
            self.evicted += 1
            self.cap_log.note(f"{len(self.open)} open, the longest idle one closed for a new one")
            self.forget(victim)
            victim.transport.close()
        self.open[connection] = None
        return True

    def touch(self, connection: GuardedH11Protocol) -> None:
        """The connection did something: it is now the most recently active."""
        if connection in self.open:
            self.open.move_to_end(connection)

    def forget(self, connection: GuardedH11Protocol) -> None:
        """The connection is closed (or being closed)."""
        self.open.pop(connection, None)

    def close_logs(self) -> None:
        """Log the counts still pending (server stop)."""
        self.cap_log.flush()
        self.timeout_log.flush()


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a cap on connections, a request (header) timeout and a float keep-alive.

    ``guard`` is set on a subclass per server (``guarded_protocol``): uvicorn makes one instance per connection.
    """

    guard: ClassVar[ConnectionGuard]

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._request_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Count the connection against the cap (closing it at once if over) and start its request timer."""
        super().connection_made(transport)
        if not self.guard.admit(self):
            self.connections.discard(self)
            transport.close()
            return
        self._arm_request_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        """Free the connection's place under the cap and its timer."""
        self.guard.forget(self)
        self._cancel_request_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Mark the connection active, then let h11 parse."""
        self.guard.touch(self)
        super().data_received(data)

    def handle_events(self) -> None:
        """Parse as uvicorn does; once a request is fully in, its timer stops (the app may take its time)."""
        super().handle_events()
        if self.request_in_progress():
            self._cancel_request_timer()

    def on_response_complete(self) -> None:
        """The next request must come within the timeouts too; the idle keep-alive timer is ours (float)."""
        if not self.transport.is_closing():
            self._arm_request_timer()
        super().on_response_complete()
        if self.timeout_keep_alive_task is not None:  # uvicorn armed its (whole-second) idle timer: use ours
            self.timeout_keep_alive_task.cancel()
            self.timeout_keep_alive_task = self.loop.call_later(
                self.guard.keepalive_timeout_s, self.timeout_keep_alive_handler
            )

    def request_in_progress(self) -> bool:
        """A request has been received in full and its answer is not complete (never evicted for the cap)."""
        cycle = self.cycle
        return cycle is not None and not cycle.response_complete and not cycle.more_body

    def _arm_request_timer(self) -> None:
        """(Re)start the deadline for the next complete request."""
        self._cancel_request_timer()
        self._request_timer = self.loop.call_later(self.guard.header_timeout_s, self._request_timed_out)

    def _cancel_request_timer(self) -> None:
        """No deadline: a request is being answered, or the connection is gone."""
        if self._request_timer is not None:
            self._request_timer.cancel()
            self._request_timer = None

    def _request_timed_out(self) -> None:
        """The deadline passed without a complete request: close (no answer; a slowloris gets nothing)."""
        self._request_timer = None
        if self.transport.is_closing():
            return
        self.guard.timed_out += 1
        self.guard.timeout_log.note(f"no complete request within {self.guard.header_timeout_s:g} s")
        self.guard.forget(self)
        self.transport.close()


def guarded_protocol(guard: ConnectionGuard) -> type[GuardedH11Protocol]:
    """The protocol class for one server (uvicorn instantiates ``http=`` itself, one per connection)."""

    class ServerProtocol(GuardedH11Protocol):
        """GuardedH11Protocol bound to one server's guard."""

    ServerProtocol.guard = guard
    return ServerProtocol


def raise_nofile_limit(ceiling: int = NOFILE_CEILING) -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (at most ``ceiling``) and return the soft limit now.

    Many systems start services with a soft limit of 1024 and a far higher hard limit; the API's
    connection cap is derived from the soft limit (``connection_cap``).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = ceiling if hard == resource.RLIM_INFINITY else min(hard, ceiling)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as exc:
        log.warning("cannot raise the open-file limit from %d to %d: %s", soft, target, exc)
        return soft
    log.info("open-file limit raised from %d to %d", soft, target)
    return target


def connection_cap(requested: int) -> int:
    """``requested``, lowered so the connections leave at least half of the soft RLIMIT_NOFILE to the rest."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return requested
    return max(1, min(requested, int(soft * (1 - _FDS_KEPT_FREE))))
