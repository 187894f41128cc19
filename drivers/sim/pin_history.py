"""Mock pins whose state history is bounded, and the way to read a pin's changes after a mark.

Every pin the simulation makes (and ``controller.runtime.build.make_pin_factory`` for ``run --sim``) is a
``CappedMockPWMPin``: gpiozero's MockPin keeps each state change in ``pin.states`` forever, which under a
long simulation grows without bound; these keep the last HISTORY_CAP changes and count all of them. Read a
history with ``read_changes(pin, since)`` (any MockPin), not with ``len(pin.states)``.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple, SupportsIndex, overload

from gpiozero.pins.mock import MockPWMPin

HISTORY_CAP = 1024
"""State changes a CappedMockPWMPin keeps (about 150 bytes each: at most ~150 KB a pin).

The HIL sim bench reads every pin each 5 ms and the e2e helpers read changes since a mark taken seconds
before; the busiest simulated pin (the pulsing status LED of a charging EVSE) changes about 25 times a
second, so a reader may fall about 40 s behind before it misses anything (``read_changes`` counts what it
missed). Uncapped, gpiozero's history grew by ~120 bytes a change: ~3 KB/s, ~260 MB a day.
"""


class PinChange(NamedTuple):
    """One recorded state of a mock pin: its sequence number, its monotonic time and the state.

    ``seq`` numbers the pin's whole history from 0 (the state it was made with); it never restarts.
    """

    seq: int
    time: float
    state: Any


@dataclass(frozen=True, slots=True)
class ChangesRead:
    """What ``read_changes`` found: the kept changes asked for, how many of them the cap dropped, where to go on.

    ``next_seq`` is the pin's ``change_count`` at the read: pass it as ``since`` to read the changes after these.
    """

    changes: list[PinChange]
    lost: int
    next_seq: int


class PinHistory(deque[Any]):
    """``pin.states`` of a CappedMockPWMPin: a bounded deque of gpiozero PinStates that reads like a list.

    Iteration, slicing and reversal work on a snapshot (another thread may append meanwhile, which a
    plain deque iterator would refuse), and it compares equal to a list with the same items.
    """

    def snapshot(self) -> list[Any]:
        """The items now, oldest first (one C-level copy: no append can interleave)."""
        return list(deque.__iter__(self))

    def __iter__(self) -> Iterator[Any]:
        return iter(self.snapshot())

    def __reversed__(self) -> Iterator[Any]:
        return iter(self.snapshot()[::-1])

    @overload
    def __getitem__(self, index: SupportsIndex) -> Any: ...

    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...

    def __getitem__(self, index: SupportsIndex | slice) -> Any:
        if isinstance(index, slice):
            return self.snapshot()[index]
        return deque.__getitem__(self, index)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, list):
            return self.snapshot() == other
        return deque.__eq__(self, other)


class CappedMockPWMPin(MockPWMPin):  # type: ignore[misc]
    """gpiozero's MockPWMPin with a bounded ``states`` (the last ``history_cap`` changes) and a change counter.

    ``states`` stays gpiozero's (PinState(delay after the previous change, state)), so MockPin's
    ``assert_states``, ``assert_states_and_times`` and ``clear_states`` work. Each state also gets a
    sequence number (``change_count`` is the next one; it only grows) and its monotonic time, which
    ``changes_since`` returns. While nothing was dropped, ``change_count == len(states)``.
    """

    history_cap: int = HISTORY_CAP
    states: PinHistory
    _last_change: float
    _history_lock: threading.Lock
    _times: deque[float]
    _change_count: int

    def clear_states(self) -> None:
        """Forget the history: it restarts with the present state, which takes the next sequence number."""
        if "_history_lock" not in self.__dict__:  # MockPin.__init__ calls this first
            self._history_lock = threading.Lock()
            self._change_count = 0
        with self._history_lock:
            super().clear_states()
            self.states = PinHistory(self.states, maxlen=self.history_cap)
            self._times = deque([float(self._last_change)], maxlen=self.history_cap)
            self._change_count += 1

    def _change_state(self, value: Any) -> bool:
        with self._history_lock:
            changed = bool(super()._change_state(value))  # appends to states and sets _last_change
            if changed:
                self._times.append(float(self._last_change))
                self._change_count += 1
            return changed

    @property
    def change_count(self) -> int:
        """States recorded since the pin was made (its first state included): the next change's sequence number."""
        return self._change_count

    def changes_since(self, since: int) -> ChangesRead:
        """The kept states numbered ``since`` or later, oldest first, and how many of those the cap dropped."""
        with self._history_lock:
            states = self.states.snapshot()
            times = list(self._times)
            count = self._change_count
        first = count - len(states)
        start = max(since, first)
        changes = [
            PinChange(i, t, state.state)
            for i, t, state in zip(range(start, count), times[start - first :], states[start - first :], strict=True)
        ]
        return ChangesRead(changes, max(0, first - max(since, 0)), count)


def change_count(pin: Any) -> int:
    """The next change's sequence number of any mock pin: ``change_count`` of a capped pin, else ``len(states)``."""
    if isinstance(pin, CappedMockPWMPin):
        return pin.change_count
    return len(pin.states)


def read_changes(pin: Any, since: int = 0) -> ChangesRead:
    """A mock pin's states numbered ``since`` or later (PinChange.seq), oldest first, with their monotonic times.

    Works for a CappedMockPWMPin (``lost`` counts states the cap dropped before they were read) and for a
    plain gpiozero MockPin, whose sequence number is the position in ``pin.states`` and whose times are
    worked out from ``_last_change`` (gpiozero 2.0.1). Pass ``next_seq`` as ``since`` to read on from there.
    """
    if isinstance(pin, CappedMockPWMPin):
        return pin.changes_since(since)
    while True:  # another thread may append while we look: read until consistent
        last, states = pin._last_change, list(pin.states)
        if pin._last_change == last and len(pin.states) == len(states):
            break
    times: list[float] = []
    t = float(last)
    for state in reversed(states):
        times.append(t)
        t -= state.timestamp
    times.reverse()
    start = max(since, 0)
    changes = [PinChange(i, times[i], states[i].state) for i in range(start, len(states))]
    return ChangesRead(changes, 0, len(states))
