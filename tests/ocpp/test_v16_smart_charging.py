"""OCPP 1.6 SmartCharging against the sim charger: SetChargingProfile (TxDefaultProfile, TxProfile,
ChargePointMaxProfile on connectorId 0), the limit following at once and at each period, 0 A making the connector
SuspendedEVSE while its transaction runs, a TxProfile bound to its transaction (and dropped at its end), replacement
by stack level and purpose, ClearChargingProfile by id, connector, purpose and stack level, GetCompositeSchedule in A
and W, RemoteStartTransaction's chargingProfile, the SmartCharging configuration keys, profiles kept across a restart,
and refusals. Schedules start relative to now with periods of seconds; waits have generous timeouts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from controller.config.loader import ChargerConfig, load_sim_default

from .csms import Csms
from .station_harness import OcppStation, booted16, charging16, ocpp_config, ocpp_time, until


def profile(profile_id: int, *, purpose: str = "TxDefaultProfile", level: int = 0, kind: str = "Absolute",
            periods: list[tuple[int, float]] | None = None, unit: str = "A", **more: Any) -> dict[str, Any]:
    """A csChargingProfiles (camelCase); an Absolute one starts a second ago."""
    schedule: dict[str, Any] = {"chargingRateUnit": unit, "chargingSchedulePeriod": [
        {"startPeriod": start, "limit": limit} for start, limit in (periods or [(0, 12.0)])]}
    if kind != "Relative":
        schedule["startSchedule"] = ocpp_time(-1)
    return {"chargingProfileId": profile_id, "stackLevel": level, "chargingProfilePurpose": purpose,
            "chargingProfileKind": kind, "chargingSchedule": schedule, **more}


async def set_profile(csms: Csms, connector_id: int, body: dict[str, Any]) -> str:
    """SetChargingProfile; the status answered."""
    answer = await csms.call("SetChargingProfile", {"connectorId": connector_id, "csChargingProfiles": body})
    return str(answer["status"])


def limit(station: OcppStation, evse_id: int) -> float | None:
    """The EVSE's limit in effect."""
    value = station.evse(evse_id)["limit_a"]
    return None if value is None else float(value)


def reported(csms: Csms, connector_id: int, after: int, *statuses: str) -> bool:
    """A StatusNotification of the connector in one of ``statuses`` came after the first ``after`` ones."""
    return any(p["connectorId"] == connector_id and p["status"] in statuses
               for p in csms.received("StatusNotification")[after:])


@pytest.fixture
async def station(tmp_path: Path, csms_16: Csms) -> AsyncIterator[OcppStation]:
    """The sim charger connected and booted at ``csms_16`` (OCPP 1.6), every connector reported."""
    async with OcppStation(tmp_path, ocpp_config(csms_16.url, version="1.6")) as s:
        await booted16(csms_16)
        yield s


async def test_a_default_profile_applies_at_once_then_period_by_period(station: OcppStation, csms_16: Csms) -> None:
    assert await set_profile(csms_16, 1, profile(1, periods=[(0, 12.0), (3, 8.0)])) == "Accepted"
    assert limit(station, 1) == 12.0
    await until(lambda: limit(station, 1) == 8.0, "the second period")
    keys = await csms_16.call("GetConfiguration", {"key": [
        "ChargeProfileMaxStackLevel", "ChargingScheduleAllowedChargingRateUnit", "ChargingScheduleMaxPeriods",
        "MaxChargingProfilesInstalled"]})
    values = {k["key"]: (k["value"], k["readonly"]) for k in keys["configurationKey"]}
    assert values == {"ChargeProfileMaxStackLevel": ("8", True),
                      "ChargingScheduleAllowedChargingRateUnit": ("Current,Power", True),
                      "ChargingScheduleMaxPeriods": ("24", True), "MaxChargingProfilesInstalled": ("64", True)}
    answer = await csms_16.call("ChangeConfiguration", {"key": "ChargeProfileMaxStackLevel", "value": "3"})
    assert answer["status"] == "Rejected"


async def test_zero_amperes_suspend_the_transaction_and_its_tx_profile_goes_with_it(
        station: OcppStation, csms_16: Csms) -> None:
    assert await set_profile(csms_16, 1, profile(1, purpose="TxProfile")) == "Rejected"  # no transaction yet
    tx_id = await charging16(station, csms_16, 1)
    assert await set_profile(csms_16, 1, profile(2, purpose="TxProfile", transactionId=tx_id + 1)) == "Rejected"
    seen = len(csms_16.received("StatusNotification"))
    assert await set_profile(csms_16, 1, profile(2, purpose="TxProfile", periods=[(0, 0.0)])) == "Accepted"
    await until(lambda: reported(csms_16, 1, seen, "SuspendedEVSE"), "SuspendedEVSE reported", timeout=20)
    await until(lambda: station.evse(1)["contactor"] == "open", "paused")
    assert station.evse(1)["phase"] == "charging"
    # the same stack level and purpose replace it (5.16): charging again at 10 A
    answer = await set_profile(csms_16, 1, profile(3, purpose="TxProfile", periods=[(0, 10.0)], transactionId=tx_id))
    assert answer == "Accepted"
    assert sorted(station.station.smart_charging.core.profiles) == [3]
    seen = len(csms_16.received("StatusNotification"))
    await until(lambda: reported(csms_16, 1, seen, "Charging", "SuspendedEV"), "offered again", timeout=20)
    assert limit(station, 1) == 10.0
    await station.runtime.present_token(1, "ALICE")
    await csms_16.expect("StopTransaction", timeout=20)
    await until(lambda: not station.station.smart_charging.core.profiles, "the TxProfile dropped")


async def test_the_charge_point_maximum_is_for_connector_0_and_shared(station: OcppStation, csms_16: Csms) -> None:
    assert await set_profile(csms_16, 1, profile(1, purpose="ChargePointMaxProfile")) == "Rejected"
    station_max = profile(1, purpose="ChargePointMaxProfile", unit="W", periods=[(0, 8280.0)])  # 12 A on 3 phases
    assert await set_profile(csms_16, 0, station_max) == "Accepted"
    await charging16(station, csms_16, 1, "ALICE")
    assert limit(station, 1) == 12.0
    await charging16(station, csms_16, 2, "BOB")
    await until(lambda: limit(station, 1) == 6.0 and limit(station, 2) == 6.0, "12 A shared")
    answer = await csms_16.call("GetCompositeSchedule", {"connectorId": 0, "duration": 60, "chargingRateUnit": "W"})
    assert answer["status"] == "Accepted" and answer["connectorId"] == 0
    schedule = answer["chargingSchedule"]
    assert schedule["chargingRateUnit"] == "W" and schedule["duration"] == 60
    assert schedule["chargingSchedulePeriod"] == [{"startPeriod": 0, "limit": 8280.0, "numberPhases": 3}]


def single_phase_240v() -> ChargerConfig:
    """The sim charger with EVSE 1 wired to one phase of 240 V (``[evses.pilot] phases = 1, voltage_v = 240``)."""
    config = load_sim_default()
    first = config.evses[0]
    assert first.pilot is not None
    pilot = dataclasses.replace(first.pilot, phases=1, voltage_v=240.0)
    return dataclasses.replace(config, evses=(dataclasses.replace(first, pilot=pilot), *config.evses[1:]))


async def test_watts_are_converted_with_the_configured_phases_and_voltage(tmp_path: Path, csms_16: Csms) -> None:
    async with OcppStation(tmp_path, ocpp_config(csms_16.url, version="1.6"), charger=single_phase_240v()) as station:
        await booted16(csms_16)
        # 2400 W on one phase of 240 V is 10 A (on the default 3 x 230 V it would be 3.5 A: nothing to offer)
        assert await set_profile(csms_16, 1, profile(1, unit="W", periods=[(0, 2400.0)])) == "Accepted"
        assert await set_profile(csms_16, 2, profile(2, unit="W", periods=[(0, 8280.0)])) == "Accepted"
        assert (limit(station, 1), limit(station, 2)) == (10.0, 12.0)  # EVSE 2 keeps 3 x 230 V
        answer = await csms_16.call("GetCompositeSchedule", {"connectorId": 1, "duration": 60,
                                                             "chargingRateUnit": "A"})
        assert answer["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] == 10.0
        await charging16(station, csms_16, 1)
        await until(lambda: abs(float(station.evse(1)["pilot"]["advertised_a"]) - 10.0) < 0.01, "10 A offered")


async def test_composite_schedule_and_clearing(station: OcppStation, csms_16: Csms) -> None:
    assert await set_profile(csms_16, 0, profile(1, periods=[(0, 13.0)])) == "Accepted"  # every connector's default
    assert await set_profile(csms_16, 1, profile(2, level=2, periods=[(0, 10.0), (20, 14.0)])) == "Accepted"
    assert await set_profile(csms_16, 2, profile(3, level=1, periods=[(0, 9.0)])) == "Accepted"
    assert (limit(station, 1), limit(station, 2)) == (10.0, 9.0)
    answer = await csms_16.call("GetCompositeSchedule", {"connectorId": 1, "duration": 40})
    periods = answer["chargingSchedule"]["chargingSchedulePeriod"]
    assert answer["chargingSchedule"]["chargingRateUnit"] == "A"
    assert [p["limit"] for p in periods] == [10.0, 14.0] and 17 <= periods[1]["startPeriod"] <= 20
    assert (await csms_16.call("GetCompositeSchedule", {"connectorId": 5, "duration": 40}))["status"] == "Rejected"
    assert (await csms_16.call("ClearChargingProfile", {"id": 9}))["status"] == "Unknown"
    assert (await csms_16.call("ClearChargingProfile", {"id": 2}))["status"] == "Accepted"
    assert limit(station, 1) == 13.0  # connector 0's default again
    answer = await csms_16.call("ClearChargingProfile", {"connectorId": 2,
                                                         "chargingProfilePurpose": "TxDefaultProfile"})
    assert answer["status"] == "Accepted"
    assert (await csms_16.call("ClearChargingProfile", {"stackLevel": 1}))["status"] == "Unknown"
    assert (await csms_16.call("ClearChargingProfile", {"stackLevel": 0}))["status"] == "Accepted"
    assert station.station.smart_charging.core.profiles == {}


async def test_a_remote_start_brings_its_transactions_profile(station: OcppStation, csms_16: Csms) -> None:
    body = profile(7, purpose="TxProfile", kind="Relative", periods=[(0, 7.0)])
    answer = await csms_16.call("RemoteStartTransaction", {"connectorId": 1, "idTag": "EVCC", "chargingProfile": body})
    assert answer["status"] == "Accepted"
    await until(lambda: station.evse(1)["phase"] == "authorized", "authorized")
    await station.plug(1)
    await csms_16.expect("StartTransaction")
    await until(lambda: limit(station, 1) == 7.0, "the remote start's profile")
    answer = await csms_16.call("RemoteStartTransaction", {"connectorId": 2, "idTag": "EVCC",
                                                           "chargingProfile": profile(8)})
    assert answer["status"] == "Rejected"  # not a TxProfile


async def test_profiles_are_kept_across_a_restart_and_bad_ones_refused(tmp_path: Path, csms_16: Csms) -> None:
    config = ocpp_config(csms_16.url, version="1.6")
    async with OcppStation(tmp_path, config) as first:
        await booted16(csms_16)
        assert await set_profile(csms_16, 2, profile(1, periods=[(0, 11.0)])) == "Accepted"
        assert limit(first, 2) == 11.0
        assert await set_profile(csms_16, 3, profile(2)) == "Rejected"  # no such connector
        assert await set_profile(csms_16, 1, profile(2, periods=[(n, 6.0) for n in range(25)])) == "Rejected"
        assert await set_profile(csms_16, 1, profile(2, level=9)) == "Rejected"
    await csms_16.wait_disconnected()
    async with OcppStation(tmp_path, config) as second:
        await booted16(csms_16, count=2)
        assert limit(second, 2) == 11.0
        assert sorted(second.station.smart_charging.core.profiles) == [1]


async def test_a_profile_changes_the_current_on_the_meter(station: OcppStation, csms_16: Csms) -> None:
    """The profile's limit reaches the car through the control pilot: the simulated car draws less on the meter."""
    assert station.evse(1)["pilot"] is not None
    await charging16(station, csms_16, 1)
    await until(lambda: max(station.evse(1)["current_a"] or [0]) > 15.5, "the car draws the pilot's 16 A", timeout=20)
    assert await set_profile(csms_16, 1, profile(7, periods=[(0, 8.0)])) == "Accepted"
    assert station.evse(1)["pilot"]["advertised_a"] == 8.0
    await until(lambda: max(station.evse(1)["current_a"] or [99]) < 8.5, "the car follows to 8 A", timeout=20)
