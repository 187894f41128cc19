"""The CSMS's ChangeAvailability for each EVSE: applied at once or scheduled while the EVSE is in use, and persisted.

Both protocol layers answer ChangeAvailability through one ``AvailabilityKeeper``. Operative applies at once;
Inoperative applies at once to an idle EVSE and is Scheduled for one in use (``busy``: a session holds the car, or,
in 1.6, a transaction is open), taking effect when the EVSE is next seen idle. The wanted availability is written to
``ocpp.db`` (table ``ocpp_availability``) before the answer, off the event loop, because it must survive a reboot:
OCPP 1.6 section 4.9 counts Unavailable among the persistent states, and 2.0.1 G03/G04 keep the operational status
across a reboot. At start ``restore`` disables every EVSE the CSMS left Inoperative. A write that fails is answered
Rejected and changes nothing; a damaged row is logged and skipped.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from controller.ocpp.station.ocpp_db import Layout, open_tables, write
from controller.ocpp.station.status import HOLDING_PHASES
from controller.port.charger import Charger

log = logging.getLogger("controller.ocpp")

ACCEPTED, SCHEDULED, REJECTED = "Accepted", "Scheduled", "Rejected"


class AvailabilityStoreError(RuntimeError):
    """The availability table cannot be read or written; names the file and the cause."""


_LAYOUT = Layout(
    AvailabilityStoreError,
    "CREATE TABLE IF NOT EXISTS ocpp_availability (evse_id INTEGER PRIMARY KEY, operative INTEGER NOT NULL);",
    {"ocpp_availability": ("evse_id", "operative")},
)


class AvailabilityStore:
    """``ocpp_availability``: the availability the CSMS last asked for, per EVSE (no row: Operative)."""

    def __init__(self, path: str | Path) -> None:
        """Open (or create) the table in the SQLite file at ``path``."""
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = open_tables(self.path, 2.0, _LAYOUT)

    def inoperative(self) -> list[int]:
        """The EVSEs the CSMS left Inoperative; a damaged row is logged and skipped."""
        with self._lock:
            try:
                rows = self._db.execute("SELECT evse_id, operative FROM ocpp_availability ORDER BY evse_id").fetchall()
            except sqlite3.Error as exc:
                raise AvailabilityStoreError(f"{self.path}: cannot read the availability: {exc}") from None
        out = []
        for evse_id, operative in rows:
            if not isinstance(evse_id, int) or operative not in (0, 1):
                log.error("%s: availability row %r is damaged and left alone", self.path, (evse_id, operative))
            elif operative == 0:
                out.append(evse_id)
        return out

    def save(self, evse_ids: Iterable[int], operative: bool) -> None:
        """Durably record the wanted availability of ``evse_ids`` (one commit); AvailabilityStoreError if not."""
        with self._lock, write(self._db, self.path, "store the availability", AvailabilityStoreError) as db:
            for evse_id in evse_ids:
                if operative:
                    db.execute("DELETE FROM ocpp_availability WHERE evse_id = ?", (evse_id,))
                else:
                    db.execute("INSERT OR REPLACE INTO ocpp_availability VALUES (?, 0)", (evse_id,))

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()


class AvailabilityKeeper:
    """ChangeAvailability for both protocol layers: apply, schedule, persist, and restore at start."""

    def __init__(self, charger: Charger, db_path: Path, busy: Callable[[int, dict[str, Any]], bool],
                 spawn: Callable[[Any], None]) -> None:
        """Act on ``charger``; ``busy(evse_id, status_entry)`` says an Inoperative must wait; ``spawn`` runs a
        coroutine after the current answer."""
        self._charger = charger
        self._store = AvailabilityStore(db_path)
        self._busy = busy
        self._spawn = spawn
        self._scheduled: dict[int, bool] = {}

    async def restore(self) -> None:
        """Disable every known EVSE the CSMS left Inoperative before the last stop (an unreadable table: none)."""
        try:
            stored = await asyncio.to_thread(self._store.inoperative)
        except AvailabilityStoreError as exc:
            log.error("%s", exc)
            return
        known = set(self._charger.evse_ids())
        for evse_id in stored:
            if evse_id in known:
                log.info("EVSE %d stays Inoperative, as the CSMS left it", evse_id)
                await self._charger.set_enabled(evse_id, False)

    async def change(self, targets: list[int], operative: bool) -> str:
        """Apply (or schedule) the availability of ``targets``, durably first: Accepted, Scheduled or Rejected."""
        try:
            await asyncio.to_thread(self._store.save, targets, operative)
        except AvailabilityStoreError as exc:
            log.error("ChangeAvailability not applied: %s", exc)
            return REJECTED
        entries = {int(e["id"]): e for e in self._charger.status()["evses"]}
        status = ACCEPTED
        for evse_id in targets:
            if not operative and self._busy(evse_id, entries[evse_id]):
                self._scheduled[evse_id] = operative
                status = SCHEDULED
                continue
            self._scheduled.pop(evse_id, None)
            await self._charger.set_enabled(evse_id, operative)
        return status

    def on_evse_state(self, event: dict[str, Any]) -> None:
        """A scheduled Inoperative takes effect once the EVSE (this status entry) is no longer in use."""
        evse_id = event.get("id")
        if not isinstance(evse_id, int) or evse_id not in self._scheduled:
            return
        if event.get("phase") in HOLDING_PHASES or self._busy(evse_id, event):
            return
        self._spawn(self._charger.set_enabled(evse_id, self._scheduled.pop(evse_id)))

    def close(self) -> None:
        """Close the table's connection."""
        self._store.close()
