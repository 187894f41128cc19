"""Several meters on one bus through one client, staleness, and bus configuration."""

from __future__ import annotations

import asyncio
import logging

import pytest

from drivers.interfaces import Fault, FaultKind, MeterSnapshot
from drivers.meter import MeterPoller, MeterResult, ModbusMeter
from drivers.meter_map import load_builtin
from drivers.modbus_bus import BusConfig, BusConfigError, BusTiming, ModbusBus, SerialSettings, Transport
from drivers.sim.meter_server import SimTransport, SimulatedMeter, SimulatedMeterServer

from .meter_helpers import FAST, FakeClock, Serve, assert_matches

UNREACHABLE = BusConfig.from_url("nowhere", "tcp://127.0.0.1:9", timing=FAST)


async def _two_meters(serve: Serve, buses: list[ModbusBus],
                      ) -> tuple[list[SimulatedMeter], list[ModbusMeter], SimulatedMeterServer]:
    sims = [SimulatedMeter(load_builtin("sdm630"), unit_id=1, clock=FakeClock()),
            SimulatedMeter(load_builtin("sdm630"), unit_id=2, clock=FakeClock())]
    sims[0].set_load(230.0, 16.0)
    sims[1].set_load(231.0, 6.0)
    server = await serve(sims, SimTransport.RTU_SOCKET)
    bus = ModbusBus(server.bus_config("rs485-1", FAST))
    buses.append(bus)
    meters = [ModbusMeter(f"ev{s.unit_id}", bus, s.meter_map, s.unit_id) for s in sims]
    return sims, meters, server


async def test_two_meters_share_one_client_and_are_read_in_turn(serve: Serve, buses: list[ModbusBus]) -> None:
    sims, meters, _server = await _two_meters(serve, buses)
    seen: list[tuple[str, MeterResult]] = []
    poller = MeterPoller(meters, lambda meter, result: seen.append((meter.name, result)), interval_s=0.01)
    for _ in range(3):
        await poller.poll_once()
    assert [name for name, _ in seen] == ["ev1", "ev2"] * 3
    for (name, result), sim in zip(seen, sims * 3, strict=True):
        assert name == f"ev{sim.unit_id}"
        assert_matches(result, sim.expected())
    bus = meters[0].bus
    assert bus.stats.requests == 2 * 3 * 3  # 3 planned requests per meter per round, one client
    assert sims[0].reads == sims[1].reads == 9


async def test_an_unpowered_or_busy_meter_does_not_stop_the_other(serve: Serve,
                                                                  buses: list[ModbusBus]) -> None:
    sims, meters, server = await _two_meters(serve, buses)
    poller = MeterPoller(meters, lambda meter, result: None)
    server.go_silent(units=[1])  # ev1 unpowered (e.g. behind an open contactor)
    results = await poller.poll_once()
    assert isinstance(results[0], Fault) and results[0].kind is FaultKind.METER_NO_RESPONSE
    assert_matches(results[1], sims[1].expected())
    server.clear_wire_fault()
    sims[0].respond_with_exception(6)  # ev1 busy
    results = await poller.poll_once()
    assert isinstance(results[0], Fault) and results[0].kind is FaultKind.METER_EXCEPTION_RESPONSE
    assert "device busy" in results[0].detail
    assert_matches(results[1], sims[1].expected())


async def test_background_polling_delivers_and_stops_cleanly(serve: Serve, buses: list[ModbusBus],
                                                             caplog: pytest.LogCaptureFixture) -> None:
    _sims, meters, _server = await _two_meters(serve, buses)
    got: list[str] = []
    enough = asyncio.Event()

    def on_result(meter: ModbusMeter, result: MeterResult) -> None:
        got.append(meter.name)
        if len(got) == 2:
            raise RuntimeError("callback bug")  # logged, polling goes on
        if len(got) >= 6:
            enough.set()

    poller = MeterPoller(meters, on_result, interval_s=0.01)
    with caplog.at_level(logging.ERROR, logger="drivers.meter"):
        async with poller:
            await asyncio.wait_for(enough.wait(), timeout=10)
    assert got[:6] == ["ev1", "ev2"] * 3
    assert "callback failed for meter ev2" in caplog.text
    count = len(got)
    await asyncio.sleep(0.05)
    assert len(got) == count  # stopped: nothing more arrives
    await poller.stop()  # idempotent
    assert isinstance(await meters[0].read(), MeterSnapshot)  # the bus is still usable


async def test_poller_refuses_meters_of_different_buses(buses: list[ModbusBus]) -> None:
    one, two = ModbusBus(UNREACHABLE), ModbusBus(UNREACHABLE)
    buses.extend((one, two))
    meters = [ModbusMeter("a", one, load_builtin("sdm630"), 1), ModbusMeter("b", two, load_builtin("sdm630"), 2)]
    with pytest.raises(ValueError, match="different buses"):
        MeterPoller(meters, lambda meter, result: None)
    with pytest.raises(ValueError, match="at least one"):
        MeterPoller([], lambda meter, result: None)


# ---------------------------------------------------------------- staleness


async def test_staleness_follows_the_last_valid_reading(serve: Serve, buses: list[ModbusBus]) -> None:
    sim = SimulatedMeter(load_builtin("sdm120"))
    server = await serve(sim, SimTransport.TCP)
    bus = ModbusBus(server.bus_config("b", FAST))
    buses.append(bus)
    clock = FakeClock(100.0)
    meter = ModbusMeter("ev1", bus, sim.meter_map, sim.unit_id, stale_after_s=5.0, clock=clock)

    assert meter.fault(104.9) is None  # never read yet, but not stale yet
    stale = meter.fault(105.5)
    assert stale is not None and stale.kind is FaultKind.METER_STALE and stale.since == 105.0

    clock.advance(10.0)  # t = 110
    assert isinstance(await meter.read(), MeterSnapshot)
    assert meter.fault(114.0) is None
    sim.respond_with_exception(4)
    clock.advance(2.0)  # t = 112
    failed = await meter.read()
    assert isinstance(failed, Fault)
    assert meter.fault(114.0) == failed  # within the limit: the read fault
    assert meter.last() is not None and meter.last().timestamp == 110.0  # type: ignore[union-attr]
    stale = meter.fault(116.0)
    assert stale is not None and stale.kind is FaultKind.METER_STALE and stale.since == 115.0
    assert "meter_exception_response" in stale.detail

    sim.respond_with_exception(None)
    clock.advance(5.0)  # t = 117
    assert isinstance(await meter.read(), MeterSnapshot)
    assert meter.fault(117.5) is None


def test_meter_arguments_are_checked() -> None:
    bus = ModbusBus(UNREACHABLE)
    with pytest.raises(ValueError, match="unit id"):
        ModbusMeter("x", bus, load_builtin("sdm630"), 0)
    with pytest.raises(ValueError, match="stale_after_s"):
        ModbusMeter("x", bus, load_builtin("sdm630"), 1, stale_after_s=0)


# ---------------------------------------------------------------- bus configuration


@pytest.mark.parametrize(("url", "transport", "target", "port"), [
    ("/dev/evcharger/meterbus", Transport.RTU, "/dev/evcharger/meterbus", 502),
    ("socket://10.0.0.5:4196", Transport.RTU, "socket://10.0.0.5:4196", 502),
    ("tcp://10.0.0.5", Transport.TCP, "10.0.0.5", 502),
    ("tcp://gw.local:1502", Transport.TCP, "gw.local", 1502),
    ("rtu-tcp://10.0.0.5:4196", Transport.RTU_OVER_TCP, "10.0.0.5", 4196),
])
def test_bus_urls(url: str, transport: Transport, target: str, port: int) -> None:
    config = BusConfig.from_url("b", url)
    assert (config.transport, config.target, config.port) == (transport, target, port)
    assert config.timing == BusTiming(timeout_s=0.5, retries=1, quiet_s=0.05, reconnect_max_s=5.0)


def test_bad_bus_settings_name_the_field() -> None:
    with pytest.raises(BusConfigError, match=r"bus 'b': invalid serial\.parity"):
        BusConfig.from_url("b", "/dev/ttyUSB0", serial=SerialSettings(parity="X"))
    with pytest.raises(BusConfigError, match=r"invalid timing\.timeout_s"):
        BusConfig.from_url("b", "/dev/ttyUSB0", timing=BusTiming(timeout_s=0))
    with pytest.raises(BusConfigError, match="bad port"):
        BusConfig.from_url("b", "tcp://host:http")
    assert SerialSettings.from_map(load_builtin("abb_b23")) == SerialSettings(19200, 8, "E", 1)


async def test_bad_reads_are_programming_errors(buses: list[ModbusBus]) -> None:
    bus = ModbusBus(UNREACHABLE)
    buses.append(bus)
    with pytest.raises(ValueError, match="bad read FC6"):
        await bus.read_registers(1, 6, 0, 2)
    with pytest.raises(ValueError, match="x126"):
        await bus.read_registers(1, 4, 0, 126)
    await bus.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await bus.read_registers(1, 4, 0, 2)


async def test_stopping_mid_request_is_clean(serve: Serve, buses: list[ModbusBus]) -> None:
    sims, meters, server = await _two_meters(serve, buses)
    server.go_silent()
    started = asyncio.Event()
    poller = MeterPoller(meters, lambda meter, result: None, interval_s=0.01)
    original = meters[0].bus.read_registers

    async def spy(*args: int) -> list[int] | Fault:
        started.set()
        return await original(*args)

    meters[0].bus.read_registers = spy  # type: ignore[method-assign]
    poller.start()
    await asyncio.wait_for(started.wait(), timeout=5)
    await asyncio.wait_for(poller.stop(), timeout=1)  # cancelled while waiting for a reply
    server.clear_wire_fault()
    assert_matches(await meters[1].read(), sims[1].expected())


async def test_read_soon_reads_a_meter_out_of_turn_without_waiting_for_the_next_round(
        serve: Serve, buses: list[ModbusBus]) -> None:
    _sims, meters, _server = await _two_meters(serve, buses)
    got: list[str] = []
    second = asyncio.Event()

    def on_result(meter: ModbusMeter, result: MeterResult) -> None:
        assert isinstance(result, MeterSnapshot)
        got.append(meter.name)
        if len(got) == 3:
            second.set()

    poller = MeterPoller(meters, on_result, interval_s=3600)  # the next round is an hour away
    async with poller:
        while len(got) < 2:
            await asyncio.sleep(0.01)
        assert got == ["ev1", "ev2"]
        poller.read_soon(meters[1])
        poller.read_soon(meters[1])  # asked twice before it could be read: one reading
        await asyncio.wait_for(second.wait(), timeout=10)
        await asyncio.sleep(0.05)
    assert got == ["ev1", "ev2", "ev2"]
    other = ModbusMeter("elsewhere", ModbusBus(UNREACHABLE), load_builtin("sdm630"), 9)
    buses.append(other.bus)
    with pytest.raises(ValueError, match="not polled here"):
        poller.read_soon(other)
