"""The control-pilot interlocks (IEC 61851-1 Annex A) as the monitor judges them, and the limit in effect.

For an EVSE whose plant has a CP line (``sim.pilot``), an energized coil needs the car asking for energy (state C,
or D where the EVSE's pilot has ``ventilation``), no CP fault (E: ``cp_short``; F: a ``diode_short`` the front end
sees while the PWM runs) and the PWM offering a current (a duty the car reads as CURRENT). The car's state is the
plant's truth (``line_state``: the simulated car's CP voltages in the bands of IEC 61851-1 Table A.4, with no
debounce), noted with the instant it changed (``EvseTrack.pilot_line``/``pilot_changed_at``),
because the controller only learns it by sampling: a change is excused while the controller's debounced reading
still shows a ready car and the change is younger than ``pilot_deadline_s`` (IEC's 100 ms for C -> B, which the
sampler's debounce must fit in, plus the monitor's observe grace). The PWM and the limit are the controller's own
outputs and commands: no grace for them.

For every EVSE: the coil is never energized while the limit in effect is 0 (``offer_bound_a`` below 6 A) or
charging is paused (``charging_allowed`` False). ``offer_bound_a`` is computed here from the limits the runtime holds,
not by the controller's own limits module, as an upper bound (a site limit is not divided among the EVSEs).
"""

from __future__ import annotations

from typing import Any

from drivers.pilot.duty import MIN_CURRENT_A, DutyMeaning, meaning_of_duty, pwm_running
from drivers.pilot.proximity import PpStatus
from drivers.pilot.states import CpState, classify, low_phase_ok

PILOT_OPEN_S = 0.1  # IEC 61851-1 Table A.6 sequence 8.1: C -> B while charging, the contactor opens within 100 ms
CP_FAULT_STATES = ("E", "F", "invalid")


def line_state(sim: Any) -> str | None:
    """The CP state an ideal front end reads from the plant's voltages now (None: no pilot): the band of the high
    phase (A..F; E for a CP short), F for a car present whose low phase is not at -12 V while the PWM runs (a shorted
    diode), "invalid" between the bands. No debounce and no latch: the plant's truth at this instant."""
    line = sim.pilot
    if line is None:
        return None
    duty = float(line.duty_source())
    high, low = line.car.voltages(duty)
    band = classify(high, None)
    if band is None:
        return "invalid"
    if band in (CpState.B, CpState.C, CpState.D) and pwm_running(duty) and not low_phase_ok(low):
        return "F"
    return str(band)


def ready_states(pilot: Any) -> frozenset[str]:
    """The states in which the car may be given energy: C, and D where the EVSE is ventilated."""
    return frozenset({"C", "D"}) if pilot.ventilation else frozenset({"C"})


def controller_reads_ready(pilot: Any) -> bool:
    """The controller's debounced pilot reading still shows a car asking for energy, without an error."""
    reading = pilot.input.reading()
    return reading.error is None and reading.state is not None and str(reading.state) in ready_states(pilot)


def pilot_deadline_s(grace_s: float) -> float:
    """How long after a CP change the coil may still be energized: IEC's 100 ms plus the observe grace. The sampler's
    debounce (3 samples 20 ms apart) is the controller's own and must fit inside the 100 ms: no extra time for it."""
    return PILOT_OPEN_S + grace_s


def pilot_problems(sim: Any, e: Any, track: Any, now: float, grace_s: float) -> dict[str, str]:
    """What keeps an energized coil from its pilot interlock now (tag -> text); empty without a pilot."""
    pilot, line = e.hw.pilot, sim.pilot
    if pilot is None or line is None:
        return {}
    problems: dict[str, str] = {}
    duty = float(line.duty_source())
    if meaning_of_duty(duty) is not DutyMeaning.CURRENT:
        problems["pwm-off"] = f"PWM offers no current (duty {duty:g} %)"
    state = line_state(sim)
    if state not in ready_states(pilot):
        age = now - track.pilot_changed_at
        unseen = controller_reads_ready(pilot) and age <= pilot_deadline_s(grace_s)
        if not unseen:
            tag = "pilot-fault" if state in CP_FAULT_STATES else "pilot-not-c"
            problems[tag] = f"car's CP in {state} for {age:.3f} s"
    return problems


def late_opening(sim: Any, e: Any, track: Any, now: float, grace_s: float) -> dict[str, str]:
    """At the coil's opening edge: the car had left C/D (or the CP faulted) longer ago than the deadline while the
    coil was energized (tag -> text); empty when the opening came in time or there is no pilot."""
    pilot = e.hw.pilot
    state = line_state(sim)
    if pilot is None or state is None or state in ready_states(pilot):
        return {}
    since = max(track.pilot_changed_at, track.coil_changed_at)  # coil_changed_at: when this closing began
    deadline = pilot_deadline_s(grace_s)
    if now - since <= deadline:
        return {}
    tag = "pilot-fault" if state in CP_FAULT_STATES else "pilot-not-c"
    return {tag: f"coil opened {now - since:.3f} s after the car's CP went to {state} (allowed {deadline:.3f} s)"}


def offer_bound_a(runtime: Any, e: Any, sim: Any) -> float | None:
    """An upper bound of the EVSE's limit in effect (A; None: no limit), from the limits the runtime holds and the
    plugged cable's rating (plant): the pilot's maximum, the cable, the local and profile limits, the site limits."""
    ctx = runtime._ctx
    limits = [e.current_limit_a, e.profile_limit_a, ctx.site_max_a, ctx.station_profile_limit_a]
    if e.hw.pilot is not None:
        limits.append(e.hw.pilot.max_current_a)
    line = sim.pilot
    cable = line.cable() if line is not None and line.car.plugged else None
    if cable is not None:
        limits.append(cable.amps if cable.status is PpStatus.RATED else 0.0)
    found = [float(limit) for limit in limits if limit is not None]
    return min(found) if found else None


def limit_problems(runtime: Any, e: Any, sim: Any) -> dict[str, str]:
    """What pauses charging now (tag -> text): a limit in effect below 6 A, or charging not allowed."""
    problems: dict[str, str] = {}
    bound = offer_bound_a(runtime, e, sim)
    if bound is not None and bound < MIN_CURRENT_A:
        problems["limit-zero"] = f"limit in effect {bound:g} A (< {MIN_CURRENT_A:g} A: nothing may be offered)"
    if not e.charging_allowed:
        problems["paused"] = "charging paused (charging_allowed false)"
    return problems


def describe_pilot(sim: Any, e: Any) -> list[str]:
    """The pilot's readings for a violation: the plant's CP state, car faults and duty, and the controller's view."""
    line, pilot = sim.pilot, e.hw.pilot
    parts = [f"limit_a={e.limit_a}", f"local_limit={e.current_limit_a}"]
    if line is None or pilot is None:
        return parts
    reading = pilot.input.reading()
    return [
        *parts,
        f"cp={line_state(sim)}",
        f"car_faults=[{','.join(sorted(line.car.faults))}]",
        f"duty={float(line.duty_source()):.2f}%",
        f"ctrl_cp={reading.state}/{reading.error}",
    ]
