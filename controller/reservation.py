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
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime

from controller.feasibility import Feasibility, is_feasible
from controller.store import ReservationStore, StoreError
from controller.types import (
    Connector,
    ConnectorState,
    ConnectorType,
    CoreEvent,
    EvseReservedChanged,
    Reservation,
    ReservationCheck,
    ReservationCheckStatus,
    ReservationEnd,
    ReservationEndReason,
    ReservationResult,
    ReservationUpdate,
    ReservationUpdateStatus,
    same_token,
    types_compatible,
)

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Listener = Callable[[CoreEvent], None]

_OCCUPIED_STATES = frozenset({ConnectorState.OCCUPIED, ConnectorState.FAULTED_OCCUPIED})
# Weight of a non-Available connector state when a refusal must name one (Occupied > Faulted > Unavailable).
_WEIGHT = {
    ConnectorState.UNAVAILABLE: (1, ReservationResult.UNAVAILABLE),
    ConnectorState.FAULTED: (2, ReservationResult.FAULTED),
    ConnectorState.UNAVAILABLE_FAULTED: (2, ReservationResult.FAULTED),
    ConnectorState.OCCUPIED: (3, ReservationResult.OCCUPIED),
    ConnectorState.FAULTED_OCCUPIED: (3, ReservationResult.OCCUPIED),
}
_END_STATUS = {
    ReservationEndReason.EXPIRED: ReservationUpdate.EXPIRED,
    ReservationEndReason.USED_TO_START_CHARGING: ReservationUpdate.USED,
}


def utc_now() -> datetime:
    """The default clock: aware UTC now."""
    return datetime.now(UTC)




def _weightiest(states: Iterable[ConnectorState]) -> ReservationResult:
    """The refusal named by the weightiest non-Available state (Unavailable when there is none)."""
    best = (1, ReservationResult.UNAVAILABLE)
    for state in states:
        if state is not ConnectorState.AVAILABLE and _WEIGHT[state][0] > best[0]:
            best = _WEIGHT[state]
    return best[1]


class ReservationCore:
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
        self._evses: dict[int, tuple[Connector, ...]] = {}
        for evse_id in sorted(evses):
            connectors = tuple(evses[evse_id])
            if isinstance(evse_id, bool) or not isinstance(evse_id, int) or evse_id < 1:
                raise ValueError(f"evse id must be a positive integer, got {evse_id!r}")
            if not connectors:
                raise ValueError(f"evse {evse_id}: has no connectors")
            ids = [c.id for c in connectors]
            if len(set(ids)) != len(ids):
                raise ValueError(f"evse {evse_id}: connector ids are not unique: {ids}")
            self._evses[evse_id] = connectors
        self._types_of = {e: frozenset(c.type for c in cs) for e, cs in self._evses.items()}
        self._clock = clock
        self._store = store
        self._feasible_fn = feasibility
        self._states = {(e, c.id): ConnectorState.AVAILABLE for e, cs in self._evses.items() for c in cs}
        self._plugged: set[int] = set()
        self._specific: dict[int, Reservation] = {}
        self._global: list[Reservation] = []
        self._seq: dict[int, int] = {}  # reservation_id -> arrival sequence
        self._next_seq = 0
        self._listeners: list[Listener] = [listener] if listener is not None else []
        self._pending: list[CoreEvent] = []
        self._ended_at: dict[int, ReservationEndReason] = {}  # evse -> reason, within one operation
        self._reserved: frozenset[int] = frozenset()
        self._global_part: frozenset[int] = frozenset()
        self._depth = 0
        self._dirty = True  # something that decides the reserved indication changed
        self._groups_cache: Counter[frozenset[ConnectorType]] | None = None  # free EVSEs minus specific ones
        self._expired_now: list[ReservationEnd] = []
        self._unsynced: set[int] = set()  # ended in memory, row not yet deleted (the store could not write)
        self.startup_events: list[CoreEvent] = []
        self.startup_problems: list[str] = []
        self._listeners.append(self.startup_events.append)
        with self._operation():
            self._reload()
            for (evse_id, connector_id), state in sorted((states or {}).items()):
                self._set_state(evse_id, connector_id, state)
            for evse_id in plugged:
                self._check_evse(evse_id)
                self._plugged.add(evse_id)
                self._changed()
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
                if self._unsynced and self._store is not None and self._store.fault is None:
                    with contextlib.suppress(StoreError):  # kept in _unsynced; the runtime retries
                        self._write()
                self._refresh_indication()
                events, self._pending, self._ended_at = self._pending, [], {}
                for event in events:
                    for listener in list(self._listeners):
                        try:
                            listener(event)
                        except Exception:  # a subscriber's bug must not break the core
                            log.exception("reservation event subscriber failed on %r", event)

    def _end(
        self, reservation: Reservation, reason: ReservationEndReason, status: ReservationUpdate, *, stored: bool = False
    ) -> None:
        """End one live reservation: in memory now, then its two events; on disk with the operation's write.

        ``stored``: the caller already deleted its row. Otherwise the delete is written when the operation
        ends (or later, should the store be unable to write now: the safety loop never waits for the disk).
        """
        self._detach(reservation)
        self._note_end(reservation, reason, status, stored=stored)

    def _detach(self, reservation: Reservation) -> None:
        """Take a live reservation out of memory (no events, no write)."""
        if reservation.evse_id is not None and self._specific.get(reservation.evse_id) is reservation:
            del self._specific[reservation.evse_id]
            self._changed()
        else:
            self._global.remove(reservation)
            self._dirty = True
        self._seq.pop(reservation.reservation_id, None)

    def _attach(self, reservation: Reservation, seq: int) -> None:
        """Put a detached reservation back where it was (global ones in arrival order)."""
        self._seq[reservation.reservation_id] = seq
        if reservation.evse_id is not None:
            self._specific[reservation.evse_id] = reservation
            self._changed()
        else:
            at = sum(1 for r in self._global if self._seq[r.reservation_id] < seq)
            self._global.insert(at, reservation)
            self._dirty = True

    def _note_end(
        self, reservation: Reservation, reason: ReservationEndReason, status: ReservationUpdate, *, stored: bool
    ) -> None:
        """Log and queue the two events of an ended reservation; remember its row must go unless ``stored``."""
        rid = reservation.reservation_id
        if reservation.evse_id is not None:
            self._ended_at[reservation.evse_id] = reason
        if self._store is not None and not stored:
            self._unsynced.add(rid)
        log.info("reservation %d ended: %s", rid, reason.value)
        self._pending.append(ReservationEnd(reason, rid, reservation.evse_id))
        self._pending.append(ReservationUpdateStatus(rid, status))

    def _write(self, puts: Sequence[tuple[int, Reservation]] = (), deletes: Iterable[int] = ()) -> None:
        """One durable transaction: ``puts``, ``deletes`` and every end not yet on disk. Raises StoreError."""
        if self._store is None:
            return
        put_ids = {r.reservation_id for _seq, r in puts}
        pending = self._unsynced - put_ids
        self._store.write(puts, [*pending, *(d for d in deletes if d not in pending)])
        self._unsynced -= pending | put_ids

    def _expire(self, now: datetime) -> list[ReservationEnd]:
        due = [r for r in self._live() if r.expiry_time <= now]
        due.sort(key=lambda r: (r.expiry_time, self._seq[r.reservation_id]))
        for r in due:
            self._end(r, ReservationEndReason.EXPIRED, ReservationUpdate.EXPIRED)
        return [ReservationEnd(ReservationEndReason.EXPIRED, r.reservation_id, r.evse_id) for r in due]

    def _live(self) -> list[Reservation]:
        return [*self._specific.values(), *self._global]

    def _find(self, reservation_id: int) -> Reservation | None:
        for r in self._live():
            if r.reservation_id == reservation_id:
                return r
        return None

    # ------------------------------------------------------------ site state

    def _check_evse(self, evse_id: int) -> None:
        if evse_id not in self._evses:
            raise ValueError(f"unknown evse {evse_id} (known: {sorted(self._evses)})")

    def _is_free(self, evse_id: int, taken: Iterable[int]) -> bool:
        """Not plugged, no connector occupied, not held by an EVSE-specific reservation."""
        if evse_id in self._plugged or evse_id in taken:
            return False
        return not any(self._states[(evse_id, c.id)] in _OCCUPIED_STATES for c in self._evses[evse_id])

    def _available_types(self, evse_id: int) -> frozenset[ConnectorType]:
        return frozenset(
            c.type for c in self._evses[evse_id] if self._states[(evse_id, c.id)] is ConnectorState.AVAILABLE
        )

    def _has_type(self, evse_id: int, wanted: ConnectorType | None) -> bool:
        types = self._types_of[evse_id]
        return wanted is None or wanted is ConnectorType.Unknown or ConnectorType.Unknown in types or wanted in types

    def _changed(self) -> None:
        """States, plugs or EVSE-specific reservations changed: drop what was derived from them."""
        self._dirty = True
        self._groups_cache = None

    def _free_groups(self, taken: frozenset[int]) -> Counter[frozenset[ConnectorType]]:
        """Free EVSEs, not in ``taken``, grouped by the types of their Available connectors."""
        specific = self._specific.keys()
        if taken.issuperset(specific):
            if self._groups_cache is None:
                self._groups_cache = Counter(
                    self._available_types(e) for e in self._evses if e not in specific and self._is_free(e, ())
                )
            groups = self._groups_cache
            extra = [e for e in taken if e not in specific and self._is_free(e, ())]
            if not extra:
                return groups
            groups = groups.copy()
            for e in extra:
                groups[self._available_types(e)] -= 1
            return groups
        return Counter(self._available_types(e) for e in self._evses if self._is_free(e, taken))

    def _feasible(self, cars: Sequence[ConnectorType], taken: frozenset[int]) -> bool:
        """Every global car can charge with ``taken`` EVSEs held by EVSE-specific reservations."""
        if len(cars) + len(taken) > len(self._evses):
            return False
        if not cars:
            return True
        return self._feasible_fn(cars, self._free_groups(taken))

    def _global_types(self) -> list[ConnectorType]:
        return [r.wanted_type for r in self._global]

    # ------------------------------------------------------------ deciding

    def _decide(self, r: Reservation) -> ReservationResult:
        """Steps 3-5 of DESIGN.md's reserve_now decision, for a reservation not yet live."""
        wanted = r.wanted_type
        if r.evse_id is not None:
            evse_id = r.evse_id
            if evse_id in self._specific:
                return ReservationResult.OCCUPIED
            if evse_id not in self._evses:
                return ReservationResult.REJECTED
            compatible = [c for c in self._evses[evse_id] if types_compatible(c.type, wanted)]
            if not compatible:
                return ReservationResult.REJECTED
            states = [self._states[(evse_id, c.id)] for c in self._evses[evse_id]]
            if evse_id in self._plugged or ConnectorState.OCCUPIED in states:
                return ReservationResult.OCCUPIED
            if ConnectorState.FAULTED_OCCUPIED in states:
                return ReservationResult.FAULTED
            own = [self._states[(evse_id, c.id)] for c in compatible]
            if ConnectorState.AVAILABLE not in own:
                return _weightiest(own)
            taken = frozenset(self._specific) | {evse_id}
            if self._global and not self._feasible(self._global_types(), taken):
                return self._refusal(wanted)
            return ReservationResult.ACCEPTED
        if not any(self._has_type(e, wanted) for e in self._evses):
            return ReservationResult.REJECTED
        if not self._feasible([*self._global_types(), wanted], frozenset(self._specific)):
            return self._refusal(wanted)
        return ReservationResult.ACCEPTED

    def _refusal(self, wanted: ConnectorType) -> ReservationResult:
        """Step 5: Occupied if anything is reserved or plugged, else the weightiest compatible state."""
        if self._global or self._specific or self._plugged:
            return ReservationResult.OCCUPIED
        return _weightiest(
            self._states[(e, c.id)] for e, cs in self._evses.items() for c in cs if types_compatible(c.type, wanted)
        )

    def _insert(self, r: Reservation, seq: int | None = None) -> None:
        if seq is None:
            seq = self._next_seq
        self._next_seq = max(self._next_seq, seq + 1)
        self._seq[r.reservation_id] = seq
        if r.evse_id is not None:
            self._specific[r.evse_id] = r
            self._changed()
        else:
            self._global.append(r)
            self._dirty = True

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
            self._next_seq = max(self._next_seq, row.seq + 1)
            if r.expiry_time <= now:
                self._note_end(r, ReservationEndReason.EXPIRED, ReservationUpdate.EXPIRED, stored=False)
                continue
            result = self._decide(r)
            if result is ReservationResult.ACCEPTED:
                self._insert(r, row.seq)
            else:
                log.warning("stored reservation %d no longer possible (%s)", r.reservation_id, result.value)
                self._note_end(r, ReservationEndReason.CANCELLED, ReservationUpdate.REMOVED, stored=False)
        self._ended_at = {}  # nothing was reserved before: no EVSE's indication ends here

    def _recheck(self) -> None:
        """Cancel what is no longer possible, first-come first-kept (specific by EVSE, then global)."""
        kept: set[int] = set()
        cancel: list[Reservation] = []
        for evse_id in sorted(self._specific):
            if self._feasible([], frozenset(kept | {evse_id})):
                kept.add(evse_id)
            else:
                cancel.append(self._specific[evse_id])
        cars: list[ConnectorType] = []
        for r in self._global:
            if self._feasible([*cars, r.wanted_type], frozenset(kept)):
                cars.append(r.wanted_type)
            else:
                cancel.append(r)
        for r in cancel:
            self._end(r, ReservationEndReason.CANCELLED, ReservationUpdate.REMOVED)

    # ------------------------------------------------------------ reserved indication

    def _compute_global_part(self) -> tuple[frozenset[int], frozenset[int]]:
        """(EVSEs held for global reservations, available EVSEs), as EVerest's Auth computes them."""
        taken = frozenset(self._specific)
        available = frozenset(e for e in self._evses if self._is_free(e, taken) and self._available_types(e))
        if not self._global:
            return frozenset(), available
        if len(available) == len(self._global):
            return available, available
        cars = self._global_types()
        held: set[int] = set()
        for t in dict.fromkeys(cars):
            if not self._feasible([*cars, t], taken):
                held.update(e for e in available if self._has_type(e, t))
        return frozenset(held), available

    def _refresh_indication(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        global_part, available = self._compute_global_part()
        now_reserved = frozenset(self._specific) | global_part
        for evse_id in sorted(self._reserved | now_reserved):
            was, now = evse_id in self._reserved, evse_id in now_reserved
            if was == now:
                continue
            reason: ReservationEndReason | None = None
            if not now:
                if evse_id in self._ended_at:
                    reason = self._ended_at[evse_id]
                elif evse_id in self._global_part and evse_id in available:
                    reason = ReservationEndReason.GLOBAL_RESERVATION_REQUIREMENT_DROPPED
            self._pending.append(EvseReservedChanged(evse_id, now, reason))
        self._reserved, self._global_part = now_reserved, global_part

    # ------------------------------------------------------------ public: changes

    def reserve_now(self, reservation: Reservation) -> ReservationResult:
        """Decide a ReserveNow exactly in DESIGN.md's order; Accepted means stored durably.

        Raises StoreError when the outcome cannot be written; then nothing changed, in memory or on disk
        (a reservation it would have replaced is still live).
        """
        with self._operation():
            if reservation.expiry_time < self._clock():
                return ReservationResult.REJECTED
            rid = reservation.reservation_id
            old = self._find(rid)
            old_seq = self._seq[rid] if old is not None else 0
            if old is not None:
                # Replaced: decided without it; its row goes in the SAME transaction that stores the outcome
                # (the new row overwrites it, or it is deleted), so a power cut cannot lose it in between.
                self._detach(old)
            result = self._decide(reservation)
            seq = self._next_seq
            try:
                if result is ReservationResult.ACCEPTED:
                    self._write(puts=[(seq, reservation)])
                elif old is not None:
                    self._write(deletes=[rid])
            except StoreError:
                if old is not None:
                    self._attach(old, old_seq)
                log.warning("reserve_now %d not stored: the store cannot write; nothing changed", rid)
                raise
            if old is not None:
                self._note_end(old, ReservationEndReason.CANCELLED, ReservationUpdate.REMOVED, stored=True)
            if result is ReservationResult.ACCEPTED:
                self._insert(reservation, seq)
                self._pending.append(ReservationUpdateStatus(rid, ReservationUpdate.PLACED))
            log.info("reserve_now %d -> %s", rid, result.value)
            return result

    def cancel_reservation(self, reservation_id: int) -> bool:
        """Cancel on request; False if no such live reservation. StoreError when it cannot be written (kept)."""
        with self._operation():
            r = self._find(reservation_id)
            if r is None:
                return False
            self._write(deletes=[reservation_id])  # StoreError: refused, nothing changed
            self._end(r, ReservationEndReason.CANCELLED, ReservationUpdate.CANCELLED, stored=True)
            return True

    def use_reservation(self, reservation_id: int) -> bool:
        """The reserved token started charging: the reservation ends UsedToStartCharging."""
        with self._operation():
            r = self._find(reservation_id)
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
        self._check_evse(evse_id)
        key = (evse_id, connector_id)
        if key not in self._states:
            known = [c.id for c in self._evses[evse_id]]
            raise ValueError(f"evse {evse_id}: unknown connector {connector_id} (known: {known})")
        if self._states[key] is state:
            return
        self._states[key] = state
        self._changed()
        if state is ConnectorState.AVAILABLE:
            return
        own = self._specific.get(evse_id)
        connector_type = next(c.type for c in self._evses[evse_id] if c.id == connector_id)
        if own is not None and types_compatible(connector_type, own.connector_type):
            self._end(own, ReservationEndReason.CANCELLED, ReservationUpdate.REMOVED)
            return
        self._recheck()

    def set_plugged_in(self, evse_id: int, plugged: bool) -> None:
        """A car was plugged in or out; this cancels nothing, but changes what is free."""
        with self._operation():
            self._check_evse(evse_id)
            if plugged:
                self._plugged.add(evse_id)
            else:
                self._plugged.discard(evse_id)
            self._changed()

    # ------------------------------------------------------------ public: the store

    @property
    def store_fault(self) -> str | None:
        """Why the store cannot write now (None when it can, or when there is no store)."""
        return self._store.fault if self._store is not None else None

    @property
    def unsynced_ends(self) -> int:
        """How many ended reservations are still on disk because the store could not write yet."""
        return len(self._unsynced)

    def retry_store(self) -> bool:
        """Write the ends not yet on disk, or probe a faulted store; True when the store is writable again."""
        if self._store is None:
            return True
        try:
            if self._unsynced:
                self._write()
            elif self._store.fault is not None:
                self._store.probe()
        except StoreError:
            return False
        return True

    # ------------------------------------------------------------ public: questions

    def is_charging_possible(self, evse_id: int) -> bool:
        """May a driver without a reservation charge here and every global reservation still be honoured?"""
        with self._operation():
            if evse_id in self._specific or evse_id not in self._evses:
                return False
            return self._feasible(self._global_types(), frozenset(self._specific) | {evse_id})

    def is_evse_reserved(self, evse_id: int) -> bool:
        """Is this EVSE held by an EVSE-specific reservation?"""
        with self._operation():
            return evse_id in self._specific

    @property
    def last_reserved_evses(self) -> frozenset[int]:
        """The reserved set as last computed, without expiring anything first (a fallback that cannot fail)."""
        return self._reserved

    def reserved_evses(self) -> frozenset[int]:
        """The EVSEs whose reserved LED must be on now."""
        with self._operation():
            pass
        return self._reserved

    def matches_reserved_identifier(
        self, id_token: str, evse_id: int | None = None, parent_id_token: str | None = None
    ) -> int | None:
        """The id of the reservation this token (or its parent) holds here, or None."""
        with self._operation():

            def matches(r: Reservation) -> bool:
                return same_token(r.id_token, id_token) or same_token(r.parent_id_token, parent_id_token)

            if evse_id is not None and evse_id in self._specific:
                own = self._specific[evse_id]
                return own.reservation_id if matches(own) else None
            for r in self._global:
                if matches(r):
                    return r.reservation_id
            return None

    def has_reservation_parent_id(self, evse_id: int | None) -> bool:
        """Does the reservation on this EVSE (or, failing one, any global reservation) have a parent token?"""
        with self._operation():
            if evse_id is not None:
                if evse_id not in self._evses:
                    return False
                if evse_id in self._specific:
                    return self._specific[evse_id].parent_id_token is not None
            return any(r.parent_id_token is not None for r in self._global)

    def exists_reservation(self, check: ReservationCheck) -> ReservationCheckStatus:
        """The four-way reservation check of EVerest's Auth (with its is_evse_reserved(bool) bug fixed)."""
        found = self.matches_reserved_identifier(check.id_token, check.evse_id, check.group_id_token)
        if check.evse_id is None:
            return (
                ReservationCheckStatus.RESERVED_FOR_TOKEN if found is not None else ReservationCheckStatus.NOT_RESERVED
            )
        if not self.is_evse_reserved(check.evse_id):
            return ReservationCheckStatus.NOT_RESERVED
        if found is not None:
            return ReservationCheckStatus.RESERVED_FOR_TOKEN
        if check.group_id_token is None and self.has_reservation_parent_id(check.evse_id):
            return ReservationCheckStatus.RESERVED_FOR_OTHER_TOKEN_AND_HAS_PARENT_TOKEN
        return ReservationCheckStatus.RESERVED_FOR_OTHER_TOKEN

    def next_expiry(self) -> datetime | None:
        """When the next reservation expires (for the runtime's one timer), or None."""
        return min((r.expiry_time for r in self._live()), default=None)

    def reservations(self) -> list[Reservation]:
        """Live reservations in arrival order."""
        return sorted(self._live(), key=lambda r: self._seq[r.reservation_id])

    def reservation(self, reservation_id: int) -> Reservation | None:
        """One live reservation by id."""
        return self._find(reservation_id)

    @property
    def evse_ids(self) -> list[int]:
        """Configured EVSE ids, ascending."""
        return list(self._evses)

    def connectors(self, evse_id: int) -> tuple[Connector, ...]:
        """The connectors of one EVSE."""
        self._check_evse(evse_id)
        return self._evses[evse_id]

    def connector_state(self, evse_id: int, connector_id: int) -> ConnectorState:
        """The state last set for one connector."""
        return self._states[(evse_id, connector_id)]

    def is_plugged_in(self, evse_id: int) -> bool:
        """Is a car plugged in at this EVSE?"""
        return evse_id in self._plugged
