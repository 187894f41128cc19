"""OCPP 1.6 connector statuses (ChargePointStatus) and error codes, derived from the controller's EVSE entries.

connectorId N is the N-th connector of the station in EVSE order (the sim charger's EVSEs 1 and 2, each with one
connector, are connectorIds 1 and 2); 0 is the station itself. Faulted and Unavailable follow the version-neutral
rule (controller.ocpp.station.status); the neutral Occupied and Available are refined from the same entry, the
open transaction and whether one just ended (DESIGN.md "Fronts"):

- Charging: a transaction runs and the contactor is closed with the EV drawing; SuspendedEV: closed, drawing
  nothing; SuspendedEVSE: a transaction runs but the station offers nothing (paused by ``charging_allowed``
  false or a limit in effect of 0 A, ``limit_a``: e.g. a 0 A charging profile, 1.6 3.13), or the contactor is not
  closed yet);
- Finishing: no transaction, the session stopping or the plug still in after the transaction ended;
- Preparing: no transaction yet, plugged in or authorized (a reserved token before the plug: the reservation is
  consumed at StartTransaction in 1.6 semantics, so the connector is not Available meanwhile);
- Reserved: the EVSE is in ``reserved_evses()``; Available otherwise.

An EVSE's faults give the errorCode: a lock fault ConnectorLockFailure, a silent or failing meter
PowerMeterFailure, the RFID reader ReaderFailure, a control-pilot fault EVCommunicationError, a car drawing more than
offered OverCurrentFailure, anything else (a welded contactor, a bad cable...) OtherError; ``info`` and
``vendorErrorCode`` name our faults (e.g. ``contactor_welded``). NoError without a fault.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from controller.ocpp.station.status import ConnectorStatus, connector_status, station_availability
from controller.ocpp.station.transactions import DRAWING_W

INFO_MAX = 50  # StatusNotification.info and vendorErrorCode maxLength
NO_ERROR = "NoError"
STOPPING_PHASES = frozenset({"stopping", "unlocking"})


class Status16(StrEnum):
    """A connector's status as OCPP 1.6 names it (ChargePointStatus)."""

    AVAILABLE = "Available"
    PREPARING = "Preparing"
    CHARGING = "Charging"
    SUSPENDED_EV = "SuspendedEV"
    SUSPENDED_EVSE = "SuspendedEVSE"
    FINISHING = "Finishing"
    RESERVED = "Reserved"
    UNAVAILABLE = "Unavailable"
    FAULTED = "Faulted"


@dataclass(frozen=True, slots=True)
class Report:
    """One StatusNotification's content: status, errorCode, and the fault named in info/vendorErrorCode."""

    status: Status16
    error_code: str = NO_ERROR
    info: str | None = None

    def payload(self, connector_id: int, timestamp: str) -> dict[str, Any]:
        """The StatusNotification payload (snake_case, as the ``ocpp`` library's call class takes it)."""
        payload: dict[str, Any] = {"connector_id": connector_id, "error_code": self.error_code,
                                   "status": self.status.value, "timestamp": timestamp}
        if self.info is not None:
            payload["info"] = self.info
            payload["vendor_error_code"] = self.info
        return payload


def connector_numbers(evses: Iterable[Mapping[str, Any]]) -> dict[int, tuple[int, int]]:
    """connectorId (1, 2, ...) -> (EVSE id, connector id), the station's connectors in EVSE order."""
    pairs = sorted((int(e["id"]), int(c["id"])) for e in evses for c in e["connectors"])
    return {number: pair for number, pair in enumerate(pairs, start=1)}


def error_code(faults: Sequence[str]) -> tuple[str, str | None]:
    """(errorCode, info) for an EVSE's faults: the first fault decides the code, info names them all."""
    if not faults:
        return NO_ERROR, None
    first = str(faults[0])
    if first.startswith("lock_"):
        code = "ConnectorLockFailure"
    elif first.startswith("meter_"):
        code = "PowerMeterFailure"
    elif first.startswith("token_reader"):
        code = "ReaderFailure"
    elif first.startswith("pilot_"):
        code = "EVCommunicationError"  # the control pilot: E (shorted), a missing diode, a reading in no band
    elif first == "ev_overcurrent":
        code = "OverCurrentFailure"
    else:
        code = "OtherError"
    return code, ",".join(str(f) for f in faults)[:INFO_MAX]


def connector_report(evse: Mapping[str, Any], connector: Mapping[str, Any], *, transaction: bool,
                     finished: bool) -> Report:
    """The report of one connector of an EVSE entry; ``transaction``: one is open on it; ``finished``: one ended
    there and the plug has not left since."""
    code, info = error_code(list(evse.get("faults") or ()))
    neutral = connector_status(evse, connector)
    if neutral is ConnectorStatus.FAULTED:
        return Report(Status16.FAULTED, code if code != NO_ERROR else "OtherError", info)
    if neutral is ConnectorStatus.UNAVAILABLE:
        return Report(Status16.UNAVAILABLE, code, info)
    return Report(_in_service(evse, transaction=transaction, finished=finished), code, info)


def _in_service(evse: Mapping[str, Any], *, transaction: bool, finished: bool) -> Status16:
    """The status of a connector that is neither faulted nor unavailable."""
    plugged = bool(evse.get("plugged_in"))
    phase = evse.get("phase")
    if transaction:
        if not evse.get("charging_allowed", True) or evse.get("limit_a") == 0 or evse.get("current_limit_a") == 0:
            return Status16.SUSPENDED_EVSE
        if evse.get("contactor") == "closed":
            power = evse.get("power_w")
            drawing = power is not None and abs(float(power)) >= DRAWING_W
            return Status16.CHARGING if drawing else Status16.SUSPENDED_EV
        return Status16.SUSPENDED_EVSE
    if phase in STOPPING_PHASES or (finished and plugged and phase != "authorized"):
        return Status16.FINISHING
    if plugged or phase == "authorized":
        return Status16.PREPARING
    if evse.get("reserved"):
        return Status16.RESERVED
    return Status16.AVAILABLE


def station_report(evses: Iterable[Mapping[str, Any]]) -> Report:
    """Connector 0 (the station): Faulted or Unavailable only when no connector can serve, else Available."""
    entries = list(evses)
    neutral = [connector_status(e, c) for e in entries for c in e["connectors"]]
    overall = station_availability(neutral)
    if overall is ConnectorStatus.FAULTED:
        code, info = error_code([f for e in entries for f in e.get("faults") or ()])
        return Report(Status16.FAULTED, code if code != NO_ERROR else "OtherError", info)
    if overall is ConnectorStatus.UNAVAILABLE:
        return Report(Status16.UNAVAILABLE)
    return Report(Status16.AVAILABLE)


class StatusTracker16:
    """What the CSMS was last told about each connectorId, so only changes are sent (all after a reconnect)."""

    def __init__(self) -> None:
        """Nothing told yet."""
        self._sent: dict[int, Report] = {}

    def forget(self) -> None:
        """A new connection: the next ``changes`` reports every connector."""
        self._sent.clear()

    def changes(self, current: Mapping[int, Report]) -> list[tuple[int, Report]]:
        """The connectorIds whose report differs from the last one sent, in connectorId order."""
        return [(number, report) for number, report in sorted(current.items()) if self._sent.get(number) != report]

    def sent(self, connector_id: int, report: Report) -> None:
        """This report was queued for the CSMS."""
        self._sent[connector_id] = report
