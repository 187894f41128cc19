"""OCPP 2.0.1 availability, triggers and reset against the sim charger: ChangeAvailability (G03/G04) for one EVSE and
the station, Scheduled while a transaction runs; TriggerMessage (F06); Reset (B11/B12) Immediate and OnIdle.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from .csms import Csms
from .station_harness import OcppStation, booted, ocpp_config, ocpp_time, status_of, until


def token(name: str) -> dict[str, str]:
    """An ISO14443 IdTokenType."""
    return {"idToken": name, "type": "ISO14443"}


@pytest.fixture
async def station(tmp_path: Path, csms_201: Csms) -> AsyncIterator[OcppStation]:
    """The sim charger connected and booted at ``csms_201``, every connector reported."""
    async with OcppStation(tmp_path, ocpp_config(csms_201.url)) as s:
        await booted(csms_201)
        yield s


async def _charging(station: OcppStation, csms: Csms, evse_id: int, name: str = "ALICE") -> str:
    """A local session charging at ``evse_id``; returns its transaction id."""
    outcome = await station.runtime.present_token(evse_id, name)
    assert outcome.may_charge, outcome
    await station.plug(evse_id)
    started = await csms.expect(
        "TransactionEvent", lambda p: p["eventType"] == "Started" and p["evse"]["id"] == evse_id, timeout=20)
    await until(lambda: station.evse(evse_id)["phase"] == "charging", f"EVSE {evse_id} charging")
    return str(started["transactionInfo"]["transactionId"])


async def _ordered_after(csms: Csms) -> None:
    """Everything the station queued so far has arrived: a Heartbeat triggered now comes after it (one outbox)."""
    await csms.call("TriggerMessage", {"requestedMessage": "Heartbeat"})
    await csms.expect("Heartbeat")


# ---------------------------------------------------------------------------------------------------- G03/G04


async def test_an_inoperative_evse_is_unavailable_and_loses_its_reservation(
        station: OcppStation, csms_201: Csms) -> None:
    await csms_201.call("ReserveNow", {"id": 12, "expiryDateTime": ocpp_time(600), "evseId": 1,
                                       "idToken": token("ALICE")})
    await csms_201.expect("StatusNotification", status_of(1, "Reserved"))
    await until(lambda: station.reserved_led(1), "EVSE 1 reserved LED on")

    answer = await csms_201.call("ChangeAvailability", {"operationalStatus": "Inoperative", "evse": {"id": 1}})
    assert answer["status"] == "Accepted"
    await csms_201.expect("StatusNotification", status_of(1, "Unavailable"))
    update = await csms_201.expect("ReservationStatusUpdate")
    assert update == {"reservationId": 12, "reservationUpdateStatus": "Removed"}
    await until(lambda: not station.reserved_led(1), "EVSE 1 reserved LED off")
    assert not station.evse(1)["enabled"]
    assert station.evse(2)["enabled"]
    outcome = await station.runtime.present_token(1, "ALICE")
    assert not outcome.may_charge

    answer = await csms_201.call("ChangeAvailability", {"operationalStatus": "Operative", "evse": {"id": 1}})
    assert answer["status"] == "Accepted"
    await csms_201.expect("StatusNotification", status_of(1, "Available"))  # the reservation is gone for good
    assert station.evse(1)["enabled"] and not station.evse(1)["reserved"]
    await _ordered_after(csms_201)
    assert [p["connectorStatus"] for p in csms_201.received("StatusNotification") if p["evseId"] == 2] == ["Available"]


async def test_an_inoperative_evse_stays_inoperative_across_a_restart(tmp_path: Path, csms_201: Csms) -> None:
    config = ocpp_config(csms_201.url)
    async with OcppStation(tmp_path, config):
        await booted(csms_201)
        answer = await csms_201.call("ChangeAvailability", {"operationalStatus": "Inoperative", "evse": {"id": 1}})
        assert answer["status"] == "Accepted"
        await csms_201.expect("StatusNotification", status_of(1, "Unavailable"))
    async with OcppStation(tmp_path, config) as station:  # G03: the operational status survives a reboot
        await csms_201.wait_connected(count=2)
        await csms_201.expect("BootNotification")
        await csms_201.expect("StatusNotification", status_of(1, "Unavailable"))
        await csms_201.expect("StatusNotification", status_of(2, "Available"))
        assert not station.evse(1)["enabled"] and station.evse(2)["enabled"]


async def test_the_whole_station_inoperative_and_operative_again(station: OcppStation, csms_201: Csms) -> None:
    answer = await csms_201.call("ChangeAvailability", {"operationalStatus": "Inoperative"})
    assert answer["status"] == "Accepted"
    for evse_id in (1, 2):
        await csms_201.expect("StatusNotification", status_of(evse_id, "Unavailable"))
    assert not station.evse(1)["enabled"] and not station.evse(2)["enabled"]
    reserve = await csms_201.call("ReserveNow", {"id": 1, "expiryDateTime": ocpp_time(600), "evseId": 2,
                                                 "idToken": token("ALICE")})
    assert reserve["status"] == "Unavailable"

    answer = await csms_201.call("ChangeAvailability", {"operationalStatus": "Operative"})
    assert answer["status"] == "Accepted"
    for evse_id in (1, 2):
        await csms_201.expect("StatusNotification", status_of(evse_id, "Available"))


async def test_inoperative_is_scheduled_while_a_transaction_runs_and_applied_when_it_ends(
        station: OcppStation, csms_201: Csms) -> None:
    tx_id = await _charging(station, csms_201, 1)
    answer = await csms_201.call("ChangeAvailability", {"operationalStatus": "Inoperative", "evse": {"id": 1}})
    assert answer["status"] == "Scheduled"
    await _ordered_after(csms_201)
    assert station.evse(1)["phase"] == "charging" and station.evse(1)["contactor"] == "closed"
    assert not [p for p in csms_201.received("StatusNotification") if p["connectorStatus"] == "Unavailable"]

    await station.runtime.present_token(1, "ALICE")  # the driver ends the session
    ended = await csms_201.expect("TransactionEvent", lambda p: p["eventType"] == "Ended", timeout=20)
    assert ended["transactionInfo"]["transactionId"] == tx_id
    assert ended["transactionInfo"]["stoppedReason"] == "Local"
    await csms_201.expect("StatusNotification", status_of(1, "Unavailable"), timeout=20)
    await until(lambda: not station.evse(1)["enabled"], "EVSE 1 disabled")


async def test_the_station_inoperative_during_a_transaction_takes_the_idle_evse_at_once(
        station: OcppStation, csms_201: Csms) -> None:
    await _charging(station, csms_201, 1)
    answer = await csms_201.call("ChangeAvailability", {"operationalStatus": "Inoperative"})
    assert answer["status"] == "Scheduled"
    await csms_201.expect("StatusNotification", status_of(2, "Unavailable"))
    assert station.evse(1)["phase"] == "charging"
    await station.runtime.present_token(1, "ALICE")
    await csms_201.expect("StatusNotification", status_of(1, "Unavailable"), timeout=20)


async def test_operative_again_cancels_a_scheduled_inoperative(station: OcppStation, csms_201: Csms) -> None:
    await _charging(station, csms_201, 1)
    assert (await csms_201.call("ChangeAvailability", {"operationalStatus": "Inoperative",
                                                       "evse": {"id": 1}}))["status"] == "Scheduled"
    assert (await csms_201.call("ChangeAvailability", {"operationalStatus": "Operative",
                                                       "evse": {"id": 1}}))["status"] == "Accepted"
    await station.runtime.present_token(1, "ALICE")
    await csms_201.expect("TransactionEvent", lambda p: p["eventType"] == "Ended", timeout=20)
    await until(lambda: station.evse(1)["phase"] == "idle", "EVSE 1 idle")
    await _ordered_after(csms_201)
    assert station.evse(1)["enabled"]
    assert not [p for p in csms_201.received("StatusNotification") if p["connectorStatus"] == "Unavailable"]


@pytest.mark.parametrize("evse", [{"id": 3}, {"id": 1, "connectorId": 2}])
async def test_change_availability_of_an_unknown_evse_or_connector_is_rejected(
        station: OcppStation, csms_201: Csms, evse: dict[str, int]) -> None:
    answer = await csms_201.call("ChangeAvailability", {"operationalStatus": "Inoperative", "evse": evse})
    assert answer["status"] == "Rejected"
    assert station.evse(1)["enabled"] and station.evse(2)["enabled"]


# ---------------------------------------------------------------------------------------------------- F06


async def test_trigger_boot_notification_after_the_boot_is_rejected(station: OcppStation, csms_201: Csms) -> None:
    answer = await csms_201.call("TriggerMessage", {"requestedMessage": "BootNotification"})
    assert answer["status"] == "Rejected"
    await _ordered_after(csms_201)
    assert len(csms_201.received("BootNotification")) == 1


async def test_trigger_heartbeat(station: OcppStation, csms_201: Csms) -> None:
    assert (await csms_201.call("TriggerMessage", {"requestedMessage": "Heartbeat"}))["status"] == "Accepted"
    await csms_201.expect("Heartbeat")


async def test_trigger_status_notification_of_one_evse_and_of_all(station: OcppStation, csms_201: Csms) -> None:
    before = len(csms_201.received("StatusNotification"))
    answer = await csms_201.call("TriggerMessage", {"requestedMessage": "StatusNotification",
                                                    "evse": {"id": 2, "connectorId": 1}})
    assert answer["status"] == "Accepted"
    await _ordered_after(csms_201)
    sent = csms_201.received("StatusNotification")[before:]
    assert [(p["evseId"], p["connectorId"], p["connectorStatus"]) for p in sent] == [(2, 1, "Available")]

    answer = await csms_201.call("TriggerMessage", {"requestedMessage": "StatusNotification"})
    assert answer["status"] == "Accepted"
    await _ordered_after(csms_201)
    sent = csms_201.received("StatusNotification")[before + 1:]
    assert sorted((p["evseId"], p["connectorStatus"]) for p in sent) == [(1, "Available"), (2, "Available")]

    unknown = await csms_201.call("TriggerMessage", {"requestedMessage": "StatusNotification",
                                                     "evse": {"id": 7, "connectorId": 1}})
    assert unknown["status"] == "Rejected"


async def test_trigger_transaction_event_and_meter_values(station: OcppStation, csms_201: Csms) -> None:
    idle = await csms_201.call("TriggerMessage", {"requestedMessage": "TransactionEvent", "evse": {"id": 1}})
    assert idle["status"] == "Rejected"  # no transaction to report
    tx_id = await _charging(station, csms_201, 1)

    answer = await csms_201.call("TriggerMessage", {"requestedMessage": "TransactionEvent", "evse": {"id": 1}})
    assert answer["status"] == "Accepted"
    triggered = await csms_201.expect("TransactionEvent", lambda p: p["triggerReason"] == "Trigger")
    assert triggered["eventType"] == "Updated"
    assert triggered["transactionInfo"]["transactionId"] == tx_id
    energy = [v for mv in triggered["meterValue"] for v in mv["sampledValue"]
              if v.get("measurand", "Energy.Active.Import.Register") == "Energy.Active.Import.Register"]
    assert energy and energy[0]["context"] == "Trigger"

    answer = await csms_201.call("TriggerMessage", {"requestedMessage": "MeterValues", "evse": {"id": 1}})
    assert answer["status"] == "Accepted"
    meter = await csms_201.expect("MeterValues")
    assert meter["evseId"] == 1
    values = meter["meterValue"][0]["sampledValue"]
    assert values and all(v["context"] == "Trigger" for v in values)
    register = [v for v in values if v.get("measurand", "Energy.Active.Import.Register")
                == "Energy.Active.Import.Register"]
    assert register and register[0]["unitOfMeasure"]["unit"] == "Wh"


# ---------------------------------------------------------------------------------------------------- B11/B12


async def test_an_immediate_reset_restarts_the_station(station: OcppStation, csms_201: Csms) -> None:
    answer = await csms_201.call("Reset", {"type": "Immediate"})
    assert answer["status"] == "Accepted"
    await until(lambda: station.resets == 1, "the station restarting")


async def test_an_immediate_reset_during_a_transaction_ends_it_first(station: OcppStation, csms_201: Csms) -> None:
    tx_id = await _charging(station, csms_201, 1)
    answer = await csms_201.call("Reset", {"type": "Immediate"})
    assert answer["status"] == "Accepted"
    ended = await csms_201.expect("TransactionEvent", lambda p: p["eventType"] == "Ended", timeout=20)
    assert ended["transactionInfo"]["transactionId"] == tx_id
    assert ended["triggerReason"] == "ResetCommand"  # B12.FR.04
    assert ended["transactionInfo"]["stoppedReason"] == "ImmediateReset"
    await until(lambda: station.resets == 1, "the station restarting")


async def test_an_on_idle_reset_waits_for_the_session_to_end(station: OcppStation, csms_201: Csms) -> None:
    await _charging(station, csms_201, 1)
    answer = await csms_201.call("Reset", {"type": "OnIdle"})
    assert answer["status"] == "Scheduled"
    await _ordered_after(csms_201)
    assert station.resets == 0 and station.evse(1)["phase"] == "charging"
    await station.runtime.present_token(1, "ALICE")
    ended = await csms_201.expect("TransactionEvent", lambda p: p["eventType"] == "Ended", timeout=20)
    assert ended["transactionInfo"]["stoppedReason"] == "Local"
    await until(lambda: station.resets == 1, "the station restarting", timeout=20)


async def test_an_on_idle_reset_waits_for_a_transaction_without_a_session(
        station: OcppStation, csms_201: Csms) -> None:
    await csms_201.call("SetVariables", {"setVariableData": [
        {"component": {"name": "TxCtrlr"}, "variable": {"name": "TxStartPoint"}, "attributeValue": "EVConnected"}]})
    await station.plug(2)  # a transaction starts with the cable, no session (no token)
    await csms_201.expect("TransactionEvent", lambda p: p["eventType"] == "Started")
    answer = await csms_201.call("Reset", {"type": "OnIdle"})
    assert answer["status"] == "Scheduled"
    await _ordered_after(csms_201)
    assert station.resets == 0
    await station.unplug(2)
    await csms_201.expect("TransactionEvent", lambda p: p["eventType"] == "Ended")
    await until(lambda: station.resets == 1, "the station restarting", timeout=20)


async def test_an_evse_reset_is_rejected(station: OcppStation, csms_201: Csms) -> None:
    answer = await csms_201.call("Reset", {"type": "Immediate", "evseId": 1})
    assert answer["status"] == "Rejected"
    await _ordered_after(csms_201)
    assert station.resets == 0


async def test_data_transfer_answers_unknown_vendor(station: OcppStation, csms_201: Csms) -> None:
    answer: dict[str, Any] = await csms_201.call("DataTransfer", {"vendorId": "com.example", "messageId": "x"})
    assert answer["status"] == "UnknownVendorId"
