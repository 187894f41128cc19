"""Durable reservations on SQLite: every accepted change is on disk before the call returns.

WAL with ``synchronous=FULL`` survives power loss after commit. A file that is not ours (or not a
database at all) is refused at start with a clear error, never treated as an empty store; a row
that no longer parses is moved to a quarantine table, not dropped.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from controller.types import FormatError, Reservation

log = logging.getLogger(__name__)

APPLICATION_ID = 0x45564352  # "EVCR"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE reservations (
    reservation_id INTEGER PRIMARY KEY,
    seq INTEGER NOT NULL,
    payload TEXT NOT NULL
);
CREATE TABLE quarantine (
    reservation_id INTEGER,
    seq INTEGER,
    payload TEXT,
    problem TEXT NOT NULL,
    quarantined_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
"""


class StoreError(RuntimeError):
    """The reservation database cannot be used; the message names the file and the problem."""


@dataclass(frozen=True, slots=True)
class StoredReservation:
    """A reservation as stored, with its arrival sequence number (first-come first-kept)."""

    seq: int
    reservation: Reservation


class ReservationStore:
    """Reservations in one SQLite file; safe against power loss at any instant."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open reservation database: {exc}") from exc
        try:
            self._open()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise StoreError(f"{self.path}: not a usable reservation database: {exc}") from exc
        except StoreError:
            self._db.close()
            raise

    def _open(self) -> None:
        db = self._db
        app_id = db.execute("PRAGMA application_id").fetchone()[0]
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        if app_id == 0 and not tables:
            db.execute("PRAGMA journal_mode=WAL")
            # One script, one transaction: a crash leaves either nothing or a complete schema.
            db.executescript(
                f"BEGIN IMMEDIATE; {_SCHEMA} PRAGMA application_id={APPLICATION_ID}; "
                f"PRAGMA user_version={SCHEMA_VERSION}; COMMIT;"
            )
        elif app_id != APPLICATION_ID:
            raise StoreError(
                f"{self.path}: is a SQLite database of another application "
                f"(application_id={app_id}, tables: {', '.join(sorted(tables)) or 'none'}); refusing to use it"
            )
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version != SCHEMA_VERSION:
            raise StoreError(f"{self.path}: schema version {version}, this program reads version {SCHEMA_VERSION}")
        check = db.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise StoreError(f"{self.path}: database is corrupt ({check})")
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"{self.path}: cannot switch to WAL journal (got {mode})")
        db.execute("PRAGMA synchronous=FULL")

    def load(self) -> tuple[list[StoredReservation], list[str]]:
        """All stored reservations in arrival order, and a problem line per row quarantined."""
        rows = self._db.execute("SELECT reservation_id, seq, payload FROM reservations ORDER BY seq").fetchall()
        good: list[StoredReservation] = []
        problems: list[str] = []
        for rid, seq, payload in rows:
            try:
                reservation = Reservation.from_dict(json.loads(payload))
                if reservation.reservation_id != rid:
                    raise FormatError("reservation_id", f"payload says {reservation.reservation_id}, row says {rid}")
                good.append(StoredReservation(int(seq), reservation))
            except (ValueError, TypeError) as exc:
                problem = f"{self.path}: stored reservation {rid} is unreadable and was quarantined: {exc}"
                self._quarantine(rid, seq, payload, str(exc))
                problems.append(problem)
                log.error("%s", problem)
        return good, problems

    def _quarantine(self, rid: object, seq: object, payload: object, problem: str) -> None:
        with self._transaction():
            self._db.execute(
                "INSERT INTO quarantine (reservation_id, seq, payload, problem) VALUES (?, ?, ?, ?)",
                (rid, seq, payload, problem),
            )
            self._db.execute("DELETE FROM reservations WHERE reservation_id = ?", (rid,))

    def quarantined(self) -> list[tuple[object, str]]:
        """(payload, problem) of every quarantined row, oldest first."""
        return [(r[0], r[1]) for r in self._db.execute("SELECT payload, problem FROM quarantine ORDER BY rowid")]

    def put(self, seq: int, reservation: Reservation) -> None:
        """Store (or replace) one reservation durably."""
        payload = json.dumps(reservation.to_dict(), sort_keys=True)
        with self._transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO reservations (reservation_id, seq, payload) VALUES (?, ?, ?)",
                (reservation.reservation_id, seq, payload),
            )

    def delete(self, reservation_id: int) -> None:
        """Remove one reservation durably (no error if absent)."""
        with self._transaction():
            self._db.execute("DELETE FROM reservations WHERE reservation_id = ?", (reservation_id,))

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db, self.path)

    def close(self) -> None:
        """Close the database (idempotent)."""
        self._db.close()


class _Transaction:
    """BEGIN IMMEDIATE .. COMMIT, rolled back on error and re-raised as StoreError."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self._db = db
        self._path = path

    def __enter__(self) -> None:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreError(f"{self._path}: cannot write: {exc}") from exc

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if exc is None:
            try:
                self._db.execute("COMMIT")
                return
            except sqlite3.Error as commit_exc:
                self._db.execute("ROLLBACK")
                raise StoreError(f"{self._path}: cannot commit: {commit_exc}") from commit_exc
        self._db.execute("ROLLBACK")
        if isinstance(exc, sqlite3.Error):
            raise StoreError(f"{self._path}: write failed: {exc}") from exc
