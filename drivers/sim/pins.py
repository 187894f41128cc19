"""Simulated plant on gpiozero MockFactory pins: a contactor, a lock mechanism and a plug.

Each piece watches the output pins a driver sets (a pin subclass notifies a listener) and
drives the matching input pins, as real hardware would. A delay runs on a
``threading.Timer``, so the input changes in another thread, like lgpio's callback thread;
a delay of 0 drives the input synchronously for deterministic tests. Create a simulator
before the driver that uses its pins, since the watched pins must be made by the simulator.

Every pin made here (and by ``controller.app.make_pin_factory`` for ``run --sim``) is a
``CappedMockPWMPin``: gpiozero's MockPin keeps each state change in ``pin.states`` forever, which
under a long simulation grows without bound; these keep the last HISTORY_CAP changes and count all
of them. Read a history with ``read_changes(pin, since)`` (any MockPin), not with ``len(pin.states)``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple, SupportsIndex, overload

from gpiozero.pins.mock import MockConnectedPin, MockPWMPin

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


class MockConnectedPWMPin(MockConnectedPin, CappedMockPWMPin):  # type: ignore[misc]
    """PWM-capable pin that echoes its state onto another mock pin (HARDWARE.md 1.4)."""


class ObservedPin(CappedMockPWMPin):
    """PWM-capable mock pin that calls ``listener(level)`` after every change of its state."""

    listener: Callable[[bool], None] | None = None

    def __init__(self, factory: Any, info: Any, listener: Callable[[bool], None] | None = None) -> None:
        super().__init__(factory, info)
        self.listener = listener

    def _change_state(self, value: Any) -> bool:
        changed = bool(super()._change_state(value))
        if changed and self.listener is not None:
            self.listener(bool(value >= 0.5))
        return changed


class DrivenPin(CappedMockPWMPin):
    """Input pin held at a level by simulated hardware; like a real contact, it beats the pull."""

    driven: bool | None = None

    def _set_pull(self, value: Any) -> None:
        super()._set_pull(value)  # a device configuring its pull drives the pin to the pull...
        if self.driven is not None and self._function == "input":
            _drive(self, self.driven)  # ...but the wired-up contact still holds its level

    def hold(self, level: bool) -> None:
        """Drive the input to ``level`` and keep it there across later pull changes."""
        self.driven = level
        _drive(self, level)


def _driven(factory: Any, name: str) -> Any:
    pin = factory.pin(name, pin_class=DrivenPin)
    if not isinstance(pin, DrivenPin):
        raise ValueError(
            f"{name}: already made as {type(pin).__name__}; create the simulator before the driver"
        )
    return pin


def _observed(factory: Any, name: str, listener: Callable[[bool], None]) -> Any:
    pin = factory.pin(name, pin_class=ObservedPin, listener=listener)
    if not isinstance(pin, ObservedPin):
        raise ValueError(
            f"{name}: already made as {type(pin).__name__}; create the simulator before the driver"
        )
    pin.listener = listener
    return pin


def _drive(pin: Any, level: bool) -> None:
    if level:
        pin.drive_high()
    else:
        pin.drive_low()


class _Delayed:
    """Runs the latest scheduled action after a delay (0: right away, here).

    Scheduled from inside a running event loop (the drivers set their pins there) the action runs
    on that loop's clock, so mechanism travel times follow the loop's time, also a warped one
    (hil.timewarp); from any other thread it runs on a timer thread. Shares its owner's lock, so a
    timer firing and a pin change never wait on each other's locks in opposite orders.
    """

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self._timer: threading.Timer | asyncio.TimerHandle | None = None
        self._token = 0

    def schedule(self, delay_s: float, action: Callable[[], None]) -> None:
        with self._lock:
            self._token += 1
            token = self._token
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if delay_s <= 0:
                action()
                return

            def fire() -> None:
                with self._lock:
                    if token == self._token:
                        self._timer = None
                        action()

            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                timer = threading.Timer(delay_s, fire)
                timer.daemon = True
                timer.start()
                self._timer = timer
            else:
                self._timer = loop.call_later(delay_s, fire)

    def cancel(self) -> None:
        with self._lock:
            self._token += 1
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None


class SimContactor:
    """Main contacts whose aux contact follows the coil after ``delay_s``; can weld or stick open."""

    def __init__(
        self,
        factory: Any,
        coil_pin: str,
        aux_pin: str | None,
        *,
        delay_s: float = 0.0,
        coil_active_high: bool = True,
        aux_closed_level: bool = False,  # NO aux to GND with pull-up: closed reads low
    ) -> None:
        self._lock = threading.RLock()
        self._delay_s = delay_s
        self._coil_active_high = coil_active_high
        self._aux_closed_level = aux_closed_level
        self._stuck: bool | None = None  # True: welded, False: stuck open, None: follows the coil
        self._closed = False
        self._delayed = _Delayed(self._lock)
        self._aux = None if aux_pin is None else _driven(factory, aux_pin)
        self._coil = _observed(factory, coil_pin, self._on_coil)
        self._set_contacts(False)

    @property
    def coil_energized(self) -> bool:
        """True while the driver energizes the coil."""
        return bool(self._coil.state >= 0.5) == self._coil_active_high

    @property
    def contacts_closed(self) -> bool:
        """Where the main contacts (and so the aux contact) are now."""
        return self._closed

    def weld(self) -> None:
        """Contacts close (if open) and stay closed whatever the coil does."""
        with self._lock:
            self._stuck = True
            self._delayed.cancel()
            self._set_contacts(True)

    def stick_open(self) -> None:
        """Contacts open (if closed) and stay open whatever the coil does."""
        with self._lock:
            self._stuck = False
            self._delayed.cancel()
            self._set_contacts(False)

    def repair(self) -> None:
        """Contacts follow the coil again, after the usual delay."""
        with self._lock:
            self._stuck = None
            self._follow(self.coil_energized)

    def close(self) -> None:
        """Stop pending transitions (call at the end of a test)."""
        self._delayed.cancel()
        self._coil.listener = None

    def _on_coil(self, level: bool) -> None:
        with self._lock:
            if self._stuck is None:
                self._follow(level == self._coil_active_high)

    def _follow(self, energized: bool) -> None:
        self._delayed.schedule(self._delay_s, lambda: self._set_contacts(energized))

    def _set_contacts(self, closed: bool) -> None:
        with self._lock:
            self._closed = closed
            if self._aux is not None:
                self._aux.hold(self._aux_closed_level if closed else not self._aux_closed_level)


class SimLockMechanism:
    """A lock whose "locked" switch follows the motor after ``travel_s``; it can jam or be forced."""

    def __init__(
        self,
        factory: Any,
        lock_pin: str,
        unlock_pin: str,
        feedback_pin: str | None,
        *,
        travel_s: float = 0.0,
        motor_active_high: bool = True,
        locked_level: bool = False,  # switch to GND with pull-up: locked reads low
        locked: bool = False,
    ) -> None:
        self._lock = threading.RLock()
        self._travel_s = travel_s
        self._motor_active_high = motor_active_high
        self._locked_level = locked_level
        self._jammed = False
        self._locked = locked
        self._direction: bool | None = None  # True: locking, False: unlocking, None: stopped
        self._delayed = _Delayed(self._lock)
        self.pulses: list[tuple[float, bool]] = []  # (monotonic s, locking?) of every motor start
        self.shoot_through = False
        self._feedback = None if feedback_pin is None else _driven(factory, feedback_pin)
        self._lock_line = _observed(factory, lock_pin, self._on_motor)
        self._unlock_line = _observed(factory, unlock_pin, self._on_motor)
        self._set_position(locked)

    @property
    def locked(self) -> bool:
        """The mechanical position (what the feedback switch reports)."""
        return self._locked

    @property
    def jammed(self) -> bool:
        """True while the motor turns but the bolt does not move."""
        return self._jammed

    def jam(self) -> None:
        """The bolt stops moving; the motor may still turn."""
        with self._lock:
            self._jammed = True
            self._delayed.cancel()

    def unjam(self) -> None:
        """The bolt moves again from the next motor start."""
        with self._lock:
            self._jammed = False

    def force(self, locked: bool) -> None:
        """Move the bolt by hand (or by force), without the motor."""
        with self._lock:
            self._delayed.cancel()
            self._set_position(locked)

    def close(self) -> None:
        """Stop pending transitions (call at the end of a test)."""
        self._delayed.cancel()
        self._lock_line.listener = None
        self._unlock_line.listener = None

    def _line_on(self, pin: Any) -> bool:
        return bool(pin.state >= 0.5) == self._motor_active_high

    def _on_motor(self, _level: bool) -> None:
        with self._lock:
            locking, unlocking = self._line_on(self._lock_line), self._line_on(self._unlock_line)
            if locking and unlocking:
                self.shoot_through = True  # both H-bridge inputs on: a short in real hardware
            direction = locking if locking != unlocking else None
            if direction == self._direction:
                return
            self._direction = direction
            self._delayed.cancel()  # a movement cut short leaves the bolt where it was
            if direction is None:
                return
            self.pulses.append((time.monotonic(), direction))
            if not self._jammed:
                self._delayed.schedule(self._travel_s, lambda: self._arrive(direction))

    def _arrive(self, locked: bool) -> None:
        with self._lock:
            if not self._jammed:
                self._set_position(locked)

    def _set_position(self, locked: bool) -> None:
        with self._lock:
            self._locked = locked
            if self._feedback is not None:
                self._feedback.hold(self._locked_level if locked else not self._locked_level)


class SimPlug:
    """A plug-present input that a test plugs, unplugs or makes bounce."""

    def __init__(self, factory: Any, pin: str, *, plugged_level: bool = False, plugged: bool = False) -> None:
        self._pin = _driven(factory, pin)
        self._plugged_level = plugged_level
        self._lock = threading.Lock()
        self.set(plugged)

    @property
    def pin(self) -> Any:
        """The mock input pin (its ``states`` is the electrical timeline)."""
        return self._pin

    def set(self, plugged: bool) -> None:
        """Drive the input to plugged or unplugged."""
        with self._lock:
            self._pin.hold(self._plugged_level if plugged else not self._plugged_level)

    def plug(self) -> None:
        """A car's plug goes in."""
        self.set(True)

    def unplug(self) -> None:
        """The plug comes out."""
        self.set(False)

    def bounce(self, final: bool, edges: int = 6, interval_s: float = 0.0) -> float:
        """Chatter ``edges`` times ``interval_s`` apart, then settle at ``final`` (blocks; use a thread).

        Returns the monotonic time just before the final edge.
        """
        for i in range(edges):
            self.set(final if (edges - i) % 2 == 0 else not final)  # the last chatter is the opposite
            if interval_s > 0:
                time.sleep(interval_s)
        final_at = time.monotonic()
        self.set(final)
        return final_at
