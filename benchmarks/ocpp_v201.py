"""What the OCPP benchmark (benchmarks/ocpp.py) says and looks for in OCPP 2.0.1: ``Driver``.

The phases (benchmarks/ocpp_phases.py) are the same for every version: a ReserveNow and its StatusNotification, the
reserved LED, a drain of triggered meter values after an outage. What differs is in a driver: the CSMS, the
ReserveNow payload, how a StatusNotification names a connector, how the CSMS learns that a transaction charges, and
which queued message a TriggerMessage made. ``Driver`` is OCPP 2.0.1 (TransactionEvents); benchmarks/ocpp_v16.py
derives the 1.6J one (Start/StopTransaction and MeterValues).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hil.csms import HarnessCsms, Received, ocpp_time


class Driver:
    """OCPP 2.0.1: the bench's CSMS is hil/csms.py; the transaction's meter values are TransactionEvents."""

    name = "ocpp2.0.1"  # the key of this version's figures in the JSON
    version = "2.0.1"  # [ocpp] version
    csms_description = "hil/csms.py (websockets server, ocpp.messages framing, no schema checks) on 127.0.0.1"
    how_queued = ("TransactionFlow.trigger(1) (TriggerMessage TransactionEvent's path) while the CSMS was down: "
                  "Updated events with meter values, each written to the durable queue by the station's writer "
                  "(WAL, synchronous=FULL)")

    def make_csms(self) -> HarnessCsms:
        """The bench's CSMS for this version: answers every CALL at once, no schema checks."""
        return HarnessCsms(validate=False)

    def daemon_args(self) -> list[str]:
        """What ``run --sim --ocpp-url URL --ocpp-id BENCH`` gets for this version (2.0.1 is the default)."""
        return []

    def reserve_now(self, reservation_id: int) -> dict[str, Any]:
        """A ReserveNow for EVSE 1, ten minutes long."""
        return {"id": reservation_id, "evseId": 1, "idToken": {"idToken": "BENCH-TOKEN", "type": "ISO14443"},
                "expiryDateTime": ocpp_time(datetime.now(UTC) + timedelta(minutes=10))}

    def cancel_reservation(self, reservation_id: int) -> dict[str, Any]:
        """A CancelReservation of that reservation."""
        return {"reservationId": reservation_id}

    def connector_status(self, message: Received) -> tuple[int, str] | None:
        """(EVSE, status) of a StatusNotification of an EVSE's connector 1; None for anything else."""
        payload = message.payload
        if message.action != "StatusNotification" or payload.get("connectorId") != 1:
            return None
        return int(payload["evseId"]), str(payload["connectorStatus"])

    def told_charging(self, message: Received) -> bool:
        """The CSMS was told that the transaction charges: a TransactionEvent with chargingState Charging."""
        return (message.action == "TransactionEvent"
                and message.payload["transactionInfo"].get("chargingState") == "Charging")

    def transaction_ref(self, flow: Any, tx: Any) -> Any:
        """How the CSMS names the open transaction ``tx`` (2.0.1: the station's transactionId; None: not yet)."""
        return tx.transaction_id

    def triggered(self, message: Received, ref: Any) -> bool:
        """A TransactionEvent of that transaction made by a TriggerMessage."""
        payload = message.payload
        return (message.action == "TransactionEvent" and payload["transactionInfo"]["transactionId"] == ref
                and payload["triggerReason"] == "Trigger")

    def delivery_facts(self, events: list[Received]) -> dict[str, Any]:
        """What the drained events say about their order: offline flags and seqNos without a gap."""
        seq = [int(m.payload["seqNo"]) for m in events]
        return {"marked_offline": sum(1 for m in events if m.payload.get("offline") is True),
                "seq_no_contiguous": seq == list(range(seq[0], seq[0] + len(seq)))}
