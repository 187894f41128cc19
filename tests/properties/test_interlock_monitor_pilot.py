"""The interlock monitor's control-pilot and limit rules (hil.interlocks.pilot) and the pilot offer check see what
they must, so the pilot rows of the stateful test and the fault storm cannot pass vacuously.

On the simulated charger with pilots, a whole session (the car full and back, a lower limit, a pause, a stop) is
clean and the contactor opens within IEC 61851-1's 100 ms of C -> B. Each other test breaks one thing on purpose (the
pilot interlock of the output policy, the sampler, the PWM, the limits, the pause) and expects the rule and tag.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import controller.runtime.evaluation
from controller.charging.outputs import OutputInputs
from controller.charging.session import Phase
from controller.config.loader import load_sim_default
from drivers.sim.pilot import SimCar
from hil.interlocks import Violation, pilot_offer_mismatches
from hil.interlocks.pilot import PILOT_OPEN_S

from .warp_sim import WarpSim


@pytest.fixture
def sim() -> Iterator[WarpSim]:
    """The embedded sim charger with a control pilot on both EVSEs, started, start-up done."""
    s = WarpSim(load_sim_default())
    try:
        s.advance(3.0)
        yield s
    finally:
        s.close()


def car(sim: WarpSim, evse_id: int) -> SimCar:
    line = sim.b.plant.evses[evse_id].pilot
    assert line is not None
    return line.car


def found(sim: WarpSim, rule: str, tag: str, evse_id: int = 1) -> list[Violation]:
    return [v for v in sim.mon.records if v.evse_id == evse_id and v.rule == rule and tag in v.tags]


def coil(sim: WarpSim, evse_id: int) -> bool:
    return bool(sim.b.plant.evses[evse_id].contactor.coil_energized)


def offered_a(sim: WarpSim, evse_id: int) -> float:
    pilot = sim.b.runtime._evses[evse_id].hw.pilot
    assert pilot is not None
    return float(pilot.output.report().advertised_a)


def start_charging(sim: WarpSim, evse_id: int = 1, token: str = "ALICE") -> None:
    rt = sim.b.runtime
    assert sim.run(rt.present_token(evse_id, token)).may_charge
    sim.run(rt.sim.plug(evse_id))
    sim.advance(1.0)
    assert rt._evses[evse_id].session.view.phase is Phase.CHARGING
    assert coil(sim, evse_id) and str(car(sim, evse_id).state) == "C" and offered_a(sim, evse_id) == 16.0


def test_a_whole_pilot_session_is_clean(sim: WarpSim) -> None:
    """Charge, the car full (C -> B) and hungry again, 10 A, a 0 A pause, a paused energy manager, stop, unplug."""
    rt = sim.b.runtime
    track = sim.mon._track[1]
    start_charging(sim)
    car(sim, 1).set_full(True)
    sim.advance(1.0)
    assert not coil(sim, 1) and track.pilot_line == "B"
    assert track.coil_opened_at is not None and track.coil_opened_at - track.pilot_changed_at <= PILOT_OPEN_S
    car(sim, 1).set_full(False)
    sim.advance(1.0)
    assert coil(sim, 1)
    sim.run(rt.set_current_limit(1, 10))
    sim.advance(3.0)
    assert coil(sim, 1) and offered_a(sim, 1) == 10.0 and car(sim, 1).current_a == pytest.approx(10.0)
    sim.run(rt.set_current_limit(1, 0))
    sim.settle()
    assert not coil(sim, 1) and offered_a(sim, 1) == 0.0
    sim.run(rt.set_current_limit(1, None))
    sim.advance(1.0)
    assert coil(sim, 1) and offered_a(sim, 1) == 16.0
    sim.run(rt.set_charging_allowed(1, False))
    sim.settle()
    assert not coil(sim, 1)
    sim.run(rt.set_charging_allowed(1, True))
    sim.advance(1.0)
    assert coil(sim, 1)
    sim.run(rt.present_token(1, "ALICE"))
    sim.advance(3.0)
    assert rt._evses[1].session.view.phase is Phase.IDLE and offered_a(sim, 1) == 0.0
    sim.run(rt.sim.unplug(1))
    sim.advance(1.0)
    assert sim.problems() == []


def test_coil_closed_in_b_is_reported(sim: WarpSim, monkeypatch: pytest.MonkeyPatch) -> None:
    """The policy's pilot interlock removed: a car that does not ask for energy (B) gets the contactor closed."""
    monkeypatch.setattr(controller.runtime.evaluation, "car_ready", lambda _view: True)
    car(sim, 1).want_charge(False)
    assert sim.run(sim.b.runtime.present_token(1, "ALICE")).may_charge
    sim.run(sim.b.runtime.sim.plug(1))
    sim.advance(1.0)
    assert coil(sim, 1) and offered_a(sim, 1) == 16.0 and str(car(sim, 1).state) == "B"
    closed = found(sim, "coil-closed", "pilot-not-c")
    assert closed and "CP in B" in closed[0].why, sim.mon.violations


def test_coil_held_after_the_car_left_c_is_reported(sim: WarpSim, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same broken policy keeps the contactor closed when the car goes full (C -> B): a poll reports it."""
    start_charging(sim)
    monkeypatch.setattr(controller.runtime.evaluation, "car_ready", lambda _view: True)
    car(sim, 1).set_full(True)
    sim.advance(1.0)
    assert sim.mon.check_now()
    assert found(sim, "coil-held", "pilot-not-c"), sim.mon.violations


def test_an_opening_later_than_100_ms_is_reported(sim: WarpSim) -> None:
    """A sampler 10 times slower (200 ms: C -> B seen after ~0.6 s) opens too late: reported at the opening edge."""
    start_charging(sim)
    pilot = sim.b.runtime._evses[1].hw.pilot
    assert pilot is not None
    pilot.period_s = 0.2
    car(sim, 1).set_full(True)
    sim.advance(2.0)
    assert not coil(sim, 1)
    late = found(sim, "pilot-open-late", "pilot-not-c")
    assert late and "after the car's CP went to B" in late[0].why, sim.mon.violations
    assert not found(sim, "coil-held", "pilot-not-c")  # the edge saw it, not a poll


@pytest.mark.parametrize("kind", ["cp_short", "diode_short"])
def test_a_cp_fault_the_controller_misses_is_reported(sim: WarpSim, kind: str) -> None:
    """The pilot sampler dead while charging, the CP faults: excused for the deadline, then reported."""
    start_charging(sim)
    pilot = sim.b.runtime._evses[1].hw.pilot
    assert pilot is not None
    sim.run(pilot.stop())
    car(sim, 1).fault(kind)
    assert sim.mon.check_now() == []  # an instant ago: the controller could not have sampled it yet
    sim.advance(1.0)
    assert coil(sim, 1)
    assert sim.mon.check_now()
    held = found(sim, "coil-held", "pilot-fault")
    assert held and f"CP in {'E' if kind == 'cp_short' else 'F'}" in held[0].why, sim.mon.violations


def test_pwm_stopped_behind_the_controllers_back_is_reported(sim: WarpSim) -> None:
    """The PWM set to a constant +12 V while the coil is energized: reported at once, no grace."""
    start_charging(sim)
    pilot = sim.b.runtime._evses[1].hw.pilot
    assert pilot is not None
    pilot.output.state_b()  # no loop iteration in between: the controller has not reacted
    assert sim.mon.check_now()
    assert found(sim, "coil-held", "pwm-off"), sim.mon.violations


def _ignore_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """A controller blind to every limit: the limit in effect is always None."""
    monkeypatch.setattr(controller.runtime.evaluation.Evaluator, "_limits", lambda _self, _e: None)


def test_a_limit_the_controller_ignores_is_reported(sim: WarpSim, monkeypatch: pytest.MonkeyPatch) -> None:
    """Limits ignored: a 0 A limit keeps the coil energized (limit-zero), a 10 A one keeps offering 16 A."""
    start_charging(sim, 1)
    start_charging(sim, 2, "BOB")
    _ignore_limits(monkeypatch)
    sim.run(sim.b.runtime.set_current_limit(1, 0))
    sim.run(sim.b.runtime.set_current_limit(2, 10))
    sim.settle()
    assert coil(sim, 1) and offered_a(sim, 2) == 16.0
    assert found(sim, "coil-held", "limit-zero") == []  # the set itself drives no pin: a poll finds it
    sim.mon.check_now()
    assert found(sim, "coil-held", "limit-zero"), sim.mon.violations
    assert not found(sim, "coil-held", "limit-zero", evse_id=2)
    mismatches = pilot_offer_mismatches(sim.b)
    assert len(mismatches) == 2, mismatches
    assert mismatches[0].startswith("EVSE 1: the pilot offers 16 A") and "at most 0 A" in mismatches[0]
    assert mismatches[1].startswith("EVSE 2: the pilot offers 16 A") and "at most 10 A" in mismatches[1]


def test_a_pause_the_plug_line_charger_ignores_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    """No pilot: the policy told "not paused" whatever the limit and the energy manager say; both pauses reported."""
    sim = WarpSim()
    try:
        sim.advance(3.0)
        for evse_id, token in ((1, "ALICE"), (2, "BOB")):
            assert sim.run(sim.b.runtime.present_token(evse_id, token)).may_charge
            sim.run(sim.b.runtime.sim.plug(evse_id))
        sim.advance(1.0)
        assert coil(sim, 1) and coil(sim, 2) and sim.problems() == []

        def never_paused(**kwargs: Any) -> OutputInputs:
            return OutputInputs(**{**kwargs, "paused": False})

        monkeypatch.setattr(controller.runtime.evaluation, "OutputInputs", never_paused)
        sim.run(sim.b.runtime.set_current_limit(1, 0))
        sim.run(sim.b.runtime.set_charging_allowed(2, False))
        sim.advance(1.0)
        sim.mon.check_now()
        assert coil(sim, 1) and found(sim, "coil-held", "limit-zero"), sim.mon.violations
        assert coil(sim, 2) and found(sim, "coil-held", "paused", evse_id=2), sim.mon.violations
    finally:
        sim.close()


def test_an_offer_without_a_session_is_reported(sim: WarpSim) -> None:
    """The pilot check sees a PWM offering current on an idle EVSE (set behind the controller's back)."""
    assert pilot_offer_mismatches(sim.b) == []
    pilot = sim.b.runtime._evses[2].hw.pilot
    assert pilot is not None
    pilot.output.set_current(16.0)
    mismatches = pilot_offer_mismatches(sim.b)
    assert len(mismatches) == 1 and mismatches[0].startswith("EVSE 2: the pilot offers 16 A"), mismatches
    assert "the session is idle without token" in mismatches[0] and "the plug is not locked" in mismatches[0]
