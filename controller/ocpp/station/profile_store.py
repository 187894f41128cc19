"""The installed charging profiles, kept in ``ocpp.db`` so they survive a restart (OCPP 2.0.1 K01, 1.6 3.13).

A table of the station's shared SQLite file (controller.ocpp.station.ocpp_db: opened and written as every store
there is; only its own table is touched), one row per profile id with the version-neutral profile as JSON
(controller.ocpp.station.charging_profiles). A profile is written (one durable commit) before the CSMS hears
Accepted; a damaged row is logged and skipped, never a crash.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path

from controller.ocpp.station.charging_profiles import ChargingProfile
from controller.ocpp.station.ocpp_db import Layout, open_tables, write

log = logging.getLogger("controller.ocpp")


class ProfileStoreError(RuntimeError):
    """The charging-profile table cannot be read or written; names the file and the cause."""


_LAYOUT = Layout(
    ProfileStoreError,
    "CREATE TABLE IF NOT EXISTS ocpp_charging_profiles (profile_id INTEGER PRIMARY KEY, data TEXT NOT NULL);",
    {"ocpp_charging_profiles": ("profile_id", "data")},
)


class ProfileStore:
    """``ocpp_charging_profiles``: every installed charging profile, by id."""

    def __init__(self, path: str | Path) -> None:
        """Open (or create) the table in the SQLite file at ``path``."""
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = open_tables(self.path, 2.0, _LAYOUT)

    def load(self) -> list[ChargingProfile]:
        """Every readable profile; damaged rows are logged and skipped (kept on disk)."""
        with self._lock:
            try:
                rows = self._db.execute("SELECT profile_id, data FROM ocpp_charging_profiles ORDER BY profile_id"
                                        ).fetchall()
            except sqlite3.Error as exc:
                raise ProfileStoreError(f"{self.path}: cannot read the charging profiles: {exc}") from None
        found = []
        for profile_id, data in rows:
            try:
                found.append(ChargingProfile.from_dict(json.loads(data)))
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                log.error("%s: charging profile %s is damaged and left alone: %s", self.path, profile_id, exc)
        return found

    def replace(self, removed: Iterable[int], added: Iterable[ChargingProfile]) -> None:
        """Remove the profiles ``removed`` and write ``added`` in one durable commit; ProfileStoreError if not."""
        with self._lock, write(self._db, self.path, "store the charging profiles", ProfileStoreError) as db:
            for profile_id in removed:
                db.execute("DELETE FROM ocpp_charging_profiles WHERE profile_id = ?", (profile_id,))
            for profile in added:
                db.execute("INSERT OR REPLACE INTO ocpp_charging_profiles (profile_id, data) VALUES (?, ?)",
                           (profile.profile_id, json.dumps(profile.to_dict())))

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()
