"""``charger-controller run``: the controller and its HTTP API in one asyncio loop until a signal."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from pathlib import Path

from controller.api.app import create_app
from controller.api.auth import require_token_for_bind
from controller.api.server import ApiServer
from controller.config.model import ChargerConfig, parse_bind
from controller.runtime.build import build

log = logging.getLogger(__name__)


async def run_daemon(
    config: ChargerConfig,
    *,
    api: str | None = None,
    state_dir: Path | None = None,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Build and start everything, serve the API, and shut down safely when ``stop`` is set or on SIGTERM/SIGINT.

    ``api`` (HOST:PORT) and ``state_dir`` override the configuration file. Raises ValueError for a
    non-loopback bind without an access token, OSError when the API address cannot be bound.
    """
    host, port = parse_bind(api) if api else (config.api.host, config.api.port)
    require_token_for_bind(host, config.api.access_token)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        # not possible outside the main thread (tests) or where signals are not supported
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    built = await build(config, state_dir=state_dir)
    try:
        await built.start()
        app = create_app(built.runtime, access_token=config.api.access_token, bind_host=host)
        server = ApiServer(app, host, port)
        serving = await server.start(stop=stop)
        if on_ready is not None:
            on_ready(server.url)
        await serving
    finally:
        log.info("shutting down: contactors open, then LEDs, then drivers")
        await built.stop()
