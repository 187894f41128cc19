"""Fixtures for the GPIO driver tests: a bridge into the test's loop and subscriber recorders."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from drivers.bridge import LoopBridge


@dataclass(frozen=True)
class Seen:
    """One value a subscriber received: when (monotonic s), in which thread, what."""

    at: float
    thread: int
    value: Any


class Recorder:
    """A subscriber callback that keeps every value and lets a test await the one it expects."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self._new = asyncio.Event()

    def __call__(self, value: Any) -> None:
        self.seen.append(Seen(time.monotonic(), threading.get_ident(), value))
        self._new.set()

    @property
    def values(self) -> list[Any]:
        return [s.value for s in self.seen]

    async def wait_for(self, predicate: Callable[[Any], bool], timeout: float = 3.0) -> Seen:
        """The first received value matching ``predicate``, waiting up to ``timeout`` s for it."""
        async with asyncio.timeout(timeout):
            index = 0
            while True:
                for seen in self.seen[index:]:
                    if predicate(seen.value):
                        return seen
                index = len(self.seen)
                self._new.clear()
                await self._new.wait()


@pytest.fixture
async def bridge() -> LoopBridge:
    """The one thread boundary, into this test's loop."""
    return LoopBridge.current()


@pytest.fixture
def recorder() -> Callable[[], Recorder]:
    """Makes fresh recorders."""
    return Recorder


async def wait_until(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    """Poll ``predicate`` while the loop runs (for pin timelines, which have no events)."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.002)


@pytest.fixture
def until() -> Callable[..., Any]:
    """``await until(predicate, timeout=...)``."""
    return wait_until
