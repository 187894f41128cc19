"""OCPP 2.0.1 TransactionEvent and MeterValues payloads from the station core's TxEvents and the meter readings.

Payloads are built in the ``ocpp`` library's snake_case (``call.TransactionEvent(**payload)`` sends them) and
stored that way in the durable queue. Meter values come from the EVSE's entry of ``Charger.status()`` at the
moment of the event: Energy.Active.Import.Register (Wh), Power.Active.Import (W) and Current.Import per phase
(A), as selected by SampledDataCtrlr's Tx*Measurands; a measurand without a reading is left out, and an event
with no reading at all carries no meterValue (the schema needs at least one sampled value).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from controller.ocpp.station.transactions import Trigger, TxEvent, TxEventKind

ENERGY = "Energy.Active.Import.Register"
POWER = "Power.Active.Import"
CURRENT = "Current.Import"
TOKEN_TYPE = "ISO14443"


def sampled_values(evse: Mapping[str, Any], measurands: Iterable[str], context: str) -> list[dict[str, Any]]:
    """The sampled values of one EVSE entry for the selected measurands (readings that exist only)."""
    wanted = set(measurands)
    out: list[dict[str, Any]] = []
    energy = evse.get("energy_kwh")
    if ENERGY in wanted and energy is not None:
        out.append({"value": round(float(energy) * 1000.0, 1), "context": context, "measurand": ENERGY,
                    "location": "Outlet", "unit_of_measure": {"unit": "Wh"}})
    power = evse.get("power_w")
    if POWER in wanted and power is not None:
        out.append({"value": round(float(power), 1), "context": context, "measurand": POWER, "location": "Outlet",
                    "unit_of_measure": {"unit": "W"}})
    if CURRENT in wanted:
        for phase, amps in zip(("L1", "L2", "L3"), evse.get("current_a") or (), strict=False):
            if amps is not None:
                out.append({"value": round(float(amps), 2), "context": context, "measurand": CURRENT,
                            "phase": phase, "location": "Outlet", "unit_of_measure": {"unit": "A"}})
    return out


def meter_value(evse: Mapping[str, Any], measurands: Iterable[str], context: str,
                timestamp: str) -> list[dict[str, Any]] | None:
    """A one-element meterValue list, or None when no selected measurand has a reading."""
    values = sampled_values(evse, measurands, context)
    return [{"timestamp": timestamp, "sampled_value": values}] if values else None


def transaction_event(event: TxEvent, evse: Mapping[str, Any], *, timestamp: str, offline: bool,
                      measurands: Iterable[str]) -> dict[str, Any]:
    """The TransactionEvent payload of ``event`` without its seqNo (the queue assigns it when storing it)."""
    tx = event.transaction
    info: dict[str, Any] = {"transaction_id": tx.transaction_id, "charging_state": tx.charging_state.value}
    if event.kind is TxEventKind.ENDED and event.stop_reason is not None:
        info["stopped_reason"] = event.stop_reason.value
    if tx.remote_start_id is not None and (event.kind is TxEventKind.STARTED or event.trigger is Trigger.REMOTE_START):
        info["remote_start_id"] = tx.remote_start_id  # the event the remote start caused (F01.FR.25, F02.FR.01)
    payload: dict[str, Any] = {
        "event_type": event.kind.value,
        "timestamp": timestamp,
        "trigger_reason": event.trigger.value,
        "transaction_info": info,
        "evse": {"id": tx.evse_id, "connector_id": tx.connector_id},
    }
    if offline:
        payload["offline"] = True
    token = tx.stop_token if event.kind is TxEventKind.ENDED else tx.id_token
    if event.include_token and token is not None:
        payload["id_token"] = {"id_token": token, "type": TOKEN_TYPE}
    if event.kind is TxEventKind.STARTED and tx.reservation_id is not None:
        payload["reservation_id"] = tx.reservation_id
    values = meter_value(evse, measurands, event.meter_context, timestamp)
    if values is not None:
        payload["meter_value"] = values
    return payload
