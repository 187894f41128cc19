"""OCPP 1.6 StartTransaction, StopTransaction and MeterValues payloads from the core's TxEvents and meter readings.

Payloads are built in the ``ocpp`` library's snake_case (``call.StartTransaction(**payload)`` sends them) and stored
that way in the durable queue. A StopTransaction or a transaction's MeterValues is built without its
``transaction_id``: the CSMS gives that in its answer to the StartTransaction, and the queue writes it into the
field at send time (``reference_field``). Meter values come from the EVSE's entry of ``Charger.status()`` at the
moment: Energy.Active.Import.Register (Wh), Power.Active.Import (W), Current.Import per phase (A), as the 1.6
keys select them (MeterValuesSampledData, StopTxnSampledData, MeterValuesAlignedData); values are strings in 1.6.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from controller.ocpp.station.transactions import StopReason, Transaction

ENERGY = "Energy.Active.Import.Register"
POWER = "Power.Active.Import"
CURRENT = "Current.Import"
SAMPLED_MEASURANDS = (ENERGY, POWER, CURRENT)  # what the EVSE entries have readings of (no voltage yet)
REFERENCE_FIELD = "transaction_id"  # where the queue writes the CSMS's transactionId (snake_case, as stored)
ID_TAG_MAX = 20  # IdToken is CiString20Type in 1.6

STOP_REASONS = {
    StopReason.LOCAL: "Local",
    StopReason.REMOTE: "Remote",
    StopReason.EV_DISCONNECTED: "EVDisconnected",
    StopReason.DEAUTHORIZED: "DeAuthorized",
    StopReason.OTHER: "Other",
    StopReason.POWER_LOSS: "PowerLoss",
    StopReason.IMMEDIATE_RESET: "HardReset",
    StopReason.REBOOT: "Reboot",
    StopReason.TIMEOUT: "Other",
}
"""The 1.6 StopTransaction reason of each neutral stop reason (the layer overrides it for UnlockCommand and
SoftReset, which the neutral core does not name)."""


def meter_wh(evse: Mapping[str, Any]) -> int | None:
    """The EVSE's energy register in whole Wh (meterStart/meterStop), None without a reading."""
    energy = evse.get("energy_kwh")
    return None if energy is None else round(float(energy) * 1000.0)


def sampled_values(evse: Mapping[str, Any], measurands: Iterable[str], context: str) -> list[dict[str, Any]]:
    """The 1.6 SampledValues of one EVSE entry for the selected measurands (readings that exist only)."""
    wanted = set(measurands)
    out: list[dict[str, Any]] = []
    energy = evse.get("energy_kwh")
    if ENERGY in wanted and energy is not None:
        out.append({"value": _number(float(energy) * 1000.0, 1), "context": context, "measurand": ENERGY,
                    "location": "Outlet", "unit": "Wh"})
    power = evse.get("power_w")
    if POWER in wanted and power is not None:
        out.append({"value": _number(float(power), 1), "context": context, "measurand": POWER,
                    "location": "Outlet", "unit": "W"})
    if CURRENT in wanted:
        for phase, amps in zip(("L1", "L2", "L3"), evse.get("current_a") or (), strict=False):
            if amps is not None:
                out.append({"value": _number(float(amps), 2), "context": context, "measurand": CURRENT,
                            "phase": phase, "location": "Outlet", "unit": "A"})
    return out


def _number(value: float, digits: int) -> str:
    """A reading as 1.6 sends it: a decimal string (``1234.5``, ``0``)."""
    text = f"{round(value, digits):.{digits}f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def meter_value(evse: Mapping[str, Any], measurands: Iterable[str], context: str,
                timestamp: str) -> list[dict[str, Any]] | None:
    """A one-element meterValue list, or None when no selected measurand has a reading (minItems 1)."""
    values = sampled_values(evse, measurands, context)
    return [{"timestamp": timestamp, "sampled_value": values}] if values else None


def id_tag(tx: Transaction) -> str:
    """The transaction's idTag (the station refuses longer tokens before any transaction: see the station)."""
    return (tx.id_token or "")[:ID_TAG_MAX]


def start_transaction(tx: Transaction, connector_id: int, *, meter_start: int, timestamp: str) -> dict[str, Any]:
    """StartTransaction: connectorId, idTag, meterStart (Wh), timestamp, and reservationId when one was used."""
    payload: dict[str, Any] = {"connector_id": connector_id, "id_tag": id_tag(tx), "meter_start": meter_start,
                               "timestamp": timestamp}
    if tx.reservation_id is not None:
        payload["reservation_id"] = tx.reservation_id
    return payload


def stop_transaction(tx: Transaction, *, meter_stop: int, timestamp: str, reason: str,
                     data: list[dict[str, Any]] | None) -> dict[str, Any]:
    """StopTransaction without its transactionId (resolved by the queue): meterStop (Wh), timestamp, reason, the
    idTag of a local stop (the token that stopped it: the session's own, or one of its group), and transactionData
    (the end's meter values)."""
    payload: dict[str, Any] = {"meter_stop": meter_stop, "timestamp": timestamp, "reason": reason}
    stopper = tx.stop_token or tx.id_token
    if reason == "Local" and stopper:
        payload["id_tag"] = stopper[:ID_TAG_MAX]
    if data:
        payload["transaction_data"] = data
    return payload


def meter_values(connector_id: int, values: list[dict[str, Any]]) -> dict[str, Any]:
    """MeterValues of a connector (a transaction's gets its transactionId from the queue)."""
    return {"connector_id": connector_id, "meter_value": values}
