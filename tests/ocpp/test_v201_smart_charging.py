"""OCPP 2.0.1 smart charging against the sim charger (K01, K05, K08, K09, K10): the CSMS sets profiles and each EVSE's
``limit_a`` follows at once and at every period boundary; stack levels, validity windows, Recurring Daily, Relative to
the transaction, a TxProfile bound to its transaction and dropped at its end, W converted to A, the station maximum
shared, 0 A suspending the transaction (chargingState SuspendedEVSE), ClearChargingProfile by id, purpose and stack
level, GetChargingProfiles with ReportChargingProfiles, GetCompositeSchedule in A and W, profiles kept across a
restart, and the refusals with their reason. Schedules start relative to now with periods of seconds; waits have
generous timeouts and never measure how fast.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from .csms import CallErrorReceived, Csms
from .station_harness import OcppStation, booted, ocpp_config, ocpp_time, until


def token(name: str) -> dict[str, str]:
    """An ISO14443 IdTokenType."""
    return {"idToken": name, "type": "ISO14443"}


def profile(profile_id: int, *, purpose: str = "TxDefaultProfile", level: int = 0, kind: str = "Absolute",
            periods: list[tuple[int, float]] | None = None, unit: str = "A", start_in_s: float | None = -1.0,
            duration: int | None = None, **more: Any) -> dict[str, Any]:
    """A ChargingProfileType (camelCase); Absolute from ``start_in_s`` seconds from now unless Relative."""
    schedule: dict[str, Any] = {"id": profile_id, "chargingRateUnit": unit, "chargingSchedulePeriod": [
        {"startPeriod": start, "limit": limit} for start, limit in (periods or [(0, 12.0)])]}
    if kind != "Relative" and start_in_s is not None:
        schedule["startSchedule"] = ocpp_time(start_in_s)
    if duration is not None:
        schedule["duration"] = duration
    return {"id": profile_id, "stackLevel": level, "chargingProfilePurpose": purpose, "chargingProfileKind": kind,
            "chargingSchedule": [schedule], **more}


async def set_profile(csms: Csms, evse_id: int, body: dict[str, Any]) -> dict[str, Any]:
    """SetChargingProfile; the answer."""
    return await csms.call("SetChargingProfile", {"evseId": evse_id, "chargingProfile": body})


@pytest.fixture
async def station(tmp_path: Path, csms_201: Csms) -> AsyncIterator[OcppStation]:
    """The sim charger connected and booted at ``csms_201``, every connector reported."""
    async with OcppStation(tmp_path, ocpp_config(csms_201.url)) as s:
        await booted(csms_201)
        yield s


async def charging(station: OcppStation, csms: Csms, evse_id: int, name: str = "ALICE") -> str:
    """A local session charging at ``evse_id``; its transaction id."""
    assert (await station.runtime.present_token(evse_id, name)).may_charge
    await station.plug(evse_id)
    started = await csms.expect(
        "TransactionEvent", lambda p: p["eventType"] == "Started" and p["evse"]["id"] == evse_id, timeout=20)
    await until(lambda: station.evse(evse_id)["contactor"] == "closed", f"EVSE {evse_id} charging", timeout=20)
    return str(started["transactionInfo"]["transactionId"])


def limit(station: OcppStation, evse_id: int) -> float | None:
    """The EVSE's limit in effect."""
    value = station.evse(evse_id)["limit_a"]
    return None if value is None else float(value)


# ---------------------------------------------------------------------------------------------------- K01


async def test_a_profile_applies_at_once_and_its_next_period_when_it_comes(station: OcppStation,
                                                                          csms_201: Csms) -> None:
    before = limit(station, 2)  # the EVSE's own maximum, if it has one (above these profiles' limits)
    answer = await set_profile(csms_201, 1, profile(1, periods=[(0, 12.0), (2, 8.0)]))
    assert answer["status"] == "Accepted"
    assert limit(station, 1) == 12.0  # applied before the answer
    assert limit(station, 2) == before
    await until(lambda: limit(station, 1) == 8.0, "the second period")
    entries = await csms_201.call("GetVariables", {"getVariableData": [{
        "component": {"name": "SmartChargingCtrlr"}, "variable": {"name": "Entries", "instance": "ChargingProfiles"}}]})
    assert entries["getVariableResult"][0]["attributeValue"] == "1"


async def test_the_highest_stack_level_wins_within_its_validity_window(station: OcppStation, csms_201: Csms) -> None:
    assert (await set_profile(csms_201, 1, profile(1, periods=[(0, 14.0)])))["status"] == "Accepted"
    high = profile(2, level=3, periods=[(0, 8.0)], validFrom=ocpp_time(1.5), validTo=ocpp_time(3.5))
    assert (await set_profile(csms_201, 1, high))["status"] == "Accepted"
    assert limit(station, 1) == 14.0
    await until(lambda: limit(station, 1) == 8.0, "the higher stack level in its window")
    await until(lambda: limit(station, 1) == 14.0, "the lower stack level after the window")


async def test_a_recurring_daily_profile_starts_again_each_day(station: OcppStation, csms_201: Csms) -> None:
    # started a day ago, 2 s later in the day than now, for 2 s: yesterday's run is over, today's comes in 2 s
    daily = profile(1, kind="Recurring", recurrencyKind="Daily", periods=[(0, 10.0)], start_in_s=2 - 86400,
                    duration=2)
    before = limit(station, 1)
    assert (await set_profile(csms_201, 1, daily))["status"] == "Accepted"
    assert limit(station, 1) == before
    await until(lambda: limit(station, 1) == 10.0, "today's repetition")
    await until(lambda: limit(station, 1) == before, "today's repetition over")


async def test_watts_are_converted_and_the_station_maximum_is_shared(station: OcppStation, csms_201: Csms) -> None:
    station_max = profile(1, purpose="ChargingStationMaxProfile", unit="W", periods=[(0, 9660.0)])  # 14 A x 3
    assert (await set_profile(csms_201, 0, station_max))["status"] == "Accepted"
    await charging(station, csms_201, 1, "ALICE")
    assert limit(station, 1) == 14.0
    await charging(station, csms_201, 2, "BOB")
    await until(lambda: limit(station, 1) == 7.0 and limit(station, 2) == 7.0, "14 A shared by two sessions")
    one_phase = profile(2, unit="W", periods=[(0, 1380.0)])  # 6 A on one phase
    one_phase["chargingSchedule"][0]["chargingSchedulePeriod"][0]["numberPhases"] = 1
    assert (await set_profile(csms_201, 2, one_phase))["status"] == "Accepted"
    await until(lambda: limit(station, 2) == 6.0, "EVSE 2's own 1-phase limit")


# ---------------------------------------------------------------------------------------------------- transactions


async def test_a_zero_tx_profile_suspends_its_transaction_and_goes_with_it(station: OcppStation,
                                                                           csms_201: Csms) -> None:
    tx_id = await charging(station, csms_201, 1)
    seen = len(csms_201.received("TransactionEvent"))
    answer = await set_profile(csms_201, 1, profile(5, purpose="TxProfile", periods=[(0, 0.0)], transactionId=tx_id))
    assert answer["status"] == "Accepted"
    await until(lambda: any(p["transactionInfo"].get("chargingState") == "SuspendedEVSE"
                            for p in csms_201.received("TransactionEvent")[seen:]), "SuspendedEVSE reported",
                timeout=20)
    assert limit(station, 1) == 0
    await until(lambda: station.evse(1)["contactor"] == "open", "the contactor open")
    assert station.evse(1)["phase"] == "charging"  # the session is kept
    assert (await csms_201.call("ClearChargingProfile", {"chargingProfileId": 5}))["status"] == "Accepted"
    await until(lambda: station.evse(1)["contactor"] == "closed", "charging again")
    answer = await set_profile(csms_201, 1, profile(6, purpose="TxProfile", periods=[(0, 12.0)]))
    assert answer["status"] == "Rejected"  # K01.FR.03: a TxProfile names its transaction
    tx = profile(6, purpose="TxProfile", periods=[(0, 12.0)], transactionId=tx_id)
    assert (await set_profile(csms_201, 1, tx))["status"] == "Accepted"
    assert limit(station, 1) == 12.0
    await station.runtime.present_token(1, "ALICE")  # the driver stops: the transaction ends, its profile goes
    await csms_201.expect("TransactionEvent", lambda p: p["eventType"] == "Ended", timeout=20)
    await until(lambda: not station.station.smart_charging.core.profiles, "the TxProfile dropped")
    await until(lambda: station.station.smart_charging.core._applied.get(1) is None, "no profile limit left")


async def test_a_relative_default_runs_from_each_transactions_start(station: OcppStation, csms_201: Csms) -> None:
    relative = profile(1, kind="Relative", periods=[(0, 8.0), (3, 12.0)])
    assert (await set_profile(csms_201, 0, relative))["status"] == "Accepted"  # evseId 0: every EVSE's default
    await charging(station, csms_201, 2)
    await until(lambda: limit(station, 2) == 12.0, "the second period, 3 s into the transaction")
    assert limit(station, 1) == 8.0  # no transaction there: the first period


async def test_a_remote_start_brings_the_profile_of_its_transaction(station: OcppStation, csms_201: Csms) -> None:
    body = profile(9, purpose="TxProfile", kind="Relative", periods=[(0, 7.0)])
    answer = await csms_201.call("RequestStartTransaction", {"evseId": 1, "remoteStartId": 3, "idToken": token("EV"),
                                                             "chargingProfile": body})
    assert answer["status"] == "Accepted"
    await until(lambda: station.evse(1)["phase"] == "authorized", "authorized")
    await station.plug(1)
    await csms_201.expect("TransactionEvent", lambda p: p["eventType"] == "Started", timeout=20)
    await until(lambda: limit(station, 1) == 7.0, "the remote start's profile")
    wrong = await csms_201.call("RequestStartTransaction", {"evseId": 2, "remoteStartId": 4, "idToken": token("EV"),
                                                            "chargingProfile": profile(10)})
    assert wrong["status"] == "Rejected"  # a TxDefaultProfile is no remote start's profile


# ---------------------------------------------------------------------------------------------------- K08-K10


async def test_composite_schedule_in_amperes_and_watts(station: OcppStation, csms_201: Csms) -> None:
    assert (await set_profile(csms_201, 0, profile(1, purpose="ChargingStationMaxProfile",
                                                   periods=[(0, 40.0), (30, 12.0)])))["status"] == "Accepted"
    assert (await set_profile(csms_201, 1, profile(2, periods=[(0, 16.0), (60, 10.0)])))["status"] == "Accepted"
    answer = await csms_201.call("GetCompositeSchedule", {"duration": 120, "evseId": 1, "chargingRateUnit": "A"})
    assert answer["status"] == "Accepted"
    schedule = answer["schedule"]
    assert schedule["evseId"] == 1 and schedule["duration"] == 120 and schedule["chargingRateUnit"] == "A"
    periods = [(p["startPeriod"], p["limit"]) for p in schedule["chargingSchedulePeriod"]]
    assert [limit for _, limit in periods] == [16.0, 12.0, 10.0]  # the least of the station's and the EVSE's
    starts = [start for start, _ in periods]  # the profiles started a second ago: the changes come 1-2 s early
    assert starts[0] == 0 and 27 <= starts[1] <= 30 and starts[2] == starts[1] + 30
    watts = await csms_201.call("GetCompositeSchedule", {"duration": 120, "evseId": 0, "chargingRateUnit": "W"})
    assert [p["limit"] for p in watts["schedule"]["chargingSchedulePeriod"]] == [27600.0, 8280.0]
    unknown = await csms_201.call("GetCompositeSchedule", {"duration": 60, "evseId": 9})
    assert unknown["status"] == "Rejected" and unknown["statusInfo"]["reasonCode"] == "UnknownEvse"


async def test_get_and_clear_by_id_purpose_and_stack_level(station: OcppStation, csms_201: Csms) -> None:
    for n, (evse_id, purpose, level) in enumerate([(0, "ChargingStationMaxProfile", 0), (1, "TxDefaultProfile", 1),
                                                   (2, "TxDefaultProfile", 2), (1, "TxDefaultProfile", 4)], start=1):
        assert (await set_profile(csms_201, evse_id, profile(n, purpose=purpose, level=level)))["status"] == "Accepted"
    answer = await csms_201.call("GetChargingProfiles", {"requestId": 7, "chargingProfile": {
        "chargingProfilePurpose": "TxDefaultProfile"}})
    assert answer["status"] == "Accepted"
    first = await csms_201.expect("ReportChargingProfiles")
    second = await csms_201.expect("ReportChargingProfiles")
    assert (first["evseId"], first["tbc"], sorted(p["id"] for p in first["chargingProfile"])) == (1, True, [2, 4])
    assert (second["evseId"], second["tbc"], [p["id"] for p in second["chargingProfile"]]) == (2, False, [3])
    assert first["requestId"] == 7 and first["chargingLimitSource"] == "CSO"
    assert (await csms_201.call("ClearChargingProfile", {"chargingProfileId": 4}))["status"] == "Accepted"
    assert (await csms_201.call("ClearChargingProfile", {"chargingProfileId": 4}))["status"] == "Unknown"
    answer = await csms_201.call("ClearChargingProfile", {"chargingProfileCriteria": {"stackLevel": 2}})
    assert answer["status"] == "Accepted"
    answer = await csms_201.call("ClearChargingProfile", {"chargingProfileCriteria": {
        "chargingProfilePurpose": "ChargingStationMaxProfile"}})
    assert answer["status"] == "Accepted"
    assert sorted(station.station.smart_charging.core.profiles) == [2]
    none = await csms_201.call("GetChargingProfiles", {"requestId": 8, "evseId": 2, "chargingProfile": {}})
    assert none["status"] == "NoProfiles"


async def test_profiles_are_kept_across_a_restart(tmp_path: Path, csms_201: Csms) -> None:
    config = ocpp_config(csms_201.url)
    async with OcppStation(tmp_path, config) as first:
        await booted(csms_201)
        assert (await set_profile(csms_201, 2, profile(1, periods=[(0, 10.0)])))["status"] == "Accepted"
        assert limit(first, 2) == 10.0
    await csms_201.wait_disconnected()
    async with OcppStation(tmp_path, config) as second:
        await booted(csms_201, count=2)
        assert limit(second, 2) == 10.0
        answer = await csms_201.call("GetChargingProfiles", {"requestId": 1, "chargingProfile": {
            "chargingProfileId": [1]}})
        assert answer["status"] == "Accepted"
        report = await csms_201.expect("ReportChargingProfiles")
        assert report["chargingProfile"][0]["chargingSchedule"][0]["chargingSchedulePeriod"] == [
            {"startPeriod": 0, "limit": 10.0}]


async def test_bad_profiles_are_rejected_with_the_reason(station: OcppStation, csms_201: Csms) -> None:
    async def reason(evse_id: int, body: dict[str, Any]) -> str:
        """The reasonCode of a Rejected SetChargingProfile."""
        answer = await set_profile(csms_201, evse_id, body)
        assert answer["status"] == "Rejected"
        return str(answer["statusInfo"]["reasonCode"])

    assert await reason(5, profile(1)) == "UnknownEvse"
    assert await reason(1, profile(1, purpose="TxProfile", transactionId="nope")) == "TxNotFound"
    assert await reason(1, profile(1, periods=[(n, 6.0) for n in range(25)])) == "InvalidSchedule"
    assert await reason(1, profile(1, level=9)) == "InvalidStackLevel"
    assert await reason(1, profile(1, purpose="ChargingStationMaxProfile")) == "InvalidValue"  # not on evseId 0
    assert await reason(1, profile(1, start_in_s=None)) == "InvalidSchedule"  # Absolute without startSchedule
    assert (await set_profile(csms_201, 1, profile(1)))["status"] == "Accepted"
    assert await reason(1, profile(2)) == "DuplicateProfile"  # K01.FR.06: same EVSE, purpose and stack level
    with pytest.raises(CallErrorReceived) as bad_unit:
        await csms_201.call("SetChargingProfile", {"evseId": 1, "chargingProfile": profile(3, unit="kW")},
                            validate=False)
    assert bad_unit.value.code == "FormatViolation"
    assert station.station.online
    assert limit(station, 1) == 12.0


async def test_a_profile_changes_the_current_on_the_meter(station: OcppStation, csms_201: Csms) -> None:
    """The profile's limit reaches the car through the control pilot: the simulated car draws less on the meter."""
    assert station.evse(2)["pilot"] is not None
    assert (await station.runtime.present_token(2, "ALICE")).may_charge
    await station.plug(2)
    await until(lambda: max(station.evse(2)["current_a"] or [0]) > 15.5, "the car draws the pilot's 16 A", timeout=20)
    answer = await csms_201.call("SetChargingProfile", {"evseId": 2, "chargingProfile": profile(
        7, periods=[(0, 10.0)])})
    assert answer["status"] == "Accepted"
    assert station.evse(2)["pilot"]["advertised_a"] == 10.0
    await until(lambda: max(station.evse(2)["current_a"] or [99]) < 10.5, "the car follows to 10 A", timeout=20)
