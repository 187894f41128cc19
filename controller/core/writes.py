"""The reservation core's store side: its writes, done at once or through a writer, and what waits for them.

Without a writer (tests, tools) a change is written before the call returns, as it always was. With one
(``defer_writes``: the runtime's writer thread, controller.runtime.durable) the core never touches the disk
after start: ``begin_reserve``/``begin_cancel`` make the change in memory and hand its write over; the
writer reports back with ``write_done`` or ``write_failed``, in the order the writes were handed over.
The bookkeeping (ends owed, writes in flight, held events) is controller.core.pending's.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from controller.core.pending import (
    Change,
    StoreWrite,
    WriteLedger,
    kept_after_failure,
    net_indication,
    note_published,
)
from controller.core.site import Site
from controller.core.store import ReservationStore, StoreError
from controller.core.types import CoreEvent, ReservationEndReason

log = logging.getLogger("controller.core.reservation")

Listener = Callable[[CoreEvent], None]


class CoreWrites:
    """Mixin of controller.core.reservation.ReservationCore: everything between its memory and its store."""

    _ledger: WriteLedger
    _listeners: list[Listener]
    _pending: list[CoreEvent]
    _ended_at: dict[int, ReservationEndReason]
    _site: Site
    _owner: Change[Any] | None
    _netting: bool
    _on_held: Callable[[], None] | None = None

    def _operation(self) -> AbstractContextManager[None]:
        """One core operation (the core's own)."""
        raise NotImplementedError

    def _recheck(self) -> None:
        """Cancel what is no longer possible (the core's own)."""
        raise NotImplementedError

    # ------------------------------------------------------------ the store and its writer

    @property
    def store(self) -> ReservationStore | None:
        """The store the core writes to (None: reservations are not stored)."""
        return self._ledger.store

    @property
    def store_fault(self) -> str | None:
        """Why the store cannot write now (None when it can, or when there is no store)."""
        store = self._ledger.store
        return store.fault if store is not None else None

    @property
    def unsynced_ends(self) -> int:
        """How many ended reservations are still on disk because the store could not write yet."""
        return len(self._ledger.unsynced)

    @property
    def writes_in_flight(self) -> int:
        """Writes handed to the writer and not yet reported back."""
        return len(self._ledger.inflight)

    def defer_writes(
        self, writer: Callable[[StoreWrite], None] | None, *, on_held: Callable[[], None] | None = None
    ) -> None:
        """From now on hand every write to ``writer`` instead of writing it here (None: write here again).

        ``writer`` must not write on the caller's stack: it queues, and reports each write back later with
        ``write_done`` or ``write_failed``, in the order it got them (the runtime's writer thread does).
        ``on_held`` is called when events of something that happened by itself (a plug, an expiry) are held
        behind a change in flight: memory changed now, so the runtime re-evaluates its outputs now.
        """
        if self._ledger.inflight:
            raise RuntimeError("cannot change the writer while writes are in flight")
        self._ledger.writer = writer
        self._on_held = on_held

    def retry_store(self) -> bool:
        """Write the ends not yet on disk, or probe a faulted store; True when the store is writable again.

        With a writer the retry is only handed over (False: not known yet); its outcome shows in ``store_fault``.
        """
        ledger, store = self._ledger, self._ledger.store
        if store is None:
            return True
        if ledger.writer is not None:
            if ledger.inflight:
                return False  # what is in flight answers the question
            if ledger.unsynced:
                ledger.submit(ledger.make())
            elif store.fault is not None:
                ledger.submit(StoreWrite(probe=True))
            else:
                return True
            return False
        try:
            if ledger.unsynced:
                ledger.write_now(ledger.make())
            elif store.fault is not None:
                store.probe()
        except StoreError:
            return False
        return True

    def write_done(self, write: StoreWrite) -> None:
        """The writer made ``write`` durable: forget the ends it deleted and send the events that waited for it."""
        self._emit(self._ledger.done(write))

    def write_failed(self, write: StoreWrite, error: StoreError) -> list[StoreWrite]:
        """The writer could not commit ``write``: it and every write after it fail; returns them, oldest first.

        Their changes are undone newest first, so memory is again what the disk holds (plus the ends owed);
        the events they held are dropped, the other held events sent, and the indication netted.
        """
        failed = self._ledger.fail(write, error)
        changes = [w.change for w in failed if w.change is not None]
        if not changes:
            return failed
        kept = kept_after_failure([held for change in changes for held in change.held], changes)
        with self._operation():
            for change in reversed(changes):
                change.undo()
            log.warning("%d change(s) not stored: the store cannot write (%s); undone", len(changes), error)
            self._site.changed()
            self._recheck()
            self._pending[:0] = kept
            self._netting = True
        return failed

    # ------------------------------------------------------------ used by the core's operations

    def _in_place(self, what: str) -> None:
        """The synchronous calls write in place: refused (before anything changes) while a writer is set."""
        if self._ledger.writer is not None:
            raise RuntimeError(f"{what}: the core hands its writes to a writer; use begin_reserve / begin_cancel")

    def _write_in_place(self, change: Change[Any], what: str) -> None:
        """``change``'s write, done here; StoreError: the change is undone and its events dropped."""
        if change.write is None:
            return
        ended_at = dict(self._ended_at)
        try:
            self._ledger.write_now(change.write)
        except StoreError:
            del self._pending[change.mark :]
            change.undo()
            self._ended_at = ended_at
            log.warning("%s not stored: the store cannot write; nothing changed", what)
            raise

    def _enqueue(self, change: Change[Any], what: str) -> None:
        """Hand ``change``'s write to the writer: its events, and all after them, wait until it is durable.

        Without a writer it is written here and now (StoreError as ``_settle_now``), and the change is settled.
        """
        if self._ledger.writer is None:
            self._write_in_place(change, what)
            if change.write is not None:
                change.write.done = True
            return
        change.after = self._ledger.last()
        if change.write is not None:
            change.write.change = change
            self._ledger.submit(change.write)
        self._owner = change

    def _flush_ends(self) -> None:
        """Write the ends owed (at once, or handed to the writer); not while the store faults (the retry timer does)."""
        ledger = self._ledger
        if ledger.store is None or ledger.store.fault is not None or not ledger.owed():
            return
        if ledger.writer is None:
            with contextlib.suppress(StoreError):  # still owed; the runtime retries
                ledger.write_now(ledger.make())
        else:
            ledger.submit(ledger.make())

    def _release(self, events: list[CoreEvent]) -> None:
        """Send an operation's events now, or hold them behind the newest change in flight (the same order)."""
        owner, self._owner = self._owner, None
        if self._netting:
            self._netting = False
            events = net_indication(events, self._ledger.published)
        holder = self._ledger.holder()
        if holder is None:
            self._emit(events)
            return
        mark = owner.mark if owner is not None else len(events)
        holder.held.extend((event, owner if i >= mark else None) for i, event in enumerate(events))
        if events and (owner is None or mark > 0) and self._on_held is not None:
            self._on_held()  # not only the change's own events: the outputs must not wait for the disk

    def _emit(self, events: list[CoreEvent]) -> None:
        """Send ``events`` to every subscriber, in order; a subscriber's bug must not break the core."""
        for event in events:
            note_published(event, self._ledger.published)
            for listener in list(self._listeners):
                try:
                    listener(event)
                except Exception:
                    log.exception("reservation event subscriber failed on %r", event)
