"""The message queue's SQLite file: its tables, opening or making it, refusing a file that is not ours, row formats.

Kept apart from the queue's behaviour (order, bounds, seqNo, references, attempts: controller.ocpp.station.queue)
so that the on-disk layout and the checks that guard it are read and changed in one place, as variable_db is for
the configuration store.

One SQLite file, possibly shared with other OCPP tables (ours are ``ocpp_queue*``, ``CREATE TABLE IF NOT EXISTS``).
WAL with ``synchronous=FULL``: a commit is durable against power loss once it returns, costs one fsync of the log
(DELETE mode syncs journal, database and directory: slower, and more wear on a Pi's SD card), and other connections
to the shared file keep reading while the queue writes. A missing file is built under a temporary name and
hard-linked into place (a crash leaves no half-made file; one made meanwhile by another part of the station is
used, never replaced); an existing 0-byte file is refused, never taken as an empty queue. So is a corrupt file, a
schema version this program does not read, and a table of ours whose columns are not the ones expected.
"""

from __future__ import annotations

import copy
import json
import os
import sqlite3
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1

JsonObject = dict[str, Any]
Reference = int | str

_COLUMNS = (
    "position", "message_id", "action", "payload", "transaction_ref", "seq_no", "reference_field",
    "offline", "droppable", "attempts", "last_error", "enqueued_at",
)
_NOW = "(strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))"
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS ocpp_queue_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO ocpp_queue_meta (key, value) VALUES ('schema_version', '{SCHEMA_VERSION}');
CREATE TABLE IF NOT EXISTS ocpp_queue (
    position INTEGER PRIMARY KEY AUTOINCREMENT, message_id TEXT NOT NULL UNIQUE, action TEXT NOT NULL,
    payload TEXT NOT NULL, transaction_ref TEXT, seq_no INTEGER, reference_field TEXT,
    offline INTEGER NOT NULL, droppable INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT,
    enqueued_at TEXT NOT NULL DEFAULT {_NOW}
);
CREATE TABLE IF NOT EXISTS ocpp_queue_transactions (
    transaction_ref TEXT PRIMARY KEY, next_seq_no INTEGER NOT NULL DEFAULT 0, reference TEXT
);
CREATE TABLE IF NOT EXISTS ocpp_queue_dead (
    {", ".join(_COLUMNS)}, reason TEXT NOT NULL, dead_at TEXT NOT NULL DEFAULT {_NOW}
);
"""
_INDEXES = """
CREATE INDEX IF NOT EXISTS ocpp_queue_droppable ON ocpp_queue (position) WHERE droppable = 1;
CREATE INDEX IF NOT EXISTS ocpp_queue_by_transaction ON ocpp_queue (transaction_ref);
"""
SELECT_MESSAGES = (
    "SELECT q.position, q.message_id, q.action, CAST(q.payload AS BLOB), q.transaction_ref, q.seq_no, "
    "q.reference_field, q.offline, q.droppable, q.attempts, q.last_error, q.enqueued_at, t.reference "
    "FROM ocpp_queue q LEFT JOIN ocpp_queue_transactions t ON t.transaction_ref = q.transaction_ref"
)
_MOVE_TO_DEAD = (
    f"INSERT INTO ocpp_queue_dead ({', '.join(_COLUMNS)}, reason) "
    f"SELECT {', '.join(_COLUMNS)}, ? FROM ocpp_queue WHERE position = ?"
)


class QueueError(RuntimeError):
    """The queue's database cannot be used or written; the message names the file and the cause."""


class UnresolvedReference(LookupError):
    """A message needs the CSMS's value for its transaction (1.6 transactionId) and it is not known yet."""


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    """One queued CALL as stored, with its transaction's resolved reference joined in at read time."""

    position: int
    message_id: str
    action: str
    payload: JsonObject
    transaction_ref: str | None = None
    seq_no: int | None = None
    reference_field: str | None = None
    reference_value: Reference | None = None
    offline: bool = False
    droppable: bool = False
    attempts: int = 0
    last_error: str | None = None
    enqueued_at: str = ""

    def payload_to_send(self) -> JsonObject:
        """A copy of the payload with the resolved reference in ``reference_field``: UnresolvedReference if none."""
        payload = copy.deepcopy(self.payload)
        if self.reference_field is not None:
            if self.reference_value is None:
                raise UnresolvedReference(
                    f"{self.action} {self.message_id}: transaction {self.transaction_ref!r} has no "
                    f"{self.reference_field} from the CSMS yet"
                )
            payload[self.reference_field] = self.reference_value
        return payload


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message given up on or unreadable, kept for diagnosis: raw stored values and why it is here."""

    position: object
    message_id: object
    action: object
    payload: object
    reason: str
    dead_at: str


def open_db(path: Path, busy_timeout_s: float) -> sqlite3.Connection:
    """Open (or make) the queue's database, checked and ready (see the module docstring); QueueError if unusable."""
    if path.is_dir():
        raise QueueError(f"{path}: is a directory, not a message queue database")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        _create(path)
    elif path.stat().st_size == 0:
        raise QueueError(
            f"{path}: is an empty file (0 bytes), not a message queue database; refusing to take it as an "
            "empty queue (a lost queue must not look like an empty one): move it away to start afresh"
        )
    try:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_s)
    except sqlite3.Error as exc:
        raise QueueError(f"{path}: cannot open the message queue database: {exc}") from exc
    try:
        _open(path, db)
    except (sqlite3.Error, QueueError) as exc:
        db.close()
        if isinstance(exc, QueueError):
            raise
        raise QueueError(f"{path}: not a usable message queue database: {exc}") from exc
    return db


def _open(path: Path, db: sqlite3.Connection) -> None:
    """Check integrity, set WAL + synchronous=FULL, add our tables if missing, refuse a layout we do not know."""
    check = db.execute("PRAGMA quick_check").fetchone()[0]
    if check != "ok":
        raise QueueError(f"{path}: database is corrupt ({check})")
    mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise QueueError(f"{path}: cannot switch to the WAL journal (got {mode})")
    db.execute("PRAGMA synchronous=FULL")
    try:
        db.executescript(f"BEGIN IMMEDIATE; {_SCHEMA} COMMIT;")
    except sqlite3.Error:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    version = db.execute("SELECT value FROM ocpp_queue_meta WHERE key = 'schema_version'").fetchone()[0]
    if version != str(SCHEMA_VERSION):
        raise QueueError(f"{path}: message queue schema version {version}, this program reads {SCHEMA_VERSION}")
    for table in ("ocpp_queue", "ocpp_queue_dead"):
        columns = tuple(r[1] for r in db.execute(f"PRAGMA table_info({table})"))
        expected = _COLUMNS if table == "ocpp_queue" else (*_COLUMNS, "reason", "dead_at")
        if columns != expected:
            raise QueueError(
                f"{path}: table {table} has columns ({', '.join(columns)}), this program expects "
                f"({', '.join(expected)}); refusing to use it"
            )
    db.executescript(_INDEXES)


def dump_payload(payload: JsonObject) -> str:
    """Compact JSON of a payload object; TypeError/ValueError (NaN, not a dict, not serializable) for a bad one."""
    if not isinstance(payload, dict):
        raise TypeError(f"a payload must be a JSON object (dict), not {type(payload).__name__}")
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def parse_row(row: tuple[Any, ...]) -> QueuedMessage:
    """A row of SELECT_MESSAGES as a QueuedMessage; ValueError/TypeError naming the first field that is wrong."""
    position, message_id, action, raw, ref, seq_no, field, offline, droppable, attempts, error, at, reference = row
    for name, value, optional in (("message_id", message_id, False), ("action", action, False),
                                  ("transaction_ref", ref, True), ("reference_field", field, True)):
        if not (isinstance(value, str) and value) and not (optional and value is None):
            raise ValueError(f"{name} is {value!r}, not a non-empty string")
    payload = json.loads(bytes(raw or b"").decode("utf-8"))
    if not isinstance(payload, dict):
        raise ValueError(f"payload is a JSON {type(payload).__name__}, not an object")
    if seq_no is not None and not (isinstance(seq_no, int) and seq_no >= 0):
        raise ValueError(f"seq_no is {seq_no!r}, not a non-negative integer")
    if offline not in (0, 1) or droppable not in (0, 1) or not (isinstance(attempts, int) and attempts >= 0):
        raise ValueError(f"offline {offline!r}, droppable {droppable!r} or attempts {attempts!r} out of range")
    value = None if reference is None else json.loads(reference)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | str)):
        raise ValueError(f"transaction {ref!r} has reference {reference!r}, not an int or a str")
    return QueuedMessage(position, message_id, action, payload, ref, seq_no, field, value, bool(offline),
                         bool(droppable), attempts, error if isinstance(error, str) else None, str(at))


def move_to_dead(db: sqlite3.Connection, position: int, reason: str) -> None:
    """Move one row, as stored, from ocpp_queue to ocpp_queue_dead with ``reason`` (inside the caller's transaction)."""
    db.execute(_MOVE_TO_DEAD, (reason, position))
    db.execute("DELETE FROM ocpp_queue WHERE position = ?", (position,))


def _create(path: Path) -> None:
    """Make a new queue database at ``path``: built under a unique temporary name, synced, hard-linked into place."""
    temp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.new")
    try:
        db = sqlite3.connect(temp, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(f"BEGIN IMMEDIATE; {_SCHEMA} {_INDEXES} COMMIT;")
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            db.close()  # the last connection checkpoints the WAL into the file
        _fsync(temp)
        try:
            os.link(temp, path)  # fails if the file appeared meanwhile: then that one is used, never replaced
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links
            if not path.exists():
                os.replace(temp, path)
        _fsync(path.parent)  # the new name is durable too
    except (OSError, sqlite3.Error) as exc:
        raise QueueError(f"{path}: cannot create the message queue database: {exc}") from exc
    finally:
        for leftover in (temp, temp.with_name(temp.name + "-wal"), temp.with_name(temp.name + "-shm")):
            leftover.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    """Flush a file (or a directory's entries) to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
