"""What the harness's CSMS (hil.csms) answers to each CALL a station may send, per OCPP version.

Fixed answers, camelCase as they go on the wire: BootNotification Accepted with the CSMS's time and a five-minute
heartbeat, every token Accepted, empty answers where the protocol has nothing to say. In 1.6 a StartTransaction
gets a transactionId (1, 2, ... per CSMS); the same StartTransaction again (a resend whose answer was lost) gets the
id it got the first time, as a de-duplicating CSMS answers. Anything not listed: CALLERROR NotImplemented.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

Answer = Callable[[dict[str, Any]], dict[str, Any]]
ACCEPTED = {"status": "Accepted"}


def ocpp_time(moment: datetime | None = None) -> str:
    """An OCPP date-time (UTC, milliseconds, ``Z``)."""
    moment = moment or datetime.now(UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _boot(_: dict[str, Any]) -> dict[str, Any]:
    """Accepted, with the CSMS's time and a five-minute heartbeat (the same shape in both versions)."""
    return {"currentTime": ocpp_time(), "interval": 300, "status": "Accepted"}


def _transaction_event(payload: dict[str, Any]) -> dict[str, Any]:
    """Empty, or idTokenInfo Accepted when the event carries an idToken (the CSMS must then answer with one)."""
    return {"idTokenInfo": dict(ACCEPTED)} if "idToken" in payload else {}


def _empty(_: dict[str, Any]) -> dict[str, Any]:
    """An empty answer."""
    return {}


ANSWERS: dict[str, Answer] = {
    "BootNotification": _boot,
    "Heartbeat": lambda _: {"currentTime": ocpp_time()},
    "Authorize": lambda _: {"idTokenInfo": dict(ACCEPTED)},
    "TransactionEvent": _transaction_event,
    "DataTransfer": lambda _: {"status": "UnknownVendorId"},
    **{action: _empty for action in (
        "StatusNotification", "MeterValues", "ReservationStatusUpdate", "NotifyReport", "NotifyEvent",
        "SecurityEventNotification", "FirmwareStatusNotification", "LogStatusNotification",
        "NotifyMonitoringReport")},
}
"""The OCPP 2.0.1 answers."""


def answers_16() -> dict[str, Answer]:
    """The OCPP 1.6 answers, with a fresh transactionId counter."""
    ids = itertools.count(1)
    given: dict[str, int] = {}

    def start(payload: dict[str, Any]) -> dict[str, Any]:
        """The next transactionId (the one given before, for the same StartTransaction again)."""
        key = json.dumps(payload, sort_keys=True)
        if key not in given:
            given[key] = next(ids)
        return {"transactionId": given[key], "idTagInfo": dict(ACCEPTED)}

    return {
        "BootNotification": _boot,
        "Heartbeat": lambda _: {"currentTime": ocpp_time()},
        "Authorize": lambda _: {"idTagInfo": dict(ACCEPTED)},
        "StartTransaction": start,
        "StopTransaction": lambda p: {"idTagInfo": dict(ACCEPTED)} if "idTag" in p else {},
        "DataTransfer": lambda _: {"status": "UnknownVendorId"},
        **{action: _empty for action in (
            "StatusNotification", "MeterValues", "DiagnosticsStatusNotification", "FirmwareStatusNotification",
            "SecurityEventNotification", "LogStatusNotification", "SignedFirmwareStatusNotification")},
    }


def answers_for(version: str) -> dict[str, Answer]:
    """The answers of a CSMS speaking ``version`` ("2.0.1" or "1.6")."""
    return answers_16() if version == "1.6" else dict(ANSWERS)
