"""OCPP 2.0.1 transactions (E01-E07, E03, E06) against the sim charger: TransactionEvent Started/Updated/Ended with
seqNo per transaction, charging state changes, periodic meter values that match the plant's meter, the end when the
cable is pulled, and the start and stop points (TxCtrlr.TxStartPoint/TxStopPoint) set by the CSMS.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from .csms import Csms
from .station_harness import OcppStation, booted, ocpp_config, set_variables, until

ENERGY = "Energy.Active.Import.Register"


@pytest.fixture
async def station(tmp_path: Path, csms_201: Csms) -> AsyncIterator[OcppStation]:
    """The sim charger connected and booted at ``csms_201``, every connector reported."""
    async with OcppStation(tmp_path, ocpp_config(csms_201.url)) as s:
        await booted(csms_201)
        yield s


def events_of(csms: Csms, tx_id: str) -> list[dict[str, Any]]:
    """Every TransactionEvent of one transaction, in arrival order."""
    return [p for p in csms.received("TransactionEvent") if p["transactionInfo"]["transactionId"] == tx_id]


def sampled(event: dict[str, Any], measurand: str = ENERGY) -> list[dict[str, Any]]:
    """The sampled values of one measurand in an event (a missing measurand means the energy register)."""
    return [v for mv in event.get("meterValue", []) for v in mv["sampledValue"]
            if v.get("measurand", ENERGY) == measurand]


def phase_is(station: OcppStation, evse_id: int, *phases: str) -> Any:
    """A condition: the EVSE's session is in one of these phases."""
    return lambda: station.evse(evse_id)["phase"] in phases


async def _charge(station: OcppStation, csms: Csms, evse_id: int, name: str) -> dict[str, Any]:
    """A local session: token, plug, and the Started event."""
    outcome = await station.runtime.present_token(evse_id, name)
    assert outcome.may_charge, outcome
    await station.plug(evse_id)
    return await csms.expect("TransactionEvent", lambda p: p["eventType"] == "Started" and p["evse"]["id"] == evse_id,
                             timeout=20)


async def test_a_token_of_the_group_stops_the_transaction_and_the_ended_event_names_it(
        station: OcppStation, csms_201: Csms) -> None:
    csms_201.authorize_answers = {"FLEET-1": {"status": "Accepted", "groupIdToken": "FLEET"},
                                  "FLEET-2": {"status": "Accepted", "groupIdToken": "FLEET"}}
    started = await _charge(station, csms_201, 1, "FLEET-1")
    assert started["idToken"]["idToken"] == "FLEET-1"
    await until(lambda: station.evse(1)["contactor"] == "closed", "charging", timeout=20)
    assert (await station.runtime.present_token(1, "FLEET-2")).verdict.value == "stopped"
    ended = await csms_201.expect("TransactionEvent", lambda p: p["eventType"] == "Ended", timeout=20)
    assert (ended["triggerReason"], ended["transactionInfo"]["stoppedReason"]) == ("StopAuthorized", "Local")
    assert ended["idToken"]["idToken"] == "FLEET-2", "the token that ended the authorization, not the starter's"


async def test_a_transaction_stopped_remotely_names_no_token(station: OcppStation, csms_201: Csms) -> None:
    started = await _charge(station, csms_201, 1, "ALICE")
    await until(lambda: station.evse(1)["contactor"] == "closed", "charging", timeout=20)
    tx_id = started["transactionInfo"]["transactionId"]
    assert (await csms_201.call("RequestStopTransaction", {"transactionId": tx_id}))["status"] == "Accepted"
    ended = await csms_201.expect("TransactionEvent", lambda p: p["eventType"] == "Ended", timeout=20)
    assert ended["triggerReason"] == "RemoteStop" and "idToken" not in ended


async def test_events_of_a_transaction_are_numbered_from_zero_and_follow_the_charging_state(
        station: OcppStation, csms_201: Csms) -> None:
    started = await _charge(station, csms_201, 1, "ALICE")
    tx_id = started["transactionInfo"]["transactionId"]
    assert started["seqNo"] == 0
    assert started["triggerReason"] in ("ChargingStateChanged", "Authorized")
    assert started["idToken"]["idToken"] == "ALICE"
    assert "reservationId" not in started
    assert sampled(started) and sampled(started)[0]["context"] == "Transaction.Begin"
    await csms_201.expect("TransactionEvent", lambda p: p["transactionInfo"].get("chargingState") == "Charging",
                          timeout=20)

    await station.runtime.present_token(1, "ALICE")  # the same token stops it
    ended = await csms_201.expect("TransactionEvent", lambda p: p["eventType"] == "Ended", timeout=20)
    assert ended["transactionInfo"]["stoppedReason"] == "Local"
    assert ended["triggerReason"] == "StopAuthorized"
    assert ended["idToken"] == started["idToken"]  # the driver ended the authorization: the same token
    assert sampled(ended) and sampled(ended)[0]["context"] == "Transaction.End"
    await until(lambda: station.evse(1)["phase"] in ("unlocking", "idle"), "the power path let go", timeout=20)
    final_wh = 1000 * float(station.evse(1)["energy_kwh"])  # the register once the contactor is open
    assert float(sampled(ended)[0]["value"]) == pytest.approx(final_wh, abs=0.5), "the reading after the opening"
    events = events_of(csms_201, tx_id)
    assert [e["seqNo"] for e in events] == list(range(len(events)))
    assert [e["eventType"] for e in events] == ["Started", *["Updated"] * (len(events) - 2), "Ended"]
    assert all(e["triggerReason"] == "ChargingStateChanged" for e in events[1:-1]), events
    states = [e["transactionInfo"].get("chargingState") for e in events]
    assert "Charging" in states
    assert all(a != b for a, b in itertools.pairwise(states[:-1])), states  # each Updated: a change
    assert all("idToken" not in e for e in events[1:-1])  # the token goes once (E03.FR.01)

    # the next transaction on the same EVSE counts from 0 again, with a new id
    await until(phase_is(station, 1, "idle"), "EVSE 1 idle")
    await station.unplug(1)
    second = await _charge(station, csms_201, 1, "BOB")
    assert second["seqNo"] == 0
    assert second["transactionInfo"]["transactionId"] != tx_id


async def test_periodic_meter_values_carry_the_plants_energy_in_wh(station: OcppStation, csms_201: Csms) -> None:
    await set_variables(csms_201, ("SampledDataCtrlr", "TxUpdatedInterval", "1"))
    # every energy reading of the status document (the sim meter's, as the station polls it), watched often enough
    # to see each one: a reading stays for a meter poll period, far longer than the watcher's turn
    readings: set[float] = set()
    turns = 0

    async def watch() -> None:
        nonlocal turns
        while True:
            kwh = station.evse(1)["energy_kwh"]
            if kwh is not None:
                readings.add(round(kwh * 1000.0, 1))
            turns += 1
            await asyncio.sleep(0.005)

    watcher = asyncio.ensure_future(watch())
    try:
        started = await _charge(station, csms_201, 1, "ALICE")
        tx_id = started["transactionInfo"]["transactionId"]
        periodic: list[dict[str, Any]] = []

        def two_with_energy() -> bool:
            periodic[:] = [e for e in events_of(csms_201, tx_id) if e["triggerReason"] == "MeterValuePeriodic"]
            return len([e for e in periodic if float(sampled(e)[0]["value"]) > 0]) >= 2

        await until(two_with_energy, "two periodic meter values showing energy", timeout=30)
        seen = turns
        await until(lambda: turns >= seen + 2, "the watcher's next turns")  # it has seen what those events read
    finally:
        watcher.cancel()
    for event in periodic:
        assert event["eventType"] == "Updated"
        energy = sampled(event)
        assert len(energy) == 1
        assert energy[0]["unitOfMeasure"]["unit"] == "Wh"
        assert energy[0]["context"] == "Sample.Periodic"
        assert float(energy[0]["value"]) in readings, (energy[0]["value"], sorted(readings))
        assert {v["phase"] for v in sampled(event, "Current.Import")} == {"L1", "L2", "L3"}
        assert len(sampled(event, "Power.Active.Import")) == 1
    values = [float(sampled(e)[0]["value"]) for e in periodic]
    assert values == sorted(values)
    seq = [e["seqNo"] for e in events_of(csms_201, tx_id)]
    assert seq == list(range(len(seq)))


async def test_ev_connected_start_point_starts_at_the_plug_and_the_token_follows(
        station: OcppStation, csms_201: Csms) -> None:
    await set_variables(csms_201, ("TxCtrlr", "TxStartPoint", "EVConnected"))
    await station.plug(1)
    started = await csms_201.expect("TransactionEvent", lambda p: p["eventType"] == "Started", timeout=10)
    assert started["triggerReason"] == "CablePluggedIn"
    assert "idToken" not in started
    assert started["transactionInfo"]["chargingState"] == "EVConnected"
    tx_id = started["transactionInfo"]["transactionId"]

    outcome = await station.runtime.present_token(1, "ALICE")
    assert outcome.may_charge
    authorized = await csms_201.expect("TransactionEvent", lambda p: p["triggerReason"] == "Authorized", timeout=10)
    assert authorized["eventType"] == "Updated"
    assert authorized["idToken"]["idToken"] == "ALICE"
    assert authorized["transactionInfo"]["transactionId"] == tx_id
    assert authorized["seqNo"] == 1


async def test_pulling_the_cable_ends_the_transaction_with_ev_disconnected(
        station: OcppStation, csms_201: Csms) -> None:
    await set_variables(csms_201, ("TxCtrlr", "TxStartPoint", "EVConnected"))
    await station.plug(2)
    started = await csms_201.expect("TransactionEvent", lambda p: p["eventType"] == "Started", timeout=10)
    await station.unplug(2)
    ended = await csms_201.expect("TransactionEvent", lambda p: p["eventType"] == "Ended", timeout=10)
    assert ended["transactionInfo"]["transactionId"] == started["transactionInfo"]["transactionId"]
    assert ended["transactionInfo"]["stoppedReason"] == "EVDisconnected"
    assert ended["triggerReason"] == "EVCommunicationLost"
    assert ended["seqNo"] == 1


async def test_authorized_start_point_starts_at_the_token_before_the_plug(
        station: OcppStation, csms_201: Csms) -> None:
    await set_variables(csms_201, ("TxCtrlr", "TxStartPoint", "Authorized"))
    outcome = await station.runtime.present_token(2, "ALICE")
    assert outcome.may_charge
    started = await csms_201.expect("TransactionEvent", lambda p: p["eventType"] == "Started", timeout=10)
    assert started["triggerReason"] == "Authorized"
    assert started["idToken"]["idToken"] == "ALICE"
    assert started["evse"]["id"] == 2
    assert not station.evse(2)["plugged_in"]
    await station.plug(2)
    plugged = await csms_201.expect("TransactionEvent", lambda p: p["triggerReason"] == "CablePluggedIn", timeout=10)
    assert plugged["eventType"] == "Updated" and plugged["seqNo"] == 1


async def test_ev_connected_stop_point_keeps_the_transaction_until_the_cable_is_pulled(
        station: OcppStation, csms_201: Csms) -> None:
    await set_variables(csms_201, ("TxCtrlr", "TxStopPoint", "EVConnected"))
    started = await _charge(station, csms_201, 1, "ALICE")
    tx_id = started["transactionInfo"]["transactionId"]
    await station.runtime.present_token(1, "ALICE")  # charging stops, the cable stays in
    await until(lambda: station.evse(1)["contactor"] == "open" and station.evse(1)["lock"] == "unlocked",
                "EVSE 1 stopped and unlocked", timeout=20)
    status = await csms_201.call("GetTransactionStatus", {"transactionId": tx_id})
    assert status["ongoingIndicator"] is True
    assert not [e for e in events_of(csms_201, tx_id) if e["eventType"] == "Ended"]
    await station.unplug(1)
    ended = await csms_201.expect("TransactionEvent", lambda p: p["eventType"] == "Ended", timeout=10)
    assert ended["transactionInfo"]["transactionId"] == tx_id
