"""Fixtures: the API served by a real uvicorn on 127.0.0.1 (a free port) in the test's own loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from controller.api.app import create_app
from controller.api.server import bound_port, serve

from .fake_charger import FakeCharger
from .http_helpers import Api

Start = Callable[..., Awaitable[Api]]
TOKEN = "s3cret-token-0123456789"


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    """Serve an app for a charger; every server started here is stopped (and awaited) afterwards."""
    running: list[tuple[asyncio.Event, asyncio.Task[None]]] = []

    async def starter(charger: Any = None, *, access_token: str | None = None, **options: Any) -> Api:
        charger = charger if charger is not None else FakeCharger()
        app = create_app(charger, access_token=access_token, **options)
        ready, stop = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(serve(app, "127.0.0.1", 0, ready=ready, stop=stop))
        running.append((stop, task))
        await asyncio.wait_for(ready.wait(), 5)
        return Api(bound_port(app), charger, access_token)

    yield starter
    for stop, _ in running:
        stop.set()
    for _, task in running:
        await asyncio.wait_for(task, 10)


@pytest.fixture
async def api(start: Start) -> Api:
    """The API over a FakeCharger with sim controls, no access token."""
    return await start()
