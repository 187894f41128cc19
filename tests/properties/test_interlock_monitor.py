"""The interlock monitor and the LED check see what they must, so the stateful test cannot pass vacuously.

Each test breaks one interlock on purpose (a pin driven behind the controller's back, an EVSE model
that does not see a weld, a policy without its unlock veto) and expects the monitor to report it, with
the rule and the EVSE; a normal charging session, a weld kept Faulted and a weld that races an unlock
decided just before it are reported clean.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

from controller.charging.evse import EvseReadings, EvseState
from controller.charging.session import Phase
from controller.core.types import Reservation, ReservationResult
from controller.port.charger import SimFaultKind
from drivers.interfaces import LockPosition
from hil.interlocks import InterlockMonitor, reserved_led_matches_core

from .warp_sim import WarpSim


@pytest.fixture
def sim() -> Iterator[WarpSim]:
    """The embedded sim charger, started, meters read once and start-up unlocks done."""
    s = WarpSim()
    try:
        s.advance(3.0)
        yield s
    finally:
        s.close()


def rules(monitor: InterlockMonitor, evse_id: int) -> set[str]:
    return {v.rule for v in monitor.records if v.evse_id == evse_id}


def start_charging(sim: WarpSim, evse_id: int, token: str = "ALICE") -> None:
    rt = sim.b.runtime
    assert sim.run(rt.present_token(evse_id, token)).may_charge
    sim.run(rt.sim.plug(evse_id))
    sim.advance(1.0)
    assert rt._evses[evse_id].session.view.phase is Phase.CHARGING
    assert sim.b.plant.evses[evse_id].contactor.contacts_closed


def test_a_whole_session_is_clean(sim: WarpSim) -> None:
    """Token, plug, charge past a meter poll, same token stops, unplug: nothing to report."""
    rt = sim.b.runtime
    start_charging(sim, 1)
    sim.advance(5.0)
    sim.run(rt.present_token(1, "alice"))
    sim.advance(3.0)
    assert rt._evses[1].session.view.phase is Phase.IDLE
    sim.run(rt.sim.unplug(1))
    sim.advance(1.0)
    assert sim.problems() == []


def test_coil_driven_behind_the_controllers_back_is_reported(sim: WarpSim) -> None:
    """Coil pin of EVSE 1 set high while nothing is plugged: reported at the pin change itself."""
    coil = sim.b.pin_factory.pin(sim.config.evses[0].contactor.coil_pin)
    coil.state = True  # no loop iteration in between: the monitor must have seen it synchronously
    found = [v for v in sim.mon.records if v.evse_id == 1 and v.rule == "coil-closed"]
    assert len(found) == 1, sim.mon.violations
    assert "unplugged" in found[0].why and "session idle" in found[0].why
    assert "EVSE 1" in sim.mon.violations[0]
    with pytest.raises(AssertionError, match="coil-closed"):
        sim.mon.assert_clean()


def test_unlock_while_charging_is_reported(sim: WarpSim) -> None:
    """EVSE 1's unlock line driven while its contactor is closed and current flows."""
    start_charging(sim, 1)
    assert sim.problems() == []
    unlock = sim.b.pin_factory.pin(_lock(sim, 1).unlock_pin)
    unlock.state = True
    found = [v for v in sim.mon.records if v.rule == "unlock-under-load"]
    assert found and found[0].evse_id == 1
    assert {"coil-energized", "contacts-closed", "meter-current"} <= found[0].tags
    unlock.state = False


def test_both_motor_lines_on_is_reported(sim: WarpSim) -> None:
    lock = _lock(sim, 2)
    sim.b.pin_factory.pin(lock.lock_pin).state = True
    sim.b.pin_factory.pin(lock.unlock_pin).state = True
    assert "lock-shoot-through" in rules(sim.mon, 2)


def test_coil_closed_on_an_outstanding_unlock_command_is_reported(sim: WarpSim) -> None:
    """The coil energized while the lock driver's last command was UNLOCK (what a jam leaves behind)."""
    rt = sim.b.runtime
    start_charging(sim, 2)
    sim.mon.clear()
    e = rt._evses[2]
    coil = sim.b.pin_factory.pin(sim.config.evses[1].contactor.coil_pin)
    coil.state = False
    e.hw.lock._commanded = LockPosition.UNLOCKED  # as if an unlock command were still running
    coil.state = True
    found = [v for v in sim.mon.records if v.rule == "coil-closed"]
    assert found and "lock commanded unlocked" in found[0].why


def test_a_weld_the_evse_does_not_show_is_reported(sim: WarpSim, monkeypatch: pytest.MonkeyPatch) -> None:
    """EVSE 1's model blind to contactor faults: the weld is latched by the driver but never Faulted."""
    e = sim.b.runtime._evses[1]
    real_update: Callable[[EvseReadings, float], EvseState] = e.model.update

    def blind_update(readings: EvseReadings, now: float) -> EvseState:
        contactor = readings.contactor
        if contactor is not None:
            readings = dataclasses.replace(readings, contactor=dataclasses.replace(contactor, fault=None))
        return real_update(readings, now)

    monkeypatch.setattr(e.model, "update", blind_update)
    sim.run(sim.b.runtime.sim.fault(1, SimFaultKind.WELD))
    sim.advance(1.0)
    sim.mon.check_now()
    assert "weld-not-faulted" in rules(sim.mon, 1), sim.mon.violations
    assert "weld-not-faulted" not in rules(sim.mon, 2)


def test_a_weld_kept_faulted_is_clean(sim: WarpSim) -> None:
    sim.run(sim.b.runtime.sim.fault(1, SimFaultKind.WELD))
    sim.advance(2.0)
    assert sim.b.runtime._evses[1].state is not None and sim.b.runtime._evses[1].state.faulted
    assert sim.problems() == []


def test_reserved_led_check_sees_a_wrong_led_and_accepts_blinking(sim: WarpSim) -> None:
    rt = sim.b.runtime
    assert reserved_led_matches_core(sim.b) == []
    led = sim.b.pin_factory.pin(sim.config.evses[1].indicator.reserved_pin)
    led.state = True  # EVSE 2 is not reserved
    mismatches = reserved_led_matches_core(sim.b, sim.config)
    assert len(mismatches) == 1 and mismatches[0].startswith("EVSE 2: reserved LED")
    led.state = False

    expiry = sim.wall() + timedelta(minutes=5)
    assert sim.run(rt.reserve(Reservation(reservation_id=7, id_token="BOB", expiry_time=expiry, evse_id=1))) is (
        ReservationResult.ACCEPTED
    )
    sim.settle()
    assert reserved_led_matches_core(sim.b) == []
    sim.run(rt.sim.plug(1))  # a car without its token yet: the reserved LED blinks
    sim.advance(0.3)
    assert rt._evses[1].hw.indicator.reserved_mode.value == "blink"
    assert reserved_led_matches_core(sim.b) == []
    assert sim.problems() == []


def _lock(sim: WarpSim, evse_id: int) -> Any:
    lock = next(e.lock for e in sim.config.evses if e.id == evse_id)
    assert lock is not None
    return lock



def _reserve_evse1(sim: WarpSim) -> None:
    expiry = sim.wall() + timedelta(minutes=5)
    reservation = Reservation(reservation_id=1, id_token="BOB", expiry_time=expiry, evse_id=1)
    assert sim.run(sim.b.runtime.reserve(reservation)) is ReservationResult.ACCEPTED
    sim.advance(1.0)
    assert sim.b.plant.evses[1].lock.locked


def test_an_unlock_decided_after_a_weld_was_seen_is_reported(sim: WarpSim, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the policy's unlock veto removed, cancelling the reservation of a welded EVSE unlocks it."""
    import controller.charging.outputs

    _reserve_evse1(sim)
    sim.run(sim.b.runtime.sim.fault(1, SimFaultKind.WELD))
    sim.settle()
    monkeypatch.setattr(controller.charging.outputs, "unlock_permitted", lambda *_a, **_k: True)
    sim.run(sim.b.runtime.cancel(1))
    sim.advance(0.1)
    found = [v for v in sim.mon.records if v.rule == "unlock-under-load"]
    assert found and "contacts-closed" in found[0].tags, sim.mon.violations


def test_a_weld_between_the_unlock_decision_and_its_pulse_is_excused(sim: WarpSim) -> None:
    """The contacts weld shut right after the runtime decided an unlock on an open aux contact: not its fault."""
    rt = sim.b.runtime
    _reserve_evse1(sim)
    decide = rt._outputs.move_lock  # the monitor's spy on the instance

    def decide_then_weld(e: Any, target: LockPosition) -> Any:
        coro = decide(e, target)
        if e.evse_id == 1 and target is LockPosition.UNLOCKED:
            sim.b.plant.evses[1].contactor.weld()  # before the lock task's first step
        return coro

    rt._outputs.move_lock = decide_then_weld
    sim.run(rt.cancel(1))
    sim.advance(0.1)
    rt._outputs.move_lock = decide
    assert sim.b.plant.evses[1].lock.pulses[-1][1] is False  # an unlock pulse did start...
    assert [v for v in sim.mon.records if v.rule == "unlock-under-load"] == []  # ...on what the controller knew
