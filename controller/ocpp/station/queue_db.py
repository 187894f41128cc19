"""The message queue's tables in the station's SQLite file, the checks that guard them, and their row formats.

Kept apart from the queue's behaviour (order, bounds, seqNo, references, attempts: controller.ocpp.station.queue)
so that the on-disk layout and the checks that guard it are read and changed in one place, as variable_db is for
the configuration store.

One SQLite file, possibly shared with other OCPP tables (ours are ``ocpp_queue*``, ``CREATE TABLE IF NOT EXISTS``),
opened, made and written as controller.ocpp.station.ocpp_db does for every store (WAL, ``synchronous=FULL``, a new
file linked into place, a 0-byte file refused, never taken as an empty queue). Refused too: a corrupt file, a schema
version this program does not read, and a table of ours whose columns are not the ones expected.
"""

from __future__ import annotations

import copy
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller.ocpp.station.ocpp_db import Layout

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


def _check_version(path: Path, db: sqlite3.Connection) -> None:
    """Refuse a queue whose schema version this program does not read."""
    version = db.execute("SELECT value FROM ocpp_queue_meta WHERE key = 'schema_version'").fetchone()[0]
    if version != str(SCHEMA_VERSION):
        raise QueueError(f"{path}: message queue schema version {version}, this program reads {SCHEMA_VERSION}")


LAYOUT = Layout(
    QueueError, _SCHEMA, {"ocpp_queue": _COLUMNS, "ocpp_queue_dead": (*_COLUMNS, "reason", "dead_at")},
    indexes=_INDEXES, check=_check_version, quick_check=True, name="message queue database", article="a",
    empty_as="an empty queue (a lost queue must not look like an empty one)",
)


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
