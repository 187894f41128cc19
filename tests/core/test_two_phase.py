"""The core's two-phase API (controller.core.writes): changes made in memory at once, written later by a writer.

A hand-driven writer stands in for the runtime's writer thread: it only queues; the test commits a write
(``store.write`` on a real SQLite file, then ``write_done``) or fails it (``write_failed``), in order.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from core_helpers import FakeClock, Recorder, res, site

from controller.core.pending import StoreWrite
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
FULL = StoreError("res.db: cannot write: database or disk is full")


class HandWriter:
    """Queues what the core hands over; the test decides when each write commits or fails."""

    def __init__(self, core: ReservationCore, store: ReservationStore) -> None:
        self.core, self.store = core, store
        self.queue: list[StoreWrite] = []
        core.defer_writes(self.queue.append)

    def commit(self) -> StoreWrite:
        """Commit the oldest write for real and report it done."""
        write = self.queue.pop(0)
        if not write.empty:
            self.store.write(write.puts, write.deletes)
        self.core.write_done(write)
        return write

    def fail(self) -> list[StoreWrite]:
        """Report the oldest write failed (as a full disk would)."""
        failed = self.core.write_failed(self.queue[0], FULL)
        self.queue = [w for w in self.queue if not w.done]
        return failed


def rows(path: Path) -> list[int]:
    """Reservation ids committed to the file."""
    with sqlite3.connect(path) as db:
        return [r[0] for r in db.execute("SELECT reservation_id FROM reservations ORDER BY seq")]


def make(tmp_path: Path) -> tuple[ReservationCore, HandWriter, Recorder, Path]:
    """A core on a real store with a hand-driven writer, and a recorder of its events."""
    path = tmp_path / "res.db"
    store = ReservationStore(path)
    core = ReservationCore(SITE, clock=FakeClock(), store=store)
    seen = Recorder()
    core.subscribe(seen)
    return core, HandWriter(core, store), seen, path


def test_a_change_is_live_at_once_and_its_events_wait_for_its_commit(tmp_path: Path) -> None:
    """Memory first, decisions against it, the events once the row is committed."""
    core, writer, seen, path = make(tmp_path)
    change = core.begin_reserve(res(1, evse=1))
    assert change.result is ReservationResult.ACCEPTED
    assert core.reserved_evses() == {1}  # decided against, and shown by, memory at once
    assert seen == [] and rows(path) == [] and core.writes_in_flight == 1
    assert core.begin_reserve(res(2, evse=1)).result is ReservationResult.OCCUPIED  # decided against it
    writer.commit()
    assert rows(path) == [1] and change.write is not None and change.write.done and change.write.error is None
    assert seen == [ReservationUpdateStatus(1, ReservationUpdate.PLACED), EvseReservedChanged(1, True)]


def test_events_of_what_happens_meanwhile_keep_their_order_behind_the_change(tmp_path: Path) -> None:
    """Events made while a change is in flight go out behind its own, in order; the runtime hears of them at once."""
    core, writer, seen, path = make(tmp_path)
    core.begin_reserve(res(1, evse=1))
    core.begin_reserve(res(2, evse=2))
    writer.commit()
    writer.commit()
    del seen[:]
    held: list[int] = []
    core.defer_writes(writer.queue.append, on_held=lambda: held.append(1))
    core.begin_cancel(1)
    assert held == []  # the change's own events: the runtime hears them when they are sent
    core.set_connector_state(2, 1, ConnectorState.FAULTED)  # ends 2 by itself while the cancel is in flight
    assert held == [1]  # memory changed by itself: the runtime is told at once (its outputs must not wait)
    core.begin_reserve(res(3, evse=3))
    assert seen == [] and core.reservations() == [res(3, evse=3)]
    writer.commit()  # the cancel
    assert seen == [
        ReservationEnd(ReservationEndReason.CANCELLED, 1, 1),
        ReservationUpdateStatus(1, ReservationUpdate.CANCELLED),
        EvseReservedChanged(1, False, ReservationEndReason.CANCELLED),
        ReservationEnd(ReservationEndReason.CANCELLED, 2, 2),
        ReservationUpdateStatus(2, ReservationUpdate.REMOVED),
        EvseReservedChanged(2, False, ReservationEndReason.CANCELLED),
    ]
    writer.commit()  # the delete owed for 2, then the reservation of 3 (handed over in that order)
    assert seen[6:] == []
    writer.commit()
    assert seen[6:] == [ReservationUpdateStatus(3, ReservationUpdate.PLACED), EvseReservedChanged(3, True)]
    assert rows(path) == [3] and core.unsynced_ends == 0


def test_a_failed_write_undoes_it_and_every_change_after_it_newest_first(tmp_path: Path) -> None:
    """A failed commit undoes its change and the one decided against it; nothing of them was sent."""
    core, writer, seen, path = make(tmp_path)
    core.begin_reserve(res(1, "a", evse=1))
    writer.commit()
    before = core.reservations()
    replace = core.begin_reserve(res(1, "b", evse=2))  # replaces 1: EVSE 1 free, EVSE 2 held
    later = core.begin_reserve(res(5, evse=1))  # decided against the replacement: EVSE 1 was free
    assert later.result is ReservationResult.ACCEPTED and core.reserved_evses() == {1, 2}
    failed = writer.fail()
    assert [w.change for w in failed] == [replace, later]
    assert all(w.error is FULL for w in failed) and writer.queue == []
    assert core.reservations() == before and core.reserved_evses() == {1}  # memory = disk again
    assert rows(path) == [1]
    assert seen[2:] == []  # nothing was sent for the undone changes: no Placed, no LED blip


def test_an_end_meanwhile_of_a_replaced_id_does_not_delete_the_old_row(tmp_path: Path) -> None:
    """1 is replaced (in flight), the replacement ends by a fault, then the replacement's write fails:
    the old 1 is live again, and the delete owed for the replacement's end must not remove its row."""
    core, writer, seen, path = make(tmp_path)
    core.begin_reserve(res(1, "a", evse=1))
    writer.commit()
    core.begin_reserve(res(1, "b", evse=2))
    core.set_connector_state(2, 1, ConnectorState.FAULTED)  # ends the replacement in memory
    assert core.reservations() == [] and core.unsynced_ends == 1
    writer.fail()
    assert core.reservations() == [res(1, "a", evse=1)] and core.unsynced_ends == 0
    assert rows(path) == [1]
    assert core.retry_store() is True  # nothing owed: the store is fine
    assert [e for e in seen[2:] if not isinstance(e, EvseReservedChanged)] == []


def test_ends_owed_are_written_off_the_caller_and_a_later_put_of_the_id_survives(tmp_path: Path) -> None:
    """An expiry's delete goes to the writer; a new reservation of the same id after it is kept."""
    clock = FakeClock()
    path = tmp_path / "res.db"
    store = ReservationStore(path)
    core = ReservationCore(SITE, clock=clock, store=store)
    core.reserve_now(res(1, evse=1, minutes=5))
    writer = HandWriter(core, store)
    clock.advance(10 * 60)
    assert core.reserved_evses() == frozenset()  # expired in memory; its delete handed over, not written
    assert rows(path) == [1] and len(writer.queue) == 1 and writer.queue[0].deletes == (1,)
    core.begin_reserve(res(1, "again", evse=2, minutes=30))  # the same id, after the delete in the queue
    writer.commit()
    writer.commit()
    assert rows(path) == [1] and core.unsynced_ends == 0
    reloaded = ReservationCore(SITE, clock=clock, store=ReservationStore(path))
    assert reloaded.reservations() == [res(1, "again", evse=2, minutes=30)]


def test_a_refused_change_waits_for_the_write_it_was_decided_against(tmp_path: Path) -> None:
    """A refusal that writes nothing is answered after the write it was decided against."""
    core, _writer, _, _ = make(tmp_path)
    first = core.begin_reserve(res(1, evse=1))
    refused = core.begin_reserve(res(2, evse=1))
    assert refused.write is None and refused.after is first.write


def test_the_synchronous_calls_are_refused_while_a_writer_is_set(tmp_path: Path) -> None:
    """reserve_now writes in place: refused, before anything changes, while a writer owns the writes."""
    core, _, _, _ = make(tmp_path)
    with pytest.raises(RuntimeError, match="begin_reserve"):
        core.reserve_now(res(1, evse=1))
    assert core.reservations() == []
