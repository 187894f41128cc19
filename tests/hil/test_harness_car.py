"""The car a real bench's harness plays on a control pilot, on MockFactory pins (as test_real_bench_parts.py tests
the rest of the plant): the comparator front end wired back into the DUT's own comparator driver (so the harness
and the DUT agree on every state), the analogue car simulator's switches with the duty measured on a mock MCP3008,
and the car's current through the meter."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory, MockPWMPin
from pilot_bench_files import ADC_DUT, ANALOG_TOML, COMPARATOR_DUT, COMPARATOR_LINES_TOML, one_evse_dut, real_profile

from drivers.pilot.comparator import ComparatorPilotInput
from drivers.pilot.states import CpState, PilotDecoder, PilotError, PilotReading
from drivers.sim.pilot_adc import MockMcp3xxx
from hil.bench import PlantFault
from hil.harness_car import AdcDuty, StatusDuty, steady_ends
from hil.meter_link import harness_meters
from hil.plant import HarnessPlant
from hil.profile import BenchProfile
from hil.profile_loader import parse_profile
from hil.real_bench import RealBench
from hil.timeline import Timeline

pytestmark = pytest.mark.filterwarnings("ignore::gpiozero.exc.SPISoftwareFallback")
Changes = list[tuple[str, float]]


async def until(condition: Callable[[], bool], what: str, timeout_s: float = 2.0) -> None:
    """Wait for ``condition``, at most ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


def recorder(changes: Changes) -> Callable[[int, str, float, float], None]:
    """on_change keeping the pilot traces' values."""
    return lambda _evse, role, _t, value: changes.append((role, value)) if role.startswith("pilot_") else None


@pytest.fixture
def harness_factory() -> Iterator[MockFactory]:
    factory = MockFactory(pin_class=MockPWMPin)
    yield factory
    factory.reset()
    factory.close()


@pytest.fixture
def dut_factory() -> Iterator[MockFactory]:
    factory = MockFactory()
    yield factory
    factory.reset()
    factory.close()


def comparator_bench(tmp_path: Path) -> BenchProfile:
    return parse_profile(real_profile(one_evse_dut(tmp_path, COMPARATOR_DUT), COMPARATOR_LINES_TOML),
                         source="bench.toml")


async def test_the_comparator_lines_read_back_through_the_dut_driver(
        tmp_path: Path, harness_factory: MockFactory, dut_factory: MockFactory) -> None:
    """Each wire copies the harness pin's level to the DUT pin; the DUT's ComparatorPilotInput decodes the car's
    state from them: A, B, C with the PWM on (low_ok: the diode blocks), F with a diode fault, E with CP shorted,
    F while the DUT holds -12 V."""
    profile = comparator_bench(tmp_path)
    wiring = profile.evse(1).pilot
    dut_pilot = profile.dut_config.evse(1).pilot
    assert wiring is not None and dut_pilot is not None and dut_pilot.pilot.comparator is not None
    changes: Changes = []
    plant = HarnessPlant(profile, harness_factory, asyncio.get_running_loop(), recorder(changes),
                         harness_meters(profile))
    dut = ComparatorPilotInput(dut_pilot.pilot.comparator, PilotDecoder(confirm_samples=1), pin_factory=dut_factory)
    evse = plant.evse(1)
    car = evse.car
    assert car is not None and isinstance(car.duty_reader, StatusDuty)

    def dut_reads(duty: float) -> PilotReading:
        for spec in wiring.lines.values():  # the wires between the two Pis
            level = harness_factory.pin(spec.harness).state
            (dut_factory.pin(spec.dut).drive_high if level else dut_factory.pin(spec.dut).drive_low)()
        return dut.sample(time.monotonic(), pwm_on=0.0 < duty < 100.0)

    async def dut_sees(state: CpState, duty: float, error: PilotError | None = None) -> None:
        await until(lambda: (r := dut_reads(duty)).state is state and r.error is error, f"the DUT reading {state}")

    try:
        await dut_sees(CpState.A, 100.0)
        evse.plug(True)
        await dut_sees(CpState.B, 100.0)
        assert [spec.harness for role, spec in wiring.lines.items() if harness_factory.pin(spec.harness).state] \
            == ["GPIO3", "GPIO10", "GPIO11", "GPIO14", "GPIO15"]  # B: every threshold but A/B's; low_ok: a diode
        car.duty_reader.value = 100 / 6 * 1.6  # the DUT's /status says 26.67 %: 16 A offered
        await dut_sees(CpState.C, 26.67)  # the car closed S2; low_ok on: no diode fault with the PWM on

        harness_factory.pin("GPIO5").drive_high()  # the DUT energizes its coil: aux closes, the car draws 16 A
        await until(lambda: abs(evse.meter.values()["current_l1"] - 16.0) < 0.01 if evse.meter else False,
                    "the car drawing the 16 A offered")

        car.fault("diode_short", time.monotonic())
        await dut_sees(CpState.F, 26.67, PilotError.DIODE)
        evse.clear()
        evse.plug(False)
        await dut_sees(CpState.A, 26.67)
        evse.plug(True)
        await dut_sees(CpState.C, 26.67)
        car.fault("cp_short", time.monotonic())
        await dut_sees(CpState.E, 26.67, PilotError.CP_SHORT)
        car.fault("clear", time.monotonic())
        car.duty_reader.value = 0.0  # the DUT stopped: -12 V
        await dut_sees(CpState.F, 0.0)
    finally:
        dut.close()
        plant.close()
    states = [value for role, value in changes if role == "pilot_state"]
    # A, B, C (a diode fault leaves the high phase at C: only low_ok goes), A (unplugged), B, C, E (shorted), C, F
    assert states == [5.0, 4.0, 3.0, 5.0, 4.0, 3.0, 1.0, 3.0, 0.0]
    duties = [value for role, value in changes if role == "pilot_duty"]
    assert duties == [pytest.approx(26.667, abs=0.01), 0.0]


def test_an_adc_duty_reads_the_filtered_pwm_and_snaps_the_steady_ends() -> None:
    assert steady_ends(99.6) == 100.0 and steady_ends(0.4) == 0.0 and steady_ends(26.666) == 26.67


@pytest.fixture
def spi_factory(monkeypatch: pytest.MonkeyPatch) -> Iterator[MockFactory]:
    """Plain MockPins, also gpiozero's global factory (its software SPI takes that one: drivers.pilot.adc)."""
    factory = MockFactory()
    monkeypatch.setattr(Device, "pin_factory", factory)
    yield factory
    factory.reset()
    factory.close()


async def test_the_analog_car_switches_follow_the_car_and_the_duty_comes_from_the_adc(
        tmp_path: Path, spi_factory: MockFactory) -> None:
    """The harness's MCP3008 (CE1, channel 3) reads the RC-filtered PWM pin; the car follows that duty, and its
    state and faults show on the car simulator's switches."""
    profile = parse_profile(real_profile(one_evse_dut(tmp_path, ADC_DUT), ANALOG_TOML), source="bench.toml")
    filtered = {"v": 3.3}  # a steady +12 V: the PWM pin held high
    slave = MockMcp3xxx(spi_factory, {3: lambda: filtered["v"]}, spi_device=1)
    changes: Changes = []
    plant = HarnessPlant(profile, spi_factory, asyncio.get_running_loop(), recorder(changes), None)
    evse = plant.evse(1)
    car = evse.car
    assert car is not None and isinstance(car.duty_reader, AdcDuty)

    def on(role: str) -> bool:
        line = car.lines[role]
        return line.on

    try:
        assert not any(on(role) for role in car.lines)
        evse.plug(True)
        assert on("ev_present") and not on("s2_c")
        await asyncio.sleep(0.3)
        assert not on("s2_c"), "no PWM: the car does not ask"
        filtered["v"] = 3.3 * 10 / 0.6 / 100  # 16.67 %: 10 A offered
        await until(lambda: on("s2_c"), "S2 closed (C)")
        assert car.duty == pytest.approx(16.67, abs=0.15)
        assert spi_factory.pin("GPIO14").state == 1  # cp_short is active low on this bench: open = high
        car.fault("cp_short", time.monotonic())
        assert on("cp_short") and spi_factory.pin("GPIO14").state == 0
        car.fault("diode_short", time.monotonic())
        assert on("diode_bypass")
        evse.clear()
        assert not on("cp_short") and not on("diode_bypass")
        filtered["v"] = 3.3  # the PWM stops: the car opens S2
        await until(lambda: not on("s2_c"), "S2 open again (B)")
        evse.plug(False)
        assert not any(on(role) for role in car.lines)
    finally:
        plant.close()
        slave.close()
    states = [value for role, value in changes if role == "pilot_state"]
    assert states == [4.0, 3.0, 1.0, 3.0, 4.0, 5.0]  # B, C, E (shorted), C (the diode alone leaves C), B, A
    assert [value for role, value in changes if role == "pilot_duty"][:1] == [pytest.approx(16.67, abs=0.15)]


class FakeDut:
    """Just enough of a DUT's HTTP API for a real bench to open: /status (its pilot's duty settable) and
    /reservations."""

    def __init__(self) -> None:
        self.pilot = {"state": "A", "duty_percent": 100.0, "advertised_a": 0.0}
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._answer, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        path = head.split(" ")[1]
        doc: object = {"reservations": []} if path == "/reservations" else {
            "evses": [{"id": 1, "phase": "idle", "faults": [], "pilot": dict(self.pilot)}], "reservations": []}
        body = json.dumps(doc).encode()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                     % (len(body), body))
        await writer.drain()
        writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def test_the_real_bench_records_the_pilot_and_plays_the_car_with_the_duty_the_dut_reports(
        tmp_path: Path, harness_factory: MockFactory) -> None:
    """RealBench on mock pins (the meter link on pyserial's loop://): the pilot traces start with the bench, the car
    follows the duty polled from the DUT's /status, and set_car and the pilot faults reach the car."""
    dut = FakeDut()
    profile = comparator_bench(tmp_path)
    profile = dataclasses.replace(profile, dut=dataclasses.replace(profile.dut, api=await dut.start()),
                                  meter=dataclasses.replace(profile.meter, port="loop://") if profile.meter else None)
    bench = RealBench(profile, pin_factory=harness_factory)
    timeline = Timeline()

    def state() -> float | None:
        return timeline.traces["evse1.pilot_state"].last

    def duty() -> float | None:
        return timeline.traces["evse1.pilot_duty"].last

    try:
        await bench.open(timeline)
        assert state() == 5.0 and duty() == 100.0  # A, no PWM
        await bench.plug(1)
        await until(lambda: state() == 4.0, "B")
        dut.pilot["duty_percent"] = 26.667
        await until(lambda: state() == 3.0 and duty() == pytest.approx(26.667), "the car asks (C) once offered")
        bench.set_car(1, wants_charge=False)
        await until(lambda: state() == 4.0, "the car stops asking (B)")
        await bench.fault(1, PlantFault.CP_SHORT)
        assert state() == 1.0  # E at once
        await bench.fault(1, PlantFault.CLEAR)
        assert state() == 4.0
        with pytest.raises(LookupError, match="no EVSE 2 wired"):
            bench.set_car(2, full=True)
    finally:
        await bench.close()
        await bench.shutdown()
        await dut.stop()
