"""The control pilot end to end on the real runtime of ``run --sim`` with a pilot on both EVSEs: the simulated car
follows the CP (B on plug, C when offered a current), the contactor closes only in C with PWM on, the car draws the
advertised current through the real meter path, a limit change moves the duty and the current follows, C -> B opens
the contactor, and E/F faults (a shorted CP, a shorted diode) and an over-drawing car fault the EVSE."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from waiting import until

from controller.config.loader import load_sim_default
from controller.config.model import EvsePilotConfig
from controller.port.charger import SimFaultKind
from controller.runtime import pilot as runtime_pilot
from controller.runtime.build import Built, build
from drivers.pilot.config import GpioPwmConfig, PilotConfig

PWM_PINS = {1: "GPIO14", 2: "GPIO15"}


@pytest.fixture
async def piloted(tmp_path: Path) -> AsyncIterator[Built]:
    """The sim charger with a 16 A pilot (gpio PWM on a mock pin) on both EVSEs, started."""
    config = load_sim_default()
    evses = tuple(dataclasses.replace(e, pilot=EvsePilotConfig(
        PilotConfig(output="gpio", gpio=GpioPwmConfig(pin=PWM_PINS[e.id]), max_current_a=16.0))) for e in config.evses)
    built = await build(dataclasses.replace(config, evses=evses), state_dir=tmp_path)
    await built.start()
    try:
        yield built
    finally:
        await built.stop()


def pilot(built: Built, evse_id: int) -> dict[str, object]:
    """The status document's pilot entry of one EVSE."""
    entry = built.runtime.evse_status(evse_id)["pilot"]
    assert isinstance(entry, dict)
    return entry


def car(built: Built, evse_id: int) -> object:
    """The simulated car on the EVSE's CP."""
    line = built.plant.evses[evse_id].pilot
    assert line is not None
    return line.car


async def charging(built: Built, evse_id: int) -> None:
    """Plug, token, and wait for the contactor."""
    runtime = built.runtime
    assert runtime.sim is not None
    await runtime.sim.plug(evse_id)
    await until(lambda: pilot(built, evse_id)["state"] == "B", "state B")
    assert (await runtime.present_token(evse_id, "ALICE")).may_charge
    await until(lambda: runtime.evse_status(evse_id)["contactor"] == "closed", "contactor closed")


async def test_plug_b_token_pwm_c_contactor_and_the_car_draws_the_advertised_current(piloted: Built) -> None:
    runtime = piloted.runtime
    assert runtime.sim is not None
    await until(lambda: pilot(piloted, 1)["state"] == "A", "state A: no car (+12 V)")
    await runtime.sim.plug(1)
    await until(lambda: pilot(piloted, 1)["state"] == "B" and runtime.evse_status(1)["plugged_in"], "B: plugged")
    assert runtime.evse_status(1)["contactor"] == "open"
    assert pilot(piloted, 1)["duty_percent"] == 100.0 and pilot(piloted, 1)["advertised_a"] == 0.0  # no offer yet
    assert (await runtime.present_token(1, "ALICE")).may_charge
    await until(lambda: pilot(piloted, 1)["state"] == "C", "the car asks for energy (C)")
    assert pilot(piloted, 1)["advertised_a"] == 16.0
    assert abs(float(pilot(piloted, 1)["duty_percent"]) - 16 / 0.6) < 0.2  # IEC 61851-1: duty = A / 0.6
    await until(lambda: runtime.evse_status(1)["contactor"] == "closed", "contactor closed in C")
    await until(lambda: max(runtime.evse_status(1)["current_a"] or [0]) > 15.5, "the car draws 16 A", timeout=15)
    assert runtime.evse_status(1)["limit_a"] == 16.0


async def test_a_limit_change_moves_the_duty_and_the_current_follows(piloted: Built) -> None:
    runtime = piloted.runtime
    await charging(piloted, 1)
    await until(lambda: max(runtime.evse_status(1)["current_a"] or [0]) > 15.5, "16 A", timeout=15)
    await runtime.set_current_limit(1, 10)
    assert pilot(piloted, 1)["advertised_a"] == 10.0
    await until(lambda: max(runtime.evse_status(1)["current_a"] or [99]) < 10.5, "the car follows to 10 A",
                timeout=15)
    await runtime.set_current_limit(1, 0)  # a pause: nothing offered, the contactor opens
    await until(lambda: runtime.evse_status(1)["contactor"] == "open", "paused")
    assert pilot(piloted, 1)["duty_percent"] == 100.0 and runtime.evse_status(1)["phase"] == "charging"


async def test_c_to_b_opens_the_contactor_and_the_session_stays(piloted: Built) -> None:
    runtime = piloted.runtime
    await charging(piloted, 2)
    car(piloted, 2).set_full()  # type: ignore[attr-defined]
    await until(lambda: pilot(piloted, 2)["state"] == "B", "the full car goes back to B")
    await until(lambda: runtime.evse_status(2)["contactor"] == "open", "contactor open after C -> B")
    entry = runtime.evse_status(2)
    assert entry["phase"] == "charging" and entry["lock"] == "locked" and not entry["faults"]
    car(piloted, 2).set_full(False)  # type: ignore[attr-defined]
    await until(lambda: runtime.evse_status(2)["contactor"] == "closed", "closed again in C")


@pytest.mark.parametrize(("kind", "fault"), [(SimFaultKind.CP_SHORT, "pilot_cp_short"),
                                             (SimFaultKind.DIODE_SHORT, "pilot_diode")])
async def test_a_pilot_fault_opens_the_contactor_and_faults_the_evse(
        piloted: Built, kind: SimFaultKind, fault: str) -> None:
    runtime = piloted.runtime
    assert runtime.sim is not None
    await charging(piloted, 1)
    await runtime.sim.fault(1, kind)
    await until(lambda: fault in runtime.evse_status(1)["faults"], f"{fault} reported")
    await until(lambda: runtime.evse_status(1)["contactor"] == "open", "contactor open")
    assert runtime.evse_status(1)["state"].startswith("Faulted")
    # the car is still in (a fault reading is no unplug): the session hands it back, the cable lock opens
    await until(lambda: runtime.evse_status(1)["lock"] == "unlocked", "the cable released", timeout=15)
    assert runtime.evse_status(1)["plugged_in"] is True
    await runtime.sim.unplug(1)  # the driver can leave; state A ends it (and clears a latched diode fault)
    await until(lambda: runtime.evse_status(1)["phase"] == "idle" and not runtime.evse_status(1)["plugged_in"],
                "the car gone")


async def test_a_car_drawing_more_than_offered_is_stopped_as_an_overcurrent(
        piloted: Built, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime_pilot, "OVERCURRENT_S", 0.5)
    runtime = piloted.runtime
    assert runtime.sim is not None
    await charging(piloted, 1)
    await runtime.sim.fault(1, SimFaultKind.OVERCURRENT_EV)
    await until(lambda: "ev_overcurrent" in runtime.evse_status(1)["faults"], "over-current reported", timeout=15)
    await until(lambda: runtime.evse_status(1)["contactor"] == "open", "contactor open")


async def test_without_a_pilot_the_status_has_none_and_the_plug_line_says_plugged(tmp_path: Path) -> None:
    config = load_sim_default()
    config = dataclasses.replace(config, evses=tuple(dataclasses.replace(e, pilot=None) for e in config.evses))
    built = await build(config, state_dir=tmp_path)
    await built.start()
    try:
        runtime = built.runtime
        assert runtime.sim is not None
        assert runtime.evse_status(1)["pilot"] is None
        await runtime.sim.plug(1)
        await until(lambda: runtime.evse_status(1)["plugged_in"], "plugged by the plug line")
        assert (await runtime.present_token(1, "ALICE")).may_charge
        await until(lambda: runtime.evse_status(1)["contactor"] == "closed", "closed without a pilot")
    finally:
        await built.stop()
