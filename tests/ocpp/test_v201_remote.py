"""OCPP 2.0.1 remote control against the sim charger: RequestStartTransaction (F01/F02, with and without
AuthCtrlr.AuthorizeRemoteStart, on reserved EVSEs with and without a group token: H03), RequestStopTransaction
(F03) and GetTransactionStatus (E14).

Each test runs the real sim charger in-process with its OCPP front (tests/ocpp/station_harness.py) against the
schema-checking CSMS of tests/ocpp/csms.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from .csms import Csms
from .station_harness import OcppStation, booted, ocpp_config, ocpp_time, set_variables, status_of, until


def token(name: str) -> dict[str, str]:
    """An ISO14443 IdTokenType."""
    return {"idToken": name, "type": "ISO14443"}


def started_on(evse_id: int) -> Any:
    """A TransactionEvent predicate: the Started event of a transaction on this EVSE."""
    return lambda p: p["eventType"] == "Started" and p["evse"]["id"] == evse_id


@pytest.fixture
async def station(tmp_path: Path, csms_201: Csms) -> AsyncIterator[OcppStation]:
    """The sim charger connected and booted at ``csms_201``, every connector reported."""
    async with OcppStation(tmp_path, ocpp_config(csms_201.url)) as s:
        await booted(csms_201)
        yield s


class TokenEvents:
    """The runtime's ``token`` events (what each presented token led to), collected as they happen."""

    def __init__(self, station: OcppStation) -> None:
        self.seen: list[dict[str, Any]] = []
        self._unsubscribe = station.runtime.events.subscribe(self._on_event)

    def _on_event(self, event: dict[str, Any]) -> None:
        if event.get("type") == "token":
            self.seen.append(event)

    async def next_verdict(self, evse_id: int) -> str:
        """The verdict of the next token event at ``evse_id`` (waiting for it)."""
        await until(lambda: any(e["evse_id"] == evse_id for e in self.seen), f"a token event at EVSE {evse_id}")
        event = next(e for e in self.seen if e["evse_id"] == evse_id)
        self.seen.remove(event)
        return str(event["verdict"])

    def close(self) -> None:
        self._unsubscribe()


async def _charging_transaction(station: OcppStation, csms: Csms, evse_id: int, name: str,
                                remote_start_id: int) -> dict[str, Any]:
    """Remote-start a session for ``name`` at ``evse_id``, plug in, and return the Started event."""
    answer = await csms.call("RequestStartTransaction", {"idToken": token(name), "remoteStartId": remote_start_id,
                                                         "evseId": evse_id})
    assert answer["status"] == "Accepted", answer
    await until(lambda: station.evse(evse_id)["phase"] == "authorized", f"EVSE {evse_id} authorized")
    await station.plug(evse_id)
    return await csms.expect("TransactionEvent", started_on(evse_id), timeout=20)


# ---------------------------------------------------------------------------------------------------- F01/F02


async def test_remote_start_authorizes_the_token_first_and_the_started_event_names_the_remote_start(
        station: OcppStation, csms_201: Csms) -> None:
    started = await _charging_transaction(station, csms_201, 1, "ALICE", 41)
    assert started["triggerReason"] == "RemoteStart"
    assert started["transactionInfo"]["remoteStartId"] == 41
    assert started["idToken"] == token("ALICE")
    assert started["evse"] == {"id": 1, "connectorId": 1}
    authorize = csms_201.received_messages("Authorize")
    assert [m.payload["idToken"]["idToken"] for m in authorize] == ["ALICE"]  # AuthorizeRemoteStart = true
    started_message = next(m for m in csms_201.received_messages("TransactionEvent")
                           if m.payload["eventType"] == "Started")
    assert authorize[0].seq < started_message.seq


async def test_the_remote_start_id_survives_changes_of_the_idle_evse_while_the_token_is_authorized(
        station: OcppStation, csms_201: Csms) -> None:
    release = asyncio.Event()

    async def slow_authorize(payload: dict[str, Any]) -> dict[str, Any]:
        await release.wait()
        return {"idTokenInfo": {"status": "Accepted"}}

    csms_201.set_handler("Authorize", slow_authorize)
    answer = await csms_201.call("RequestStartTransaction", {"idToken": token("ALICE"), "remoteStartId": 77,
                                                             "evseId": 1})
    assert answer["status"] == "Accepted"
    await csms_201.expect("Authorize")
    await station.runtime.set_current_limit(1, 16)  # the idle EVSE's entry changes while the CSMS thinks
    release.set()
    await until(lambda: station.evse(1)["phase"] == "authorized", "EVSE 1 authorized")
    await station.plug(1)
    started = await csms_201.expect("TransactionEvent", started_on(1), timeout=20)
    assert started["triggerReason"] == "RemoteStart"
    assert started["transactionInfo"]["remoteStartId"] == 77


async def test_remote_start_without_authorize_remote_start_is_not_sent_to_the_csms(
        station: OcppStation, csms_201: Csms) -> None:
    await set_variables(csms_201, ("AuthCtrlr", "AuthorizeRemoteStart", "false"))
    csms_201.authorize_answers["ALICE"] = {"status": "Invalid"}  # would refuse her, if asked
    started = await _charging_transaction(station, csms_201, 2, "ALICE", 7)
    assert started["triggerReason"] == "RemoteStart"
    assert started["transactionInfo"]["remoteStartId"] == 7
    assert started["idToken"]["idToken"] == "ALICE"
    assert csms_201.received("Authorize") == []


async def test_a_remote_start_for_a_token_the_csms_refuses_starts_nothing(
        station: OcppStation, csms_201: Csms) -> None:
    csms_201.authorize_answers["MALLORY"] = {"status": "Blocked"}
    verdicts = TokenEvents(station)
    answer = await csms_201.call("RequestStartTransaction", {"idToken": token("MALLORY"), "remoteStartId": 3,
                                                             "evseId": 1})
    assert answer["status"] == "Accepted"  # F02: accepted, then authorized (and refused)
    assert await verdicts.next_verdict(1) == "refused_not_authorized"
    assert station.evse(1)["phase"] == "idle"
    verdicts.close()


async def test_a_remote_start_that_started_nothing_leaves_no_trace_on_the_next_session(
        station: OcppStation, csms_201: Csms) -> None:
    csms_201.authorize_answers["MALLORY"] = {"status": "Blocked"}
    verdicts = TokenEvents(station)
    await csms_201.call("RequestStartTransaction", {"idToken": token("MALLORY"), "remoteStartId": 3, "evseId": 1})
    assert await verdicts.next_verdict(1) == "refused_not_authorized"
    verdicts.close()

    outcome = await station.runtime.present_token(1, "CAROL")  # a local start at the same EVSE
    assert outcome.may_charge
    await station.plug(1)
    started = await csms_201.expect("TransactionEvent", started_on(1), timeout=20)
    assert started["triggerReason"] != "RemoteStart"
    assert "remoteStartId" not in started["transactionInfo"]


async def test_a_remote_start_on_a_transaction_started_by_the_cable_names_it_and_reports_its_id(
        station: OcppStation, csms_201: Csms) -> None:
    await set_variables(csms_201, ("TxCtrlr", "TxStartPoint", "EVConnected"))
    await station.plug(2)  # F01 "cable plugin first": the transaction runs before any token
    started = await csms_201.expect("TransactionEvent", started_on(2), timeout=10)
    tx_id = started["transactionInfo"]["transactionId"]
    answer = await csms_201.call("RequestStartTransaction", {"idToken": token("ALICE"), "remoteStartId": 55,
                                                             "evseId": 2})
    assert answer == {"status": "Accepted", "transactionId": tx_id}  # the running transaction
    update = await csms_201.expect("TransactionEvent", lambda p: p["eventType"] == "Updated" and "idToken" in p,
                                   timeout=20)
    assert update["transactionInfo"]["transactionId"] == tx_id
    assert update["idToken"]["idToken"] == "ALICE"
    assert update["triggerReason"] == "RemoteStart"
    assert update["transactionInfo"]["remoteStartId"] == 55  # F01.FR.25


async def test_remote_start_on_a_busy_or_unknown_evse_is_rejected(station: OcppStation, csms_201: Csms) -> None:
    await _charging_transaction(station, csms_201, 1, "ALICE", 1)
    busy = await csms_201.call("RequestStartTransaction", {"idToken": token("BOB"), "remoteStartId": 2, "evseId": 1})
    assert busy["status"] == "Rejected"
    unknown = await csms_201.call("RequestStartTransaction", {"idToken": token("BOB"), "remoteStartId": 3,
                                                              "evseId": 9})
    assert unknown["status"] == "Rejected"


async def test_remote_start_without_an_evse_takes_a_free_one(station: OcppStation, csms_201: Csms) -> None:
    answer = await csms_201.call("RequestStartTransaction", {"idToken": token("ALICE"), "remoteStartId": 5})
    assert answer["status"] == "Accepted"
    await until(lambda: any(station.evse(e)["phase"] == "authorized" for e in (1, 2)), "an EVSE authorized")
    evse_id = next(e for e in (1, 2) if station.evse(e)["phase"] == "authorized")
    await station.plug(evse_id)
    started = await csms_201.expect("TransactionEvent", started_on(evse_id), timeout=20)
    assert started["transactionInfo"]["remoteStartId"] == 5


# ---------------------------------------------------------------------------------------------------- H03 groups


async def test_a_remote_start_for_another_token_on_a_reservation_without_a_group_is_rejected(
        station: OcppStation, csms_201: Csms) -> None:
    reserve = await csms_201.call("ReserveNow", {"id": 3, "expiryDateTime": ocpp_time(600), "evseId": 1,
                                                 "idToken": token("ALICE")})
    assert reserve["status"] == "Accepted"
    await csms_201.expect("StatusNotification", status_of(1, "Reserved"))
    answer = await csms_201.call("RequestStartTransaction", {"idToken": token("BOB"), "remoteStartId": 8,
                                                             "evseId": 1})
    assert answer["status"] == "Rejected"
    assert station.evse(1)["reserved"] and station.evse(1)["phase"] == "idle"
    assert csms_201.received("Authorize") == []  # refused before any authorization
    assert csms_201.received("ReservationStatusUpdate") == []  # the reservation is kept


async def test_a_remote_start_on_a_group_reservation_starts_when_the_tokens_group_matches(
        station: OcppStation, csms_201: Csms) -> None:
    await csms_201.call("ReserveNow", {"id": 4, "expiryDateTime": ocpp_time(600), "evseId": 1,
                                       "idToken": token("ALICE"), "groupIdToken": {"idToken": "G1", "type": "Central"}})
    await csms_201.expect("StatusNotification", status_of(1, "Reserved"))
    csms_201.authorize_answers["BOB"] = {"status": "Accepted", "groupIdToken": "G1"}
    started = await _charging_transaction(station, csms_201, 1, "BOB", 9)
    assert [p["idToken"]["idToken"] for p in csms_201.received("Authorize")] == ["BOB"]
    assert started["reservationId"] == 4
    assert started["transactionInfo"]["remoteStartId"] == 9
    assert started["idToken"]["idToken"] == "BOB"
    assert not station.evse(1)["reserved"]


async def test_a_remote_start_on_a_group_reservation_starts_nothing_when_the_group_differs(
        station: OcppStation, csms_201: Csms) -> None:
    await csms_201.call("ReserveNow", {"id": 4, "expiryDateTime": ocpp_time(600), "evseId": 1,
                                       "idToken": token("ALICE"), "groupIdToken": {"idToken": "G1", "type": "Central"}})
    await csms_201.expect("StatusNotification", status_of(1, "Reserved"))
    csms_201.authorize_answers["BOB"] = {"status": "Accepted", "groupIdToken": "G2"}
    verdicts = TokenEvents(station)
    answer = await csms_201.call("RequestStartTransaction", {"idToken": token("BOB"), "remoteStartId": 9,
                                                             "evseId": 1})
    assert answer["status"] == "Accepted"
    assert await verdicts.next_verdict(1) == "refused_reserved_for_other"
    verdicts.close()
    assert [p["idToken"]["idToken"] for p in csms_201.received("Authorize")] == ["BOB"]
    assert station.evse(1)["reserved"] and station.evse(1)["phase"] == "idle"
    assert csms_201.received("TransactionEvent") == []
    # ALICE still has her reservation
    outcome = await station.runtime.present_token(1, "ALICE")
    assert outcome.verdict.value == "reservation_used" and outcome.reservation_id == 4


# ---------------------------------------------------------------------------------------------------- F03, E14


async def test_request_stop_ends_the_transaction_with_reason_remote(station: OcppStation, csms_201: Csms) -> None:
    started = await _charging_transaction(station, csms_201, 1, "ALICE", 1)
    tx_id = started["transactionInfo"]["transactionId"]
    answer = await csms_201.call("RequestStopTransaction", {"transactionId": tx_id})
    assert answer["status"] == "Accepted"
    ended = await csms_201.expect("TransactionEvent", lambda p: p["eventType"] == "Ended", timeout=20)
    assert ended["transactionInfo"]["transactionId"] == tx_id
    assert ended["transactionInfo"]["stoppedReason"] == "Remote"
    assert ended["triggerReason"] == "RemoteStop"
    await until(lambda: station.evse(1)["contactor"] == "open", "EVSE 1 contactor open")


async def test_request_stop_of_an_unknown_transaction_is_rejected(station: OcppStation, csms_201: Csms) -> None:
    answer = await csms_201.call("RequestStopTransaction", {"transactionId": "no-such-transaction"})
    assert answer["status"] == "Rejected"


async def _when_drained(csms: Csms, payload: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    """GetTransactionStatus, asked until the station says no message waits (it just sent one: its answer may be
    on the way back)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        answer = await csms.call("GetTransactionStatus", payload)
        if answer["messagesInQueue"] is False:
            return answer
        assert asyncio.get_running_loop().time() < deadline, f"messages still queued: {answer}"
        await asyncio.sleep(0.05)


async def test_get_transaction_status_follows_the_transaction(station: OcppStation, csms_201: Csms) -> None:
    started = await _charging_transaction(station, csms_201, 1, "ALICE", 1)
    tx_id = started["transactionInfo"]["transactionId"]
    assert await _when_drained(csms_201, {"transactionId": tx_id}) == {"ongoingIndicator": True,
                                                                       "messagesInQueue": False}
    assert await _when_drained(csms_201, {}) == {"messagesInQueue": False}  # E14.FR.06: no ongoingIndicator

    await csms_201.call("RequestStopTransaction", {"transactionId": tx_id})
    await csms_201.expect("TransactionEvent", lambda p: p["eventType"] == "Ended", timeout=20)
    assert await _when_drained(csms_201, {"transactionId": tx_id}) == {"ongoingIndicator": False,
                                                                       "messagesInQueue": False}
    unknown = await csms_201.call("GetTransactionStatus", {"transactionId": "never-heard-of-it"})
    assert unknown == {"ongoingIndicator": False, "messagesInQueue": False}


async def test_get_transaction_status_says_messages_wait_while_the_csms_has_not_taken_them(
        station: OcppStation, csms_201: Csms) -> None:
    started = await _charging_transaction(station, csms_201, 1, "ALICE", 1)
    tx_id = started["transactionInfo"]["transactionId"]
    await _when_drained(csms_201, {"transactionId": tx_id})
    release = asyncio.Event()

    async def slow(_: dict[str, Any]) -> dict[str, Any]:
        await release.wait()
        return {}

    csms_201.set_handler("TransactionEvent", slow)  # the station's next event waits for its answer
    await csms_201.call("TriggerMessage", {"requestedMessage": "TransactionEvent", "evse": {"id": 1}})
    await csms_201.expect("TransactionEvent", lambda p: p["triggerReason"] == "Trigger")
    waiting = await csms_201.call("GetTransactionStatus", {"transactionId": tx_id})
    assert waiting == {"ongoingIndicator": True, "messagesInQueue": True}
    release.set()
    csms_201.set_handler("TransactionEvent", None)
    assert (await _when_drained(csms_201, {"transactionId": tx_id}))["ongoingIndicator"] is True
