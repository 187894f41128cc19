"""OCPP 1.6 Reservation profile against the sim charger: ReserveNow on a connector and on connectorId 0 (Reserved for
every free connector when the global reservations need them all), Rejected when ReserveConnectorZeroSupported is off
or without the profile (not a CALLERROR as in 2.0.1), parentIdTag as the parent token, CancelReservation, expiry back
to Available (1.6 has no ReservationStatusUpdate), and a transaction that uses the reservation (Preparing before the
plug, StartTransaction with its reservationId; consumed only when the transaction starts, so a session that ends
before the plug leaves it in place), and a token of the same parentIdTag stopping the transaction.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from .csms import Csms
from .station_harness import OcppStation, booted16, ocpp_config, ocpp_time, status16, until


@pytest.fixture
async def station(tmp_path: Path, csms_16: Csms) -> AsyncIterator[OcppStation]:
    """The sim charger connected and booted at ``csms_16`` (OCPP 1.6), every connector reported."""
    async with OcppStation(tmp_path, ocpp_config(csms_16.url, version="1.6")) as s:
        await booted16(csms_16)
        yield s


async def reserve(csms: Csms, reservation_id: int, connector_id: int, id_tag: str, *, seconds: float = 600,
                  parent: str | None = None) -> str:
    """ReserveNow; the status answered."""
    payload: dict[str, Any] = {"connectorId": connector_id, "expiryDate": ocpp_time(seconds), "idTag": id_tag,
                               "reservationId": reservation_id}
    if parent is not None:
        payload["parentIdTag"] = parent
    return str((await csms.call("ReserveNow", payload))["status"])


async def test_a_connector_reservation_is_reserved_and_cancelled(station: OcppStation, csms_16: Csms) -> None:
    assert await reserve(csms_16, 0, 1, "ALICE") == "Accepted"  # reservation id 0 is a real id
    await csms_16.expect("StatusNotification", status16(1, "Reserved"))
    await until(lambda: station.reserved_led(1), "EVSE 1 reserved LED on")
    refused = await station.runtime.present_token(1, "MALLORY")
    assert refused.verdict.value == "refused_reserved_for_other"
    assert (await csms_16.call("CancelReservation", {"reservationId": 0}))["status"] == "Accepted"
    await csms_16.expect("StatusNotification", status16(1, "Available"))
    assert (await csms_16.call("CancelReservation", {"reservationId": 0}))["status"] == "Rejected"
    assert await reserve(csms_16, 3, 9, "ALICE") == "Rejected"  # no connector 9


async def test_connector_zero_reservations_reserve_every_free_connector_when_they_need_them_all(
        station: OcppStation, csms_16: Csms) -> None:
    assert await reserve(csms_16, 21, 0, "ALICE") == "Accepted"
    assert await reserve(csms_16, 22, 0, "BOB") == "Accepted"
    for connector_id in (1, 2):
        await csms_16.expect("StatusNotification", status16(connector_id, "Reserved"))
    used = await station.runtime.present_token(2, "BOB")
    assert used.verdict.value == "reservation_used" and used.reservation_id == 22
    await csms_16.expect("StatusNotification", status16(2, "Preparing"))
    await station.plug(2)
    start = await csms_16.expect("StartTransaction")
    assert start["reservationId"] == 22 and start["connectorId"] == 2
    # ALICE's reservation still needs the other connector
    assert [p["status"] for p in csms_16.received("StatusNotification") if p["connectorId"] == 1][-1] == "Reserved"
    assert (await csms_16.call("CancelReservation", {"reservationId": 21}))["status"] == "Accepted"
    await csms_16.expect("StatusNotification", status16(1, "Available"))


async def test_expiry_makes_the_connector_available_again(station: OcppStation, csms_16: Csms) -> None:
    assert await reserve(csms_16, 5, 2, "ALICE", seconds=1.0) == "Accepted"
    await csms_16.expect("StatusNotification", status16(2, "Reserved"))
    await csms_16.expect("StatusNotification", status16(2, "Available"), timeout=15)
    await until(lambda: not station.reserved_led(2), "EVSE 2 reserved LED off")


async def test_a_reserved_idtag_is_preparing_before_the_plug_and_starts_with_the_reservation_id(
        station: OcppStation, csms_16: Csms) -> None:
    assert await reserve(csms_16, 9, 1, "ALICE") == "Accepted"
    await csms_16.expect("StatusNotification", status16(1, "Reserved"))
    outcome = await station.runtime.present_token(1, "ALICE")
    assert outcome.verdict.value == "reservation_used"
    await csms_16.expect("StatusNotification", status16(1, "Preparing"))
    assert csms_16.received("StartTransaction") == []
    await station.plug(1)
    start = await csms_16.expect("StartTransaction")
    assert start["reservationId"] == 9 and start["idTag"] == "ALICE"
    await station.runtime.present_token(1, "ALICE")
    await csms_16.expect("StopTransaction", timeout=20)
    # the next transaction on the same connector used no reservation
    await until(lambda: station.evse(1)["phase"] == "idle", "EVSE 1 idle", timeout=20)
    await station.runtime.present_token(1, "BOB")
    again = await csms_16.expect("StartTransaction")
    assert "reservationId" not in again


async def test_a_token_of_the_parent_id_tag_uses_the_reservation(station: OcppStation, csms_16: Csms) -> None:
    assert await reserve(csms_16, 11, 2, "ALICE", parent="FLEET") == "Accepted"
    await csms_16.expect("StatusNotification", status16(2, "Reserved"))
    csms_16.authorize_answers["DRIVER7"] = {"status": "Accepted", "parentIdTag": "FLEET"}
    csms_16.authorize_answers["STRANGER"] = {"status": "Accepted", "parentIdTag": "OTHERS"}
    assert (await station.runtime.present_token(2, "STRANGER")).verdict.value == "refused_reserved_for_other"
    outcome = await station.runtime.present_token(2, "DRIVER7")
    assert outcome.verdict.value == "reservation_used" and outcome.reservation_id == 11
    await station.plug(2)
    start = await csms_16.expect("StartTransaction")
    assert start["reservationId"] == 11 and start["idTag"] == "DRIVER7"


async def test_the_reservation_is_consumed_when_its_transaction_starts_not_when_the_idtag_is_presented(
        station: OcppStation, csms_16: Csms) -> None:
    assert await reserve(csms_16, 21, 1, "ALICE") == "Accepted"
    await csms_16.expect("StatusNotification", status16(1, "Reserved"))
    assert (await station.runtime.present_token(1, "ALICE")).reservation_id == 21
    await csms_16.expect("StatusNotification", status16(1, "Preparing"))
    assert await station.runtime.stop_session(1)  # no transaction started: 1.6 keeps the reservation
    await csms_16.expect("StatusNotification", status16(1, "Reserved"))
    assert [r.reservation_id for r in station.runtime.reservations()] == [21]
    assert await reserve(csms_16, 22, 1, "BOB") == "Occupied"  # still held for ALICE
    assert (await station.runtime.present_token(1, "ALICE")).reservation_id == 21
    await station.plug(1)
    start = await csms_16.expect("StartTransaction")
    assert start["reservationId"] == 21
    await until(lambda: not station.runtime.reservations(), "reservation 21 consumed")


async def test_a_token_of_the_same_parent_id_tag_stops_the_transaction(station: OcppStation, csms_16: Csms) -> None:
    csms_16.authorize_answers["DRIVER7"] = {"status": "Accepted", "parentIdTag": "FLEET"}
    csms_16.authorize_answers["DRIVER8"] = {"status": "Accepted", "parentIdTag": "FLEET"}
    csms_16.authorize_answers["STRANGER"] = {"status": "Accepted", "parentIdTag": "OTHERS"}
    assert (await station.runtime.present_token(2, "DRIVER7")).may_charge
    await station.plug(2)
    await csms_16.expect("StartTransaction", lambda p: p["idTag"] == "DRIVER7")
    assert (await station.runtime.present_token(2, "STRANGER")).verdict.value == "refused_evse_not_ready"
    assert (await station.runtime.present_token(2, "DRIVER8")).verdict.value == "stopped"
    stop = await csms_16.expect("StopTransaction", timeout=20)
    assert stop["reason"] == "Local"


async def test_connector_zero_is_rejected_without_reserve_connector_zero_supported(
        tmp_path: Path, csms_16: Csms) -> None:
    async with OcppStation(tmp_path, ocpp_config(csms_16.url, version="1.6", non_evse_specific_reservations=False)):
        await booted16(csms_16)
        keys = (await csms_16.call("GetConfiguration", {"key": ["ReserveConnectorZeroSupported"]}))
        assert keys["configurationKey"] == [{"key": "ReserveConnectorZeroSupported", "readonly": True,
                                             "value": "false"}]
        assert await reserve(csms_16, 1, 0, "ALICE") == "Rejected"
        assert await reserve(csms_16, 2, 1, "ALICE") == "Accepted"


async def test_without_the_reservation_profile_reserve_now_is_rejected(tmp_path: Path, csms_16: Csms) -> None:
    async with OcppStation(tmp_path, ocpp_config(csms_16.url, version="1.6", reservations=False)) as station:
        await booted16(csms_16)
        assert await reserve(csms_16, 1, 1, "ALICE") == "Rejected"
        assert await reserve(csms_16, 2, 0, "ALICE") == "Rejected"
        assert (await csms_16.call("CancelReservation", {"reservationId": 1}))["status"] == "Rejected"
        assert station.runtime.reservations() == []
        profiles = await csms_16.call("GetConfiguration", {"key": ["SupportedFeatureProfiles"]})
        assert profiles["configurationKey"][0]["value"] == "Core,LocalAuthListManagement,SmartCharging,RemoteTrigger"
