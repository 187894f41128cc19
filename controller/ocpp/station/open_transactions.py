"""The transactions open right now, kept on disk so a restart can end them (no session survives a restart).

A table of ``ocpp.db`` (shared with the other OCPP tables: only its own table is touched), one row per EVSE
with an open transaction, written durably (WAL, synchronous=FULL) whenever the transaction changes. After a
SIGKILL or a power cut the station finds the rows, ends each transaction (stoppedReason PowerLoss) through the
durable queue, and removes them. A damaged row is reported and skipped, never a crash.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from pathlib import Path

from controller.ocpp.station.transactions import Transaction

log = logging.getLogger("controller.ocpp")


class OpenTransactionError(RuntimeError):
    """The open-transaction table cannot be read or written; names the file and the cause."""


class OpenTransactionStore:
    """``ocpp_open_transactions``: the open transaction of each EVSE, as JSON."""

    def __init__(self, path: str | Path) -> None:
        """Open (or create) the table in the SQLite file at ``path``."""
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=2.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("CREATE TABLE IF NOT EXISTS ocpp_open_transactions "
                             "(evse_id INTEGER PRIMARY KEY, data TEXT NOT NULL)")
        except sqlite3.Error as exc:
            raise OpenTransactionError(f"{self.path}: cannot open the open-transaction table: {exc}") from None

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

    def save(self, tx: Transaction) -> None:
        """Keep ``tx`` as its EVSE's open transaction (durable when this returns)."""
        self._execute("INSERT OR REPLACE INTO ocpp_open_transactions (evse_id, data) VALUES (?, ?)",
                      (tx.evse_id, json.dumps(tx.to_dict())))

    def remove(self, evse_id: int) -> None:
        """The EVSE's transaction ended."""
        self._execute("DELETE FROM ocpp_open_transactions WHERE evse_id = ?", (evse_id,))

    def _execute(self, sql: str, args: tuple[object, ...]) -> None:
        with self._lock:
            try:
                self._db.execute(sql, args)
            except sqlite3.Error as exc:
                raise OpenTransactionError(f"{self.path}: cannot write open transactions: {exc}") from None

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()
