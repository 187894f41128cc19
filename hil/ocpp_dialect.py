"""What the ``ocpp`` theme says and looks for, per OCPP version: ``Dialect201`` and ``Dialect16``.

The scenarios (hil.scenarios.ocpp) are the same for both versions; they speak through ``CsmsView`` (hil.ocpp_view),
which asks its dialect how to say a request and how to recognise what the DUT sent:

- 2.0.1: a ReserveNow names an EVSE and an idToken, settings are device-model variables (Get/SetVariables), a
  StatusNotification names the EVSE, connector and connectorStatus, a transaction is a series of TransactionEvents
  (Started, Updated, Ended) that carry their transactionId, seqNo and ``offline`` flag, and an expiry is reported
  by a ReservationStatusUpdate;
- 1.6: connectorId N is the N-th connector in EVSE order (``connector_numbers``: as the station numbers them), a
  ReserveNow names a connectorId and an idTag, settings are configuration keys (Get/ChangeConfiguration under
  their 1.6 names, ``KEYS16``), a StatusNotification names the connectorId and status, a transaction is a
  StartTransaction (the CSMS's answer names it), MeterValues and a StopTransaction that carry that transactionId,
  and an expiring reservation is seen only as the connector becoming Available again.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from controller.config.loader import ChargerConfig
from hil.csms import Received

TOKEN_TYPE = "ISO14443"  # the station's own type for RFID tokens (controller.ocpp.v201.station)
KEYS16 = {("SampledDataCtrlr", "TxUpdatedInterval"): "MeterValueSampleInterval",
          ("AlignedDataCtrlr", "Interval"): "ClockAlignedDataInterval"}
"""The 1.6 configuration key of each 2.0.1 variable a scenario sets (OCPP 2.0.1 part 2, appendix: 1.6 keys)."""


def connector_numbers(config: ChargerConfig) -> dict[int, tuple[int, int]]:
    """1.6 connectorId (1, 2, ...) -> (EVSE id, connector id): the DUT's connectors in EVSE order."""
    pairs = sorted((evse.id, connector.id) for evse in config.evses for connector in evse.connectors)
    return dict(enumerate(pairs, start=1))


def stamp(text: str) -> datetime:
    """An OCPP date-time as a datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class Dialect201:
    """OCPP 2.0.1."""

    version = "2.0.1"
    has_offline_flag = True  # TransactionEvents say whether they were made offline
    start_action = end_action = update_action = "TransactionEvent"
    tx_actions: tuple[str, ...] = ("TransactionEvent",)

    def __init__(self, connectors: Mapping[int, tuple[int, int]]) -> None:
        """``connectors``: 1.6 connectorId -> (EVSE, connector) (unused in 2.0.1)."""
        self.connectors = dict(connectors)

    # ------------------------------------------------------------ requests

    def reserve_now(self, reservation_id: int, token: str, evse: int | None, expiry: str) -> dict[str, Any]:
        """A ReserveNow of an EVSE (or any, ``evse`` None) for a token."""
        payload: dict[str, Any] = {"id": reservation_id, "idToken": {"idToken": token, "type": TOKEN_TYPE},
                                   "expiryDateTime": expiry}
        if evse is not None:
            payload["evseId"] = evse
        return payload

    def get_setting(self, component: str, variable: str) -> tuple[str, dict[str, Any]]:
        """The request that reads a setting."""
        return "GetVariables", {"getVariableData": [{"component": {"name": component}, "variable": {"name": variable}}]}

    def setting(self, answer: dict[str, Any]) -> tuple[bool, str | None]:
        """(answered Accepted, the value) of a read."""
        result = (answer.get("getVariableResult") or [{}])[0]
        value = result.get("attributeValue")
        return result.get("attributeStatus") == "Accepted", None if value is None else str(value)

    def set_setting(self, component: str, variable: str, value: str) -> tuple[str, dict[str, Any]]:
        """The request that changes a setting."""
        return "SetVariables", {"setVariableData": [{"component": {"name": component}, "variable": {"name": variable},
                                                     "attributeValue": value}]}

    def set_status(self, answer: dict[str, Any]) -> str | None:
        """The status a change of a setting was answered with."""
        return (answer.get("setVariableResult") or [{}])[0].get("attributeStatus")  # type: ignore[no-any-return]

    def trigger(self, message: str, evse: int | None) -> dict[str, Any]:
        """A TriggerMessage (of one EVSE)."""
        payload: dict[str, Any] = {"requestedMessage": message}
        if evse is not None:
            payload["evse"] = {"id": evse}
        return payload

    # ------------------------------------------------------------ what the DUT sent

    def status(self, payload: dict[str, Any], evse: int) -> str | None:
        """The status a StatusNotification reports for the EVSE's connector (None: not about it)."""
        return str(payload["connectorStatus"]) if payload["evseId"] == evse else None

    def authorize_token(self, payload: dict[str, Any]) -> str:
        """The token an Authorize asks about."""
        return str(payload["idToken"]["idToken"])

    def meter_values_of(self, payload: dict[str, Any], evse: int) -> bool:
        """A MeterValues of this EVSE."""
        return bool(payload["evseId"] == evse)

    def tx_id(self, message: Received) -> str | None:
        """The transaction a message belongs to (None: none)."""
        if message.action != "TransactionEvent":
            return None
        return str(message.payload["transactionInfo"]["transactionId"])

    def started(self, message: Received, evse: int) -> bool:
        """The message that starts a transaction on the EVSE."""
        p = message.payload
        return message.action == "TransactionEvent" and p["eventType"] == "Started" and p["evse"]["id"] == evse

    def ended(self, message: Received, tx: str, reason: str) -> bool:
        """The message that ends the transaction for this reason."""
        p = message.payload
        return (message.action == "TransactionEvent" and p["eventType"] == "Ended" and self.tx_id(message) == tx
                and p["transactionInfo"].get("stoppedReason") == reason)

    def periodic(self, message: Received) -> bool:
        """A periodic meter value report of a transaction (SampledDataCtrlr.TxUpdatedInterval)."""
        return message.action == "TransactionEvent" and message.payload["triggerReason"] == "MeterValuePeriodic"

    def metered(self, message: Received) -> bool:
        """A transaction message that carries meter readings: Started, Ended and the periodic updates (a state
        change such as SuspendedEV -> Charging carries none)."""
        return self.periodic(message) or message.payload.get("eventType") != "Updated"

    def made(self, message: Received) -> datetime:
        """When the DUT made a transaction message (its clock)."""
        return stamp(str(message.payload["timestamp"]))

    def marked_offline(self, message: Received) -> bool:
        """The message says it was made while offline."""
        return message.payload.get("offline") is True

    def in_order(self, unique: list[Received]) -> tuple[bool, str, str]:
        """(ok, what was checked, what was seen) for a transaction's messages (first arrivals, arrival order):
        seqNo 0, 1, 2, ... each once, in order, the last one Ended."""
        seq = [int(m.payload["seqNo"]) for m in unique]
        ok = seq == list(range(len(seq))) and bool(unique) and unique[-1].payload["eventType"] == "Ended"
        return ok, f"seqNo 0..{len(seq) - 1} each once, in order", f"seqNo in arrival order: {seq}"


class Dialect16(Dialect201):
    """OCPP 1.6J (what is not overridden is said as in 2.0.1, e.g. CancelReservation)."""

    version = "1.6"
    has_offline_flag = False  # 1.6 messages do not say they were made offline: their timestamps tell
    start_action, end_action, update_action = "StartTransaction", "StopTransaction", "MeterValues"
    tx_actions = ("StartTransaction", "MeterValues", "StopTransaction")

    def connector(self, evse: int) -> int:
        """The connectorId of the EVSE's first connector."""
        return min(number for number, (evse_id, _) in self.connectors.items() if evse_id == evse)

    def reserve_now(self, reservation_id: int, token: str, evse: int | None, expiry: str) -> dict[str, Any]:
        """A ReserveNow of the EVSE's connector (or connectorId 0: any) for an idTag."""
        return {"reservationId": reservation_id, "idTag": token, "expiryDate": expiry,
                "connectorId": 0 if evse is None else self.connector(evse)}

    def _key(self, component: str, variable: str) -> str:
        """The 1.6 configuration key of a 2.0.1 variable (KeyError names what has none)."""
        try:
            return KEYS16[(component, variable)]
        except KeyError:
            raise KeyError(f"{component}.{variable} has no 1.6 configuration key in hil.ocpp_dialect.KEYS16") from None

    def get_setting(self, component: str, variable: str) -> tuple[str, dict[str, Any]]:
        """GetConfiguration of the variable's 1.6 key."""
        return "GetConfiguration", {"key": [self._key(component, variable)]}

    def setting(self, answer: dict[str, Any]) -> tuple[bool, str | None]:
        """(the key is known, its value) of a GetConfiguration answer."""
        keys = answer.get("configurationKey") or []
        value = keys[0].get("value") if keys else None
        return bool(keys), None if value is None else str(value)

    def set_setting(self, component: str, variable: str, value: str) -> tuple[str, dict[str, Any]]:
        """ChangeConfiguration of the variable's 1.6 key."""
        return "ChangeConfiguration", {"key": self._key(component, variable), "value": value}

    def set_status(self, answer: dict[str, Any]) -> str | None:
        """The ChangeConfiguration's status."""
        return answer.get("status")

    def trigger(self, message: str, evse: int | None) -> dict[str, Any]:
        """A TriggerMessage (of the EVSE's connector)."""
        payload: dict[str, Any] = {"requestedMessage": message}
        if evse is not None:
            payload["connectorId"] = self.connector(evse)
        return payload

    def status(self, payload: dict[str, Any], evse: int) -> str | None:
        """The status a StatusNotification reports for the EVSE's connector (None: not about it)."""
        where = self.connectors.get(int(payload["connectorId"]))
        return str(payload["status"]) if where is not None and where[0] == evse else None

    def authorize_token(self, payload: dict[str, Any]) -> str:
        """The idTag an Authorize asks about."""
        return str(payload["idTag"])

    def meter_values_of(self, payload: dict[str, Any], evse: int) -> bool:
        """A MeterValues of the EVSE's connector."""
        return bool(payload["connectorId"] == self.connector(evse))

    def tx_id(self, message: Received) -> str | None:
        """The transactionId: the CSMS's answer to a StartTransaction, the field of a MeterValues or stop."""
        if message.action == "StartTransaction":
            value = message.answer.get("transactionId")
        elif message.action in ("MeterValues", "StopTransaction"):
            value = message.payload.get("transactionId")
        else:
            return None
        return None if value is None else str(value)

    def started(self, message: Received, evse: int) -> bool:
        """A StartTransaction of the EVSE's connector."""
        return message.action == "StartTransaction" and message.payload["connectorId"] == self.connector(evse)

    def ended(self, message: Received, tx: str, reason: str) -> bool:
        """The StopTransaction of the transaction with this reason (Local when it names none)."""
        return (message.action == "StopTransaction" and self.tx_id(message) == tx
                and message.payload.get("reason", "Local") == reason)

    def periodic(self, message: Received) -> bool:
        """A transaction's MeterValues of context Sample.Periodic (MeterValueSampleInterval)."""
        return message.action == "MeterValues" and message.payload.get("transactionId") is not None and all(
            v.get("context") == "Sample.Periodic" for mv in message.payload["meterValue"] for v in mv["sampledValue"])

    def metered(self, message: Received) -> bool:
        """StartTransaction (meterStart), StopTransaction (meterStop) and the periodic MeterValues."""
        return message.action in ("StartTransaction", "StopTransaction") or self.periodic(message)

    def made(self, message: Received) -> datetime:
        """The message's timestamp (a MeterValues': its first meter value's)."""
        if message.action == "MeterValues":
            return stamp(str(message.payload["meterValue"][0]["timestamp"]))
        return stamp(str(message.payload["timestamp"]))

    def marked_offline(self, message: Received) -> bool:
        """1.6 has no such mark."""
        return False

    def in_order(self, unique: list[Received]) -> tuple[bool, str, str]:
        """One StartTransaction first, one StopTransaction last, the MeterValues between in timestamp order."""
        actions = [m.action for m in unique]
        made = [self.made(m) for m in unique if m.action == "MeterValues"]
        ok = (len(actions) >= 2 and actions[0] == "StartTransaction" and actions[-1] == "StopTransaction"
              and actions.count("StartTransaction") == 1 and actions.count("StopTransaction") == 1
              and made == sorted(made))
        order = ", ".join(f"{a}@{self.made(m):%H:%M:%S.%f}"[:-3] for a, m in zip(actions, unique, strict=True))
        return ok, "StartTransaction first, StopTransaction last, MeterValues between in order, each once", order


Dialect = Dialect201 | Dialect16


def dialect(version: str, connectors: Mapping[int, tuple[int, int]]) -> Dialect:
    """The dialect of an OCPP version ("2.0.1" or "1.6")."""
    return Dialect16(connectors) if version == "1.6" else Dialect201(connectors)
