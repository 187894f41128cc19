"""``GET /events``: a client that goes away leaves no "socket.send() raised exception" warnings behind.

asyncio logs that warning for every write to a transport after its fifth write past the loss of its
connection. The stream learns of the loss only when the server's ``connection_lost`` runs, one loop
iteration after the socket error; a stream that wrote each pending event separately wrote a whole burst
into the dead transport within that one iteration (found by a stress run: tens of thousands of lines).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import Iterator

import pytest

from controller.api import events as api_events

from .http_helpers import Api
from .test_api_events import wait_for_subscribers

BURST = 40  # events pending when the client vanishes: far above asyncio's threshold of 5 writes


def _send_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """asyncio's warnings about writes to a lost connection."""
    return [r.getMessage() for r in caplog.records if "socket.send() raised exception" in r.getMessage()]


@contextlib.contextmanager
def raw_client(port: int) -> Iterator[socket.socket]:
    """A plain blocking socket, so the test can reset it (RST) at an exact moment."""
    client = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        yield client
    finally:
        client.close()


async def _read_until(client: socket.socket, marker: bytes) -> bytes:
    """Read (without blocking the loop the server runs in) until ``marker`` arrived."""
    client.setblocking(False)
    seen = b""
    for _ in range(500):
        with contextlib.suppress(BlockingIOError):
            seen += client.recv(65536)
        if marker in seen:
            return seen
        await asyncio.sleep(0.01)
    raise AssertionError(f"never got {marker!r}: {seen[:300]!r}")


def _reset(client: socket.socket) -> None:
    """Close with an RST at once (SO_LINGER 0), as a client whose process or network went away."""
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()


async def test_a_client_vanishing_while_a_burst_is_sent_leaves_no_send_warnings(
    api: Api, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client resets its connection just as the stream takes a burst of pending events (the race)."""
    caplog.set_level(logging.WARNING, logger="asyncio")
    with raw_client(api.port) as client:
        client.sendall(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n")
        await _read_until(client, b": connected")
        await wait_for_subscribers(api, 1)
        take = api_events._ClientQueue.take

        def take_then_vanish(queue: api_events._ClientQueue) -> list[bytes]:
            frames = take(queue)
            if client.fileno() != -1:
                _reset(client)  # gone before the server could send any of them
            return frames

        monkeypatch.setattr(api_events._ClientQueue, "take", take_then_vanish)
        for n in range(BURST):
            api.charger.events.publish({"type": "token", "n": n})
        await wait_for_subscribers(api, 0)  # the stream noticed and ended
    for n in range(BURST):  # and nothing more is written anywhere
        api.charger.events.publish({"type": "token", "n": n})
    await asyncio.sleep(0.1)
    assert _send_warnings(caplog) == []


async def test_clients_hanging_up_during_a_replay_leave_no_send_warnings(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    """``?since=0`` replays every kept event at once; clients reset mid-way while events keep coming."""
    caplog.set_level(logging.WARNING, logger="asyncio")
    for n in range(300):
        api.charger.events.publish({"type": "token", "n": n, "pad": "x" * 200})
    for _ in range(10):
        with raw_client(api.port) as client:
            client.sendall(b"GET /events?since=0 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            await _read_until(client, b"\r\n\r\n")
            _reset(client)
        for n in range(BURST):
            api.charger.events.publish({"type": "token", "n": n})
        await asyncio.sleep(0)
    await wait_for_subscribers(api, 0)
    assert _send_warnings(caplog) == []


async def test_a_burst_still_arrives_whole_and_in_order(api: Api) -> None:
    """Sending a burst as one chunk keeps every frame, in order, each still a complete SSE frame."""
    with raw_client(api.port) as client:
        client.sendall(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await _read_until(client, b": connected")
        await wait_for_subscribers(api, 1)
        for n in range(BURST):
            api.charger.events.publish({"type": "token", "n": n})
        text = (await _read_until(client, b'"n":%d,' % (BURST - 1))).decode()
    frames = [f for f in text.split("\n\n") if '"type":"token"' in f]
    assert [int(f.rsplit('"n":', 1)[1].split(",")[0]) for f in frames] == list(range(BURST))
