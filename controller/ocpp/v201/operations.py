"""What the CSMS orders an OCPP 2.0.1 station to do: reservations, availability, the device model, triggers,
remote start and stop, transaction status, reset and data transfer.

Each method answers one CALL (the charge point's handlers call them) and never awaits a CALL of ours: what must
follow the answer is spawned as a task or queued in the station's outbox, which holds back until the answer left.
The station (controller.ocpp.v201.station) owns the connection, the outbox and the transaction flow.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ocpp.v201 import call, call_result

from controller.core.parsing import FormatError
from controller.core.store import StoreError
from controller.core.types import ReservationCheck, ReservationCheckStatus, ReservationResult
from controller.ocpp.station.orders import StationOrders
from controller.ocpp.station.status import HOLDING_PHASES, all_statuses, evse_availability, station_availability
from controller.ocpp.station.transactions import StopReason, Trigger
from controller.ocpp.v201.convert import reservation_from_reserve_now, status_info
from controller.ocpp.v201.device_model import ReportBuilder
from controller.ocpp.v201.transactions import meter_value
from controller.ocpp.wire import OcppNotImplementedError
from controller.port.charger import UnlockOutcome
from drivers.redact import redact_token

if TYPE_CHECKING:
    from controller.ocpp.v201.station import Station201
    from controller.ocpp.v201.tx_flow import TransactionFlow

log = logging.getLogger("controller.ocpp")

UPDATE_STATUSES = frozenset({"Expired", "Removed"})  # the core's updates that ReservationStatusUpdate carries
RESET_DELIVERY_S = 5.0  # an Immediate reset waits this long at most for the CSMS to take the Ended events


class Operations(StationOrders):
    """The station's answers to the CSMS's orders."""

    _station: Station201
    transactions: TransactionFlow

    def __init__(self, station: Station201, db_path: Path, on_reset: Callable[[str], None] | None) -> None:
        """Act for ``station`` (``db_path``: ocpp.db, for the availability); ``on_reset(kind)`` restarts the process
        (without it a Reset is Rejected). An Inoperative waits while a session holds the car."""
        super().__init__(station, db_path, on_reset, lambda _evse, entry: entry["phase"] in HOLDING_PHASES)
        self._replacing: set[int] = set()
        self._reset_pending: str | None = None
        self._bind_live_values()

    # ------------------------------------------------------------ live values of the device model (B06, B07)

    def _bind_live_values(self) -> None:
        """Variables read from the station as it is now, for GetVariables and the reports: the clock, the power of
        each EVSE, and the availability (the StatusNotification status) and problems of the station, each EVSE and
        each connector."""
        bind = self.variables.bind
        bind("ClockCtrlr", "DateTime", lambda: self.clock.timestamp())
        bind("ChargingStation", "AvailabilityState",
             lambda: station_availability(all_statuses(self._evses()).values()).value)
        bind("ChargingStation", "Problem", lambda: _bool(any(e["faults"] for e in self._evses())))
        for entry in self._evses():
            evse_id = int(entry["id"])
            bind("EVSE", "AvailabilityState", partial(self._evse_availability, evse_id), evse_id=evse_id)
            bind("EVSE", "Problem", partial(self._evse_problem, evse_id), evse_id=evse_id)
            bind("EVSE", "Power", partial(self._evse_power, evse_id), evse_id=evse_id)
            for connector in entry["connectors"]:
                connector_id = int(connector["id"])
                bind("Connector", "AvailabilityState", partial(self._connector_availability, evse_id, connector_id),
                     evse_id=evse_id, connector_id=connector_id)

    def _evses(self) -> list[dict[str, Any]]:
        """Every EVSE's entry of the status document now."""
        return list(self.charger.status()["evses"])

    def _evse(self, evse_id: int) -> dict[str, Any]:
        """One EVSE's entry of the status document now."""
        return next(e for e in self._evses() if e["id"] == evse_id)

    def _evse_availability(self, evse_id: int) -> str:
        """An EVSE's AvailabilityState from its connectors' statuses."""
        statuses = all_statuses([self._evse(evse_id)])
        return evse_availability(statuses.values()).value

    def _connector_availability(self, evse_id: int, connector_id: int) -> str:
        """A connector's AvailabilityState: its StatusNotification status."""
        return all_statuses([self._evse(evse_id)])[(evse_id, connector_id)].value

    def _evse_problem(self, evse_id: int) -> str:
        """An EVSE's Problem: it has a fault."""
        return _bool(bool(self._evse(evse_id)["faults"]))

    def _evse_power(self, evse_id: int) -> str:
        """An EVSE's power now (W, decimal), 0 without a reading."""
        power = self._evse(evse_id).get("power_w")
        return str(round(max(float(power), 0.0), 1)) if power is not None else "0"

    # ------------------------------------------------------------ reservations (H01-H04)

    def _reservations_available(self) -> None:
        """ReservationCtrlr.Available = false: the station does not implement reservations (CALLERROR)."""
        if not self.variables.bool_value("ReservationCtrlr", "Available"):
            raise OcppNotImplementedError(description="reservations are not available on this station")

    async def reserve_now(self, payload: dict[str, Any]) -> Any:
        """H01: the core decides; Rejected when disabled, when no evseId is given and NonEvseSpecific is off."""
        self._reservations_available()
        if not self.variables.bool_value("ReservationCtrlr", "Enabled"):
            return call_result.ReserveNow(status="Rejected", status_info=status_info("Disabled"))
        if payload.get("evse_id") is None and not self.variables.bool_value("ReservationCtrlr", "NonEvseSpecific"):
            return call_result.ReserveNow(status="Rejected", status_info=status_info("NoEvse",
                                          "reservations without evseId are not supported"))
        try:
            reservation = reservation_from_reserve_now(payload, self.clock)
        except (FormatError, ValueError) as exc:
            return call_result.ReserveNow(status="Rejected", status_info=status_info("InvalidValue", str(exc)))
        rid = reservation.reservation_id
        self._replacing.add(rid)  # a replacement by the same id sends no ReservationStatusUpdate
        try:
            result = await self.charger.reserve(reservation)
        except StoreError as exc:
            log.warning("ReserveNow %d: cannot store it (%s): Rejected", rid, exc)
            return call_result.ReserveNow(status="Rejected", status_info=status_info("StoreFailure"))
        finally:
            self._replacing.discard(rid)
        log.info("ReserveNow %d for %s -> %s", rid, redact_token(reservation.id_token), result.value)
        return call_result.ReserveNow(status=_RESERVE_STATUS[result])

    async def cancel_reservation(self, reservation_id: int) -> Any:
        """H02: Accepted when a live reservation was cancelled (no ReservationStatusUpdate follows)."""
        self._reservations_available()
        try:
            cancelled = await self.charger.cancel(reservation_id)
        except StoreError:
            return call_result.CancelReservation(status="Rejected", status_info=status_info("StoreFailure"))
        return call_result.CancelReservation(status="Accepted" if cancelled else "Rejected")

    def reservation_update(self, event: dict[str, Any]) -> None:
        """H04: Expired and Removed reach the CSMS (kept across an outage); Placed, Cancelled and Used do not."""
        status = event.get("reservation_status")
        rid = event.get("reservation_id")
        if status not in UPDATE_STATUSES or not isinstance(rid, int) or rid in self._replacing:
            return
        self.transactions.record_message("ReservationStatusUpdate",
                                         {"reservation_id": rid, "reservation_update_status": status})

    # ------------------------------------------------------------ availability (G03, G04)

    async def change_availability(self, operational_status: str, evse: dict[str, Any] | None) -> Any:
        """Operative/Inoperative for the station or one EVSE; Scheduled for an EVSE whose session holds the car."""
        targets = self.charger.evse_ids()
        if evse is not None:
            if evse.get("id") not in targets or evse.get("connector_id") not in (None, 1):
                return call_result.ChangeAvailability(status="Rejected", status_info=status_info("UnknownEvse"))
            targets = [int(evse["id"])]
        status = await self.availability.change(targets, operational_status == "Operative")
        log.info("ChangeAvailability %s for %s -> %s", operational_status,
                 "the station" if evse is None else f"EVSE {targets[0]}", status)
        return call_result.ChangeAvailability(status=status)

    # ------------------------------------------------------------ device model (B05-B07)

    def get_variables(self, requests: list[dict[str, Any]]) -> Any:
        """B06: one result per requested variable, in the request's order."""
        return call_result.GetVariables(get_variable_result=[self.variables.get_request(r) for r in requests])

    def set_variables(self, requests: list[dict[str, Any]]) -> Any:
        """B05: each variable set (durably) or refused with the spec's status."""
        results = [self.variables.set_request(r) for r in requests]
        return call_result.SetVariables(set_variable_result=results)

    def get_base_report(self, request_id: int, report_base: str) -> Any:
        """B07: Accepted, then NotifyReport in parts (ItemsPerMessage) after the answer."""
        parts = ReportBuilder(self.variables).parts(report_base)
        if parts is None:
            return call_result.GetBaseReport(status="NotSupported")
        if not parts:
            return call_result.GetBaseReport(status="EmptyResultSet")
        generated = self.clock.timestamp()
        for seq_no, (items, more) in enumerate(parts):
            self.outbox.put(call.NotifyReport(request_id=request_id, generated_at=generated, seq_no=seq_no,
                                              tbc=more, report_data=items), keep_offline=True)
        return call_result.GetBaseReport(status="Accepted")

    # ------------------------------------------------------------ trigger, reset, data transfer

    def trigger_message(self, requested: str, evse: dict[str, Any] | None) -> Any:
        """F06: BootNotification (only before it is accepted), Heartbeat and StatusNotification."""
        if requested == "BootNotification":
            return call_result.TriggerMessage(status="Rejected" if self._station.accepted else "Accepted")
        if requested == "Heartbeat":
            self.outbox.put(call.Heartbeat(), on_result=lambda answer: self._station.learn_time(answer.current_time))
            return call_result.TriggerMessage(status="Accepted")
        if requested in ("TransactionEvent", "MeterValues"):
            return self._trigger_meter_message(requested, evse)
        if requested == "StatusNotification":
            current = all_statuses(self.charger.status()["evses"])
            if evse is not None:
                key = (evse.get("id"), evse.get("connector_id", 1))
                if key not in current:
                    return call_result.TriggerMessage(status="Rejected", status_info=status_info("UnknownEvse"))
                current = {key: current[key]}
            for (evse_id, connector_id), status in sorted(current.items()):
                self._station.send_status(evse_id, connector_id, status.value)
            return call_result.TriggerMessage(status="Accepted")
        return call_result.TriggerMessage(status="NotImplemented")

    def _trigger_meter_message(self, requested: str, evse: dict[str, Any] | None) -> Any:
        """TriggerMessage TransactionEvent (an Updated event of each open transaction) or MeterValues."""
        evse_ids = [int(evse["id"])] if evse is not None and "id" in evse else self.charger.evse_ids()
        if any(evse_id not in self.charger.evse_ids() for evse_id in evse_ids):
            return call_result.TriggerMessage(status="Rejected", status_info=status_info("UnknownEvse"))
        if requested == "TransactionEvent":
            sent = [self.transactions.trigger(evse_id) for evse_id in evse_ids]
            return call_result.TriggerMessage(status="Accepted" if any(sent) else "Rejected")
        measurands = self.variables.list_value("AlignedDataCtrlr", "Measurands")
        for entry in self.charger.status()["evses"]:
            if entry["id"] in evse_ids:
                values = meter_value(entry, measurands, "Trigger", self.clock.timestamp())
                if values is not None:
                    self.outbox.put(call.MeterValues(evse_id=entry["id"], meter_value=values))
        return call_result.TriggerMessage(status="Accepted")

    # ------------------------------------------------------------ remote start and stop (F01-F03), E14

    def request_start(self, payload: dict[str, Any]) -> Any:
        """F01/F02: Accepted or Rejected now; the token is then presented at the EVSE as if read there.

        With AuthCtrlr.AuthorizeRemoteStart the token is authorized by the CSMS first (through the port's
        authority); without it, it is accepted as given. On an EVSE reserved for another token, the start is
        Rejected unless the reservation has a group token: then the token's group decides (H03).
        """
        token = payload["id_token"]["id_token"]
        evse_id = payload.get("evse_id")
        if evse_id is None:
            evse_id = self._free_evse()
        if evse_id not in self.charger.evse_ids():
            return call_result.RequestStartTransaction(status="Rejected", status_info=status_info("UnknownEvse"))
        entry = next(e for e in self.charger.status()["evses"] if e["id"] == evse_id)
        if entry["phase"] != "idle" or not entry.get("enabled", True) or entry["faults"]:
            return call_result.RequestStartTransaction(status="Rejected", status_info=status_info("EvseBusy"))
        check = self.charger.check(ReservationCheck(id_token=token, evse_id=evse_id))
        if check is ReservationCheckStatus.RESERVED_FOR_OTHER_TOKEN:
            return call_result.RequestStartTransaction(status="Rejected",
                                                       status_info=status_info("ReservedForOther"))
        group = payload.get("group_id_token")
        if not self.variables.bool_value("AuthCtrlr", "AuthorizeRemoteStart"):
            self._station.remote_authorized[(evse_id, token.upper())] = group.get("id_token") if group else None
        self.transactions.tracker.remote_start(evse_id, int(payload["remote_start_id"]))
        self.spawn(self._remote_start(evse_id, token))
        open_tx = self.transactions.open_transaction(evse_id)
        return call_result.RequestStartTransaction(
            status="Accepted", transaction_id=open_tx.transaction_id if open_tx is not None else None)

    async def _remote_start(self, evse_id: int, token: str) -> None:
        """Present the remote start's token at the EVSE; when it may not charge, nothing of the start is kept."""
        outcome = await self.charger.present_token(evse_id, token)
        if not outcome.may_charge:
            log.info("RequestStartTransaction at EVSE %d for %s: %s (%s)", evse_id, redact_token(token),
                     outcome.verdict.value, outcome.reason)
            self.transactions.tracker.remote_start_refused(evse_id)
            self._station.remote_authorized.pop((evse_id, token.upper()), None)

    def _free_evse(self) -> int | None:
        """An EVSE a remote start without evseId can use: the first idle, enabled and healthy one."""
        for entry in self.charger.status()["evses"]:
            if entry["phase"] == "idle" and entry.get("enabled", True) and not entry["faults"]:
                return int(entry["id"])
        return None

    def request_stop(self, transaction_id: str) -> Any:
        """F03: Accepted for an open transaction; its session stops (or, without one, it ends) after the answer."""
        tx = self.transactions.tracker.find(transaction_id)
        if tx is None:
            return call_result.RequestStopTransaction(status="Rejected", status_info=status_info("UnknownTx"))
        self.transactions.tracker.stopping(tx.evse_id, Trigger.REMOTE_STOP, StopReason.REMOTE)
        self.spawn(self._remote_stop(tx.evse_id))
        return call_result.RequestStopTransaction(status="Accepted")

    async def _remote_stop(self, evse_id: int) -> None:
        """Stop the session; a transaction without one (e.g. started at EVConnected) is ended here."""
        if not await self.charger.stop_session(evse_id):
            self.transactions.end(evse_id, Trigger.REMOTE_STOP, StopReason.REMOTE)

    def transaction_status(self, transaction_id: str | None) -> Any:
        """E14: whether messages of the transaction wait in the queue, and whether it is still ongoing."""
        waiting = self.transactions.queue.pending_count(transaction_id) > 0
        if transaction_id is None:
            return call_result.GetTransactionStatus(messages_in_queue=waiting)
        ongoing = self.transactions.tracker.find(transaction_id) is not None
        return call_result.GetTransactionStatus(messages_in_queue=waiting, ongoing_indicator=ongoing)

    def reset(self, kind: str, evse_id: int | None) -> Any:
        """B11/B12: a whole-station reset restarts the process (OnIdle: once no session or transaction is left)."""
        if evse_id is not None or self._on_reset is None:
            return call_result.Reset(status="Rejected", status_info=status_info("NotSupported"))
        self._reset_pending = kind
        asyncio.get_running_loop().call_later(0.5, self._maybe_reset)
        return call_result.Reset(status="Scheduled" if kind == "OnIdle" and self._busy() else "Accepted")

    def _busy(self) -> bool:
        """A session holds a car or a transaction is open (one started by the cable has no session): not idle."""
        return (any(e["phase"] in HOLDING_PHASES for e in self.charger.status()["evses"])
                or bool(self.transactions.tracker.open_transactions()))

    def _maybe_reset(self) -> None:
        """Reset now if allowed (Immediate, or OnIdle when idle); else look again in a second."""
        kind = self._reset_pending
        if kind is None or self._on_reset is None:
            return
        if kind == "OnIdle" and self._busy():
            asyncio.get_running_loop().call_later(1.0, self._maybe_reset)
            return
        self._reset_pending = None
        self.spawn(self._reset_now(kind))

    async def _reset_now(self, kind: str) -> None:
        """Restart; an Immediate reset first ends every open transaction with triggerReason ResetCommand and
        stoppedReason ImmediateReset (B12.FR.04) and stops its session, and the Ended events are stored (and, given
        a few seconds, delivered) before the restart."""
        if kind == "Immediate":
            for tx in self.transactions.tracker.open_transactions():
                self.transactions.end(tx.evse_id, Trigger.RESET_COMMAND, StopReason.IMMEDIATE_RESET)
                await self.charger.stop_session(tx.evse_id)
            await self.transactions.flushed(RESET_DELIVERY_S)
        log.warning("Reset %s requested by the CSMS: restarting", kind)
        assert self._on_reset is not None  # checked when the reset was accepted
        self._on_reset(kind)

    async def unlock_connector(self, evse_id: int, connector_id: int) -> Any:
        """F05: OngoingAuthorizedTransaction while a transaction runs, else the lock released under the interlock."""
        if evse_id not in self.charger.evse_ids() or connector_id != 1:
            return call_result.UnlockConnector(status="UnknownConnector")
        if self.transactions.open_transaction(evse_id) is not None:
            return call_result.UnlockConnector(status="OngoingAuthorizedTransaction")
        outcome = await self.charger.unlock_connector(evse_id)
        status = {UnlockOutcome.UNLOCKED: "Unlocked", UnlockOutcome.FAILED: "UnlockFailed",
                  UnlockOutcome.SESSION_RUNNING: "OngoingAuthorizedTransaction"}[outcome]
        return call_result.UnlockConnector(status=status)

    def data_transfer(self, vendor_id: str) -> Any:
        """P01: this station knows no vendor extensions."""
        return call_result.DataTransfer(status="UnknownVendorId")


def _bool(value: bool) -> str:
    """OCPP's spelling of a boolean value."""
    return "true" if value else "false"


_RESERVE_STATUS = {
    ReservationResult.ACCEPTED: "Accepted",
    ReservationResult.FAULTED: "Faulted",
    ReservationResult.OCCUPIED: "Occupied",
    ReservationResult.REJECTED: "Rejected",
    ReservationResult.UNAVAILABLE: "Unavailable",
}
