"""OCPP 1.6J chaos: the same 50 CSMS disconnects and 20 station SIGKILLs during charging sessions as the 2.0.1 run
(test_ocpp_chaos_v201.py), with the station speaking 1.6: no StartTransaction, MeterValues or StopTransaction is
lost or sent twice, transactionIds are resolved after a reconnect, and every acknowledged reservation survives.

The run is the version-neutral chaos driver (ocpp_chaos_driver.py: the real daemon on one state directory for all
its lives, two charging drivers, the shuffled plan of outages and kills) with the 1.6 flavour: ``[ocpp] version =
"1.6"``, MeterValueSampleInterval = 1 and AllowOfflineTxForUnknownId = true (ChangeConfiguration), ReserveNow on
connectorId 2, and a CSMS that answers a resent StartTransaction with the transactionId it gave the first time (as
a de-duplicating CSMS does). Then, from everything the CSMS recorded (ocpp_chaos_ledger16.py for the details):

- every message arrives once (a resend keeps its message id and payload; the same content under another id is a
  duplicate); every MeterValues and StopTransaction of a transaction carries the transactionId the CSMS gave,
  also those queued before the StartTransaction was answered (counted: ``resolved_after_start_answer``);
- per transaction one StartTransaction first, one StopTransaction last, MeterValues in order without a missing
  one in the middle; every started transaction stopped; every transaction belongs to one session;
- a session cut by a kill stops after the restart with reason PowerLoss, the others Local; a session that used a
  reservation names it in its StartTransaction (reservationId);
- a reservation acknowledged before a kill is there after the restart (GET /status, and a StatusNotification
  Reserved of connectorId 2 on the new connection);
- at the end the station's queue, dead letters and open transactions are empty, and no life logged a traceback.

Figures: one JSON line, also written to ``$CHARGER_RELIABILITY_OUT/ocpp_chaos_16.json``. Size and seed as in the
2.0.1 run (``CHARGER_TEST_SCALE``, ``CHARGER_OCPP_CHAOS_SEED``). The two kill points (SIGKILL right after a
StartTransaction or StopTransaction was committed, before it was sent) run here as well.
"""

from __future__ import annotations

import json
import re
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ..ocpp.csms import Csms, Message
from .ocpp_chaos_base import (
    KILLS_PER_SCALE,
    RESERVED_EVSE,
    Flavour,
    TxEnd,
    chaos_figures,
    delivery_delays,
    reconcile,
    scale,
    seed,
    station_leftovers,
    write_figures,
)
from .ocpp_chaos_driver import run_chaos
from .ocpp_chaos_killpoint import kill_point_run
from .ocpp_chaos_ledger16 import analyse16, made_at, start_handler

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")


async def _setup(csms: Csms) -> None:
    """MeterValues every second during a transaction; a token the CSMS cannot be asked about may charge offline."""
    for key, value in (("MeterValueSampleInterval", "1"), ("AllowOfflineTxForUnknownId", "true")):
        answer = await csms.call("ChangeConfiguration", {"key": key, "value": value})
        assert answer == {"status": "Accepted"}, (key, answer)


FLAVOUR = Flavour(
    version="1.6",
    prepare=lambda csms: csms.set_handler("StartTransaction", start_handler(csms)),
    setup=_setup,
    reserve=lambda rid, token, expiry: {"reservationId": rid, "expiryDate": expiry, "connectorId": RESERVED_EVSE,
                                        "idTag": token},
    reserved=lambda p: p["connectorId"] == RESERVED_EVSE and p["status"] == "Reserved",
    started=lambda m: m.action == "StartTransaction",
    ended=lambda m: m.action == "StopTransaction",
    kill_points={"Started": "StartTransaction", "Ended": "StopTransaction"},
    figures="ocpp_chaos_16.json",
)


async def test_ocpp_16_chaos_loses_and_repeats_nothing(tmp_path: Path) -> None:
    """50 CSMS disconnects and 20 station SIGKILLs (x CHARGER_TEST_SCALE) during 1.6 charging sessions: every
    Start/StopTransaction and MeterValues once, with its resolved transactionId, in order, none lost; every
    acknowledged reservation kept."""

    def all_ended(csms: Csms) -> bool:
        """Every transaction that started has stopped at the CSMS."""
        return all(tx.stops for tx in analyse16(csms.messages).transactions.values())

    run = await run_chaos(tmp_path, FLAVOUR, seed=seed(), scale=scale(), all_ended=all_ended)
    chaos, csms, context = run.chaos, run.chaos.csms, run.context
    leftovers = station_leftovers(chaos.state_dir / "ocpp.db")
    analysis = analyse16(csms.messages)
    max_delay_s, max_backlog = delivery_delays(csms, [(m, made_at(m)) for m in analysis.first_arrivals()])
    opened = {c.serial: c.opened_at + time.time() - time.monotonic() for c in csms.connections}
    made_offline = sum(1 for m in analysis.first_arrivals() if m.connection > 1 and made_at(m) < opened[m.connection])

    by_token: dict[str, list[TxEnd]] = {}
    for tx in analysis.transactions.values():
        ended_on = tx.stops[0].connection if tx.stops else 0
        by_token.setdefault(tx.token, []).append(TxEnd(str(tx.tx_id), tx.reason, ended_on))
    problems, reasons = reconcile(chaos, by_token, run.began)
    starts = {tx.token: tx.start.payload for tx in analysis.transactions.values()}
    for session in chaos.sessions:
        start = starts.get(session.token)
        if session.verdict == "reservation_used" and start is not None \
                and start.get("reservationId") != session.reservation_id:
            problems.append(f"{session.token} used reservation {session.reservation_id}; its StartTransaction "
                            f"says reservationId {start.get('reservationId')}")
    logs = "\n".join(chaos.logs)
    tracebacks = logs.count("Traceback")
    error_lines = [line for line in logs.splitlines() if re.search(r"\b(ERROR|CRITICAL)\b", line)]

    summary = {
        **chaos_figures(chaos),
        "transactions": len(analysis.transactions),
        "stop_reasons": dict(reasons),
        "messages": analysis.messages,
        "messages_unique": analysis.unique,
        "meter_values": sum(len(tx.values) for tx in analysis.transactions.values()),
        "messages_made_offline": made_offline,
        "resolved_after_start_answer": analysis.resolved_late,
        "starts_with_reservation": sum(1 for start in starts.values() if "reservationId" in start),
        "duplicates_same_message_id": analysis.resends,
        "duplicates_new_message_id": len(analysis.duplicates),
        "lost": analysis.missing_stop + analysis.unknown_ids + analysis.gaps + leftovers["ocpp_queue_dead"],
        "unknown_transaction_ids": analysis.unknown_ids,
        "meter_value_gaps": analysis.gaps,
        "max_meter_value_gap_s": round(analysis.max_gap_s, 2),
        "out_of_order": analysis.out_of_order,
        "missing_stop": analysis.missing_stop,
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
    assert summary["messages_made_offline"] >= 1 and summary["meter_values"] >= 50 * run.scale, summary
    assert summary["starts_with_reservation"] >= 5 * run.scale, summary
    assert summary["sessions_completed"] >= 10 * run.scale, summary


# ---------------------------------------------------------------------------------------------------------------------
# kill points the random chaos rarely hits (ocpp_chaos_killpoint.py)


def _trace(csms: Csms) -> str:
    """The transaction messages the CSMS received: connection, message id, action, transactionId, reason."""
    return "\n".join(f"  connection {m.connection} id {m.unique_id[:8]} {m.action} "
                     f"tx {m.payload.get('transactionId', (m.response or {}).get('transactionId'))} "
                     f"{m.payload.get('reason', '')}"
                     for m in csms.messages if m.action in ("StartTransaction", "MeterValues", "StopTransaction"))


def _one_transaction(csms: Csms, token: str) -> tuple[list[Message], str]:
    """The StopTransactions of the run's one transaction, which ``token`` started; (stops, trace)."""
    analysis = analyse16(csms.messages)
    trace = _trace(csms)
    assert len(analysis.transactions) == 1, f"not one StartTransaction delivered after the restart:\n{trace}"
    assert not analysis.duplicates, analysis.duplicates
    assert not analysis.failures, "\n".join(analysis.failures) + f"\nmessages:\n{trace}"
    (tx,) = analysis.transactions.values()
    assert tx.token == token, trace
    return tx.stops, trace


async def test_a_kill_right_after_the_start_transaction_is_queued_still_stops_the_transaction(tmp_path: Path) -> None:
    """SIGKILL right after the StartTransaction's commit, before it was sent: it is delivered after the restart,
    so the transaction must also stop there (PowerLoss, with the transactionId the CSMS gave then)."""
    csms, token = await kill_point_run(tmp_path, FLAVOUR, "Started", stop_by_token=False)
    stops, trace = _one_transaction(csms, token)
    assert [s.payload["reason"] for s in stops] == ["PowerLoss"], trace


async def test_a_kill_right_after_the_stop_transaction_is_queued_stops_the_transaction_once(tmp_path: Path) -> None:
    """SIGKILL right after the StopTransaction's commit, before it was sent: after the restart the queued stop
    (Local) is delivered, and the transaction must not be stopped a second time (PowerLoss)."""
    csms, token = await kill_point_run(tmp_path, FLAVOUR, "Ended", stop_by_token=True)
    stops, trace = _one_transaction(csms, token)
    assert [s.payload.get("reason", "Local") for s in stops] == ["Local"], trace


def test_the_16_ledger_catches_duplicates_unknown_ids_disorder_gaps_and_missing_stops() -> None:
    """Self-test of ``analyse16``: a resend with the same message id is counted, not failed; the same content under
    another id, a transactionId the CSMS never gave, values after the stop, a gap in the values and a start
    without a stop are each reported; a value made before the start's answer counts as resolved late."""
    seq = iter(range(1, 1000))

    def msg(action: str, unique_id: str, payload: dict[str, Any], response: dict[str, Any] | None = None) -> Message:
        """A recorded CALL."""
        return Message(seq=next(seq), station_id="CHAOS01", connection=1, version="1.6", unique_id=unique_id,
                       action=action, payload=payload, at=time.monotonic() + 100.0, frame=json.dumps(payload),
                       errors=[], response=response)

    base = datetime.now(UTC) - timedelta(hours=1)  # made before the start's answer (``at`` below: now + 100 s)

    def at(second: float) -> str:
        """A timestamp ``second`` s after ``base``."""
        return (base + timedelta(seconds=second)).isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def start(uid: str, tx_id: int, token: str, second: float = 0.0) -> Message:
        """A StartTransaction answered with ``tx_id``."""
        payload = {"connectorId": 1, "idTag": token, "meterStart": 0, "timestamp": at(second)}
        return msg("StartTransaction", uid, payload, {"transactionId": tx_id, "idTagInfo": {"status": "Accepted"}})

    def values(uid: str, tx_id: int, second: float) -> Message:
        """A periodic MeterValues of ``tx_id``."""
        sample = [{"value": "1", "context": "Sample.Periodic", "measurand": "Energy.Active.Import.Register"}]
        return msg("MeterValues", uid, {"connectorId": 1, "transactionId": tx_id,
                                        "meterValue": [{"timestamp": at(second), "sampledValue": sample}]})

    def stop(uid: str, tx_id: int, second: float, reason: str = "Local") -> Message:
        """A StopTransaction of ``tx_id``."""
        return msg("StopTransaction", uid, {"transactionId": tx_id, "meterStop": 1, "timestamp": at(second),
                                            "reason": reason})

    clean = analyse16([start("s1", 1, "A"), values("v1", 1, 1.0), values("v1", 1, 1.0), values("v2", 1, 2.0),
                       stop("e1", 1, 2.5)])
    assert (clean.resends, clean.duplicates, clean.failures, clean.resolved_late) == (1, [], [], 3)
    broken = analyse16([
        start("s2", 2, "B"), values("v3", 2, 1.0), values("v3-again", 2, 1.0),  # duplicate
        values("v4", 9, 1.0),  # transactionId 9 never given
        values("v5", 2, 5.0), stop("e2", 2, 5.5), values("v6", 2, 6.0),  # 1 -> 5: gap; a value after the stop
        start("s3", 3, "C"),  # never stopped
    ])
    assert len(broken.duplicates) == 1 and "v3-again" in broken.duplicates[0]
    assert (broken.unknown_ids, broken.out_of_order, broken.gaps, broken.missing_stop) == (1, 1, 1, 1)
