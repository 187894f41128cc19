"""Pacing for a bridge that must never give up: jittered exponential reconnect delays and throttled log lines.

A broker that is down for a day must neither be hammered (so the delays grow to a cap, and are randomized
so many controllers do not reconnect in step) nor fill the journal (so a repeated failure is logged once per
period, with a count of the lines held back).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

RECONNECT_MIN_S = 1.0
RECONNECT_MAX_S = 60.0
LOG_PERIOD_S = 60.0


@dataclass
class Backoff:
    """Delays before each reconnect: ``first_s`` doubling to ``max_s``, each drawn from [delay / 2, delay]."""

    first_s: float = RECONNECT_MIN_S
    max_s: float = RECONNECT_MAX_S
    rand: Callable[[], float] = random.random
    failures: int = 0

    def next_delay(self) -> float:
        """The delay before the next attempt after one more failure (seconds)."""
        delay = min(self.max_s, self.first_s * 2 ** min(self.failures, 30))
        self.failures += 1
        return float(delay / 2 + self.rand() * delay / 2)

    def reset(self) -> None:
        """A connection succeeded: the next failure starts again from ``first_s``."""
        self.failures = 0


@dataclass
class ThrottledLog:
    """Log lines keyed by what went wrong: each key at most once per ``period_s``; the held-back ones are counted."""

    logger: logging.Logger
    period_s: float = LOG_PERIOD_S
    clock: Callable[[], float] = time.monotonic
    _last: dict[str, float] = field(default_factory=dict)
    _held: dict[str, int] = field(default_factory=dict)

    def log(self, level: int, key: str, message: str, *args: object, exc_info: BaseException | None = None) -> bool:
        """Log ``message % args`` unless ``key`` was logged less than ``period_s`` ago; True when it was logged."""
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.period_s:
            self._held[key] = self._held.get(key, 0) + 1
            return False
        held = self._held.pop(key, 0)
        suffix = f" ({held} more like this in the last {now - last:.0f} s)" if held and last is not None else ""
        self._last[key] = now
        self.logger.log(level, message + suffix, *args, exc_info=exc_info)
        return True

    def forget(self, key: str) -> None:
        """The condition behind ``key`` is over: its next occurrence is logged at once."""
        self._last.pop(key, None)
        self._held.pop(key, None)
