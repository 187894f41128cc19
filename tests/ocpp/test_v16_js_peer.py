"""The OCPP 1.6J station (the sim charger, ``[ocpp] version = "1.6"``) against the independent ocpp-rpc strict CSMS.

The CSMS is tests/ocpp/js/csms.js (npm ``ocpp-rpc`` in strict mode on the subprotocol ``ocpp1.6``, driven by
tests/ocpp/jspeer.py): it validates every CALL the station sends and every CALLRESULT it returns against ocpp-rpc's
own copies of the OCPP 1.6 JSON schemas (plus a date-time that must carry a UTC offset), and refuses to send an
invalid CALL of its own. A second implementation of the schemas catches what the ``ocpp`` library's (the station's
and tests/ocpp/csms.py's) would let through alike. The station is the in-process sim charger of
tests/ocpp/station_harness.py with its 1.6 front; the tests act as a user at the charger (tokens, plug, unplug).

Covered (issue 13, "An independent peer" in 1.6): boot (BootNotification Accepted, StatusNotification of
connectorIds 1, 2 and 0, the full GetConfiguration answer), reservations on a connector and on connectorId 0
(Reserved, then the reserved idTag's StartTransaction carries the reservationId), a transaction with MeterValues
of the configured measurands and a StopTransaction with meterStop and transactionData, and two outages while
charging (the peer stopped and restarted, and the peer dropping the socket): what the station made meanwhile
arrives after the reconnect in the order it was made, each message once, with the transactionId the peer gave its
StartTransaction. Every test ends with no validation error in either direction (``js_csms.assert_valid`` at
teardown too).

Skips (the ``js_csms`` fixture says why) without Node 18+ or ``npm ci --prefix tests/ocpp/js``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from .jspeer import JsCsms
from .station_harness import OcppStation, ocpp_config, ocpp_time, status16, until

ENERGY = "Energy.Active.Import.Register"
POWER = "Power.Active.Import"
TX_ACTIONS = ("StartTransaction", "MeterValues", "StopTransaction")
STATE_S = 20.0  # bound for the sim charger to reach a state, or the queue to drain (a loaded CI machine)


# ---------------------------------------------------------------------------------------------------------------------
# helpers


@pytest.fixture
async def station(tmp_path: Path, js_csms: JsCsms) -> AsyncIterator[OcppStation]:
    """The sim charger's 1.6 station connected to the JS peer, booted, connectorIds 1, 2 and 0 reported."""
    async with OcppStation(tmp_path, ocpp_config(js_csms.url, version="1.6")) as s:
        await js_csms.wait_connected()
        await js_csms.expect("BootNotification")
        for connector_id in (1, 2, 0):
            await js_csms.expect("StatusNotification", status16(connector_id, "Available"))
        yield s


async def configure(js_csms: JsCsms, key: str, value: str) -> None:
    """ChangeConfiguration through the peer, asserting Accepted."""
    answer = await js_csms.call("ChangeConfiguration", {"key": key, "value": value})
    assert answer == {"status": "Accepted"}, (key, value, answer)


async def reserve(js_csms: JsCsms, reservation_id: int, connector_id: int, id_tag: str) -> str:
    """ReserveNow for ten minutes; the status answered."""
    answer = await js_csms.call("ReserveNow", {"connectorId": connector_id, "expiryDate": ocpp_time(600),
                                               "idTag": id_tag, "reservationId": reservation_id})
    return str(answer["status"])


async def start_charging(station: OcppStation, evse_id: int, token: str) -> None:
    """Token, plug in, and wait until the contactor is closed."""
    assert (await station.runtime.present_token(evse_id, token)).may_charge
    await station.plug(evse_id)
    await until(lambda: station.evse(evse_id)["contactor"] == "closed", f"EVSE {evse_id} charging", STATE_S)


async def stop_and_unplug(station: OcppStation, evse_id: int, token: str) -> None:
    """The session's token again, then the cable out once the lock has let go."""
    await station.runtime.present_token(evse_id, token)
    await until(lambda: station.evse(evse_id)["lock"] == "unlocked" and station.evse(evse_id)["phase"] == "idle",
                f"EVSE {evse_id} stopped and unlocked", STATE_S)
    await station.unplug(evse_id)


def by_tag(id_tag: str) -> Callable[[dict[str, Any]], bool]:
    """A StartTransaction predicate: this idTag."""
    return lambda p: p["idTag"] == id_tag


def sampled(meter_values: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every sampledValue of a list of MeterValue objects (a MeterValues' meterValue, a transactionData)."""
    return [value for meter_value in meter_values for value in meter_value["sampledValue"]]


def energy_wh(meter_values: list[dict[str, Any]]) -> list[float]:
    """The energy register readings (Wh) of a list of MeterValue objects."""
    return [float(v["value"]) for v in sampled(meter_values) if v.get("measurand", ENERGY) == ENERGY]


def when(action: str, params: dict[str, Any]) -> str:
    """The time a transaction message was made: its timestamp (a MeterValues' first meterValue's)."""
    return str(params["meterValue"][0]["timestamp"] if action == "MeterValues" else params["timestamp"])


def tx_calls(js_csms: JsCsms, since: int = 0) -> list[dict[str, Any]]:
    """The Start/StopTransaction and MeterValues CALLs the peer took (from the ``since``-th CALL), once each: a
    resend (after an answer lost with the connection) must carry the same message id and the same params."""
    first: dict[str, dict[str, Any]] = {}
    for record in js_csms.calls[since:]:
        if record["action"] not in TX_ACTIONS:
            continue
        seen = first.setdefault(record["messageId"], record)
        assert seen["params"] == record["params"], f"message id {record['messageId']} reused:\n{seen}\n{record}"
    return list(first.values())


def transaction(calls: list[dict[str, Any]], tx_id: int, connector_id: int) -> list[tuple[str, dict[str, Any]]]:
    """One transaction's messages in arrival order: its StartTransaction (on ``connector_id``, answered ``tx_id``)
    first, then the MeterValues and the StopTransaction naming ``tx_id``."""
    return [(c["action"], c["params"]) for c in calls
            if (c["action"] == "StartTransaction" and c["params"]["connectorId"] == connector_id
                and (c["response"] or {}).get("transactionId") == tx_id)
            or (c["action"] != "StartTransaction" and c["params"].get("transactionId") == tx_id)]


def assert_one_transaction(messages: list[tuple[str, dict[str, Any]]], what: str) -> None:
    """StartTransaction first, MeterValues in time order, StopTransaction last, each once; meterStop >= meterStart."""
    actions = [action for action, _ in messages]
    assert actions[0] == "StartTransaction" and actions[-1] == "StopTransaction", f"{what}: {actions}"
    assert set(actions[1:-1]) <= {"MeterValues"}, f"{what}: {actions}"
    stamps = [when(action, params) for action, params in messages]
    assert stamps == sorted(stamps), f"{what}: made at {stamps}"
    assert messages[-1][1]["meterStop"] >= messages[0][1]["meterStart"], what


def assert_no_validation_errors(js_csms: JsCsms) -> None:
    """ocpp-rpc found nothing wrong in either direction (the station's frames, and the peer's own)."""
    assert js_csms.station_validation_errors() == []
    js_csms.assert_valid()


# ---------------------------------------------------------------------------------------------------------------------
# boot


async def test_boot_is_valid_for_ocpp_rpc_and_reports_every_connector(station: OcppStation, js_csms: JsCsms) -> None:
    """BootNotification on subprotocol ocpp1.6, Accepted; StatusNotification Available of connectorIds 1, 2 and 0
    (NoError), nothing else; the whole GetConfiguration answer passes ocpp-rpc's schema too."""
    assert js_csms.strict_datetime is True
    assert js_csms.connections[0] == {"event": "connected", "identity": "CS001", "protocol": "ocpp1.6"}
    boots = [c for c in js_csms.calls if c["action"] == "BootNotification"]
    assert len(boots) == 1 and boots[0]["response"]["status"] == "Accepted"
    assert boots[0]["params"]["chargePointVendor"] and boots[0]["params"]["chargePointModel"]
    statuses = js_csms.received("StatusNotification")
    assert sorted((p["connectorId"], p["status"], p["errorCode"]) for p in statuses) == [
        (0, "Available", "NoError"), (1, "Available", "NoError"), (2, "Available", "NoError")]
    assert [c["action"] for c in js_csms.calls] == ["BootNotification"] + ["StatusNotification"] * 3
    keys = (await js_csms.call("GetConfiguration", {}))["configurationKey"]
    values = {entry["key"]: entry.get("value") for entry in keys}
    assert values["NumberOfConnectors"] == "2" and "Reservation" in str(values["SupportedFeatureProfiles"])
    assert values["ReserveConnectorZeroSupported"] == "true"
    assert_no_validation_errors(js_csms)


# ---------------------------------------------------------------------------------------------------------------------
# reservations


async def test_a_connector_reservation_is_reserved_and_its_idtag_starts_with_the_reservation_id(
        station: OcppStation, js_csms: JsCsms) -> None:
    """ReserveNow on connectorId 1 Accepted -> StatusNotification Reserved and the reserved LED; another idTag is
    refused there; the reserved idTag uses it (Preparing) and its StartTransaction names the reservation."""
    assert await reserve(js_csms, 7, 1, "ALICE") == "Accepted"
    await js_csms.expect("StatusNotification", status16(1, "Reserved"))
    await until(lambda: station.reserved_led(1), "EVSE 1 reserved LED on")
    assert (await station.runtime.present_token(1, "MALLORY")).verdict.value == "refused_reserved_for_other"
    used = await station.runtime.present_token(1, "ALICE")
    assert used.verdict.value == "reservation_used" and used.reservation_id == 7
    await js_csms.expect("StatusNotification", status16(1, "Preparing"))
    await station.plug(1)
    start = await js_csms.expect("StartTransaction", by_tag("ALICE"), STATE_S)
    assert (start["connectorId"], start["reservationId"]) == (1, 7)
    tx_id = next(c["response"]["transactionId"] for c in js_csms.calls if c["action"] == "StartTransaction")
    await stop_and_unplug(station, 1, "ALICE")
    stop = await js_csms.expect("StopTransaction", timeout=STATE_S)
    assert (stop["transactionId"], stop["reason"]) == (tx_id, "Local")
    assert (await js_csms.call("CancelReservation", {"reservationId": 7}))["status"] == "Rejected"  # used up
    assert_no_validation_errors(js_csms)


async def test_connector_zero_reservations_reserve_the_connectors_and_each_start_names_its_own(
        station: OcppStation, js_csms: JsCsms) -> None:
    """Two ReserveNow on connectorId 0 (ReserveConnectorZeroSupported) need both connectors: both Reserved. BOB's
    idTag at connector 2 and ALICE's at connector 1 each start with their own reservationId."""
    assert await reserve(js_csms, 21, 0, "ALICE") == "Accepted"
    assert await reserve(js_csms, 22, 0, "BOB") == "Accepted"
    for connector_id in (1, 2):
        await js_csms.expect("StatusNotification", status16(connector_id, "Reserved"))
    used = await station.runtime.present_token(2, "BOB")
    assert used.verdict.value == "reservation_used" and used.reservation_id == 22
    await station.plug(2)
    bob = await js_csms.expect("StartTransaction", by_tag("BOB"), STATE_S)
    assert (bob["connectorId"], bob["reservationId"]) == (2, 22)
    # ALICE's reservation still holds connector 1
    assert [p["status"] for p in js_csms.received("StatusNotification") if p["connectorId"] == 1][-1] == "Reserved"
    used = await station.runtime.present_token(1, "ALICE")
    assert used.verdict.value == "reservation_used" and used.reservation_id == 21
    await station.plug(1)
    alice = await js_csms.expect("StartTransaction", by_tag("ALICE"), STATE_S)
    assert (alice["connectorId"], alice["reservationId"]) == (1, 21)
    answers = [c["response"]["transactionId"] for c in js_csms.calls if c["action"] == "StartTransaction"]
    assert len(set(answers)) == 2
    assert_no_validation_errors(js_csms)


# ---------------------------------------------------------------------------------------------------------------------
# a transaction with meter values


async def test_a_transaction_sends_the_configured_measurands_and_stops_with_its_transaction_data(
        station: OcppStation, js_csms: JsCsms) -> None:
    """MeterValueSampleInterval 1 s, MeterValuesSampledData energy and power, StopTxnSampledData energy: periodic
    MeterValues (Sample.Periodic) carry exactly those with the peer's transactionId and a rising register; the
    StopTransaction has meterStop (Wh, the last reading), reason Local, the idTag, and transactionData (Begin, End)."""
    await configure(js_csms, "MeterValueSampleInterval", "1")
    await configure(js_csms, "MeterValuesSampledData", f"{ENERGY},{POWER}")
    await configure(js_csms, "StopTxnSampledData", ENERGY)
    await start_charging(station, 2, "CAROL")
    start = await js_csms.expect("StartTransaction", by_tag("CAROL"), STATE_S)
    assert start["connectorId"] == 2 and isinstance(start["meterStart"], int) and "reservationId" not in start
    tx_id = next(c["response"]["transactionId"] for c in js_csms.calls if c["action"] == "StartTransaction")
    await js_csms.expect("StatusNotification", status16(2, "Charging"), STATE_S)

    def two_with_energy() -> bool:
        """Two MeterValues show energy drawn since the start."""
        return len([p for p in js_csms.received("MeterValues")
                    if any(e > start["meterStart"] for e in energy_wh(p["meterValue"]))]) >= 2

    await until(two_with_energy, "two MeterValues showing energy", 30)
    await stop_and_unplug(station, 2, "CAROL")
    stop = await js_csms.expect("StopTransaction", timeout=STATE_S)
    assert (stop["transactionId"], stop["reason"], stop["idTag"]) == (tx_id, "Local", "CAROL")
    assert stop["meterStop"] > start["meterStart"]
    data = stop["transactionData"]
    assert [(v["context"], v["measurand"]) for v in sampled(data)] == [("Transaction.Begin", ENERGY),
                                                                        ("Transaction.End", ENERGY)]
    assert energy_wh(data)[-1] == pytest.approx(stop["meterStop"], abs=1)
    periodic = js_csms.received("MeterValues")
    assert all((p["connectorId"], p["transactionId"]) == (2, tx_id) for p in periodic)
    values = sampled([mv for p in periodic for mv in p["meterValue"]])
    assert {(v["measurand"], v["unit"], v["context"]) for v in values} == {
        (ENERGY, "Wh", "Sample.Periodic"), (POWER, "W", "Sample.Periodic")}
    readings = [e for p in periodic for e in energy_wh(p["meterValue"])]
    assert readings == sorted(readings) and readings[-1] < stop["meterStop"] + 1  # meterStop: whole Wh
    assert_one_transaction(transaction(tx_calls(js_csms), tx_id, 2), "CAROL's transaction")
    assert_no_validation_errors(js_csms)


# ---------------------------------------------------------------------------------------------------------------------
# outages


async def test_the_peer_goes_away_while_charging_and_everything_queued_arrives_once_in_order(
        station: OcppStation, js_csms: JsCsms) -> None:
    """The peer is stopped while connector 1 charges (ALICE, started online). Meanwhile ALICE's transaction goes on
    and stops, and BOB's (unknown offline: AllowOfflineTxForUnknownId) starts, charges and stops on connector 2.
    When the peer is back on the same port the station reconnects and delivers what it queued: as many messages as
    were queued, none twice, in the order they were made; BOB's MeterValues and StopTransaction carry the
    transactionId the restarted peer gave his StartTransaction, ALICE's hers from before the outage."""
    await configure(js_csms, "MeterValueSampleInterval", "1")
    await configure(js_csms, "AllowOfflineTxForUnknownId", "true")
    await start_charging(station, 1, "ALICE")
    await js_csms.expect("StartTransaction", by_tag("ALICE"), STATE_S)
    await js_csms.expect("MeterValues", lambda p: p["connectorId"] == 1, STATE_S)
    alice_id = next(c["response"]["transactionId"] for c in js_csms.calls if c["action"] == "StartTransaction")

    await js_csms.stop()
    await until(lambda: not station.station.online, "the station offline")
    await asyncio.sleep(1.5)  # ALICE's periodic MeterValues queue up
    await stop_and_unplug(station, 1, "ALICE")
    await start_charging(station, 2, "BOB")
    await asyncio.sleep(1.5)
    await stop_and_unplug(station, 2, "BOB")
    flow = station.station.transactions
    await flow.flushed(STATE_S)  # offline: returns once the writer has stored everything recorded
    queue = flow.queue
    queued = queue.pending_count()
    assert queued >= 5, f"{queued} queued: ALICE's MeterValues and Stop, BOB's Start, MeterValues and Stop expected"
    before = len(js_csms.calls)
    assert [c for c in js_csms.calls if c["action"] == "StopTransaction"] == []

    await js_csms.start()
    await js_csms.wait_connected(count=2)
    await until(lambda: queue.pending_count() == 0 and len(js_csms.received("StopTransaction")) == 2,
                "the queue delivered", STATE_S)
    after = tx_calls(js_csms, before)
    assert len(after) == queued, f"{queued} queued, {len(after)} delivered: {[c['action'] for c in after]}"
    stamps = [when(c["action"], c["params"]) for c in after]
    assert stamps == sorted(stamps), f"delivered out of the order they were made: {stamps}"
    everything = tx_calls(js_csms)
    bob_start = next(c for c in everything if c["action"] == "StartTransaction" and c["params"]["idTag"] == "BOB")
    bob_id = bob_start["response"]["transactionId"]
    assert bob_start in after and bob_id != alice_id
    alice = transaction(everything, alice_id, 1)
    bob = transaction(everything, bob_id, 2)
    assert len(alice) + len(bob) == len(everything)  # every message names one of the two transactions
    assert_one_transaction(alice, "ALICE's transaction")
    assert_one_transaction(bob, "BOB's transaction")
    assert len(bob) >= 3 and alice[-1][1]["idTag"] == "ALICE" and bob[-1][1]["idTag"] == "BOB"
    await js_csms.expect("StatusNotification", status16(1, "Available"), STATE_S)  # reported again after the reconnect
    assert_no_validation_errors(js_csms)


async def test_the_peer_drops_the_socket_while_charging_and_the_stop_arrives_once_after_the_reconnect(
        station: OcppStation, js_csms: JsCsms) -> None:
    """ocpp-rpc drops the connection (no close handshake) while connector 1 charges; the token stops the session
    before the station is back: the StopTransaction arrives after the reconnect, once, with the transactionId of
    the StartTransaction, after every MeterValues of the transaction."""
    await configure(js_csms, "MeterValueSampleInterval", "1")
    await start_charging(station, 1, "ERIN")
    await js_csms.expect("StartTransaction", by_tag("ERIN"), STATE_S)
    tx_id = next(c["response"]["transactionId"] for c in js_csms.calls if c["action"] == "StartTransaction")
    await js_csms.expect("StatusNotification", status16(1, "Charging"), STATE_S)
    await js_csms.disconnect(force=True)
    await asyncio.sleep(0.3)
    await stop_and_unplug(station, 1, "ERIN")
    await js_csms.wait_connected(STATE_S, count=2)
    stop = await js_csms.expect("StopTransaction", timeout=STATE_S)
    assert (stop["transactionId"], stop["reason"], stop["idTag"]) == (tx_id, "Local", "ERIN")
    await until(lambda: station.station.transactions.queue.pending_count() == 0, "the queue delivered", STATE_S)
    messages = transaction(tx_calls(js_csms), tx_id, 1)
    assert_one_transaction(messages, "ERIN's transaction")
    assert len(js_csms.received("StopTransaction")) == 1
    await js_csms.expect("StatusNotification", status16(1, "Available"), STATE_S)
    assert_no_validation_errors(js_csms)
