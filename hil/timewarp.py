"""An asyncio event loop whose clock skips the idle waits, so hours of controller time pass in minutes.

Time runs with the real clock while anything happens (real I/O keeps its real timing: a Modbus reply
that takes 2 ms still takes 2 ms), and jumps to the next timer when the loop would otherwise sleep
with nothing to do. Everything that takes its time from ``loop.time()`` (asyncio.sleep, call_later,
timeouts, and the controller's drivers when given ``loop.time`` as their clock) sees a consistent
monotonic clock. Before each jump the loop looks once more, without waiting, for ready I/O: loopback
sockets deliver at once, so an in-process server's reply is never skipped over. Threads (pyserial
readers, a blocking HTTP client) run in real time and would see the clock race ahead of them; talk to
a warped loop from inside it, or give the clock a real ``grace_s`` to wait before each jump. A TCP
sender must not hold data back (Nagle): the controller's socket:// meter bus sets TCP_NODELAY.
Work handed to a thread with ``loop.run_in_executor`` (the reservation store's writer) is real work: while
any is under way the clock does not jump, the loop waits for it for real.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import selectors
import time
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any, TypeVar, TypeVarTuple

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

DEFAULT_GRACE_S = 0.0


class _WarpSelector(selectors.DefaultSelector):
    """Waits for real for at most ``grace_s``; a longer idle wait becomes a jump of the warp clock."""

    def __init__(self, clock: WarpClock) -> None:
        super().__init__()
        self._clock = clock

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None or timeout <= self._clock.grace_s or self._clock.threads_working:
            return super().select(timeout)  # no timer due (wait for I/O or a thread), a short wait, a thread: real
        events: list[tuple[selectors.SelectorKey, int]] = super().select(self._clock.grace_s)
        if not events:
            self._clock.skip(timeout - self._clock.grace_s)
        return events


class WarpClock:
    """Real monotonic time plus the idle time skipped so far."""

    def __init__(self, grace_s: float = DEFAULT_GRACE_S) -> None:
        self.grace_s = grace_s
        self.skipped_s = 0.0
        self.threads_working = 0  # executor jobs under way: no jump while there are any
        self._real_start = time.monotonic()

    def __call__(self) -> float:
        return time.monotonic() + self.skipped_s

    def skip(self, seconds: float) -> None:
        """Advance by ``seconds`` without waiting."""
        self.skipped_s += max(0.0, seconds)

    def elapsed(self) -> float:
        """Warp seconds since the clock was made."""
        return time.monotonic() - self._real_start + self.skipped_s

    def wall(self, start: datetime) -> Callable[[], datetime]:
        """A wall clock that starts at ``start`` and runs with this clock (for reservation expiry)."""
        origin = self()
        return lambda: start + timedelta(seconds=self() - origin)


class WarpLoop(asyncio.SelectorEventLoop):
    """A selector event loop on a WarpClock."""

    def __init__(self, clock: WarpClock | None = None) -> None:
        self.clock = clock or WarpClock()
        super().__init__(_WarpSelector(self.clock))

    def time(self) -> float:
        return self.clock()

    def run_in_executor(
        self, executor: concurrent.futures.Executor | None, func: Callable[[*Ts], T], *args: *Ts
    ) -> asyncio.Future[T]:
        """``run_in_executor``, and the clock stands still (runs for real) until the job is done."""
        future = super().run_in_executor(executor, func, *args)
        self.clock.threads_working += 1

        def finished(_future: asyncio.Future[T]) -> None:
            self.clock.threads_working -= 1

        future.add_done_callback(finished)
        return future


def run_warped(main: Coroutine[Any, Any, T], *, clock: WarpClock | None = None) -> T:
    """``asyncio.run`` on a WarpLoop."""
    with asyncio.Runner(loop_factory=lambda: WarpLoop(clock)) as runner:
        return runner.run(main)
