"""The harness's CSMS: a small OCPP 2.0.1 or 1.6J central system the DUT connects to (the ``ocpp`` theme,
benchmarks/ocpp.py).

A ``websockets`` server on the bench profile's ``[ocpp] listen`` address, serving ``<path>/<station id>`` with the
subprotocol of its version (``ocpp2.0.1`` or ``ocpp1.6``: the version the DUT is configured for, the profile's
``[ocpp] version``), one station at a time (a newer connection replaces the older one). Frames are read and
written with the ``ocpp`` library's OCPP-J message classes (``ocpp.messages``). Every CALL the station sends is
answered at once with a fixed answer (BootNotification Accepted, Authorize Accepted, ... see hil.csms_answers) and
recorded with its arrival time (``time.monotonic()``) and the answer it got, so checks judge when the DUT said
something, not when a scenario looked. When ``validate`` is on, each CALL is then checked against the library's
JSON schema for it and a mismatch is kept in ``problems`` (after the answer has gone out, so checking never delays
an answer). ``statuses`` keeps each connector's last StatusNotification by (EVSE, connector); in 1.6, whose
StatusNotification names a connectorId, ``connectors`` (connectorId -> (EVSE, connector)) translates.

``stop()`` is a CSMS outage: the server stops listening and the live connection is dropped without a closing
handshake (as a crashed CSMS or a lost network); ``start()`` listens again on the same port. HTTP Basic auth
(security profile 1) is accepted whatever the password: the bench tests the charger, not its credentials. No TLS.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import itertools
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from ocpp.messages import Call, CallError, CallResult, get_validator, unpack
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from hil.csms_answers import ANSWERS, Answer, answers_for, ocpp_time

__all__ = ["ANSWERS", "SUBPROTOCOLS", "Answer", "Answered", "CsmsCallError", "HarnessCsms", "Received", "ocpp_time"]

log = logging.getLogger(__name__)

SUBPROTOCOLS = {"2.0.1": "ocpp2.0.1", "1.6": "ocpp1.6"}
SUBPROTOCOL = SUBPROTOCOLS["2.0.1"]
VERSION = "2.0.1"
CALL_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class Received:
    """A CALL the station sent: when it arrived (monotonic s), on which connection, what it said."""

    at: float
    connection: int
    unique_id: str
    action: str
    payload: dict[str, Any]
    answer: dict[str, Any] = field(default_factory=dict)  # what the CSMS answered (a 1.6 transactionId...)


@dataclass
class Answered:
    """A CALL the CSMS sent and the station's answer: ``payload`` of the CALLRESULT, or ``error`` (code)."""

    action: str
    request: dict[str, Any]
    sent_at: float
    answered_at: float = 0.0
    payload: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    description: str = ""


class CsmsCallError(RuntimeError):
    """The station answered the CSMS's CALL with a CALLERROR, or not at all."""


class HarnessCsms:
    """The CSMS side of the bench: listens, answers, records; ``call`` sends the CSMS's own CALLs."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, path: str = "/ocpp", *, validate: bool = True,
                 url_host: str | None = None, version: str = VERSION,
                 connectors: dict[int, tuple[int, int]] | None = None) -> None:
        """Listen on ``host:port`` (0: a free port, kept across ``stop``/``start``); ``url_host`` is the host in
        ``url`` (default ``host``, or 127.0.0.1 for a wildcard address). ``version``: "2.0.1" or "1.6";
        ``connectors``: 1.6 connectorId -> (EVSE, connector), for ``statuses``."""
        if version not in SUBPROTOCOLS:
            raise ValueError(f"OCPP version must be one of {', '.join(SUBPROTOCOLS)}, got {version!r}")
        self.host = host
        self.port = port
        self.path = "/" + path.strip("/")
        self.validate = validate
        self.version = version
        self.subprotocol = SUBPROTOCOLS[version]
        self.connectors = dict(connectors or {})
        self.url_host = url_host or ("127.0.0.1" if host in ("0.0.0.0", "::", "") else host)
        self.answers: dict[str, Answer] = answers_for(version)
        self.received: list[Received] = []
        self.calls: list[Answered] = []
        self.problems: list[str] = []  # one per CALL that breaks its schema, or frame that is not OCPP-J
        self.statuses: dict[tuple[int, int], str] = {}  # (EVSE, connector) -> last StatusNotification status
        self.station_id: str | None = None
        self.connections = 0  # accepted connections so far
        self.connected_at: list[float] = []  # when each was accepted (monotonic s)
        self.connected = asyncio.Event()
        self.on_message: Callable[[Received], None] | None = None
        self._server: Server | None = None
        self._ws: ServerConnection | None = None
        self._serial = 0
        self._pending: dict[str, tuple[Answered, asyncio.Future[Answered]]] = {}
        self._ids = itertools.count(1)

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> HarnessCsms:
        """Listen (again, on the same port after ``stop``)."""
        if self._server is None:
            self._server = await serve(self._serve, self.host, self.port,
                                       subprotocols=[self.subprotocol],  # type: ignore[list-item]
                                       process_request=self._check_path, ping_interval=None, close_timeout=1)
            self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def stop(self) -> None:
        """An outage: stop listening and drop the live connection (no closing handshake)."""
        server, self._server = self._server, None
        if server is None:
            return
        ws = self._ws
        if ws is not None:
            ws.transport.abort()
        server.close(close_connections=False)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 5.0)
        self._lost()

    @property
    def listening(self) -> bool:
        """True between ``start`` and ``stop``."""
        return self._server is not None

    @property
    def url(self) -> str:
        """What a station is given as its CSMS URL (its id is appended as the last path segment)."""
        return f"ws://{self.url_host}:{self.port}{self.path}"

    def forget(self) -> None:
        """Drop the records (messages, calls, problems); the connectors' last statuses are kept."""
        self.received.clear()
        self.calls.clear()
        self.problems.clear()

    # ------------------------------------------------------------ the CSMS's own CALLs

    async def call(self, action: str, payload: dict[str, Any], timeout: float = CALL_TIMEOUT_S) -> Answered:
        """Send a CALL to the connected station and wait for its answer (CsmsCallError on a CALLERROR or none)."""
        ws = self._ws
        if ws is None:
            raise CsmsCallError(f"{action}: no station is connected")
        unique_id = f"csms-{next(self._ids)}-{uuid.uuid4().hex[:8]}"
        record = Answered(action, payload, time.monotonic())
        future: asyncio.Future[Answered] = asyncio.get_running_loop().create_future()
        self._pending[unique_id] = (record, future)
        self.calls.append(record)
        try:
            record.sent_at = time.monotonic()
            await ws.send(Call(unique_id, action, payload).to_json())
            async with asyncio.timeout(timeout):
                await future
        except (TimeoutError, ConnectionClosed) as exc:
            raise CsmsCallError(f"{action}: no answer from the station ({type(exc).__name__})") from None
        finally:
            self._pending.pop(unique_id, None)
        if record.error is not None:
            raise CsmsCallError(f"{action}: CALLERROR {record.error}: {record.description}")
        return record

    # ------------------------------------------------------------ reading

    def messages(self, action: str | None = None, since: float = -1.0) -> list[Received]:
        """The recorded CALLs (of one action), arrived at or after monotonic time ``since``."""
        return [m for m in self.received if (action is None or m.action == action) and m.at >= since]

    # ------------------------------------------------------------ the connection

    def _check_path(self, connection: ServerConnection, request: Any) -> Any:
        """Refuse (404) a path that is not ``<path>/<station id>``."""
        rest = urlsplit(request.path).path.removeprefix(self.path + "/")
        if rest == urlsplit(request.path).path or not rest or "/" in rest:
            return connection.respond(http.HTTPStatus.NOT_FOUND, f"expected {self.path}/<station id>\n")
        return None

    async def _serve(self, ws: ServerConnection) -> None:
        """One station connection: read, record and answer until it closes."""
        if ws.subprotocol != self.subprotocol:
            await ws.close(1002, f"{self.subprotocol} only")
            return
        old = self._ws
        if old is not None:
            old.transport.abort()
        self._serial += 1
        serial = self._serial
        self._ws = ws
        self.connections += 1
        self.connected_at.append(time.monotonic())
        self.station_id = unquote(urlsplit(ws.request.path if ws.request else "").path.rsplit("/", 1)[-1])
        self.connected.set()
        log.info("CSMS: station %s connected (connection %d)", self.station_id, serial)
        try:
            async for frame in ws:
                await self._frame(ws, serial, frame)
        except ConnectionClosed:
            pass
        finally:
            if self._ws is ws:
                self._lost()
            log.info("CSMS: connection %d of station %s closed", serial, self.station_id)

    def _lost(self) -> None:
        """The live connection is gone: pending CALLs fail."""
        self._ws = None
        self.connected.clear()
        for record, future in self._pending.values():
            if not future.done():
                record.error, record.description = "ConnectionLost", "the connection closed before the answer"
                future.set_result(record)

    async def _frame(self, ws: ServerConnection, serial: int, frame: str | bytes) -> None:
        """Record and answer a CALL; settle the CSMS CALL an answer belongs to."""
        at = time.monotonic()
        try:
            message = unpack(frame.decode() if isinstance(frame, bytes) else frame)
        except Exception as exc:
            self.problems.append(f"not an OCPP-J message ({exc!r}): {frame!r:.300}")
            return
        if isinstance(message, Call):
            await self._answer(ws, serial, at, message)
            return
        pending = self._pending.get(message.unique_id)
        if pending is None:
            self.problems.append(f"an answer to no CALL of the CSMS: {frame!r:.300}")
            return
        record, future = pending
        record.answered_at = at
        if isinstance(message, CallResult):
            record.payload = message.payload
        elif isinstance(message, CallError):
            record.error, record.description = str(message.error_code), str(message.error_description)
        if not future.done():
            future.set_result(record)

    async def _answer(self, ws: ServerConnection, serial: int, at: float, message: Call) -> None:
        """Answer a station's CALL at once, then record it (and check it against its schema)."""
        action, payload = str(message.action), message.payload
        answer = self.answers.get(action)
        given: dict[str, Any] = {}
        if answer is None:
            reply = CallError(message.unique_id, "NotImplemented", f"the bench's CSMS does not handle {action}", {})
        else:
            given = answer(payload)
            reply = CallResult(message.unique_id, given, action)
        with contextlib.suppress(ConnectionClosed):
            await ws.send(reply.to_json())
        received = Received(at, serial, str(message.unique_id), action, payload if isinstance(payload, dict) else {},
                            given)
        self.received.append(received)
        if action == "StatusNotification":
            self._status(payload)
        if self.validate:
            self._check(received)
        if self.on_message is not None:
            self.on_message(received)

    def _status(self, payload: Any) -> None:
        """Keep a connector's status: 2.0.1 names the EVSE and connector, 1.6 a connectorId (0: the station)."""
        with contextlib.suppress(KeyError, TypeError, ValueError, AttributeError):
            if self.version == "1.6":
                where = self.connectors.get(int(payload["connectorId"]))
                if where is not None:
                    self.statuses[where] = str(payload["status"])
                return
            self.statuses[(int(payload["evseId"]), int(payload["connectorId"]))] = str(payload["connectorStatus"])

    def _check(self, received: Received) -> None:
        """Keep a schema mismatch of the station's CALL as a problem."""
        try:
            validator = get_validator(2, received.action, self.version)
        except Exception:
            self.problems.append(f"{received.action}: not an OCPP {self.version} action")
            return
        errors = sorted(validator.iter_errors(received.payload), key=lambda e: list(map(str, e.absolute_path)))
        if errors:
            said = "; ".join(f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in errors)
            self.problems.append(f"{received.action}: {said} — {json.dumps(received.payload)[:300]}")
