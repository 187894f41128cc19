"""OCPP 1.6 authorization against the sim charger: Authorize (parentIdTag, expiryDate), the authorization cache
(ClearCache), the local authorization list (SendLocalList Full and Differential, GetLocalListVersion, NotSupported
while LocalAuthListEnabled is false) and the offline rules (LocalAuthorizeOffline, LocalPreAuthorize,
AllowOfflineTxForUnknownId); a token of another group swiped offline never uses a reservation.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from .csms import Csms
from .station_harness import OcppStation, booted16, charging16, ocpp_config, ocpp_time, status16, until


@pytest.fixture
async def station(tmp_path: Path, csms_16: Csms) -> AsyncIterator[OcppStation]:
    """The sim charger connected and booted at ``csms_16`` (OCPP 1.6), every connector reported."""
    async with OcppStation(tmp_path, ocpp_config(csms_16.url, version="1.6")) as s:
        await booted16(csms_16)
        yield s


async def change(csms: Csms, key: str, value: str) -> None:
    """ChangeConfiguration, asserting Accepted."""
    assert (await csms.call("ChangeConfiguration", {"key": key, "value": value}))["status"] == "Accepted"


async def send_list(csms: Csms, version: int, kind: str, entries: list[dict[str, Any]] | None = None) -> str:
    """SendLocalList; the status answered."""
    payload: dict[str, Any] = {"listVersion": version, "updateType": kind}
    if entries is not None:
        payload["localAuthorizationList"] = entries
    return str((await csms.call("SendLocalList", payload))["status"])


async def offline(station: OcppStation, csms: Csms) -> None:
    """The CSMS goes away; wait until the station knows."""
    await csms.stop()
    await until(lambda: not station.station.online, "the station offline")


async def test_authorize_asks_the_csms_and_follows_its_answer(station: OcppStation, csms_16: Csms) -> None:
    csms_16.authorize_answers["BLOCKED"] = {"status": "Blocked"}
    csms_16.authorize_answers["OLD"] = {"status": "Accepted", "expiryDate": ocpp_time(-60)}
    assert (await station.runtime.present_token(1, "BLOCKED")).verdict.value == "refused_not_authorized"
    assert (await station.runtime.present_token(1, "OLD")).verdict.value == "refused_not_authorized"  # expired
    assert [p["idTag"] for p in csms_16.received("Authorize")] == ["BLOCKED", "OLD"]
    too_long = "X" * 21  # an idTag is at most 20 characters: never sent, refused
    assert (await station.runtime.present_token(1, too_long)).verdict.value == "refused_not_authorized"
    assert len(csms_16.received("Authorize")) == 2


async def test_the_cache_authorizes_offline_until_cleared(station: OcppStation, csms_16: Csms) -> None:
    assert (await station.runtime.present_token(1, "ALICE")).may_charge  # Authorize: Accepted, cached
    assert await station.runtime.stop_session(1)  # no plug came: the authorization ends
    assert (await csms_16.call("ClearCache", {}))["status"] == "Accepted"
    assert (await station.runtime.present_token(2, "BOB")).may_charge  # cached after the clear
    assert await station.runtime.stop_session(2)
    await until(lambda: station.evse(1)["phase"] == station.evse(2)["phase"] == "idle", "both EVSEs idle")
    await offline(station, csms_16)
    assert not (await station.runtime.present_token(1, "ALICE")).may_charge  # cleared: unknown offline
    assert (await station.runtime.present_token(2, "BOB")).may_charge  # LocalAuthorizeOffline, from the cache
    assert len(csms_16.received("Authorize")) == 2


async def test_unknown_tokens_offline_only_with_allow_offline_tx_for_unknown_id(
        station: OcppStation, csms_16: Csms) -> None:
    await change(csms_16, "AllowOfflineTxForUnknownId", "true")
    await offline(station, csms_16)
    assert (await station.runtime.present_token(2, "NEWCOMER")).may_charge
    definition = station.station.variables.by_alias("AllowOfflineTxForUnknownId")
    assert definition is not None
    station.station.variables.set(definition.component, definition.variable, "false")
    assert not (await station.runtime.present_token(1, "STRANGER")).may_charge


async def test_a_token_of_another_group_offline_never_uses_a_reservation(station: OcppStation, csms_16: Csms) -> None:
    answer = await csms_16.call("ReserveNow", {"connectorId": 1, "expiryDate": ocpp_time(600), "idTag": "ALICE",
                                               "parentIdTag": "FLEET", "reservationId": 3})
    assert answer["status"] == "Accepted"
    await csms_16.expect("StatusNotification", status16(1, "Reserved"))
    await change(csms_16, "AllowOfflineTxForUnknownId", "true")
    assert await send_list(csms_16, 1, "Full", [
        {"idTag": "OTHER", "idTagInfo": {"status": "Accepted", "parentIdTag": "ELSEWHERE"}},
        {"idTag": "MEMBER", "idTagInfo": {"status": "Accepted", "parentIdTag": "FLEET"}},
    ]) == "Accepted"
    await offline(station, csms_16)
    assert (await station.runtime.present_token(1, "OTHER")).verdict.value == "refused_reserved_for_other"
    assert (await station.runtime.present_token(1, "UNKNOWN")).verdict.value == "refused_reserved_for_other"
    assert [r.reservation_id for r in station.runtime.reservations()] == [3]
    used = await station.runtime.present_token(1, "MEMBER")
    assert used.verdict.value == "reservation_used" and used.reservation_id == 3


async def test_a_token_of_the_group_stops_the_transaction_and_stop_transaction_names_it(
        station: OcppStation, csms_16: Csms) -> None:
    csms_16.authorize_answers = {"FLEET-1": {"status": "Accepted", "parentIdTag": "FLEET"},
                                 "FLEET-2": {"status": "Accepted", "parentIdTag": "FLEET"},
                                 "OTHER": {"status": "Accepted", "parentIdTag": "ELSEWHERE"}}
    await charging16(station, csms_16, 1, "FLEET-1")
    assert (await station.runtime.present_token(1, "OTHER")).verdict.value != "stopped"  # another group
    assert (await station.runtime.present_token(1, "FLEET-2")).verdict.value == "stopped"
    stop = await csms_16.expect("StopTransaction", timeout=20)
    assert (stop["reason"], stop["idTag"]) == ("Local", "FLEET-2")


async def test_the_local_list_full_and_differential(station: OcppStation, csms_16: Csms) -> None:
    assert (await csms_16.call("GetLocalListVersion", {}))["listVersion"] == 0
    assert await send_list(csms_16, 5, "Full", [{"idTag": "ALICE", "idTagInfo": {"status": "Accepted"}},
                                                {"idTag": "BOB", "idTagInfo": {"status": "Blocked"}}]) == "Accepted"
    assert (await csms_16.call("GetLocalListVersion", {}))["listVersion"] == 5
    assert await send_list(csms_16, 5, "Differential", []) == "VersionMismatch"
    assert await send_list(csms_16, 6, "Differential", [{"idTag": "BOB"},  # no idTagInfo: removed
                                                        {"idTag": "CAROL", "idTagInfo": {"status": "Accepted"}}]
                           ) == "Accepted"
    assert await send_list(csms_16, 7, "Full", [{"idTag": "X"}]) == "Failed"  # a Full entry needs its idTagInfo
    assert (await csms_16.call("GetLocalListVersion", {}))["listVersion"] == 6
    assert station.station.variables.int_value("LocalAuthListCtrlr", "Entries") == 2
    await change(csms_16, "LocalPreAuthorize", "true")
    assert (await station.runtime.present_token(1, "CAROL")).may_charge
    assert csms_16.received("Authorize") == []  # listed and Accepted: not asked (LocalPreAuthorize)
    await offline(station, csms_16)
    assert (await station.runtime.present_token(2, "ALICE")).may_charge  # LocalAuthorizeOffline
    assert not (await station.runtime.present_token(1, "BOB")).may_charge  # removed from the list: unknown


async def test_send_local_list_is_not_supported_while_the_list_is_disabled(
        station: OcppStation, csms_16: Csms) -> None:
    await change(csms_16, "LocalAuthListEnabled", "false")
    assert await send_list(csms_16, 1, "Full", []) == "NotSupported"
    assert (await csms_16.call("GetLocalListVersion", {}))["listVersion"] == 0
    await change(csms_16, "AuthorizationCacheEnabled", "false")
    assert (await csms_16.call("ClearCache", {}))["status"] == "Rejected"
