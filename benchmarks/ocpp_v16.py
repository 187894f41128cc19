"""What the OCPP benchmark (benchmarks/ocpp.py) says and looks for in OCPP 1.6J: ``Driver16``.

The phases are those of 2.0.1 (benchmarks/ocpp_phases.py, driven by benchmarks/ocpp_v201.py's ``Driver``); here
the station runs with ``[ocpp] version = "1.6"`` (``run --ocpp-version 1.6``). A ReserveNow names connectorId 1
(= EVSE 1) and an idTag; a StatusNotification names a connectorId and a ChargePointStatus. The drain queues
MeterValues (context Trigger, TriggerMessage MeterValues' path) of a transaction whose StartTransaction the CSMS
has answered: each leaves with the transactionId of that answer, written in at send time.

The bench's CSMS is hil/csms.py's ``HarnessCsms`` with ``version="1.6"`` (subprotocol ``ocpp1.6``, the 1.6
answers of hil/csms_answers.py: a StartTransaction gets a new transactionId), schema checks off as in 2.0.1.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ocpp_v201 import Driver

from hil.csms import HarnessCsms, Received, ocpp_time


class Driver16(Driver):
    """OCPP 1.6J: connectorIds for EVSEs, Start/StopTransaction and MeterValues for TransactionEvents."""

    name = "ocpp1.6"
    version = "1.6"
    csms_description = ("hil/csms.py with version 1.6 (websockets server on the subprotocol ocpp1.6, ocpp.messages "
                        "framing, no schema checks) on 127.0.0.1")
    how_queued = ("TransactionFlow16.trigger(1) (TriggerMessage MeterValues' path) while the CSMS was down: "
                  "MeterValues (context Trigger) of the running transaction, each written to the durable queue by "
                  "the station's writer (WAL, synchronous=FULL), its transactionId written in at send time")

    def make_csms(self) -> HarnessCsms:
        """The 1.6 CSMS: answers every CALL at once, no schema checks."""
        return HarnessCsms(validate=False, version=self.version)

    def daemon_args(self) -> list[str]:
        """``--ocpp-version 1.6``."""
        return ["--ocpp-version", self.version]

    def reserve_now(self, reservation_id: int) -> dict[str, Any]:
        """A ReserveNow for connectorId 1 (EVSE 1), ten minutes long."""
        return {"connectorId": 1, "expiryDate": ocpp_time(datetime.now(UTC) + timedelta(minutes=10)),
                "idTag": "BENCH-TOKEN", "reservationId": reservation_id}

    def connector_status(self, message: Received) -> tuple[int, str] | None:
        """(connectorId, status) of a StatusNotification of a connector (not of connectorId 0, the station)."""
        payload = message.payload
        if message.action != "StatusNotification" or not payload.get("connectorId"):
            return None
        return int(payload["connectorId"]), str(payload["status"])

    def told_charging(self, message: Received) -> bool:
        """The CSMS was told that the transaction charges: StatusNotification Charging of connectorId 1."""
        return self.connector_status(message) == (1, "Charging")

    def transaction_ref(self, flow: Any, tx: Any) -> Any:
        """The CSMS's transactionId of ``tx`` (None until its StartTransaction is answered)."""
        return flow.transaction_id(tx)

    def triggered(self, message: Received, ref: Any) -> bool:
        """A MeterValues of that transaction made by a TriggerMessage (context Trigger)."""
        payload = message.payload
        return (message.action == "MeterValues" and payload.get("transactionId") == ref
                and all(value.get("context") == "Trigger" for meter_value in payload["meterValue"]
                        for value in meter_value["sampledValue"]))

    def delivery_facts(self, events: list[Received]) -> dict[str, Any]:
        """1.6 has no seqNo or offline flag: the order the meter values were taken in, and no message id twice."""
        stamps = [str(m.payload["meterValue"][0]["timestamp"]) for m in events]
        return {"timestamps_in_order": stamps == sorted(stamps),
                "unique_message_ids": len({m.unique_id for m in events}) == len(events)}
