"""The storm's fault catalogue: every kind it injects, how long each is held, and what each occupies.

How each kind is injected into the simulated plant and cleared again is ``hil.storm.faults``; this
module is the data those episodes are drawn from.
"""

from __future__ import annotations

import math
import random

STORM_KINDS = ("meter_silent", "meter_crc", "meter_late", "adapter_vanish", "plug_bounce", "lock_jam", "weld")
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
