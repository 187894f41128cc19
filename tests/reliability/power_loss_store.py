"""Reading the daemon's reservations.db directly, as a fresh process would after a power cut.

The files are copied first (the .db and its -wal, not the -shm index), so SQLite must recover the
copy from the log alone, and the daemon's next start still sees exactly what the kill left behind.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

APPLICATION_ID = 0x45564352  # "EVCR", written by controller/core/store.py; repeated here on purpose (a test oracle)
SCHEMA_VERSION = 1


@dataclass
class StoreSnapshot:
    """What a direct look at the database shows."""

    exists: bool
    tables: list[str] = field(default_factory=list)
    integrity: str = ""
    application_id: int = 0
    user_version: int = 0
    journal_mode: str = ""
    quarantined: list[tuple[Any, ...]] = field(default_factory=list)
    rows: list[tuple[int, int, Any]] = field(default_factory=list)  # (reservation_id, seq, payload) by seq

    @property
    def has_schema(self) -> bool:
        """Were the tables created (the first start may be killed before its schema transaction commits)?"""
        return {"reservations", "quarantine"} <= set(self.tables)

    def reservations(self) -> list[tuple[int, Any]]:
        """(reservation_id, payload) in arrival order, the shape the ledger compares."""
        return [(rid, payload) for rid, _seq, payload in self.rows]

    def problems(self) -> list[str]:
        """Everything that says the file is not a clean, complete reservation store (empty: all good)."""
        if not self.exists or not self.tables:
            return []  # nothing committed yet: only allowed while nothing was acknowledged (checked by the caller)
        found: list[str] = []
        if not self.has_schema:
            found.append(f"partial schema: tables {self.tables}")
        if self.integrity != "ok":
            found.append(f"PRAGMA integrity_check: {self.integrity}")
        if self.application_id != APPLICATION_ID:
            found.append(f"application_id {self.application_id:#x}, expected {APPLICATION_ID:#x}")
        if self.user_version != SCHEMA_VERSION:
            found.append(f"user_version {self.user_version}, expected {SCHEMA_VERSION}")
        if self.journal_mode.lower() != "wal":
            found.append(f"journal_mode {self.journal_mode}, expected wal")
        if self.quarantined:
            found.append(f"quarantine table not empty: {self.quarantined}")
        seqs = [seq for _rid, seq, _payload in self.rows]
        if len(set(seqs)) != len(seqs):
            found.append(f"duplicate arrival seq numbers: {seqs}")
        for rid, _seq, payload in self.rows:
            if not isinstance(payload, dict) or payload.get("reservation_id") != rid:
                found.append(f"row {rid}: payload does not describe reservation {rid}: {payload!r}")
        return found


def inspect_store(db: Path, scratch: Path) -> StoreSnapshot:
    """Copy ``db`` (+ its WAL) into ``scratch`` (emptied first), open the copy with sqlite3 and read it all."""
    if scratch.exists():
        shutil.rmtree(scratch)
    scratch.mkdir(parents=True)
    if not db.exists():
        return StoreSnapshot(exists=False)
    copy = scratch / db.name
    shutil.copyfile(db, copy)
    wal = db.with_name(db.name + "-wal")
    if wal.exists():
        shutil.copyfile(wal, scratch / wal.name)
    conn = sqlite3.connect(copy, isolation_level=None)
    try:
        snap = StoreSnapshot(exists=True)
        snap.tables = sorted(r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'"))
        snap.integrity = "; ".join(str(r[0]) for r in conn.execute("PRAGMA integrity_check"))
        snap.application_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
        snap.user_version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        snap.journal_mode = str(conn.execute("PRAGMA journal_mode").fetchone()[0])
        if "quarantine" in snap.tables:
            snap.quarantined = [tuple(r) for r in conn.execute("SELECT * FROM quarantine")]
        if "reservations" in snap.tables:
            for rid, seq, payload in conn.execute("SELECT reservation_id, seq, payload FROM reservations ORDER BY seq"):
                try:
                    parsed: Any = json.loads(payload)
                except (TypeError, ValueError):
                    parsed = payload
                snap.rows.append((int(rid), int(seq), parsed))
        return snap
    finally:
        conn.close()
