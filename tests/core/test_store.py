"""Reservations survive restart in a real SQLite file; bad files and rows are loud, never lost."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from core_helpers import FakeClock, Recorder, res, site

from controller.core.reservation import ReservationCore
from controller.core.store import ReservationStore, StoreError
from controller.core.types import (
    ConnectorState,
    ConnectorType,
    EvseReservedChanged,
    ReservationEnd,
    ReservationEndReason,
    ReservationResult,
    ReservationUpdate,
    ReservationUpdateStatus,
)

T2 = ConnectorType.cType2
SITE = site((T2,), (T2,), (T2,))


def rows(path: Path) -> list[tuple[int, int]]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT reservation_id, seq FROM reservations ORDER BY seq").fetchall()


def test_each_change_is_on_disk_before_the_call_returns(tmp_path: Path) -> None:
    path = tmp_path / "res.db"
    core = ReservationCore(SITE, clock=FakeClock(), store=ReservationStore(path))
    assert core.reserve_now(res(4, evse=2)) is ReservationResult.ACCEPTED
    assert rows(path) == [(4, 0)]  # read through a second, independent connection
    core.reserve_now(res(9))
    assert rows(path) == [(4, 0), (9, 1)]
    core.cancel_reservation(4)
    assert rows(path) == [(9, 1)]


def test_database_is_wal_with_full_sync(tmp_path: Path) -> None:
    store = ReservationStore(tmp_path / "res.db")
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_reload_keeps_order_and_rebuilds_the_leds(tmp_path: Path) -> None:
    path = tmp_path / "res.db"
    clock = FakeClock()
    first = ReservationCore(SITE, clock=clock, store=ReservationStore(path))
    first.reserve_now(res(1, "a", evse=3))
    first.reserve_now(res(2, "b"))
    first.reserve_now(res(3, "c"))
    seen = Recorder()
    second = ReservationCore(SITE, clock=clock, store=ReservationStore(path), listener=seen)
    assert second.reservations() == first.reservations()
    assert second.reserved_evses() == first.reserved_evses() == {1, 2, 3}
    assert seen == [EvseReservedChanged(1, True), EvseReservedChanged(2, True), EvseReservedChanged(3, True)]
    assert second.matches_reserved_identifier("A", 3) == 1


def test_reload_ends_expired_and_no_longer_possible(tmp_path: Path) -> None:
    path = tmp_path / "res.db"
    clock = FakeClock()
    first = ReservationCore(SITE, clock=clock, store=ReservationStore(path))
    first.reserve_now(res(1, evse=1, minutes=60))
    first.reserve_now(res(2, minutes=5))
    first.reserve_now(res(3, evse=2, minutes=60))
    clock.advance(10 * 60)
    second = ReservationCore(SITE, clock=clock, store=ReservationStore(path), states={(1, 1): ConnectorState.FAULTED})
    assert [r.reservation_id for r in second.reservations()] == [3]
    ends = [e for e in second.startup_events if not isinstance(e, EvseReservedChanged)]
    assert ends == [
        ReservationEnd(ReservationEndReason.EXPIRED, 2),
        ReservationUpdateStatus(2, ReservationUpdate.EXPIRED),
        ReservationEnd(ReservationEndReason.CANCELLED, 1, 1),
        ReservationUpdateStatus(1, ReservationUpdate.REMOVED),
    ]
    assert rows(path) == [(3, 2)]


def test_stored_reservation_for_a_removed_evse_is_cancelled(tmp_path: Path) -> None:
    path = tmp_path / "res.db"
    ReservationCore(SITE, clock=FakeClock(), store=ReservationStore(path)).reserve_now(res(1, evse=3))
    smaller = ReservationCore(site((T2,)), clock=FakeClock(), store=ReservationStore(path))
    assert smaller.reservations() == []
    assert ReservationEnd(ReservationEndReason.CANCELLED, 1, 3) in smaller.startup_events


def test_garbage_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "res.db"
    path.write_bytes(b"this is not a database, just bytes" * 100)
    with pytest.raises(StoreError, match=r"res\.db: not a usable reservation database"):
        ReservationStore(path)
    assert path.read_bytes().startswith(b"this is not")  # untouched


def test_foreign_sqlite_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE songs (title TEXT)")
    with pytest.raises(StoreError, match=r"another application .*tables: songs"):
        ReservationStore(path)


def test_future_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "res.db"
    ReservationStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version=99")
    with pytest.raises(StoreError, match="schema version 99"):
        ReservationStore(path)


def test_unreadable_row_is_quarantined_not_lost(tmp_path: Path) -> None:
    path = tmp_path / "res.db"
    core = ReservationCore(SITE, clock=FakeClock(), store=ReservationStore(path))
    core.reserve_now(res(1))
    core.reserve_now(res(2))
    bad = json.dumps({"reservation_id": 2, "id_token": "", "expiry_time": "soon"})
    with sqlite3.connect(path) as db:
        db.execute("UPDATE reservations SET payload = ? WHERE reservation_id = 2", (bad,))
    store = ReservationStore(path)
    again = ReservationCore(SITE, clock=FakeClock(), store=store)
    assert [r.reservation_id for r in again.reservations()] == [1]
    assert len(again.startup_problems) == 1
    assert (
        "stored reservation 2" in again.startup_problems[0]
        and "id_token: must not be empty" in again.startup_problems[0]
    )
    assert store.quarantined() == [(bad, "id_token: must not be empty")]


class CountingStore(ReservationStore):
    """A real store that counts its write transactions."""

    writes = 0

    def write(self, *args: object, **kwargs: object) -> None:
        self.writes += 1
        super().write(*args, **kwargs)  # type: ignore[arg-type]


def test_a_replacement_is_one_write_and_a_refused_one_removes_the_old_row(tmp_path: Path) -> None:
    """Replacing id 4 must never pass through a committed state without it (a power cut would lose it)."""
    path = tmp_path / "res.db"
    store = CountingStore(path)
    core = ReservationCore(SITE, clock=FakeClock(), store=store)
    core.reserve_now(res(4, "a", evse=2))
    store.writes = 0
    assert core.reserve_now(res(4, "b", evse=3)) is ReservationResult.ACCEPTED
    assert store.writes == 1 and rows(path) == [(4, 1)]
    core.set_connector_state(1, 1, ConnectorState.FAULTED)
    store.writes = 0
    assert core.reserve_now(res(4, "c", evse=1)) is ReservationResult.FAULTED
    assert store.writes == 1 and rows(path) == []  # DESIGN step 2: the old one is gone, refused or not
    assert core.reservations() == []


def test_a_row_with_invalid_utf8_is_quarantined_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "res.db"
    core = ReservationCore(SITE, clock=FakeClock(), store=ReservationStore(path))
    core.reserve_now(res(1))
    core.reserve_now(res(2))
    with sqlite3.connect(path) as db:
        db.execute("UPDATE reservations SET payload = CAST(X'7B22FF22' AS TEXT) WHERE reservation_id = 2")
    store = ReservationStore(path)
    again = ReservationCore(SITE, clock=FakeClock(), store=store)
    assert [r.reservation_id for r in again.reservations()] == [1]
    assert len(again.startup_problems) == 1 and "stored reservation 2" in again.startup_problems[0]
    assert "utf-8" in again.startup_problems[0].lower()
    [(payload, problem)] = store.quarantined()
    assert payload == b'{"\xff"' and "utf-8" in problem.lower()
    assert rows(path) == [(1, 0)]


def test_an_empty_file_is_refused_not_taken_as_a_new_store(tmp_path: Path) -> None:
    path = tmp_path / "res.db"
    path.write_bytes(b"")
    with pytest.raises(StoreError, match=r"res\.db: is an empty file \(0 bytes\)"):
        ReservationStore(path)
    assert path.read_bytes() == b""  # untouched


def test_a_new_store_is_made_whole_under_another_name_then_renamed(tmp_path: Path) -> None:
    path = tmp_path / "res.db"
    (tmp_path / "res.db.new").write_bytes(b"half-made leftover of a crash")
    ReservationStore(path).close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["res.db"]
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA application_id").fetchone()[0] == 0x45564352
    ReservationStore(path).close()  # and it opens again as ours


def test_expired_rows_at_start_are_deleted_in_one_transaction(tmp_path: Path) -> None:
    path = tmp_path / "res.db"
    clock = FakeClock()
    first = ReservationCore(site(*[(T2,)] * 60), clock=clock, store=ReservationStore(path))
    for rid in range(50):
        first.reserve_now(res(rid, evse=rid + 1, minutes=1))
    first.reserve_now(res(99, evse=60, minutes=60))
    clock.advance(5 * 60)
    store = CountingStore(path)
    again = ReservationCore(site(*[(T2,)] * 60), clock=clock, store=store)
    assert store.writes == 1
    assert rows(path) == [(99, 50)] and [r.reservation_id for r in again.reservations()] == [99]
