"""CP PWM outputs: the shared duty logic, and the gpiozero ``PWMOutputDevice`` fallback.

Which backend, and why (details in ``drivers.pilot.sysfs``): the default is the Pi's hardware PWM
through the kernel's pwm sysfs driver (``SysfsPwmOutput``): the PWM block times every edge, so the
1 kHz frequency and the pulse width do not depend on Linux scheduling or Python. gpiozero's
``PWMOutputDevice`` is the fallback for a pin without a hardware PWM channel: with the lgpio
factory (the only one on a Pi 5, HARDWARE.md section 1.1) its PWM is lgpio's ``tx_pwm``, which is
software-timed by lgpio's own thread, so every edge can be late by the scheduling jitter of that
thread. At 10 % duty the high pulse is only 100 us, so tens of us of jitter move the duty the car
reads by several percent, and a stalled thread can stop the square wave. Use it for benches and
for boards whose CP generator is an MCU fed by a duty value, not on a car.

What a mock can show (``tests/pilot/test_gpio_output.py``): on gpiozero's MockPWMPin a "PWM pin"
is only a float and a frequency; no waveform exists, so the signal's jitter cannot be measured
there. The test measures what is real on the mock: that the duty value and the 1 kHz frequency
reach the pin exactly, and how long our command path takes from ``set_current`` to the pin
(microseconds). Edge jitter has to be measured on a Pi with a scope or a logic analyser.

Both backends share ``PwmPilotOutput``: the duty from the current (``drivers.pilot.duty``), the
resting ``off`` level, an inverting front end (``invert``) and the report.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from gpiozero import PWMOutputDevice

from drivers.pilot.duty import (
    NO_PWM_PERCENT,
    OFF_PERCENT,
    PWM_FREQUENCY_HZ,
    current_for_duty,
    duty_for_offer,
    meaning_of_duty,
)
from drivers.pilot.duty import DutyMeaning as _Meaning
from drivers.pilot.interfaces import OutputMode, PilotOutputReport

Clock = Callable[[], float]


def _mode(duty_percent: float) -> OutputMode:
    """The output mode a duty cycle stands for."""
    meaning = meaning_of_duty(duty_percent)
    if meaning is _Meaning.OFF:
        return OutputMode.OFF
    if meaning is _Meaning.NO_PWM:
        return OutputMode.STANDBY
    if meaning is _Meaning.DIGITAL:  # 3..7 %, nominally 5 %: ISO 15118
        return OutputMode.DIGITAL
    return OutputMode.PWM


class PwmPilotOutput(ABC):
    """Implements ``PilotOutput`` over a backend that sets a duty fraction (0..1) on one pin.

    ``invert``: the front end inverts (pin high -> -12 V), so the pin gets 1 - duty. Subclasses
    implement ``_apply(fraction)`` and may return the fraction the hardware really took.
    """

    def __init__(self, *, invert: bool = False, clock: Clock = time.monotonic) -> None:
        """The output starts at ``off``; subclasses set the hardware there before calling this."""
        self._invert = invert
        self._clock = clock
        self._closed = False
        self._report = PilotOutputReport(OutputMode.OFF, OFF_PERCENT, 0.0, clock())

    @abstractmethod
    def _apply(self, fraction: float) -> float:
        """Put ``fraction`` (0..1, after inversion) on the pin; return what the hardware holds."""

    @abstractmethod
    def _release(self) -> None:
        """Release the hardware (after the output went to ``off``)."""

    def _set(self, duty_percent: float) -> PilotOutputReport:
        """Apply a duty (%), read back what the hardware took, update the report."""
        if self._closed:
            raise RuntimeError("pilot output is closed")
        if isinstance(duty_percent, bool) or not math.isfinite(duty_percent) or not 0 <= duty_percent <= 100:
            raise ValueError(f"duty_percent: {duty_percent!r} is outside [0, 100]")
        fraction = duty_percent / 100.0
        applied = self._apply(1.0 - fraction if self._invert else fraction)
        applied = 1.0 - applied if self._invert else applied
        duty = min(100.0, max(0.0, applied * 100.0))
        if abs(duty - duty_percent) < 1e-3:
            # within 10 ns at 1 kHz (0.0006 A): the hardware took it; report the figure asked for
            duty = duty_percent
        mode = _mode(duty)
        advertised = current_for_duty(duty) if mode is OutputMode.PWM else 0.0
        if (mode, duty) != (self._report.mode, self._report.duty_percent):
            self._report = PilotOutputReport(mode, duty, advertised, self._clock())
        return self._report

    def set_current(self, amps: float) -> PilotOutputReport:
        """Offer ``amps``: < 6 A is no offer (+12 V constant), above 80 A offers 80 A."""
        return self._set(duty_for_offer(amps))

    def set_duty(self, duty_percent: float) -> PilotOutputReport:
        """Set a raw duty cycle (%), e.g. 5 % for ISO 15118."""
        return self._set(duty_percent)

    def state_b(self) -> PilotOutputReport:
        """A constant +12 V: no PWM, nothing offered (x1)."""
        return self._set(NO_PWM_PERCENT)

    def off(self) -> PilotOutputReport:
        """A constant -12 V: state F."""
        return self._set(OFF_PERCENT)

    def report(self) -> PilotOutputReport:
        """What the output holds now."""
        return self._report

    @property
    def pwm_on(self) -> bool:
        """True while a square wave runs (the input's diode check needs this)."""
        return self._report.mode in (OutputMode.PWM, OutputMode.DIGITAL)

    def close(self) -> None:
        """Go to ``off`` (-12 V) and release the hardware; idempotent."""
        if self._closed:
            return
        try:
            self.off()
        finally:
            self._closed = True
            self._release()


class GpioZeroPwmOutput(PwmPilotOutput):
    """CP PWM on any GPIO through gpiozero's ``PWMOutputDevice`` (software-timed on lgpio).

    The fallback backend (see the module docstring): fine on MockFactory and benches, jittery on
    a real pin. The pin starts at ``off``.
    """

    def __init__(
        self,
        pin: str,
        *,
        pin_factory: Any,
        frequency_hz: float = PWM_FREQUENCY_HZ,
        invert: bool = False,
        clock: Clock = time.monotonic,
    ) -> None:
        """Open the pin at the ``off`` level with a 1 kHz PWM."""
        if pin_factory is None:
            raise ValueError("pin_factory: required (no global gpiozero Device.pin_factory is used)")
        start = 1.0 if invert else 0.0  # the pin level that puts -12 V on the CP line
        self._device = PWMOutputDevice(
            pin, active_high=True, initial_value=start, frequency=frequency_hz, pin_factory=pin_factory
        )
        super().__init__(invert=invert, clock=clock)

    @property
    def device(self) -> Any:
        """The gpiozero device (tests read its pin)."""
        return self._device

    def _apply(self, fraction: float) -> float:
        """Write the duty fraction to the device and read it back."""
        self._device.value = fraction
        return float(self._device.value)

    def _release(self) -> None:
        """Close the gpiozero device."""
        self._device.close()
