"""Writes the reservation core hands to its store, and changes waiting for theirs (the two-phase API).

With a writer that commits off the event loop (controller.runtime.durable), a change asked for is decided
and made in memory at once, so later changes are decided against it; its write goes to the writer and the
caller is answered once it is durable. Until then the change's events are held back, and so are the events
that follow them, so subscribers see the same order as if every write had been synchronous. A write that
fails fails every write still in flight after it: their changes are undone newest first, memory and disk
agree again, and their callers get the StoreError.

Pure: no threads, no asyncio; the writer is a callable the core is given.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from controller.core.store import ReservationStore, StoreError
from controller.core.types import CoreEvent, EvseReservedChanged, Reservation, ReservationEnd, ReservationUpdateStatus

T = TypeVar("T")


@dataclass(eq=False)
class StoreWrite:
    """One write for the store: rows put and ids deleted, in one transaction; hashed by identity.

    ``synced``: the ends (reservation id -> end number) whose row this write deletes; ``probe``: a write
    that changes nothing, to learn whether a faulted store writes again. ``done``/``error``: its outcome.
    """

    puts: tuple[tuple[int, Reservation], ...] = ()
    deletes: tuple[int, ...] = ()
    synced: dict[int, int] = field(default_factory=dict)
    change: Change[Any] | None = None
    probe: bool = False
    done: bool = False
    error: StoreError | None = None

    @property
    def empty(self) -> bool:
        """Nothing to write (a probe still asks the store)."""
        return not self.puts and not self.deletes


@dataclass(eq=False)
class Change(Generic[T]):
    """A change asked for (reserve_now, cancel_reservation), made in memory, waiting for its write.

    ``write``: its own write, None when nothing had to be written; ``after``: the write in flight before it
    (its answer was decided against that write's state, so it is answered once that one settled too).
    ``held``: events held back until ``write`` is durable, each with the change that made it (dropped
    with that change if it is undone). ``inserted``: the reservation id this change put in memory.
    """

    result: T
    undo: Callable[[], None]
    write: StoreWrite | None = None
    after: StoreWrite | None = None
    inserted: int | None = None
    mark: int = 0  # the core's pending events from this index on are this change's own
    held: list[tuple[CoreEvent, Change[Any] | None]] = field(default_factory=list)


def nothing_to_undo() -> None:
    """The undo of a change that changed nothing."""


class WriteLedger:
    """What the core owes its store: ends not yet written, the writes in flight (oldest first), who was told what.

    ``unsynced``: reservation id -> end number of each ended reservation whose row is still on disk; a write
    that deletes the row forgets the end only if it is still that end (the id may have ended again since).
    ``published``: the EVSEs subscribers were last told are reserved.
    """

    def __init__(self, store: ReservationStore | None) -> None:
        """Track the writes for ``store`` (None: nothing is stored, nothing is owed)."""
        self.store = store
        self.writer: Callable[[StoreWrite], None] | None = None
        self.unsynced: dict[int, int] = {}
        self.inflight: deque[StoreWrite] = deque()
        self.published: set[int] = set()
        self._queued: dict[int, int] = {}  # ends whose delete is in a write in flight
        self._ends = itertools.count()

    def note_end(self, reservation_id: int) -> None:
        """A reservation ended in memory; its row is owed a delete."""
        self.unsynced[reservation_id] = next(self._ends)

    def owed(self) -> bool:
        """Is any end owed a delete that no write in flight carries?"""
        return any(self._queued.get(rid) != end for rid, end in self.unsynced.items())

    def make(self, puts: Sequence[tuple[int, Reservation]] = (), deletes: Iterable[int] = ()) -> StoreWrite:
        """A write of ``puts`` and ``deletes`` that also deletes every owed end (a put of the same id replaces it)."""
        put_ids = {r.reservation_id for _seq, r in puts}
        owed = {rid: end for rid, end in self.unsynced.items() if self._queued.get(rid) != end}
        removed = [rid for rid in owed if rid not in put_ids]
        removed += [rid for rid in deletes if rid not in owed and rid not in removed]
        return StoreWrite(tuple(puts), tuple(removed), owed)

    def write_now(self, write: StoreWrite) -> None:
        """Write on the caller's thread (no writer): StoreError when it cannot, and nothing is forgotten."""
        if self.store is not None and not write.empty:
            self.store.write(write.puts, write.deletes)
        self._written(write)

    def submit(self, write: StoreWrite) -> None:
        """Hand ``write`` to the writer; it reports back in submission order (``done`` or ``fail``)."""
        assert self.writer is not None, "submit needs a writer (defer_writes)"
        self._queued.update(write.synced)
        self.inflight.append(write)
        self.writer(write)

    def last(self) -> StoreWrite | None:
        """The newest write in flight."""
        return self.inflight[-1] if self.inflight else None

    def holder(self) -> Change[Any] | None:
        """The newest change in flight: events made now wait behind it."""
        for write in reversed(self.inflight):
            if write.change is not None:
                return write.change
        return None

    def done(self, write: StoreWrite) -> list[CoreEvent]:
        """``write`` is durable: forget the ends it deleted; the events its change held, to send now."""
        if not self.inflight or self.inflight[0] is not write:
            return []  # already failed with an earlier write
        self.inflight.popleft()
        write.done = True
        self._written(write)
        return [event for event, _owner in write.change.held] if write.change is not None else []

    def fail(self, write: StoreWrite, error: StoreError) -> list[StoreWrite]:
        """``write`` failed: it and every write after it fail (their ends stay owed); them, oldest first."""
        if not self.inflight or self.inflight[0] is not write:
            return []
        failed = list(self.inflight)
        self.inflight.clear()
        for w in failed:
            w.done, w.error = True, error
            for rid, end in w.synced.items():
                if self._queued.get(rid) == end:
                    del self._queued[rid]
        return failed

    def _written(self, write: StoreWrite) -> None:
        """Forget the ends ``write`` deleted, unless the id ended again since."""
        for rid, end in write.synced.items():
            if self.unsynced.get(rid) == end:
                del self.unsynced[rid]
            if self._queued.get(rid) == end:
                del self._queued[rid]


def kept_after_failure(
    held: list[tuple[CoreEvent, Change[Any] | None]], failed: list[Change[Any]]
) -> list[CoreEvent]:
    """The held events that still happened once ``failed`` are undone: not made by them, not about what they put."""
    gone = set(failed)
    inserted = {c.inserted for c in failed if c.inserted is not None}
    kept: list[CoreEvent] = []
    for event, owner in held:
        mine = owner is not None and owner in gone
        about_undone = isinstance(event, ReservationEnd | ReservationUpdateStatus) and event.reservation_id in inserted
        if isinstance(event, EvseReservedChanged) or not (mine or about_undone):
            kept.append(event)  # indication changes are kept and netted afterwards (net_indication)
    return kept


def net_indication(events: list[CoreEvent], published: set[int]) -> list[CoreEvent]:
    """``events`` with, per EVSE, only the last EvseReservedChanged, and only if it differs from ``published``.

    After an undo the indication was computed with the undone changes in memory: its held changes were never
    sent, its corrections would repeat what subscribers know. The net says only what really changed for them.
    """
    last = {e.evse_id: i for i, e in enumerate(events) if isinstance(e, EvseReservedChanged)}
    return [
        e
        for i, e in enumerate(events)
        if not isinstance(e, EvseReservedChanged)
        or (last[e.evse_id] == i and (e.evse_id in published) != e.reserved)
    ]


def note_published(event: CoreEvent, published: set[int]) -> None:
    """Keep ``published`` (the EVSEs subscribers were told are reserved) up to date with a sent event."""
    if isinstance(event, EvseReservedChanged):
        if event.reserved:
            published.add(event.evse_id)
        else:
            published.discard(event.evse_id)
