"""How late the event loop runs: a lag probe for /status and the log, and a WARNING naming a callback that held it.

The probe is a timer every PROBE_S; how much later than asked it fires is the loop's lag (a callback ran
too long, or the CPU was busy). The last minute's samples give ``lag_max_ms`` and ``lag_p99_ms``; once a
minute they go to the log too. A loop whose clock is not the real one (a warped test loop jumps its clock
to the next timer) has no lag to measure: there the probe is off and the figures are null.

Naming the culprit: asyncio's debug mode does it (``slow_callback_duration``) but also records a stack
for every callback scheduled, far too slow for the Pi. Instead ``asyncio.Handle._run`` is wrapped once,
process-wide: for a loop being watched it times the callback with two ``perf_counter`` calls (about
0.2 us a callback on a 2-core x86 VM: benchmarks/slow_disk.py, ``watch_overhead_ns_per_callback``) and
reports one that took longer than SLOW_S; for any other loop it only adds a dictionary look-up. The probe
itself costs about 0.13 % of a core there (ten wake-ups a second).
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import math
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("controller.runtime")

PROBE_S = 0.1  # the probe's period
WINDOW_S = 60.0  # the figures cover this long
SLOW_S = 0.020  # a callback that holds the loop this long is named in a WARNING

_original_run = asyncio.Handle._run
_watched: dict[asyncio.AbstractEventLoop, Callable[[asyncio.Handle, float], None]] = {}


def _timed_run(self: asyncio.Handle) -> None:
    """``Handle._run``, timed when its loop is watched (see the module)."""
    report = _watched.get(self._loop)  # type: ignore[attr-defined]
    if report is None:
        _original_run(self)
        return
    began = time.perf_counter()
    _original_run(self)
    took = time.perf_counter() - began
    if took > SLOW_S:
        report(self, took)


def callback_name(handle: asyncio.Handle) -> str:
    """A short name for what ``handle`` runs: the function, or the coroutine of the task it steps."""
    callback: Any = handle._callback  # type: ignore[attr-defined]
    owner = getattr(callback, "__self__", None)
    if isinstance(owner, asyncio.Task):
        coro = owner.get_coro()
        return f"task {owner.get_name()} ({getattr(coro, '__qualname__', coro)!s})"
    if isinstance(callback, functools.partial):
        callback = callback.func
    name = getattr(callback, "__qualname__", None)
    return str(name) if name else repr(callback)


def watch_slow_callbacks(loop: asyncio.AbstractEventLoop, report: Callable[[asyncio.Handle, float], None]) -> None:
    """Call ``report(handle, seconds)`` for every callback of ``loop`` that runs longer than SLOW_S."""
    _watched[loop] = report
    asyncio.Handle._run = _timed_run  # type: ignore[method-assign]


def unwatch_slow_callbacks(loop: asyncio.AbstractEventLoop) -> None:
    """Stop watching ``loop``; the last one unwatched puts asyncio back as it was."""
    _watched.pop(loop, None)
    if not _watched:
        asyncio.Handle._run = _original_run  # type: ignore[method-assign]


def real_clock(loop: asyncio.AbstractEventLoop) -> bool:
    """Does ``loop`` keep asyncio's own monotonic clock (a warped loop does not)?"""
    return type(loop).time is asyncio.BaseEventLoop.time


class LoopLag:
    """The lag probe and the slow-callback watch of one loop (see the module)."""

    def __init__(self, *, probe_s: float = PROBE_S, window_s: float = WINDOW_S) -> None:
        """Sample every ``probe_s``; the figures cover the last ``window_s``."""
        self._probe_s = probe_s
        self._window_s = window_s
        self._samples: collections.deque[tuple[float, float]] = collections.deque()  # (loop time, lag s)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._due = 0.0
        self._logged_at = 0.0
        self.slow_callbacks = 0  # how many callbacks held the loop longer than SLOW_S

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start probing ``loop`` (only a real-clock loop) and watching its callbacks."""
        self._loop = loop
        watch_slow_callbacks(loop, self._slow)
        if real_clock(loop):
            self._logged_at = loop.time()
            self._arm()

    def stop(self) -> None:
        """Stop the probe and the watch."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._loop is not None:
            unwatch_slow_callbacks(self._loop)

    def summary(self) -> dict[str, Any]:
        """``lag_max_ms`` and ``lag_p99_ms`` over the last minute (null without samples), and the counts."""
        lags = sorted(lag for _at, lag in self._samples)
        if not lags:
            return {"lag_max_ms": None, "lag_p99_ms": None, "samples": 0, "slow_callbacks": self.slow_callbacks}
        p99 = lags[min(len(lags) - 1, math.ceil(0.99 * len(lags)) - 1)]
        return {
            "lag_max_ms": round(lags[-1] * 1000, 2),
            "lag_p99_ms": round(p99 * 1000, 2),
            "samples": len(lags),
            "slow_callbacks": self.slow_callbacks,
        }

    def _arm(self) -> None:
        """The next probe, PROBE_S from now."""
        assert self._loop is not None
        self._due = self._loop.time() + self._probe_s
        self._timer = self._loop.call_at(self._due, self._tick)

    def _tick(self) -> None:
        """One sample: how late this timer fired; once a minute, the figures to the log."""
        assert self._loop is not None
        now = self._loop.time()
        self._samples.append((now, max(0.0, now - self._due)))
        while self._samples and self._samples[0][0] < now - self._window_s:
            self._samples.popleft()
        if now - self._logged_at >= self._window_s:
            self._logged_at = now
            figures = self.summary()
            log.info("event loop lag over the last minute: max %.1f ms, p99 %.1f ms (%d callbacks over %.0f ms "
                     "since start)", figures["lag_max_ms"], figures["lag_p99_ms"], self.slow_callbacks, SLOW_S * 1000)
        self._arm()

    def _slow(self, handle: asyncio.Handle, seconds: float) -> None:
        """A callback held the loop longer than SLOW_S: name it."""
        self.slow_callbacks += 1
        log.warning("event loop held for %.1f ms by %s (limit %.0f ms)", seconds * 1000, callback_name(handle),
                    SLOW_S * 1000)
