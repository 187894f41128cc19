"""Advertised current <-> control-pilot PWM duty cycle, per IEC 61851-1 Annex A.

Why a module of its own: the same numbers are used by the output driver (what to send), by the
simulated car (what it reads), by the meter check (what the car may draw) and by the status API.

The EVSE side (what the charger sends; IEC 61851-1:2017 Annex A, the table of the duty cycle
provided by the EVSE; its number differs between editions, A.7/A.8, so check yours):

* 6 A <= I <= 51 A: duty % = I / 0.6             (6 A -> 10 %, 51 A -> 85 %)
* 51 A < I <= 80 A: duty % = I / 2.5 + 64        (80 A -> 96 %)
* 5 %: digital communication (ISO 15118) required; the current comes over that link
* 100 % (no PWM, a constant +12 V): state x1, nothing offered; 0 % (a constant -12 V): state F

The car side (how the EV reads a duty; Annex A's table of the current the EV may draw, restated
in the Fluke FEV300 test adapter manual p. 11 "Maximum current = (duty cycle %) x 0.6 ..." and by
J1772 implementations, e.g. OpenEVSE's "Basics of SAE J1772" support page):

* < 3 %: no charging; 3 % .. 7 %: digital communication required, no basic charging
* 7 % < d < 8 %: no charging; 8 % <= d < 10 %: 6 A; 10 % <= d <= 85 %: d * 0.6 A
* 85 % < d <= 96 %: (d - 64) * 2.5 A; 96 % < d <= 97 %: 80 A; > 97 %: no charging

Below 6 A the EVSE must not offer: ``duty_for_offer`` then returns 100 % (x1) so the car sees no
PWM and stays in (or goes back to) state B. EVerest's ``Charger::ampere_to_duty_cycle``
(everest-core, modules/EVSE/EvseManager/Charger.cpp) does the same (< 5.9 A -> 100 %).

The 51 A .. 52.5 A gap: I / 2.5 + 64 gives 84.4 % .. 85 %, which the car reads with the 0.6 factor
as 50.6 A .. 51 A, never more than offered. EVerest clamps to 51 A there; the standard's formula
is kept here because it is the safe side already (the car reads at most what was offered), and a
property test checks ``current_for_duty(duty_for_current(a)) <= a`` everywhere.

Duty tolerance: not checked against the standard's text here. Two secondary figures: SAE J1772's
pulse width is widely quoted as +-5 us (+-0.5 % duty at 1 kHz), and a SmartEVSE contributor reads
IEC 61851-1 Table A.5 as allowing 1 percentage point (dingo35/SmartEVSE-3.5 pull request 76). The drivers
never round a duty up (the sysfs driver floors to whole nanoseconds), so the car never reads more
than was offered; the car-side bands above leave >= 1 % of margin around every band edge the
EVSE uses (10 % .. 96 %).
"""

from __future__ import annotations

import math
from enum import StrEnum

MIN_CURRENT_A = 6.0  # the smallest current that may be offered with PWM
MAX_CURRENT_A = 80.0  # the largest current the duty cycle can express
LOW_RANGE_MAX_A = 51.0  # up to here duty = I / 0.6, above duty = I / 2.5 + 64
DIGITAL_COMMUNICATION_PERCENT = 5.0  # ISO 15118 (high-level communication) required
NO_PWM_PERCENT = 100.0  # constant +12 V: state x1 (A1/B1/C1), nothing offered
OFF_PERCENT = 0.0  # constant -12 V: state F (EVSE not available)
PWM_FREQUENCY_HZ = 1000.0  # the control pilot's PWM frequency


class DutyMeaning(StrEnum):
    """How a car reads a duty cycle (IEC 61851-1 Annex A, the EV's side)."""

    OFF = "off"  # 0 %: constant -12 V (state F)
    NO_CHARGING = "no_charging"  # < 3 %, 7 % < d < 8 %, or > 97 % (below 100 %)
    DIGITAL = "digital"  # 3 % .. 7 %: ISO 15118 required
    CURRENT = "current"  # 8 % .. 97 %: a current is offered
    NO_PWM = "no_pwm"  # 100 %: constant +12 V (x1), nothing offered


def _check_number(name: str, value: float) -> float:
    """A finite float, or a ValueError naming the argument."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name}: must be a finite number, got {value!r}")
    return float(value)


def duty_for_current(amps: float) -> float:
    """The duty cycle (%) that offers exactly ``amps``; ValueError outside [6 A, 80 A].

    Use ``duty_for_offer`` for a limit that may be below 6 A or above 80 A.
    """
    amps = _check_number("amps", amps)
    if amps < MIN_CURRENT_A or amps > MAX_CURRENT_A:
        raise ValueError(f"amps: {amps!r} is outside [{MIN_CURRENT_A}, {MAX_CURRENT_A}] (IEC 61851-1 Annex A)")
    if amps <= LOW_RANGE_MAX_A:
        return amps / 0.6
    return amps / 2.5 + 64.0


def duty_for_offer(amps: float) -> float:
    """The duty cycle (%) for a current limit: 100 % (no offer, x1) below 6 A, 80 A's duty above 80 A.

    A limit of 0 A therefore pauses charging: the car sees no PWM and must leave state C
    (IEC 61851-1 Table A.6 sequence 10.2, as EVerest quotes it: the EVSE switches off after 6 s if not).
    """
    amps = _check_number("amps", amps)
    if amps < MIN_CURRENT_A:
        return NO_PWM_PERCENT
    return duty_for_current(min(amps, MAX_CURRENT_A))


def meaning_of_duty(duty_percent: float) -> DutyMeaning:
    """What a car reads from ``duty_percent`` (Annex A's EV-side bands, boundaries as listed above)."""
    duty = _check_number("duty_percent", duty_percent)
    if duty < 0.0 or duty > 100.0:
        raise ValueError(f"duty_percent: {duty!r} is outside [0, 100]")
    if duty == 0.0:
        return DutyMeaning.OFF
    if duty == 100.0:
        return DutyMeaning.NO_PWM
    if duty < 3.0:
        return DutyMeaning.NO_CHARGING
    if duty <= 7.0:
        return DutyMeaning.DIGITAL
    if duty < 8.0:
        return DutyMeaning.NO_CHARGING
    if duty <= 97.0:
        return DutyMeaning.CURRENT
    return DutyMeaning.NO_CHARGING


def current_for_duty(duty_percent: float) -> float:
    """The current (A) a car may draw when it sees ``duty_percent``; 0.0 where no current is offered."""
    if meaning_of_duty(duty_percent) is not DutyMeaning.CURRENT:
        return 0.0
    duty = float(duty_percent)
    if duty < 10.0:
        return MIN_CURRENT_A
    if duty <= 85.0:
        return duty * 0.6
    if duty <= 96.0:
        return (duty - 64.0) * 2.5
    return MAX_CURRENT_A


def pwm_running(duty_percent: float) -> bool:
    """True while the output is a real square wave (0 % < duty < 100 %): the car sees PWM (x2)."""
    duty = _check_number("duty_percent", duty_percent)
    return 0.0 < duty < 100.0
