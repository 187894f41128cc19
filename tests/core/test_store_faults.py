"""A store that cannot write (disk full, read-only) never freezes the core, and never splits memory from disk.

Writes are made to fail for real: SQLite's ``query_only`` makes every write of the real store fail
inside SQLite, the way a full disk or a read-only file system does.
"""

from __future__ import annotations

import json
import logging
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


def writes_fail(store: ReservationStore, failing: bool = True) -> None:
    """Make every write of this store fail inside SQLite (or work again)."""
    store._db.execute(f"PRAGMA query_only={'ON' if failing else 'OFF'}")


def test_a_replacement_that_cannot_be_written_keeps_the_old_reservation(tmp_path: Path) -> None:
    path = tmp_path / "res.db"
    store = ReservationStore(path)
    core = ReservationCore(SITE, clock=FakeClock(), store=store)
    assert core.reserve_now(res(4, "a", evse=2)) is ReservationResult.ACCEPTED
    seen = Recorder()
    core.subscribe(seen)
    writes_fail(store)
    with pytest.raises(StoreError, match="cannot write"):
        core.reserve_now(res(4, "b", evse=3))
    assert core.reservations() == [res(4, "a", evse=2)]  # memory: the old one, as on disk
    assert core.reserved_evses() == {2}
    assert core.matches_reserved_identifier("a", 2) == 4
    assert rows(path) == [(4, 0)]
    assert seen == []  # nothing happened, so nothing was said
    writes_fail(store, False)
    assert core.cancel_reservation(4) is True
    assert rows(path) == []


def test_a_refused_replacement_that_cannot_be_written_keeps_the_old_reservation(tmp_path: Path) -> None:
    path = tmp_path / "res.db"
    store = ReservationStore(path)
    core = ReservationCore(site((T2,), (T2,), (T2,), (T2,)), clock=FakeClock(), store=store)
    core.reserve_now(res(1, "g1"))
    core.reserve_now(res(4, "a"))
    core.reserve_now(res(5, "g2"))
    core.set_connector_state(1, 1, ConnectorState.FAULTED)
    writes_fail(store)
    with pytest.raises(StoreError):
        core.reserve_now(res(4, "b", evse=1))  # Faulted: would delete the old row
    assert [r.reservation_id for r in core.reservations()] == [1, 4, 5]  # 4 back in its arrival place
    assert [r for r, _ in rows(path)] == [1, 4, 5]


def test_reload_never_lets_a_refused_row_take_a_kept_reservations_slot(tmp_path: Path) -> None:
    """Two stored rows for EVSE 1 (e.g. written by two daemons): the first is kept, in memory too."""
    path = tmp_path / "res.db"
    ReservationStore(path).close()
    with sqlite3.connect(path) as db:
        for rid, seq, token in ((7, 0, "first"), (8, 1, "second")):
            payload = json.dumps(res(rid, token, evse=1).to_dict())
            db.execute("INSERT INTO reservations VALUES (?, ?, ?)", (rid, seq, payload))
    core = ReservationCore(SITE, clock=FakeClock(), store=ReservationStore(path))
    assert core.reservations() == [res(7, "first", evse=1)]
    assert core.is_evse_reserved(1) and core.reserved_evses() == {1}
    assert core.reserve_now(res(9, "walk-in", evse=1)) is ReservationResult.OCCUPIED
    assert rows(path) == [(7, 0)]  # the refused row is gone from disk as well
    assert ReservationUpdateStatus(8, ReservationUpdate.REMOVED) in core.startup_events


def test_reload_of_an_expired_twin_keeps_the_live_reservation(tmp_path: Path) -> None:
    path = tmp_path / "res.db"
    ReservationStore(path).close()
    with sqlite3.connect(path) as db:
        live, stale = res(7, "live", evse=1, minutes=60), res(8, "stale", evse=1, minutes=-5)
        db.execute("INSERT INTO reservations VALUES (7, 0, ?)", (json.dumps(live.to_dict()),))
        db.execute("INSERT INTO reservations VALUES (8, 1, ?)", (json.dumps(stale.to_dict()),))
    core = ReservationCore(SITE, clock=FakeClock(), store=ReservationStore(path))
    assert core.reservations() == [live]
    assert rows(path) == [(7, 0)]


def test_expiry_while_the_store_cannot_write_ends_in_memory_and_is_written_later(tmp_path: Path) -> None:
    path = tmp_path / "res.db"
    clock = FakeClock()
    store = ReservationStore(path)
    core = ReservationCore(SITE, clock=clock, store=store)
    core.reserve_now(res(1, evse=1, minutes=5))
    core.reserve_now(res(2, evse=2, minutes=60))
    seen = Recorder()
    core.subscribe(seen)
    writes_fail(store)
    clock.advance(10 * 60)
    assert core.reserved_evses() == {2}  # no StoreError: the LED follows the expiry
    assert seen[:2] == [
        ReservationEnd(ReservationEndReason.EXPIRED, 1, 1),
        ReservationUpdateStatus(1, ReservationUpdate.EXPIRED),
    ]
    assert EvseReservedChanged(1, False, ReservationEndReason.EXPIRED) in seen
    assert core.store_fault is not None and "readonly" in core.store_fault
    assert core.unsynced_ends == 1 and rows(path) == [(1, 0), (2, 1)]
    # changes asked for are refused and change nothing
    with pytest.raises(StoreError):
        core.reserve_now(res(3, evse=3))
    with pytest.raises(StoreError):
        core.cancel_reservation(2)
    assert [r.reservation_id for r in core.reservations()] == [2]
    assert core.retry_store() is False
    writes_fail(store, False)
    assert core.retry_store() is True
    assert core.store_fault is None and core.unsynced_ends == 0
    assert rows(path) == [(2, 1)]


def test_a_change_after_the_outage_also_writes_the_pending_ends(tmp_path: Path) -> None:
    path = tmp_path / "res.db"
    clock = FakeClock()
    store = ReservationStore(path)
    core = ReservationCore(SITE, clock=clock, store=store)
    core.reserve_now(res(1, evse=1, minutes=5))
    writes_fail(store)
    clock.advance(10 * 60)
    core.expire_due()
    writes_fail(store, False)
    assert core.reserve_now(res(1, "again", evse=1, minutes=30)) is ReservationResult.ACCEPTED  # the same id
    assert core.unsynced_ends == 0
    assert [r for r, _ in rows(path)] == [1]  # the new row, not deleted by the late delete of the old one
    reloaded = ReservationCore(SITE, clock=clock, store=ReservationStore(path))
    assert reloaded.reservations() == [res(1, "again", evse=1, minutes=30)]


def test_a_connector_fault_while_the_store_cannot_write_still_cancels(tmp_path: Path) -> None:
    store = ReservationStore(tmp_path / "res.db")
    core = ReservationCore(SITE, clock=FakeClock(), store=store)
    core.reserve_now(res(1, evse=1))
    writes_fail(store)
    core.set_connector_state(1, 1, ConnectorState.FAULTED)  # must not raise into the runtime's evaluation
    assert core.reservations() == [] and core.reserved_evses() == frozenset()
    assert core.use_reservation(1) is False
    assert core.unsynced_ends == 1


def test_one_error_per_outage_and_one_line_when_it_ends(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    store = ReservationStore(tmp_path / "res.db")
    core = ReservationCore(SITE, clock=clock, store=store)
    core.reserve_now(res(1, evse=1, minutes=1))
    caplog.set_level(logging.INFO, logger="controller.core.store")
    writes_fail(store)
    clock.advance(120)
    for rid in range(10, 60):
        with pytest.raises(StoreError):
            core.reserve_now(res(rid))
        core.retry_store()
    records = [r for r in caplog.records if r.name == "controller.core.store"]
    assert [r.levelno for r in records] == [logging.ERROR]
    writes_fail(store, False)
    assert core.retry_store()
    records = [r for r in caplog.records if r.name == "controller.core.store"]
    assert [r.levelno for r in records] == [logging.ERROR, logging.WARNING]
    assert "writable again" in records[-1].getMessage()


def test_a_faulted_store_with_nothing_pending_recovers_by_a_probe(tmp_path: Path) -> None:
    store = ReservationStore(tmp_path / "res.db")
    core = ReservationCore(SITE, clock=FakeClock(), store=store)
    writes_fail(store)
    with pytest.raises(StoreError):
        core.reserve_now(res(1))
    assert core.unsynced_ends == 0 and core.store_fault is not None
    assert core.retry_store() is False
    writes_fail(store, False)
    assert core.retry_store() is True and core.store_fault is None
