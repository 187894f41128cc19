"""The station (``charger-controller run --sim`` as a subprocess) against the independent ocpp-rpc strict CSMS.

The CSMS is tests/ocpp/js/csms.js (npm ``ocpp-rpc`` in strict mode, driven by tests/ocpp/jspeer.py): it validates
every CALL the station sends and every CALLRESULT it returns against ocpp-rpc's own copies of the OCPP 2.0.1
schemas (plus a date-time that must carry a UTC offset), and refuses to send an invalid CALL of its own. The
station is the real daemon, started exactly as an operator would:
``charger-controller run --sim --ocpp-url ws://127.0.0.1:PORT/ocpp --ocpp-id CS001 --state-dir DIR --api ...``,
and driven through its HTTP API (``POST /evses/{id}/token``, ``POST /sim/evses/{id}/plug`` and ``unplug``,
``GET /status``) as a user at the charger would.

Covered (issue 12, "An independent peer"): boot, reservation (accept, Reserved status, expiry with
ReservationStatusUpdate, cancel), a transaction with meter values (Started, periodic Updated at
SampledDataCtrlr.TxUpdatedInterval = 1, Ended), and outages (the CSMS stopped and restarted, and a CSMS-side
disconnect) during charging: what was made meanwhile arrives afterwards with ``offline = true``, in seqNo order,
once. Every test ends with no validation error in either direction (``js_csms.assert_valid`` at teardown too).

Skips (the ``js_csms`` fixture says why) without Node 18+ or ``npm ci --prefix tests/ocpp/js``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from security.daemon import Daemon, call, free_port

from .jspeer import JsCsms

STATION_ID = "CS001"
RECONNECT_S = 30.0  # the CLI's reconnect back-off starts at 2 s and doubles: a generous bound for a slow CI machine
STATE_S = 15.0  # bound for the sim charger to reach a state (plug -> charging takes about 1.5 s)


# ---------------------------------------------------------------------------------------------------------------------
# helpers


def _expiry(seconds: float) -> str:
    """An OCPP date-time ``seconds`` from now, UTC with a Z."""
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _status_of(evse_id: int, status: str) -> Callable[[dict[str, Any]], bool]:
    """A StatusNotification predicate: this EVSE's connector 1 has this status."""
    return lambda p: p["evseId"] == evse_id and p["connectorId"] == 1 and p["connectorStatus"] == status


def _tx_event(kind: str, token: str | None = None, tx_id: str | None = None) -> Callable[[dict[str, Any]], bool]:
    """A TransactionEvent predicate: this eventType, of the transaction with this id (or started by this token)."""

    def check(p: dict[str, Any]) -> bool:
        """The event matches."""
        if p["eventType"] != kind:
            return False
        if tx_id is not None and p["transactionInfo"]["transactionId"] != tx_id:
            return False
        return token is None or p["idToken"]["idToken"] == token

    return check


def _sampled(event: dict[str, Any]) -> list[dict[str, Any]]:
    """Every sampledValue of a TransactionEvent's meterValue."""
    return [value for meter_value in event.get("meterValue", []) for value in meter_value["sampledValue"]]


def _energy_wh(event: dict[str, Any]) -> float:
    """The Energy.Active.Import.Register value (Wh) of an event (the measurand is the default when absent)."""
    values = [v for v in _sampled(event) if v.get("measurand", "Energy.Active.Import.Register")
              == "Energy.Active.Import.Register"]
    assert values, f"no Energy.Active.Import.Register in {event}"
    unit = values[0].get("unitOfMeasure", {}).get("unit", "Wh")
    assert unit in ("Wh", "kWh"), values[0]
    return float(values[0]["value"]) * (1000.0 if unit == "kWh" else 1.0)


async def _api(daemon: Daemon, method: str, path: str, body: Any = None) -> Any:
    """One request to the station's HTTP API (off the event loop); the JSON answer, which must be a 200."""
    response = await asyncio.to_thread(call, daemon.url, method, path, json=body)
    assert response.status_code == 200, f"{method} {path} -> {response.status_code}: {response.text}"
    return response.json()


async def _evse(daemon: Daemon, evse_id: int) -> dict[str, Any]:
    """The EVSE's entry of GET /status."""
    status = await _api(daemon, "GET", "/status")
    return next(e for e in status["evses"] if e["id"] == evse_id)


async def _until_evse(daemon: Daemon, evse_id: int, check: Callable[[dict[str, Any]], bool], what: str,
                      timeout: float = STATE_S) -> dict[str, Any]:
    """Poll GET /status until the EVSE's entry satisfies ``check``; fail naming ``what`` and the last entry."""
    deadline = time.monotonic() + timeout
    while True:
        entry = await _evse(daemon, evse_id)
        if check(entry):
            return entry
        if time.monotonic() > deadline:
            raise AssertionError(f"EVSE {evse_id}: not {what} within {timeout} s: {entry}")
        await asyncio.sleep(0.1)


async def _present(daemon: Daemon, evse_id: int, token: str, verdict: str) -> dict[str, Any]:
    """Present a token at the EVSE (an RFID read) and check the verdict."""
    answer = await _api(daemon, "POST", f"/evses/{evse_id}/token", {"id_token": token})
    assert answer["verdict"] == verdict, answer
    return answer  # type: ignore[no-any-return]


async def _start_charging(daemon: Daemon, evse_id: int, token: str) -> None:
    """Token, plug in, and wait until the contactor is closed and the EV draws power."""
    await _present(daemon, evse_id, token, "allowed")
    await _api(daemon, "POST", f"/sim/evses/{evse_id}/plug")
    await _until_evse(daemon, evse_id, lambda e: e["charging"] and e["contactor"] == "closed", "charging")


async def _set_variables(js_csms: JsCsms, *settings: tuple[str, str, str]) -> None:
    """SetVariables (component, variable, value)...; every one must be Accepted."""
    answer = await js_csms.call("SetVariables", {"setVariableData": [
        {"component": {"name": component}, "variable": {"name": variable}, "attributeValue": value}
        for component, variable, value in settings]})
    statuses = [(r["variable"]["name"], r["attributeStatus"]) for r in answer["setVariableResult"]]
    assert all(status == "Accepted" for _, status in statuses), statuses


def _tx_calls(js_csms: JsCsms, tx_id: str) -> list[dict[str, Any]]:
    """Every TransactionEvent CALL of this transaction the peer received, in arrival order (full call records)."""
    return [c for c in js_csms.calls if c["action"] == "TransactionEvent"
            and c["params"]["transactionInfo"]["transactionId"] == tx_id]


def _assert_sequence(js_csms: JsCsms, tx_id: str) -> list[dict[str, Any]]:
    """The transaction's events arrived once each (a resend must reuse its message id), with seqNo 0..n in arrival
    order, Started first and Ended last; return the events (first arrivals), in order."""
    first: dict[int, dict[str, Any]] = {}
    for record in _tx_calls(js_csms, tx_id):
        seq_no = record["params"]["seqNo"]
        if seq_no in first:
            assert record["messageId"] == first[seq_no]["messageId"], (
                f"transaction {tx_id}: seqNo {seq_no} arrived twice with different message ids:\n"
                f"  {first[seq_no]}\n  {record}")
            continue
        first[seq_no] = record
    order = [record["params"]["seqNo"] for record in first.values()]
    assert order == list(range(len(order))), f"transaction {tx_id}: seqNos in arrival order: {order}"
    events = [record["params"] for record in first.values()]
    kinds = [event["eventType"] for event in events]
    assert kinds[0] == "Started" and kinds.count("Started") == 1, f"transaction {tx_id}: {kinds}"
    assert kinds.count("Ended") <= 1 and "Ended" not in kinds[:-1], f"transaction {tx_id}: {kinds}"
    return events


def _offline_split(events: list[dict[str, Any]], what: str) -> int:
    """The events' ``offline`` flags are online first, then offline (made during the outage, delivered after it), or
    offline first, then online (made during the outage, then after the reconnect): return where they change."""
    flags = [bool(event.get("offline", False)) for event in events]
    cut = flags.index(not flags[0]) if (not flags[0]) in flags else len(flags)
    assert flags == [flags[0]] * cut + [not flags[0]] * (len(flags) - cut), f"{what}: offline flags {flags}"
    return cut


def _assert_no_validation_errors(js_csms: JsCsms) -> None:
    """ocpp-rpc found nothing wrong in either direction (the station's frames, and the peer's own)."""
    assert js_csms.station_validation_errors() == []
    js_csms.assert_valid()


# ---------------------------------------------------------------------------------------------------------------------
# the station, as a subprocess


@pytest.fixture
async def station(tmp_path: Path, js_csms: JsCsms) -> AsyncIterator[Daemon]:
    """``run --sim`` connected to the JS peer, booted, both connectors reported Available; stopped with SIGTERM."""
    api = f"127.0.0.1:{free_port('127.0.0.1')}"
    daemon = Daemon(["run", "--sim", "--ocpp-url", js_csms.url, "--ocpp-id", STATION_ID,
                     "--state-dir", str(tmp_path / "state"), "--api", api], tmp_path)
    await asyncio.to_thread(daemon.start)
    try:
        await js_csms.wait_connected(RECONNECT_S, station_id=STATION_ID)
        await js_csms.expect("BootNotification")
        for evse_id in (1, 2):
            await js_csms.expect("StatusNotification", _status_of(evse_id, "Available"))
        yield daemon
    finally:
        code = await asyncio.to_thread(daemon.stop)
    logs = daemon.logs()
    assert code == 0, f"exit status {code} after SIGTERM:\n{logs[-3000:]}"
    assert "Traceback" not in logs, logs[-5000:]


# ---------------------------------------------------------------------------------------------------------------------
# boot


async def test_boot_is_valid_for_ocpp_rpc_and_reports_both_connectors_available(
        station: Daemon, js_csms: JsCsms) -> None:
    """BootNotification (PowerUp) on subprotocol ocpp2.0.1, Accepted; then StatusNotification Available for EVSE 1
    and 2 (connector 1 each), nothing else reported, and nothing ocpp-rpc's strict mode refused."""
    assert js_csms.strict_datetime is True
    assert js_csms.connections[0] == {"event": "connected", "identity": STATION_ID, "protocol": "ocpp2.0.1"}
    boots = [c for c in js_csms.calls if c["action"] == "BootNotification"]
    assert len(boots) == 1 and boots[0]["response"]["status"] == "Accepted"
    assert boots[0]["params"]["reason"] == "PowerUp"
    assert boots[0]["params"]["chargingStation"]["vendorName"] == "charger-controller"
    statuses = js_csms.received("StatusNotification")
    assert sorted((p["evseId"], p["connectorId"], p["connectorStatus"]) for p in statuses) == [
        (1, 1, "Available"), (2, 1, "Available")]
    assert [c["action"] for c in js_csms.calls[:3]] == ["BootNotification", "StatusNotification", "StatusNotification"]
    _assert_no_validation_errors(js_csms)


async def test_the_device_model_report_and_variables_are_valid_for_ocpp_rpc(station: Daemon, js_csms: JsCsms) -> None:
    """GetBaseReport FullInventory: every NotifyReport passes ocpp-rpc's schema; GetVariables/SetVariables answers
    too (an unknown variable gets its status, not an error)."""
    answer = await js_csms.call("GetBaseReport", {"requestId": 7, "reportBase": "FullInventory"})
    assert answer["status"] == "Accepted"
    report = await js_csms.expect("NotifyReport", lambda p: p["requestId"] == 7)
    parts = [report]
    while parts[-1].get("tbc"):
        parts.append(await js_csms.expect("NotifyReport", lambda p: p["requestId"] == 7))
    assert [p["seqNo"] for p in parts] == list(range(len(parts)))
    components = {item["component"]["name"] for part in parts for item in part.get("reportData", [])}
    assert {"ReservationCtrlr", "SampledDataCtrlr", "TxCtrlr", "OCPPCommCtrlr"} <= components
    got = await js_csms.call("GetVariables", {"getVariableData": [
        {"component": {"name": "ReservationCtrlr"}, "variable": {"name": "Enabled"}},
        {"component": {"name": "NoSuchCtrlr"}, "variable": {"name": "Enabled"}}]})
    assert [r["attributeStatus"] for r in got["getVariableResult"]] == ["Accepted", "UnknownComponent"]
    await _set_variables(js_csms, ("SampledDataCtrlr", "TxUpdatedInterval", "1"))
    _assert_no_validation_errors(js_csms)


# ---------------------------------------------------------------------------------------------------------------------
# reservations


async def test_reservation_accepted_reported_reserved_expires_and_is_cancelled(
        station: Daemon, js_csms: JsCsms) -> None:
    """ReserveNow Accepted -> StatusNotification Reserved (and the reserved LED in GET /status); a short one expires
    with ReservationStatusUpdate Expired and Available; CancelReservation Accepted -> Available, no update for it."""
    answer = await js_csms.call("ReserveNow", {"id": 0, "expiryDateTime": _expiry(600), "evseId": 1,
                                               "idToken": {"idToken": "ALICE", "type": "ISO14443"}})
    assert answer["status"] == "Accepted"
    await js_csms.expect("StatusNotification", _status_of(1, "Reserved"))
    await _until_evse(station, 1, lambda e: e["reserved"] and e["reserved_led"] == "on", "reserved, LED on")
    listed = (await _api(station, "GET", "/status"))["reservations"]
    assert [(r["reservation_id"], r["evse_id"]) for r in listed] == [(0, 1)]

    answer = await js_csms.call("ReserveNow", {"id": 5, "expiryDateTime": _expiry(2.0), "evseId": 2,
                                               "idToken": {"idToken": "BOB", "type": "ISO14443"}})
    assert answer["status"] == "Accepted"
    await js_csms.expect("StatusNotification", _status_of(2, "Reserved"))
    update = await js_csms.expect("ReservationStatusUpdate", timeout=15)
    assert update == {"reservationId": 5, "reservationUpdateStatus": "Expired"}
    await js_csms.expect("StatusNotification", _status_of(2, "Available"))

    assert (await js_csms.call("CancelReservation", {"reservationId": 0}))["status"] == "Accepted"
    await js_csms.expect("StatusNotification", _status_of(1, "Available"))
    await _until_evse(station, 1, lambda e: not e["reserved"] and e["reserved_led"] == "off", "unreserved, LED off")
    assert (await js_csms.call("CancelReservation", {"reservationId": 0}))["status"] == "Rejected"
    assert (await _api(station, "GET", "/status"))["reservations"] == []
    assert js_csms.received("ReservationStatusUpdate") == [update]  # none for the cancelled one
    _assert_no_validation_errors(js_csms)


async def test_a_reservation_is_used_by_its_token_and_the_transaction_names_it(
        station: Daemon, js_csms: JsCsms) -> None:
    """The reserved token (authorized by the CSMS) uses the reservation: Available, then Occupied on plug-in; the
    Started event carries reservationId."""
    answer = await js_csms.call("ReserveNow", {"id": 42, "expiryDateTime": _expiry(600), "evseId": 2,
                                               "idToken": {"idToken": "DORA", "type": "ISO14443"}})
    assert answer["status"] == "Accepted"
    await js_csms.expect("StatusNotification", _status_of(2, "Reserved"))
    used = await _present(station, 2, "DORA", "reservation_used")
    assert used["reservation_id"] == 42
    await js_csms.expect("Authorize", lambda p: p["idToken"]["idToken"] == "DORA")
    await js_csms.expect("StatusNotification", _status_of(2, "Available"))
    await _api(station, "POST", "/sim/evses/2/plug")
    await js_csms.expect("StatusNotification", _status_of(2, "Occupied"))
    started = await js_csms.expect("TransactionEvent", _tx_event("Started", "DORA"), timeout=STATE_S)
    assert started["reservationId"] == 42
    await _present(station, 2, "DORA", "stopped")
    ended = await js_csms.expect("TransactionEvent", _tx_event("Ended", tx_id=started["transactionInfo"]
                                                                ["transactionId"]), timeout=STATE_S)
    assert ended["transactionInfo"]["stoppedReason"] == "Local"
    assert "reservationId" not in ended
    _assert_sequence(js_csms, started["transactionInfo"]["transactionId"])
    _assert_no_validation_errors(js_csms)


# ---------------------------------------------------------------------------------------------------------------------
# a transaction with meter values


async def test_a_transaction_reports_meter_values_at_start_periodically_and_at_end(
        station: Daemon, js_csms: JsCsms) -> None:
    """SetVariables TxUpdatedInterval = 1, then token, plug: Started (seqNo 0, idToken, the start energy), Updated
    MeterValuePeriodic about every second with energy, power and current per phase, then the token again: Ended
    (Local) with the end energy; seqNo 0..n without gaps, every event valid for ocpp-rpc."""
    await _set_variables(js_csms, ("SampledDataCtrlr", "TxUpdatedInterval", "1"))
    await _start_charging(station, 1, "ALICE")
    authorize = await js_csms.expect("Authorize")
    assert authorize["idToken"] == {"idToken": "ALICE", "type": "ISO14443"}
    await js_csms.expect("StatusNotification", _status_of(1, "Occupied"))
    started = await js_csms.expect("TransactionEvent", _tx_event("Started", "ALICE"))
    tx_id = started["transactionInfo"]["transactionId"]
    assert started["seqNo"] == 0 and started["evse"] == {"id": 1, "connectorId": 1}
    assert started.get("offline", False) is False
    assert {v.get("context") for v in _sampled(started)} == {"Transaction.Begin"}
    begin_wh = _energy_wh(started)

    periodic: list[dict[str, Any]] = []
    charging_since = time.monotonic()
    for _ in range(3):  # TxUpdatedInterval = 1: three samples within a few seconds of charging
        periodic.append(await js_csms.expect(
            "TransactionEvent", lambda p: p["eventType"] == "Updated" and p["triggerReason"] == "MeterValuePeriodic"
            and p["transactionInfo"]["transactionId"] == tx_id, timeout=6.0))
    waited = time.monotonic() - charging_since
    assert waited < 8.0, f"three MeterValuePeriodic samples took {waited:.1f} s with TxUpdatedInterval = 1"
    for event in periodic:
        measurands = {v.get("measurand", "Energy.Active.Import.Register") for v in _sampled(event)}
        assert {"Energy.Active.Import.Register", "Power.Active.Import", "Current.Import"} <= measurands, event
        assert {v.get("context") for v in _sampled(event)} == {"Sample.Periodic"}, event
        phases = {v.get("phase") for v in _sampled(event) if v.get("measurand") == "Current.Import"}
        assert {"L1", "L2", "L3"} <= phases, event
        power = [float(v["value"]) for v in _sampled(event) if v.get("measurand") == "Power.Active.Import"]
        assert len(power) == 1 and power[0] >= 0.0, event
    # the sim EV draws 11 kW once charging (a sample just after the contactor closed may still show 0 W)
    assert any(float(v["value"]) > 1000.0 for e in periodic for v in _sampled(e)
               if v.get("measurand") == "Power.Active.Import"), periodic

    await _present(station, 1, "ALICE", "stopped")
    ended = await js_csms.expect("TransactionEvent", _tx_event("Ended", tx_id=tx_id), timeout=STATE_S)
    assert ended["triggerReason"] == "StopAuthorized"
    assert ended["transactionInfo"]["stoppedReason"] == "Local"
    assert {v.get("context") for v in _sampled(ended)} == {"Transaction.End"}
    end_wh = _energy_wh(ended)
    assert end_wh > begin_wh, (begin_wh, end_wh)
    assert begin_wh <= _energy_wh(periodic[0]) <= _energy_wh(periodic[-1]) <= end_wh

    events = _assert_sequence(js_csms, tx_id)
    assert events[-1]["eventType"] == "Ended"
    assert all(e.get("offline", False) is False for e in events)

    await _until_evse(station, 1, lambda e: e["lock"] == "unlocked", "unlocked")
    await _api(station, "POST", "/sim/evses/1/unplug")
    await js_csms.expect("StatusNotification", _status_of(1, "Available"))
    _assert_no_validation_errors(js_csms)


# ---------------------------------------------------------------------------------------------------------------------
# outages


async def test_a_csms_outage_during_charging_loses_nothing_and_marks_what_was_made_offline(
        station: Daemon, js_csms: JsCsms) -> None:
    """The CSMS goes down (stopped) while EVSE 1 charges. Meanwhile EVSE 1's transaction is stopped and another
    starts on EVSE 2 (unknown tokens may charge offline). When the CSMS is back on the same port the station
    reconnects and delivers everything once, in seqNo order, with offline = true exactly on what was made during
    the outage; then EVSE 2's transaction goes on online and ends."""
    await _set_variables(js_csms, ("SampledDataCtrlr", "TxUpdatedInterval", "1"),
                         ("AuthCtrlr", "OfflineTxForUnknownIdEnabled", "true"))
    await _start_charging(station, 1, "BOB")
    started = await js_csms.expect("TransactionEvent", _tx_event("Started", "BOB"))
    bob_tx = started["transactionInfo"]["transactionId"]
    await js_csms.expect("TransactionEvent", lambda p: p["transactionInfo"]["transactionId"] == bob_tx
                         and p["transactionInfo"].get("chargingState") == "Charging")
    before = len(_tx_calls(js_csms, bob_tx))

    await js_csms.stop()
    outage_began = time.monotonic()
    await asyncio.sleep(0.3)  # the station notices the closed connection at once; its first retry is >= 2 s away
    await _present(station, 1, "BOB", "stopped")
    await _start_charging(station, 2, "CAROL")
    await asyncio.sleep(2.5)  # EVSE 2 charges offline: its updates queue up
    assert len(_tx_calls(js_csms, bob_tx)) == before
    await js_csms.start()
    await js_csms.wait_connected(RECONNECT_S, station_id=STATION_ID, count=2)
    reconnected_after = time.monotonic() - outage_began

    bob_ended = await js_csms.expect("TransactionEvent", _tx_event("Ended", tx_id=bob_tx), timeout=STATE_S)
    assert bob_ended["offline"] is True
    assert bob_ended["transactionInfo"]["stoppedReason"] == "Local"
    assert _energy_wh(bob_ended) > _energy_wh(started)
    carol_started = await js_csms.expect("TransactionEvent", _tx_event("Started", "CAROL"), timeout=STATE_S)
    assert carol_started["offline"] is True
    carol_tx = carol_started["transactionInfo"]["transactionId"]
    # the reconnect re-reports every connector: EVSE 1 still plugged in (Occupied), EVSE 2 charging (Occupied)
    await js_csms.expect("StatusNotification", _status_of(2, "Occupied"), timeout=STATE_S)

    await asyncio.sleep(1.5)  # an online update or two of EVSE 2
    await _present(station, 2, "CAROL", "stopped")
    carol_ended = await js_csms.expect("TransactionEvent", _tx_event("Ended", tx_id=carol_tx), timeout=STATE_S)
    assert carol_ended.get("offline", False) is False

    # BOB: online until the outage, then offline (periodic updates, the Ended); the offline ones arrived only
    # after the reconnect, in seqNo order after the online ones
    bob = _assert_sequence(js_csms, bob_tx)
    online = _offline_split(bob, "BOB's events")
    assert bob[0].get("offline", False) is False and online < len(bob) and bob[-1]["offline"] is True
    assert online >= before, f"BOB's events received before the outage: {before}, online-flagged: {online}"
    # CAROL: offline from its start until the reconnect, then online
    carol = _assert_sequence(js_csms, carol_tx)
    offline = _offline_split(carol, f"CAROL's events (reconnected {reconnected_after:.1f} s into the outage)")
    assert carol[0]["offline"] is True and offline >= 2, carol
    assert carol[-1].get("offline", False) is False
    _assert_no_validation_errors(js_csms)


async def test_a_csms_side_disconnect_during_charging_delivers_the_offline_end_once(
        station: Daemon, js_csms: JsCsms) -> None:
    """ocpp-rpc drops the connection (no close handshake) while EVSE 1 charges; the token stops the session before
    the station is back: the Ended event arrives after the reconnect, offline, once, after every earlier seqNo."""
    await _start_charging(station, 1, "ERIN")
    started = await js_csms.expect("TransactionEvent", _tx_event("Started", "ERIN"))
    tx_id = started["transactionInfo"]["transactionId"]
    await js_csms.expect("StatusNotification", _status_of(1, "Occupied"))
    await js_csms.disconnect(STATION_ID, force=True)
    await asyncio.sleep(0.3)
    await _present(station, 1, "ERIN", "stopped")
    await js_csms.wait_connected(RECONNECT_S, station_id=STATION_ID, count=2)
    ended = await js_csms.expect("TransactionEvent", _tx_event("Ended", tx_id=tx_id), timeout=STATE_S)
    assert ended["offline"] is True
    assert ended["transactionInfo"]["stoppedReason"] == "Local"
    events = _assert_sequence(js_csms, tx_id)
    assert events[-1] == ended
    # the reconnect re-reports both connectors
    await js_csms.expect("StatusNotification", _status_of(1, "Occupied"), timeout=STATE_S)
    await js_csms.expect("StatusNotification", _status_of(2, "Available"), timeout=STATE_S)
    _assert_no_validation_errors(js_csms)
