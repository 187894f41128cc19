"""The CSMS's CALLs to an OCPP 1.6J charge point: the ``ocpp`` library's v16 ChargePoint with our handlers.

Each handler only translates and answers; the work is done by the station (controller.ocpp.v16.station), its
operations (controller.ocpp.v16.operations) and the controller behind the port. Before any handler sees a CALL it
is checked as OCPP-J says (``controller.ocpp.wire.refusal``): NotImplemented for an action 1.6 does not have,
NotSupported for one of a feature profile this station does not implement (FirmwareManagement, the security
extensions), and FormatViolation, TypeConstraintViolation, OccurenceConstraintViolation or
PropertyConstraintViolation for a payload its schema refuses; the connection stays up. While a CALL is answered
the station's outbox holds back, so the CALLRESULT leaves before what it caused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ocpp.v16 import ChargePoint as _LibraryChargePoint
from websockets.asyncio.client import ClientConnection

from controller.ocpp.wire import answer_call, handled_actions, on, wire_logger

if TYPE_CHECKING:
    from controller.ocpp.v16.station import Station16


class ChargePoint16(_LibraryChargePoint):  # type: ignore[misc]
    """One connection's message router: CSMS CALLs to the station's handlers, our CALLs out (``call``)."""

    def __init__(self, station: Station16, websocket: ClientConnection, response_timeout_s: float) -> None:
        """Route the CALLs arriving on ``websocket`` to ``station``."""
        super().__init__(station.station_id, websocket, response_timeout=response_timeout_s, logger=wire_logger())
        self._station = station
        self._handled = handled_actions(self.route_map)

    async def _handle_call(self, msg: Any) -> Any:
        """Refuse a CALL OCPP-J says to refuse, else answer it; with the outbox held (controller.ocpp.wire)."""
        return await answer_call(msg, "1.6", self._handled, self._station.outbox, self._send, super()._handle_call)

    # ------------------------------------------------------------ Core

    @on("ChangeAvailability")
    async def on_change_availability(self, connector_id: int, type: str, **_: Any) -> Any:
        """Make the station (connectorId 0) or one connector Operative or Inoperative (Scheduled while in use)."""
        return await self._station.operations.change_availability(connector_id, type)

    @on("ChangeConfiguration")
    def on_change_configuration(self, key: str, value: str, **_: Any) -> Any:
        """Set one configuration key (persisted before Accepted)."""
        return self._station.operations.change_configuration(key, value)

    @on("GetConfiguration")
    def on_get_configuration(self, key: list[str] | None = None, **_: Any) -> Any:
        """Every configuration key, or the asked ones (unknown ones listed apart)."""
        return self._station.operations.get_configuration(key)

    @on("ClearCache")
    def on_clear_cache(self, **_: Any) -> Any:
        """Forget the authorization cache."""
        return self._station.authority.clear_cache()

    @on("DataTransfer")
    def on_data_transfer(self, vendor_id: str, **_: Any) -> Any:
        """No vendor extensions here: UnknownVendorId."""
        return self._station.operations.data_transfer(vendor_id)

    @on("RemoteStartTransaction")
    def on_remote_start_transaction(self, id_tag: str, connector_id: int | None = None,
                                    charging_profile: dict[str, Any] | None = None, **_: Any) -> Any:
        """Start a session for an idTag (authorized first when AuthorizeRemoteTxRequests is true), with the TxProfile
        of the transaction it starts if one is given."""
        return self._station.smart_charging.remote_start(id_tag, connector_id, charging_profile)

    @on("RemoteStopTransaction")
    def on_remote_stop_transaction(self, transaction_id: int, **_: Any) -> Any:
        """Stop the session of a transaction."""
        return self._station.operations.remote_stop(transaction_id)

    @on("Reset")
    def on_reset(self, type: str, **_: Any) -> Any:
        """Restart the station (transactions end first: SoftReset or HardReset)."""
        return self._station.operations.reset(type)

    @on("UnlockConnector")
    async def on_unlock_connector(self, connector_id: int, **_: Any) -> Any:
        """Release a connector's lock under the unlock interlock (a transaction on it ends first)."""
        return await self._station.operations.unlock_connector(connector_id)

    # ------------------------------------------------------------ LocalAuthListManagement

    @on("SendLocalList")
    def on_send_local_list(self, **payload: Any) -> Any:
        """Update the local authorization list (Full or Differential)."""
        return self._station.authority.send_local_list(payload)

    @on("GetLocalListVersion")
    def on_get_local_list_version(self, **_: Any) -> Any:
        """The local list's version."""
        return self._station.authority.get_local_list_version()

    # ------------------------------------------------------------ Reservation

    @on("ReserveNow")
    def on_reserve_now(self, **payload: Any) -> Any:
        """Reserve a connector (or any, connectorId 0) for an idTag (and its parentIdTag)."""
        return self._station.operations.reserve_now(payload)

    @on("CancelReservation")
    def on_cancel_reservation(self, reservation_id: int, **_: Any) -> Any:
        """Cancel a reservation by id."""
        return self._station.operations.cancel_reservation(reservation_id)

    # ------------------------------------------------------------ SmartCharging

    @on("SetChargingProfile")
    async def on_set_charging_profile(self, connector_id: int, cs_charging_profiles: dict[str, Any],
                                      **_: Any) -> Any:
        """Install a charging profile on a connector (0: the charge point), applied at once."""
        return await self._station.smart_charging.set_charging_profile(connector_id, cs_charging_profiles)

    @on("ClearChargingProfile")
    async def on_clear_charging_profile(self, id: int | None = None, connector_id: int | None = None,
                                        charging_profile_purpose: str | None = None, stack_level: int | None = None,
                                        **_: Any) -> Any:
        """Clear charging profiles by id, or by connector, purpose and stack level."""
        return await self._station.smart_charging.clear_charging_profile(id, connector_id, charging_profile_purpose,
                                                                          stack_level)

    @on("GetCompositeSchedule")
    def on_get_composite_schedule(self, connector_id: int, duration: int, charging_rate_unit: str | None = None,
                                  **_: Any) -> Any:
        """The composite schedule of a connector (0: the charge point)."""
        return self._station.smart_charging.get_composite_schedule(connector_id, duration, charging_rate_unit)

    # ------------------------------------------------------------ RemoteTrigger

    @on("TriggerMessage")
    def on_trigger_message(self, requested_message: str, connector_id: int | None = None, **_: Any) -> Any:
        """Send a message now."""
        return self._station.operations.trigger_message(requested_message, connector_id)
