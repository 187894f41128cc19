"""OCPP 2.0.1 chaos: 50 CSMS disconnects and 20 station SIGKILLs during charging sessions; no TransactionEvent is lost,
sent twice or out of order, and every acknowledged reservation survives.

The station is the real daemon (``charger-controller run --config chaos.toml``: the embedded sim configuration,
``simulated = true``, so it is ``run --sim``, plus an ``[ocpp]`` section whose only change from the defaults is a
short reconnect back-off, 0.2-1 s instead of 2-120 s, so 70 outages fit in CI) on ONE state directory for all its
lives, talking to the schema-checking Python CSMS of tests/ocpp/csms.py. The run itself is version-neutral
(ocpp_chaos_driver.py, ocpp_chaos_base.py); this module gives it the 2.0.1 flavour and judges the 2.0.1 records
(test_ocpp_chaos_v16.py does the same for 1.6). Two drivers run charging sessions through
the HTTP API, one per EVSE: a unique token, plug in, charge 1.5-3 s (SampledDataCtrlr.TxUpdatedInterval = 1), the
token again, unplug. EVSE 2's sessions start from a reservation: ReserveNow from the CSMS, held 0.5-1.5 s, then
used by its token. Meanwhile a chaos task works through a shuffled plan of 50 CSMS-side disconnects (half of them
abrupt: a TCP abort without a close handshake) and 20 SIGKILLs of the station, each restarted on the same state
directory; half of the kills land while EVSE 2's reservation is held (acknowledged by ReserveNow Accepted, not yet
used), the others while a car charges.

Then, from everything the CSMS recorded:

- every TransactionEvent arrives once per (transactionId, seqNo); a second arrival counts as a resend (reported,
  allowed) only when it carries the same OCPP-J message id and payload as the first, as the station's resend of an
  unanswered message does (a CSMS de-duplicates by that id); with another id it is a duplicate (a failure);
- per transaction the seqNos are 0..n without gaps, first arrivals in seqNo order, one Started first, one Ended
  last; every transaction that Started has Ended; every transaction belongs to one session;
- a session cut by a kill ends after the restart with stoppedReason PowerLoss; the others end Local;
- a reservation acknowledged before a kill is there after the restart (GET /status, EVSE 2 reserved, and a
  StatusNotification Reserved on the new connection) and is then used by its token;
- at the end the station's queue, dead letters and open transactions are empty, and no life logged a traceback.

Figures (one JSON line, also written to ``$CHARGER_RELIABILITY_OUT/ocpp_chaos.json``): sessions, disconnects, kills,
events, duplicates by message id, lost, max delivery delay after a reconnect, wall time. Size: 50 disconnects and 20
kills times ``CHARGER_TEST_SCALE`` (default 1, about 2 minutes). ``CHARGER_OCPP_CHAOS_SEED`` replays a seed's
choices (timing is real, so not its exact moments).
"""

from __future__ import annotations

import json
import re
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ..ocpp.csms import Csms, Message
from .ocpp_chaos_base import (
    KILLS_PER_SCALE,
    RESERVED_EVSE,
    STATION_ID,
    Flavour,
    TxEnd,
    chaos_figures,
    delivery_delays,
    reconcile,
    scale,
    seed,
    station_leftovers,
    timestamp,
    write_figures,
)
from .ocpp_chaos_driver import run_chaos
from .ocpp_chaos_killpoint import kill_point_run

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")


async def _setup(csms: Csms) -> None:
    """A TransactionEvent Updated every second; a token the CSMS cannot be asked about may charge offline."""
    answer = await csms.call("SetVariables", {"setVariableData": [
        {"component": {"name": component}, "variable": {"name": variable}, "attributeValue": value}
        for component, variable, value in (("SampledDataCtrlr", "TxUpdatedInterval", "1"),
                                           ("AuthCtrlr", "OfflineTxForUnknownIdEnabled", "true"))]})
    assert all(r["attributeStatus"] == "Accepted" for r in answer["setVariableResult"]), answer


def _is_event(kind: str) -> Any:
    """A predicate: a TransactionEvent of this eventType."""
    return lambda m: m.action == "TransactionEvent" and m.payload["eventType"] == kind


FLAVOUR = Flavour(
    version="2.0.1",
    prepare=lambda _: None,
    setup=_setup,
    reserve=lambda rid, token, expiry: {"id": rid, "expiryDateTime": expiry, "evseId": RESERVED_EVSE,
                                        "idToken": {"idToken": token, "type": "ISO14443"}},
    reserved=lambda p: p["evseId"] == RESERVED_EVSE and p["connectorStatus"] == "Reserved",
    started=_is_event("Started"),
    ended=_is_event("Ended"),
    kill_points={"Started": "Started", "Ended": "Ended"},
    figures="ocpp_chaos.json",
)


# ---------------------------------------------------------------------------------------------------------------------
# analysis


@dataclass
class Analysis:
    """What the CSMS's records say about the TransactionEvents."""

    transactions: dict[str, list[Message]]  # transactionId -> first arrivals, in arrival order
    events: int = 0
    resends: int = 0  # same (tx, seqNo) again, same message id and payload
    duplicates: list[str] = field(default_factory=list)  # same (tx, seqNo) again with another id or payload
    failures: list[str] = field(default_factory=list)
    seq_gaps: int = 0
    out_of_order: int = 0
    missing_started: int = 0
    missing_ended: int = 0
    offline_events: int = 0


def analyse(messages: list[Message]) -> Analysis:
    """Check exactly-once, contiguous seqNos, order, Started first and Ended last, per transaction."""
    first: dict[tuple[str, int], Message] = {}
    result = Analysis({})
    for message in messages:
        if message.action != "TransactionEvent":
            continue
        result.events += 1
        tx_id = message.payload["transactionInfo"]["transactionId"]
        key = (tx_id, message.payload["seqNo"])
        if key in first:
            earlier = first[key]
            if earlier.unique_id == message.unique_id and earlier.payload == message.payload:
                result.resends += 1
            else:
                result.duplicates.append(f"{key}: message {earlier.unique_id} on connection {earlier.connection}, "
                                         f"then {message.unique_id} on connection {message.connection}:\n"
                                         f"  {earlier.frame}\n  {message.frame}")
            continue
        first[key] = message
        result.offline_events += bool(message.payload.get("offline"))
        result.transactions.setdefault(tx_id, []).append(message)
    for tx_id, arrivals in result.transactions.items():
        seq_nos = [m.payload["seqNo"] for m in arrivals]
        if seq_nos != sorted(seq_nos):
            result.out_of_order += 1
            result.failures.append(f"transaction {tx_id}: seqNos arrived in the order {seq_nos}")
        present = sorted(seq_nos)
        gaps = sorted(set(range(present[-1] + 1)) - set(present))
        if gaps:
            result.seq_gaps += len(gaps)
            result.failures.append(f"transaction {tx_id}: seqNos {gaps} never arrived (got {present})")
        ordered = sorted(arrivals, key=lambda m: m.payload["seqNo"])
        kinds = [m.payload["eventType"] for m in ordered]
        if kinds[0] != "Started" or kinds.count("Started") != 1:
            result.missing_started += kinds[0] != "Started"
            result.failures.append(f"transaction {tx_id}: event types by seqNo {kinds}")
        if kinds.count("Ended") != 1 or kinds[-1] != "Ended":
            result.missing_ended += "Ended" not in kinds
            result.failures.append(f"transaction {tx_id}: event types by seqNo {kinds} (one Ended, last, wanted)")
    return result



# ---------------------------------------------------------------------------------------------------------------------
# the test


async def test_ocpp_chaos_loses_and_repeats_nothing(tmp_path: Path) -> None:
    """50 CSMS disconnects and 20 station SIGKILLs (x CHARGER_TEST_SCALE) during charging sessions: every
    TransactionEvent exactly once per seqNo, in order, none lost; every acknowledged reservation kept."""

    def all_ended(csms: Csms) -> bool:
        """Every transaction that Started has Ended at the CSMS."""
        return all(any(m.payload["eventType"] == "Ended" for m in arrivals)
                   for arrivals in analyse(csms.messages).transactions.values())

    run = await run_chaos(tmp_path, FLAVOUR, seed=seed(), scale=scale(), all_ended=all_ended)
    chaos, csms, context = run.chaos, run.chaos.csms, run.context
    leftovers = station_leftovers(chaos.state_dir / "ocpp.db")
    analysis = analyse(csms.messages)
    max_delay_s, max_backlog = delivery_delays(csms, [(m, timestamp(m.payload["timestamp"]))
                                                      for arrivals in analysis.transactions.values()
                                                      for m in arrivals])

    by_token: dict[str, list[TxEnd]] = {}
    for tx_id, arrivals in analysis.transactions.items():
        events = sorted(arrivals, key=lambda m: m.payload["seqNo"])
        token = next((m.payload["idToken"]["idToken"] for m in events if "idToken" in m.payload), None)
        last = events[-1]
        reason = last.payload["transactionInfo"].get("stoppedReason", "Local") \
            if last.payload["eventType"] == "Ended" else None
        by_token.setdefault(str(token), []).append(TxEnd(tx_id, reason, last.connection))
    problems, reasons = reconcile(chaos, by_token, run.began)
    updates = [m.payload for m in csms.messages if m.action == "ReservationStatusUpdate"]
    if updates:
        problems.append(f"ReservationStatusUpdate without an expiry or removal: {updates}")
    logs = "\n".join(chaos.logs)
    tracebacks = logs.count("Traceback")
    error_lines = [line for line in logs.splitlines() if re.search(r"\b(ERROR|CRITICAL)\b", line)]

    summary = {
        **chaos_figures(chaos),
        "transactions": len(analysis.transactions),
        "stopped_reasons": dict(reasons),
        "events": analysis.events,
        "events_unique": sum(len(a) for a in analysis.transactions.values()),
        "events_made_offline": analysis.offline_events,
        "duplicates_same_message_id": analysis.resends,
        "duplicates_new_message_id": len(analysis.duplicates),
        "lost": analysis.seq_gaps + analysis.missing_started + analysis.missing_ended + leftovers["ocpp_queue_dead"],
        "seq_gaps": analysis.seq_gaps,
        "out_of_order": analysis.out_of_order,
        "missing_ended": analysis.missing_ended,
        "left_in_station": leftovers,
        "max_delivery_delay_after_reconnect_ms": round(1000 * max_delay_s, 1),
        "max_backlog_after_reconnect": max_backlog,
        "station_tracebacks": tracebacks,
        "station_error_lines": len(error_lines),
        "schema_failures": len(run.schema_failures),
        "wall_s": round(time.monotonic() - run.began, 1),
        "scale": run.scale,
        "seed": run.seed,
    }
    write_figures(FLAVOUR.figures, summary)

    assert run.exit_code == 0, f"{context} exit status {run.exit_code} after SIGTERM"
    assert not analysis.duplicates, f"{context} {len(analysis.duplicates)} duplicate(s):\n" + "\n".join(
        analysis.duplicates[:10])
    assert not analysis.failures, f"{context} {len(analysis.failures)} failure(s):\n" + "\n".join(
        analysis.failures[:20])
    assert not problems, f"{context} {len(problems)} problem(s):\n" + "\n".join(problems[:20])
    assert leftovers == {"ocpp_queue": 0, "ocpp_queue_dead": 0, "ocpp_open_transactions": 0}, (context, leftovers)
    assert not run.schema_failures, f"{context}\n" + "\n".join(map(str, run.schema_failures[:10]))
    assert tracebacks == 0 and not error_lines, f"{context} station errors:\n" + "\n".join(error_lines[:20])
    # the run really did what it claims, or the checks above proved little
    assert summary["disconnects"] == chaos.disconnects_planned and summary["kills"] == chaos.kills_planned
    assert summary["kills_with_reservation_held"] >= KILLS_PER_SCALE * run.scale // 4, summary
    assert reasons["PowerLoss"] >= KILLS_PER_SCALE * run.scale // 4, summary
    assert summary["events_made_offline"] >= 1, summary
    assert summary["sessions_completed"] >= 10 * run.scale, summary


# ---------------------------------------------------------------------------------------------------------------------
# kill points the random chaos rarely hits (ocpp_chaos_killpoint.py)


def _trace(csms: Csms) -> str:
    """The TransactionEvents the CSMS received: connection, message id, seqNo, type, trigger, stoppedReason."""
    return "\n".join(
        f"  connection {m.connection} id {m.unique_id[:8]} seqNo {m.payload['seqNo']} {m.payload['eventType']} "
        f"{m.payload['triggerReason']} {m.payload['transactionInfo'].get('stoppedReason', '')} "
        f"offline={m.payload.get('offline', False)}"
        for m in csms.messages if m.action == "TransactionEvent")


async def test_a_kill_right_after_the_started_event_is_queued_still_ends_the_transaction(tmp_path: Path) -> None:
    """SIGKILL right after the Started event's commit, before it was sent: the Started is delivered after the
    restart, so the transaction must also end there (PowerLoss) - a Started without an Ended never closes at the
    CSMS. (Fails if the open-transaction row is not committed with the event.)"""
    csms, token = await kill_point_run(tmp_path, FLAVOUR, "Started", stop_by_token=False)
    analysis = analyse(csms.messages)
    trace = _trace(csms)
    assert len(analysis.transactions) == 1, f"the Started event was not delivered after the restart:\n{trace}"
    assert not analysis.duplicates, analysis.duplicates
    assert not analysis.failures, "\n".join(analysis.failures) + f"\nTransactionEvents:\n{trace}"
    (arrivals,) = analysis.transactions.values()
    assert arrivals[0].payload["idToken"]["idToken"] == token
    assert arrivals[-1].payload["transactionInfo"]["stoppedReason"] == "PowerLoss", trace


async def test_a_kill_right_after_the_ended_event_is_queued_ends_the_transaction_once(tmp_path: Path) -> None:
    """SIGKILL right after the Ended event's commit, before it was sent: after the restart the queued Ended (Local)
    is delivered, and the transaction must not be ended a second time (PowerLoss). (Fails if the open-transaction
    row is not removed in the same commit.)"""
    csms, token = await kill_point_run(tmp_path, FLAVOUR, "Ended", stop_by_token=True)
    analysis = analyse(csms.messages)
    trace = _trace(csms)
    assert len(analysis.transactions) == 1, trace
    assert not analysis.duplicates, analysis.duplicates
    assert not analysis.failures, "\n".join(analysis.failures) + f"\nTransactionEvents:\n{trace}"
    (arrivals,) = analysis.transactions.values()
    assert arrivals[0].payload["idToken"]["idToken"] == token
    assert arrivals[-1].payload["transactionInfo"]["stoppedReason"] == "Local", trace


def test_the_analysis_catches_duplicates_gaps_disorder_and_missing_ends() -> None:
    """Self-test of ``analyse``: a resend with the same message id is counted, not failed; the same seqNo under
    another id, a gap, seqNos out of order, a second Ended and a missing Ended are each reported."""

    def event(tx: str, seq_no: int, kind: str, unique_id: str, connection: int = 1) -> Message:
        """A recorded TransactionEvent CALL."""
        payload = {"eventType": kind, "timestamp": "2026-12-06T10:00:00.000Z", "triggerReason": "Trigger",
                   "seqNo": seq_no, "transactionInfo": {"transactionId": tx}}
        return Message(seq=0, station_id=STATION_ID, connection=connection, version="2.0.1", unique_id=unique_id,
                       action="TransactionEvent", payload=payload, at=0.0, frame=json.dumps(payload), errors=[])

    clean = analyse([event("A", 0, "Started", "a0"), event("A", 1, "Updated", "a1"),
                     event("A", 1, "Updated", "a1", connection=2), event("A", 2, "Ended", "a2", connection=2)])
    assert (clean.resends, clean.duplicates, clean.failures) == (1, [], [])
    broken = analyse([
        event("B", 0, "Started", "b0"), event("B", 1, "Updated", "b1"), event("B", 1, "Updated", "b1-again"),
        event("C", 0, "Started", "c0"), event("C", 2, "Ended", "c2"),  # seqNo 1 lost
        event("D", 1, "Updated", "d1"), event("D", 0, "Started", "d0"), event("D", 2, "Ended", "d2"),  # disorder
        event("E", 0, "Started", "e0"), event("E", 1, "Ended", "e1"), event("E", 2, "Ended", "e2"),  # ended twice
    ])
    assert len(broken.duplicates) == 1 and "b1-again" in broken.duplicates[0]
    assert (broken.seq_gaps, broken.out_of_order, broken.missing_ended) == (1, 1, 1)  # B never ended
    assert any("'Ended', 'Ended'" in failure for failure in broken.failures)
