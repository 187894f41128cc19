"""OCPP 1.6 connector statuses: the derivation from an EVSE entry (every ChargePointStatus and errorCode), and the
StatusNotifications the sim charger sends through a session, a pause, the end of a transaction and its faults.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from controller.ocpp.v16.status import (
    Report,
    Status16,
    StatusTracker16,
    connector_numbers,
    connector_report,
    error_code,
    station_report,
)
from controller.port.charger import SimFaultKind

from .csms import Csms
from .station_harness import OcppStation, booted16, ocpp_config, status16, until


def entry(**changes: Any) -> dict[str, Any]:
    """An EVSE entry of ``Charger.status()``: idle, enabled, unplugged, healthy; ``changes`` applied."""
    base: dict[str, Any] = {"id": 1, "state": "Available", "enabled": True, "plugged_in": False, "reserved": False,
                            "contactor": "open", "phase": "idle", "power_w": None, "charging_allowed": True,
                            "current_limit_a": None, "faults": [],
                            "connectors": [{"id": 1, "type": "sType2", "state": "Available"}]}
    return {**base, **changes}


def report(evse: dict[str, Any], *, transaction: bool = False, finished: bool = False) -> Report:
    """The report of the entry's only connector."""
    return connector_report(evse, evse["connectors"][0], transaction=transaction, finished=finished)


@pytest.mark.parametrize(("evse", "transaction", "finished", "status"), [
    (entry(), False, False, Status16.AVAILABLE),
    (entry(reserved=True), False, False, Status16.RESERVED),
    (entry(plugged_in=True), False, False, Status16.PREPARING),
    (entry(phase="authorized"), False, False, Status16.PREPARING),  # a reserved token before the plug, too
    (entry(phase="authorized", reserved=True), False, False, Status16.PREPARING),
    (entry(plugged_in=True, phase="locking"), True, False, Status16.SUSPENDED_EVSE),
    (entry(plugged_in=True, phase="charging", contactor="closed", power_w=7360.0), True, False, Status16.CHARGING),
    (entry(plugged_in=True, phase="charging", contactor="closed", power_w=0.0), True, False, Status16.SUSPENDED_EV),
    (entry(plugged_in=True, phase="charging", charging_allowed=False), True, False, Status16.SUSPENDED_EVSE),
    (entry(plugged_in=True, phase="charging", contactor="closed", power_w=10.0, current_limit_a=0.0), True, False,
     Status16.SUSPENDED_EVSE),
    (entry(plugged_in=True, phase="stopping"), False, False, Status16.FINISHING),
    (entry(plugged_in=True, phase="unlocking"), False, False, Status16.FINISHING),
    (entry(plugged_in=True), False, True, Status16.FINISHING),  # the transaction ended, the plug is still in
    (entry(plugged_in=True, phase="authorized"), False, True, Status16.PREPARING),  # a new token: a new session
    (entry(enabled=False), False, False, Status16.UNAVAILABLE),
    (entry(state="Faulted", faults=["contactor_welded"]), False, False, Status16.FAULTED),
])
def test_each_status_from_the_evse_entry(evse: dict[str, Any], transaction: bool, finished: bool,
                                         status: Status16) -> None:
    assert report(evse, transaction=transaction, finished=finished).status is status


@pytest.mark.parametrize(("faults", "code"), [
    ([], "NoError"),
    (["contactor_welded"], "OtherError"),
    (["contactor_failed_to_close"], "OtherError"),
    (["lock_failed_lock"], "ConnectorLockFailure"),
    (["lock_unexpected_change"], "ConnectorLockFailure"),
    (["meter_no_response"], "PowerMeterFailure"),
    (["meter_stale"], "PowerMeterFailure"),
    (["token_reader_disconnected"], "ReaderFailure"),
    (["pilot_cp_short"], "EVCommunicationError"),
    (["pilot_diode"], "EVCommunicationError"),
    (["ev_overcurrent"], "OverCurrentFailure"),
    (["cable_fault"], "OtherError"),
])
def test_error_codes_name_our_faults(faults: list[str], code: str) -> None:
    found, info = error_code(faults)
    assert found == code
    assert info == (",".join(faults) or None)
    faulted = report(entry(state="Faulted", faults=faults))
    assert faulted.status is Status16.FAULTED
    assert faulted.error_code == (code if faults else "OtherError")
    payload = faulted.payload(1, "2026-01-01T00:00:00.000Z")
    assert payload.get("info") == payload.get("vendor_error_code") == (",".join(faults) or None)


def test_connector_numbers_follow_the_evse_order_and_the_station_is_connector_zero() -> None:
    two = entry(id=2, connectors=[{"id": 1, "type": "sType2", "state": "Available"},
                                  {"id": 2, "type": "cType2", "state": "Available"}])
    assert connector_numbers([two, entry()]) == {1: (1, 1), 2: (2, 1), 3: (2, 2)}
    assert station_report([entry(), entry(id=2, enabled=False)]).status is Status16.AVAILABLE
    assert station_report([entry(enabled=False), entry(id=2, enabled=False)]).status is Status16.UNAVAILABLE
    faulted = entry(state="Faulted", faults=["meter_no_response"])
    both = station_report([faulted, {**faulted, "id": 2}])
    assert (both.status, both.error_code) == (Status16.FAULTED, "PowerMeterFailure")


def test_the_tracker_reports_changes_only_and_everything_after_forget() -> None:
    tracker = StatusTracker16()
    now = {0: Report(Status16.AVAILABLE), 1: Report(Status16.PREPARING)}
    assert tracker.changes(now) == sorted(now.items())
    for number, sent in now.items():
        tracker.sent(number, sent)
    assert tracker.changes(now) == []
    assert tracker.changes({**now, 1: Report(Status16.CHARGING)}) == [(1, Report(Status16.CHARGING))]
    tracker.forget()
    assert len(tracker.changes(now)) == 2


# ---------------------------------------------------------------------------------------------------- on the wire


@pytest.fixture
async def station(tmp_path: Path, csms_16: Csms) -> AsyncIterator[OcppStation]:
    """The sim charger connected and booted at ``csms_16`` (OCPP 1.6), every connector reported."""
    async with OcppStation(tmp_path, ocpp_config(csms_16.url, version="1.6")) as s:
        await booted16(csms_16)
        yield s


def statuses_of(csms: Csms, connector_id: int) -> list[str]:
    """The statuses reported for one connectorId, in order."""
    return [p["status"] for p in csms.received("StatusNotification") if p["connectorId"] == connector_id]


async def reported(csms: Csms, connector_id: int, status: str, *, after: int, timeout: float = 20.0) -> int:
    """Wait until ``status`` is reported for the connector after its first ``after`` reports; the count then."""
    await until(lambda: status in statuses_of(csms, connector_id)[after:], f"connector {connector_id} {status}",
                timeout)
    return len(statuses_of(csms, connector_id))


async def test_a_session_goes_preparing_charging_suspended_evse_finishing_available(
        station: OcppStation, csms_16: Csms) -> None:
    await station.runtime.present_token(1, "ALICE")
    seen = await reported(csms_16, 1, "Preparing", after=0)
    await station.plug(1)
    await csms_16.expect("StartTransaction")
    seen = await reported(csms_16, 1, "Charging", after=seen)
    await station.runtime.set_charging_allowed(1, False)  # an energy manager's pause
    seen = await reported(csms_16, 1, "SuspendedEVSE", after=seen)
    await station.runtime.set_charging_allowed(1, True)
    seen = await reported(csms_16, 1, "Charging", after=seen)
    await station.runtime.present_token(1, "ALICE")
    await csms_16.expect("StopTransaction", timeout=20)
    seen = await reported(csms_16, 1, "Finishing", after=seen)
    await until(lambda: station.evse(1)["lock"] == "unlocked" and station.evse(1)["phase"] == "idle",
                "EVSE 1 unlocked", timeout=20)
    assert statuses_of(csms_16, 1)[-1] == "Finishing"  # the plug is still in
    await station.unplug(1)
    await reported(csms_16, 1, "Available", after=seen)
    assert statuses_of(csms_16, 2) == ["Available"]
    assert all(p["errorCode"] == "NoError" for p in csms_16.received("StatusNotification"))


async def test_a_plug_without_a_token_is_preparing_and_no_transaction_starts(
        station: OcppStation, csms_16: Csms) -> None:
    await station.plug(2)
    await csms_16.expect("StatusNotification", status16(2, "Preparing"))
    await station.unplug(2)
    await csms_16.expect("StatusNotification", status16(2, "Available"))
    assert csms_16.received("StartTransaction") == []


async def test_a_silent_meter_is_a_power_meter_failure_until_it_answers_again(
        station: OcppStation, csms_16: Csms) -> None:
    await station.runtime.sim.fault(2, SimFaultKind.METER_SILENT)
    faulted = await csms_16.expect("StatusNotification", status16(2, "Faulted"), timeout=30)
    assert faulted["errorCode"] == "PowerMeterFailure"
    assert faulted["info"].startswith("meter_") and faulted["vendorErrorCode"] == faulted["info"]
    await station.runtime.sim.fault(2, SimFaultKind.CLEAR)
    again = await csms_16.expect("StatusNotification", status16(2, "Available"), timeout=30)
    assert again["errorCode"] == "NoError" and "info" not in again


async def test_a_jammed_lock_is_a_connector_lock_failure(station: OcppStation, csms_16: Csms) -> None:
    await station.runtime.sim.fault(1, SimFaultKind.LOCK_JAM)
    await station.runtime.present_token(1, "ALICE")
    await station.plug(1)
    faulted = await csms_16.expect("StatusNotification", status16(1, "Faulted", "ConnectorLockFailure"), timeout=30)
    assert faulted["info"] == faulted["vendorErrorCode"] == "lock_failed_lock"


async def test_a_welded_contactor_is_other_error_naming_it(station: OcppStation, csms_16: Csms) -> None:
    await station.runtime.present_token(2, "BOB")
    await station.plug(2)
    await csms_16.expect("StatusNotification", status16(2, "Charging"), timeout=20)
    await station.runtime.sim.fault(2, SimFaultKind.WELD)
    await station.runtime.present_token(2, "BOB")  # the contactor should open: it cannot
    faulted = await csms_16.expect("StatusNotification", status16(2, "Faulted", "OtherError"), timeout=30)
    assert faulted["info"] == faulted["vendorErrorCode"] == "contactor_welded"
    stop = await csms_16.expect("StopTransaction")
    assert stop["reason"] == "Local"
