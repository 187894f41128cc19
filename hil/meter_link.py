"""The harness's meters on a real bench: simulated meters served where the DUT's meter bus expects them.

``tcp``: a Modbus TCP server on ``listen`` (the DUT's bus is ``tcp://harness:port``). ``rtu``: the
meters are served with RTU framing on a loopback socket, and a pump copies bytes between that
socket and the harness's RS-485 adapter (the DUT's bus is its own adapter, A/B wired to ours).
Either way the bytes pass the wire-fault proxy of drivers.sim, so the meter can go silent,
answer late or corrupt its CRCs on the real wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import Any

from drivers.sim.meter_server import SimTransport, SimulatedMeter, SimulatedMeterServer
from hil.profile import BenchProfile, MeterLink

log = logging.getLogger(__name__)


def harness_meters(profile: BenchProfile) -> dict[int, SimulatedMeter]:
    """One simulated meter per EVSE with a meter: the DUT's own register map, the unit id the profile gives."""
    meters = {}
    for bench in profile.evses:
        dut = profile.dut_config.evse(bench.evse_id)
        if dut.meter is not None and bench.meter_unit is not None:
            meters[bench.evse_id] = SimulatedMeter(dut.meter.meter_map, bench.meter_unit)
    return meters


class MeterLinkServer:
    """Serves the harness's meters on the profile's link; wire faults go through ``server``."""

    def __init__(self, link: MeterLink, meters: list[SimulatedMeter]) -> None:
        self.link = link
        if link.link == "tcp":
            host, _, port = link.listen.rpartition(":")
            self.server = SimulatedMeterServer(meters, SimTransport.TCP, host=host or "0.0.0.0", port=int(port))
        else:
            self.server = SimulatedMeterServer(meters, SimTransport.RTU_SOCKET)
        self._pump: SerialPump | None = None

    async def start(self) -> None:
        await self.server.start()
        if self.link.link == "rtu":
            host, _, port = self.server.client_url.removeprefix("socket://").rpartition(":")
            self._pump = SerialPump(self.link, host, int(port))
            await self._pump.start()

    async def stop(self) -> None:
        if self._pump is not None:
            await self._pump.stop()
            self._pump = None
        await self.server.stop()


class SerialPump:
    """Copies bytes both ways between a serial port (the RS-485 adapter) and a TCP socket, until stopped."""

    def __init__(self, link: MeterLink, host: str, port: int, *, serial_factory: Any = None) -> None:
        self.link = link
        self.host = host
        self.port = port
        self._serial_factory = serial_factory
        self._serial: Any = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    async def start(self) -> None:
        import serial

        factory = self._serial_factory or serial.serial_for_url
        self._serial = factory(self.link.port, baudrate=self.link.baudrate, parity=self.link.parity,
                               stopbits=self.link.stopbits, bytesize=8, timeout=0.02)
        reader, self._writer = await asyncio.open_connection(self.host, self.port)
        loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._from_serial, args=(loop,), name="hil-rs485-pump", daemon=True)
        self._thread.start()
        self._task = asyncio.ensure_future(self._to_serial(reader))

    def _from_serial(self, loop: asyncio.AbstractEventLoop) -> None:
        """Serial -> socket, in a thread (pyserial blocks)."""
        while not self._stopping.is_set():
            try:
                data = self._serial.read(max(1, self._serial.in_waiting))
            except Exception as exc:  # the adapter was pulled: stop pumping, the DUT will see a silent meter
                log.error("RS-485 adapter %s: %s", self.link.port, exc)
                return
            if data and self._writer is not None:
                loop.call_soon_threadsafe(self._writer.write, data)

    async def _to_serial(self, reader: asyncio.StreamReader) -> None:
        """Socket -> serial, in the loop."""
        while data := await reader.read(4096):
            await asyncio.to_thread(self._serial.write, data)

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await self._task
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 1.0)
        if self._writer is not None:
            self._writer.close()
        if self._serial is not None:
            self._serial.close()
