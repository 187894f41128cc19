"""A byte-level Modbus proxy on loopback TCP: counts wire bytes and injects faults the client sees.

It sits between a client and a simulated meter server (Modbus TCP or RTU frames over TCP), splits
the stream into frames, and can drop requests (silent meter), hold replies back (late answer) or
flip a CRC byte (RTU). Requests to unit ids nobody serves are dropped, as on a real RS-485 bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from enum import StrEnum

log = logging.getLogger(__name__)

_MAX_FRAME = 300  # larger than any Modbus ADU: a buffer this long without a frame is garbage


class Framing(StrEnum):
    """What the byte stream carries."""

    RTU = "rtu"  # id, PDU, CRC16
    TCP = "tcp"  # MBAP header (7 bytes, unit id last), PDU


class WireFault(StrEnum):
    """Faults injected on the wire."""

    NONE = "none"
    SILENT = "silent"  # requests never reach the meter
    LATE = "late"  # replies arrive ``delay_s`` late
    CORRUPT_CRC = "corrupt_crc"  # replies arrive with a broken CRC (RTU framing only)


@dataclass(slots=True)
class WireStats:
    """Frames and bytes the client sent (requests) and received (responses)."""

    request_frames: int = 0
    request_bytes: int = 0
    response_frames: int = 0
    response_bytes: int = 0
    dropped_requests: int = 0


def frame_size(buffer: bytes, framing: Framing, request: bool) -> int | None:
    """Length of the frame at the start of ``buffer``, or None if more bytes are needed."""
    if framing is Framing.TCP:
        return 6 + int.from_bytes(buffer[4:6], "big") if len(buffer) >= 6 else None
    if len(buffer) < 3:
        return None
    fc = buffer[1]
    if request:
        if fc in (15, 16):
            return 9 + buffer[6] if len(buffer) >= 7 else None
        return 8
    if fc & 0x80:
        return 5
    return 5 + buffer[2] if fc in (1, 2, 3, 4) else 8


def frame_unit(frame: bytes, framing: Framing) -> int:
    """Unit id (device id) a frame is addressed to or comes from."""
    return frame[6] if framing is Framing.TCP else frame[0]


class ModbusWireProxy:
    """Listens on ``host:port`` (0 = pick one; kept across restarts) and relays to the backend."""

    def __init__(self, framing: Framing, backend_port: int, *, host: str = "127.0.0.1", port: int = 0,
                 known_units: frozenset[int] | None = None) -> None:
        self.framing = framing
        self.backend_port = backend_port
        self.host = host
        self.port = port
        self.known_units = known_units
        self.stats = WireStats()
        self.fault = WireFault.NONE
        self.fault_units: frozenset[int] | None = None
        self.delay_s = 0.0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def set_fault(self, fault: WireFault, *, units: frozenset[int] | None = None, delay_s: float = 0.0) -> None:
        """Inject ``fault`` for ``units`` (None: every unit); WireFault.NONE clears it."""
        if fault is WireFault.CORRUPT_CRC and self.framing is not Framing.RTU:
            raise ValueError("CRC corruption needs RTU framing")
        self.fault, self.fault_units, self.delay_s = fault, units, delay_s

    async def start(self) -> None:
        """Listen (again) on the same port."""
        self._server = await asyncio.start_server(self._accept, self.host, self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and cut every relayed connection, like a cable pulled out."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await task

    def _hit(self, fault: WireFault, unit: int) -> bool:
        return self.fault is fault and (self.fault_units is None or unit in self.fault_units)

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            backend_reader, backend_writer = await asyncio.open_connection(self.host, self.backend_port)
        except OSError as exc:
            log.debug("proxy: backend :%d unreachable: %s", self.backend_port, exc)
            client_writer.close()
            return
        self._writers.update((client_writer, backend_writer))
        for coro in (self._pump(client_reader, backend_writer, client_writer, request=True),
                     self._pump(backend_reader, client_writer, backend_writer, request=False)):
            task = asyncio.create_task(coro)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    other: asyncio.StreamWriter, *, request: bool) -> None:
        buffer = b""
        try:
            while data := await reader.read(4096):
                buffer += data
                while buffer and (size := frame_size(buffer, self.framing, request)) is not None:
                    if len(buffer) > _MAX_FRAME and size > len(buffer):
                        size = len(buffer)
                    if len(buffer) < size:
                        break
                    frame, buffer = buffer[:size], buffer[size:]
                    if request:
                        self._relay_request(frame, writer)
                    else:
                        self._relay_response(frame, writer)
        except (ConnectionError, OSError):
            pass
        finally:
            for end in (writer, other):
                end.close()
                self._writers.discard(end)

    def _relay_request(self, frame: bytes, backend: asyncio.StreamWriter) -> None:
        self.stats.request_frames += 1
        self.stats.request_bytes += len(frame)
        unit = frame_unit(frame, self.framing)
        if (self.known_units is not None and unit not in self.known_units) or self._hit(WireFault.SILENT, unit):
            self.stats.dropped_requests += 1
            return
        backend.write(frame)

    def _relay_response(self, frame: bytes, client: asyncio.StreamWriter) -> None:
        unit = frame_unit(frame, self.framing)
        if self._hit(WireFault.CORRUPT_CRC, unit):
            frame = frame[:-1] + bytes([frame[-1] ^ 0xFF])
        if self._hit(WireFault.LATE, unit):
            asyncio.get_running_loop().call_later(self.delay_s, self._deliver, frame, client)
        else:
            self._deliver(frame, client)

    def _deliver(self, frame: bytes, client: asyncio.StreamWriter) -> None:
        if client.is_closing():
            return
        self.stats.response_frames += 1
        self.stats.response_bytes += len(frame)
        client.write(frame)
