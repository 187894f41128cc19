"""The station's outgoing CALLs, in order, one at a time (OCPP-J allows one outstanding CALL per side).

Everything the station says on its own (status, heartbeats, authorizations, reservation updates) goes through
one Outbox and one sender task per connection, so messages leave in the order they were made and nothing is
ever awaited inside a handler of a CSMS CALL (which would deadlock: the answer to our CALL cannot be read while
the handler blocks the reader). While a CSMS CALL is being answered the outbox holds back, so our answer leaves
before anything it caused (e.g. ReserveNow's result before the StatusNotification Reserved).

Messages that must survive an outage (``keep_offline``) wait for the next connection; the others are dropped
when the connection is lost (a reconnect re-sends every status anyway). Transaction messages do not come here:
they go through the durable queue (controller.ocpp.station.queue).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("controller.ocpp")

MAX_WAITING = 1000  # messages kept while offline; the oldest are dropped beyond this (with a warning)


class CallFailed(Exception):
    """A CALL got no CALLRESULT: the CSMS answered with a CALLERROR, timed out, or the connection went away."""


@dataclass(slots=True)
class Outgoing:
    """One CALL to send: its payload object, whether it outlives a lost connection, and who waits for the result."""

    payload: Any
    keep_offline: bool = False
    result: asyncio.Future[Any] | None = None
    on_result: Callable[[Any], None] | None = None
    attempts: int = field(default=0)


class Outbox:
    """An ordered queue of CALLs drained by one sender per connection."""

    def __init__(self) -> None:
        """Empty, held by nothing."""
        self._queue: deque[Outgoing] = deque()
        self._wake = asyncio.Event()
        self._holds = 0
        self.sent = 0

    def __len__(self) -> int:
        """Messages waiting."""
        return len(self._queue)

    def put(self, payload: Any, *, keep_offline: bool = False, on_result: Callable[[Any], None] | None = None,
            ) -> Outgoing:
        """Queue a CALL; ``on_result`` runs with the CSMS's answer (in the loop, never for a failure)."""
        item = Outgoing(payload, keep_offline, None, on_result)
        self._append(item)
        return item

    def request(self, payload: Any) -> asyncio.Future[Any]:
        """Queue a CALL whose answer the caller awaits (e.g. Authorize); the future fails with CallFailed."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._append(Outgoing(payload, False, future, None))
        return future

    def _append(self, item: Outgoing) -> None:
        self._queue.append(item)
        while len(self._queue) > MAX_WAITING:
            dropped = self._queue.popleft()
            log.warning("OCPP outbox full: dropped a waiting %s", type(dropped.payload).__name__)
            _fail(dropped, "dropped: outbox full")
        self._wake.set()

    def hold(self) -> None:
        """A CSMS CALL is being answered: send nothing until ``release``."""
        self._holds += 1

    def release(self) -> None:
        """The answer left: sending may go on."""
        self._holds = max(0, self._holds - 1)
        self._wake.set()

    async def unheld(self) -> None:
        """Return once no CSMS CALL is being answered (another sender keeps the same order rule)."""
        while self._holds:
            self._wake.clear()
            await self._wake.wait()

    def connection_lost(self) -> None:
        """Drop what should not outlive the connection; fail the waiters."""
        kept: deque[Outgoing] = deque()
        for item in self._queue:
            if item.keep_offline:
                kept.append(item)
            else:
                _fail(item, "connection lost")
        self._queue = kept

    async def drain(self, send: Callable[[Any], Awaitable[Any]]) -> None:
        """Send queued CALLs in order with ``send`` (which returns the CALLRESULT payload or raises), forever.

        A kept message whose send fails because the connection went away stays first in line for the next
        connection; a CALLERROR answer is final (logged) and the next message goes.
        """
        while True:
            while not self._queue or self._holds:
                self._wake.clear()
                await self._wake.wait()
            item = self._queue[0]
            item.attempts += 1
            try:
                answer = await send(item.payload)
            except asyncio.CancelledError:
                raise  # the connection ends: the item stays queued (connection_lost decides its fate)
            except CallFailed as exc:
                self._queue.popleft()
                log.warning("OCPP %s failed: %s", type(item.payload).__name__, exc)
                _fail(item, str(exc))
                continue
            self._queue.popleft()
            self.sent += 1
            if item.result is not None and not item.result.done():
                item.result.set_result(answer)
            if item.on_result is not None:
                try:
                    item.on_result(answer)
                except Exception:
                    log.exception("handling the answer to %s failed", type(item.payload).__name__)


def _fail(item: Outgoing, why: str) -> None:
    """Tell a waiter that its CALL got no answer."""
    if item.result is not None and not item.result.done():
        item.result.set_exception(CallFailed(why))
