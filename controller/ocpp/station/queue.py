"""A durable, ordered outbox of the CALLs the station must deliver: on disk before it is sent, removed once answered.

On disk (controller.ocpp.station.queue_db: the tables and their checks; ocpp_db: how the file is made, opened and
written): one SQLite file, possibly shared with other OCPP tables, in WAL with ``synchronous=FULL``: a commit is
durable against power loss once it returns; a 0-byte, corrupt or foreign file is refused, never taken as an empty queue.

Every message has a position (AUTOINCREMENT: increasing, never reused) and a ``message_id`` (a UUID: the OCPP-J
unique id of every attempt, so a CSMS can recognise a resend). A TransactionEvent's ``seqNo`` comes from a
per-transaction counter bumped in the SAME commit as the row: a seqNo exists only if its message was committed and
is never handed out twice, whatever instant the process is killed at.

1.6 references: a StopTransaction/MeterValues queued before the StartTransaction is answered carries
``transaction_ref`` (the station's local id) and ``reference_field="transactionId"``. The CSMS's value is stored per
transaction_ref (``resolve_reference``, or ``delivered(..., reference_value=)`` in the same commit that removes the
StartTransaction), joined in by every read, and written into that field by ``payload_to_send()`` at send time.

Bounded by ``max_messages``: beyond it, ``droppable`` messages (TransactionEvent Updated, 1.6 transaction
MeterValues) are dropped with a WARNING, intermediate ones first (OCPP 2.0.1 E11.FR.05: the 2nd, 4th, 6th...,
then another pass); a non-droppable one (Started/Ended, Start/StopTransaction) never is, even beyond the bound. An
unreadable row goes to the dead letters with an ERROR naming it (skipped if even that cannot be written); the rest
is unaffected. A failed write raises QueueError naming the file and changes nothing: the disk is the only state.
Thread-safe (one connection behind a lock), so the sender may call it from a worker thread.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from controller.ocpp.station.ocpp_db import open_tables, write
from controller.ocpp.station.queue_db import (
    LAYOUT,
    SELECT_MESSAGES,
    DeadLetter,
    JsonObject,
    QueuedMessage,
    QueueError,
    Reference,
    UnresolvedReference,
    dump_payload,
    move_to_dead,
    parse_row,
)

__all__ = ["MessageQueue", "QueueError", "QueuedMessage", "Reference", "UnresolvedReference"]

log = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGES = 10_000
DEFAULT_MAX_DEAD_LETTERS = 1_000


class MessageQueue:
    """A durable FIFO of CALLs in one SQLite file (see the module docstring for the guarantees)."""

    def __init__(self, path: str | Path, *, max_messages: int = DEFAULT_MAX_MESSAGES,
                 max_dead_letters: int = DEFAULT_MAX_DEAD_LETTERS, busy_timeout_s: float = 2.0,
                 durable_removals: bool = True) -> None:
        if max_messages < 1 or max_dead_letters < 1:
            raise ValueError("max_messages and max_dead_letters must be at least 1")
        self.path = Path(path)
        self.max_messages = max_messages
        self.max_dead_letters = max_dead_letters
        # False: delivered() commits with synchronous=NORMAL (no fsync; ~8x faster drain where fsync is slow). Still
        # exact across SIGKILLs and restarts (the OS holds the write); a power cut may undo the latest removals, and
        # those messages are then resent with their message_id, never lost. The next FULL commit makes them durable.
        self.durable_removals = durable_removals
        self.fault: str | None = None  # why the last write failed; None while writes succeed
        self._lock = threading.RLock()
        self._listeners: list[Callable[[], None]] = []
        self._skip: set[int] = set()  # unreadable rows that could not be moved to the dead letters
        self._thin_after = 0  # E11.FR.05 thinning: position of the last dropped message of this pass
        self._over_cap_warned = False
        self._db: sqlite3.Connection | None = open_tables(self.path, busy_timeout_s, LAYOUT)

    # -- writing

    def enqueue(self, action: str, payload: JsonObject, *, transaction_ref: str | None = None, offline: bool = False,
                droppable: bool = False, reference_field: str | None = None) -> QueuedMessage:
        """Append a CALL durably (committed before this returns); QueueError if the disk refuses it."""
        dump_payload(payload)  # a payload that is not JSON is the caller's bug: refused before touching the disk
        return self._append(action, lambda _seq: payload, transaction_ref, offline, droppable, reference_field, False)

    def enqueue_transaction_event(self, transaction_ref: str, build: Callable[[int], JsonObject], *,
                                  action: str = "TransactionEvent", offline: bool = False,
                                  droppable: bool = False,
                                  also: Callable[[sqlite3.Connection], None] | None = None,
                                  reference_field: str | None = None) -> QueuedMessage:
        """Append ``build(seqNo)`` with the transaction's next seqNo (0 first), counter and row in ONE commit.

        ``also(db)`` writes more rows of the same file in that same commit (the open-transaction row, so a kill can
        never leave a queued event and the station's record of its transaction disagreeing). ``reference_field``:
        as for ``enqueue`` (a 1.6 StopTransaction or MeterValues gets its transactionId there at send time).
        """
        return self._append(action, build, transaction_ref, offline, droppable, reference_field, True, also)

    def _append(self, action: str, build: Callable[[int], JsonObject], transaction_ref: str | None, offline: bool,
                droppable: bool, reference_field: str | None, numbered: bool,
                also: Callable[[sqlite3.Connection], None] | None = None) -> QueuedMessage:
        """Insert one message (and bump its seqNo counter when ``numbered``), make room, notify listeners."""
        if not isinstance(action, str) or not action:
            raise ValueError(f"action must be a non-empty string, not {action!r}")
        if reference_field is not None and transaction_ref is None:
            raise ValueError("reference_field needs a transaction_ref to resolve it from")
        message_id = str(uuid.uuid4())
        at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        with self._lock, self._write(f"queue {action}") as db:
            seq_no = None
            if numbered:
                db.execute("INSERT OR IGNORE INTO ocpp_queue_transactions (transaction_ref) VALUES (?)",
                           (transaction_ref,))
                seq_no = db.execute("SELECT next_seq_no FROM ocpp_queue_transactions WHERE transaction_ref = ?",
                                    (transaction_ref,)).fetchone()[0]
                if isinstance(seq_no, bool) or not isinstance(seq_no, int) or seq_no < 0:
                    raise QueueError(f"{self.path}: transaction {transaction_ref!r} has a bad seqNo counter {seq_no!r}")
                db.execute("UPDATE ocpp_queue_transactions SET next_seq_no = ? WHERE transaction_ref = ?",
                           (seq_no + 1, transaction_ref))
            payload = build(-1 if seq_no is None else seq_no)
            text = dump_payload(payload)
            position = db.execute(
                "INSERT INTO ocpp_queue (message_id, action, payload, transaction_ref, seq_no, reference_field, "
                "offline, droppable, enqueued_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (message_id, action, text, transaction_ref, seq_no, reference_field, int(offline), int(droppable), at),
            ).lastrowid
            if also is not None:
                also(db)
            dropped, count, thin_after = self._make_room(db)
        self._thin_after = thin_after
        for victim in dropped:
            log.warning("%s: message queue over its limit of %d: dropped %s %s (position %s) to make room",
                        self.path, self.max_messages, victim[2], victim[1], victim[0])
        if count > self.max_messages and not self._over_cap_warned:
            log.warning("%s: message queue holds %d messages, over its limit of %d, and none may be dropped (starts "
                        "and ends of transactions are kept whatever the limit)", self.path, count, self.max_messages)
        self._over_cap_warned = count > self.max_messages
        self._notify()
        assert position is not None
        return QueuedMessage(position, message_id, action, json.loads(text), transaction_ref, seq_no,
                             reference_field, None, offline, droppable, 0, None, at)

    def _make_room(self, db: sqlite3.Connection) -> tuple[list[tuple[int, str, str]], int, int]:
        """Drop droppable messages while over the bound, intermediate first (E11.FR.05); (dropped, count, cursor)."""
        count: int = db.execute("SELECT COUNT(*) FROM ocpp_queue").fetchone()[0]
        dropped: list[tuple[int, str, str]] = []
        after = self._thin_after
        while count > self.max_messages:
            query = ("SELECT position, message_id, action FROM ocpp_queue WHERE droppable = 1 AND position > ? "
                     "ORDER BY position LIMIT 2")
            rows = db.execute(query, (after,)).fetchall()
            if len(rows) < 2 and after > 0:
                after = 0  # a new pass over what is left: keep its first, drop its second
                rows = db.execute(query, (after,)).fetchall()
            if not rows:
                break
            victim = rows[-1]
            db.execute("DELETE FROM ocpp_queue WHERE position = ?", (victim[0],))
            dropped.append(victim)
            after = victim[0]
            count -= 1
        return dropped, count, after

    def delivered(self, message_id: str, *, reference_value: Reference | None = None) -> bool:
        """Remove an answered message (idempotent: False if it is not pending).

        ``reference_value`` (a 1.6 StartTransaction's transactionId) is stored for the message's transaction_ref in
        the same commit, so a kill in between cannot leave the Start removed and its id unknown.
        """
        with self._lock, self._write("remove a delivered message", relaxed=not self.durable_removals) as db:
            row = db.execute("SELECT transaction_ref FROM ocpp_queue WHERE message_id = ?", (message_id,)).fetchone()
            if row is None:
                return False
            if reference_value is not None:
                if row[0] is None:
                    raise ValueError(f"message {message_id} has no transaction_ref to resolve")
                self._store_reference(db, row[0], reference_value)
            db.execute("DELETE FROM ocpp_queue WHERE message_id = ?", (message_id,))
            return True

    def resolve_reference(self, transaction_ref: str, value: Reference) -> None:
        """Record the CSMS's value (1.6 transactionId) for a local transaction ref; later reads carry it."""
        with self._lock, self._write("store a transaction reference") as db:
            self._store_reference(db, transaction_ref, value)

    def _store_reference(self, db: sqlite3.Connection, transaction_ref: str, value: Reference) -> None:
        """Upsert the reference inside the caller's transaction; WARNING when it replaces a different one."""
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError(f"a transaction reference must be an int or a str, not {value!r}")
        text = json.dumps(value)
        old = db.execute("SELECT reference FROM ocpp_queue_transactions WHERE transaction_ref = ?",
                         (transaction_ref,)).fetchone()
        if old is not None and old[0] is not None and old[0] != text:
            log.warning("%s: transaction %s: CSMS reference %s replaces %s", self.path, transaction_ref, text, old[0])
        db.execute("INSERT INTO ocpp_queue_transactions (transaction_ref, reference) VALUES (?, ?) ON CONFLICT "
                   "(transaction_ref) DO UPDATE SET reference = excluded.reference", (transaction_ref, text))

    def failed_attempt(self, message_id: str, error: str | None = None) -> int:
        """Count a failed attempt durably; the attempts so far (0 if the message is not pending)."""
        with self._lock, self._write("count an attempt") as db:
            db.execute("UPDATE ocpp_queue SET attempts = attempts + 1, last_error = ? WHERE message_id = ?",
                       (error, message_id))
            row = db.execute("SELECT attempts FROM ocpp_queue WHERE message_id = ?", (message_id,)).fetchone()
        return 0 if row is None else int(row[0])

    def give_up(self, message_id: str, reason: str) -> bool:
        """Move a message to the dead letters (kept for diagnosis) with a WARNING; False if it was not pending."""
        with self._lock, self._write("move a message to the dead letters") as db:
            row = db.execute("SELECT position, action, transaction_ref, seq_no, attempts FROM ocpp_queue "
                             "WHERE message_id = ?", (message_id,)).fetchone()
            if row is None:
                return False
            self._bury(db, row[0], reason)
        log.warning("%s: gave up on %s %s (transaction %s, seqNo %s) after %s attempt(s): %s; kept in ocpp_queue_dead",
                    self.path, row[1], message_id, row[2], row[3], row[4], reason)
        return True

    def _bury(self, db: sqlite3.Connection, position: int, reason: str) -> None:
        """Move one row to the dead letters and keep those under their bound (a WARNING names what is pruned)."""
        move_to_dead(db, position, reason)
        extra = db.execute("SELECT COUNT(*) FROM ocpp_queue_dead").fetchone()[0] - self.max_dead_letters
        if extra > 0:
            db.execute("DELETE FROM ocpp_queue_dead WHERE rowid IN "
                       "(SELECT rowid FROM ocpp_queue_dead ORDER BY rowid LIMIT ?)", (extra,))
            log.warning("%s: pruned the %d oldest dead letter(s) (limit %d)", self.path, extra, self.max_dead_letters)

    # -- reading

    def peek(self) -> QueuedMessage | None:
        """The oldest pending message, or None."""
        found = self.pending(1)
        return found[0] if found else None

    def pending(self, limit: int = 100) -> list[QueuedMessage]:
        """Up to ``limit`` pending messages, oldest first; unreadable rows met on the way go to the dead letters."""
        good: list[QueuedMessage] = []
        bad: list[tuple[int, object, str]] = []
        with self._lock:
            cursor = self._conn().execute(SELECT_MESSAGES + " ORDER BY q.position")
            try:
                while len(good) < limit and (row := cursor.fetchone()) is not None:
                    if row[0] in self._skip:
                        continue
                    try:
                        good.append(parse_row(row))
                    except (ValueError, TypeError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
                        bad.append((row[0], row[1], str(exc)))
            except sqlite3.Error as exc:
                raise QueueError(f"{self.path}: cannot read the message queue: {exc}") from exc
            finally:
                cursor.close()
            for position, message_id, problem in bad:
                self._quarantine(position, message_id, problem)
        return good

    def _quarantine(self, position: int, message_id: object, problem: str) -> None:
        """Move an unreadable row to the dead letters; if that cannot be written, skip it for this process's life."""
        reason = f"unreadable row: {problem}"
        log.error("%s: queued message at position %s (message_id %r) is unreadable: %s; moving it to "
                  "ocpp_queue_dead", self.path, position, message_id, problem)
        try:
            with self._write("move an unreadable message to the dead letters") as db:
                self._bury(db, position, reason)
        except QueueError as exc:
            log.error("%s: %s; the unreadable row at position %s stays and is skipped", self.path, exc, position)
            self._skip.add(position)

    def pending_count(self, transaction_ref: str | None = None) -> int:
        """How many messages are pending (of one transaction when ``transaction_ref`` is given)."""
        if transaction_ref is None:
            return int(self._read("SELECT COUNT(*) FROM ocpp_queue", ())[0][0])
        return int(self._read("SELECT COUNT(*) FROM ocpp_queue WHERE transaction_ref = ?", (transaction_ref,))[0][0])

    def reference(self, transaction_ref: str) -> Reference | None:
        """The CSMS's value recorded for a local transaction ref (1.6 transactionId), or None."""
        rows = self._read("SELECT reference FROM ocpp_queue_transactions WHERE transaction_ref = ?", (transaction_ref,))
        value = json.loads(rows[0][0]) if rows and rows[0][0] is not None else None
        return value if isinstance(value, int | str) else None

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The newest ``limit`` dead letters, oldest first, as stored."""
        rows = self._read("SELECT position, message_id, action, payload, reason, dead_at FROM ocpp_queue_dead "
                          "ORDER BY rowid DESC LIMIT ?", (limit,))
        return [DeadLetter(*r) for r in reversed(rows)]

    def _read(self, sql: str, args: tuple[object, ...]) -> list[Any]:
        """Run a read under the lock; sqlite3 errors become QueueError naming the file."""
        with self._lock:
            try:
                return self._conn().execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise QueueError(f"{self.path}: cannot read the message queue: {exc}") from exc

    # -- plumbing

    def add_listener(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` after every committed enqueue (from the enqueuing thread); returns its remover."""
        self._listeners.append(callback)

        def remove() -> None:
            """Stop calling ``callback`` (idempotent)."""
            with contextlib.suppress(ValueError):
                self._listeners.remove(callback)

        return remove

    def _notify(self) -> None:
        """Tell the listeners a message arrived; a failing listener is logged, never fails the enqueue."""
        for callback in list(self._listeners):
            try:
                callback()
            except Exception:
                log.exception("%s: a message queue listener failed", self.path)

    def _conn(self) -> sqlite3.Connection:
        """The open connection, or QueueError once closed."""
        if self._db is None:
            raise QueueError(f"{self.path}: the message queue is closed")
        return self._db

    @contextlib.contextmanager
    def _write(self, what: str, relaxed: bool = False) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE .. COMMIT (``relaxed``: synchronous=NORMAL for this one); errors roll back, QueueError."""
        with write(self._conn(), self.path, what, QueueError, relaxed=relaxed, failed=self._failed) as db:
            yield db
        if self.fault is not None:
            log.warning("%s: message queue writable again (the outage was: %s)", self.path, self.fault)
            self.fault = None

    def _failed(self, exc: Exception) -> None:
        """A write failed: log the outage when it starts (not on every failed call) and keep why in ``fault``."""
        if self.fault is None:
            log.error("%s: message queue cannot write (%s); messages are kept by the caller until it can",
                      self.path, exc)
        self.fault = str(exc)

    def close(self) -> None:
        """Close the database (idempotent)."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

