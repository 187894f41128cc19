"""OCPP 1.6 transactions through the durable queue: StartTransaction when the cable is plugged in and the idTag is
authorized (either order), MeterValues every MeterValueSampleInterval with the CSMS's transactionId (also those
queued before the StartTransaction was answered), StopTransaction (meterStop, reason, idTag, transactionData), an
idTag the CSMS finds invalid at the start (StopTransactionOnInvalidId), a CSMS outage (nothing lost, order kept) and a
station that stops with a transaction open (it ends with PowerLoss after the restart, with the right transactionId).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from controller.ocpp.station.queue import MessageQueue
from controller.ocpp.station.transactions import (
    ChargingState,
    Conditions,
    TransactionTracker,
    TxEventKind,
    TxPoint,
)

from .csms import Csms
from .station_harness import OcppStation, booted16, ocpp_config, status16, until

ENERGY = "Energy.Active.Import.Register"


def _conditions(plugged: bool, authorized: bool) -> Conditions:
    """An EVSE's conditions: plugged in and/or authorized, contactor open."""
    return Conditions(plugged, authorized, False, ChargingState.EV_CONNECTED if plugged else ChargingState.IDLE)


@pytest.mark.parametrize("plug_first", [True, False])
def test_the_tracker_starts_a_1_6_transaction_once_both_points_hold_in_either_order(plug_first: bool) -> None:
    points = (TxPoint.EV_CONNECTED, TxPoint.AUTHORIZED)
    tracker = TransactionTracker(lambda: points, lambda: points, all_start_points=True)
    tracker.token_accepted(1, "ALICE", None)
    assert tracker.observe(1, 1, _conditions(False, False)) == []
    first = _conditions(True, False) if plug_first else _conditions(False, True)
    assert tracker.observe(1, 1, first) == []
    [started] = tracker.observe(1, 1, _conditions(True, True))
    assert started.kind is TxEventKind.STARTED and started.transaction.id_token == "ALICE"
    assert started.trigger.value == ("Authorized" if plug_first else "CablePluggedIn")
    [ended] = tracker.observe(1, 1, _conditions(True, False))  # the authorization ends: so does the transaction
    assert ended.kind is TxEventKind.ENDED
    assert tracker.observe(1, 1, _conditions(True, False)) == []
    # the 2.0.1 default (any point) would have started at the first one
    anyone = TransactionTracker(lambda: points, lambda: points)
    anyone.observe(1, 1, _conditions(False, False))
    assert [e.kind for e in anyone.observe(1, 1, first)] == [TxEventKind.STARTED]


def test_a_stop_queued_before_the_start_is_answered_gets_its_transaction_id_at_send_time(tmp_path: Path) -> None:
    queue = MessageQueue(tmp_path / "ocpp.db")
    try:
        start = queue.enqueue_transaction_event("tx-1", lambda _: {"connector_id": 1, "id_tag": "A"},
                                                action="StartTransaction")
        stop = queue.enqueue_transaction_event("tx-1", lambda _: {"meter_stop": 5}, action="StopTransaction",
                                               reference_field="transaction_id")
        assert stop.reference_field == "transaction_id"
        assert queue.delivered(start.message_id, reference_value=42)
        pending = queue.peek()
        assert pending is not None and pending.message_id == stop.message_id
        assert pending.payload_to_send() == {"meter_stop": 5, "transaction_id": 42}
    finally:
        queue.close()


@pytest.fixture
async def station(tmp_path: Path, csms_16: Csms) -> AsyncIterator[OcppStation]:
    """The sim charger connected and booted at ``csms_16`` (OCPP 1.6), every connector reported."""
    async with OcppStation(tmp_path, ocpp_config(csms_16.url, version="1.6")) as s:
        await booted16(csms_16)
        yield s


async def configure(csms: Csms, key: str, value: str) -> None:
    """ChangeConfiguration, asserting Accepted."""
    answer = await csms.call("ChangeConfiguration", {"key": key, "value": value})
    assert answer == {"status": "Accepted"}, (key, value, answer)


def energy(meter_values: dict[str, Any]) -> list[float]:
    """The energy register readings (Wh) of a MeterValues payload."""
    return [float(v["value"]) for mv in meter_values["meterValue"] for v in mv["sampledValue"]
            if v.get("measurand", ENERGY) == ENERGY]


def samples(meter_values: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every sampled value of these MeterValues payloads."""
    return [v for mv in meter_values for m in mv["meterValue"] for v in m["sampledValue"]]


def parse(text: str) -> datetime:
    """An OCPP date-time."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def stop_and_unplug(station: OcppStation, evse_id: int, token: str) -> None:
    """The session's token again, then the cable out once the lock has let go."""
    await station.runtime.present_token(evse_id, token)
    await until(lambda: station.evse(evse_id)["lock"] == "unlocked" and station.evse(evse_id)["phase"] == "idle",
                f"EVSE {evse_id} stopped and unlocked", timeout=20)
    await station.unplug(evse_id)


async def test_a_transaction_with_periodic_meter_values_and_its_stop(station: OcppStation, csms_16: Csms) -> None:
    await configure(csms_16, "MeterValueSampleInterval", "1")
    outcome = await station.runtime.present_token(2, "ALICE")
    assert outcome.may_charge
    await station.plug(2)
    start = await csms_16.expect("StartTransaction")
    assert start["connectorId"] == 2 and start["idTag"] == "ALICE"
    assert isinstance(start["meterStart"], int) and "reservationId" not in start
    answer = csms_16.received_messages("StartTransaction")[0].response
    assert answer is not None
    tx_id = answer["transactionId"]

    def two_with_energy() -> bool:
        values = [mv for mv in csms_16.received("MeterValues") if any(e > 0 for e in energy(mv))]
        return len(values) >= 2

    await until(two_with_energy, "two MeterValues showing energy", timeout=30)
    await stop_and_unplug(station, 2, "ALICE")
    stop = await csms_16.expect("StopTransaction", timeout=20)
    assert stop["transactionId"] == tx_id
    assert stop["reason"] == "Local" and stop["idTag"] == "ALICE"
    assert stop["meterStop"] >= start["meterStart"]
    final_wh = 1000 * float(station.evse(2)["energy_kwh"])  # the register once the contactor is open
    assert stop["meterStop"] == pytest.approx(final_wh, abs=1), "meterStop is the reading after the contactor opened"
    contexts = [v["context"] for mv in stop["transactionData"] for v in mv["sampledValue"]]
    assert contexts == ["Transaction.Begin", "Transaction.End"]
    assert float(stop["transactionData"][-1]["sampledValue"][0]["value"]) == pytest.approx(stop["meterStop"], abs=1)
    periodic = csms_16.received("MeterValues")
    assert all(mv["transactionId"] == tx_id and mv["connectorId"] == 2 for mv in periodic)
    assert all(v["context"] == "Sample.Periodic" for v in samples(periodic))
    readings = [e for mv in periodic for e in energy(mv)]
    assert readings == sorted(readings)
    units = {v["measurand"]: v["unit"] for v in samples(periodic)}
    assert units == {ENERGY: "Wh", "Power.Active.Import": "W", "Current.Import": "A"}
    order = [m.action for m in csms_16.received_messages() if m.action in ("StartTransaction", "MeterValues",
                                                                          "StopTransaction")]
    assert order[0] == "StartTransaction" and order[-1] == "StopTransaction"


async def test_the_plug_first_then_the_token_starts_it_too(station: OcppStation, csms_16: Csms) -> None:
    await station.plug(1)
    await csms_16.expect("StatusNotification", status16(1, "Preparing"))
    assert csms_16.received("StartTransaction") == []
    await station.runtime.present_token(1, "BOB")
    start = await csms_16.expect("StartTransaction")
    assert start["connectorId"] == 1 and start["idTag"] == "BOB"
    await station.runtime.present_token(1, "BOB")
    stop = await csms_16.expect("StopTransaction", timeout=20)
    assert stop["reason"] == "Local"


async def test_meter_values_queued_before_the_start_is_answered_carry_its_transaction_id(
        station: OcppStation, csms_16: Csms) -> None:
    await configure(csms_16, "MeterValueSampleInterval", "1")
    answered: list[datetime] = []

    async def slow_start(_: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(2.5)  # the station keeps sampling meanwhile: those MeterValues wait in the queue
        answered.append(datetime.now(UTC))
        return {"transactionId": 4242, "idTagInfo": {"status": "Accepted"}}

    csms_16.set_handler("StartTransaction", slow_start)
    await station.runtime.present_token(1, "ALICE")
    await station.plug(1)
    await csms_16.expect("StartTransaction")
    await until(lambda: len(csms_16.received("MeterValues")) >= 3, "three MeterValues", timeout=20)
    values = csms_16.received("MeterValues")
    assert all(mv["transactionId"] == 4242 for mv in values)
    assert answered and any(parse(mv["meterValue"][0]["timestamp"]) < answered[0] for mv in values)
    await station.runtime.present_token(1, "ALICE")
    stop = await csms_16.expect("StopTransaction", timeout=20)
    assert stop["transactionId"] == 4242


@pytest.mark.parametrize("stop_on_invalid", [True, False])
async def test_an_idtag_the_start_answer_refuses_stops_the_session_when_configured(
        station: OcppStation, csms_16: Csms, stop_on_invalid: bool) -> None:
    await configure(csms_16, "StopTransactionOnInvalidId", "true" if stop_on_invalid else "false")
    csms_16.set_handler("StartTransaction", lambda _: {"transactionId": 77, "idTagInfo": {"status": "Blocked"}})
    await station.runtime.present_token(1, "MALLORY")
    await station.plug(1)
    await csms_16.expect("StartTransaction")
    if stop_on_invalid:
        stop = await csms_16.expect("StopTransaction", timeout=20)
        assert stop["transactionId"] == 77 and stop["reason"] == "DeAuthorized" and "idTag" not in stop
        await until(lambda: station.evse(1)["phase"] != "charging", "the session stopped", timeout=20)
    else:
        await until(lambda: station.evse(1)["contactor"] == "closed", "charging goes on", timeout=20)
        await asyncio.sleep(0.5)
        assert csms_16.received("StopTransaction") == []
    # the answer went into the cache: offline the idTag is refused
    await csms_16.stop()
    await csms_16.wait_disconnected()
    await until(lambda: not station.station.online, "the station offline")
    assert not (await station.runtime.present_token(2, "MALLORY")).may_charge
    await csms_16.start()


async def test_an_outage_loses_nothing_and_keeps_the_order(station: OcppStation, csms_16: Csms) -> None:
    await configure(csms_16, "MeterValueSampleInterval", "1")
    await station.runtime.present_token(1, "ALICE")
    await station.plug(1)
    first = await csms_16.expect("StartTransaction")
    await csms_16.stop()  # the CSMS goes away in the middle of the first transaction
    await until(lambda: not station.station.online, "the station offline")
    await asyncio.sleep(1.5)  # periodic MeterValues are queued meanwhile
    await stop_and_unplug(station, 1, "ALICE")
    allow_unknown_offline(station)  # the CSMS cannot say anything about BOB now
    await station.runtime.present_token(2, "BOB")
    await station.plug(2)
    await until(lambda: station.evse(2)["contactor"] == "closed", "EVSE 2 charging", timeout=20)
    await asyncio.sleep(1.2)
    await stop_and_unplug(station, 2, "BOB")
    await until(lambda: station.station.transactions.queue.pending_count() >= 4, "messages queued")
    await csms_16.start()
    await csms_16.wait_connected(count=2)
    await until(lambda: len(csms_16.received("StopTransaction")) == 2, "both StopTransactions", timeout=30)
    ids = {m.unique_id for m in csms_16.received_messages()}
    assert len(ids) == len(csms_16.received_messages())  # nothing sent twice
    flow = [(m.action, m.payload) for m in csms_16.received_messages()
            if m.action in ("StartTransaction", "MeterValues", "StopTransaction")]
    starts = [p for a, p in flow if a == "StartTransaction"]
    assert [p["idTag"] for p in starts] == ["ALICE", "BOB"] and starts[0] == first
    answers = [m.response["transactionId"] for m in csms_16.received_messages("StartTransaction")
               if m.response is not None]
    assert len(answers) == 2 and answers[0] != answers[1]
    for tx_id, connector in zip(answers, (1, 2), strict=True):
        mine = [(a, p) for a, p in flow if p.get("transactionId") == tx_id
                or (a == "StartTransaction" and p["connectorId"] == connector)]
        assert mine[0][0] == "StartTransaction" and mine[-1][0] == "StopTransaction", mine
        assert all(a == "MeterValues" for a, _ in mine[1:-1])
        stamps = [p["meterValue"][0]["timestamp"] for a, p in mine[1:-1]]
        assert stamps == sorted(stamps)
    await until(lambda: station.station.transactions.queue.pending_count() == 0, "the queue empty")


def allow_unknown_offline(station: OcppStation) -> None:
    """AllowOfflineTxForUnknownId = true on the station's own store (the CSMS cannot set it while it is down)."""
    definition = station.station.variables.by_alias("AllowOfflineTxForUnknownId")
    assert definition is not None
    station.station.variables.set(definition.component, definition.variable, "true")


async def test_a_transaction_left_open_by_a_stop_ends_with_power_loss_after_the_restart(
        tmp_path: Path, csms_16: Csms) -> None:
    config = ocpp_config(csms_16.url, version="1.6")
    async with OcppStation(tmp_path, config) as station:
        await booted16(csms_16)
        await station.runtime.present_token(1, "ALICE")
        await station.plug(1)
        await csms_16.expect("StartTransaction")
        await until(lambda: station.station.transactions.queue.pending_count() == 0, "the start delivered")
        # a second transaction whose StartTransaction the CSMS never answers before the station stops
        csms_16.set_handler("StartTransaction", _never)
        await station.runtime.present_token(2, "BOB")
        await station.plug(2)
        await csms_16.expect("StartTransaction")
    csms_16.set_handler("StartTransaction", None)
    async with OcppStation(tmp_path, config):
        await booted16(csms_16, count=2)
        stops = [await csms_16.expect("StopTransaction", timeout=20) for _ in range(2)]
    assert {s["reason"] for s in stops} == {"PowerLoss"}
    for stop in stops:  # ended with the meter's first reading after the restart
        assert [v["context"] for m in stop["transactionData"] for v in m["sampledValue"]] == ["Transaction.End"]
    first_answer = csms_16.received_messages("StartTransaction")[0].response
    assert first_answer is not None
    resent = csms_16.received_messages("StartTransaction")[2:]
    assert [m.payload["idTag"] for m in resent] == ["BOB"]  # the unanswered start again, with the same unique id
    assert resent[0].unique_id == csms_16.received_messages("StartTransaction")[1].unique_id
    assert resent[0].response is not None
    assert sorted(s["transactionId"] for s in stops) == sorted([first_answer["transactionId"],
                                                                resent[0].response["transactionId"]])


async def _never(_: dict[str, Any]) -> dict[str, Any]:
    """A CSMS that never answers (until the connection ends)."""
    await asyncio.Event().wait()
    raise AssertionError("unreachable")
