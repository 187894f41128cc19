"""The durable OCPP message queue on real SQLite files: order, seqNo, attempts, dead letters, bounds, bad rows, faults.

Writes are made to fail for real with SQLite's ``query_only`` on the queue's own connection (every write fails
inside SQLite, as on a full disk or a read-only file system). The SIGKILL test runs a child process that enqueues
in a loop and is killed at random points, then reopens the file.
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from controller.ocpp.station import ocpp_db
from controller.ocpp.station.queue import MessageQueue, QueueError, UnresolvedReference

ROOT = Path(__file__).resolve().parents[2]


def writes_fail(queue: MessageQueue, failing: bool = True) -> None:
    """Make every write of this queue fail inside SQLite (or work again)."""
    assert queue._db is not None
    queue._db.execute(f"PRAGMA query_only={'ON' if failing else 'OFF'}")


def disk_rows(path: Path) -> list[tuple[Any, ...]]:
    """What another connection sees on disk: (position, message_id, action, payload, seq_no, attempts)."""
    with sqlite3.connect(path) as db:
        return db.execute(
            "SELECT position, message_id, action, payload, seq_no, attempts FROM ocpp_queue ORDER BY position"
        ).fetchall()


def event(seq: int, kind: str = "Updated") -> dict[str, Any]:
    """A small TransactionEvent-like payload carrying its seqNo."""
    return {"eventType": kind, "seqNo": seq}


def test_enqueue_is_on_disk_when_it_returns_and_order_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "ocpp.db"
    queue = MessageQueue(path)
    made = [queue.enqueue("Heartbeatish", {"n": i}) for i in range(5)]
    rows = disk_rows(path)  # another connection, before close: committed, not just cached
    assert [(r[1], json.loads(r[3])) for r in rows] == [(m.message_id, {"n": i}) for i, m in enumerate(made)]
    assert [m.position for m in made] == sorted({m.position for m in made})
    assert len({m.message_id for m in made}) == 5
    queue.close()
    queue = MessageQueue(path)
    again = queue.pending()
    assert [(m.message_id, m.position, m.payload) for m in again] == [
        (m.message_id, m.position, m.payload) for m in made
    ]
    assert queue.peek() == again[0]
    assert queue.pending_count() == 5
    queue.close()


def test_positions_are_never_reused_even_after_the_newest_was_removed(tmp_path: Path) -> None:
    path = tmp_path / "ocpp.db"
    queue = MessageQueue(path)
    first = queue.enqueue("A", {})
    assert queue.delivered(first.message_id)
    queue.close()
    queue = MessageQueue(path)
    second = queue.enqueue("B", {})
    assert second.position > first.position
    queue.close()


def test_seq_no_counts_per_transaction_from_zero_and_is_never_reused(tmp_path: Path) -> None:
    path = tmp_path / "ocpp.db"
    queue = MessageQueue(path)
    got = []
    for ref in ["tx-1", "tx-1", "tx-2", "tx-1", "tx-2"]:
        m = queue.enqueue_transaction_event(ref, lambda s: event(s))
        assert m.payload["seqNo"] == m.seq_no and m.transaction_ref == ref and m.action == "TransactionEvent"
        got.append((ref, m.seq_no))
    assert got == [("tx-1", 0), ("tx-1", 1), ("tx-2", 0), ("tx-1", 2), ("tx-2", 1)]
    for m in queue.pending():
        queue.delivered(m.message_id)  # all gone: the counters must not fall back
    queue.close()
    queue = MessageQueue(path)
    assert queue.enqueue_transaction_event("tx-1", event).seq_no == 3
    assert queue.enqueue_transaction_event("tx-2", event).seq_no == 2
    assert queue.enqueue_transaction_event("tx-3", event).seq_no == 0
    queue.close()


def test_a_failing_build_stores_nothing_and_consumes_no_seq_no(tmp_path: Path) -> None:
    queue = MessageQueue(tmp_path / "ocpp.db")
    queue.enqueue_transaction_event("tx", event)

    def broken(seq: int) -> dict[str, Any]:
        raise RuntimeError("no meter")

    with pytest.raises(RuntimeError, match="no meter"):
        queue.enqueue_transaction_event("tx", broken)
    with pytest.raises(ValueError):
        queue.enqueue_transaction_event("tx", lambda s: {"seqNo": s, "energy": float("nan")})
    assert queue.pending_count() == 1
    assert queue.enqueue_transaction_event("tx", event).seq_no == 1  # the aborted ones never existed
    with pytest.raises(TypeError):
        queue.enqueue("X", ["not", "an", "object"])  # type: ignore[arg-type]
    assert queue.pending_count() == 2
    queue.close()


CHILD = textwrap.dedent("""
    import sys
    from controller.ocpp.station.queue import MessageQueue
    queue = MessageQueue(sys.argv[1])
    while True:
        m = queue.enqueue_transaction_event("tx-A", lambda s: {"eventType": "Updated", "seqNo": s})
        if m.seq_no % 2 == 0:
            queue.delivered(m.message_id)
        print(m.seq_no, flush=True)
""")


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")
def test_sigkill_while_enqueueing_loses_and_repeats_no_seq_no(tmp_path: Path) -> None:
    """Each life enqueues (delivering the even seqNos) until SIGKILLed; every acknowledged odd one stays, once."""
    path = tmp_path / "ocpp.db"
    rng = random.Random()
    acknowledged_odd: set[int] = set()  # printed by a child after the commit, never delivered: must stay pending
    highest = -1  # every seqNo handed out so far (printed, pending or probed) is at most this
    cut_off: set[int] = set()  # per life, the one seqNo that may have been committed but not printed before the kill
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for _life in range(4):
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, text=True, env=env)
        assert child.stdout is not None
        want = rng.randrange(20, 200)
        life: list[int] = []
        while len(life) < want:
            line = child.stdout.readline()
            assert line, f"child died early (rc {child.poll()})"
            life.append(int(line))
        child.send_signal(signal.SIGKILL)
        life += [int(line) for line in child.stdout.read().split()]  # acknowledged before the kill
        child.wait()
        assert life == list(range(life[0], life[-1] + 1))  # no gap, no repeat within a life
        assert life[0] > highest  # a restart continues above everything handed out before
        acknowledged_odd |= {s for s in life if s % 2}
        cut_off.add(life[-1] + 1)
        queue = MessageQueue(path)
        pending = [m.seq_no for m in queue.pending(100_000)]
        assert len(pending) == len(set(pending))
        assert acknowledged_odd <= set(pending)
        assert set(pending) - acknowledged_odd <= cut_off
        probe = queue.enqueue_transaction_event("tx-A", event)
        assert probe.seq_no is not None and probe.seq_no > max([*pending, *life])
        assert queue.delivered(probe.message_id)
        highest = probe.seq_no
        queue.close()
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_delivered_is_durable_and_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "ocpp.db"
    queue = MessageQueue(path)
    a, b = queue.enqueue("A", {}), queue.enqueue("B", {})
    assert queue.delivered(a.message_id) is True
    assert queue.delivered(a.message_id) is False
    assert queue.delivered("no-such-id") is False
    assert [r[1] for r in disk_rows(path)] == [b.message_id]
    queue.close()
    queue = MessageQueue(path)
    assert queue.peek() == b
    queue.close()


@pytest.mark.parametrize("durable_removals", [True, False])
def test_removals_are_fsynced_unless_relaxed_and_everything_else_always_is(
    tmp_path: Path, durable_removals: bool
) -> None:
    path = tmp_path / "ocpp.db"
    queue = MessageQueue(path, durable_removals=durable_removals)
    assert queue._db is not None
    statements: list[str] = []
    queue._db.set_trace_callback(statements.append)
    a = queue.enqueue("A", {})
    assert not any("synchronous" in s for s in statements)  # enqueue: the connection's FULL
    statements.clear()
    assert queue.delivered(a.message_id)
    relaxed = [s for s in statements if "synchronous" in s]
    assert relaxed == ([] if durable_removals else ["PRAGMA synchronous=NORMAL", "PRAGMA synchronous=FULL"])
    assert queue._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL again for what follows
    assert disk_rows(path) == []  # committed either way (visible to another connection at once)
    queue.close()


def test_attempts_are_counted_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "ocpp.db"
    queue = MessageQueue(path)
    m = queue.enqueue("A", {})
    assert queue.failed_attempt(m.message_id, "CALLERROR InternalError") == 1
    assert queue.failed_attempt(m.message_id, "timeout") == 2
    assert queue.failed_attempt("no-such-id") == 0
    assert disk_rows(path)[0][5] == 2
    queue.close()
    queue = MessageQueue(path)
    again = queue.peek()
    assert again is not None and again.attempts == 2 and again.last_error == "timeout"
    assert again.message_id == m.message_id
    queue.close()


def test_give_up_moves_the_message_to_the_dead_letters_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "ocpp.db"
    queue = MessageQueue(path, max_dead_letters=2)
    ms = [queue.enqueue_transaction_event("tx", lambda s: event(s, "Ended")) for _ in range(3)]
    with caplog.at_level(logging.WARNING):
        assert queue.give_up(ms[0].message_id, "CALLERROR FormatViolation x3") is True
    assert ms[0].message_id in caplog.text and "FormatViolation" in caplog.text
    assert queue.give_up(ms[0].message_id, "again") is False
    assert [m.message_id for m in queue.pending()] == [m.message_id for m in ms[1:]]
    dead = queue.dead_letters()
    assert [(d.message_id, d.reason, json.loads(str(d.payload))) for d in dead] == [
        (ms[0].message_id, "CALLERROR FormatViolation x3", event(0, "Ended"))
    ]
    queue.give_up(ms[1].message_id, "b")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        queue.give_up(ms[2].message_id, "c")
    assert "pruned the 1 oldest dead letter" in caplog.text  # bounded, and said so
    assert [d.reason for d in queue.dead_letters()] == ["b", "c"]
    queue.close()
    assert MessageQueue(path).dead_letters()[-1].message_id == ms[2].message_id


def test_over_the_bound_only_droppable_messages_go_intermediate_first(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    queue = MessageQueue(tmp_path / "ocpp.db", max_messages=5)
    names: dict[str, str] = {}

    def put(name: str, droppable: bool) -> None:
        names[queue.enqueue("TransactionEvent", {"name": name}, droppable=droppable).message_id] = name

    with caplog.at_level(logging.WARNING):
        put("S", False)
        for i in range(1, 9):
            put(f"U{i}", True)
        put("E", False)
    # thinning (E11.FR.05), every 2nd droppable one: U2, U4, U6, U8, then a new pass over U1 U3 U5 U7 takes U3;
    # the first Updated and both ends always stay
    assert [names[m.message_id] for m in queue.pending()] == ["S", "U1", "U5", "U7", "E"]
    assert caplog.text.count("dropped TransactionEvent") == 5
    queue.close()


def test_non_droppable_messages_are_kept_beyond_the_bound_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    queue = MessageQueue(tmp_path / "ocpp.db", max_messages=3)
    with caplog.at_level(logging.WARNING):
        for i in range(6):
            queue.enqueue("StartTransaction" if i % 2 else "StopTransaction", {"i": i})
    assert [m.payload["i"] for m in queue.pending()] == list(range(6))
    assert caplog.text.count("over its limit") == 1
    queue.close()


def corrupt(path: Path, message_id: str, payload: object) -> None:
    """Overwrite one stored payload behind the queue's back."""
    with sqlite3.connect(path) as db:
        db.execute("UPDATE ocpp_queue SET payload = ? WHERE message_id = ?", (payload, message_id))


def test_unreadable_rows_go_to_the_dead_letters_and_the_rest_is_delivered(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "ocpp.db"
    queue = MessageQueue(path)
    ms = [queue.enqueue("A", {"i": i}) for i in range(5)]
    corrupt(path, ms[1].message_id, "{not json")
    corrupt(path, ms[2].message_id, b"\xff\xfe")  # not UTF-8
    corrupt(path, ms[3].message_id, "[1, 2]")  # JSON, not an object
    with caplog.at_level(logging.ERROR):
        assert [m.message_id for m in queue.pending()] == [ms[0].message_id, ms[4].message_id]
    for bad in ms[1:4]:
        assert bad.message_id in caplog.text
    assert queue.pending_count() == 2
    dead = queue.dead_letters()
    assert [d.message_id for d in dead] == [m.message_id for m in ms[1:4]]
    assert all(d.reason.startswith("unreadable row") for d in dead)
    queue.close()


def test_an_unreadable_row_that_cannot_be_moved_is_skipped_not_looped_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "ocpp.db"
    queue = MessageQueue(path)
    a, b = queue.enqueue("A", {}), queue.enqueue("B", {})
    corrupt(path, a.message_id, "{oops")
    writes_fail(queue)
    with caplog.at_level(logging.ERROR):
        assert queue.peek() == b  # no exception: the bad row is skipped for the rest of this life
    assert a.message_id in caplog.text and "stays and is skipped" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        assert queue.peek() == b
    assert caplog.text == ""  # not retried (and logged) on every peek of the sender
    writes_fail(queue, False)
    assert [r[1] for r in disk_rows(path)] == [a.message_id, b.message_id]  # nothing was lost meanwhile
    queue.close()


def test_an_unknown_table_layout_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "ocpp.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE ocpp_queue (id INTEGER PRIMARY KEY, blob TEXT)")
    with pytest.raises(QueueError, match=r"ocpp\.db.*table ocpp_queue has columns \(id, blob\)"):
        MessageQueue(path)


def test_an_empty_or_foreign_file_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    with pytest.raises(QueueError, match=r"empty\.db: is an empty file"):
        MessageQueue(empty)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(QueueError, match=r"junk\.db"):
        MessageQueue(junk)


def test_the_file_may_hold_other_tables(tmp_path: Path) -> None:
    path = tmp_path / "ocpp.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE device_model (k TEXT PRIMARY KEY, v TEXT)")
        db.execute("INSERT INTO device_model VALUES ('HeartbeatInterval', '300')")
    queue = MessageQueue(path)
    queue.enqueue("A", {})
    queue.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT * FROM device_model").fetchall() == [("HeartbeatInterval", "300")]
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_new_file_is_made_whole_and_leaves_no_temporary_behind(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "ocpp.db"
    queue = MessageQueue(path)
    assert queue._db is not None and queue._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    queue.close()
    assert sorted(p.name for p in path.parent.iterdir() if ".new" in p.name) == []


def test_a_file_made_meanwhile_by_another_component_is_used_not_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ocpp.db"
    real_fsync = ocpp_db._fsync

    def other_component_wins_the_race(target: Path) -> None:
        if not path.exists():  # between our temporary file being ready and its link into place
            with sqlite3.connect(path) as db:
                db.execute("CREATE TABLE auth_cache (token TEXT)")
                db.execute("INSERT INTO auth_cache VALUES ('abc')")
        real_fsync(target)

    monkeypatch.setattr(ocpp_db, "_fsync", other_component_wins_the_race)
    queue = MessageQueue(path)
    queue.enqueue("A", {})
    queue.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT token FROM auth_cache").fetchall() == [("abc",)]
        assert db.execute("SELECT COUNT(*) FROM ocpp_queue").fetchone()[0] == 1


def test_a_write_that_fails_raises_queue_error_and_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "ocpp.db"
    queue = MessageQueue(path)
    a = queue.enqueue_transaction_event("tx", event)
    before = disk_rows(path)
    writes_fail(queue)
    with pytest.raises(QueueError, match=rf"{path.name}: cannot queue TransactionEvent: .*readonly"):
        queue.enqueue_transaction_event("tx", event)
    with pytest.raises(QueueError, match=r"cannot queue A"):
        queue.enqueue("A", {})
    with pytest.raises(QueueError, match=r"cannot remove a delivered message"):
        queue.delivered(a.message_id)
    with pytest.raises(QueueError):
        queue.failed_attempt(a.message_id)
    with pytest.raises(QueueError):
        queue.give_up(a.message_id, "x")
    with pytest.raises(QueueError):
        queue.resolve_reference("tx", 7)
    assert queue.fault is not None
    assert disk_rows(path) == before
    assert queue.peek() == a  # not durably removed, so still pending, attempts unchanged
    assert queue.pending_count() == 1
    writes_fail(queue, False)
    assert queue.enqueue_transaction_event("tx", event).seq_no == 1  # the refused one never got a number
    assert queue.fault is None
    assert queue.delivered(a.message_id)
    queue.close()
    with pytest.raises(QueueError, match="closed"):
        queue.enqueue("A", {})


def test_1_6_transaction_id_is_filled_in_at_send_time(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "ocpp.db"
    queue = MessageQueue(path)
    start = queue.enqueue("StartTransaction", {"connectorId": 1, "meterStart": 0}, transaction_ref="L1")
    stop = queue.enqueue("StopTransaction", {"meterStop": 42}, transaction_ref="L1", reference_field="transactionId")
    queued_stop = queue.pending()[1]
    with pytest.raises(UnresolvedReference, match="L1"):
        queued_stop.payload_to_send()
    assert queue.delivered(start.message_id, reference_value=1234)
    sent = queue.peek()
    assert sent is not None and sent.message_id == stop.message_id
    assert sent.payload_to_send() == {"meterStop": 42, "transactionId": 1234}
    assert sent.payload == {"meterStop": 42}  # the stored payload is never changed
    queue.close()
    queue = MessageQueue(path)
    assert queue.reference("L1") == 1234
    after = queue.peek()
    assert after is not None and after.payload_to_send()["transactionId"] == 1234
    with caplog.at_level(logging.WARNING):
        queue.resolve_reference("L1", 99)
    assert "replaces 1234" in caplog.text
    assert queue.reference("L1") == 99
    other = queue.enqueue("X", {})
    with pytest.raises(ValueError, match="no transaction_ref"):
        queue.delivered(other.message_id, reference_value=5)
    assert queue.pending_count() == 2  # the refused delivery left it pending
    with pytest.raises(ValueError):
        queue.enqueue("MeterValues", {}, reference_field="transactionId")  # nothing to resolve it from
    queue.close()


def test_listeners_hear_every_committed_enqueue_and_cannot_break_it(tmp_path: Path) -> None:
    queue = MessageQueue(tmp_path / "ocpp.db")
    heard: list[int] = []
    remove = queue.add_listener(lambda: heard.append(queue.pending_count()))

    def broken() -> None:
        raise RuntimeError("listener bug")

    queue.add_listener(broken)
    queue.enqueue("A", {})
    queue.enqueue_transaction_event("t", event)
    assert heard == [1, 2]  # called after the commit
    remove()
    remove()
    queue.enqueue("B", {})
    assert heard == [1, 2]
    assert queue.pending_count("t") == 1
    queue.close()
