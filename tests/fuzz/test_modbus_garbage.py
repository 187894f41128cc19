"""Garbage Modbus replies through a real socket: the real ModbusBus / ModbusMeter return faults, never raise.

A scripted server on loopback answers each request frame as hypothesis decides: random bytes, a good
reply cut short, with flipped bits, trailing bytes or twice, another unit or function code, a wrong
register count, an exception reply, silence, a split write or a dropped connection. Every read during
the garbage must end in a snapshot (with the right values unless random bytes happened to form a frame)
or a ``drivers.interfaces.Fault``; once good replies return, the meter must read the simulated values
again (no stale frame taken for a later answer).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.interfaces import Fault, FaultKind, MeterSnapshot
from drivers.meter import ModbusMeter
from drivers.meter_map import load_builtin
from drivers.modbus_bus import BusConfig, BusTiming, ModbusBus, rtu_frame_ok
from drivers.sim.meter_server import SimulatedMeter

from .live_api import scale_factor

UNIT = 1
TIMING = BusTiming(timeout_s=0.1, retries=0, quiet_s=0.0, reconnect_min_s=0.01, reconnect_max_s=0.05)
METER_FAULTS = {FaultKind.METER_NO_RESPONSE, FaultKind.METER_BAD_DATA, FaultKind.METER_EXCEPTION_RESPONSE,
                FaultKind.METER_DISCONNECTED}
RECOVERY_READS = 40
SCHEMES = {"rtu-socket": "socket", "rtu-over-tcp": "rtu-tcp", "tcp": "tcp"}


def crc16(frame: bytes) -> bytes:
    """Modbus RTU CRC16, low byte first."""
    crc = 0xFFFF
    for byte in frame:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc.to_bytes(2, "little")


@dataclass(frozen=True)
class Reply:
    """How the server answers one request: ``kind`` and its parameters."""

    kind: str
    data: bytes = b""
    number: int = 0


replies = st.one_of(
    st.builds(Reply, st.just("garbage"), st.binary(min_size=1, max_size=300)),
    st.builds(Reply, st.just("truncated"), number=st.integers(0, 40)),
    st.builds(Reply, st.just("flipped"), st.binary(min_size=1, max_size=4), st.integers(0, 40)),
    st.builds(Reply, st.just("extra"), st.binary(min_size=1, max_size=40)),
    st.builds(Reply, st.just("twice")),
    st.builds(Reply, st.just("other_unit"), number=st.integers(0, 255).filter(lambda u: u != UNIT)),
    st.builds(Reply, st.just("other_function"), number=st.sampled_from([1, 2, 3, 5, 6, 16, 0x43, 0x7F, 0xFF])),
    st.builds(Reply, st.just("exception"), number=st.integers(0, 255)),
    st.builds(Reply, st.just("register_count"), number=st.integers(0, 125)),
    st.builds(Reply, st.just("byte_count"), number=st.integers(0, 255)),
    st.builds(Reply, st.just("silence")),
    st.builds(Reply, st.just("split"), number=st.integers(1, 20)),
    st.builds(Reply, st.just("close")),
    st.builds(Reply, st.just("good")),
)


@dataclass
class ScriptedServer:
    """A Modbus server on 127.0.0.1 answering RTU frames or MBAP (``tcp``) requests as scripted."""

    framing: str
    meter: SimulatedMeter
    script: list[Reply] = field(default_factory=list)
    requests: int = 0
    port: int = 0
    _server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        size = 12 if self.framing == "tcp" else 8  # an FC3/FC4 request
        try:
            while True:
                request = await reader.readexactly(size)
                self.requests += 1
                reply = self.script.pop(0) if self.script else Reply("good")
                if not await self._answer(request, reply, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def _frame(self, request: bytes, pdu: bytes, unit: int = UNIT) -> bytes:
        if self.framing == "tcp":
            return request[:2] + b"\x00\x00" + (len(pdu) + 1).to_bytes(2, "big") + bytes([unit]) + pdu
        body = bytes([unit]) + pdu
        return body + crc16(body)

    def _registers(self, request: bytes, count: int | None = None) -> bytes:
        pdu = request[7:] if self.framing == "tcp" else request[1:6]
        fc, address, wanted = pdu[0], int.from_bytes(pdu[1:3], "big"), int.from_bytes(pdu[3:5], "big")
        image = self.meter.image(fc)
        words = [image.get(address + i, 0) for i in range(wanted if count is None else count)]
        return b"".join(word.to_bytes(2, "big") for word in words)

    def _pdu_fc(self, request: bytes) -> int:
        return request[7] if self.framing == "tcp" else request[1]

    async def _answer(self, request: bytes, reply: Reply, writer: asyncio.StreamWriter) -> bool:
        """Write the scripted answer; False when the connection is to be dropped."""
        fc = self._pdu_fc(request)
        data = self._registers(request)
        good = self._frame(request, bytes([fc, len(data)]) + data)
        out: dict[str, Callable[[], bytes]] = {
            "garbage": lambda: reply.data,
            "truncated": lambda: good[: reply.number % len(good)],
            "flipped": lambda: _flip(good, reply.data, reply.number),
            "extra": lambda: good + reply.data,
            "twice": lambda: good + good,
            "other_unit": lambda: self._frame(request, bytes([fc, len(data)]) + data, unit=reply.number),
            "other_function": lambda: self._frame(request, bytes([reply.number, len(data)]) + data),
            "exception": lambda: self._frame(request, bytes([fc | 0x80, reply.number])),
            "register_count": lambda: self._frame(
                request, bytes([fc, 2 * reply.number]) + self._registers(request, reply.number)),
            "byte_count": lambda: self._frame(request, bytes([fc, reply.number]) + data),
            "silence": lambda: b"",
            "good": lambda: good,
        }
        if reply.kind == "close":
            return False
        if reply.kind == "split":
            cut = reply.number % len(good)
            writer.write(good[:cut])
            await writer.drain()
            await asyncio.sleep(0.01)
            writer.write(good[cut:])
        else:
            writer.write(out[reply.kind]())
        await writer.drain()
        return True


def _flip(frame: bytes, mask: bytes, at: int) -> bytes:
    out = bytearray(frame)
    for offset, bits in enumerate(mask):
        out[(at + offset) % len(out)] ^= bits or 0x01
    return bytes(out)


def assert_meter_result(result: object) -> None:
    """The Meter contract: a snapshot or a meter fault value."""
    if isinstance(result, Fault):
        assert result.kind in METER_FAULTS, result
        assert result.detail, result
    else:
        assert isinstance(result, MeterSnapshot), result


def assert_expected(snapshot: MeterSnapshot, sim: SimulatedMeter) -> None:
    """The snapshot carries exactly what a correct client decodes from the simulated meter."""
    expected = sim.expected()
    assert snapshot.voltage_v == tuple(expected[f"voltage_l{n}"] for n in (1, 2, 3))
    assert snapshot.current_a == tuple(expected[f"current_l{n}"] for n in (1, 2, 3))
    assert snapshot.power_w == expected["power_total"]
    assert snapshot.energy_import_kwh == expected["energy_import"]


async def garbage_then_recovery(transport: str, script: list[Reply], direct_reads: int) -> None:
    """Read through the scripted garbage, then until the meter answers correctly again (bounded)."""
    sim = SimulatedMeter(load_builtin("sdm630"), UNIT, clock=lambda: 1000.0)
    sim.set_load([230.5, 231.0, 229.5], [16.0, 15.5, 0.25])
    sim.set_energy(4321.5)
    server = ScriptedServer("tcp" if transport == "tcp" else "rtu", sim, list(script))
    await server.start()
    bus = ModbusBus(BusConfig.from_url("garbage", f"{SCHEMES[transport]}://127.0.0.1:{server.port}", timing=TIMING))
    meter = ModbusMeter("garbage", bus, sim.meter_map, UNIT)
    try:
        for _ in range(direct_reads):
            registers = await bus.read_registers(UNIT, 4, 0, 12)
            if isinstance(registers, Fault):
                assert registers.kind in METER_FAULTS, registers
            else:
                assert len(registers) == 12 and all(0 <= word <= 0xFFFF for word in registers), registers
        random_bytes = any(reply.kind in ("garbage", "flipped") for reply in script)
        while server.script:
            before = len(server.script)
            result = await meter.read()
            assert_meter_result(result)
            if isinstance(result, MeterSnapshot) and not random_bytes:  # (random bytes can form a frame)
                assert_expected(result, sim)  # a reply meant for another request is never taken as this one
            if len(server.script) == before:  # not even a request went out (reconnect backoff)
                await asyncio.sleep(TIMING.reconnect_min_s)
        for _ in range(RECOVERY_READS):
            result = await meter.read()
            assert_meter_result(result)
            if isinstance(result, MeterSnapshot):
                break
            await asyncio.sleep(TIMING.reconnect_min_s)
        else:
            pytest.fail(f"no correct reading within {RECOVERY_READS} reads after the garbage: {result}")
        assert_expected(result, sim)
        for _ in range(2):  # and the next ones are right too: nothing stale left on the line
            again = await meter.read()
            assert isinstance(again, MeterSnapshot), again
            assert_expected(again, sim)
    finally:
        await bus.aclose()
        await server.stop()


@pytest.mark.parametrize("transport", sorted(SCHEMES))
@settings(deadline=None, database=None, max_examples=20 * scale_factor(), suppress_health_check=list(HealthCheck))
@given(script=st.lists(replies, min_size=1, max_size=4), direct_reads=st.integers(0, 1))
def test_garbage_replies_are_faults_and_the_meter_recovers(transport: str, script: list[Reply],
                                                            direct_reads: int) -> None:
    asyncio.run(garbage_then_recovery(transport, script, direct_reads))


def test_the_scripted_server_frames_good_replies_correctly() -> None:
    """Guard for the harness itself: a good RTU reply passes the bus's own CRC check."""
    sim = SimulatedMeter(load_builtin("sdm630"), UNIT, clock=lambda: 1000.0)
    server = ScriptedServer("rtu", sim)
    request = bytes([UNIT, 4, 0, 0, 0, 12])
    request += crc16(request)
    data = server._registers(request)
    assert rtu_frame_ok(server._frame(request, bytes([4, len(data)]) + data))
    assert len(data) == 24
