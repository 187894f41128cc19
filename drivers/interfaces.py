"""Small typed interfaces the controller sees; every hardware library stays behind them.

Drivers only translate: they report (commanded, feedback, since) and raw readings; the
controller decides what a reading means for an EVSE. Safety rules are part of each contract.
Times are monotonic seconds (``time.monotonic()`` or an injected clock); units are in names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable


class FaultKind(StrEnum):
    """The closed set of hardware faults a driver can report."""

    CONTACTOR_WELDED = "contactor_welded"
    CONTACTOR_FAILED_TO_CLOSE = "contactor_failed_to_close"
    LOCK_FAILED_LOCK = "lock_failed_lock"
    LOCK_FAILED_UNLOCK = "lock_failed_unlock"
    LOCK_UNEXPECTED_CHANGE = "lock_unexpected_change"
    METER_NO_RESPONSE = "meter_no_response"
    METER_EXCEPTION_RESPONSE = "meter_exception_response"
    METER_DISCONNECTED = "meter_disconnected"
    METER_BAD_DATA = "meter_bad_data"
    METER_STALE = "meter_stale"
    TOKEN_READER_DISCONNECTED = "token_reader_disconnected"
    PILOT_DIODE = "pilot_diode"  # PWM on, car present, the low phase is not at -12 V: the car's diode is missing
    PILOT_CP_SHORT = "pilot_cp_short"  # state E: the control pilot is shorted to PE
    PILOT_OUT_OF_RANGE = "pilot_out_of_range"  # a stable CP reading in no band: front end or wiring fault
    CABLE_FAULT = "cable_fault"  # the cable's PP resistance is out of range
    EV_OVERCURRENT = "ev_overcurrent"  # the car kept drawing more than offered (with a margin)


@dataclass(frozen=True, slots=True)
class Fault:
    """One active fault: what, since when (monotonic s), and a human-readable detail."""

    kind: FaultKind
    since: float
    detail: str = ""


# ---------------------------------------------------------------- contactor


@dataclass(frozen=True, slots=True)
class ContactorReport:
    """What the contactor was told, what its aux contact says, and since when they (dis)agree."""

    commanded_closed: bool
    feedback_closed: bool | None  # None: no aux contact fitted
    since: float  # monotonic s of the last command or feedback change
    fault: Fault | None


@runtime_checkable
class Contactor(Protocol):
    """Mains contactor: a coil output and an optional auxiliary (mirror) contact input.

    Safety contract: ``close()`` translates only; the caller (the controller's interlock)
    guarantees authorization, plug, confirmed lock and no active fault before calling it.
    A latched ``CONTACTOR_WELDED`` fault stays until ``reset_fault()`` (an operator action).
    """

    def close(self) -> None: ...

    def open(self) -> None: ...

    def report(self, now: float) -> ContactorReport: ...

    def reset_fault(self) -> None: ...

    def subscribe(self, callback: Callable[[ContactorReport], None]) -> None: ...


# ---------------------------------------------------------------- meter


@dataclass(frozen=True, slots=True)
class MeterSnapshot:
    """One reading: per-phase V and A (None where the model has no such register), W, kWh."""

    voltage_v: tuple[float | None, float | None, float | None]
    current_a: tuple[float | None, float | None, float | None]
    power_w: float | None
    energy_import_kwh: float | None
    timestamp: float  # monotonic s when the reading completed

    def max_current_a(self) -> float:
        """Largest phase current, 0.0 where none is known (used by the unlock interlock)."""
        return max((abs(c) for c in self.current_a if c is not None), default=0.0)


@runtime_checkable
class Meter(Protocol):
    """An energy meter read asynchronously; a failed read is a fault value, never an exception."""

    name: str

    async def read(self) -> MeterSnapshot | Fault: ...

    def last(self) -> MeterSnapshot | None: ...

    def fault(self, now: float) -> Fault | None: ...

    async def aclose(self) -> None: ...


# ---------------------------------------------------------------- lock


class LockPosition(StrEnum):
    """Lock position as reported by its feedback switch (or assumed, with no feedback)."""

    LOCKED = "locked"
    UNLOCKED = "unlocked"
    MOVING = "moving"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class LockReport:
    """Commanded and confirmed position, with the active fault if the lock did not confirm."""

    commanded: LockPosition
    position: LockPosition
    fault: Fault | None


@runtime_checkable
class Lock(Protocol):
    """Connector lock actuator: motor pulse, then feedback confirmation, with retries.

    Safety contract: ``unlock()`` translates only; the controller's interlock guarantees the
    contactor is confirmed open and no current flows before calling it.
    """

    async def lock(self) -> LockReport: ...

    async def unlock(self) -> LockReport: ...

    def report(self) -> LockReport: ...

    def subscribe(self, callback: Callable[[LockReport], None]) -> None: ...


# ---------------------------------------------------------------- indicators


class LedMode(StrEnum):
    """Reserved LED modes."""

    ON = "on"
    OFF = "off"
    BLINK = "blink"


class StatusColor(StrEnum):
    """Status LED colours, as charger users know them."""

    OFF = "off"
    GREEN = "green"
    AMBER = "amber"
    BLUE = "blue"
    RED = "red"


class StatusPattern(StrEnum):
    """How the status LED shows its colour."""

    STEADY = "steady"
    BLINK = "blink"
    PULSE = "pulse"


@runtime_checkable
class Indicator(Protocol):
    """The reserved LED and an optional RGB status LED of one EVSE."""

    def set_reserved(self, mode: LedMode) -> None: ...

    def set_status(self, color: StatusColor, pattern: StatusPattern) -> None: ...

    @property
    def reserved_mode(self) -> LedMode: ...

    @property
    def status(self) -> tuple[StatusColor, StatusPattern] | None: ...


# ---------------------------------------------------------------- plug and token


@runtime_checkable
class PlugSensor(Protocol):
    """Plug present, debounced in software (MockPin and some backends ignore bounce_time)."""

    @property
    def plugged(self) -> bool: ...

    def subscribe(self, callback: Callable[[bool], None]) -> None: ...


@runtime_checkable
class TokenReader(Protocol):
    """Yields presented id tokens (strings) to subscribers, in the loop thread."""

    def subscribe(self, callback: Callable[[str], None]) -> None: ...

    def fault(self) -> Fault | None: ...

    async def aclose(self) -> None: ...
