"""Simulated plant on gpiozero MockFactory pins: a contactor, a lock mechanism and a plug.

Each piece watches the output pins a driver sets (a pin subclass notifies a listener) and
drives the matching input pins, as real hardware would. A delay runs on a
``threading.Timer``, so the input changes in another thread, like lgpio's callback thread;
a delay of 0 drives the input synchronously for deterministic tests. Create a simulator
before the driver that uses its pins, since the watched pins must be made by the simulator.

Every pin made here is a ``CappedMockPWMPin`` (drivers.sim.pin_history), whose state history is bounded.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

from gpiozero.pins.mock import MockConnectedPin

from drivers.sim.pin_history import CappedMockPWMPin


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
        self.on_contacts: Callable[[bool], None] | None = None  # hears every move of the main contacts (any thread)
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
            if self.on_contacts is not None:  # before the aux contact: the load follows the contacts at once
                self.on_contacts(closed)
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
