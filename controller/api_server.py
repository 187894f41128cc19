"""Serving the HTTP API with uvicorn inside the controller's own asyncio loop.

No second loop and no thread: the API calls the controller directly. The daemon owns
SIGINT/SIGTERM and the logging setup, so uvicorn installs no signal handlers and no log
config; its access log (no bodies) goes to the "uvicorn.access" logger, which the daemon
may mute by level. The socket is bound before serving, so a busy port fails fast with an
OSError and port 0 yields a known port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI

from controller.api_events import EventStreams

log = logging.getLogger(__name__)

GRACEFUL_SHUTDOWN_S = 3


class ApiServer(uvicorn.Server):
    """uvicorn bound to ``host:port`` now, served in the running loop until ``stop()`` or cancellation."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            http="h11",
            ws="none",
            lifespan="off",
            log_config=None,
            proxy_headers=False,
            server_header=False,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        )
        super().__init__(config)
        self._app = app
        self._socket = _bind(host, port)
        self._ready: asyncio.Event | None = None
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

    async def start(self, *, stop: asyncio.Event | None = None) -> asyncio.Task[None]:
        """Serve in a new task (``run_until``) and return it once connections are accepted.

        Raises at once why the API could not start (the serving task's exception).
        """
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
        await stop.wait()
        self.stop()


async def serve(
    app: FastAPI,
    host: str,
    port: int,
    *,
    ready: asyncio.Event | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve ``app`` on ``host:port`` in the current loop until ``stop`` is set or the task is cancelled.

    ``ready`` is set once connections are accepted; ``bound_port(app)`` then gives the port (for port 0).
    Raises OSError at once when the address cannot be bound.
    """
    await ApiServer(app, host, port).run_until(ready=ready, stop=stop)


def bound_port(app: FastAPI) -> int:
    """The TCP port ``app`` is being served on (useful after asking for port 0)."""
    port = getattr(app.state, "bound_port", None)
    if not isinstance(port, int):
        raise RuntimeError("the API app is not being served")
    return port


def _event_streams(app: FastAPI) -> EventStreams | None:
    streams = getattr(app.state, "event_streams", None)
    return streams if isinstance(streams, EventStreams) else None


def _bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on the first address ``host`` resolves to."""
    name = host.strip("[]") or None
    try:
        infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, _, _, _, address = infos[0]
        sock = socket.create_server(address[:2], family=family, backlog=128)
        # accepted connections inherit it: without it a kept-alive client waits ~40 ms per answer (Nagle
        # against delayed ACKs); asyncio sets it only on sockets it made with IPPROTO_TCP itself
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    except OSError as exc:
        raise OSError(exc.errno, f"cannot serve the HTTP API on {host}:{port}: {exc.strerror or exc}") from exc
