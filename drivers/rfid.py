"""RDM6300 125 kHz RFID reader: a pure incremental frame parser and a serial ``TokenReader``.

Wire format (9600 8N1, the module only transmits): STX ``0x02``, 10 ASCII hex characters
(2 version + 8 tag), 2 ASCII hex characters of checksum (XOR of the five data bytes), ETX ``0x03``.
A token is the uppercase hex of the five data bytes, e.g. ``"0F00A1B2C3"`` (10 characters).
While a card stays in the field the module repeats its frame continuously, so repeats are
suppressed here and the controller sees one token per presentation.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping
from enum import StrEnum
from functools import reduce
from operator import xor
from types import MappingProxyType
from typing import Protocol, Self, cast

import serial

from drivers.bridge import LoopBridge
from drivers.interfaces import Fault, FaultKind
from drivers.redact import redact_token

log = logging.getLogger(__name__)

STX = 0x02
ETX = 0x03
DATA_CHARS = 10  # 2 version + 8 tag hex characters
BODY_LEN = DATA_CHARS + 2  # bytes between STX and ETX: data + checksum characters
_HEX = frozenset(b"0123456789ABCDEFabcdef")


class SkipReason(StrEnum):
    """Why received bytes did not become a token; each bad frame is counted once."""

    GARBAGE = "garbage"  # bytes outside any frame, one count per contiguous run
    TRUNCATED = "truncated"  # a new STX, an early ETX or a flush cut the frame short
    MISSING_ETX = "missing_etx"  # twelve body characters not followed by ETX
    NOT_HEX = "not_hex"  # a frame character that is not an ASCII hex digit
    BAD_CHECKSUM = "bad_checksum"  # checksum is not the XOR of the five data bytes


def encode_frame(token: str) -> bytes:
    """The RDM6300 frame for a 10-hex-character token (used by the simulator and tests)."""
    if len(token) != DATA_CHARS:
        raise ValueError(f"RDM6300 token must be {DATA_CHARS} hex characters, got {len(token)}")
    if not all(ord(c) in _HEX for c in token):
        raise ValueError("RDM6300 token must contain only hex digits 0-9 and A-F")
    checksum = reduce(xor, bytes.fromhex(token), 0)
    return bytes([STX]) + f"{token.upper()}{checksum:02X}".encode("ascii") + bytes([ETX])


class Rdm6300Parser:
    """Incremental RDM6300 framing: feed any byte chunks, get the valid tokens they complete.

    Pure (no I/O, no clock) and owned by one thread. Memory is bounded: at most one frame
    body (12 bytes) is ever held, whatever arrives; garbage is counted, never stored.
    """

    def __init__(self) -> None:
        self._body = bytearray()
        self._in_frame = False
        self._discarding = False  # inside a frame already judged bad: drop until STX/ETX
        self._in_garbage = False
        self._skips: dict[SkipReason, int] = dict.fromkeys(SkipReason, 0)

    @property
    def skips(self) -> Mapping[SkipReason, int]:
        """Skip counts by reason since construction (read-only view)."""
        return MappingProxyType(self._skips)

    @property
    def buffered(self) -> int:
        """Bytes of an unfinished frame currently held (never more than 12)."""
        return len(self._body)

    def feed(self, data: bytes | bytearray | memoryview) -> list[str]:
        """Consume a chunk; return the tokens of the frames it completes, in order."""
        tokens: list[str] = []
        for byte in bytes(data):
            token = self._step(byte)
            if token is not None:
                tokens.append(token)
        return tokens

    def flush(self) -> None:
        """Drop an unfinished frame (e.g. the port was lost), counting it as truncated."""
        if self._in_frame:
            self._skip(SkipReason.TRUNCATED)
        self._reset()

    def _step(self, byte: int) -> str | None:
        if byte == STX:
            if self._in_frame:
                self._skip(SkipReason.TRUNCATED)
            self._reset()
            self._in_frame = True
            return None
        if self._discarding:
            if byte == ETX:
                self._reset()
            return None
        if not self._in_frame:
            if not self._in_garbage:
                self._skip(SkipReason.GARBAGE)
                self._in_garbage = True
            return None
        if byte == ETX:
            return self._finish()
        if len(self._body) == BODY_LEN:
            self._abandon(SkipReason.MISSING_ETX)
        elif byte not in _HEX:
            self._abandon(SkipReason.NOT_HEX)
        else:
            self._body.append(byte)
        return None

    def _finish(self) -> str | None:
        body = self._body.decode("ascii")
        self._reset()
        if len(body) != BODY_LEN:
            self._skip(SkipReason.TRUNCATED)
            return None
        data = bytes.fromhex(body[:DATA_CHARS])
        if reduce(xor, data, 0) != int(body[DATA_CHARS:], 16):
            self._skip(SkipReason.BAD_CHECKSUM)
            return None
        return data.hex().upper()

    def _abandon(self, reason: SkipReason) -> None:
        self._skip(reason)
        self._reset()
        self._discarding = True

    def _reset(self) -> None:
        self._body.clear()
        self._in_frame = False
        self._discarding = False
        self._in_garbage = False

    def _skip(self, reason: SkipReason) -> None:
        self._skips[reason] += 1


class RepeatFilter:
    """Suppresses the same token while it keeps arriving less than ``interval_s`` apart.

    The window slides: a card held on the reader for a minute is one presentation; lifting it
    for at least ``interval_s`` and presenting it again is a new one. ``interval_s=0`` admits all.
    """

    def __init__(self, interval_s: float) -> None:
        if interval_s < 0:
            raise ValueError(f"repeat suppression interval must be >= 0 s, got {interval_s}")
        self.interval_s = interval_s
        self.suppressed = 0
        self._last: str | None = None
        self._last_seen = 0.0

    def admit(self, token: str, now: float) -> bool:
        """True if ``token`` seen at ``now`` (monotonic s) is a new presentation."""
        repeat = token == self._last and now - self._last_seen < self.interval_s
        self._last, self._last_seen = token, now
        if repeat:
            self.suppressed += 1
        return not repeat


class _Port(Protocol):
    """The part of a pyserial port the reader thread uses."""

    @property
    def in_waiting(self) -> int: ...

    def read(self, size: int = 1) -> bytes: ...

    def close(self) -> None: ...


class SerialTokenReader:
    """``TokenReader`` for an RDM6300 on a serial port (``/dev/charger-rfid`` or any pyserial URL).

    A daemon thread reads and parses; tokens, fault changes and skip counts enter the loop
    only through ``bridge.post``. A lost or missing port is ``TOKEN_READER_DISCONNECTED``;
    the thread reopens with capped exponential backoff and clears the fault by itself.
    Construct and subscribe in the loop thread; the thread starts at construction.
    """

    def __init__(
        self,
        port_url: str,
        bridge: LoopBridge,
        *,
        baudrate: int = 9600,
        repeat_suppress_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        reconnect_min_s: float = 0.2,
        reconnect_max_s: float = 5.0,
        read_timeout_s: float = 0.1,
    ) -> None:
        if not port_url:
            raise ValueError("RFID reader port_url must not be empty")
        if baudrate <= 0:
            raise ValueError(f"RFID reader baudrate must be > 0, got {baudrate}")
        if not 0 < reconnect_min_s <= reconnect_max_s:
            raise ValueError(f"RFID reconnect backoff needs 0 < min <= max, got {reconnect_min_s}..{reconnect_max_s} s")
        if read_timeout_s <= 0:
            raise ValueError(f"RFID read timeout must be > 0 s, got {read_timeout_s}")
        self.port_url = port_url
        self._bridge = bridge
        self._baudrate = baudrate
        self._clock = clock
        self._backoff_min_s = reconnect_min_s
        self._backoff_max_s = reconnect_max_s
        self._read_timeout_s = read_timeout_s
        # loop-thread state
        self._subscribers: list[Callable[[str], None]] = []
        self._fault_subscribers: list[Callable[[Fault | None], None]] = []
        self._fault: Fault | None = None
        self._connected = False
        self._skips: dict[SkipReason, int] = dict.fromkeys(SkipReason, 0)
        self._closed = False
        # reader-thread state (handed over before start, then touched only by the thread)
        self._parser = Rdm6300Parser()
        self._repeats = RepeatFilter(repeat_suppress_s)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"rfid-reader {port_url}", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ loop-thread API

    def subscribe(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(token)`` in the loop thread for each new presentation."""
        self._subscribers.append(callback)

    def subscribe_fault(self, callback: Callable[[Fault | None], None]) -> None:
        """Call ``callback`` in the loop thread with the fault on loss, ``None`` on (re)connect."""
        self._fault_subscribers.append(callback)

    def fault(self) -> Fault | None:
        """The active ``TOKEN_READER_DISCONNECTED`` fault, or None while the port is open."""
        return self._fault

    @property
    def connected(self) -> bool:
        """True while the port is open and being read."""
        return self._connected

    def skip_counts(self) -> dict[SkipReason, int]:
        """Skipped frames by reason, as last reported by the reader thread."""
        return dict(self._skips)

    async def aclose(self) -> None:
        """Stop the reader thread and close the port; later calls return at once."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        join_timeout_s = self._read_timeout_s + 2.0
        await asyncio.to_thread(self._thread.join, join_timeout_s)
        if self._thread.is_alive():
            log.warning("RFID reader thread for %s did not stop within %.1f s", self.port_url, join_timeout_s)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _deliver(self, token: str) -> None:
        if self._closed:
            return
        log.info("RFID token presented: %s", redact_token(token))
        for callback in list(self._subscribers):
            try:
                callback(token)
            except Exception:
                log.exception("RFID token subscriber %r failed", callback)

    def _set_fault(self, fault: Fault | None) -> None:
        self._fault = fault
        self._connected = fault is None
        if self._closed:
            return
        for callback in list(self._fault_subscribers):
            try:
                callback(fault)
            except Exception:
                log.exception("RFID fault subscriber %r failed", callback)

    def _set_skips(self, skips: dict[SkipReason, int]) -> None:
        self._skips = skips

    # ------------------------------------------------------------ reader thread

    def _run(self) -> None:
        """Open and read; on loss report once per outage, close, retry with capped backoff."""
        backoff_s = self._backoff_min_s
        outage_since: float | None = None
        ever_opened = False
        while not self._stop.is_set():
            try:
                port = self._open()
            except Exception as exc:
                outage_since = self._report_loss(exc, outage_since, ever_opened)
            else:
                opened_at = self._clock()
                self._report_open(outage_since)
                outage_since, ever_opened = None, True
                try:
                    self._pump(port)
                except Exception as exc:
                    outage_since = self._report_loss(exc, None, ever_opened)
                    self._parser.flush()
                    if self._clock() - opened_at >= self._backoff_max_s:
                        backoff_s = self._backoff_min_s  # a healthy session restarts the backoff
                finally:
                    _close_quietly(port)
                if outage_since is None:
                    return  # stopped while reading
            self._stop.wait(backoff_s)
            backoff_s = min(2 * backoff_s, self._backoff_max_s)

    def _open(self) -> _Port:
        return cast(
            _Port,
            serial.serial_for_url(
                self.port_url,
                baudrate=self._baudrate,
                bytesize=8,
                parity="N",
                stopbits=1,
                timeout=self._read_timeout_s,
            ),
        )

    def _pump(self, port: _Port) -> None:
        """Read until stopped; raises when the port goes away."""
        while not self._stop.is_set():
            data = port.read(max(1, port.in_waiting))
            if not data:
                continue
            before = dict(self._parser.skips)
            tokens = self._parser.feed(data)
            after = dict(self._parser.skips)
            if after != before:  # posted first: by the time a token arrives, earlier skips are counted
                log.debug(
                    "RFID frames skipped on %s: %s",
                    self.port_url,
                    {r.value: after[r] - before[r] for r in SkipReason if after[r] != before[r]},
                )
                self._bridge.post(self._set_skips, after)
            for token in tokens:
                if self._repeats.admit(token, self._clock()):
                    self._bridge.post(self._deliver, token)

    def _report_loss(self, exc: Exception, outage_since: float | None, ever_opened: bool) -> float:
        """Log and post the fault once per outage; return when the outage began."""
        if outage_since is not None:
            log.debug("RFID reader %s still unavailable: %s", self.port_url, exc)
            return outage_since
        since = self._clock()
        what = "disconnected" if ever_opened else "not available"
        if isinstance(exc, (OSError, ValueError)):
            log.warning(
                "RFID reader %s %s: %s; fault %s raised, reopening with backoff up to %.1f s",
                self.port_url,
                what,
                exc,
                FaultKind.TOKEN_READER_DISCONNECTED.value,
                self._backoff_max_s,
            )
        else:
            log.exception("RFID reader %s failed unexpectedly; treating it as disconnected", self.port_url)
        detail = f"RFID reader {self.port_url} {what}: {exc}"
        self._bridge.post(self._set_fault, Fault(FaultKind.TOKEN_READER_DISCONNECTED, since, detail))
        return since

    def _report_open(self, outage_since: float | None) -> None:
        if outage_since is None:
            log.info("RFID reader %s opened at %d baud", self.port_url, self._baudrate)
        else:
            log.info(
                "RFID reader %s reconnected after %.1f s; fault cleared", self.port_url, self._clock() - outage_since
            )
        self._bridge.post(self._set_fault, None)


def _close_quietly(port: _Port) -> None:
    try:
        port.close()
    except Exception as exc:  # a vanished device may fail to close; nothing left to do
        log.debug("closing RFID port failed: %s", exc)
