"""The transactions open right now, kept on disk so a restart can end them (no session survives a restart).

A table of ``ocpp.db`` (shared with the other OCPP tables: only its own table is touched; the file is opened and
written as controller.ocpp.station.ocpp_db does for every store), one row per EVSE with an open transaction,
written in the same SQLite transaction as the queued event that changes it (``save_in``/``remove_in`` on the
queue's connection), so a kill never leaves the two disagreeing. After a SIGKILL or a power cut the station finds
the rows, ends each transaction (stoppedReason PowerLoss) through the durable queue, and removes them. A damaged
row is reported and skipped, never a crash.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from pathlib import Path

from controller.ocpp.station.ocpp_db import Layout, open_tables, write
from controller.ocpp.station.transactions import Transaction

log = logging.getLogger("controller.ocpp")


class OpenTransactionError(RuntimeError):
    """The open-transaction table cannot be read or written; names the file and the cause."""


_LAYOUT = Layout(
    OpenTransactionError,
    "CREATE TABLE IF NOT EXISTS ocpp_open_transactions (evse_id INTEGER PRIMARY KEY, data TEXT NOT NULL);",
    {"ocpp_open_transactions": ("evse_id", "data")},
)


class OpenTransactionStore:
    """``ocpp_open_transactions``: the open transaction of each EVSE, as JSON."""

    def __init__(self, path: str | Path) -> None:
        """Open (or create) the table in the SQLite file at ``path``."""
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = open_tables(self.path, 2.0, _LAYOUT)

    def load(self) -> list[Transaction]:
        """Every readable open transaction; damaged rows are logged and skipped (kept on disk)."""
        with self._lock:
            try:
                rows = self._db.execute("SELECT evse_id, data FROM ocpp_open_transactions ORDER BY evse_id").fetchall()
            except sqlite3.Error as exc:
                raise OpenTransactionError(f"{self.path}: cannot read open transactions: {exc}") from None
        out = []
        for evse_id, data in rows:
            try:
                out.append(Transaction.from_dict(json.loads(data)))
            except (ValueError, TypeError, KeyError) as exc:
                log.error("%s: open transaction of EVSE %s is damaged and left alone: %s", self.path, evse_id, exc)
        return out

    @staticmethod
    def save_in(db: sqlite3.Connection, tx: Transaction) -> None:
        """Keep ``tx`` as its EVSE's open transaction, inside the caller's SQLite transaction on the same file."""
        db.execute("INSERT OR REPLACE INTO ocpp_open_transactions (evse_id, data) VALUES (?, ?)",
                   (tx.evse_id, json.dumps(tx.to_dict())))

    @staticmethod
    def remove_in(db: sqlite3.Connection, evse_id: int) -> None:
        """The EVSE's transaction ended, inside the caller's SQLite transaction on the same file."""
        db.execute("DELETE FROM ocpp_open_transactions WHERE evse_id = ?", (evse_id,))

    def save(self, tx: Transaction) -> None:
        """Keep ``tx`` as its EVSE's open transaction (durable when this returns)."""
        self._execute("INSERT OR REPLACE INTO ocpp_open_transactions (evse_id, data) VALUES (?, ?)",
                      (tx.evse_id, json.dumps(tx.to_dict())))

    def remove(self, evse_id: int) -> None:
        """The EVSE's transaction ended."""
        self._execute("DELETE FROM ocpp_open_transactions WHERE evse_id = ?", (evse_id,))

    def _execute(self, sql: str, args: tuple[object, ...]) -> None:
        """Run one write in its own durable commit; OpenTransactionError naming the file if it fails."""
        with self._lock, write(self._db, self.path, "write open transactions", OpenTransactionError) as db:
            db.execute(sql, args)

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()
