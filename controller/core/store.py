"""Durable reservations on SQLite: every accepted change is on disk before the call returns.

WAL with ``synchronous=FULL`` survives power loss after commit. The store is used from one thread at a
time: the loop's at start, then the runtime's writer thread (controller.runtime.durable), which commits
the writes that arrived together in one transaction (``write_batch``). A file that is not ours (not a
database at all, another application's, or an empty file) is refused at start with a clear error,
never treated as an empty store; a new store is made under a temporary name and renamed into place,
so a crash while creating it leaves no half-made file behind. A row that no longer parses (bad JSON,
bad UTF-8, a field the rules refuse) is moved to a quarantine table, not dropped.

A write that fails (disk full, I/O error, read-only file system) raises StoreError and changes
nothing; ``fault`` then says why until a write succeeds again. The outage is logged once as an
ERROR when it starts and once as a WARNING when it ends, not on every failed call.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from controller.core.parsing import FormatError
from controller.core.types import Reservation

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
        self.fault: str | None = None  # why the last write failed; None while writes succeed
        if not self.path.exists():
            _create(self.path)
        elif self.path.is_file() and self.path.stat().st_size == 0:
            raise StoreError(
                f"{self.path}: is an empty file (0 bytes), not a reservation database; refusing to take it "
                "as a new store (a lost database must not look like an empty one): move it away to start afresh"
            )
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
        if app_id != APPLICATION_ID:
            tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
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
        """All stored reservations in arrival order, and a problem line per row quarantined.

        Payloads are read as bytes and decoded here, so a row with invalid UTF-8 is quarantined like
        any other unreadable row instead of failing the whole load. The quarantine is one transaction;
        if it cannot be written (disk full) the rows stay where they are and are skipped this time.
        """
        rows = self._db.execute(
            "SELECT reservation_id, seq, CAST(payload AS BLOB) FROM reservations ORDER BY seq"
        ).fetchall()
        good: list[StoredReservation] = []
        problems: list[str] = []
        bad: list[tuple[object, object, object, str]] = []
        for rid, seq, raw in rows:
            try:
                if not isinstance(rid, int) or isinstance(seq, bool) or not isinstance(seq, int):
                    raise FormatError("row", f"reservation_id {rid!r} and seq {seq!r} must be integers")
                text = bytes(raw or b"").decode("utf-8")
                reservation = Reservation.from_dict(json.loads(text))
                if reservation.reservation_id != rid:
                    raise FormatError("reservation_id", f"payload says {reservation.reservation_id}, row says {rid}")
                good.append(StoredReservation(seq, reservation))
            except (ValueError, TypeError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
                problem = f"{self.path}: stored reservation {rid} is unreadable and was quarantined: {exc}"
                payload: object = raw
                with contextlib.suppress(UnicodeDecodeError, TypeError):
                    payload = bytes(raw).decode("utf-8")
                bad.append((rid, seq, payload, str(exc)))
                problems.append(problem)
                log.error("%s", problem)
        if bad:
            try:
                with self._transaction():
                    for rid, seq, payload, problem in bad:
                        self._db.execute(
                            "INSERT INTO quarantine (reservation_id, seq, payload, problem) VALUES (?, ?, ?, ?)",
                            (rid, seq, payload, problem),
                        )
                        self._db.execute("DELETE FROM reservations WHERE reservation_id = ?", (rid,))
            except StoreError as exc:
                problems.append(f"{self.path}: could not quarantine {len(bad)} unreadable row(s), left in place: {exc}")
        return good, problems

    def quarantined(self) -> list[tuple[object, str]]:
        """(payload, problem) of every quarantined row, oldest first."""
        return [(r[0], r[1]) for r in self._db.execute("SELECT payload, problem FROM quarantine ORDER BY rowid")]

    def write(self, puts: Sequence[tuple[int, Reservation]] = (), deletes: Iterable[int] = ()) -> None:
        """Store (or replace) ``puts`` as (seq, reservation) and remove ``deletes``, in ONE durable transaction.

        Deletes run first, so an id both deleted and put ends up stored. Raises StoreError and changes
        nothing when the transaction cannot be committed.
        """
        self.write_batch([(puts, deletes)])

    def write_batch(self, writes: Sequence[tuple[Sequence[tuple[int, Reservation]], Iterable[int]]]) -> None:
        """Several (puts, deletes) writes applied in order in ONE durable transaction: group commit, one fsync.

        Each write's deletes run before its puts, as in ``write``. StoreError: none of them is stored.
        """
        steps = [
            (list(deletes), [(r.reservation_id, seq, json.dumps(r.to_dict(), sort_keys=True)) for seq, r in puts])
            for puts, deletes in writes
        ]
        if not any(deleted or stored for deleted, stored in steps):
            return
        with self._transaction():
            for deleted, stored in steps:
                self._db.executemany("DELETE FROM reservations WHERE reservation_id = ?", [(rid,) for rid in deleted])
                self._db.executemany(
                    "INSERT OR REPLACE INTO reservations (reservation_id, seq, payload) VALUES (?, ?, ?)", stored
                )

    def probe(self) -> None:
        """A real write that changes nothing (the schema version rewritten): StoreError if the disk refuses it."""
        with self._transaction():
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def _transaction(self) -> _Transaction:
        return _Transaction(self)

    def _write_failed(self, why: str) -> StoreError:
        """Note a failed write (one ERROR per outage) and make its exception."""
        if self.fault is None:
            log.error("%s: reservation store cannot write (%s); changes are refused until it can", self.path, why)
        self.fault = why
        return StoreError(f"{self.path}: cannot write: {why}")

    def _write_succeeded(self) -> None:
        if self.fault is not None:
            log.warning("%s: reservation store writable again (the outage was: %s)", self.path, self.fault)
        self.fault = None

    def close(self) -> None:
        """Close the database (idempotent)."""
        self._db.close()


class _Transaction:
    """BEGIN IMMEDIATE .. COMMIT, rolled back on error and re-raised as StoreError."""

    def __init__(self, store: ReservationStore) -> None:
        self._store = store
        self._db = store._db

    def __enter__(self) -> None:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise self._store._write_failed(str(exc)) from exc

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if exc is None:
            try:
                self._db.execute("COMMIT")
            except sqlite3.Error as commit_exc:
                self._rollback()
                raise self._store._write_failed(str(commit_exc)) from commit_exc
            self._store._write_succeeded()
            return
        self._rollback()
        if isinstance(exc, sqlite3.Error):
            raise self._store._write_failed(str(exc)) from exc

    def _rollback(self) -> None:
        # SQLite may already have rolled back by itself (e.g. SQLITE_FULL); that is not a second error
        if self._db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")


def _create(path: Path) -> None:
    """Make a new, empty store at ``path`` atomically: built under a temporary name, synced, renamed."""
    temp = path.with_name(path.name + ".new")
    for leftover in (temp, temp.with_name(temp.name + "-wal"), temp.with_name(temp.name + "-shm")):
        leftover.unlink(missing_ok=True)
    try:
        db = sqlite3.connect(temp, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(
                f"BEGIN IMMEDIATE; {_SCHEMA} PRAGMA application_id={APPLICATION_ID}; "
                f"PRAGMA user_version={SCHEMA_VERSION}; COMMIT;"
            )
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            db.close()  # the last connection checkpoints the WAL into the file
        fd = os.open(temp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
        _fsync_dir(path.parent)
    except (OSError, sqlite3.Error) as exc:
        temp.unlink(missing_ok=True)
        raise StoreError(f"{path}: cannot create reservation database: {exc}") from exc


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
