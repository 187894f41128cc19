"""The storm's fault catalogue: every kind it injects, how long each is held, and what each occupies.

How each kind is injected into the simulated plant and cleared again is ``hil.storm.faults``; this
module is the data those episodes are drawn from.
"""

from __future__ import annotations

import math
import random

STORM_KINDS = ("meter_silent", "meter_crc", "meter_late", "adapter_vanish", "plug_bounce", "lock_jam", "weld")
"""The fault kinds of every charger (the default storm, on the plug-line charger)."""

PILOT_KINDS = ("cp_short", "diode_short", "overcurrent_ev")
"""The car's faults on a control pilot (drivers.sim.pilot): only where the EVSEs have one."""

CAR_KINDS = PILOT_KINDS
"""The pilot faults are the car's (the simulated CP short is in the car too): injected only where a car is plugged
(hil.storm.faults picks it)."""

LATCHED_FAULTS = {"diode_short": "pilot_diode", "overcurrent_ev": "ev_overcurrent"}
"""The EVSE fault each car fault latches until the car has left (state A)."""

KNOWN_KINDS = (*STORM_KINDS, *PILOT_KINDS)
"""Every fault kind a storm can inject."""

WIRE_KINDS = ("meter_silent", "meter_crc", "meter_late")
"""Faults on one meter's answers on the shared meter wire."""

HOLD_S: dict[str, tuple[float, float]] = {
    "meter_silent": (5.0, 600.0),
    "meter_crc": (5.0, 300.0),
    "meter_late": (5.0, 300.0),
    "adapter_vanish": (2.0, 600.0),
    "plug_bounce": (0.0, 0.0),  # the chatter is the whole fault
    "lock_jam": (60.0, 1800.0),  # shows only if the lock is driven meanwhile
    "weld": (60.0, 1800.0),  # until an operator has repaired it and pressed reset
    "cp_short": (2.0, 300.0),  # clears with the short
    "diode_short": (2.0, 300.0),  # shows only while the PWM runs to a plugged car; latched until the car leaves
    "overcurrent_ev": (15.0, 300.0),  # shows only while charging, after 7 s; latched until the car leaves
}
"""(shortest, longest) simulated seconds a fault of each kind is held before it is cleared."""


def hold_time(kind: str, rng: random.Random) -> float:
    """How long to hold one fault of ``kind``: log-uniform within its ``HOLD_S`` range (0 for instant faults)."""
    lo, hi = HOLD_S[kind]
    return math.exp(rng.uniform(math.log(lo), math.log(hi))) if lo > 0 else 0.0


def resources(kind: str, evse_id: int, evse_ids: list[int]) -> tuple[set[str], list[int]]:
    """What an episode of ``kind`` at ``evse_id`` must own ("wire", "evse<N>"), and the EVSEs it affects."""
    if kind == "adapter_vanish":
        return {"wire", *(f"evse{i}" for i in evse_ids)}, list(evse_ids)
    if kind in WIRE_KINDS:
        # clear_wire_fault() clears the whole wire, so wire faults take turns
        return {"wire", f"evse{evse_id}"}, [evse_id]
    return {f"evse{evse_id}"}, [evse_id]
