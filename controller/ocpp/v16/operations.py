"""What the CSMS orders an OCPP 1.6 charge point to do: reservations, availability, configuration, triggers, remote
start and stop, unlock, reset and data transfer.

Each method answers one CALL (the charge point's handlers call them) and never awaits a CALL of ours: what must
follow the answer is spawned as a task or queued in the station's outbox, which holds back until the answer left.
connectorId N is the N-th connector of the station in EVSE order (``Station16.connectors``); 0 is the station.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ocpp.v16 import call, call_result

from controller.core.parsing import FormatError, parse_rfc3339
from controller.core.store import StoreError
from controller.core.types import (
    ConnectorType,
    Reservation,
    ReservationCheck,
    ReservationCheckStatus,
    ReservationResult,
)
from controller.ocpp.station.orders import StationOrders
from controller.ocpp.station.status import HOLDING_PHASES
from controller.ocpp.station.transactions import StopReason, Trigger
from controller.ocpp.v16 import configuration
from controller.ocpp.v16.transactions import meter_value
from controller.port.charger import UnlockOutcome
from drivers.redact import redact_token

if TYPE_CHECKING:
    from controller.ocpp.v16.station import Station16
    from controller.ocpp.v16.tx_flow import TransactionFlow16

log = logging.getLogger("controller.ocpp")

RESET_DELIVERY_S = 5.0  # a reset waits this long at most for the CSMS to take the StopTransactions
UNLOCK_STOP_S = 10.0  # UnlockConnector on a connector in use: how long its session may take to stop
_RESERVE_STATUS = {
    ReservationResult.ACCEPTED: "Accepted",
    ReservationResult.FAULTED: "Faulted",
    ReservationResult.OCCUPIED: "Occupied",
    ReservationResult.REJECTED: "Rejected",
    ReservationResult.UNAVAILABLE: "Unavailable",
}


class Operations16(StationOrders):
    """The charge point's answers to the CSMS's orders."""

    _station: Station16
    transactions: TransactionFlow16

    def __init__(self, station: Station16, db_path: Path, on_reset: Callable[[str], None] | None) -> None:
        """Act for ``station`` (``db_path``: ocpp.db, for the availability); ``on_reset(kind)`` restarts the process
        (without it a Reset is Rejected). An Inoperative waits while a session holds the car or a transaction is
        open."""
        super().__init__(station, db_path, on_reset, lambda evse_id, entry: (
            entry["phase"] in HOLDING_PHASES or self.transactions.open_transaction(evse_id) is not None))

    def _evses(self) -> list[dict[str, Any]]:
        """Every EVSE's entry of the status document now."""
        return list(self.charger.status()["evses"])

    def _evse(self, evse_id: int) -> dict[str, Any]:
        """One EVSE's entry of the status document now."""
        return next(e for e in self._evses() if e["id"] == evse_id)

    def _evse_of(self, connector_id: int | None) -> int | None:
        """The EVSE of a connectorId (None for 0, an unknown one, or none given)."""
        pair = self._station.connectors.get(connector_id) if connector_id is not None else None
        return None if pair is None else pair[0]

    def _busy(self, evse_id: int) -> bool:
        """A session holds the car or a transaction is open on the EVSE."""
        return (self._evse(evse_id)["phase"] in HOLDING_PHASES
                or self.transactions.open_transaction(evse_id) is not None)

    async def stop_or_end(self, evse_id: int, trigger: Trigger, reason: StopReason) -> None:
        """Stop the EVSE's session; a transaction without one is ended here."""
        if not await self.charger.stop_session(evse_id) and self.transactions.end(evse_id, trigger, reason):
            self._station.transaction_ended_here(evse_id)

    # ------------------------------------------------------------ Reservation profile

    async def reserve_now(self, payload: dict[str, Any]) -> Any:
        """ReserveNow on a connector, or connectorId 0 (any connector: Rejected unless
        ReserveConnectorZeroSupported); Rejected without the Reservation profile."""
        if not self._reservations():
            return call_result.ReserveNow(status="Rejected")
        connector_id = int(payload["connector_id"])
        evse_id = self._evse_of(connector_id)
        if connector_id == 0:
            if not self.variables.bool_value("ReservationCtrlr", "NonEvseSpecific"):
                return call_result.ReserveNow(status="Rejected")
        elif evse_id is None:
            return call_result.ReserveNow(status="Rejected")
        try:
            reservation = Reservation(
                reservation_id=int(payload["reservation_id"]), id_token=str(payload["id_tag"]),
                expiry_time=self.clock.to_system(parse_rfc3339("expiryDate", payload["expiry_date"])),
                parent_id_token=payload.get("parent_id_tag") or None, evse_id=evse_id,
                connector_type=self._connector_type(connector_id))
        except (FormatError, ValueError) as exc:
            log.warning("ReserveNow refused: %s", exc)
            return call_result.ReserveNow(status="Rejected")
        try:
            result = await self.charger.reserve(reservation)
        except StoreError as exc:
            log.warning("ReserveNow %d: cannot store it (%s): Rejected", reservation.reservation_id, exc)
            return call_result.ReserveNow(status="Rejected")
        log.info("ReserveNow %d for %s on connector %d -> %s", reservation.reservation_id,
                 redact_token(reservation.id_token), connector_id, result.value)
        return call_result.ReserveNow(status=_RESERVE_STATUS[result])

    def _reservations(self) -> bool:
        """The Reservation profile is there (``[ocpp] reservations``) and reservations are enabled."""
        return (self.variables.bool_value("ReservationCtrlr", "Available")
                and self.variables.bool_value("ReservationCtrlr", "Enabled"))

    def _connector_type(self, connector_id: int) -> ConnectorType | None:
        """The type of a connector of a multi-connector EVSE (a reservation of that connector); None otherwise."""
        pair = self._station.connectors.get(connector_id)
        if pair is None:
            return None
        entry = self._evse(pair[0])
        if len(entry["connectors"]) < 2:
            return None
        return ConnectorType(next(c["type"] for c in entry["connectors"] if int(c["id"]) == pair[1]))

    async def cancel_reservation(self, reservation_id: int) -> Any:
        """CancelReservation: Accepted when a live reservation was cancelled."""
        if not self._reservations():
            return call_result.CancelReservation(status="Rejected")
        try:
            cancelled = await self.charger.cancel(reservation_id)
        except StoreError:
            return call_result.CancelReservation(status="Rejected")
        return call_result.CancelReservation(status="Accepted" if cancelled else "Rejected")

    # ------------------------------------------------------------ availability

    async def change_availability(self, connector_id: int, kind: str) -> Any:
        """Operative/Inoperative for the station (0) or one connector's EVSE; Scheduled while one is in use."""
        if connector_id == 0:
            targets = self.charger.evse_ids()
        else:
            evse_id = self._evse_of(connector_id)
            if evse_id is None:
                return call_result.ChangeAvailability(status="Rejected")
            targets = [evse_id]
        status = await self.availability.change(targets, kind == "Operative")
        log.info("ChangeAvailability %s for connector %d -> %s", kind, connector_id, status)
        return call_result.ChangeAvailability(status=status)

    # ------------------------------------------------------------ configuration

    def get_configuration(self, keys: list[str] | None) -> Any:
        """GetConfiguration: the keys and values (unknown keys listed in unknownKey)."""
        return call_result.GetConfiguration(**configuration.get_configuration(self.variables, keys))

    def change_configuration(self, key: str, value: str) -> Any:
        """ChangeConfiguration: Accepted, Rejected, RebootRequired or NotSupported."""
        status = configuration.change_configuration(self.variables, key, value)
        log.info("ChangeConfiguration %s -> %s", key, status)
        return call_result.ChangeConfiguration(status=status)

    # ------------------------------------------------------------ RemoteTrigger

    def trigger_message(self, requested: str, connector_id: int | None) -> Any:
        """TriggerMessage: BootNotification, Heartbeat, StatusNotification and MeterValues (of one connector or
        all), DiagnosticsStatusNotification and FirmwareStatusNotification (Idle: neither is ever under way)."""
        if connector_id is not None and connector_id != 0 and connector_id not in self._station.connectors:
            return call_result.TriggerMessage(status="Rejected")
        if requested == "BootNotification":
            self.outbox.put(self._station.boot_request(), on_result=lambda answer: None if self._station.boot_answer(
                answer) else log.warning("the triggered BootNotification was answered %s", answer.status))
        elif requested == "Heartbeat":
            self._station.send_heartbeat()
        elif requested == "StatusNotification":
            reports = self._station.reports()
            for number in [connector_id] if connector_id is not None else sorted(reports):
                self._station.send_status(number, reports[number])
        elif requested == "MeterValues":
            self._trigger_meter_values(connector_id)
        elif requested == "DiagnosticsStatusNotification":
            self.outbox.put(call.DiagnosticsStatusNotification(status="Idle"))
        elif requested == "FirmwareStatusNotification":
            self.outbox.put(call.FirmwareStatusNotification(status="Idle"))
        else:
            return call_result.TriggerMessage(status="NotImplemented")
        return call_result.TriggerMessage(status="Accepted")

    def _trigger_meter_values(self, connector_id: int | None) -> None:
        """MeterValues (context Trigger) of one connector or all: a transaction's through the durable queue with its
        transactionId, an idle connector's at once."""
        numbers = [connector_id] if connector_id else sorted(self._station.connectors)
        measurands = self.variables.list_value("SampledDataCtrlr", "TxUpdatedMeasurands")
        for number in numbers:
            evse_id = self._station.connectors[number][0]
            if self.transactions.trigger(evse_id):
                continue
            values = meter_value(self._evse(evse_id), measurands, "Trigger", self.clock.timestamp())
            if values is not None:
                self.outbox.put(call.MeterValues(connector_id=number, meter_value=values))

    # ------------------------------------------------------------ remote start and stop

    def remote_start(self, id_tag: str, connector_id: int | None) -> Any:
        """RemoteStartTransaction: Accepted or Rejected now; the idTag is then presented at the connector as if read
        there (authorized by the CSMS first when AuthorizeRemoteTxRequests is true). A connector reserved for
        another idTag rejects it unless the reservation has a parentIdTag: then the idTag's parent decides."""
        evse_id = self._free_evse() if connector_id is None else self._evse_of(connector_id)
        if evse_id is None or len(id_tag) > 20:
            return call_result.RemoteStartTransaction(status="Rejected")
        entry = self._evse(evse_id)
        if entry["phase"] != "idle" or not entry.get("enabled", True) or entry["faults"]:
            return call_result.RemoteStartTransaction(status="Rejected")
        if self.charger.check(ReservationCheck(id_token=id_tag, evse_id=evse_id)) \
                is ReservationCheckStatus.RESERVED_FOR_OTHER_TOKEN:
            return call_result.RemoteStartTransaction(status="Rejected")
        if not self.variables.bool_value("AuthCtrlr", "AuthorizeRemoteStart"):
            self._station.authority.remote_authorized.add((evse_id, id_tag.upper()))
        self.spawn(self._remote_start(evse_id, id_tag))
        return call_result.RemoteStartTransaction(status="Accepted")

    async def _remote_start(self, evse_id: int, id_tag: str) -> None:
        """Present the idTag at the EVSE; when it may not charge, nothing of the start is kept."""
        outcome = await self.charger.present_token(evse_id, id_tag)
        if not outcome.may_charge:
            log.info("RemoteStartTransaction at EVSE %d for %s: %s (%s)", evse_id, redact_token(id_tag),
                     outcome.verdict.value, outcome.reason)
            self._station.authority.remote_authorized.discard((evse_id, id_tag.upper()))

    def _free_evse(self) -> int | None:
        """An EVSE a remote start without connectorId can use: an idle, enabled and healthy one, where a car is
        plugged in if there is such a one (it is waiting there), else the first."""
        free = [e for e in self._evses() if e["phase"] == "idle" and e.get("enabled", True) and not e["faults"]]
        free.sort(key=lambda e: not e.get("plugged_in"))
        return int(free[0]["id"]) if free else None

    def remote_stop(self, transaction_id: int) -> Any:
        """RemoteStopTransaction: Accepted for an open transaction; its session stops after the answer."""
        tx = self.transactions.find(transaction_id)
        if tx is None:
            return call_result.RemoteStopTransaction(status="Rejected")
        self.transactions.tracker.stopping(tx.evse_id, Trigger.REMOTE_STOP, StopReason.REMOTE)
        self.spawn(self.stop_or_end(tx.evse_id, Trigger.REMOTE_STOP, StopReason.REMOTE))
        return call_result.RemoteStopTransaction(status="Accepted")

    # ------------------------------------------------------------ unlock, reset, data transfer

    async def unlock_connector(self, connector_id: int) -> Any:
        """UnlockConnector: a transaction on the connector ends first (reason UnlockCommand), then the lock is
        released under the unlock interlock. NotSupported for a connectorId the station does not have."""
        evse_id = self._evse_of(connector_id)
        if evse_id is None:
            return call_result.UnlockConnector(status="NotSupported")
        if self.transactions.open_transaction(evse_id) is not None:
            self.transactions.stop_reason(evse_id, "UnlockCommand")
            self.transactions.tracker.stopping(evse_id, Trigger.REMOTE_STOP, StopReason.OTHER)
            await self.stop_or_end(evse_id, Trigger.REMOTE_STOP, StopReason.OTHER)
            deadline = asyncio.get_running_loop().time() + UNLOCK_STOP_S
            while self._evse(evse_id)["phase"] in HOLDING_PHASES and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.05)
        outcome = await self.charger.unlock_connector(evse_id)
        log.info("UnlockConnector %d -> %s", connector_id, outcome.value)
        return call_result.UnlockConnector(status="Unlocked" if outcome is UnlockOutcome.UNLOCKED else "UnlockFailed")

    def reset(self, kind: str) -> Any:
        """Reset Soft or Hard: Accepted, then every transaction ends (SoftReset/HardReset) and the process starts
        again; reservations and queued messages are on disk and survive it."""
        if self._on_reset is None:
            return call_result.Reset(status="Rejected")
        self.spawn(self._reset_now(kind))
        return call_result.Reset(status="Accepted")

    async def _reset_now(self, kind: str) -> None:
        """End every transaction and stop its session, give the StopTransactions a few seconds, then restart."""
        await asyncio.sleep(0)  # after the answer
        for tx in self.transactions.tracker.open_transactions():
            self.transactions.stop_reason(tx.evse_id, f"{kind}Reset")
            self.transactions.tracker.stopping(tx.evse_id, Trigger.RESET_COMMAND, StopReason.IMMEDIATE_RESET)
            await self.stop_or_end(tx.evse_id, Trigger.RESET_COMMAND, StopReason.IMMEDIATE_RESET)
        await self.transactions.flushed(RESET_DELIVERY_S)
        log.warning("Reset %s requested by the CSMS: restarting", kind)
        assert self._on_reset is not None  # checked when the reset was accepted
        self._on_reset(kind)

    def data_transfer(self, vendor_id: str) -> Any:
        """This charge point knows no vendor extensions."""
        log.info("DataTransfer from vendor %s: UnknownVendorId", vendor_id)
        return call_result.DataTransfer(status="UnknownVendorId")
