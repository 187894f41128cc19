"""The real bench's own parts, runnable without a harness Pi: the plant on mock pins, the RS-485 meter
link over a socat pty pair (the DUT's own meter driver on the far end), and import safety without lgpio."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

import hil
from drivers.interfaces import Fault, FaultKind, MeterSnapshot
from drivers.meter import ModbusMeter
from drivers.modbus_bus import BusConfig, BusTiming, ModbusBus, SerialSettings
from hil.meter_link import MeterLinkServer, harness_meters
from hil.plant import HarnessPlant
from hil.profile import MeterLink
from hil.profile_loader import load_profile

EXAMPLE = Path(hil.__file__).parent / "benches" / "example-real.toml"


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    f = MockFactory(pin_class=MockPWMPin)
    yield f
    f.reset()
    f.close()


async def _until(condition: object, timeout_s: float = 1.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


async def test_harness_plant_plays_contactor_lock_plug_and_meter(factory: MockFactory) -> None:
    profile = load_profile(str(EXAMPLE))
    meters = harness_meters(profile)
    changes: list[tuple[int, str, float]] = []
    plant = HarnessPlant(profile, factory, asyncio.get_running_loop(),
                         lambda evse, role, t, value: changes.append((evse, role, value)), meters)
    try:
        e1 = plant.evse(1)
        coil, aux = factory.pin("GPIO5"), factory.pin("GPIO26")  # harness side of EVSE 1 (see the profile)
        lock_line, switch, plug = factory.pin("GPIO6"), factory.pin("GPIO21"), factory.pin("GPIO19")

        e1.plug(True)
        assert plug.state == 0  # active low: the plug switch pulls the DUT's input to GND
        coil.drive_high()  # the DUT energizes the coil
        await _until(lambda: e1.contacts_closed)
        assert aux.state == 0  # aux contact closed (active low)
        assert meters[1].values()["current_l1"] == pytest.approx(16.0)

        lock_line.drive_high()  # the DUT drives its lock motor
        await _until(lambda: e1.level("lock_feedback"))
        assert switch.state == 0
        lock_line.drive_low()

        e1.weld()
        coil.drive_low()
        await asyncio.sleep(0.1)
        assert e1.contacts_closed, "a welded contactor stays closed"
        e1.clear()
        await _until(lambda: not e1.contacts_closed)
        assert meters[1].values()["current_l1"] == 0.0

        e1.jam()
        factory.pin("GPIO13").drive_high()  # unlock line
        await asyncio.sleep(0.5)
        assert e1.level("lock_feedback"), "a jammed bolt does not move"
        roles = {role for _, role, _ in changes}
        assert {"plug", "coil", "contactor_aux", "lock_motor_lock", "lock_feedback", "meter_current"} <= roles
    finally:
        plant.close()


@pytest.fixture
def pty_pair() -> Iterator[tuple[str, str]]:
    if shutil.which("socat") is None:
        pytest.skip("socat is not installed")
    folder = tempfile.mkdtemp()
    harness, dut = os.path.join(folder, "ttyHarness"), os.path.join(folder, "ttyDut")
    process = subprocess.Popen(["socat", f"pty,raw,echo=0,link={harness}", f"pty,raw,echo=0,link={dut}"],
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 5
        while not (os.path.exists(harness) and os.path.exists(dut)):
            assert time.monotonic() < deadline, "socat did not make the pty pair"
            time.sleep(0.02)
        yield harness, dut
    finally:
        process.terminate()
        process.wait(5)
        shutil.rmtree(folder, ignore_errors=True)


async def test_rs485_meter_link_serves_the_dut_meter_driver(pty_pair: tuple[str, str]) -> None:
    harness_port, dut_port = pty_pair
    profile = load_profile(str(EXAMPLE))
    meters = harness_meters(profile)
    meters[1].set_load(230.0, 10.0)
    link = MeterLinkServer(MeterLink(link="rtu", port=harness_port, baudrate=9600), list(meters.values()))
    await link.start()
    bus = ModbusBus(BusConfig.from_url("bus0", dut_port, serial=SerialSettings(9600, 8, "N", 1),
                                       timing=BusTiming(timeout_s=0.3, retries=0, quiet_s=0.01)))
    meter = ModbusMeter("evse1", bus, profile.dut_config.evse(1).meter.meter_map, 1)  # type: ignore[union-attr]
    try:
        reading = await meter.read()
        assert isinstance(reading, MeterSnapshot), reading
        assert reading.current_a[0] == pytest.approx(10.0)
        link.server.go_silent([1])
        silent = await meter.read()
        assert isinstance(silent, Fault) and silent.kind is FaultKind.METER_NO_RESPONSE
        link.server.clear_wire_fault()
        link.server.corrupt_crc([1])
        garbled = await meter.read()
        assert isinstance(garbled, Fault) and garbled.kind is FaultKind.METER_BAD_DATA
    finally:
        await bus.aclose()
        await link.stop()


async def test_real_bench_imports_without_lgpio_and_says_what_is_missing() -> None:
    from hil.real_bench import RealBench, RealBenchError, lgpio_factory

    try:
        import lgpio  # noqa: F401
    except ImportError:
        with pytest.raises(RealBenchError, match="lgpio"):
            lgpio_factory()
    bench = RealBench(load_profile(str(EXAMPLE)))
    assert bench.api.base_url == "http://192.168.50.10:8080"
