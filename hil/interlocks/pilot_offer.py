"""A check of each control pilot's offer (the PWM duty the car reads) against the session and the limits in effect.

With a pilot the duty is the charger's promise to the car (IEC 61851-1 Annex A): it may offer a current only to an
authorized session (LOCKING or CHARGING, with a token) whose plug is locked, on an EVSE without faults, not paused,
and never more than any limit in effect; otherwise it holds a constant +12 V (100 %). Without a site or station limit
the offer is exactly the least limit (hil.interlocks.pilot.offer_bound_a, at most 80 A).
"""

from __future__ import annotations

from typing import Any

from controller.charging.session import Phase
from drivers.pilot.duty import (
    MAX_CURRENT_A,
    MIN_CURRENT_A,
    NO_PWM_PERCENT,
    DutyMeaning,
    current_for_duty,
    meaning_of_duty,
)
from hil.interlocks.pilot import offer_bound_a

_OFFER_PHASES = (Phase.LOCKING, Phase.CHARGING)
_TOLERANCE_A = 0.05  # the output rounds the duty down: the car may read a hair less than the limit


def pilot_offer_mismatches(built: Any) -> list[str]:
    """Each pilot's offer that its session, faults, lock or limits do not allow (read with the loop settled)."""
    runtime, plant = built.runtime, built.plant
    ctx = runtime._ctx
    site_limited = ctx.site_max_a is not None or ctx.station_profile_limit_a is not None
    out: list[str] = []
    for evse_id, e in runtime._evses.items():
        sim = plant.evses[evse_id]
        if e.hw.pilot is None or sim.pilot is None:
            continue
        duty = float(sim.pilot.duty_source())
        if meaning_of_duty(duty) is not DutyMeaning.CURRENT:
            if duty != NO_PWM_PERCENT:
                out.append(f"EVSE {evse_id}: pilot duty {duty:g} % is neither an offer nor a constant +12 V")
            continue
        offered = current_for_duty(duty)
        why: list[str] = []
        view, state = e.session.view, e.state
        if view.phase not in _OFFER_PHASES or view.token is None:
            why.append(f"the session is {view.phase.value}{'' if view.token else ' without token'}")
        if state is None:
            why.append("the EVSE was never evaluated")
        elif state.faults or state.faulted or state.unavailable:
            why.append(f"the EVSE is {'unavailable' if state.unavailable else 'faulted'} "
                       f"[{', '.join(str(f) for f in state.faults)}]")
        if sim.lock is not None and not sim.lock.locked:
            why.append("the plug is not locked")
        if not e.charging_allowed:
            why.append("charging is paused")
        bound = offer_bound_a(runtime, e, sim)
        if bound is not None and offered > bound + _TOLERANCE_A:
            why.append(f"the limit in effect is at most {bound:g} A")
        elif bound is not None and not site_limited and bound >= MIN_CURRENT_A:
            expected = min(bound, MAX_CURRENT_A)
            if abs(offered - expected) > _TOLERANCE_A:
                why.append(f"the limit in effect is {expected:g} A")
        if why:
            out.append(f"EVSE {evse_id}: the pilot offers {offered:g} A (duty {duty:g} %) but " + "; ".join(why))
    return out
