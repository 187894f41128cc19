"""A CSMS for the tests: the OCPP 2.0.1 / 1.6J server side that drives ``charger-controller run --sim`` as a station.

``Csms`` is a websockets server on 127.0.0.1 serving ``<path>/<station id>`` (OCPP-J style) for the subprotocols
``ocpp2.0.1`` and ``ocpp1.6``. Each connected station gets a CSMS-side ``ocpp`` ChargePoint (``CsmsChargePoint201`` or
``CsmsChargePoint16``) whose default handlers answer every message a station may send. Everything is recorded: every
raw frame in both directions with its time, every CALL the station sent (``Message``), and every schema failure.

Strictness, like a real strict CSMS: every CALL from the station is validated against the OCA JSON schema of its
action shipped in the ``ocpp`` package (``ocpp/v201/schemas/<Action>Request.json``, ``ocpp/v16/schemas/<Action>.json``)
with date-time format checking on (a timestamp without a UTC offset fails), and an invalid CALL is answered with a
CALLERROR ``FormatViolation`` instead of reaching a handler. The station's CALLRESULTs to the CSMS's own CALLs are
validated against ``<Action>Response.json``. Failures are kept in ``schema_failures``; ``assert_valid()`` fails with
the message and the offending frame (the ``csms_201``/``csms_16`` fixtures call it at teardown).

Test modules in tests/ocpp import this module relatively (``from .csms import Csms``): ``tests/ocpp`` has no
``__init__.py`` and must never get one, or it would shadow the ``ocpp`` library.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import dataclasses
import decimal
import http
import inspect
import itertools
import json
import re
import shutil
import ssl
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote, unquote, urlsplit

import jsonschema
import ocpp
from ocpp.charge_point import remove_nones, serialize_as_dict, snake_to_camel_case
from ocpp.exceptions import OCPPError
from ocpp.routing import on
from ocpp.v16 import ChargePoint as LibraryChargePoint16
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint as LibraryChargePoint201
from ocpp.v201 import call_result as result201
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed, NegotiationError
from websockets.http11 import Request, Response

VERSIONS = ("2.0.1", "1.6")
SUBPROTOCOL = {"2.0.1": "ocpp2.0.1", "1.6": "ocpp1.6"}
VERSION_OF = {subprotocol: version for version, subprotocol in SUBPROTOCOL.items()}
_SCHEMA_DIRS = {"2.0.1": "v201", "1.6": "v16"}
_ACTION_NAME = re.compile(r"[A-Za-z0-9]{1,64}")
DEFAULT_TIMEOUT = 10.0

CallOutcome = tuple[str, dict[str, Any]] | tuple[str, str, str]
Handler = Callable[[dict[str, Any]], dict[str, Any] | Awaitable[dict[str, Any]]]


# ---------------------------------------------------------------------------------------------------------------------
# Schema validation


def utc_now_iso(offset_s: float = 0.0) -> str:
    """The current UTC time (plus ``offset_s``) as an OCPP date-time with a ``Z`` offset and milliseconds."""
    moment = datetime.now(UTC) + timedelta(seconds=offset_s)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def schema_path(version: str, action: str, *, response: bool = False) -> Path:
    """The OCA JSON schema file the ``ocpp`` package ships for ``action``'s request (or response) in ``version``."""
    if version not in _SCHEMA_DIRS:
        raise ValueError(f"unknown OCPP version {version!r}: expected one of {VERSIONS}")
    name = f"{action}Response" if response else f"{action}Request" if version == "2.0.1" else action
    return Path(ocpp.__file__).parent / _SCHEMA_DIRS[version] / "schemas" / f"{name}.json"


@cache
def _validator(version: str, action: str, response: bool) -> Any:
    """A cached jsonschema validator for the schema, with format checking, or None when the schema does not exist.

    Numbers are parsed as Decimal (schema and instance alike), so ``multipleOf: 0.1`` is exact.
    """
    if not _ACTION_NAME.fullmatch(action) or (not response and action.endswith("Response")):
        return None  # (1.6 names a request schema after its action: "HeartbeatResponse" would find the response's)
    path = schema_path(version, action, response=response)
    if not path.is_file():
        return None
    schema = json.loads(path.read_text(encoding="utf-8-sig"), parse_float=decimal.Decimal)
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft4Validator)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def validate_payload(version: str, action: str, payload: Any, *, response: bool = False) -> list[str]:
    """Validate a payload (a dict, or the JSON text of one) against its OCA schema; return the errors (empty: valid).

    Date-time formats are checked: ``2026-12-06T10:00:00`` (no UTC offset) is an error.
    """
    validator = _validator(version, action, response)
    if validator is None:
        kind = "response" if response else "request"
        return [f"OCPP {version} has no {kind} schema for action {action!r}"]
    text = payload if isinstance(payload, str) else json.dumps(payload)
    instance = json.loads(text, parse_float=decimal.Decimal)
    errors = sorted(validator.iter_errors(instance), key=lambda error: list(map(str, error.absolute_path)))
    return [f"{'/'.join(map(str, error.absolute_path)) or '(root)'}: {error.message}" for error in errors]


def date_time_format_enforced() -> bool:
    """True when jsonschema really checks ``format: date-time`` (it silently does not without rfc3339-validator)."""
    results = []
    for cls in (jsonschema.Draft4Validator, jsonschema.Draft6Validator):
        checker = cls.FORMAT_CHECKER
        results.append(
            "date-time" in checker.checkers
            and not checker.conforms("2026-12-06T10:00:00", "date-time")
            and checker.conforms("2026-12-06T10:00:00Z", "date-time")
            and checker.conforms("2026-12-06T10:00:00.123+01:00", "date-time")
        )
    return all(results)


# ---------------------------------------------------------------------------------------------------------------------
# Records


@dataclass
class Frame:
    """One raw WebSocket frame. ``direction``: "in" (station -> CSMS) or "out" (CSMS -> station)."""

    direction: str
    station_id: str
    connection: int
    text: str
    at: float  # time.monotonic() when received or sent
    wall: datetime


@dataclass
class Message:
    """A CALL the station sent, with what the CSMS answered."""

    seq: int  # arrival order over the whole life of the Csms (all stations, all connections)
    station_id: str
    connection: int  # the Connection.serial it arrived on
    version: str
    unique_id: str
    action: str
    payload: dict[str, Any]
    at: float  # time.monotonic() at arrival
    frame: str
    errors: list[str]  # schema errors; empty when valid
    response: dict[str, Any] | None = None  # the CALLRESULT payload the CSMS sent back
    error_code: str | None = None  # or the CALLERROR code it sent back
    consumed: bool = False  # taken by expect()

    @property
    def valid(self) -> bool:
        """True when the CALL matched its schema."""
        return not self.errors


@dataclass
class SchemaFailure:
    """A station frame that broke the schema. ``kind``: "call", "result" (to a CSMS CALL) or "frame" (not OCPP-J)."""

    station_id: str
    version: str
    kind: str
    action: str
    errors: list[str]
    frame: str

    def __str__(self) -> str:
        """A readable report: what, which errors, the frame."""
        errors = "; ".join(self.errors)
        return f"{self.station_id} ({self.version}) {self.kind} {self.action}: {errors}\n  frame: {self.frame}"


@dataclass
class CsmsCall:
    """A CALL the CSMS sent, with the station's answer (``outcome``: ("result", payload) or ("error", code, text))."""

    station_id: str
    action: str
    payload: dict[str, Any]
    sent_at: float
    outcome: CallOutcome | None = None
    errors: list[str] = field(default_factory=list)  # schema errors of the station's CALLRESULT


@dataclass
class Connection:
    """One accepted WebSocket connection of a station."""

    serial: int  # 1, 2, ... over the whole life of the Csms
    station_id: str
    version: str
    subprotocol: str
    opened_at: float
    authorization: str | None  # the Authorization header the station sent, if any
    closed_at: float | None = None
    close_code: int | None = None
    charge_point: CsmsChargePoint201 | CsmsChargePoint16 | None = field(default=None, repr=False)

    @property
    def open(self) -> bool:
        """True while the connection is up."""
        return self.closed_at is None


@dataclass
class Rejection:
    """A refused handshake. ``status``: the HTTP status sent (400 subprotocol, 401 auth, 404 path)."""

    status: int
    reason: str
    path: str
    station_id: str | None
    at: float


class CallErrorReceived(Exception):
    """The station answered a CSMS CALL with a CALLERROR."""

    def __init__(self, action: str, code: str, description: str) -> None:
        """Keep the action, the error code and the description."""
        super().__init__(f"{action}: CALLERROR {code}: {description}")
        self.action = action
        self.code = code
        self.description = description


# ---------------------------------------------------------------------------------------------------------------------
# The CSMS side of one connection


class _CsmsSide:
    """What both CSMS-side ChargePoints share: raw recording, strict validation, raw calls, custom handlers.

    Reading and answering are split: the reader task records every frame and resolves the CSMS's own pending CALLs at
    once, and a worker answers the station's CALLs in order, so a slow custom handler never blocks ``Csms.call``.
    """

    _ocpp_version: ClassVar[str]
    _connection: ServerConnection
    id: str

    def _attach(self, csms: Csms, info: Connection) -> None:
        """Bind this ChargePoint to its Csms and connection record."""
        self.csms = csms
        self.info = info
        self.version = self._ocpp_version
        self.closed = asyncio.Event()
        self._pending: dict[str, tuple[CsmsCall, asyncio.Future[CallOutcome]]] = {}
        self._raw_call_lock = asyncio.Lock()
        self._inbound: asyncio.Queue[tuple[Message, str]] = asyncio.Queue()
        self._answering: dict[str, Message] = {}

    @property
    def websocket(self) -> ServerConnection:
        """The server-side WebSocket connection."""
        return self._connection

    async def start(self) -> None:
        """Read frames until the connection closes; answer the station's CALLs on a worker task."""
        worker = asyncio.create_task(self._answer_calls())
        try:
            while True:
                raw = await self._connection.recv()
                await self._dispatch(raw)
        finally:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
            for call, future in self._pending.values():
                if not future.done():
                    future.set_exception(
                        ConnectionError(f"{self.id}: connection closed before the {call.action} answer")
                    )

    async def _dispatch(self, raw: str | bytes) -> None:
        """Record one frame; queue a CALL for the worker, or resolve the CSMS CALL a result answers."""
        text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
        now = self.csms._record_frame("in", self, text)
        if isinstance(raw, bytes):
            self.csms._fail(self, "frame", "?", ["binary frame (OCPP-J uses text frames)"], text)
            return
        try:
            message = json.loads(text)
            if not isinstance(message, list) or not message or message[0] not in (2, 3, 4):
                raise ValueError("not an OCPP-J message array")
            kind = message[0]
            unique_id = message[1]
            if not isinstance(unique_id, str):
                raise ValueError("unique id is not a string")
        except (ValueError, IndexError) as error:
            self.csms._fail(self, "frame", "?", [f"malformed frame: {error}"], text)
            return
        if kind == 2:
            if len(message) != 4 or not isinstance(message[2], str) or not isinstance(message[3], dict):
                self.csms._fail(self, "frame", "?", ["malformed CALL"], text)
                await self._send_error(unique_id, "RpcFrameworkError", "malformed CALL")
                return
            action, payload = message[2], message[3]
            errors = validate_payload(self.version, action, payload)
            record = self.csms._record_call(self, unique_id, action, payload, text, errors, now)
            if errors:
                self.csms._fail(self, "call", action, errors, text)
            self._inbound.put_nowait((record, text))
            return
        pending = self._pending.pop(unique_id, None)
        if pending is None:
            # not one of ours: the library's own ChargePoint.call() waits on this queue
            await self.route_message(text)  # type: ignore[attr-defined]
            return
        call, future = pending
        outcome: CallOutcome
        if kind == 3 and len(message) >= 3 and isinstance(message[2], dict):
            outcome = ("result", message[2])
            errors = validate_payload(self.version, call.action, json.dumps(message[2]), response=True)
            if errors:
                call.errors = errors
                self.csms._fail(self, "result", call.action, errors, text)
        elif kind == 4 and len(message) >= 4:
            outcome = ("error", str(message[2]), str(message[3]))
        else:
            self.csms._fail(self, "frame", call.action, ["malformed CALLRESULT/CALLERROR"], text)
            outcome = ("error", "RpcFrameworkError", "malformed answer")
        call.outcome = outcome
        if not future.done():
            future.set_result(outcome)

    async def _answer_calls(self) -> None:
        """Answer the station's CALLs one after the other, in arrival order."""
        while True:
            record, text = await self._inbound.get()
            self._answering[record.unique_id] = record
            try:
                await self._answer(record, text)
            except ConnectionClosed:
                return
            except Exception as error:  # a harness bug: keep answering, and let assert_valid() report it
                self.csms.handler_errors.append(error)
            finally:
                self._answering.pop(record.unique_id, None)

    async def _answer(self, record: Message, text: str) -> None:
        """Answer one CALL: CALLERROR FormatViolation when invalid, else the custom or the default handler."""
        if record.errors and _validator(self.version, record.action, False) is not None:
            await self._send_error(record.unique_id, "FormatViolation", "; ".join(record.errors)[:500])
            return
        # an action without a schema is not OCPP (recorded as a failure): the library answers NotSupported
        # or NotImplemented, as a real CSMS would
        handler = self.csms.handlers.get(record.action)
        if handler is None:
            await self.route_message(text)  # type: ignore[attr-defined]  # the library: @on handlers below
            return
        try:
            answer = handler(record.payload)
            if inspect.isawaitable(answer):
                answer = await answer
        except OCPPError as error:
            await self._send_error(record.unique_id, error.code, str(error.description))
            return
        except Exception as error:
            self.csms.handler_errors.append(error)
            await self._send_error(record.unique_id, "InternalError", f"{type(error).__name__}: {error}")
            return
        await self._send(json.dumps([3, record.unique_id, answer], separators=(",", ":")))

    async def _send_error(self, unique_id: str, code: str, description: str) -> None:
        """Send a CALLERROR."""
        await self._send(json.dumps([4, unique_id, code, description, {}], separators=(",", ":")))

    async def _send(self, message: str) -> None:
        """Send a frame, recording it, and note the answer on the CALL record it answers."""
        self.csms._record_frame("out", self, message)
        with contextlib.suppress(ValueError, IndexError, TypeError):
            decoded = json.loads(message)
            record = self._answering.get(decoded[1]) if decoded[0] in (3, 4) else None
            if record is not None:
                if decoded[0] == 3:
                    record.response = decoded[2]
                else:
                    record.error_code = decoded[2]
        await self._connection.send(message)

    async def call_raw(self, action: str, payload: Any, timeout: float = DEFAULT_TIMEOUT) -> CallOutcome:
        """Send a CALL as is (no validation) and return ("result", payload) or ("error", code, description)."""
        try:
            async with asyncio.timeout(timeout), self._raw_call_lock:  # OCPP-J: one CALL in flight per direction
                unique_id = str(uuid.uuid4())
                future: asyncio.Future[CallOutcome] = asyncio.get_running_loop().create_future()
                call = CsmsCall(self.id, action, payload, time.monotonic())
                self.csms.calls.append(call)
                self._pending[unique_id] = (call, future)
                try:
                    await self._send(json.dumps([2, unique_id, action, payload], separators=(",", ":")))
                    return await future
                finally:
                    self._pending.pop(unique_id, None)
        except TimeoutError:
            raise TimeoutError(f"{self.id} did not answer the CSMS's {action} within {timeout} s") from None

    # helpers for the default handlers

    def _now(self) -> str:
        """The CSMS's current time, as configured."""
        return utc_now_iso(self.csms.time_offset_s)


class CsmsChargePoint201(_CsmsSide, LibraryChargePoint201):
    """The CSMS side of an OCPP 2.0.1 connection: default answers to every station-initiated message."""

    # The station's CALLs are validated (with format checking) before they reach these handlers, hence
    # skip_schema_validation: the library's own Draft-4 check would only repeat it, more loosely.

    @on("BootNotification", skip_schema_validation=True)
    def on_boot_notification(self, **_: Any) -> Any:
        """Accepted/Pending/Rejected as configured, with the interval and currentTime."""
        return result201.BootNotification(
            current_time=self._now(), interval=self.csms.heartbeat_interval, status=self.csms.boot_status
        )

    @on("Heartbeat", skip_schema_validation=True)
    def on_heartbeat(self, **_: Any) -> Any:
        """currentTime."""
        return result201.Heartbeat(current_time=self._now())

    @on("StatusNotification", skip_schema_validation=True)
    def on_status_notification(self, **_: Any) -> Any:
        """Empty answer."""
        return result201.StatusNotification()

    @on("Authorize", skip_schema_validation=True)
    def on_authorize(self, id_token: dict[str, Any], **_: Any) -> Any:
        """idTokenInfo from ``csms.authorize_answers`` (or ``authorize_default``)."""
        return result201.Authorize(id_token_info=self.csms.id_token_info_201(id_token.get("id_token")))

    @on("TransactionEvent", skip_schema_validation=True)
    def on_transaction_event(self, id_token: dict[str, Any] | None = None, **_: Any) -> Any:
        """Empty answer, or idTokenInfo when the event carries an idToken (E01.FR.xx: the CSMS must then send it)."""
        if id_token is None:
            return result201.TransactionEvent()
        return result201.TransactionEvent(id_token_info=self.csms.id_token_info_201(id_token.get("id_token")))

    @on("MeterValues", skip_schema_validation=True)
    def on_meter_values(self, **_: Any) -> Any:
        """Empty answer."""
        return result201.MeterValues()

    @on("ReservationStatusUpdate", skip_schema_validation=True)
    def on_reservation_status_update(self, **_: Any) -> Any:
        """Empty answer."""
        return result201.ReservationStatusUpdate()

    @on("NotifyReport", skip_schema_validation=True)
    def on_notify_report(self, **_: Any) -> Any:
        """Empty answer."""
        return result201.NotifyReport()

    @on("NotifyEvent", skip_schema_validation=True)
    def on_notify_event(self, **_: Any) -> Any:
        """Empty answer."""
        return result201.NotifyEvent()

    @on("NotifyMonitoringReport", skip_schema_validation=True)
    def on_notify_monitoring_report(self, **_: Any) -> Any:
        """Empty answer."""
        return result201.NotifyMonitoringReport()

    @on("NotifyCustomerInformation", skip_schema_validation=True)
    def on_notify_customer_information(self, **_: Any) -> Any:
        """Empty answer."""
        return result201.NotifyCustomerInformation()

    @on("NotifyDisplayMessages", skip_schema_validation=True)
    def on_notify_display_messages(self, **_: Any) -> Any:
        """Empty answer."""
        return result201.NotifyDisplayMessages()

    @on("NotifyChargingLimit", skip_schema_validation=True)
    def on_notify_charging_limit(self, **_: Any) -> Any:
        """Empty answer."""
        return result201.NotifyChargingLimit()

    @on("ClearedChargingLimit", skip_schema_validation=True)
    def on_cleared_charging_limit(self, **_: Any) -> Any:
        """Empty answer."""
        return result201.ClearedChargingLimit()

    @on("ReportChargingProfiles", skip_schema_validation=True)
    def on_report_charging_profiles(self, **_: Any) -> Any:
        """Empty answer."""
        return result201.ReportChargingProfiles()

    @on("NotifyEVChargingNeeds", skip_schema_validation=True)
    def on_notify_ev_charging_needs(self, **_: Any) -> Any:
        """Accepted."""
        return result201.NotifyEVChargingNeeds(status="Accepted")

    @on("NotifyEVChargingSchedule", skip_schema_validation=True)
    def on_notify_ev_charging_schedule(self, **_: Any) -> Any:
        """Accepted."""
        return result201.NotifyEVChargingSchedule(status="Accepted")

    @on("SecurityEventNotification", skip_schema_validation=True)
    def on_security_event_notification(self, **_: Any) -> Any:
        """Empty answer."""
        return result201.SecurityEventNotification()

    @on("SignCertificate", skip_schema_validation=True)
    def on_sign_certificate(self, **_: Any) -> Any:
        """Accepted."""
        return result201.SignCertificate(status="Accepted")

    @on("FirmwareStatusNotification", skip_schema_validation=True)
    def on_firmware_status_notification(self, **_: Any) -> Any:
        """Empty answer."""
        return result201.FirmwareStatusNotification()

    @on("PublishFirmwareStatusNotification", skip_schema_validation=True)
    def on_publish_firmware_status_notification(self, **_: Any) -> Any:
        """Empty answer."""
        return result201.PublishFirmwareStatusNotification()

    @on("LogStatusNotification", skip_schema_validation=True)
    def on_log_status_notification(self, **_: Any) -> Any:
        """Empty answer."""
        return result201.LogStatusNotification()

    @on("DataTransfer", skip_schema_validation=True)
    def on_data_transfer(self, **_: Any) -> Any:
        """``csms.data_transfer_status`` (UnknownVendorId by default)."""
        return result201.DataTransfer(status=self.csms.data_transfer_status)


class CsmsChargePoint16(_CsmsSide, LibraryChargePoint16):
    """The CSMS side of an OCPP 1.6J connection: default answers to every station-initiated message."""

    @on("BootNotification", skip_schema_validation=True)
    def on_boot_notification(self, **_: Any) -> Any:
        """Accepted/Pending/Rejected as configured, with the interval and currentTime."""
        return result16.BootNotification(
            current_time=self._now(), interval=self.csms.heartbeat_interval, status=self.csms.boot_status
        )

    @on("Heartbeat", skip_schema_validation=True)
    def on_heartbeat(self, **_: Any) -> Any:
        """currentTime."""
        return result16.Heartbeat(current_time=self._now())

    @on("StatusNotification", skip_schema_validation=True)
    def on_status_notification(self, **_: Any) -> Any:
        """Empty answer."""
        return result16.StatusNotification()

    @on("Authorize", skip_schema_validation=True)
    def on_authorize(self, id_tag: str, **_: Any) -> Any:
        """idTagInfo (with parentIdTag) from ``csms.authorize_answers`` (or ``authorize_default``)."""
        return result16.Authorize(id_tag_info=self.csms.id_tag_info_16(id_tag))

    @on("StartTransaction", skip_schema_validation=True)
    def on_start_transaction(self, id_tag: str, **_: Any) -> Any:
        """The next transactionId (1, 2, ... over the life of the Csms) and the idTag's idTagInfo."""
        return result16.StartTransaction(
            transaction_id=self.csms.next_transaction_id(), id_tag_info=self.csms.id_tag_info_16(id_tag)
        )

    @on("StopTransaction", skip_schema_validation=True)
    def on_stop_transaction(self, id_tag: str | None = None, **_: Any) -> Any:
        """Empty answer, or the idTag's idTagInfo when the stop carries one."""
        if id_tag is None:
            return result16.StopTransaction()
        return result16.StopTransaction(id_tag_info=self.csms.id_tag_info_16(id_tag))

    @on("MeterValues", skip_schema_validation=True)
    def on_meter_values(self, **_: Any) -> Any:
        """Empty answer."""
        return result16.MeterValues()

    @on("DataTransfer", skip_schema_validation=True)
    def on_data_transfer(self, **_: Any) -> Any:
        """``csms.data_transfer_status`` (UnknownVendorId by default)."""
        return result16.DataTransfer(status=self.csms.data_transfer_status)

    @on("DiagnosticsStatusNotification", skip_schema_validation=True)
    def on_diagnostics_status_notification(self, **_: Any) -> Any:
        """Empty answer."""
        return result16.DiagnosticsStatusNotification()

    @on("FirmwareStatusNotification", skip_schema_validation=True)
    def on_firmware_status_notification(self, **_: Any) -> Any:
        """Empty answer."""
        return result16.FirmwareStatusNotification()

    @on("SecurityEventNotification", skip_schema_validation=True)
    def on_security_event_notification(self, **_: Any) -> Any:
        """Empty answer (the 1.6 security whitepaper's message)."""
        return result16.SecurityEventNotification()

    @on("LogStatusNotification", skip_schema_validation=True)
    def on_log_status_notification(self, **_: Any) -> Any:
        """Empty answer (the 1.6 security whitepaper's message)."""
        return result16.LogStatusNotification()

    @on("SignedFirmwareStatusNotification", skip_schema_validation=True)
    def on_signed_firmware_status_notification(self, **_: Any) -> Any:
        """Empty answer (the 1.6 security whitepaper's message)."""
        return result16.SignedFirmwareStatusNotification()

    @on("SignCertificate", skip_schema_validation=True)
    def on_sign_certificate(self, **_: Any) -> Any:
        """Accepted (the 1.6 security whitepaper's message)."""
        return result16.SignCertificate(status="Accepted")


CsmsChargePoint = CsmsChargePoint201 | CsmsChargePoint16


# ---------------------------------------------------------------------------------------------------------------------
# The server


def station_url(base_url: str, station_id: str) -> str:
    """The URL a station connects to: the CSMS URL with the station id appended as the last path segment."""
    return f"{base_url.rstrip('/')}/{quote(station_id, safe='')}"


class Csms:
    """An OCPP 2.0.1 / 1.6J CSMS on 127.0.0.1 for the tests. Use as ``async with Csms() as csms:``.

    Configuration (attributes, change them any time): ``boot_status`` ("Accepted", "Pending" or "Rejected") and
    ``heartbeat_interval`` (the BootNotification interval, also the retry wait on Pending/Rejected), see
    ``set_boot_status``; ``authorize_answers`` (id token -> {"status": ..., "groupIdToken": ...}; for 1.6 the group
    is the parentIdTag; "groupIdToken" may be a plain string (2.0.1: becomes {"idToken": s, "type": "Central"}) or a
    full IdTokenType dict), ``authorize_default`` (for tokens not in the dict; Accepted), ``data_transfer_status``,
    ``time_offset_s`` (added to every currentTime), ``basic_auth_password`` (None: no check), ``handlers`` (see
    ``set_handler``).
    """

    def __init__(
        self,
        versions: Sequence[str] = VERSIONS,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        path: str = "/ocpp",
        basic_auth_password: str | bytes | None = None,
        ssl_context: ssl.SSLContext | None = None,
        heartbeat_interval: int = 300,
        boot_status: str = "Accepted",
    ) -> None:
        """Configure; nothing listens before ``start()`` (or ``async with``)."""
        unknown = set(versions) - set(VERSIONS)
        if unknown or not versions:
            raise ValueError(f"versions must be among {VERSIONS}, got {versions!r}")
        if not date_time_format_enforced():
            raise RuntimeError(
                "jsonschema does not check date-time formats here: install 'jsonschema[format]' (rfc3339-validator)"
            )
        self.versions = tuple(versions)
        self.host = host
        self.port = port
        self.path = "/" + path.strip("/")
        self.basic_auth_password = basic_auth_password
        self.ssl_context = ssl_context
        self.heartbeat_interval = heartbeat_interval
        self.boot_status = boot_status
        self.authorize_answers: dict[str, dict[str, Any]] = {}
        self.authorize_default: dict[str, Any] = {"status": "Accepted"}
        self.data_transfer_status = "UnknownVendorId"
        self.time_offset_s = 0.0
        self.handlers: dict[str, Handler] = {}
        # records
        self.frames: list[Frame] = []
        self.messages: list[Message] = []
        self.calls: list[CsmsCall] = []
        self.connections: list[Connection] = []
        self.schema_failures: list[SchemaFailure] = []
        self.rejections: list[Rejection] = []
        self.handler_errors: list[BaseException] = []
        self._server: Server | None = None
        self._live: dict[str, CsmsChargePoint] = {}
        self._serials = itertools.count(1)
        self._message_seq = itertools.count(1)
        self._transaction_ids = itertools.count(1)
        self._changed = asyncio.Event()

    # -- lifecycle

    async def start(self) -> Csms:
        """Listen (again): on a free port the first time, on the same port after ``stop()``."""
        if self._server is not None:
            return self
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            subprotocols=[SUBPROTOCOL[version] for version in self.versions],  # type: ignore[misc]
            select_subprotocol=self._select_subprotocol,
            process_request=self._process_request,
            ssl=self.ssl_context,
            close_timeout=2,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self, *, abrupt: bool = False) -> None:
        """Stop listening and close every connection (a close handshake, or a TCP abort when ``abrupt``)."""
        server, self._server = self._server, None
        if server is None:
            return
        if abrupt:
            for charge_point in list(self._live.values()):
                charge_point.websocket.transport.abort()
        server.close(close_connections=not abrupt)
        await server.wait_closed()
        await self._wait_for(lambda: True if not self._live else None, DEFAULT_TIMEOUT, lambda: "connections to end")

    async def __aenter__(self) -> Csms:
        """Start."""
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        """Stop."""
        await self.stop()

    @property
    def running(self) -> bool:
        """True while listening."""
        return self._server is not None

    @property
    def url(self) -> str:
        """The CSMS URL to give the station (``--ocpp-url``): ``ws[s]://127.0.0.1:PORT/ocpp``."""
        scheme = "wss" if self.ssl_context is not None else "ws"
        return f"{scheme}://{self.host}:{self.port}{self.path}"

    def station_url(self, station_id: str) -> str:
        """The URL the station with this id connects to."""
        return station_url(self.url, station_id)

    # -- configuration

    def set_boot_status(self, status: str, interval: int | None = None) -> None:
        """Answer the next BootNotifications with this status (and interval: heartbeat, or retry wait)."""
        self.boot_status = status
        if interval is not None:
            self.heartbeat_interval = interval

    def set_handler(self, action: str, handler: Handler | None) -> None:
        """Answer ``action`` with ``handler(payload) -> response payload`` (camelCase dicts, may be async).

        The handler may raise an ``ocpp.exceptions.OCPPError`` to answer with that CALLERROR; its answer is sent
        as is (not validated), so tests can also send invalid answers. ``None`` restores the default handler.
        """
        if handler is None:
            self.handlers.pop(action, None)
        else:
            self.handlers[action] = handler

    def next_transaction_id(self) -> int:
        """The next 1.6 transactionId (1, 2, ...)."""
        return next(self._transaction_ids)

    def _authorize_entry(self, token: str | None) -> dict[str, Any]:
        """The configured answer for a token."""
        if token is not None and token in self.authorize_answers:
            return self.authorize_answers[token]
        return self.authorize_default

    def id_token_info_201(self, token: str | None) -> dict[str, Any]:
        """The 2.0.1 idTokenInfo for a token, from ``authorize_answers``."""
        entry = self._authorize_entry(token)
        info: dict[str, Any] = {"status": entry.get("status", "Accepted")}
        group = entry.get("groupIdToken")
        if group is not None:
            info["groupIdToken"] = group if isinstance(group, dict) else {"idToken": group, "type": "Central"}
        for key in ("cacheExpiryDateTime", "chargingPriority", "evseId", "language1", "personalMessage"):
            if key in entry:
                info[key] = entry[key]
        return info

    def id_tag_info_16(self, token: str | None) -> dict[str, Any]:
        """The 1.6 idTagInfo for a token, from ``authorize_answers`` (groupIdToken -> parentIdTag)."""
        entry = self._authorize_entry(token)
        info: dict[str, Any] = {"status": entry.get("status", "Accepted")}
        parent = entry.get("parentIdTag", entry.get("groupIdToken"))
        if parent is not None:
            info["parentIdTag"] = parent["idToken"] if isinstance(parent, dict) else parent
        if "expiryDate" in entry:
            info["expiryDate"] = entry["expiryDate"]
        return info

    # -- waiting and reading

    async def wait_connected(
        self, timeout: float = DEFAULT_TIMEOUT, *, station_id: str | None = None, count: int | None = None
    ) -> CsmsChargePoint:
        """Wait until a station (this one, if given) is connected; return its CSMS-side ChargePoint.

        ``count``: also wait until at least that many connections (of that station) have been accepted in all, e.g.
        ``count=2`` after a disconnect to wait for the reconnect.
        """

        def check() -> CsmsChargePoint | None:
            made = [c for c in self.connections if station_id is None or c.station_id == station_id]
            if count is not None and len(made) < count:
                return None
            live = [c for c in made if c.open and c.charge_point is not None]
            return live[-1].charge_point if live else None

        def describe() -> str:
            return f"no station {station_id or ''} connected (count={count}); connections: {self.connections}"

        return await self._wait_for(check, timeout, describe)

    async def wait_disconnected(self, timeout: float = DEFAULT_TIMEOUT, *, station_id: str | None = None) -> None:
        """Wait until no connection (of this station) is open."""

        def check() -> bool | None:
            live = [c for c in self.connections if c.open and (station_id is None or c.station_id == station_id)]
            return None if live else True

        await self._wait_for(check, timeout, lambda: f"still connected: {[c for c in self.connections if c.open]}")

    def received(self, action: str | None = None, *, station_id: str | None = None) -> list[dict[str, Any]]:
        """The payloads of every CALL the station sent (of this action), consumed or not, in arrival order."""
        return [message.payload for message in self._matching(action, station_id)]

    def received_messages(self, action: str | None = None, *, station_id: str | None = None) -> list[Message]:
        """Like ``received`` but the full records (times, answers, schema errors)."""
        return list(self._matching(action, station_id))

    async def expect(
        self,
        action: str,
        predicate: Callable[[dict[str, Any]], bool] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        *,
        station_id: str | None = None,
        allow_invalid: bool = False,
    ) -> dict[str, Any]:
        """Return the payload of the next not-yet-consumed CALL ``action`` matching ``predicate``; consume it.

        The oldest unconsumed match wins, so successive calls walk a sequence; messages that do not match stay
        available for later expects. A predicate raising KeyError/IndexError/TypeError counts as no match. An
        invalid (schema-failing) match raises AssertionError at once unless ``allow_invalid``. Timeout:
        AssertionError listing what did arrive.
        """
        message = await self.expect_message(
            action, predicate, timeout, station_id=station_id, allow_invalid=allow_invalid
        )
        return message.payload

    async def expect_message(
        self,
        action: str,
        predicate: Callable[[dict[str, Any]], bool] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        *,
        station_id: str | None = None,
        allow_invalid: bool = False,
    ) -> Message:
        """Like ``expect`` but return the full record."""

        def check() -> Message | None:
            for message in self._matching(action, station_id):
                if message.consumed or not _matches(predicate, message.payload):
                    continue
                message.consumed = True
                if not message.valid and not allow_invalid:
                    raise AssertionError(
                        f"{action} from {message.station_id} breaks the schema: {'; '.join(message.errors)}\n"
                        f"  frame: {message.frame}"
                    )
                return message
            return None

        def describe() -> str:
            seen = [(m.action, m.payload, "consumed" if m.consumed else "") for m in self._matching(action, station_id)]
            actions = [m.action for m in self.messages]
            return f"no {action} matching the predicate within {timeout} s; {action}s received: {seen}; all: {actions}"

        return await self._wait_for(check, timeout, describe)

    def _matching(self, action: str | None, station_id: str | None) -> list[Message]:
        """The recorded CALLs of this action and station."""
        return [
            message
            for message in self.messages
            if (action is None or message.action == action) and (station_id is None or message.station_id == station_id)
        ]

    # -- acting

    def charge_point(self, station_id: str | None = None) -> CsmsChargePoint:
        """The live CSMS-side ChargePoint of this station (default: the most recently connected station)."""
        live = [c for c in self.connections if c.open and c.charge_point is not None]
        if station_id is not None:
            live = [c for c in live if c.station_id == station_id]
        if not live:
            raise AssertionError(f"no station {station_id or ''} connected; connections: {self.connections}")
        charge_point = live[-1].charge_point
        assert charge_point is not None
        return charge_point

    async def call(
        self,
        request: Any,
        payload: dict[str, Any] | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        station_id: str | None = None,
        validate: bool = True,
    ) -> dict[str, Any]:
        """Send a CSMS-initiated CALL; return the station's CALLRESULT payload (a camelCase dict).

        ``request``: an ``ocpp.v201.call`` / ``ocpp.v16.call`` dataclass (e.g. ``call.ReserveNow(id=1, ...)``), or
        an action name with ``payload`` as a camelCase dict. The request is validated against its schema first
        (``validate=False`` to skip; ``call_raw`` sends anything). Raises CallErrorReceived on a CALLERROR,
        TimeoutError without an answer within ``timeout``, ConnectionError when the connection drops meanwhile.
        """
        if isinstance(request, str):
            action, body = request, dict(payload or {})
        elif dataclasses.is_dataclass(request) and not isinstance(request, type):
            if payload is not None:
                raise TypeError("give either a payload dataclass or an action name and a payload dict")
            action = type(request).__name__
            body = json.loads(json.dumps(snake_to_camel_case(remove_nones(serialize_as_dict(request)))))
        else:
            raise TypeError(f"request must be an action name or an ocpp call dataclass, not {type(request)!r}")
        charge_point = self.charge_point(station_id)
        if validate:
            errors = validate_payload(charge_point.version, action, body)
            if errors:
                raise ValueError(f"the CSMS's own {action} breaks the schema: {'; '.join(errors)}: {body}")
        outcome = await charge_point.call_raw(action, body, timeout)
        if outcome[0] == "error":
            raise CallErrorReceived(action, outcome[1], outcome[2])  # type: ignore[misc]
        return outcome[1]  # type: ignore[return-value]

    async def call_raw(
        self, action: str, payload: Any, *, timeout: float = DEFAULT_TIMEOUT, station_id: str | None = None
    ) -> CallOutcome:
        """Send a CALL exactly as given (invalid payloads too); return ("result", payload) or ("error", code, text)."""
        return await self.charge_point(station_id).call_raw(action, payload, timeout)

    async def disconnect(
        self,
        station_id: str | None = None,
        *,
        code: int = 1001,
        reason: str = "",
        abrupt: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        """Close the station's connection from the server side (an outage); return once it is fully closed.

        ``abrupt``: drop the TCP connection without a close handshake, like a crashed CSMS or a lost network.
        """
        charge_point = self.charge_point(station_id)
        if abrupt:
            charge_point.websocket.transport.abort()
        else:
            await charge_point.websocket.close(code, reason)
        async with asyncio.timeout(timeout):
            await charge_point.closed.wait()

    # -- assertions

    def assert_valid(self) -> None:
        """Fail with every schema failure (message and frame) and every exception a CSMS handler raised."""
        problems = [str(failure) for failure in self.schema_failures]
        problems += [f"a CSMS handler raised {error!r}" for error in self.handler_errors]
        if problems:
            raise AssertionError(f"{len(problems)} problem(s) in what the station sent:\n" + "\n".join(problems))

    def take_schema_failures(self) -> list[SchemaFailure]:
        """Return the schema failures so far and forget them (for tests that provoke them on purpose)."""
        failures, self.schema_failures = self.schema_failures, []
        return failures

    @property
    def auth_failures(self) -> int:
        """How many handshakes were refused with 401."""
        return sum(1 for rejection in self.rejections if rejection.status == 401)

    # -- internals

    def _pulse(self) -> None:
        """Wake every waiter."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait_for(self, check: Callable[[], Any], timeout: float, describe: Callable[[], str]) -> Any:
        """Re-run ``check`` on every recorded change until it returns non-None; AssertionError on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            result = check()
            if result is not None:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(describe())
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)

    def _record_frame(self, direction: str, charge_point: _CsmsSide, text: str) -> float:
        """Keep a raw frame; return its time."""
        now = time.monotonic()
        self.frames.append(Frame(direction, charge_point.id, charge_point.info.serial, text, now, datetime.now(UTC)))
        return now

    def _record_call(
        self,
        charge_point: _CsmsSide,
        unique_id: str,
        action: str,
        payload: dict[str, Any],
        text: str,
        errors: list[str],
        at: float,
    ) -> Message:
        """Keep a station CALL and wake the waiters."""
        message = Message(
            seq=next(self._message_seq),
            station_id=charge_point.id,
            connection=charge_point.info.serial,
            version=charge_point.version,
            unique_id=unique_id,
            action=action,
            payload=payload,
            at=at,
            frame=text,
            errors=errors,
        )
        self.messages.append(message)
        self._pulse()
        return message

    def _fail(self, charge_point: _CsmsSide, kind: str, action: str, errors: list[str], text: str) -> None:
        """Keep a schema failure."""
        self.schema_failures.append(SchemaFailure(charge_point.id, charge_point.version, kind, action, errors, text))
        self._pulse()

    def _station_id_of(self, request_path: str) -> str | None:
        """The station id in ``<path>/<id>``, or None when the path does not have that shape."""
        path = urlsplit(request_path).path
        prefix = self.path.rstrip("/") + "/"
        rest = path[len(prefix) :] if path.startswith(prefix) else ""
        if not rest or "/" in rest:
            return None
        return unquote(rest)

    def _reject(self, connection: ServerConnection, status: int, reason: str, path: str, sid: str | None) -> Response:
        """Record a refused handshake and build the HTTP answer."""
        self.rejections.append(Rejection(status, reason, path, sid, time.monotonic()))
        self._pulse()
        response = connection.respond(http.HTTPStatus(status), reason + "\n")
        if status == 401:
            response.headers["WWW-Authenticate"] = 'Basic realm="ocpp", charset="UTF-8"'
        return response

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Check the path and, when configured, HTTP Basic auth (username = station id)."""
        station_id = self._station_id_of(request.path)
        if station_id is None:
            return self._reject(connection, 404, f"no such endpoint (expected {self.path}/<id>)", request.path, None)
        if self.basic_auth_password is None:
            return None
        header = request.headers.get("Authorization")
        expected = self.basic_auth_password
        if isinstance(expected, str):
            expected = expected.encode()
        if header is None:
            return self._reject(connection, 401, "missing Authorization", request.path, station_id)
        scheme, _, encoded = header.strip().partition(" ")
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            decoded = b""
        username, colon, password = decoded.partition(b":")
        if scheme.lower() != "basic" or not colon:
            return self._reject(connection, 401, "malformed Basic credentials", request.path, station_id)
        if username != station_id.encode():
            return self._reject(connection, 401, "username is not the station id", request.path, station_id)
        if password != expected:
            return self._reject(connection, 401, "wrong password", request.path, station_id)
        return None

    def _select_subprotocol(self, connection: ServerConnection, offered: Sequence[str]) -> str:
        """Pick the first of our subprotocols the station offers; refuse (HTTP 400) when it offers none of them."""
        for version in self.versions:
            if SUBPROTOCOL[version] in offered:
                return SUBPROTOCOL[version]
        station_id = self._station_id_of(connection.request.path) if connection.request else None
        path = connection.request.path if connection.request else "?"
        self.rejections.append(
            Rejection(400, f"subprotocols offered: {list(offered)}", path, station_id, time.monotonic())
        )
        self._pulse()
        raise NegotiationError(f"no supported subprotocol; expected one of {[SUBPROTOCOL[v] for v in self.versions]}")

    async def _handle(self, websocket: ServerConnection) -> None:
        """Serve one station connection until it closes."""
        station_id = self._station_id_of(websocket.request.path if websocket.request else "") or "?"
        subprotocol = websocket.subprotocol or ""
        version = VERSION_OF[subprotocol]
        authorization = websocket.request.headers.get("Authorization") if websocket.request else None
        info = Connection(next(self._serials), station_id, version, subprotocol, time.monotonic(), authorization)
        cls = CsmsChargePoint201 if version == "2.0.1" else CsmsChargePoint16
        charge_point = cls(station_id, websocket, response_timeout=DEFAULT_TIMEOUT)
        charge_point._attach(self, info)
        info.charge_point = charge_point
        self.connections.append(info)
        self._live[f"{info.serial}"] = charge_point
        self._pulse()
        try:
            await charge_point.start()
        except ConnectionClosed:
            pass
        finally:
            info.closed_at = time.monotonic()
            info.close_code = websocket.close_code
            self._live.pop(f"{info.serial}", None)
            charge_point.closed.set()
            self._pulse()


def _matches(predicate: Callable[[dict[str, Any]], bool] | None, payload: dict[str, Any]) -> bool:
    """Apply a predicate; a lookup error in it means "no match"."""
    if predicate is None:
        return True
    try:
        return bool(predicate(payload))
    except (KeyError, IndexError, TypeError):
        return False


# ---------------------------------------------------------------------------------------------------------------------
# TLS for security profile 2


@dataclass(frozen=True)
class Pki:
    """A throwaway CA and a server certificate for 127.0.0.1 and localhost (PEM files)."""

    ca_cert: Path
    server_cert: Path
    server_key: Path

    def server_context(self) -> ssl.SSLContext:
        """The CSMS's TLS context (TLS 1.2+)."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.server_cert, self.server_key)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A station-side TLS context that trusts only the throwaway CA (hostname checked)."""
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.ca_cert))
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context


def make_pki(directory: Path) -> Pki:
    """Generate a CA and a server certificate for 127.0.0.1 with the ``openssl`` binary (pytest.skip without it).

    The certificates carry the extensions strict verifiers (Python 3.13's VERIFY_X509_STRICT) require.
    """
    import pytest

    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl binary is not installed: needed to make the TLS certificates of security profile 2")
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = directory / "ca.key", directory / "ca.pem"
    key, csr, cert, ext = (
        directory / "server.key",
        directory / "server.csr",
        directory / "server.pem",
        directory / "ext",
    )
    ext.write_text(
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n"
    )
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    commands = [
        [openssl, "req", "-x509", *ec, "-keyout", ca_key, "-out", ca_cert, "-days", "2",
         "-subj", "/CN=charger-controller test CA",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
         "-addext", "subjectKeyIdentifier=hash"],
        [openssl, "req", "-new", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"],
        [openssl, "x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key, "-set_serial",
         str(uuid.uuid4().int >> 64), "-days", "2", "-out", cert, "-extfile", ext],
    ]  # fmt: skip
    for command in commands:
        done = subprocess.run([str(part) for part in command], capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(map(str, command))} failed: {done.stderr.strip()}")
    return Pki(ca_cert, cert, key)
