"""Every map decodes to the simulated values over real pymodbus servers, on every transport."""

from __future__ import annotations

import pytest

from drivers.interfaces import Meter, MeterSnapshot
from drivers.meter import ModbusMeter
from drivers.meter_map import builtin_models, load_builtin
from drivers.modbus_bus import BusConfig, ModbusBus
from drivers.sim.meter_server import SimTransport, SimulatedMeter

from .meter_helpers import (
    FAST,
    RTU_TRANSPORTS,
    TCP_TRANSPORTS,
    FakeClock,
    Serve,
    assert_matches,
    needs_socat,
)

UNREACHABLE = BusConfig.from_url("unused", "tcp://127.0.0.1:9", timing=FAST)


def _loaded(model: str, clock: FakeClock) -> SimulatedMeter:
    meter_map = load_builtin(model)
    sim = SimulatedMeter(meter_map, unit_id=7, clock=clock)
    sim.set_load([230.1, 231.2, 229.9][: meter_map.phases], [16.0, 15.5, 0.25][: meter_map.phases])
    sim.set_energy(12345.67)
    return sim


async def _read_once(serve: Serve, buses: list[ModbusBus], sim: SimulatedMeter,
                     transport: SimTransport) -> MeterSnapshot:
    server = await serve(sim, transport)
    bus = ModbusBus(server.bus_config("bus0", FAST))
    buses.append(bus)
    meter = ModbusMeter("ev1", bus, sim.meter_map, sim.unit_id)
    snapshot = await meter.read()
    assert_matches(snapshot, sim.expected())
    assert isinstance(snapshot, MeterSnapshot)
    wire = server.wire
    if transport in RTU_TRANSPORTS:  # the wire carries exactly the planned RTU frames
        assert wire.request_frames == len(sim.meter_map.plan)
        assert wire.request_bytes + wire.response_bytes == sim.meter_map.plan_wire_bytes
    elif transport is SimTransport.TCP:  # MBAP: 7-byte header instead of id + CRC
        assert wire.request_bytes == 12 * len(sim.meter_map.plan)
    return snapshot


@pytest.mark.parametrize("transport", TCP_TRANSPORTS)
@pytest.mark.parametrize("model", builtin_models())
async def test_every_map_over_tcp_transports(model: str, transport: SimTransport, serve: Serve,
                                             buses: list[ModbusBus]) -> None:
    snapshot = await _read_once(serve, buses, _loaded(model, FakeClock()), transport)
    assert snapshot.max_current_a() == pytest.approx(16.0)


@needs_socat
@pytest.mark.parametrize("model", builtin_models())
async def test_every_map_over_a_socat_pty_pair(model: str, serve: Serve, buses: list[ModbusBus]) -> None:
    await _read_once(serve, buses, _loaded(model, FakeClock()), SimTransport.PTY)


async def test_single_phase_model_leaves_l2_l3_empty(serve: Serve, buses: list[ModbusBus]) -> None:
    snapshot = await _read_once(serve, buses, _loaded("sdm120", FakeClock()), SimTransport.TCP)
    assert snapshot.voltage_v[1:] == (None, None) and snapshot.current_a[1:] == (None, None)


async def test_energy_integrates_while_current_flows(serve: Serve, buses: list[ModbusBus]) -> None:
    clock = FakeClock()
    sim = SimulatedMeter(load_builtin("abb_b23"), clock=clock)
    sim.set_energy(100.0)
    server = await serve(sim, SimTransport.RTU_SOCKET)
    bus = ModbusBus(server.bus_config("bus0", FAST))
    buses.append(bus)
    meter = ModbusMeter("ev1", bus, sim.meter_map, sim.unit_id, clock=clock)

    clock.advance(3600)  # no current: no energy
    first = await meter.read()
    assert isinstance(first, MeterSnapshot) and first.energy_import_kwh == 100.0
    sim.set_load(230.0, 10.0)  # 3 x 2300 W
    clock.advance(1800)
    second = await meter.read()
    assert isinstance(second, MeterSnapshot)
    assert second.power_w == 6900.0
    assert second.energy_import_kwh == pytest.approx(100.0 + 3.45, abs=0.01)
    sim.set_load(230.0, 0.0)
    clock.advance(3600)
    third = await meter.read()
    assert isinstance(third, MeterSnapshot) and third.energy_import_kwh == second.energy_import_kwh


async def test_modbus_meter_is_a_meter(buses: list[ModbusBus]) -> None:
    bus = ModbusBus(UNREACHABLE)
    buses.append(bus)
    meter = ModbusMeter("ev1", bus, load_builtin("sdm630"), 1)
    assert isinstance(meter, Meter)
    assert meter.last() is None

