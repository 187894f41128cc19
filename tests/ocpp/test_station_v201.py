"""The OCPP 2.0.1 station against the test CSMS: provisioning, status, reservations, authorization, transactions.

Each test runs the real sim charger in-process with its OCPP front (tests/ocpp/station_harness.py) connected
over a real WebSocket to the schema-checking CSMS of tests/ocpp/csms.py (every station message is validated
against the OCA schemas, date-time formats included, at teardown of the ``csms_201`` fixture).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from .csms import CallErrorReceived, Csms
from .station_harness import OcppStation, ocpp_config, until


def _expiry(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _status_of(evse_id: int, status: str):  # type: ignore[no-untyped-def]
    return lambda p: p["evseId"] == evse_id and p["connectorStatus"] == status


@pytest.fixture
async def station(tmp_path: Path, csms_201: Csms) -> AsyncIterator[OcppStation]:
    """The sim charger connected and booted at ``csms_201``, every connector reported Available."""
    async with OcppStation(tmp_path, ocpp_config(csms_201.url)) as s:
        await csms_201.wait_connected()
        await csms_201.expect("BootNotification")
        for evse_id in (1, 2):
            await csms_201.expect("StatusNotification", _status_of(evse_id, "Available"))
        yield s


async def test_boot_names_the_station_and_reports_every_connector(station: OcppStation, csms_201: Csms) -> None:
    boot = csms_201.received("BootNotification")[0]
    assert boot["reason"] == "PowerUp"
    assert boot["chargingStation"]["vendorName"] == "charger-controller"
    statuses = csms_201.received("StatusNotification")
    assert {(p["evseId"], p["connectorId"]) for p in statuses} == {(1, 1), (2, 1)}


async def test_pending_boot_is_retried_after_the_interval(tmp_path: Path, csms_201: Csms) -> None:
    csms_201.set_boot_status("Pending", interval=1)
    async with OcppStation(tmp_path, ocpp_config(csms_201.url)):
        await csms_201.expect("BootNotification")
        assert csms_201.received("StatusNotification") == []
        csms_201.set_boot_status("Accepted", interval=300)
        await csms_201.expect("BootNotification", timeout=5)
        await csms_201.expect("StatusNotification", _status_of(1, "Available"))


async def test_reserve_now_lights_the_led_reports_reserved_and_cancel_clears_it(
        station: OcppStation, csms_201: Csms) -> None:
    answer = await csms_201.call("ReserveNow", {"id": 0, "expiryDateTime": _expiry(600), "evseId": 1,
                                                "idToken": {"idToken": "ALICE", "type": "ISO14443"}})
    assert answer["status"] == "Accepted"
    await csms_201.expect("StatusNotification", _status_of(1, "Reserved"))
    await until(lambda: station.reserved_led(1), "EVSE 1 reserved LED on")

    assert (await csms_201.call("CancelReservation", {"reservationId": 0}))["status"] == "Accepted"
    await csms_201.expect("StatusNotification", _status_of(1, "Available"))
    await until(lambda: not station.reserved_led(1), "EVSE 1 reserved LED off")
    assert (await csms_201.call("CancelReservation", {"reservationId": 0}))["status"] == "Rejected"
    assert csms_201.received("ReservationStatusUpdate") == []


async def test_expiry_sends_reservation_status_update_expired(station: OcppStation, csms_201: Csms) -> None:
    answer = await csms_201.call("ReserveNow", {"id": 5, "expiryDateTime": _expiry(1.0), "evseId": 2,
                                                "idToken": {"idToken": "BOB", "type": "ISO14443"}})
    assert answer["status"] == "Accepted"
    update = await csms_201.expect("ReservationStatusUpdate", timeout=5)
    assert update == {"reservationId": 5, "reservationUpdateStatus": "Expired"}
    await csms_201.expect("StatusNotification", _status_of(2, "Available"))


async def test_a_global_reservation_without_non_evse_specific_is_rejected(tmp_path: Path, csms_201: Csms) -> None:
    config = ocpp_config(csms_201.url, non_evse_specific_reservations=False)
    async with OcppStation(tmp_path, config):
        await csms_201.expect("StatusNotification", _status_of(2, "Available"))
        answer = await csms_201.call("ReserveNow", {"id": 1, "expiryDateTime": _expiry(600),
                                                    "idToken": {"idToken": "ALICE", "type": "ISO14443"}})
        assert answer["status"] == "Rejected"


async def test_reservations_unavailable_answer_not_implemented(tmp_path: Path, csms_201: Csms) -> None:
    async with OcppStation(tmp_path, ocpp_config(csms_201.url, reservations=False)):
        await csms_201.expect("StatusNotification", _status_of(2, "Available"))
        with pytest.raises(CallErrorReceived) as error:
            await csms_201.call("ReserveNow", {"id": 1, "expiryDateTime": _expiry(600), "evseId": 1,
                                               "idToken": {"idToken": "ALICE", "type": "ISO14443"}})
        assert error.value.code == "NotImplemented"


async def test_an_invalid_call_gets_a_callerror_and_the_connection_stays(station: OcppStation, csms_201: Csms) -> None:
    outcome = await csms_201.call_raw("ReserveNow", {"id": "one", "expiryDateTime": _expiry(600)})
    assert outcome[0] == "error" and outcome[1] in ("FormatViolation", "TypeConstraintViolation",
                                                    "OccurrenceConstraintViolation", "OccurenceConstraintViolation")
    answer = await csms_201.call("GetVariables", {"getVariableData": [
        {"component": {"name": "ReservationCtrlr"}, "variable": {"name": "Enabled"}}]})
    assert answer["getVariableResult"][0]["attributeValue"] == "true"


async def test_a_reserved_token_authorized_by_the_csms_uses_the_reservation_and_starts_a_transaction(
        station: OcppStation, csms_201: Csms) -> None:
    await csms_201.call("ReserveNow", {"id": 9, "expiryDateTime": _expiry(600), "evseId": 1,
                                       "idToken": {"idToken": "ALICE", "type": "ISO14443"}})
    await csms_201.expect("StatusNotification", _status_of(1, "Reserved"))

    outcome = await station.runtime.present_token(1, "ALICE")
    assert outcome.verdict.value == "reservation_used"
    authorize = await csms_201.expect("Authorize")
    assert authorize["idToken"]["idToken"] == "ALICE"
    await csms_201.expect("StatusNotification", _status_of(1, "Available"))

    await station.plug(1)
    await csms_201.expect("StatusNotification", _status_of(1, "Occupied"))
    started = await csms_201.expect("TransactionEvent", lambda p: p["eventType"] == "Started")
    assert started["reservationId"] == 9
    assert started["idToken"]["idToken"] == "ALICE"
    assert started["seqNo"] == 0
    tx_id = started["transactionInfo"]["transactionId"]

    await station.runtime.present_token(1, "ALICE")
    ended = await csms_201.expect("TransactionEvent", lambda p: p["eventType"] == "Ended", timeout=10)
    assert ended["transactionInfo"]["transactionId"] == tx_id
    assert ended["transactionInfo"]["stoppedReason"] == "Local"
    assert ended["seqNo"] > started["seqNo"]
    energy = [v for mv in ended.get("meterValue", []) for v in mv["sampledValue"]
              if v.get("measurand", "Energy.Active.Import.Register") == "Energy.Active.Import.Register"]
    assert energy and energy[0]["value"] >= 0


async def test_a_token_the_csms_refuses_neither_uses_the_reservation_nor_charges(
        station: OcppStation, csms_201: Csms) -> None:
    csms_201.authorize_answers["MALLORY"] = {"status": "Invalid"}
    outcome = await station.runtime.present_token(2, "MALLORY")
    assert outcome.verdict.value == "refused_not_authorized"
    assert station.evse(2)["phase"] == "idle"
