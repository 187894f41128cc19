"""The availability table of ocpp.db: what the CSMS left Inoperative is read back, a damaged row is skipped (and
kept), and a write that fails is refused with the file named, changing nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from controller.ocpp.station.availability import AvailabilityStore, AvailabilityStoreError


def test_inoperative_evses_are_read_back_and_operative_removes_them(tmp_path: Path) -> None:
    store = AvailabilityStore(tmp_path / "ocpp.db")
    store.save([1, 2, 3], operative=False)
    store.save([2], operative=True)
    store.close()
    again = AvailabilityStore(tmp_path / "ocpp.db")
    assert again.inoperative() == [1, 3]
    again.close()


def test_a_damaged_row_is_skipped_and_kept(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "ocpp.db"
    AvailabilityStore(path).save([1], operative=False)
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO ocpp_availability VALUES (7, 'x')")
    store = AvailabilityStore(path)
    assert store.inoperative() == [1]
    assert "damaged" in caplog.text and "(7, 'x')" in caplog.text
    store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM ocpp_availability").fetchone()[0] == 2


def test_a_failing_write_names_the_file_and_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "ocpp.db"
    store = AvailabilityStore(path)
    store.save([1], operative=False)
    with sqlite3.connect(path) as other:  # another writer holds the file: our write cannot get it
        other.execute("BEGIN IMMEDIATE")
        store._db.execute("PRAGMA busy_timeout = 50")
        with pytest.raises(AvailabilityStoreError, match=r"ocpp\.db: cannot store the availability"):
            store.save([1, 2], operative=True)
        other.execute("ROLLBACK")
    assert store.inoperative() == [1]
    store.close()
