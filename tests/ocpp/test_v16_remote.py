"""OCPP 1.6 remote control against the sim charger: RemoteStartTransaction (with and without
AuthorizeRemoteTxRequests, on a reserved connector), RemoteStopTransaction, ChangeAvailability (a connector and the
station, Scheduled while a transaction runs), TriggerMessage, UnlockConnector (under the interlocks, ending a
transaction first), Reset Soft and Hard, DataTransfer, and the CALLERRORs of calls the station refuses.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from .csms import CallErrorReceived, Csms
from .station_harness import OcppStation, booted16, charging16, ocpp_config, ocpp_time, status16, until


@pytest.fixture
async def station(tmp_path: Path, csms_16: Csms) -> AsyncIterator[OcppStation]:
    """The sim charger connected and booted at ``csms_16`` (OCPP 1.6), every connector reported."""
    async with OcppStation(tmp_path, ocpp_config(csms_16.url, version="1.6")) as s:
        await booted16(csms_16)
        yield s


# ---------------------------------------------------------------------------------------------------- remote start/stop


async def test_remote_start_authorizes_then_starts_at_the_plug_and_remote_stop_ends_it(
        station: OcppStation, csms_16: Csms) -> None:
    answer = await csms_16.call("RemoteStartTransaction", {"connectorId": 1, "idTag": "EVCC"})
    assert answer == {"status": "Accepted"}
    authorize = await csms_16.expect("Authorize")
    assert authorize == {"idTag": "EVCC"}
    await until(lambda: station.evse(1)["phase"] == "authorized", "EVSE 1 authorized")
    await csms_16.expect("StatusNotification", status16(1, "Preparing"))
    await station.plug(1)
    start = await csms_16.expect("StartTransaction")
    assert start["idTag"] == "EVCC" and start["connectorId"] == 1
    tx_id = csms_16.received_messages("StartTransaction")[0].response["transactionId"]  # type: ignore[index]
    assert (await csms_16.call("RemoteStopTransaction", {"transactionId": tx_id + 100}))["status"] == "Rejected"
    assert (await csms_16.call("RemoteStopTransaction", {"transactionId": tx_id}))["status"] == "Accepted"
    stop = await csms_16.expect("StopTransaction", timeout=20)
    assert stop["transactionId"] == tx_id and stop["reason"] == "Remote" and "idTag" not in stop
    await csms_16.expect("StatusNotification", status16(1, "Finishing"), timeout=20)


async def test_remote_start_without_authorize_remote_tx_requests_asks_nobody(
        station: OcppStation, csms_16: Csms) -> None:
    answer = await csms_16.call("ChangeConfiguration", {"key": "AuthorizeRemoteTxRequests", "value": "false"})
    assert answer["status"] == "Accepted"
    csms_16.authorize_default = {"status": "Invalid"}  # it would be refused if asked
    await station.plug(2)
    await until(lambda: station.evse(2)["plugged_in"], "EVSE 2 plugged in")
    assert (await csms_16.call("RemoteStartTransaction", {"idTag": "EVCC"}))["status"] == "Accepted"
    start = await csms_16.expect("StartTransaction")
    assert start["connectorId"] == 2  # no connectorId: the free connector where a car waits
    assert csms_16.received("Authorize") == []


async def test_remote_start_is_rejected_on_a_busy_unknown_or_reserved_connector(
        station: OcppStation, csms_16: Csms) -> None:
    await charging16(station, csms_16, 1)
    assert (await csms_16.call("RemoteStartTransaction", {"connectorId": 1, "idTag": "BOB"}))["status"] == "Rejected"
    assert (await csms_16.call("RemoteStartTransaction", {"connectorId": 7, "idTag": "BOB"}))["status"] == "Rejected"
    answer = await csms_16.call("ReserveNow", {"connectorId": 2, "expiryDate": ocpp_time(600), "idTag": "CAROL",
                                               "reservationId": 4})
    assert answer["status"] == "Accepted"
    assert (await csms_16.call("RemoteStartTransaction", {"connectorId": 2, "idTag": "BOB"}))["status"] == "Rejected"
    assert (await csms_16.call("RemoteStartTransaction", {"connectorId": 2, "idTag": "CAROL"}))["status"] == \
        "Accepted"
    await station.plug(2)
    start = await csms_16.expect("StartTransaction", lambda p: p["connectorId"] == 2)
    assert start["reservationId"] == 4


# ---------------------------------------------------------------------------------------------------- availability


async def test_change_availability_of_a_connector_and_of_the_station(station: OcppStation, csms_16: Csms) -> None:
    answer = await csms_16.call("ChangeAvailability", {"connectorId": 2, "type": "Inoperative"})
    assert answer == {"status": "Accepted"}
    await csms_16.expect("StatusNotification", status16(2, "Unavailable"))
    assert not station.evse(2)["enabled"]
    assert (await csms_16.call("ChangeAvailability", {"connectorId": 0, "type": "Inoperative"}))["status"] == \
        "Accepted"
    await csms_16.expect("StatusNotification", status16(1, "Unavailable"))
    await csms_16.expect("StatusNotification", status16(0, "Unavailable"))
    assert (await csms_16.call("ChangeAvailability", {"connectorId": 0, "type": "Operative"}))["status"] == "Accepted"
    for connector_id in (0, 1, 2):
        await csms_16.expect("StatusNotification", status16(connector_id, "Available"))
    assert (await csms_16.call("ChangeAvailability", {"connectorId": 5, "type": "Operative"}))["status"] == "Rejected"


async def test_inoperative_while_charging_is_scheduled_until_the_transaction_ends(
        station: OcppStation, csms_16: Csms) -> None:
    await charging16(station, csms_16, 1)
    answer = await csms_16.call("ChangeAvailability", {"connectorId": 1, "type": "Inoperative"})
    assert answer == {"status": "Scheduled"}
    assert station.evse(1)["enabled"]
    await station.runtime.present_token(1, "ALICE")
    stop = await csms_16.expect("StopTransaction", timeout=20)
    assert stop["reason"] == "Local"
    await csms_16.expect("StatusNotification", status16(1, "Unavailable"), timeout=20)
    assert not station.evse(1)["enabled"]


async def test_an_inoperative_connector_stays_inoperative_across_a_restart(tmp_path: Path, csms_16: Csms) -> None:
    config = ocpp_config(csms_16.url, version="1.6")
    async with OcppStation(tmp_path, config) as station:
        await booted16(csms_16)
        answer = await csms_16.call("ChangeAvailability", {"connectorId": 2, "type": "Inoperative"})
        assert answer == {"status": "Accepted"}
        await csms_16.expect("StatusNotification", status16(2, "Unavailable"))
    async with OcppStation(tmp_path, config) as station:  # 1.6 section 4.9: Unavailable persists across a reboot
        await csms_16.wait_connected(count=2)
        await csms_16.expect("BootNotification")
        await csms_16.expect("StatusNotification", status16(2, "Unavailable"))
        await csms_16.expect("StatusNotification", status16(1, "Available"))
        assert not station.evse(2)["enabled"] and station.evse(1)["enabled"]
        assert not (await station.runtime.present_token(2, "ALICE")).may_charge
        answer = await csms_16.call("ChangeAvailability", {"connectorId": 0, "type": "Operative"})
        assert answer == {"status": "Accepted"}
        await csms_16.expect("StatusNotification", status16(2, "Available"))
    async with OcppStation(tmp_path, config) as station:  # Operative again is what the next boot finds
        await csms_16.wait_connected(count=3)
        await csms_16.expect("BootNotification")
        await csms_16.expect("StatusNotification", status16(2, "Available"))
        assert station.evse(2)["enabled"]


# ---------------------------------------------------------------------------------------------------- triggers


async def test_trigger_message_sends_each_message(station: OcppStation, csms_16: Csms) -> None:
    async def trigger(message: str, connector_id: int | None = None) -> str:
        payload = {"requestedMessage": message} | ({} if connector_id is None else {"connectorId": connector_id})
        return str((await csms_16.call("TriggerMessage", payload))["status"])

    assert await trigger("Heartbeat") == "Accepted"
    await csms_16.expect("Heartbeat")
    assert await trigger("BootNotification") == "Accepted"  # 1.6 lets an accepted station boot again on request
    await csms_16.expect("BootNotification")
    assert await trigger("StatusNotification", 2) == "Accepted"
    await csms_16.expect("StatusNotification", status16(2, "Available"))
    assert await trigger("StatusNotification") == "Accepted"
    for connector_id in (0, 1, 2):
        await csms_16.expect("StatusNotification", lambda p, c=connector_id: p["connectorId"] == c)
    assert await trigger("StatusNotification", 9) == "Rejected"
    assert await trigger("DiagnosticsStatusNotification") == "Accepted"
    assert await csms_16.expect("DiagnosticsStatusNotification") == {"status": "Idle"}
    assert await trigger("FirmwareStatusNotification") == "Accepted"
    assert await csms_16.expect("FirmwareStatusNotification") == {"status": "Idle"}
    assert await trigger("MeterValues", 1) == "Accepted"
    idle = await csms_16.expect("MeterValues")
    assert idle["connectorId"] == 1 and "transactionId" not in idle
    assert {v["context"] for m in idle["meterValue"] for v in m["sampledValue"]} == {"Trigger"}
    tx_id = await charging16(station, csms_16, 2)
    assert await trigger("MeterValues", 2) == "Accepted"
    during = await csms_16.expect("MeterValues", lambda p: p["connectorId"] == 2)
    assert during["transactionId"] == tx_id


# ---------------------------------------------------------------------------------------------------- unlock, reset


async def test_unlock_connector_ends_the_transaction_then_releases_the_lock(
        station: OcppStation, csms_16: Csms) -> None:
    assert (await csms_16.call("UnlockConnector", {"connectorId": 1}))["status"] == "Unlocked"  # idle: nothing held
    tx_id = await charging16(station, csms_16, 2)
    assert station.evse(2)["lock"] == "locked"
    assert (await csms_16.call("UnlockConnector", {"connectorId": 2}, timeout=20))["status"] == "Unlocked"
    stop = await csms_16.expect("StopTransaction")
    assert stop["transactionId"] == tx_id and stop["reason"] == "UnlockCommand"
    assert station.evse(2)["lock"] == "unlocked" and station.evse(2)["contactor"] == "open"
    assert (await csms_16.call("UnlockConnector", {"connectorId": 0}))["status"] == "NotSupported"
    assert (await csms_16.call("UnlockConnector", {"connectorId": 3}))["status"] == "NotSupported"


@pytest.mark.parametrize("kind", ["Soft", "Hard"])
async def test_reset_ends_the_transactions_then_restarts(station: OcppStation, csms_16: Csms, kind: str) -> None:
    tx_id = await charging16(station, csms_16, 1)
    answer = await csms_16.call("ReserveNow", {"connectorId": 2, "expiryDate": ocpp_time(600), "idTag": "CAROL",
                                               "reservationId": 8})
    assert answer["status"] == "Accepted"
    assert (await csms_16.call("Reset", {"type": kind}))["status"] == "Accepted"
    stop = await csms_16.expect("StopTransaction", timeout=20)
    assert stop["transactionId"] == tx_id and stop["reason"] == f"{kind}Reset"
    await until(lambda: station.resets == 1, "the restart requested")
    assert [r.reservation_id for r in station.runtime.reservations()] == [8]  # kept for after the restart
    assert (tmp_reason := station.state_dir / "ocpp-boot-reason").exists() and "RemoteReset" in tmp_reason.read_text()


async def test_data_transfer_and_calls_the_station_refuses(station: OcppStation, csms_16: Csms) -> None:
    answer = await csms_16.call("DataTransfer", {"vendorId": "com.example", "messageId": "x", "data": "y"})
    assert answer == {"status": "UnknownVendorId"}
    with pytest.raises(CallErrorReceived) as not_supported:
        await csms_16.call("GetDiagnostics", {"location": "ftp://example.com/logs"})  # FirmwareManagement
    assert not_supported.value.code == "NotSupported"
    outcome = await csms_16.call_raw("RemoteStartTransaction", {"connectorId": 1})
    assert outcome[0] == "error" and outcome[1] == "OccurenceConstraintViolation"
    outcome = await csms_16.call_raw("Reset", {"type": "OnIdle"})
    assert outcome[0] == "error" and outcome[1] == "FormatViolation"
    outcome = await csms_16.call_raw("NoSuchAction", {})
    assert outcome[0] == "error" and outcome[1] == "NotImplemented"
    assert station.station.online  # the connection stays up
    assert (await csms_16.call("GetLocalListVersion", {}))["listVersion"] == 0
