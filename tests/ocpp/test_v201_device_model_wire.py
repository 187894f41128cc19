"""The OCPP 2.0.1 device model over the wire (B05-B07): GetVariables and SetVariables with every status, values kept
across a restart of the station, GetBaseReport answered by NotifyReport parts, live values (availability, clock),
ReservationCtrlr.Enabled, and the Basic auth password that can be set but never read, nor logged.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from .csms import Csms
from .station_harness import OcppStation, booted, ocpp_config, ocpp_time, set_variables, status_of

PASSWORD = "S3cret-Password-0042!"  # 16..40 characters, as BasicAuthPassword requires


def var(component: str, variable: str, **more: Any) -> dict[str, Any]:
    """A GetVariableData entry (``evse`` and ``attribute_type`` go where the schema wants them)."""
    entry: dict[str, Any] = {"component": {"name": component}, "variable": {"name": variable}}
    if "evse" in more:
        entry["component"]["evse"] = more.pop("evse")
    if "attribute_type" in more:
        entry["attributeType"] = more.pop("attribute_type")
    assert not more, more
    return entry


def set_entry(component: str, variable: str, value: str, **more: Any) -> dict[str, Any]:
    """A SetVariableData entry."""
    return {**var(component, variable, **more), "attributeValue": value}


async def get_values(csms: Csms, *entries: dict[str, Any]) -> list[dict[str, Any]]:
    """The GetVariableResult list for these entries (in order)."""
    answer = await csms.call("GetVariables", {"getVariableData": list(entries)})
    results: list[dict[str, Any]] = answer["getVariableResult"]
    assert len(results) == len(entries)
    return results


async def set_values(csms: Csms, *entries: dict[str, Any]) -> list[dict[str, Any]]:
    """The SetVariableResult list for these entries (in order)."""
    answer = await csms.call("SetVariables", {"setVariableData": list(entries)})
    results: list[dict[str, Any]] = answer["setVariableResult"]
    assert len(results) == len(entries)
    return results


@pytest.fixture
async def station(tmp_path: Path, csms_201: Csms) -> AsyncIterator[OcppStation]:
    """The sim charger connected and booted at ``csms_201``, every connector reported."""
    async with OcppStation(tmp_path, ocpp_config(csms_201.url)) as s:
        await booted(csms_201)
        yield s


# ---------------------------------------------------------------------------------------------------- B06


async def test_get_variables_answers_every_status(station: OcppStation, csms_201: Csms) -> None:
    results = await get_values(
        csms_201,
        var("ReservationCtrlr", "Enabled"),
        var("SecurityCtrlr", "BasicAuthPassword"),
        var("NoSuchCtrlr", "Enabled"),
        var("ReservationCtrlr", "NoSuchVariable"),
        var("ReservationCtrlr", "Enabled", attribute_type="Target"),
        var("Connector", "ConnectorType", evse={"id": 1, "connectorId": 1}),
        var("EVSE", "AvailabilityState", evse={"id": 9}),
    )
    assert [r["attributeStatus"] for r in results] == [
        "Accepted", "Rejected", "UnknownComponent", "UnknownVariable", "NotSupportedAttributeType", "Accepted",
        "UnknownComponent"]
    assert results[0]["attributeValue"] == "true"
    assert "attributeValue" not in results[1] and results[1]["attributeStatusInfo"]["reasonCode"] == "WriteOnly"
    assert results[4]["attributeType"] == "Target"
    assert results[5]["attributeValue"] == "sType2"  # the sim's connector type, as ConnectorEnumType spells it
    assert results[5]["component"] == {"name": "Connector", "evse": {"id": 1, "connectorId": 1}}
    assert all(r["attributeStatus"] != "Accepted" or "attributeValue" in r for r in results)


async def test_component_and_variable_names_are_case_insensitive(station: OcppStation, csms_201: Csms) -> None:
    [result] = await get_values(csms_201, var("reservationctrlr", "ENABLED"))
    assert result["attributeStatus"] == "Accepted" and result["attributeValue"] == "true"


async def test_live_values_follow_the_station(station: OcppStation, csms_201: Csms) -> None:
    await csms_201.call("ChangeAvailability", {"operationalStatus": "Inoperative", "evse": {"id": 1}})
    await csms_201.expect("StatusNotification", status_of(1, "Unavailable"))
    evse1, connector1, evse2, clock = await get_values(
        csms_201,
        var("EVSE", "AvailabilityState", evse={"id": 1}),
        var("Connector", "AvailabilityState", evse={"id": 1, "connectorId": 1}),
        var("EVSE", "AvailabilityState", evse={"id": 2}),
        var("ClockCtrlr", "DateTime"),
    )
    assert evse1["attributeValue"] == "Unavailable"
    assert connector1["attributeValue"] == "Unavailable"
    assert evse2["attributeValue"] == "Available"
    now = datetime.fromisoformat(clock["attributeValue"].replace("Z", "+00:00"))
    assert abs((now - datetime.now(UTC)).total_seconds()) < 60

    await csms_201.call("GetBaseReport", {"requestId": 5, "reportBase": "SummaryInventory"})
    report = await csms_201.expect("NotifyReport", lambda p: p["requestId"] == 5)
    states = {(r["component"]["name"], r["component"].get("evse", {}).get("id")): r["variableAttribute"][0]["value"]
              for r in report["reportData"] if r["variable"]["name"] == "AvailabilityState"}
    assert states[("EVSE", 1)] == "Unavailable" and states[("EVSE", 2)] == "Available"


async def test_the_station_is_unavailable_only_when_every_evse_is(station: OcppStation, csms_201: Csms) -> None:
    async def station_state() -> str:
        [result] = await get_values(csms_201, var("ChargingStation", "AvailabilityState"))
        return str(result["attributeValue"])

    await station.plug(2)
    await csms_201.expect("StatusNotification", status_of(2, "Occupied"))
    [evse2] = await get_values(csms_201, var("EVSE", "AvailabilityState", evse={"id": 2}))
    assert evse2["attributeValue"] == "Occupied"
    assert await station_state() == "Available"
    await csms_201.call("ChangeAvailability", {"operationalStatus": "Inoperative"})
    for evse_id in (1, 2):
        await csms_201.expect("StatusNotification", status_of(evse_id, "Unavailable"))
    assert await station_state() == "Unavailable"


# ---------------------------------------------------------------------------------------------------- B05


async def test_set_variables_answers_every_status(station: OcppStation, csms_201: Csms) -> None:
    results = await set_values(
        csms_201,
        set_entry("SampledDataCtrlr", "TxUpdatedInterval", "15"),
        set_entry("ReservationCtrlr", "Available", "false"),
        set_entry("SampledDataCtrlr", "TxUpdatedInterval", "soon"),
        set_entry("SampledDataCtrlr", "TxUpdatedInterval", "-1"),
        set_entry("TxCtrlr", "TxStartPoint", "EVConnected,DataSigned"),
        set_entry("NoSuchCtrlr", "Enabled", "true"),
        set_entry("ReservationCtrlr", "NoSuchVariable", "true"),
        set_entry("ReservationCtrlr", "Enabled", "false", attribute_type="MaxSet"),
    )
    assert [r["attributeStatus"] for r in results] == [
        "Accepted", "Rejected", "Rejected", "Rejected", "Rejected", "UnknownComponent", "UnknownVariable",
        "NotSupportedAttributeType"]
    assert [r.get("attributeStatusInfo", {}).get("reasonCode") for r in results[1:5]] == [
        "ReadOnly", "InvalidValue", "ValueOutOfRange", "InvalidValue"]
    current = await get_values(csms_201, var("SampledDataCtrlr", "TxUpdatedInterval"),
                               var("ReservationCtrlr", "Enabled"), var("ReservationCtrlr", "Available"),
                               var("TxCtrlr", "TxStartPoint"))
    assert [r["attributeValue"] for r in current] == ["15", "true", "true", "PowerPathClosed"]


async def test_a_variable_that_needs_a_restart_answers_reboot_required(station: OcppStation, csms_201: Csms) -> None:
    store = station.front.variables  # type: ignore[union-attr]
    candidates = [(d, v) for d in store.definitions if d.reboot_required and d.mutability.value == "ReadWrite"
                  for v in d.values_list if v != store.value(d.component, d.variable)]
    if not candidates:
        pytest.skip("no ReadWrite variable of this device model needs a restart and can take another value "
                    "(OCPPCommCtrlr.NetworkConfigurationPriority lists only slot 1)")
    definition, value = candidates[0]
    [result] = await set_values(csms_201, set_entry(definition.component, definition.variable, value))
    assert result["attributeStatus"] == "RebootRequired"


async def test_set_values_are_kept_across_a_restart_of_the_station(tmp_path: Path, csms_201: Csms) -> None:
    async with OcppStation(tmp_path, ocpp_config(csms_201.url)):
        await booted(csms_201)
        await set_variables(csms_201, ("SampledDataCtrlr", "TxUpdatedInterval", "17"),
                            ("AuthCtrlr", "AuthorizeRemoteStart", "false"), ("ReservationCtrlr", "Enabled", "false"),
                            ("TxCtrlr", "TxStopPoint", "EVConnected"))
    await csms_201.wait_disconnected()
    async with OcppStation(tmp_path, ocpp_config(csms_201.url)):
        await booted(csms_201, count=2)
        results = await get_values(csms_201, var("SampledDataCtrlr", "TxUpdatedInterval"),
                                   var("AuthCtrlr", "AuthorizeRemoteStart"), var("ReservationCtrlr", "Enabled"),
                                   var("TxCtrlr", "TxStopPoint"))
        assert [r["attributeValue"] for r in results] == ["17", "false", "false", "EVConnected"]
        answer = await csms_201.call("ReserveNow", {"id": 1, "expiryDateTime": ocpp_time(600), "evseId": 1,
                                                    "idToken": {"idToken": "ALICE", "type": "ISO14443"}})
        assert answer["status"] == "Rejected"  # Enabled = false still holds


# ---------------------------------------------------------------------------------------------------- B07


@pytest.mark.parametrize("base", ["ConfigurationInventory", "FullInventory", "SummaryInventory"])
async def test_get_base_report_is_sent_in_numbered_parts(station: OcppStation, csms_201: Csms, base: str) -> None:
    answer = await csms_201.call("GetBaseReport", {"requestId": 42, "reportBase": base})
    assert answer["status"] == "Accepted"
    parts = [await csms_201.expect("NotifyReport", lambda p: p["requestId"] == 42)]
    while parts[-1].get("tbc", False):
        parts.append(await csms_201.expect("NotifyReport", lambda p: p["requestId"] == 42))
    assert [p["seqNo"] for p in parts] == list(range(len(parts)))
    assert all(p.get("tbc") is True for p in parts[:-1])
    assert len({p["generatedAt"] for p in parts}) == 1
    items = [item for p in parts for item in p["reportData"]]
    assert all(len(p["reportData"]) <= 100 for p in parts)  # DeviceDataCtrlr.ItemsPerMessage[GetReport]
    names = {(i["component"]["name"], i["variable"]["name"]) for i in items}
    mutability = {a.get("mutability", "ReadWrite") for i in items for a in i["variableAttribute"]}
    if base == "ConfigurationInventory":
        assert mutability <= {"ReadWrite", "WriteOnly"}
        assert ("ReservationCtrlr", "Enabled") in names and ("ReservationCtrlr", "Available") not in names
    elif base == "FullInventory":
        assert {("ReservationCtrlr", "Enabled"), ("ReservationCtrlr", "Available"),
                ("SecurityCtrlr", "BasicAuthPassword")} <= names
        assert "ReadOnly" in mutability
    else:
        assert {name for _, name in names} <= {"AvailabilityState", "Problem", "Tripped", "Overload", "Fallback"}
        assert {("EVSE", "AvailabilityState"), ("Connector", "AvailabilityState")} <= names
    for item in items:
        if item["variable"]["name"] == "BasicAuthPassword":
            assert all("value" not in a for a in item["variableAttribute"])


async def test_get_base_report_numbers_each_request_on_its_own(station: OcppStation, csms_201: Csms) -> None:
    await csms_201.call("GetBaseReport", {"requestId": 1, "reportBase": "SummaryInventory"})
    await csms_201.call("GetBaseReport", {"requestId": 2, "reportBase": "SummaryInventory"})
    first = await csms_201.expect("NotifyReport", lambda p: p["requestId"] == 1)
    second = await csms_201.expect("NotifyReport", lambda p: p["requestId"] == 2)
    assert first["seqNo"] == second["seqNo"] == 0


# ---------------------------------------------------------------------------------------------------- H01, security


async def test_reservations_disabled_by_the_csms_are_rejected_and_enabled_again(
        station: OcppStation, csms_201: Csms) -> None:
    reserve = {"id": 1, "expiryDateTime": ocpp_time(600), "evseId": 1,
               "idToken": {"idToken": "ALICE", "type": "ISO14443"}}
    await set_variables(csms_201, ("ReservationCtrlr", "Enabled", "false"))
    assert (await csms_201.call("ReserveNow", reserve))["status"] == "Rejected"
    assert not station.evse(1)["reserved"]
    await set_variables(csms_201, ("ReservationCtrlr", "Enabled", "true"))
    assert (await csms_201.call("ReserveNow", reserve))["status"] == "Accepted"
    await csms_201.expect("StatusNotification", status_of(1, "Reserved"))


async def test_the_basic_auth_password_is_set_never_read_and_never_logged(
        tmp_path: Path, csms_201: Csms, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="controller.ocpp.wire")
    async with OcppStation(tmp_path, ocpp_config(csms_201.url)) as station:
        await booted(csms_201)
        [result] = await set_values(csms_201, set_entry("SecurityCtrlr", "BasicAuthPassword", PASSWORD))
        assert result["attributeStatus"] == "Accepted"
        [read] = await get_values(csms_201, var("SecurityCtrlr", "BasicAuthPassword"))
        assert read["attributeStatus"] == "Rejected" and "attributeValue" not in read
        await csms_201.call("GetBaseReport", {"requestId": 3, "reportBase": "FullInventory"})
        await csms_201.expect("NotifyReport", lambda p: p["requestId"] == 3 and not p.get("tbc"))
        assert station.front is not None and station.front.variables is not None
        assert station.front.variables.str_value("SecurityCtrlr", "BasicAuthPassword") == PASSWORD
    # the station's records (the test CSMS's own, websockets.server and the ocpp library's, are not the station's)
    records = [r for r in caplog.records if not r.name.startswith(("websockets.server", "ocpp", "tests"))]
    assert any("BasicAuthPassword" in r.getMessage() for r in records)  # it was logged about, hidden
    assert any(r.name == "controller.ocpp.wire" for r in records)  # frames were logged
    leaks = [f"{r.name}: {r.getMessage()}" for r in records if PASSWORD in r.getMessage() or "0042" in r.getMessage()]
    assert not leaks
    reported = [f.text for f in csms_201.frames if f.direction == "in"]
    assert not any(PASSWORD in text for text in reported)
