"""The SQLite tables of OCPP authorization: the authorization cache and the local authorization list, with memory.

Tables ``ocpp_auth_cache`` (one row per cached token), ``ocpp_local_list`` (one row per listed token) and
``ocpp_local_list_version`` (one row: the list's version) in the station's shared OCPP file (``ocpp.db``), made with
``CREATE TABLE IF NOT EXISTS``; no other table is touched. The file is opened, made and written as
controller.ocpp.station.ocpp_db does for every store: WAL journal with ``synchronous=FULL``, so a commit is durable
against power loss once it returns (C10.FR.02: the cache survives a reboot; so does the list); a new file is linked
into place whole, an existing 0-byte file is refused, never taken as an empty database.

Every row is loaded at open and kept in memory; reads never touch the disk. A write is one transaction, and memory
changes only after it committed: when it fails (sqlite3.Error, OSError) AuthStoreError names the file and nothing
changed, on disk or in memory. A stored row that cannot be read (a wrong type, an unreadable time, a key that is
there twice once folded) is skipped with a WARNING naming the table and rowid, never the token; it stays on disk
until a write replaces or clears it. Keys are ``auth_types.token_key`` (ASCII upper case); times are RFC 3339 UTC.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from controller.core.parsing import format_rfc3339, parse_rfc3339
from controller.ocpp.station.auth_types import IdTokenInfo, token_key
from controller.ocpp.station.ocpp_db import Layout, open_tables, write

log = logging.getLogger(__name__)

_INFO = ("status", "group_id_token", "cache_expiry", "token_expiry")
CACHE_COLUMNS = ("id_token", *_INFO, "updated_at", "last_used")
LIST_COLUMNS = ("id_token", "token_type", *_INFO)
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS ocpp_auth_cache ({CACHE_COLUMNS[0]} TEXT PRIMARY KEY, status TEXT NOT NULL,
    group_id_token TEXT, cache_expiry TEXT, token_expiry TEXT, updated_at TEXT NOT NULL, last_used TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ocpp_local_list ({LIST_COLUMNS[0]} TEXT PRIMARY KEY, token_type TEXT, status TEXT NOT NULL,
    group_id_token TEXT, cache_expiry TEXT, token_expiry TEXT);
CREATE TABLE IF NOT EXISTS ocpp_local_list_version (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL);
"""
_TABLES = {
    "ocpp_auth_cache": CACHE_COLUMNS, "ocpp_local_list": LIST_COLUMNS, "ocpp_local_list_version": ("id", "version"),
}


class AuthStoreError(RuntimeError):
    """The authorization database cannot be opened or written; the message names the file and the cause."""


# text is handed over as bytes and decoded per row: a non-UTF-8 value skips its row, not the whole load
_LAYOUT = Layout(AuthStoreError, _SCHEMA, _TABLES, text_as_bytes=True)


@dataclass(frozen=True, slots=True)
class CachedEntry:
    """One authorization cache entry: the CSMS's info, when it was last updated and last used (station time)."""

    info: IdTokenInfo
    updated_at: datetime
    last_used: datetime


@dataclass(frozen=True, slots=True)
class ListedEntry:
    """One local authorization list entry: the info and the token's type as the CSMS gave it."""

    info: IdTokenInfo
    token_type: str | None = None


class AuthDatabase:
    """The cache and the local list of one station: SQLite on disk, a mirror in memory (module docstring)."""

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 2.0) -> None:
        """Open (or make) the tables in ``path`` and load every readable row; AuthStoreError if it cannot."""
        self.path = Path(path)
        self._lock = threading.RLock()
        self._cache: dict[str, CachedEntry] = {}
        self._list: dict[str, ListedEntry] = {}
        self._version = 0
        self._db = open_tables(self.path, busy_timeout_s, _LAYOUT)
        try:
            self._load()
        except sqlite3.Error as exc:
            self._db.close()
            raise AuthStoreError(f"{self.path}: cannot read the authorization tables: {exc}") from exc

    # -- reading (memory only)

    def cache_get(self, key: str) -> CachedEntry | None:
        """The cache entry at ``key`` (a token_key), or None."""
        return self._cache.get(key)

    def cache_items(self) -> list[tuple[str, CachedEntry]]:
        """Every cache entry as (key, entry), in no particular order."""
        return list(self._cache.items())

    def list_get(self, key: str) -> ListedEntry | None:
        """The local list entry at ``key`` (a token_key), or None."""
        return self._list.get(key)

    def list_keys(self) -> set[str]:
        """The keys of the local list."""
        return set(self._list)

    @property
    def list_version(self) -> int:
        """The local list's version as stored (0: never set)."""
        return self._version

    # -- writing (one transaction each; memory follows only a commit)

    def cache_put(self, key: str, entry: CachedEntry, evict: Iterable[str] = ()) -> None:
        """Store ``entry`` at ``key`` and drop the ``evict`` keys, in one commit."""
        victims = [k for k in evict if k != key]
        with self._lock:
            with self._write("store an authorization cache entry") as db:
                db.executemany("DELETE FROM ocpp_auth_cache WHERE id_token = ?", [(k,) for k in victims])
                db.execute(f"INSERT OR REPLACE INTO ocpp_auth_cache ({', '.join(CACHE_COLUMNS)}) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?)",
                           (key, *_info_row(entry.info), _time(entry.updated_at), _time(entry.last_used)))
            for victim in victims:
                self._cache.pop(victim, None)
            self._cache[key] = entry

    def cache_touch(self, key: str, when: datetime) -> None:
        """Record a use of the entry at ``key`` (LRU order only: committed without fsync, like a log of reads)."""
        with self._lock:
            entry = self._cache.get(key)
            if entry is None:
                return
            with self._write("record the use of an authorization cache entry", relaxed=True) as db:
                db.execute("UPDATE ocpp_auth_cache SET last_used = ? WHERE id_token = ?", (_time(when), key))
            self._cache[key] = CachedEntry(entry.info, entry.updated_at, when)

    def cache_delete(self, keys: Iterable[str]) -> None:
        """Drop the entries at ``keys`` (absent ones are ignored), in one commit."""
        doomed = list(keys)
        if not doomed:
            return
        with self._lock:
            with self._write("remove authorization cache entries") as db:
                db.executemany("DELETE FROM ocpp_auth_cache WHERE id_token = ?", [(k,) for k in doomed])
            for key in doomed:
                self._cache.pop(key, None)

    def cache_clear(self) -> None:
        """Drop every cache entry (unreadable rows too)."""
        with self._lock:
            with self._write("clear the authorization cache") as db:
                db.execute("DELETE FROM ocpp_auth_cache")
            self._cache.clear()

    def list_apply(self, version: int, *, replace: bool, upserts: Mapping[str, ListedEntry],
                   deletes: Iterable[str] = ()) -> None:
        """Change the local list and set its version in one commit: ``replace`` empties it first (a Full update)."""
        gone = [k for k in deletes if k not in upserts]
        with self._lock:
            with self._write("update the local authorization list") as db:
                if replace:
                    db.execute("DELETE FROM ocpp_local_list")
                db.executemany("DELETE FROM ocpp_local_list WHERE id_token = ?", [(k,) for k in gone])
                db.executemany(f"INSERT OR REPLACE INTO ocpp_local_list ({', '.join(LIST_COLUMNS)}) "
                               "VALUES (?, ?, ?, ?, ?, ?)",
                               [(k, e.token_type, *_info_row(e.info)) for k, e in upserts.items()])
                db.execute("INSERT OR REPLACE INTO ocpp_local_list_version (id, version) VALUES (1, ?)", (version,))
            if replace:
                self._list.clear()
            for key in gone:
                self._list.pop(key, None)
            self._list.update(upserts)
            self._version = version

    def close(self) -> None:
        """Close the database (idempotent)."""
        with self._lock:
            self._db.close()

    # -- internals

    def _write(self, what: str, relaxed: bool = False) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """BEGIN IMMEDIATE .. COMMIT (``relaxed``: synchronous=NORMAL); errors roll back and raise AuthStoreError."""
        return write(self._db, self.path, what, AuthStoreError, relaxed=relaxed)

    def _load(self) -> None:
        """Read every row into memory; an unreadable one is skipped with a WARNING naming table and rowid."""
        for rowid, *row in self._db.execute(f"SELECT rowid, {', '.join(CACHE_COLUMNS)} FROM ocpp_auth_cache"):
            try:
                key, info = _key(row[0]), _info(row[1:5])
                if key in self._cache:
                    raise ValueError("its token is stored twice (the same once folded to upper case)")
                updated, used = _parse_time("updated_at", row[5]), _parse_time("last_used", row[6])
                self._cache[key] = CachedEntry(info, updated, used)
            except ValueError as exc:
                _skipped(self.path, "ocpp_auth_cache", rowid, exc)
        for rowid, *row in self._db.execute(f"SELECT rowid, {', '.join(LIST_COLUMNS)} FROM ocpp_local_list"):
            try:
                key, token_type, info = _key(row[0]), _optional_text("token_type", row[1]), _info(row[2:6])
                if key in self._list:
                    raise ValueError("its token is stored twice (the same once folded to upper case)")
                self._list[key] = ListedEntry(info, token_type)
            except ValueError as exc:
                _skipped(self.path, "ocpp_local_list", rowid, exc)
        found = self._db.execute("SELECT version FROM ocpp_local_list_version WHERE id = 1").fetchone()
        if found is not None:
            if isinstance(found[0], int) and not isinstance(found[0], bool) and found[0] >= 0:
                self._version = found[0]
            else:
                _skipped(self.path, "ocpp_local_list_version", 1, ValueError(f"version {found[0]!r} is not a count"))


def _skipped(path: Path, table: str, rowid: object, problem: Exception) -> None:
    """Say that a stored row is unusable and skipped (the token is never named: the row id is)."""
    log.warning("%s: %s row %s is unreadable (%s); skipped", path, table, rowid, problem)


def _text(field: str, value: object) -> str:
    """A stored non-empty UTF-8 text (the connection hands text over as bytes), else ValueError naming the field."""
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{field} is not UTF-8 text") from None
    if not isinstance(value, str) or not value:
        raise ValueError(f"{field} is {type(value).__name__}, not a non-empty text")
    return value


def _optional_text(field: str, value: object) -> str | None:
    """``_text`` that lets NULL through."""
    return None if value is None else _text(field, value)


def _key(value: object) -> str:
    """A stored token key, folded again in case the file was edited."""
    return token_key(_text("id_token", value))


def _parse_time(field: str, value: object) -> datetime:
    """A stored RFC 3339 time, else ValueError (FormatError) naming the field."""
    return parse_rfc3339(field, _text(field, value))


def _info(row: list[object]) -> IdTokenInfo:
    """An IdTokenInfo from (status, group_id_token, cache_expiry, token_expiry) columns."""
    status, group, cache_expiry, token_expiry = row
    return IdTokenInfo(
        _text("status", status), _optional_text("group_id_token", group),
        None if cache_expiry is None else _parse_time("cache_expiry", cache_expiry),
        None if token_expiry is None else _parse_time("token_expiry", token_expiry),
    )


def _info_row(info: IdTokenInfo) -> tuple[str, str | None, str | None, str | None]:
    """The (status, group_id_token, cache_expiry, token_expiry) columns of an IdTokenInfo."""
    return (info.status, info.group_id_token, None if info.cache_expiry is None else _time(info.cache_expiry),
            None if info.token_expiry is None else _time(info.token_expiry))


def _time(value: datetime) -> str:
    """A time as stored: RFC 3339 in UTC."""
    return format_rfc3339(value)
