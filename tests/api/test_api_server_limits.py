"""The server's bounds: connection cap, request (header) timeout, keep-alive timeout, throttled accept errors.

Timeouts are set short here (tenths of a second) and every wait is a generous bound that only guards
against a hang: the tests assert what happens, not how fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import resource
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from controller.api import connections as api_connections
from controller.api.app import create_app
from controller.api.connections import ThrottledLog, connection_cap, raise_nofile_limit
from controller.api.server import ApiServer

from .fake_charger import FakeCharger
from .http_helpers import SseReader, call_sync

GUARD_S = 5.0  # hang guard for anything that should happen within a fraction of a second

Serve = Callable[..., Any]


@pytest.fixture
async def serve_limited() -> AsyncIterator[Serve]:
    """Start ApiServers with the given limits; all are stopped afterwards."""
    servers: list[tuple[ApiServer, asyncio.Task[None]]] = []

    async def starter(**limits: Any) -> ApiServer:
        server = ApiServer(create_app(FakeCharger()), "127.0.0.1", 0, **limits)
        ready = asyncio.Event()
        task = asyncio.create_task(server.run_until(ready=ready))
        servers.append((server, task))
        await asyncio.wait_for(ready.wait(), GUARD_S)
        return server

    yield starter
    for server, _ in servers:
        server.stop()
    for _, task in servers:
        await asyncio.wait_for(task, 10)


async def connect(port: int, data: bytes = b"") -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw connection that sends ``data`` (maybe nothing, maybe part of a request)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    if data:
        writer.write(data)
        await writer.drain()
    return reader, writer


async def closed_by_server(reader: asyncio.StreamReader, within_s: float = GUARD_S) -> bytes:
    """Everything the server sent until it closed the connection (fails if it stays open ``within_s``)."""
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := await asyncio.wait_for(reader.read(65536), within_s):
            data += chunk
    return data


async def still_open(reader: asyncio.StreamReader, for_s: float) -> bool:
    """True when nothing (no data, no close) arrives for ``for_s``."""
    try:
        await asyncio.wait_for(reader.read(1), for_s)
    except TimeoutError:
        return True
    return False


def close(writer: asyncio.StreamWriter) -> None:
    """Close our end (the server may have closed its end already)."""
    writer.close()


async def read_answer(reader: asyncio.StreamReader) -> bytes:
    """One complete answer with a Content-Length (the connection stays open)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), GUARD_S)
    lines = head.lower().split(b"\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in lines if line.startswith(b"content-length:"))
    return head + await asyncio.wait_for(reader.readexactly(length), GUARD_S)


GET_STATUS = b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


# ------------------------------------------------------------------ request (header) timeout


async def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(serve_limited: Serve) -> None:
    server = await serve_limited(header_timeout_s=0.3)
    reader, writer = await connect(server.port)
    assert await closed_by_server(reader) == b""
    assert server.guard.timed_out == 1
    close(writer)


async def test_a_partial_header_is_closed_after_the_header_timeout(serve_limited: Serve) -> None:
    server = await serve_limited(header_timeout_s=0.3)
    reader, writer = await connect(server.port, b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    for _ in range(3):  # trickling more header bytes does not extend the deadline (slowloris)
        await asyncio.sleep(0.1)
        with contextlib.suppress(ConnectionError):
            writer.write(b"X-Slow: 1\r\n")
    assert await closed_by_server(reader) == b""
    close(writer)


async def test_a_body_that_never_comes_is_cut_off_without_an_internal_error(
    serve_limited: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    server = await serve_limited(header_timeout_s=0.3)
    head = (b"POST /evses/1/token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 50\r\n\r\n")
    reader, writer = await connect(server.port, head + b'{"id_token":')
    assert await closed_by_server(reader) == b""
    close(writer)
    await asyncio.sleep(0.05)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


async def test_a_complete_request_is_served_however_long_its_answer_runs(serve_limited: Serve) -> None:
    """The timer stops once the request is in: an event stream outlives the header timeout."""
    server = await serve_limited(header_timeout_s=0.2)
    sse = await SseReader.open(server.port)
    assert await sse.frame() == ": connected\n\n"
    await asyncio.sleep(0.6)
    server._app.state.event_streams._hub.publish({"type": "token", "n": 1})
    assert '"n":1' in await sse.frame()
    await sse.close()


async def test_requests_in_time_are_answered(serve_limited: Serve) -> None:
    server = await serve_limited(header_timeout_s=0.5)
    reply = await asyncio.to_thread(call_sync, server.port, "GET", "/status")
    assert reply.status == 200


# ------------------------------------------------------------------ keep-alive


async def test_an_idle_kept_alive_connection_is_closed_after_the_keepalive_timeout(serve_limited: Serve) -> None:
    server = await serve_limited(keepalive_timeout_s=0.3, header_timeout_s=30)
    reader, writer = await connect(server.port, GET_STATUS)
    answer = await closed_by_server(reader)  # answered, kept alive, then closed when idle
    assert answer.startswith(b"HTTP/1.1 200"), answer[:100]
    close(writer)


async def test_a_kept_alive_connection_serves_the_next_request(serve_limited: Serve) -> None:
    server = await serve_limited(keepalive_timeout_s=2, header_timeout_s=2)
    reader, writer = await connect(server.port, GET_STATUS)
    first = await read_answer(reader)
    assert first.startswith(b"HTTP/1.1 200")
    writer.write(GET_STATUS.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
    second = await closed_by_server(reader)
    assert b"HTTP/1.1 200" in second
    close(writer)


async def test_slowloris_after_an_answer_is_cut_by_the_header_timeout(serve_limited: Serve) -> None:
    server = await serve_limited(keepalive_timeout_s=30, header_timeout_s=0.4)
    reader, writer = await connect(server.port, GET_STATUS)
    assert (await read_answer(reader)).startswith(b"HTTP/1.1 200")
    writer.write(b"GET /status HTTP/1.1\r\n")  # starts the next request (stops the keep-alive timer), never ends it
    assert await closed_by_server(reader) == b""
    close(writer)


# ------------------------------------------------------------------ the connection cap


async def test_over_the_cap_the_longest_idle_connection_makes_room(serve_limited: Serve) -> None:
    server = await serve_limited(max_connections=4, header_timeout_s=30)
    idle = [await connect(server.port) for _ in range(4)]
    await asyncio.sleep(0.1)
    assert len(server.guard.open) == 4
    reply = await asyncio.to_thread(call_sync, server.port, "GET", "/status")
    assert reply.status == 200
    assert await closed_by_server(idle[0][0]) == b""  # the oldest went
    assert all([await still_open(reader, 0.1) for reader, _ in idle[1:]])
    assert server.guard.evicted == 1 and server.guard.refused == 0
    for _, writer in idle:
        close(writer)


async def test_over_the_cap_with_every_connection_busy_the_new_one_is_closed_at_once(serve_limited: Serve) -> None:
    server = await serve_limited(max_connections=2, header_timeout_s=30)
    streams = [await SseReader.open(server.port) for _ in range(2)]
    for sse in streams:
        await sse.frame()
    reader, writer = await connect(server.port, GET_STATUS)
    assert await closed_by_server(reader) == b""  # no answer: refused
    assert server.guard.refused == 1
    server._app.state.event_streams._hub.publish({"type": "token", "n": 2})
    for sse in streams:  # the busy ones are untouched
        assert '"n":2' in await sse.frame()
        await sse.close()
    close(writer)


async def test_a_flood_over_the_cap_is_logged_a_few_times_not_per_connection(
    serve_limited: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="controller.api.server")
    server = await serve_limited(max_connections=5, header_timeout_s=30)
    held = [await connect(server.port) for _ in range(60)]
    await asyncio.sleep(0.2)
    assert len(server.guard.open) <= 5
    assert server.guard.evicted >= 50
    lines = [r for r in caplog.records if "cap of open connections" in r.getMessage()]
    assert 1 <= len(lines) <= 2, [r.getMessage() for r in lines]
    for _, writer in held:
        close(writer)


def test_the_cap_leaves_half_the_open_file_limit_to_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resource, "getrlimit", lambda _: (200, 4096))
    assert connection_cap(256) == 100
    monkeypatch.setattr(resource, "getrlimit", lambda _: (65536, 65536))
    assert connection_cap(256) == 256
    monkeypatch.setattr(resource, "getrlimit", lambda _: (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    assert connection_cap(256) == 256


def test_limits_are_checked() -> None:
    for bad in ({"max_connections": 0}, {"header_timeout_s": 0}, {"keepalive_timeout_s": -1}):
        with pytest.raises(ValueError):
            ApiServer(create_app(FakeCharger()), "127.0.0.1", 0, **bad)


# ------------------------------------------------------------------ the open-file limit


@pytest.fixture
def fake_rlimit(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """getrlimit/setrlimit on a dict, so the tests never change this process's limit."""
    state: dict[str, Any] = {"limits": (1024, 524288), "set": []}

    def setrlimit(which: int, limits: tuple[int, int]) -> None:
        if state.get("fail"):
            raise ValueError("not allowed")
        state["set"].append(limits)
        state["limits"] = limits

    monkeypatch.setattr(resource, "getrlimit", lambda _: state["limits"])
    monkeypatch.setattr(resource, "setrlimit", setrlimit)
    yield state


def test_raise_nofile_limit_goes_to_the_hard_limit_capped(fake_rlimit: dict[str, Any]) -> None:
    assert raise_nofile_limit() == 65536
    assert fake_rlimit["set"] == [(65536, 524288)]
    fake_rlimit["limits"], fake_rlimit["set"] = (1024, 4096), []
    assert raise_nofile_limit() == 4096 and fake_rlimit["set"] == [(4096, 4096)]
    fake_rlimit["set"] = []
    assert raise_nofile_limit() == 4096 and fake_rlimit["set"] == []  # already there: nothing to do


def test_raise_nofile_limit_keeps_the_limit_when_refused(fake_rlimit: dict[str, Any],
                                                          caplog: pytest.LogCaptureFixture) -> None:
    fake_rlimit["fail"] = True
    assert raise_nofile_limit() == 1024
    assert "cannot raise the open-file limit" in caplog.text


# ------------------------------------------------------------------ accept failures in the log


class FakeClock:
    """A settable clock for ThrottledLog."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_throttled_log_says_once_per_interval_and_counts_the_rest(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    clock = FakeClock()
    throttled = ThrottledLog(logging.getLogger("t"), logging.WARNING, "trouble", interval_s=10, clock=clock)
    for n in range(100):
        clock.now = n * 0.05
        throttled.note(f"#{n}")
    assert [r.getMessage() for r in caplog.records] == ["trouble: #0"]
    throttled.flush()  # what the interval's timer does at its end
    assert caplog.records[-1].getMessage() == "trouble: 99 more in the last 10 s (last: #99)"
    clock.now = 100.0
    throttled.note("later")
    assert caplog.records[-1].getMessage() == "trouble: later"
    assert len(caplog.records) == 3 and throttled.total == 101


async def test_throttled_log_flushes_by_itself_when_the_interval_ends(caplog: pytest.LogCaptureFixture) -> None:
    throttled = ThrottledLog(logging.getLogger("t"), logging.WARNING, "trouble", interval_s=0.1)
    for _ in range(5):
        throttled.note("again")
    await asyncio.sleep(0.5)
    assert [r.getMessage() for r in caplog.records] == ["trouble: again",
                                                        "trouble: 4 more in the last 0 s (last: again)"]


def _accept_context(server: ApiServer, code: int) -> dict[str, Any]:
    """What asyncio's accept loop reports when accept() fails for lack of resources."""
    return {"message": "socket.accept() out of system resource", "exception": OSError(code, os.strerror(code)),
            "socket": server._socket}


async def test_accept_errors_are_throttled_and_other_loop_errors_pass_through(
    serve_limited: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    loop = asyncio.get_running_loop()
    seen: list[dict[str, Any]] = []
    before = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: seen.append(context))
    try:
        server = await serve_limited()
        for _ in range(500):
            loop.call_exception_handler(_accept_context(server, errno.EMFILE))
        loop.call_exception_handler(_accept_context(server, errno.ENFILE))
        other = {"message": "something else", "exception": RuntimeError("x")}
        loop.call_exception_handler(other)
        lines = [r.getMessage() for r in caplog.records if "cannot accept" in r.getMessage()]
        assert lines == ["HTTP API cannot accept connections: Too many open files (EMFILE); asyncio retries in 1 s"]
        assert seen == [other]  # not swallowed
        assert server.accept_log.total == 501
        server.stop()
        await asyncio.sleep(0.3)
        lines = [r.getMessage() for r in caplog.records if "cannot accept" in r.getMessage()]
        assert lines[1:] == ["HTTP API cannot accept connections: 500 more in the last 10 s "
                             "(last: Too many open files in system (ENFILE); asyncio retries in 1 s)"]
        assert loop.get_exception_handler() is not None
        loop.call_exception_handler(_accept_context(server, errno.EMFILE))
        assert len(seen) == 2  # the previous handler is back
    finally:
        loop.set_exception_handler(before)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts descriptors in /proc/self/fd")
async def test_a_real_descriptor_shortage_logs_a_line_not_one_per_retry(
    serve_limited: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """This process runs out of descriptors while a client (another process) holds 40 connections open."""
    server = await serve_limited(max_connections=10_000, header_timeout_s=30)
    server.guard.max_connections = 10_000  # what a too high cap would allow: the accepts themselves fail
    client = subprocess.Popen(
        [sys.executable, "-c", (
            "import socket, sys, time\n"
            f"held = [socket.create_connection(('127.0.0.1', {server.port})) for _ in range(40)]\n"
            "print('open', flush=True)\n"
            "time.sleep(30)\n"
        )],
        stdout=subprocess.PIPE,
    )
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    fillers: list[int] = []
    try:
        highest = max(int(fd) for fd in os.listdir("/proc/self/fd"))
        while not fillers or fillers[-1] < highest:  # take the free numbers below the highest one in use
            fillers.append(os.open(os.devnull, os.O_RDONLY))
        resource.setrlimit(resource.RLIMIT_NOFILE, (fillers[-1] + 1 + 4, hard))  # room for 4 more
        assert client.stdout is not None
        assert await asyncio.wait_for(asyncio.to_thread(client.stdout.readline), 20) == b"open\n"
        await asyncio.sleep(2.5)  # asyncio retries the accept every second: a few more failures
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        for fd in fillers:
            os.close(fd)
        client.kill()
        client.wait()
    lines = [r.getMessage() for r in caplog.records if "accept" in r.getMessage()]
    assert server.accept_log.total >= 2
    assert lines and len(lines) <= 2, lines
    assert all(r.name == "controller.api.server" for r in caplog.records if "accept" in r.getMessage())
    reply = await asyncio.to_thread(call_sync, server.port, "GET", "/status")  # serving again
    assert reply.status == 200


def test_the_module_defaults_are_the_documented_ones() -> None:
    assert (api_connections.DEFAULT_MAX_CONNECTIONS, api_connections.DEFAULT_HEADER_TIMEOUT_S,
            api_connections.DEFAULT_KEEPALIVE_TIMEOUT_S) == (256, 10.0, 5.0)
