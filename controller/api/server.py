"""Serving the HTTP API with uvicorn inside the controller's own asyncio loop.

No second loop and no thread: the API calls the controller directly. The daemon owns
SIGINT/SIGTERM and the logging setup, so uvicorn installs no signal handlers and no log
config; its access log (no bodies) goes to the "uvicorn.access" logger, which the daemon
may mute by level. The socket is bound before serving, so a busy port fails fast with an
OSError and port 0 yields a known port.
Connections are bounded by controller.api.connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import math
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn
from fastapi import FastAPI

from controller.api.connections import (
    ACCEPT_ERRNOS,
    DEFAULT_HEADER_TIMEOUT_S,
    DEFAULT_KEEPALIVE_TIMEOUT_S,
    DEFAULT_MAX_CONNECTIONS,
    LISTEN_BACKLOG,
    ConnectionGuard,
    LoopExceptionHandler,
    ThrottledLog,
    connection_cap,
    guarded_protocol,
    raise_nofile_limit,
)
from controller.api.events import EventStreams

log = logging.getLogger(__name__)

GRACEFUL_SHUTDOWN_S = 3


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
        if isinstance(exc, OSError) and exc.errno in ACCEPT_ERRNOS and "accept" in str(context.get("message")):
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
