"""The one adapter over pymodbus: a ModbusBus per physical bus returns plain registers or a Fault.

pymodbus reports trouble two ways (exceptions and ``isError()`` responses) and renamed its keywords
across minor releases; nothing outside this module imports its client. One client and one asyncio
lock per bus serialise the requests of every meter on it, with a quiet gap between them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from types import TracebackType

from pymodbus import FramerType, ModbusException
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusIOException
from serial.urlhandler import protocol_socket

from drivers.interfaces import Fault, FaultKind
from drivers.meter_map import MeterMap

log = logging.getLogger(__name__)

_EXCEPTION_NAMES = {1: "illegal function", 2: "illegal data address", 3: "illegal data value",
                    4: "device failure", 5: "acknowledge", 6: "device busy",
                    10: "gateway path unavailable", 11: "gateway target failed to respond"}
_RETRIED = (FaultKind.METER_NO_RESPONSE, FaultKind.METER_BAD_DATA)


def rtu_frame_ok(frame: bytes) -> bool:
    """Whether ``frame`` ends with the Modbus CRC16 of the bytes before it."""
    if len(frame) < 4:
        return False
    crc = 0xFFFF
    for byte in frame[:-2]:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return frame[-2:] == crc.to_bytes(2, "little")


class BusConfigError(ValueError):
    """A bus configuration value is invalid (names the bus and the field)."""


class Transport(StrEnum):
    """How the bus reaches the meters."""

    RTU = "rtu"  # serial port or pyserial URL (/dev/..., socket://host:port, rfc2217://...)
    TCP = "tcp"  # Modbus TCP (MBAP header, transaction ids)
    RTU_OVER_TCP = "rtu_over_tcp"  # transparent RS-485 gateway: RTU frames inside a TCP stream


@dataclass(frozen=True, slots=True)
class SerialSettings:
    """Line settings of an RS-485 bus; every meter on the bus must use the same."""

    baudrate: int = 9600
    bytesize: int = 8
    parity: str = "N"
    stopbits: int = 1

    @classmethod
    def from_map(cls, meter_map: MeterMap) -> SerialSettings:
        """The factory-default line settings of a meter model."""
        return cls(meter_map.baudrate, meter_map.bytesize, meter_map.parity, meter_map.stopbits)


@dataclass(frozen=True, slots=True)
class BusTiming:
    """Per-request timeout and retries, quiet gap between requests, reconnect backoff (all seconds)."""

    timeout_s: float = 0.5
    retries: int = 1
    quiet_s: float = 0.05
    reconnect_min_s: float = 0.1
    reconnect_max_s: float = 5.0


@dataclass(frozen=True, slots=True)
class BusConfig:
    """One physical bus: transport, where it is, line settings and timing."""

    name: str
    transport: Transport
    target: str  # serial device / pyserial URL, or the TCP host
    port: int = 502  # TCP port (TCP transports only)
    serial: SerialSettings = field(default_factory=SerialSettings)
    timing: BusTiming = field(default_factory=BusTiming)

    def __post_init__(self) -> None:
        problems = {
            "target": not self.target,
            "port": not 0 < self.port < 65536,
            "serial.parity": self.serial.parity not in ("N", "E", "O"),
            "serial.bytesize": self.serial.bytesize not in (7, 8),
            "serial.stopbits": self.serial.stopbits not in (1, 2),
            "serial.baudrate": self.serial.baudrate <= 0,
            "timing.timeout_s": not self.timing.timeout_s > 0,
            "timing.retries": self.timing.retries < 0,
            "timing.quiet_s": self.timing.quiet_s < 0,
            "timing.reconnect_min_s": not 0 < self.timing.reconnect_min_s <= self.timing.reconnect_max_s,
        }
        for key, bad in problems.items():
            if bad:
                raise BusConfigError(f"bus {self.name!r}: invalid {key} in {self!r}")

    @classmethod
    def from_url(cls, name: str, url: str, *, serial: SerialSettings | None = None,
                 timing: BusTiming | None = None) -> BusConfig:
        """``tcp://host[:502]`` Modbus TCP, ``rtu-tcp://host:port`` RTU over TCP, else a serial port/URL."""
        for scheme, transport in (("tcp://", Transport.TCP), ("rtu-tcp://", Transport.RTU_OVER_TCP)):
            if url.startswith(scheme):
                host, _, port_text = url[len(scheme):].rpartition(":")
                if not host:
                    host, port_text = port_text, "502"
                if not port_text.isdigit():
                    raise BusConfigError(f"bus {name!r}: bad port in {url!r}")
                return cls(name, transport, host, int(port_text), serial or SerialSettings(),
                           timing or BusTiming())
        return cls(name, Transport.RTU, url, serial=serial or SerialSettings(), timing=timing or BusTiming())


@dataclass(slots=True)
class BusStats:
    """Counters since the bus was made: requests sent on the wire, their outcomes, request bytes."""

    requests: int = 0
    responses: int = 0
    faults: int = 0
    tx_bytes: int = 0


class ModbusBus:
    """One pymodbus client for one physical bus; ``read_registers`` never raises for bus trouble."""

    def __init__(self, config: BusConfig, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.stats = BusStats()
        self._clock = clock
        self._lock = asyncio.Lock()
        self._client: AsyncModbusSerialClient | AsyncModbusTcpClient | None = None
        self._closed = False
        self._rx_buffer = b""
        self._quiet_until = 0.0
        self._backoff_s = 0.0
        self._next_connect_at = 0.0
        self._reported: dict[int, FaultKind | None] = {}

    @property
    def name(self) -> str:
        """The bus name used in log lines and fault details."""
        return self.config.name

    @property
    def connected(self) -> bool:
        """Whether the client currently holds an open port or socket."""
        return self._client is not None and self._client.connected

    async def read_registers(self, unit_id: int, function_code: int, address: int,
                             count: int) -> list[int] | Fault:
        """Read ``count`` registers with FC3 (holding) or FC4 (input); registers or a Fault value."""
        if function_code not in (3, 4) or not 1 <= count <= 125 or not 0 <= address <= 0x10000 - count:
            raise ValueError(f"bad read FC{function_code} @{address} x{count} on bus {self.name!r}")
        if not 0 <= unit_id <= 247:
            raise ValueError(f"bad unit id {unit_id} on bus {self.name!r}")
        async with self._lock:
            if self._closed:
                raise RuntimeError(f"bus {self.name!r} is closed")
            result: list[int] | Fault | None = self._connect_fault() or await self._connect()
            if result is None:
                for _attempt in range(self.config.timing.retries + 1):
                    result = await self._attempt(unit_id, function_code, address, count)
                    if not isinstance(result, Fault) or result.kind not in _RETRIED:
                        break
            assert result is not None
            self._report(unit_id, function_code, address, count, result)
            return result

    async def aclose(self) -> None:
        """Close the port or socket; idempotent. Reads after this are a programming error."""
        async with self._lock:
            self._closed = True
            if self._client is not None:
                close_client(self._client)
                self._client = None

    async def __aenter__(self) -> ModbusBus:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    # ------------------------------------------------------------ connection

    def _make_client(self) -> AsyncModbusSerialClient | AsyncModbusTcpClient:
        cfg, timing = self.config, self.config.timing
        try:
            if cfg.transport is Transport.RTU:
                line = cfg.serial
                return AsyncModbusSerialClient(
                    cfg.target, framer=FramerType.RTU, baudrate=line.baudrate, bytesize=line.bytesize,
                    parity=line.parity, stopbits=line.stopbits, timeout=timing.timeout_s, retries=0,
                    reconnect_delay=0.0, reconnect_delay_max=0.0, name=cfg.name,
                    trace_packet=self._trace_packet)
            return AsyncModbusTcpClient(
                cfg.target, port=cfg.port,
                framer=FramerType.SOCKET if cfg.transport is Transport.TCP else FramerType.RTU,
                timeout=timing.timeout_s, retries=0, reconnect_delay=0.0, reconnect_delay_max=0.0,
                name=cfg.name, trace_packet=self._trace_packet)
        except (TypeError, ValueError, ModbusException) as exc:
            raise BusConfigError(f"bus {cfg.name!r}: pymodbus rejected {cfg!r}: {exc}") from exc

    def _connect_fault(self) -> Fault | None:
        """A DISCONNECTED fault while waiting out the reconnect backoff, without touching the wire."""
        if self.connected:
            return None
        now = self._clock()
        if now < self._next_connect_at:
            return Fault(FaultKind.METER_DISCONNECTED, now,
                         f"{self._where()} not connected; next attempt in {self._next_connect_at - now:.1f} s")
        return None

    async def _connect(self) -> Fault | None:
        if self.connected:
            return None
        if self._client is None:
            self._client = self._make_client()
            # pymodbus drops a TCP link after retries+3 unanswered requests; one dead meter behind a
            # gateway must not cut off the others, so only real connection errors close it here.
            self._client.set_max_no_responses(2**31)
        try:
            ok = await self._client.connect()
        except (OSError, ModbusException) as exc:  # pyserial's SerialException is an OSError
            log.debug("bus %s: connect raised %r", self.name, exc)
            ok = False
        if ok:
            tune_socket_port(self._client)
            if self._backoff_s:
                log.info("bus %s: connected to %s", self.name, self._where())
            self._backoff_s = 0.0
            return None
        timing = self.config.timing
        self._backoff_s = min(max(2 * self._backoff_s, timing.reconnect_min_s), timing.reconnect_max_s)
        now = self._clock()
        self._next_connect_at = now + self._backoff_s
        return Fault(FaultKind.METER_DISCONNECTED, now,
                     f"cannot open {self._where()}; retry in {self._backoff_s:.1f} s")

    def _where(self) -> str:
        cfg = self.config
        return cfg.target if cfg.transport is Transport.RTU else f"{cfg.transport} {cfg.target}:{cfg.port}"

    # ------------------------------------------------------------ one request

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        """pymodbus hook: count request bytes; keep the receive buffer to tell garbage from silence."""
        if sending:
            self.stats.tx_bytes += len(data)
        else:
            self._rx_buffer = data
        return data

    def _timeout_fault(self) -> Fault:
        """A timed-out attempt: garbled RTU bytes are bad data; silence or a stale reply is no response."""
        garbled = self.config.transport is not Transport.TCP and self._rx_buffer and \
            not rtu_frame_ok(self._rx_buffer)
        if garbled:
            return Fault(FaultKind.METER_BAD_DATA, self._clock(),
                         f"garbled reply {self._rx_buffer[:8].hex(' ')}.. (CRC or framing error; "
                         "check wiring, A/B polarity and termination)")
        return Fault(FaultKind.METER_NO_RESPONSE, self._clock(),
                     f"no reply within {self.config.timing.timeout_s} s")

    async def _attempt(self, unit_id: int, fc: int, address: int, count: int) -> list[int] | Fault:
        client = self._client
        if client is None or not client.connected:
            return Fault(FaultKind.METER_DISCONNECTED, self._clock(), f"{self._where()} connection lost")
        delay = self._quiet_until - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        self._rx_buffer = b""
        self.stats.requests += 1
        timing = self.config.timing
        quiet = timing.quiet_s
        try:
            read = client.read_holding_registers if fc == 3 else client.read_input_registers
            response = await read(address, count=count, device_id=unit_id)
        except ModbusIOException:
            # Stay quiet one more timeout: a reply that late arrives with no request pending and is
            # dropped, instead of being taken for the answer to the next request (RTU has no ids).
            quiet = max(quiet, timing.timeout_s)
            return self._timeout_fault()
        except asyncio.CancelledError:
            quiet = max(quiet, timing.timeout_s)  # the reply to a cancelled request may still come
            raise
        except (ConnectionException, OSError) as exc:
            close_client(client)
            return Fault(FaultKind.METER_DISCONNECTED, self._clock(), f"{self._where()}: {exc}")
        except ModbusException as exc:
            return Fault(FaultKind.METER_BAD_DATA, self._clock(), f"undecodable reply: {exc}")
        finally:
            self._quiet_until = time.monotonic() + quiet
        if response.isError():
            code = response.exception_code
            return Fault(FaultKind.METER_EXCEPTION_RESPONSE, self._clock(),
                         f"exception code {code} ({_EXCEPTION_NAMES.get(code, 'unknown')})")
        self.stats.responses += 1
        registers = list(response.registers)
        if response.function_code != fc or len(registers) != count:
            self._quiet_until = time.monotonic() + max(timing.quiet_s, timing.timeout_s)  # ours may follow
            return Fault(FaultKind.METER_BAD_DATA, self._clock(),
                         f"reply FC{response.function_code} with {len(registers)} registers")
        return registers

    def _report(self, unit_id: int, fc: int, address: int, count: int, result: list[int] | Fault) -> None:
        """One log line when a unit's state changes (fault kind or recovery), debug lines otherwise."""
        kind = result.kind if isinstance(result, Fault) else None
        previous = self._reported.get(unit_id)
        self._reported[unit_id] = kind
        if isinstance(result, Fault):
            self.stats.faults += 1
            level = logging.WARNING if kind != previous else logging.DEBUG
            log.log(level, "bus %s unit %d FC%d @0x%04X x%d: %s: %s", self.name, unit_id, fc, address,
                    count, result.kind, result.detail)
        elif previous is not None:
            log.info("bus %s unit %d FC%d @0x%04X x%d: answering again", self.name, unit_id, fc, address,
                     count)


def tune_socket_port(client: AsyncModbusSerialClient | AsyncModbusTcpClient) -> None:
    """Fit a pyserial ``socket://`` port (serial over TCP: a gateway, the simulated meter) for the loop.

    - TCP_NODELAY: RTU requests are a few bytes; with Nagle's algorithm the request after an unanswered
      one waits for the gateway's delayed ACK (40 ms and more), or longer than the timeout.
    - Its ``close()`` sleeps 0.3 s in the caller (time for a quick reconnect). pymodbus closes the port in
      the loop (our close, its own on a lost connection), which would stall every driver of the controller
      on each reconnect; the close here shuts the socket without the pause.
    Other ports are left alone (asyncio's own TCP transports already set TCP_NODELAY).
    """
    port = getattr(getattr(client.ctx, "transport", None), "sync_serial", None)
    if not isinstance(port, protocol_socket.Serial):
        return
    sock = port._socket
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close_without_pause() -> None:
        sock, port._socket = port._socket, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        port.is_open = False

    port.close = close_without_pause


def close_client(client: AsyncModbusSerialClient | AsyncModbusTcpClient) -> None:
    """Close a pymodbus client (see ``tune_socket_port``)."""
    tune_socket_port(client)
    client.close()
