"""OCPP authorization on disk: restart, the shared ocpp.db, unreadable rows, failed writes, files refused, logs.

Real SQLite files in tmp_path; a failed write is made real with SQLite's ``query_only`` on the store's own
connection (as a read-only file system refuses it).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from controller.ocpp.station.auth_types import AuthSettings, IdTokenInfo, ListStatus
from controller.ocpp.station.authorization import AuthorizationStore, AuthStoreError
from controller.ocpp.station.variables import VariableStore
from controller.ocpp.v201.device_model import definitions

from .test_authorization import ACCEPT, CARD, ON, PRE, SECRET, T0, accepted, at, diff, full, reopen


@pytest.fixture
def store(tmp_path: Path) -> Iterator[AuthorizationStore]:
    """A store in a fresh file."""
    s = AuthorizationStore(tmp_path / "ocpp.db")
    yield s
    s.close()


def test_everything_survives_a_restart(store: AuthorizationStore, tmp_path: Path) -> None:
    """C10.FR.02: cache, list and version are on disk; the Entries callback hears the loaded size at open."""
    expiry = datetime(2026, 3, 2, 1, 2, 3, 456000, tzinfo=UTC)
    store.remember(CARD, IdTokenInfo("Accepted", "G1", cache_expiry=expiry), now=T0, settings=ON)
    assert full(store, 12, ("A", accepted("G2")), ("B", IdTokenInfo("Blocked", token_expiry=expiry))) \
        is ListStatus.ACCEPTED
    heard: list[int] = []
    again = reopen(store, on_entries=heard.append)
    assert heard == [2]
    assert again.cache_lookup(CARD, T0, lifetime_s=None) == IdTokenInfo("Accepted", "G1", cache_expiry=expiry)
    assert again.list_lookup("a", T0) == accepted("G2")
    assert again.list_lookup("b", T0) == IdTokenInfo("Blocked", token_expiry=expiry)
    assert again.local_list_version(settings=ON) == 12
    again.close()


def test_shares_the_file_with_the_variables(tmp_path: Path) -> None:
    """ocpp.db holds the variables and these tables side by side; Entries follows the list through set_internal."""
    variables = VariableStore(tmp_path / "ocpp.db", definitions(
        [(1, [(1, "cType2")])], reservations_available=True, non_evse_specific=True, vendor="V", model="M",
        security_profile=0))
    settings = AuthSettings.from_variables(variables)
    assert settings == replace(ON, cache_lifetime_s=86_400)
    store = AuthorizationStore(tmp_path / "ocpp.db", on_entries=lambda n: variables.set_internal(
        "LocalAuthListCtrlr", "Entries", str(n)))
    assert full(store, 1, ("A", accepted()), ("B", accepted()), settings=settings) is ListStatus.ACCEPTED
    assert variables.int_value("LocalAuthListCtrlr", "Entries") == 2
    variables.set("AuthCtrlr", "LocalPreAuthorize", "true")
    variables.set("AuthCacheCtrlr", "Enabled", "false")
    assert AuthSettings.from_variables(variables) == replace(settings, local_pre_authorize=True, cache_enabled=False)
    store.close()
    variables.close()


def test_unreadable_rows_are_skipped_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A bad row is named by table and rowid in a WARNING and skipped; the good rows load; no token is logged."""
    path = tmp_path / "ocpp.db"
    store = AuthorizationStore(path)
    store.remember("GOOD-CACHED", accepted(), now=T0, settings=ON)
    assert full(store, 3, ("GOOD-LISTED", accepted())) is ListStatus.ACCEPTED
    store.close()
    db = sqlite3.connect(path)
    cache_row = "INSERT INTO ocpp_auth_cache VALUES (?, ?, NULL, ?, NULL, ?, ?)"
    db.execute(cache_row, (SECRET + "A", "Accepted", None, "yesterday", "2026-01-01T00:00:00Z"))
    db.execute(cache_row, (SECRET + "B", "", None, "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"))
    db.execute(cache_row, (b"\xff\xfe", "Accepted", None, "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"))
    db.execute(cache_row, ("good-cached", "Blocked", None, "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"))
    db.execute("INSERT INTO ocpp_local_list VALUES (?, NULL, ?, NULL, ?, NULL)", (SECRET + "C", "Accepted", 42))
    db.execute("UPDATE ocpp_local_list_version SET version = 'three'")
    db.commit()
    db.close()
    with caplog.at_level(logging.WARNING):
        store = AuthorizationStore(path)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 6 and all(str(path) in w and "skipped" in w for w in warnings)
    assert sum("ocpp_auth_cache row" in w for w in warnings) == 4
    assert any("stored twice" in w for w in warnings) and any("updated_at" in w for w in warnings)
    assert SECRET not in caplog.text
    assert store.cache_lookup("good-cached", T0, lifetime_s=None) == accepted()
    assert store.cache_size() == 1 and store.local_list_size() == 1
    assert store.local_list_version(settings=ON) == 0
    assert full(store, 4, ("X", accepted())) is ListStatus.ACCEPTED  # a Full update replaces the bad rows too
    store.close()


def _failing(store: AuthorizationStore, failing: bool) -> None:
    """Make every write of ``store`` fail (or work again), as a read-only disk does."""
    store._db._db.execute(f"PRAGMA query_only={'ON' if failing else 'OFF'}")


def test_a_failed_write_raises_and_changes_nothing(store: AuthorizationStore, caplog: pytest.LogCaptureFixture) -> None:
    """AuthStoreError names the file; memory and disk keep the old state; a use that cannot be recorded is logged."""
    store.remember(CARD, accepted(), now=T0, settings=ON)
    assert full(store, 1, ("A", accepted())) is ListStatus.ACCEPTED
    _failing(store, True)
    for attempt in (
        lambda: store.remember("NEW-CARD", accepted(), now=T0, settings=ON),
        lambda: store.remember(CARD, IdTokenInfo("Blocked"), now=T0, settings=ON),
        lambda: store.clear(settings=ON),
        lambda: full(store, 2, ("B", accepted())),
        lambda: diff(store, 2, ("A", None)),
        lambda: store.purge(at(10**9), settings=replace(ON, cache_lifetime_s=1)),
    ):
        with pytest.raises(AuthStoreError, match=str(store.path)):
            attempt()
    with caplog.at_level(logging.WARNING):
        decision = store.decide(CARD, online=False, now=T0, settings=ON)
    assert decision.verdict is ACCEPT and "cannot record a use" in caplog.text
    assert store.cache_lookup(CARD, T0, lifetime_s=None) == accepted()
    assert store.cache_size() == 1 and store.cache_lookup("NEW-CARD", T0, lifetime_s=None) is None
    assert (store.local_list_version(settings=ON), store.list_lookup("A", T0), store.list_lookup("B", T0)) == \
        (1, accepted(), None)
    _failing(store, False)
    again = reopen(store)
    assert again.cache_lookup(CARD, T0, lifetime_s=None) == accepted() and again.cache_size() == 1
    assert (again.local_list_version(settings=ON), again.local_list_size()) == (1, 1)
    again.close()


def test_refuses_files_it_cannot_use(tmp_path: Path) -> None:
    """A 0-byte file, a directory, or a table of ours with another layout: AuthStoreError naming the file."""
    empty = tmp_path / "empty.db"
    empty.touch()
    with pytest.raises(AuthStoreError, match="empty file"):
        AuthorizationStore(empty)
    with pytest.raises(AuthStoreError, match="directory"):
        AuthorizationStore(tmp_path)
    other = tmp_path / "other.db"
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE ocpp_local_list (token TEXT)")
    db.close()
    with pytest.raises(AuthStoreError, match=r"ocpp_local_list has columns \(token\)"):
        AuthorizationStore(other)


def test_no_token_in_any_log_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Every path that logs, at DEBUG: the token (in either case) never appears, only its redaction."""
    with caplog.at_level(logging.DEBUG):
        store = AuthorizationStore(tmp_path / "ocpp.db", cache_limit=1)
        store.remember(SECRET, accepted(), now=T0, settings=ON)
        store.remember(SECRET.lower() + "X", accepted(), now=T0, settings=ON)
        for online in (True, False):
            store.decide(SECRET, online=online, now=T0, settings=PRE)
        full(store, 1, (SECRET, accepted()), (SECRET.lower(), accepted()))
        diff(store, 1, (SECRET, accepted()))
        full(store, 2, (SECRET, accepted()))
        store.clear(settings=ON)
        store.close()
    assert caplog.records
    assert SECRET not in caplog.text and SECRET.lower() not in caplog.text
