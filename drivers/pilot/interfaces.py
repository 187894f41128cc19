"""The control pilot's typed interfaces: the PWM output and the CP/PP input the controller sees.

Like ``drivers.interfaces``: drivers translate and report, the controller decides. Units are in
names (``_percent``, ``_a``, ``_v``, ``_ohm``); times are monotonic seconds.

Safety rules (the controller's interlocks rely on them):

* The output's resting level is ``off`` (0 %: -12 V through the front end, state F): a driver
  starts there and ``close()`` returns there, so a crashed daemon leaves the car in F, which
  stops charging. ``state_b()`` (100 %, a constant +12 V) offers nothing; only ``set_current``
  with >= 6 A (or ``set_duty`` with a current duty) lets a car draw.
* ``set_current`` never rounds the offer up: the car reads at most the current asked for.
* A pilot input never raises on a bad reading: an unreadable or out-of-band CP voltage is a
  ``PilotError``, a bad PP resistance a ``PpStatus.FAULT``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable

from drivers.pilot.proximity import PpReading
from drivers.pilot.states import PilotReading


class OutputMode(StrEnum):
    """What the CP output is doing."""

    OFF = "off"  # constant -12 V (0 %): state F, "EVSE not available"
    STANDBY = "standby"  # constant +12 V (100 %): x1, no current offered (A1/B1/C1)
    PWM = "pwm"  # 1 kHz square wave offering a current (x2)
    DIGITAL = "digital"  # 5 % PWM: ISO 15118 required, no basic-charging current


@dataclass(frozen=True, slots=True)
class PilotOutputReport:
    """What the output was told: mode, duty as set on the hardware, the current it offers."""

    mode: OutputMode
    duty_percent: float  # as applied (read back from the hardware where it can be)
    advertised_a: float  # what a car reads from ``duty_percent`` (0.0 unless mode is PWM)
    since: float  # monotonic s of the last change


@runtime_checkable
class PilotOutput(Protocol):
    """The 1 kHz CP PWM generator (through a +-12 V front end)."""

    def set_current(self, amps: float) -> PilotOutputReport:
        """Offer ``amps`` (< 6 A: no offer, a constant +12 V; > 80 A: 80 A)."""
        ...

    def set_duty(self, duty_percent: float) -> PilotOutputReport:
        """Set a raw duty cycle in [0, 100] % (5 %: digital communication)."""
        ...

    def state_b(self) -> PilotOutputReport:
        """A constant +12 V: the car may connect (A/B) but is offered nothing (x1)."""
        ...

    def off(self) -> PilotOutputReport:
        """A constant -12 V: state F (errors, EVSE unavailable); the resting level."""
        ...

    def report(self) -> PilotOutputReport:
        """The current output, without changing it."""
        ...

    def close(self) -> None:
        """Return to ``off`` and release the hardware; idempotent."""
        ...


@runtime_checkable
class PilotInput(Protocol):
    """The CP voltage (high and low phase) and the PP resistance, decoded."""

    def sample(self, now: float, *, pwm_on: bool) -> PilotReading:
        """Read the CP line once at ``now`` and return the debounced reading.

        ``pwm_on``: whether the output is a square wave now (0 % < duty < 100 %); only then is
        the diode check meaningful. Call it periodically (every 5..20 ms).
        """
        ...

    def reading(self) -> PilotReading:
        """The last debounced reading, without sampling."""
        ...

    def cable(self) -> PpReading | None:
        """Read the PP resistance now; None when this front end has no PP input."""
        ...

    def close(self) -> None:
        """Release the hardware; idempotent."""
        ...
