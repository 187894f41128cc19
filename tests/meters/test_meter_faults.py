"""Every bus fault becomes the right FaultKind, and the meter recovers by itself once it clears."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from drivers.interfaces import Fault, FaultKind, MeterSnapshot
from drivers.meter import ModbusMeter
from drivers.meter_map import load_builtin
from drivers.modbus_bus import BusConfig, ModbusBus, rtu_frame_ok
from drivers.sim.meter_server import SimTransport, SimulatedMeter, SimulatedMeterServer

from .meter_helpers import (
    FAST,
    RTU_TRANSPORTS,
    TCP_TRANSPORTS,
    FakeClock,
    Serve,
    assert_matches,
    needs_socat,
    read_until_snapshot,
)


async def _setup(serve: Serve, buses: list[ModbusBus], transport: SimTransport,
                 model: str = "sdm630") -> tuple[SimulatedMeter, SimulatedMeterServer, ModbusMeter]:
    sim = SimulatedMeter(load_builtin(model), unit_id=3, clock=FakeClock())
    sim.set_load(230.0, 12.5)
    server = await serve(sim, transport)
    bus = ModbusBus(server.bus_config("bus-test", FAST))
    buses.append(bus)
    meter = ModbusMeter("ev1", bus, sim.meter_map, sim.unit_id)
    assert isinstance(await meter.read(), MeterSnapshot)
    return sim, server, meter


def _assert_fault(result: MeterSnapshot | Fault, kind: FaultKind, *details: str) -> Fault:
    assert isinstance(result, Fault), result
    assert result.kind is kind, result
    for detail in details:
        assert detail in result.detail, result
    return result


@pytest.mark.parametrize("transport", TCP_TRANSPORTS)
async def test_silent_meter_is_no_response_then_recovers(transport: SimTransport, serve: Serve,
                                                         buses: list[ModbusBus]) -> None:
    sim, server, meter = await _setup(serve, buses, transport)
    server.go_silent()
    _assert_fault(await meter.read(), FaultKind.METER_NO_RESPONSE, "no reply within 0.15 s", "unit 3")
    assert meter.fault(meter.last().timestamp) is not None  # type: ignore[union-attr]
    server.clear_wire_fault()
    assert_matches(await read_until_snapshot(meter), sim.expected())
    assert meter.fault(meter.last().timestamp) is None  # type: ignore[union-attr]


@pytest.mark.parametrize("transport", TCP_TRANSPORTS)
async def test_late_answer_is_no_response_and_never_mixes_up_replies(
        transport: SimTransport, serve: Serve, buses: list[ModbusBus]) -> None:
    sim, server, meter = await _setup(serve, buses, transport, "em340")
    # Later than the timeout (0.15 s) but within the bus's post-timeout quiet guard (one more
    # timeout): each late reply lands while no request is pending and is dropped.
    server.answer_late(0.22)
    _assert_fault(await meter.read(), FaultKind.METER_NO_RESPONSE, "no reply within 0.15 s")
    server.clear_wire_fault()
    sim.set_load([231.0, 232.0, 233.0], [1.0, 2.0, 3.0])
    for _ in range(3):  # late replies still in flight must not be taken for these answers
        result = await read_until_snapshot(meter)
        assert_matches(result, sim.expected())


@pytest.mark.parametrize("transport", RTU_TRANSPORTS)
async def test_corrupt_crc_is_bad_data_then_recovers(transport: SimTransport, serve: Serve,
                                                     buses: list[ModbusBus]) -> None:
    sim, server, meter = await _setup(serve, buses, transport, "abb_b23")
    server.corrupt_crc()
    _assert_fault(await meter.read(), FaultKind.METER_BAD_DATA, "garbled reply", "CRC")
    server.clear_wire_fault()
    assert_matches(await read_until_snapshot(meter), sim.expected())


def test_crc_corruption_needs_rtu_framing() -> None:
    server = SimulatedMeterServer(SimulatedMeter(load_builtin("sdm630")), SimTransport.TCP)
    with pytest.raises(ValueError, match="RTU"):
        server.corrupt_crc()


@pytest.mark.parametrize("transport", [*TCP_TRANSPORTS, pytest.param(SimTransport.PTY, marks=needs_socat)])
async def test_exception_reply_names_the_code_then_recovers(transport: SimTransport, serve: Serve,
                                                            buses: list[ModbusBus],
                                                            caplog: pytest.LogCaptureFixture) -> None:
    sim, _server, meter = await _setup(serve, buses, transport)
    sim.respond_with_exception(2)
    with caplog.at_level(logging.WARNING, logger="drivers.modbus_bus"):
        _assert_fault(await meter.read(), FaultKind.METER_EXCEPTION_RESPONSE,
                      "exception code 2 (illegal data address)")
    assert "bus bus-test unit 3 FC4 @0x0000 x12: meter_exception_response" in caplog.text
    sim.respond_with_exception(None)
    assert_matches(await read_until_snapshot(meter), sim.expected())


async def test_connection_refused_is_disconnected_with_backoff(buses: list[ModbusBus]) -> None:
    bus = ModbusBus(BusConfig.from_url("gw", "tcp://127.0.0.1:9", timing=FAST))  # discard port: refused
    buses.append(bus)
    meter = ModbusMeter("ev1", bus, load_builtin("sdm630"), 1)
    _assert_fault(await meter.read(), FaultKind.METER_DISCONNECTED, "cannot open tcp 127.0.0.1:9")
    _assert_fault(await meter.read(), FaultKind.METER_DISCONNECTED, "next attempt in")  # backing off
    assert bus.stats.requests == 0


async def test_missing_serial_port_is_disconnected(buses: list[ModbusBus], tmp_path: object) -> None:
    bus = ModbusBus(BusConfig.from_url("rs485", f"{tmp_path}/ttyUSB-gone", timing=FAST))
    buses.append(bus)
    meter = ModbusMeter("ev1", bus, load_builtin("sdm120"), 1)
    _assert_fault(await meter.read(), FaultKind.METER_DISCONNECTED, "cannot open", "ttyUSB-gone")


@pytest.mark.parametrize("transport", [*TCP_TRANSPORTS, pytest.param(SimTransport.PTY, marks=needs_socat)])
async def test_vanished_adapter_is_disconnected_then_recovers(transport: SimTransport, serve: Serve,
                                                              buses: list[ModbusBus]) -> None:
    sim, server, meter = await _setup(serve, buses, transport)
    await server.vanish()
    kinds = set()
    for _ in range(3):
        result = await meter.read()
        assert isinstance(result, Fault)
        kinds.add(result.kind)
    # A request in flight when the link dies may time out first; after that it is "disconnected".
    assert FaultKind.METER_DISCONNECTED in kinds
    assert kinds <= {FaultKind.METER_DISCONNECTED, FaultKind.METER_NO_RESPONSE}
    await server.reappear()
    sim.set_load(229.0, 7.0)
    assert_matches(await read_until_snapshot(meter), sim.expected())


async def test_unknown_unit_on_the_bus_stays_silent(serve: Serve, buses: list[ModbusBus]) -> None:
    _sim, server, meter = await _setup(serve, buses, SimTransport.RTU_SOCKET)
    stranger = ModbusMeter("nobody", meter.bus, load_builtin("sdm630"), 99)
    _assert_fault(await stranger.read(), FaultKind.METER_NO_RESPONSE)
    assert server.wire.dropped_requests == 2  # the first attempt and one retry
    assert isinstance(await meter.read(), MeterSnapshot)


async def test_current_not_available_is_bad_data_never_zero_amps(serve: Serve, buses: list[ModbusBus]) -> None:
    sim, _server, meter = await _setup(serve, buses, SimTransport.TCP, "abb_b23")
    sim.set_not_available("current_l2")
    _assert_fault(await meter.read(), FaultKind.METER_BAD_DATA, "current_l2", "not available")


async def test_other_quantities_not_available_read_as_none(serve: Serve, buses: list[ModbusBus]) -> None:
    sim, _server, meter = await _setup(serve, buses, SimTransport.TCP, "em340")
    sim.set_not_available("voltage_l3", "energy_import")
    snapshot = await meter.read()
    assert_matches(snapshot, sim.expected())
    assert isinstance(snapshot, MeterSnapshot)
    assert snapshot.voltage_v[2] is None and snapshot.energy_import_kwh is None


async def test_fault_since_is_kept_while_the_same_fault_lasts(serve: Serve, buses: list[ModbusBus]) -> None:
    sim = SimulatedMeter(load_builtin("sdm630"))
    server = await serve(sim, SimTransport.TCP)
    bus = ModbusBus(server.bus_config("b", FAST))
    buses.append(bus)
    clock = FakeClock()
    meter = ModbusMeter("ev1", bus, sim.meter_map, sim.unit_id, clock=clock)
    server.go_silent()
    first = _assert_fault(await meter.read(), FaultKind.METER_NO_RESPONSE)
    clock.advance(2.0)
    second = _assert_fault(await meter.read(), FaultKind.METER_NO_RESPONSE)
    assert second.since == first.since == 1000.0
    sim.respond_with_exception(4)
    server.clear_wire_fault()
    third = _assert_fault(await meter.read(), FaultKind.METER_EXCEPTION_RESPONSE)
    assert third.since == 1002.0


def test_rtu_crc_check() -> None:
    assert rtu_frame_ok(bytes.fromhex("01 04 00 00 00 02 71 cb"))  # seen on the wire (HARDWARE.md 2.6c)
    assert not rtu_frame_ok(bytes.fromhex("01 04 00 00 00 02 71 ca"))
    assert not rtu_frame_ok(b"\x01\x04")


async def test_reply_to_a_cancelled_request_is_not_taken_for_the_next(serve: Serve,
                                                                       buses: list[ModbusBus]) -> None:
    sim, server, meter = await _setup(serve, buses, SimTransport.RTU_SOCKET)
    sim.set_energy(1234.5)  # power 3 x 2875 W: the two replies differ, with the same length
    power, energy = sim.meter_map.quantities["power_total"], sim.meter_map.quantities["energy_import"]
    server.answer_late(0.1)  # within the timeout: replies are slow, not lost
    sent = server.wire.request_frames
    request = asyncio.create_task(meter.bus.read_registers(3, 4, power.address, 2))
    while server.wire.request_frames == sent:
        await asyncio.sleep(0.002)
    request.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await request
    registers = await meter.bus.read_registers(3, 4, energy.address, 2)
    assert isinstance(registers, list)
    assert energy.decode(registers) == sim.expected()["energy_import"]


async def test_a_silent_meter_never_drops_the_gateway_link(serve: Serve, buses: list[ModbusBus]) -> None:
    _sim, server, meter = await _setup(serve, buses, SimTransport.TCP)
    server.go_silent(units=[3])
    for _ in range(4):  # 8 unanswered requests: more than pymodbus' default of retries + 3
        _assert_fault(await meter.read(), FaultKind.METER_NO_RESPONSE)
    assert meter.bus.connected
    server.clear_wire_fault()
    assert isinstance(await meter.read(), MeterSnapshot)


async def test_socket_port_reconnects_and_closes_without_blocking_the_loop(
    serve: Serve, buses: list[ModbusBus], monkeypatch: pytest.MonkeyPatch
) -> None:
    """pyserial's socket:// close() sleeps 0.3 s in the caller; the bus must never let it stall the loop."""
    from serial.urlhandler import protocol_socket

    pauses: list[float] = []
    monkeypatch.setattr(protocol_socket.time, "sleep", pauses.append)
    sim, server, meter = await _setup(serve, buses, SimTransport.RTU_SOCKET)
    await server.vanish()
    for _ in range(3):
        assert isinstance(await meter.read(), Fault)
    await server.reappear()
    assert_matches(await read_until_snapshot(meter), sim.expected())
    for bus in buses:
        await bus.aclose()
    assert pauses == []
