"""Simulated Modbus meters served by a real pymodbus server, with faults the client sees on the wire.

SimulatedMeter is one meter (unit id) of a map: its load, the energy it integrates while current
flows, and device-level faults (exception replies, "not available" values). SimulatedMeterServer
serves one or more of them on one transport: Modbus TCP, RTU frames over TCP (pyserial socket://
or a transparent gateway) behind a ModbusWireProxy, or a socat pty pair (real serial framing).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any

from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from drivers.meter_map import MeterMap
from drivers.modbus_bus import BusConfig, BusTiming, SerialSettings
from drivers.sim.modbus_proxy import Framing, ModbusWireProxy, WireFault, WireStats

_PLACEHOLDER = 0xFFF0  # a block for a function code the model does not use (pymodbus needs one)


class SimulatedMeter:
    """The register image of one meter, computed from a simulated load at every read."""

    def __init__(self, meter_map: MeterMap, unit_id: int | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.meter_map = meter_map
        self.unit_id = meter_map.default_unit_id if unit_id is None else unit_id
        self.reads = 0  # requests the server answered (or refused) for this unit
        self._clock = clock
        self._voltage_v = (230.0,) * meter_map.phases
        self._current_a = (0.0,) * meter_map.phases
        self._power_factor = 1.0
        self._energy_kwh = 0.0
        self._since = clock()
        self._exception_code: ExcCodes | None = None
        self._not_available: set[str] = set()

    # ------------------------------------------------------------ physics

    def set_load(self, voltage_v: float | Sequence[float], current_a: float | Sequence[float], *,
                 power_factor: float = 1.0) -> None:
        """New per-phase V and A (a scalar applies to every phase); energy counted so far is kept."""
        self._advance()
        self._voltage_v = self._per_phase(voltage_v, "voltage_v")
        self._current_a = self._per_phase(current_a, "current_a")
        self._power_factor = power_factor

    def set_energy(self, kwh: float) -> None:
        """Set the import counter (e.g. a meter that has been in service for a while)."""
        self._advance()
        self._energy_kwh = kwh

    @property
    def power_w(self) -> float:
        """Total active power of the present load."""
        return sum(v * a for v, a in zip(self._voltage_v, self._current_a, strict=True)) * self._power_factor

    @property
    def energy_kwh(self) -> float:
        """Import energy integrated up to now (clock time)."""
        self._advance()
        return self._energy_kwh

    def values(self) -> dict[str, float]:
        """Exact simulated value of every quantity of the map, now."""
        result = {f"voltage_l{n + 1}": v for n, v in enumerate(self._voltage_v)}
        result.update({f"current_l{n + 1}": a for n, a in enumerate(self._current_a)})
        result.update(power_total=self.power_w, energy_import=self.energy_kwh)
        return result

    def expected(self) -> dict[str, float | None]:
        """What a correct client decodes now: the values at the map's resolution (None if n/a)."""
        values = self.values()
        return {name: None if name in self._not_available else q.decode(q.encode(values[name]))
                for name, q in self.meter_map.quantities.items()}

    # ------------------------------------------------------------ device-level faults

    def respond_with_exception(self, code: int | None) -> None:
        """Answer every read of this unit with Modbus exception ``code`` (None: answer normally)."""
        self._exception_code = None if code is None else ExcCodes(code)

    def set_not_available(self, *quantities: str) -> None:
        """Report these quantities as "not available" (all registers 0xFFFF); none to clear."""
        unknown = set(quantities) - set(self.meter_map.quantities)
        if unknown:
            raise ValueError(f"{self.meter_map.key} has no quantities {sorted(unknown)}")
        self._not_available = set(quantities)

    # ------------------------------------------------------------ pymodbus glue

    def sim_device(self) -> SimDevice:
        """A pymodbus SimDevice with one valid register span per function code the map uses."""
        blocks: dict[int, list[SimData]] = {}
        for fc in (3, 4):
            used = [q for q in self.meter_map.quantities.values() if q.function_code == fc]
            low = min((q.address for q in used), default=_PLACEHOLDER)
            high = max((q.end for q in used), default=_PLACEHOLDER + 1)
            blocks[fc] = [SimData(low, count=high - low, values=0, datatype=DataType.REGISTERS)]
        bits = [SimData(0, values=False, datatype=DataType.BITS)]
        return SimDevice(id=self.unit_id, simdata=(bits, list(bits), blocks[3], blocks[4]), action=self._action)

    def image(self, function_code: int) -> dict[int, int]:
        """Register address -> value for one function code, as the meter would answer now."""
        values = self.values()
        image: dict[int, int] = {}
        for name, quantity in self.meter_map.quantities.items():
            if quantity.function_code != function_code:
                continue
            words = [0xFFFF] * quantity.count if name in self._not_available else quantity.encode(values[name])
            image.update(zip(range(quantity.address, quantity.end), words, strict=True))
        return image

    async def _action(self, function_code: int, start_address: int, address: int, count: int,
                      registers: list[int], set_values: list[int] | list[bool] | None) -> ExcCodes | None:
        """pymodbus SimDevice hook: refresh the requested registers in place, or refuse the read."""
        self.reads += 1
        if self._exception_code is not None:
            return self._exception_code
        image = self.image(function_code)
        for offset in range(address - start_address, address - start_address + count):
            registers[offset] = image.get(start_address + offset, 0)
        return None

    def _advance(self) -> None:
        now = self._clock()
        self._energy_kwh += self.power_w * max(now - self._since, 0.0) / 3_600_000.0
        self._since = now

    def _per_phase(self, value: float | Sequence[float], what: str) -> tuple[float, ...]:
        values = (float(value),) * self.meter_map.phases if isinstance(value, int | float) else tuple(value)
        if len(values) != self.meter_map.phases:
            raise ValueError(f"{what}: {self.meter_map.key} has {self.meter_map.phases} phase(s), "
                             f"got {len(values)} values")
        return values


class SimTransport(StrEnum):
    """How the simulated meters are reached."""

    TCP = "tcp"  # ModbusTcpServer; client: tcp://host:port
    RTU_SOCKET = "rtu_socket"  # ModbusSerialServer on socket://; client: socket://host:port (serial URL)
    RTU_OVER_TCP = "rtu_over_tcp"  # ModbusTcpServer with RTU framer; client: rtu-tcp://host:port
    PTY = "pty"  # ModbusSerialServer on a socat pty pair; client: the other pty's path


class SimulatedMeterServer:
    """Serves SimulatedMeters on one transport; wire faults and byte counts need a TCP transport."""

    def __init__(self, meters: SimulatedMeter | Sequence[SimulatedMeter],
                 transport: SimTransport = SimTransport.TCP, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.meters = (meters,) if isinstance(meters, SimulatedMeter) else tuple(meters)
        if not self.meters or len({m.unit_id for m in self.meters}) != len(self.meters):
            raise ValueError("need at least one meter, each with its own unit id")
        self.transport = transport
        self.host = host
        self._server: ModbusTcpServer | ModbusSerialServer | None = None
        self._proxy: ModbusWireProxy | None = None
        if transport is not SimTransport.PTY:
            framing = Framing.TCP if transport is SimTransport.TCP else Framing.RTU
            self._proxy = ModbusWireProxy(framing, 0, host=host, port=port,
                                          known_units=frozenset(m.unit_id for m in self.meters))
        self._workdir: str | None = None
        self._socat: subprocess.Popen[bytes] | None = None

    @property
    def client_url(self) -> str:
        """What a client opens (BusConfig.from_url understands it)."""
        if self.transport is SimTransport.PTY:
            return str(self._pty_paths()[1])
        assert self._proxy is not None
        scheme = {SimTransport.TCP: "tcp", SimTransport.RTU_SOCKET: "socket",
                  SimTransport.RTU_OVER_TCP: "rtu-tcp"}[self.transport]
        return f"{scheme}://{self.host}:{self._proxy.port}"

    def bus_config(self, name: str = "sim", timing: BusTiming | None = None) -> BusConfig:
        """A client BusConfig for this server (serial settings from the first meter's map)."""
        return BusConfig.from_url(name, self.client_url, serial=self._line_settings(), timing=timing)

    def _line_settings(self) -> SerialSettings:
        """The first meter's default line settings; on a pty without parity (Linux ptys refuse it)."""
        line = SerialSettings.from_map(self.meters[0].meter_map)
        return SerialSettings(line.baudrate, 8, "N", 1) if self.transport is SimTransport.PTY else line

    @property
    def wire(self) -> WireStats:
        """Frames and bytes seen on the wire (TCP transports; zeros on a pty)."""
        return self._proxy.stats if self._proxy is not None else WireStats()

    def reset_wire_stats(self) -> None:
        """Start counting from zero."""
        if self._proxy is not None:
            self._proxy.stats = WireStats()

    # ------------------------------------------------------------ wire faults

    def go_silent(self, units: Sequence[int] | None = None) -> None:
        """Requests (to ``units``, default all) never reach the meter: the client times out."""
        self._wire_fault(WireFault.SILENT, units)

    def answer_late(self, delay_s: float, units: Sequence[int] | None = None) -> None:
        """Replies arrive ``delay_s`` late (longer than the client timeout: it gives up first)."""
        self._wire_fault(WireFault.LATE, units, delay_s)

    def corrupt_crc(self, units: Sequence[int] | None = None) -> None:
        """Replies arrive with a broken CRC (RTU transports)."""
        self._wire_fault(WireFault.CORRUPT_CRC, units)

    def clear_wire_fault(self) -> None:
        """Back to a healthy wire."""
        self._wire_fault(WireFault.NONE, None)

    def _wire_fault(self, fault: WireFault, units: Sequence[int] | None, delay_s: float = 0.0) -> None:
        if self._proxy is None:
            raise RuntimeError(f"wire faults need a TCP transport, not {self.transport}")
        self._proxy.set_fault(fault, units=None if units is None else frozenset(units), delay_s=delay_s)

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start the server (and proxy or socat); the client address stays the same across restarts."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        devices = [meter.sim_device() for meter in self.meters]
        if self.transport is SimTransport.PTY:
            meter_end, _ = self._start_socat()
            line = self._line_settings()
            self._server = ModbusSerialServer(devices, framer=FramerType.RTU, port=str(meter_end),
                                              baudrate=line.baudrate, bytesize=line.bytesize,
                                              parity=line.parity, stopbits=line.stopbits)
            await self._server.serve_forever(background=True)
            return
        assert self._proxy is not None
        if self.transport is SimTransport.RTU_SOCKET:
            self._server = ModbusSerialServer(devices, framer=FramerType.RTU, port=f"socket://{self.host}:0")
        else:
            framer = FramerType.SOCKET if self.transport is SimTransport.TCP else FramerType.RTU
            self._server = ModbusTcpServer(devices, framer=framer, address=(self.host, 0))
        await self._server.serve_forever(background=True)
        listener: Any = self._server.transport  # an asyncio.Server once listening
        self._proxy.backend_port = listener.sockets[0].getsockname()[1]
        await self._proxy.start()

    async def stop(self) -> None:
        """Stop everything; idempotent."""
        if self._proxy is not None:
            await self._proxy.stop()
        if self._server is not None:
            await self._server.shutdown()  # type: ignore[no-untyped-call]  # pymodbus leaves it unannotated
            self._server = None
        self._stop_socat()

    async def vanish(self) -> None:
        """The adapter or gateway disappears: connections drop, the port or pty path goes away."""
        await self.stop()
        await asyncio.sleep(0)

    async def reappear(self) -> None:
        """It comes back at the same port or pty path (fresh server, same simulated meters)."""
        await self.start()

    async def __aenter__(self) -> SimulatedMeterServer:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    # ------------------------------------------------------------ socat

    def _pty_paths(self) -> tuple[Path, Path]:
        if self._workdir is None:
            self._workdir = tempfile.mkdtemp(prefix="simmeter-")
        return Path(self._workdir, "ttyMeter"), Path(self._workdir, "ttyController")

    def _start_socat(self) -> tuple[Path, Path]:
        if shutil.which("socat") is None:
            raise RuntimeError("socat is not installed (apt-get install socat): the pty transport needs it")
        meter_end, controller_end = self._pty_paths()
        for path in (meter_end, controller_end):
            path.unlink(missing_ok=True)
        self._socat = subprocess.Popen(
            ["socat", f"pty,raw,echo=0,link={meter_end}", f"pty,raw,echo=0,link={controller_end}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 5.0
        while not (meter_end.exists() and controller_end.exists()):
            if time.monotonic() > deadline or self._socat.poll() is not None:
                self._stop_socat()
                raise RuntimeError("socat did not create the pty pair within 5 s")
            time.sleep(0.01)
        return meter_end, controller_end

    def _stop_socat(self) -> None:
        if self._socat is not None:
            self._socat.terminate()
            self._socat.wait(timeout=5)
            self._socat = None
        if self._workdir is not None:
            for path in self._pty_paths():
                path.unlink(missing_ok=True)
