"""The reservation core: EVerest Auth semantics (see shared/DESIGN.md), decided in polynomial time.

Pure: no threads, timers or I/O except through the store it is given; time comes from ``clock``.
Every public call first ends reservations that are due, then acts; events (ReservationEnd,
ReservationUpdateStatus, EvseReservedChanged) reach subscribers in the order they happen,
after the change is durable.

The safety loop never waits for the disk: a reservation that ends by itself (expiry, use, a fault
or an impossible global) ends in memory at once, so its LED follows, and its row is deleted with
the operation's write, or later if the store cannot write now (``retry_store``). A change asked
for (reserve_now, cancel_reservation) is refused with StoreError instead, and leaves memory and
disk as they were.

Two ways to write (controller.core.writes): without a writer every change is written before its call
returns; with one (the runtime's writer thread) ``begin_reserve``/``begin_cancel`` decide and make the
change in memory at once, later changes are decided against it, and its write, and its events, wait for
the writer: the caller is answered when the write is durable, and a write that fails undoes the change.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime

from controller.core.feasibility import Feasibility, is_feasible
from controller.core.pending import Change, WriteLedger, nothing_to_undo
from controller.core.questions import CoreQuestions
from controller.core.site import Site
from controller.core.store import ReservationStore
from controller.core.types import (
    Connector,
    ConnectorState,
    CoreEvent,
    EvseReservedChanged,
    Reservation,
    ReservationEnd,
    ReservationEndReason,
    ReservationResult,
    ReservationUpdate,
    ReservationUpdateStatus,
    types_compatible,
)
from controller.core.writes import CoreWrites

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Listener = Callable[[CoreEvent], None]


def utc_now() -> datetime:
    """The default clock: aware UTC now."""
    return datetime.now(UTC)


class ReservationCore(CoreWrites, CoreQuestions):
    """Reservations for a site of EVSEs, each with typed connectors."""

    def __init__(
        self,
        evses: Mapping[int, Sequence[Connector]],
        *,
        clock: Clock = utc_now,
        store: ReservationStore | None = None,
        feasibility: Feasibility = is_feasible,
        states: Mapping[tuple[int, int], ConnectorState] | None = None,
        plugged: Iterable[int] = (),
        listener: Listener | None = None,
    ) -> None:
        self._site = Site(evses, feasibility)
        self._clock = clock
        self._store = store
        self._ledger = WriteLedger(store)  # ends owed, writes in flight, events held (controller.core.writes)
        self._owner: Change[object] | None = None  # the change whose events the operation is making
        self._netting = False  # the operation undid changes: net its indication changes
        self._listeners: list[Listener] = [listener] if listener is not None else []
        self._pending: list[CoreEvent] = []
        self._ended_at: dict[int, ReservationEndReason] = {}  # evse -> reason, within one operation
        self._reserved: frozenset[int] = frozenset()
        self._held_for_globals: frozenset[int] = frozenset()  # EVSEs reserved only for the global reservations
        self._depth = 0
        self._expired_now: list[ReservationEnd] = []
        self.startup_events: list[CoreEvent] = []
        self.startup_problems: list[str] = []
        self._listeners.append(self.startup_events.append)
        with self._operation():
            self._reload()
            for (evse_id, connector_id), state in sorted((states or {}).items()):
                self._set_state(evse_id, connector_id, state)
            for evse_id in plugged:
                self._site.check_evse(evse_id)
                self._site.plugged.add(evse_id)
                self._site.changed(evse_id)
        self._listeners = [cb for cb in self._listeners if cb != self.startup_events.append]

    # ------------------------------------------------------------ events and operations

    def subscribe(self, callback: Listener) -> Callable[[], None]:
        """Receive every event from now on; returns a function that unsubscribes."""
        self._listeners.append(callback)

        def unsubscribe() -> None:
            # by identity: two listeners may compare equal (e.g. two empty lists)
            self._listeners[:] = [cb for cb in self._listeners if cb is not callback]

        return unsubscribe

    @contextmanager
    def _operation(self) -> Iterator[None]:
        """Expire what is due, act, then emit ends first and reserved-indication changes last."""
        self._depth += 1
        try:
            if self._depth == 1:
                self._expired_now = self._expire(self._clock())
            yield
        finally:
            self._depth -= 1
            if self._depth == 0:
                self._flush_ends()
                self._refresh_indication()
                events, self._pending, self._ended_at = self._pending, [], {}
                self._release(events)

    def _end(
        self, reservation: Reservation, reason: ReservationEndReason, status: ReservationUpdate, *, stored: bool = False
    ) -> None:
        """End one live reservation: in memory now, then its two events; on disk with the operation's write.

        ``stored``: the caller already deleted its row. Otherwise the delete is written when the operation
        ends (or later, should the store be unable to write now: the safety loop never waits for the disk).
        """
        self._site.detach(reservation)
        self._note_end(reservation, reason, status, stored=stored)

    def _note_end(
        self, reservation: Reservation, reason: ReservationEndReason, status: ReservationUpdate, *, stored: bool
    ) -> None:
        """Log and queue the two events of an ended reservation; remember its row must go unless ``stored``."""
        rid = reservation.reservation_id
        if reservation.evse_id is not None:
            self._ended_at[reservation.evse_id] = reason
        if self._store is not None and not stored:
            self._ledger.note_end(rid)
        log.info("reservation %d ended: %s", rid, reason.value)
        self._pending.append(ReservationEnd(reason, rid, reservation.evse_id))
        self._pending.append(ReservationUpdateStatus(rid, status))

    def _expire(self, now: datetime) -> list[ReservationEnd]:
        """End the reservations due at ``now``, by (expiry time, arrival); O(1) when none is (a heap)."""
        due = self._site.due(now)
        for r in due:
            self._end(r, ReservationEndReason.EXPIRED, ReservationUpdate.EXPIRED)
        return [ReservationEnd(ReservationEndReason.EXPIRED, r.reservation_id, r.evse_id) for r in due]

    def _reload(self) -> None:
        """Re-make stored reservations in arrival order; end the expired and the impossible.

        A row that is not kept is never inserted (it would take the slot of a kept one on the same EVSE);
        its row is deleted with all the others in the one write that ends the start-up operation.
        """
        if self._store is None:
            return
        rows, self.startup_problems = self._store.load()
        now = self._clock()
        for row in rows:
            r = row.reservation
            self._site.next_seq = max(self._site.next_seq, row.seq + 1)
            if r.expiry_time <= now:
                self._note_end(r, ReservationEndReason.EXPIRED, ReservationUpdate.EXPIRED, stored=False)
                continue
            result = self._site.decide(r)
            if result is ReservationResult.ACCEPTED:
                self._site.insert(r, row.seq)
            else:
                log.warning("stored reservation %d no longer possible (%s)", r.reservation_id, result.value)
                self._note_end(r, ReservationEndReason.CANCELLED, ReservationUpdate.REMOVED, stored=False)
        self._ended_at = {}  # nothing was reserved before: no EVSE's indication ends here

    def _recheck(self) -> None:
        """Cancel what is no longer possible, first-come first-kept (specific by EVSE, then global)."""
        for r in self._site.impossible():
            self._end(r, ReservationEndReason.CANCELLED, ReservationUpdate.REMOVED)

    # ------------------------------------------------------------ reserved indication

    def _refresh_indication(self) -> None:
        """Queue an EvseReservedChanged for each EVSE whose reserved indication changed, by EVSE id."""
        if not self._site.dirty:
            return
        self._site.dirty = False
        global_part, available = self._site.global_part()
        now_reserved = frozenset(self._site.specific) | global_part
        for evse_id in sorted(self._reserved ^ now_reserved):
            now = evse_id in now_reserved
            reason: ReservationEndReason | None = None
            if not now:
                if evse_id in self._ended_at:
                    reason = self._ended_at[evse_id]
                elif evse_id in self._held_for_globals and evse_id in available:
                    reason = ReservationEndReason.GLOBAL_RESERVATION_REQUIREMENT_DROPPED
            self._pending.append(EvseReservedChanged(evse_id, now, reason))
        self._reserved, self._held_for_globals = now_reserved, global_part

    # ------------------------------------------------------------ public: changes

    def reserve_now(self, reservation: Reservation) -> ReservationResult:
        """Decide a ReserveNow exactly in DESIGN.md's order; Accepted means stored durably (no writer).

        Raises StoreError when the outcome cannot be written; then nothing changed, in memory or on disk
        (a reservation it would have replaced is still live).
        """
        self._in_place("reserve_now")
        with self._operation():
            change = self._decide_reserve(reservation)
            self._write_in_place(change, f"reserve_now {reservation.reservation_id}")
            return change.result

    def begin_reserve(self, reservation: Reservation) -> Change[ReservationResult]:
        """``reserve_now`` made in memory now, its write handed to the writer (see controller.core.writes).

        Answer with ``change.result`` once ``change.write`` is durable (and ``change.after`` settled); a failed
        write has undone the change (``write.error``: the StoreError to answer with). Without a writer it is
        written before this returns, as ``reserve_now``.
        """
        with self._operation():
            change = self._decide_reserve(reservation)
            self._enqueue(change, f"reserve_now {reservation.reservation_id}")
            return change

    def _decide_reserve(self, reservation: Reservation) -> Change[ReservationResult]:
        """Decide a ReserveNow and make it in memory; the change carries the write it needs and its undo."""
        mark = len(self._pending)
        if reservation.expiry_time < self._clock():
            return Change(ReservationResult.REJECTED, nothing_to_undo, mark=mark)
        rid = reservation.reservation_id
        old = self._site.find(rid)
        old_seq = self._site.seq[rid] if old is not None else 0
        if old is not None:
            # Replaced: decided without it; its row goes in the SAME transaction that stores the outcome
            # (the new row overwrites it, or it is deleted), so a power cut cannot lose it in between.
            self._site.detach(old)
        result = self._site.decide(reservation)
        seq = self._site.next_seq
        accepted = result is ReservationResult.ACCEPTED
        write = None
        if accepted:
            write = self._ledger.make(puts=[(seq, reservation)])
        elif old is not None:
            write = self._ledger.make(deletes=[rid])
        if old is not None:
            self._note_end(old, ReservationEndReason.CANCELLED, ReservationUpdate.REMOVED, stored=True)
        if accepted:
            self._site.insert(reservation, seq)
            self._pending.append(ReservationUpdateStatus(rid, ReservationUpdate.PLACED))
        log.info("reserve_now %d -> %s", rid, result.value)

        def undo() -> None:
            if accepted and self._site.find(rid) is reservation:
                self._site.detach(reservation)
            if old is not None and self._site.find(rid) is None:
                self._site.insert(old, old_seq)
                self._ledger.unsynced.pop(rid, None)  # its row is still there: it is live again

        return Change(result, undo, write=write, inserted=rid if accepted else None, mark=mark)

    def cancel_reservation(self, reservation_id: int) -> bool:
        """Cancel on request; False if no such live reservation. StoreError when it cannot be written (kept)."""
        self._in_place("cancel_reservation")
        with self._operation():
            change = self._decide_cancel(reservation_id)
            self._write_in_place(change, f"cancel_reservation {reservation_id}")
            return change.result

    def begin_cancel(self, reservation_id: int) -> Change[bool]:
        """``cancel_reservation`` made in memory now, its write handed to the writer (as ``begin_reserve``)."""
        with self._operation():
            change = self._decide_cancel(reservation_id)
            self._enqueue(change, f"cancel_reservation {reservation_id}")
            return change

    def _decide_cancel(self, reservation_id: int) -> Change[bool]:
        """Cancel in memory; the change carries the delete to write and how to put the reservation back."""
        mark = len(self._pending)
        r = self._site.find(reservation_id)
        if r is None:
            return Change(False, nothing_to_undo, mark=mark)
        seq = self._site.seq[reservation_id]
        write = self._ledger.make(deletes=[reservation_id])
        self._end(r, ReservationEndReason.CANCELLED, ReservationUpdate.CANCELLED, stored=True)

        def undo() -> None:
            if self._site.find(reservation_id) is None:
                self._site.insert(r, seq)

        return Change(True, undo, write=write, mark=mark)

    def use_reservation(self, reservation_id: int) -> bool:
        """The reserved token started charging: the reservation ends UsedToStartCharging."""
        with self._operation():
            r = self._site.find(reservation_id)
            if r is None:
                return False
            self._end(r, ReservationEndReason.USED_TO_START_CHARGING, ReservationUpdate.USED)
            return True

    def expire_due(self) -> list[ReservationEnd]:
        """End every reservation whose expiry time has come (expiry <= now); what ended, in order."""
        with self._operation():
            return list(self._expired_now)

    def set_connector_state(self, evse_id: int, connector_id: int, state: ConnectorState) -> None:
        """A connector changed state; non-Available states may cancel reservations (DESIGN.md)."""
        with self._operation():
            self._set_state(evse_id, connector_id, ConnectorState(state))

    def _set_state(self, evse_id: int, connector_id: int, state: ConnectorState) -> None:
        self._site.check_evse(evse_id)
        key = (evse_id, connector_id)
        if key not in self._site.states:
            known = [c.id for c in self._site.evses[evse_id]]
            raise ValueError(f"evse {evse_id}: unknown connector {connector_id} (known: {known})")
        if self._site.states[key] is state:
            return
        self._site.states[key] = state
        self._site.changed(evse_id)
        if state is ConnectorState.AVAILABLE:
            return
        own = self._site.specific.get(evse_id)
        connector_type = next(c.type for c in self._site.evses[evse_id] if c.id == connector_id)
        if own is not None and types_compatible(connector_type, own.connector_type):
            self._end(own, ReservationEndReason.CANCELLED, ReservationUpdate.REMOVED)
            return
        self._recheck()

    def set_plugged_in(self, evse_id: int, plugged: bool) -> None:
        """A car was plugged in or out; this cancels nothing, but changes what is free."""
        with self._operation():
            self._site.check_evse(evse_id)
            if plugged:
                self._site.plugged.add(evse_id)
            else:
                self._site.plugged.discard(evse_id)
            self._site.changed(evse_id)
