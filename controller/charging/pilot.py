"""The control pilot as the charging model sees it (IEC 61851-1 Annex A): is the car there, does it ask for energy,
is the pilot faulted, and what current to offer.

Pure; the runtime samples the pilot driver and gives its debounced reading here. With a pilot:

- plugged means state B, C or D (the runtime's plug sensor for the EVSE is the pilot);
- the contactor may close only while the car asks for energy, state C (or D where the site is ventilated), the
  output is offering a current (PWM) and the pilot has no error: ``car_ready``. It opens as soon as that stops
  (C -> B: within 100 ms, Table A.6 sequence 8.1; the runtime samples every 20 ms and debounces 3 samples);
- E (CP shorted), a missing diode and a reading in no band are faults of the EVSE (``pilot_faults``), as is a
  cable whose PP resistance is out of range; faults open the contactor through the model like any other;
- the offer: PWM at the limit in effect while the session may charge (locked, authorized, not paused, nothing
  faulted), otherwise a constant +12 V (no PWM: nothing offered, the car stays or goes to B1/C1). The output rests
  at -12 V (state F) only while the controller is not running (the driver's resting level), so the line stays
  readable whenever the controller drives it.
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.charging.limits import MIN_OFFER_A, least
from drivers.interfaces import Fault, FaultKind

PILOT_FAULT_KINDS = {
    "diode": FaultKind.PILOT_DIODE,
    "cp_short": FaultKind.PILOT_CP_SHORT,
    "out_of_range": FaultKind.PILOT_OUT_OF_RANGE,
}


@dataclass(frozen=True, slots=True)
class PilotView:
    """The debounced pilot at one moment: state (A..F, None before the first stable reading), error, and whether the
    output offers a current now (PWM with a current duty)."""

    state: str | None
    error: str | None
    offering: bool
    ventilation: bool = False  # the site is ventilated (a car in D may charge)
    cable_fault: bool = False  # the PP resistance is out of range


PLUGGED_STATES = frozenset({"B", "C", "D"})


def pilot_plugged(state: str | None) -> bool:
    """A car is connected: state B, C or D."""
    return state in PLUGGED_STATES


def still_plugged(state: str | None, was_plugged: bool) -> bool:
    """Whether a car is connected, given the last answer: B/C/D yes, A no; E, F or no stable reading say nothing
    about the car (a shorted CP or a missing diode is a fault with the car most likely still in), so the last
    answer holds: a faulted session then hands the car back through the unlock interlock instead of ending as
    if the car had left, with its cable still locked."""
    if state == "A":
        return False
    return True if pilot_plugged(state) else was_plugged


def car_ready(view: PilotView | None) -> bool:
    """The contactor may close as far as the pilot goes: C (or D when ventilated), offering, no error (no pilot:
    True, the other interlocks decide)."""
    if view is None:
        return True
    asking = view.state == "C" or (view.state == "D" and view.ventilation)
    return asking and view.offering and view.error is None and not view.cable_fault


def pilot_faults(view: PilotView | None, since: float) -> tuple[Fault, ...]:
    """The EVSE faults the pilot reports now (its error, state E, a bad cable)."""
    if view is None:
        return ()
    kinds: list[FaultKind] = []
    if view.error is not None:
        kinds.append(PILOT_FAULT_KINDS.get(view.error, FaultKind.PILOT_OUT_OF_RANGE))
    elif view.state == "E":
        kinds.append(FaultKind.PILOT_CP_SHORT)
    if view.cable_fault:
        kinds.append(FaultKind.CABLE_FAULT)
    return tuple(Fault(kind, since, f"control pilot: {kind.value}") for kind in kinds)


def offer_a(*, may_charge: bool, limit_a: float | None, max_current_a: float) -> float:
    """The current to offer on the pilot: the limit in effect (at most the EVSE's maximum) while the session may
    charge, else 0 (a constant +12 V). Below 6 A nothing can be offered (IEC 61851-1 Annex A)."""
    if not may_charge:
        return 0.0
    amps = least((limit_a, max_current_a)) or 0.0
    return amps if amps >= MIN_OFFER_A else 0.0


def overcurrent(current_a: float | None, advertised_a: float) -> bool:
    """The car draws more than it is offered: over 110 % plus 0.5 A (EVerest's soft over-current defaults)."""
    return current_a is not None and advertised_a > 0 and current_a > advertised_a * 1.1 + 0.5
