"""Serving the HTTP API with uvicorn inside the controller's own asyncio loop.

No second loop and no thread: the API calls the controller directly. The daemon owns
SIGINT/SIGTERM and the logging setup, so uvicorn installs no signal handlers and no log
config; its access log (no bodies) goes to the "uvicorn.access" logger, which the daemon
may mute by level. The socket is bound before serving, so a busy port fails fast with an
OSError and port 0 yields a known port.

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
import socket
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import uvicorn
from fastapi import FastAPI
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from controller.api_events import EventStreams

log = logging.getLogger(__name__)

GRACEFUL_SHUTDOWN_S = 3
DEFAULT_MAX_CONNECTIONS = 256  # far above what a charger's local clients open; well below 1024 descriptors
DEFAULT_HEADER_TIMEOUT_S = 10.0  # a request that is not in after this long is not coming (slowloris)
DEFAULT_KEEPALIVE_TIMEOUT_S = 5.0  # uvicorn's default
LISTEN_BACKLOG = 128  # connections the kernel queues before accept; also the most accepted in one go
LOG_INTERVAL_S = 10.0  # at most one line per interval for each repeating connection-level failure
NOFILE_CEILING = 65536  # raise_nofile_limit() goes no higher, even when the hard limit allows it
_FDS_KEPT_FREE = 0.5  # the connection cap leaves at least this share of RLIMIT_NOFILE to everything else
_ACCEPT_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})

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


class ApiServer(uvicorn.Server):
    """uvicorn bound to ``host:port`` now, served in the running loop until ``stop()`` or cancellation.

    ``max_connections`` (default 256, lowered to half the open-file limit): open connections at most; a new
    one over the cap closes the longest-idle connection that has no request in progress, or is itself closed
    at once when every connection is busy. ``header_timeout_s`` (default 10 s): a connection that has not
    delivered a complete request (headers and body) this long after opening or after its previous answer is
    closed. ``keepalive_timeout_s`` (default 5 s): an idle kept-alive connection is closed after this.
    """

    def __init__(
        self,
        app: FastAPI,
        host: str,
        port: int,
        *,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S,
        keepalive_timeout_s: float = DEFAULT_KEEPALIVE_TIMEOUT_S,
    ) -> None:
        if max_connections < 1 or not header_timeout_s > 0 or not keepalive_timeout_s > 0:
            raise ValueError("max_connections must be >= 1 and the timeouts > 0")
        self.guard = ConnectionGuard(max_connections, header_timeout_s, keepalive_timeout_s)
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            http=guarded_protocol(self.guard),
            ws="none",
            lifespan="off",
            log_config=None,
            proxy_headers=False,
            server_header=False,
            backlog=LISTEN_BACKLOG,
            timeout_keep_alive=max(1, math.ceil(keepalive_timeout_s)),  # replaced per connection by the float
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        )
        super().__init__(config)
        self._app = app
        self._requested_max_connections = max_connections
        self._socket = _bind(host, port)
        self._ready: asyncio.Event | None = None
        self._previous_handler: LoopExceptionHandler | None = None
        self._handler_installed = False
        self.accept_log = ThrottledLog(log, logging.WARNING, "HTTP API cannot accept connections")
        self.host = host
        self.port: int = self._socket.getsockname()[1]
        app.state.bound_port = self.port

    @property
    def url(self) -> str:
        """Base URL of the API as bound."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Leave SIGINT/SIGTERM to the daemon (uvicorn would take them over and re-raise them)."""
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start accepting, then say so (log line and the ready event)."""
        streams = _event_streams(self._app)
        if streams is not None:
            streams.reopen()
        cap = connection_cap(self._requested_max_connections)
        if cap < self._requested_max_connections:
            log.warning("HTTP API connection cap lowered from %d to %d by the open-file limit",
                        self._requested_max_connections, cap)
        self.guard.max_connections = cap
        self._install_exception_handler()
        await super().startup(sockets=sockets)
        log.info("HTTP API listening on %s", self.url)
        if self._ready is not None:
            self._ready.set()

    def stop(self) -> None:
        """Ask the server to finish: end the event streams and stop accepting; ``run`` then returns."""
        streams = _event_streams(self._app)
        if streams is not None:
            streams.close()
        self.should_exit = True

    async def run_until(self, *, ready: asyncio.Event | None = None, stop: asyncio.Event | None = None) -> None:
        """Serve until ``stop()`` is called, ``stop`` is set or this task is cancelled; the socket is closed after."""
        self._ready = ready
        watcher = asyncio.ensure_future(self._stop_when(stop)) if stop is not None else None
        try:
            await self.serve(sockets=[self._socket])
        except asyncio.CancelledError:
            self.stop()
            if self.started:
                await self.shutdown(sockets=[self._socket])
            raise
        finally:
            if watcher is not None:
                watcher.cancel()
            self._socket.close()
            self._app.state.bound_port = None
            self._uninstall_exception_handler()
            self.accept_log.flush()
            self.guard.close_logs()

    async def start(self, *, stop: asyncio.Event | None = None) -> asyncio.Task[None]:
        """Serve in a new task (``run_until``) and return it once connections are accepted.

        This is the daemon's way to serve, so it first raises the process's open-file limit
        (``raise_nofile_limit``). Raises at once why the API could not start (the serving task's exception).
        """
        raise_nofile_limit()
        ready = asyncio.Event()
        serving = asyncio.ensure_future(self.run_until(ready=ready, stop=stop))
        waiting = asyncio.ensure_future(ready.wait())
        try:
            await asyncio.wait({serving, waiting}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            serving.cancel()
            raise
        finally:
            waiting.cancel()
        if serving.done():
            serving.result()  # re-raises why the API did not start
        return serving

    async def _stop_when(self, stop: asyncio.Event) -> None:
        """Stop serving once ``stop`` is set."""
        await stop.wait()
        self.stop()

    # ------------------------------------------------------------ accept failures in the loop's log

    def _install_exception_handler(self) -> None:
        """Throttle the loop's "socket.accept() out of system resource" reports (one per failed accept)."""
        loop = asyncio.get_running_loop()
        self._previous_handler = loop.get_exception_handler()
        loop.set_exception_handler(self._on_loop_exception)
        self._handler_installed = True

    def _uninstall_exception_handler(self) -> None:
        """Put back the loop's previous exception handler, unless someone replaced ours meanwhile."""
        if not self._handler_installed:
            return
        self._handler_installed = False
        with contextlib.suppress(RuntimeError):
            loop = asyncio.get_running_loop()
            if loop.get_exception_handler() == self._on_loop_exception:
                loop.set_exception_handler(self._previous_handler)

    def _on_loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """Accept failures (out of descriptors or memory) are counted and logged throttled; the rest as before."""
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in _ACCEPT_ERRNOS and "accept" in str(context.get("message")):
            name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
            self.accept_log.note(f"{exc.strerror or exc} ({name}); asyncio retries in 1 s")
            return
        if self._previous_handler is not None:
            self._previous_handler(loop, context)
        else:
            loop.default_exception_handler(context)


async def serve(
    app: FastAPI,
    host: str,
    port: int,
    *,
    ready: asyncio.Event | None = None,
    stop: asyncio.Event | None = None,
    **limits: Any,
) -> None:
    """Serve ``app`` on ``host:port`` in the current loop until ``stop`` is set or the task is cancelled.

    ``ready`` is set once connections are accepted; ``bound_port(app)`` then gives the port (for port 0).
    ``limits`` are ApiServer's keyword options. Raises OSError at once when the address cannot be bound.
    """
    await ApiServer(app, host, port, **limits).run_until(ready=ready, stop=stop)


def bound_port(app: FastAPI) -> int:
    """The TCP port ``app`` is being served on (useful after asking for port 0)."""
    port = getattr(app.state, "bound_port", None)
    if not isinstance(port, int):
        raise RuntimeError("the API app is not being served")
    return port


def _event_streams(app: FastAPI) -> EventStreams | None:
    """The app's open event streams (ended on stop), if it has any."""
    streams = getattr(app.state, "event_streams", None)
    return streams if isinstance(streams, EventStreams) else None


def _bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on the first address ``host`` resolves to."""
    name = host.strip("[]") or None
    try:
        infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, _, _, _, address = infos[0]
        sock = socket.create_server(address[:2], family=family, backlog=LISTEN_BACKLOG)
        # accepted connections inherit it: without it a kept-alive client waits ~40 ms per answer (Nagle
        # against delayed ACKs); asyncio sets it only on sockets it made with IPPROTO_TCP itself
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    except OSError as exc:
        raise OSError(exc.errno, f"cannot serve the HTTP API on {host}:{port}: {exc.strerror or exc}") from exc
