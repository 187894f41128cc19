"""``GET /events``: the controller's event documents as server-sent events.

Each client gets its own bounded queue: a slow client loses its oldest events and is told
so (``event: overflow``) instead of making the controller hold memory for it. Publishing
never blocks and never raises into the publisher. What is pending is sent as one chunk: the
server learns of a vanished client only a loop iteration after the socket error, and frames
written one by one into that gap made asyncio log "socket.send() raised exception" per frame.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from controller.port.events import EventHub

log = logging.getLogger(__name__)

DEFAULT_QUEUE_LIMIT = 256
DEFAULT_KEEPALIVE_S = 15.0


class _ClientQueue:
    """One client's pending events, already encoded; the oldest go first when full."""

    def __init__(self, limit: int) -> None:
        self._items: deque[bytes] = deque()
        self._limit = limit
        self.dropped = 0
        self.wake = asyncio.Event()

    def put(self, event: dict[str, Any]) -> None:
        """EventHub callback: encode now (the publisher may reuse the dict), drop the oldest if full."""
        try:
            frame = encode_event(event)
        except (TypeError, ValueError):
            log.exception("event of type %r is not JSON; not streamed", event.get("type"))
            return
        if len(self._items) >= self._limit:
            self._items.popleft()
            self.dropped += 1
        self._items.append(frame)
        self.wake.set()

    def take(self) -> list[bytes]:
        """Everything pending, preceded by an overflow note when events were dropped."""
        frames: list[bytes] = []
        if self.dropped:
            frames.append(encode_event({"type": "overflow", "dropped": self.dropped}))
            self.dropped = 0
        frames.extend(self._items)
        self._items.clear()
        self.wake.clear()
        return frames


def encode_event(event: dict[str, Any]) -> bytes:
    """One SSE frame: ``id: <seq>`` (when numbered), ``event: <type>`` and the document as one ``data:`` line."""
    kind = str(event.get("type", "message")).replace("\n", " ").replace("\r", " ")
    data = json.dumps(event, separators=(",", ":"), allow_nan=False)
    seq = event.get("seq")
    head = f"id: {seq}\n" if isinstance(seq, int) and not isinstance(seq, bool) else ""
    return f"{head}event: {kind}\ndata: {data}\n\n".encode()


class EventStreams:
    """The open event streams of one app; ``close()`` ends them all (server shutdown)."""

    def __init__(self, hub: EventHub, *, queue_limit: int, keepalive_s: float) -> None:
        self._hub = hub
        self._queue_limit = queue_limit
        self._keepalive_s = keepalive_s
        self._closing = asyncio.Event()

    def close(self) -> None:
        """End every stream at its next wake-up, so a graceful server shutdown does not wait on them."""
        self._closing.set()

    def reopen(self) -> None:
        """Accept streams again (the app is being served anew after a stop)."""
        self._closing.clear()

    async def stream(self, since: int | None = None) -> AsyncIterator[bytes]:
        """Subscribe now (replaying the kept events after ``since``), yield frames until the client goes
        away or the server closes, then unsubscribe."""
        queue = _ClientQueue(self._queue_limit)
        if since is not None:
            queue.dropped = self._hub.missed_since(since)
        unsubscribe = self._hub.subscribe(queue.put, since=since)
        try:
            yield b": connected\n\n"
            while not self._closing.is_set():
                woke = await self._wait(queue)
                if self._closing.is_set():
                    break
                if not woke:
                    yield b": keep-alive\n\n"
                    continue
                frames = queue.take()
                if frames:  # one write per wake-up: a client that is gone gets at most one before it is noticed
                    yield b"".join(frames)
        finally:
            unsubscribe()

    async def _wait(self, queue: _ClientQueue) -> bool:
        """Wait for an event or closing; False when the keep-alive interval passed first."""
        waiters = {asyncio.ensure_future(queue.wake.wait()), asyncio.ensure_future(self._closing.wait())}
        try:
            done, _ = await asyncio.wait(waiters, timeout=self._keepalive_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        return bool(done)
