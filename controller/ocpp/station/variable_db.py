"""The configuration store's SQLite table ``ocpp_variables``: opening the (shared) file, reading and writing rows.

The file may hold other OCPP tables too (the message queue's ``ocpp_queue*``): ours is made with ``CREATE TABLE IF
NOT EXISTS`` and no other table is read or touched. WAL journal with ``synchronous=FULL``: a commit is durable
against power loss once it returns. A missing file is made under a temporary name and hard-linked into place (a
crash leaves no half-made file; one made meanwhile by another part of the station is used, never replaced); an
existing 0-byte file is refused, never taken as an empty database. Absent instances are stored as '' and absent EVSE
and connector ids as 0; the text columns compare case-insensitively, as OCPP's names do.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from pathlib import Path

from controller.ocpp.station.variable_types import VariableDef, VariableKey

COLUMNS = ("component", "component_instance", "evse_id", "connector_id", "variable", "variable_instance", "value")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS ocpp_variables (
    component TEXT NOT NULL COLLATE NOCASE, component_instance TEXT NOT NULL COLLATE NOCASE,
    evse_id INTEGER NOT NULL, connector_id INTEGER NOT NULL,
    variable TEXT NOT NULL COLLATE NOCASE, variable_instance TEXT NOT NULL COLLATE NOCASE,
    value TEXT NOT NULL,
    PRIMARY KEY (component, component_instance, evse_id, connector_id, variable, variable_instance)
)
"""
_INSERT = f"INSERT OR REPLACE INTO ocpp_variables ({', '.join(COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?, ?)"
_SELECT = f"SELECT {', '.join(COLUMNS[:-1])}, CAST(value AS BLOB) FROM ocpp_variables"


class VariableStoreError(RuntimeError):
    """The variable database cannot be opened or written; the message names the file and the cause."""


def open_db(path: Path, busy_timeout_s: float) -> sqlite3.Connection:
    """Open (or make) the database: WAL, synchronous=FULL, our table added if missing and its layout checked."""
    if path.is_dir():
        raise VariableStoreError(f"{path}: is a directory, not an OCPP database")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        _create(path)
    elif path.stat().st_size == 0:
        raise VariableStoreError(
            f"{path}: is an empty file (0 bytes), not an OCPP database; refusing to take it as a new one (a lost "
            "database must not look like an empty one): move it away to start afresh"
        )
    try:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_s)
    except sqlite3.Error as exc:
        raise VariableStoreError(f"{path}: cannot open the OCPP database: {exc}") from exc
    try:
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise VariableStoreError(f"{path}: cannot switch to the WAL journal (got {mode})")
        db.execute("PRAGMA synchronous=FULL")
        db.execute(_SCHEMA)
        columns = tuple(r[1] for r in db.execute("PRAGMA table_info(ocpp_variables)"))
        if columns != COLUMNS:
            raise VariableStoreError(
                f"{path}: table ocpp_variables has columns ({', '.join(columns)}), this program expects "
                f"({', '.join(COLUMNS)}); refusing to use it"
            )
    except (sqlite3.Error, VariableStoreError) as exc:
        db.close()
        if isinstance(exc, VariableStoreError):
            raise
        raise VariableStoreError(f"{path}: not a usable OCPP database: {exc}") from exc
    return db


def write_row(db: sqlite3.Connection, definition: VariableDef, value: str) -> None:
    """Commit ``definition``'s value in one durable transaction; sqlite3.Error (nothing written) if refused."""
    row = (
        definition.component, definition.component_instance or "", definition.evse_id or 0,
        definition.connector_id or 0, definition.variable, definition.variable_instance or "", value,
    )
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute(_INSERT, row)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def read_rows(db: sqlite3.Connection) -> list[tuple[VariableKey, str | None]]:
    """Every stored row with a readable key, as (key, value); value None when it is not UTF-8 text."""
    rows: list[tuple[VariableKey, str | None]] = []
    for component, c_instance, evse_id, connector_id, variable, v_instance, raw in db.execute(_SELECT):
        if not all(isinstance(t, str) for t in (component, c_instance, variable, v_instance)) or not all(
            isinstance(i, int) for i in (evse_id, connector_id)
        ):
            continue  # a key this program never writes: nothing of ours, left alone
        key = VariableKey(component, variable, c_instance or None, evse_id or None, connector_id or None,
                          v_instance or None)
        try:
            text = bytes(raw).decode("utf-8") if isinstance(raw, bytes) else None
        except UnicodeDecodeError:
            text = None
        rows.append((key, text))
    return rows


def _create(path: Path) -> None:
    """Make a new database at ``path``: built under a unique temporary name, synced, hard-linked into place."""
    temp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.new")
    try:
        db = sqlite3.connect(temp, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(_SCHEMA)
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
        _fsync(path.parent)
    except (OSError, sqlite3.Error) as exc:
        raise VariableStoreError(f"{path}: cannot create the OCPP database: {exc}") from exc
    finally:
        for leftover in (temp, temp.with_name(temp.name + "-wal"), temp.with_name(temp.name + "-shm")):
            leftover.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    """Flush a file or a directory (a rename or link in it) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
