"""Software debouncing: a raw reading counts only once it has been stable for ``hold_s``.

Pure (time comes in as a value), so the same rule runs under MockFactory, which ignores
gpiozero's ``bounce_time``, and on a real Pi, where each backend debounces differently.
"""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class Debouncer(Generic[T]):
    """Reports a raw value only after it has been seen unchanged for ``hold_s`` seconds.

    Feed every sample with ``update(raw, now)``; re-sample at ``deadline()`` while a change
    is pending, since a stable input produces no further edges to wake the caller.
    """

    def __init__(self, initial: T, hold_s: float) -> None:
        if hold_s < 0:
            raise ValueError(f"hold_s: must be >= 0, got {hold_s!r}")
        self._hold_s = hold_s
        self._stable = initial
        self._candidate = initial
        self._candidate_since: float | None = None  # None: no change pending

    @property
    def value(self) -> T:
        """The debounced (stable) value."""
        return self._stable

    @property
    def hold_s(self) -> float:
        """How long a new raw value must stay unchanged before it is reported."""
        return self._hold_s

    @property
    def pending(self) -> bool:
        """True while a raw value differing from the stable one waits out its hold time."""
        return self._candidate_since is not None

    def deadline(self) -> float | None:
        """When the pending value becomes stable if it stays unchanged; None if nothing pends."""
        if self._candidate_since is None:
            return None
        return self._candidate_since + self._hold_s

    def update(self, raw: T, now: float) -> bool:
        """Take one raw sample at ``now``; True if the debounced value changed."""
        if raw == self._stable:
            self._candidate_since = None
            return False
        if self._candidate_since is None or raw != self._candidate:
            self._candidate = raw
            self._candidate_since = now
        if now >= self._candidate_since + self._hold_s:  # the same sum as deadline(), so they agree
            self._stable = raw
            self._candidate_since = None
            return True
        return False

    def reset(self, value: T) -> None:
        """Forget any pending change and take ``value`` as stable (e.g. after a re-read at start)."""
        self._stable = value
        self._candidate = value
        self._candidate_since = None
