"""Serving in the current loop: port 0, stop, cancellation, busy ports, signals left alone."""

from __future__ import annotations

import asyncio
import signal
import socket

import pytest

from controller.api.app import create_app
from controller.api.server import ApiServer, bound_port, serve

from .fake_charger import FakeCharger
from .http_helpers import SseReader, call_sync


def port_is_closed(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


async def test_port_zero_gives_a_real_port_and_stop_ends_serving() -> None:
    app = create_app(FakeCharger())
    ready, stop = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(serve(app, "127.0.0.1", 0, ready=ready, stop=stop))
    await asyncio.wait_for(ready.wait(), 5)
    port = bound_port(app)
    assert port > 0
    assert (await asyncio.to_thread(call_sync, port, "GET", "/status")).status == 200
    stop.set()
    await asyncio.wait_for(task, 5)
    assert port_is_closed(port)
    with pytest.raises(RuntimeError, match="not being served"):
        bound_port(app)


async def test_stop_ends_open_event_streams_instead_of_waiting_on_them() -> None:
    app = create_app(FakeCharger())
    server = ApiServer(app, "127.0.0.1", 0)
    ready = asyncio.Event()
    task = asyncio.create_task(server.run_until(ready=ready))
    await asyncio.wait_for(ready.wait(), 5)
    sse = await SseReader.open(server.port)
    await sse.frame()
    server.stop()
    await asyncio.wait_for(task, 2)  # well under uvicorn's graceful-shutdown timeout
    with pytest.raises(EOFError):
        await sse.frame()
    await sse.close()


async def test_cancelling_the_serve_task_closes_the_port() -> None:
    app = create_app(FakeCharger())
    ready = asyncio.Event()
    task = asyncio.create_task(serve(app, "127.0.0.1", 0, ready=ready))
    await asyncio.wait_for(ready.wait(), 5)
    port = bound_port(app)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    assert port_is_closed(port)


async def test_a_busy_port_fails_at_once_with_oserror() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=f"cannot serve the HTTP API on 127.0.0.1:{port}"):
            await serve(create_app(FakeCharger()), "127.0.0.1", port)


async def test_the_daemons_signal_handlers_are_left_alone() -> None:
    def mine(signum: int, frame: object) -> None:
        pass

    before = signal.signal(signal.SIGTERM, mine)
    try:
        app = create_app(FakeCharger())
        ready, stop = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(serve(app, "127.0.0.1", 0, ready=ready, stop=stop))
        await asyncio.wait_for(ready.wait(), 5)
        assert signal.getsignal(signal.SIGTERM) is mine
        assert signal.getsignal(signal.SIGINT) is not None
        stop.set()
        await task
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, before)


async def test_start_returns_the_serving_task_once_requests_are_answered() -> None:
    server = ApiServer(create_app(FakeCharger()), "127.0.0.1", 0)
    stop = asyncio.Event()
    task = await asyncio.wait_for(server.start(stop=stop), 5)
    assert not task.done()
    reply = await asyncio.to_thread(call_sync, server.port, "GET", "/status")
    assert reply.status == 200
    stop.set()
    await asyncio.wait_for(task, 5)
    assert port_is_closed(server.port)


async def test_start_raises_why_serving_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    server = ApiServer(create_app(FakeCharger()), "127.0.0.1", 0)

    async def broken_serve(sockets: list[socket.socket] | None = None) -> None:
        raise OSError("the listening socket went away")

    monkeypatch.setattr(server, "serve", broken_serve)
    with pytest.raises(OSError, match="went away"):
        await asyncio.wait_for(server.start(), 5)
