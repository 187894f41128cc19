"""Helpers for the meter tests: fast bus timing, a hand-moved clock, value comparison, recovery."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable

import pytest

from drivers.interfaces import Fault, MeterSnapshot
from drivers.meter import ModbusMeter
from drivers.modbus_bus import BusTiming
from drivers.sim.meter_server import SimTransport, SimulatedMeterServer

FAST = BusTiming(timeout_s=0.15, retries=1, quiet_s=0.0, reconnect_min_s=0.05, reconnect_max_s=0.2)
TCP_TRANSPORTS = (SimTransport.TCP, SimTransport.RTU_SOCKET, SimTransport.RTU_OVER_TCP)
RTU_TRANSPORTS = (SimTransport.RTU_SOCKET, SimTransport.RTU_OVER_TCP)
Serve = Callable[..., Awaitable[SimulatedMeterServer]]
needs_socat = pytest.mark.skipif(shutil.which("socat") is None,
                                 reason="socat is not installed (apt-get install socat): no pty pair")


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def read_until_snapshot(meter: ModbusMeter, attempts: int = 60, pause_s: float = 0.05) -> MeterSnapshot:
    """Read until the meter answers again (bounded); fails the test with the last fault otherwise."""
    result: MeterSnapshot | Fault | None = None
    for _ in range(attempts):
        result = await meter.read()
        if isinstance(result, MeterSnapshot):
            return result
        await asyncio.sleep(pause_s)
    pytest.fail(f"meter {meter.name} did not recover: {result}")


def assert_matches(snapshot: MeterSnapshot | Fault, expected: dict[str, float | None]) -> None:
    """The snapshot carries exactly the values a correct client decodes from the simulated meter."""
    assert isinstance(snapshot, MeterSnapshot), snapshot
    got = {f"voltage_l{n + 1}": v for n, v in enumerate(snapshot.voltage_v)}
    got.update({f"current_l{n + 1}": a for n, a in enumerate(snapshot.current_a)})
    got.update(power_total=snapshot.power_w, energy_import=snapshot.energy_import_kwh)
    for name, value in got.items():
        assert value == expected.get(name), (name, value, expected.get(name))
