"""The CSMS's CALLs to an OCPP 2.0.1 station: the ``ocpp`` library's ChargePoint with our handlers.

Each handler only translates and answers; the work is done by the station (controller.ocpp.v201.station) and
the controller behind the port. The library validates every CALL against the OCA schemas first and answers a
bad one with the right CALLERROR (FormatViolation, PropertyConstraintViolation, TypeConstraintViolation, ...);
a handler that raises answers with a CALLERROR too, and the connection stays up. While a CALL is answered the
station's outbox holds back, so the CALLRESULT leaves before what it caused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ocpp.v201 import ChargePoint as _LibraryChargePoint
from websockets.asyncio.client import ClientConnection

from controller.ocpp.wire import answer_call, handled_actions, on, wire_logger

if TYPE_CHECKING:
    from controller.ocpp.v201.station import Station201


class ChargePoint201(_LibraryChargePoint):  # type: ignore[misc]
    """One connection's message router: CSMS CALLs to the station's handlers, our CALLs out (``call``)."""

    def __init__(self, station: Station201, websocket: ClientConnection, response_timeout_s: float) -> None:
        """Route the CALLs arriving on ``websocket`` to ``station``."""
        super().__init__(station.station_id, websocket, response_timeout=response_timeout_s, logger=wire_logger())
        self._station = station
        self._handled = handled_actions(self.route_map)

    async def _handle_call(self, msg: Any) -> Any:
        """Refuse a CALL OCPP-J says to refuse, else answer it; with the outbox held (controller.ocpp.wire)."""
        return await answer_call(msg, "2.0.1", self._handled, self._station.outbox, self._send,
                                 super()._handle_call)

    # ------------------------------------------------------------ H: reservations

    @on("ReserveNow")
    def on_reserve_now(self, **payload: Any) -> Any:
        """H01: reserve an EVSE (evseId) or any EVSE (none) for a token (and its group)."""
        return self._station.operations.reserve_now(payload)

    @on("CancelReservation")
    def on_cancel_reservation(self, reservation_id: int, **_: Any) -> Any:
        """H02: cancel by id."""
        return self._station.operations.cancel_reservation(reservation_id)

    # ------------------------------------------------------------ B: provisioning, G: availability

    @on("GetVariables")
    def on_get_variables(self, get_variable_data: list[dict[str, Any]], **_: Any) -> Any:
        """B06: read device model variables."""
        return self._station.operations.get_variables(get_variable_data)

    @on("SetVariables")
    def on_set_variables(self, set_variable_data: list[dict[str, Any]], **_: Any) -> Any:
        """B05: write device model variables (persisted before Accepted)."""
        return self._station.operations.set_variables(set_variable_data)

    @on("GetBaseReport")
    def on_get_base_report(self, request_id: int, report_base: str, **_: Any) -> Any:
        """B07: accept, then send NotifyReport parts after the answer."""
        return self._station.operations.get_base_report(request_id, report_base)

    @on("ChangeAvailability")
    async def on_change_availability(self, operational_status: str, evse: dict[str, Any] | None = None,
                                     **_: Any) -> Any:
        """G03/G04: make the station or one EVSE Operative or Inoperative (Scheduled while a session runs)."""
        return await self._station.operations.change_availability(operational_status, evse)

    @on("TriggerMessage")
    def on_trigger_message(self, requested_message: str, evse: dict[str, Any] | None = None, **_: Any) -> Any:
        """F06: send a message now."""
        return self._station.operations.trigger_message(requested_message, evse)

    @on("Reset")
    def on_reset(self, type: str, evse_id: int | None = None, **_: Any) -> Any:
        """B11/B12: restart the station (OnIdle waits for idle EVSEs)."""
        return self._station.operations.reset(type, evse_id)

    # ------------------------------------------------------------ F: remote control, E: transactions

    @on("RequestStartTransaction")
    def on_request_start_transaction(self, **payload: Any) -> Any:
        """F01/F02: start a session for a token (authorized first when AuthCtrlr.AuthorizeRemoteStart); K05: with
        the TxProfile for the transaction it starts."""
        return self._station.smart_charging.request_start(payload)

    @on("RequestStopTransaction")
    def on_request_stop_transaction(self, transaction_id: str, **_: Any) -> Any:
        """F03: stop the session of a transaction."""
        return self._station.operations.request_stop(transaction_id)

    @on("GetTransactionStatus")
    def on_get_transaction_status(self, transaction_id: str | None = None, **_: Any) -> Any:
        """E14: queued messages and whether the transaction is ongoing."""
        return self._station.operations.transaction_status(transaction_id)

    @on("UnlockConnector")
    async def on_unlock_connector(self, evse_id: int, connector_id: int, **_: Any) -> Any:
        """F05: release the lock (never during a transaction, always under the unlock interlock)."""
        return await self._station.operations.unlock_connector(evse_id, connector_id)

    # ------------------------------------------------------------ K: smart charging

    @on("SetChargingProfile")
    async def on_set_charging_profile(self, evse_id: int, charging_profile: dict[str, Any], **_: Any) -> Any:
        """K01: install a charging profile, applied at once."""
        return await self._station.smart_charging.set_charging_profile(evse_id, charging_profile)

    @on("ClearChargingProfile")
    async def on_clear_charging_profile(self, charging_profile_id: int | None = None,
                                        charging_profile_criteria: dict[str, Any] | None = None, **_: Any) -> Any:
        """K10: clear charging profiles by id or criteria."""
        return await self._station.smart_charging.clear_charging_profile(charging_profile_id,
                                                                          charging_profile_criteria)

    @on("GetChargingProfiles")
    def on_get_charging_profiles(self, request_id: int, charging_profile: dict[str, Any], evse_id: int | None = None,
                                 **_: Any) -> Any:
        """K09: report the installed profiles that match (ReportChargingProfiles after the answer)."""
        return self._station.smart_charging.get_charging_profiles(request_id, charging_profile, evse_id)

    @on("GetCompositeSchedule")
    def on_get_composite_schedule(self, duration: int, evse_id: int, charging_rate_unit: str | None = None,
                                  **_: Any) -> Any:
        """K08: the composite schedule of an EVSE or the station."""
        return self._station.smart_charging.get_composite_schedule(duration, evse_id, charging_rate_unit)

    # ------------------------------------------------------------ C: authorization, P: data transfer

    @on("ClearCache")
    def on_clear_cache(self, **_: Any) -> Any:
        """C11: forget the authorization cache."""
        return self._station.clear_cache()

    @on("SendLocalList")
    def on_send_local_list(self, **payload: Any) -> Any:
        """D01: update the local authorization list."""
        return self._station.send_local_list(payload)

    @on("GetLocalListVersion")
    def on_get_local_list_version(self, **_: Any) -> Any:
        """D02: the local list's version."""
        return self._station.get_local_list_version()

    @on("DataTransfer")
    def on_data_transfer(self, vendor_id: str, **_: Any) -> Any:
        """P01: no vendor extensions here: UnknownVendorId."""
        return self._station.operations.data_transfer(vendor_id)
