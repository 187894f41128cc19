"""The site as the reservation core sees it, and the decisions that only read it, kept incremental.

``Site`` holds the EVSEs with their typed connectors, each connector's state, the plugged EVSEs and
the live reservations (EVSE-specific by EVSE, global in arrival order, with their arrival sequence).
It answers DESIGN.md's questions: may this reservation be placed (``decide``), which reservations are
no longer possible (``impossible``), which EVSEs the global reservations hold (``global_part``). It
neither stores, emits events nor reads a clock: ``controller.core.reservation.ReservationCore`` does that.

The incremental algorithm. Every decision depends on the site only through the free EVSEs grouped by
the types of their Available connectors, and on the global reservations only through how many of each
wanted type there are (cars of one type are interchangeable); so both are kept up to date as things
happen instead of being recounted: a change of one connector's state, one plug or one EVSE-specific
reservation re-classifies that one EVSE in the ``FreeIndex`` (which also keeps the available EVSEs
per connector type, for the reserved indication), and placing or ending a global reservation moves one
count. A feasibility question then costs the same whatever the number of EVSEs: a ``HallTable`` built
once per version of the free groups answers it from the type counts with Hall's condition, which is
exactly when the max-flow of ``is_feasible`` saturates (any feasibility function given instead is
called as before, on the same counts and groups). ``global_part``'s per-type question ("one more car of
type t?") is cached per (free-groups version, global-reservations version), and ``decide`` of a global
reservation reuses it. ``impossible`` keeps every EVSE-specific reservation (with no global car the
check only compares counts, and they always fit) and asks first whether all global reservations are
still feasible together, the usual answer after a change; only if not does it look for the first
global reservation the first-come first-kept scan would drop, by binary search over arrival order,
which is exact because feasibility is monotone (a prefix that fails makes every longer one with the
same kept ones fail); it drops that one and asks again about all that come after it. Reservations are
indexed by id and their expiry times kept in a heap (``ExpiryQueue``), so a call with nothing due
costs O(1). Each answer equals what the former full recomputation gave, checked by
tests/core/test_incremental_differential.py against a frozen copy of it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence, ValuesView
from datetime import datetime

from controller.core.expiry import ExpiryQueue
from controller.core.feasibility import HALL_LIMIT, Feasibility, HallTable, feasible_counts, is_feasible
from controller.core.freeindex import Contribution, FreeIndex
from controller.core.types import (
    Connector,
    ConnectorState,
    ConnectorType,
    Reservation,
    ReservationResult,
    types_compatible,
)

_OCCUPIED_STATES = frozenset({ConnectorState.OCCUPIED, ConnectorState.FAULTED_OCCUPIED})
# Weight of a non-Available connector state when a refusal must name one (Occupied > Faulted > Unavailable).
_WEIGHT = {
    ConnectorState.UNAVAILABLE: (1, ReservationResult.UNAVAILABLE),
    ConnectorState.FAULTED: (2, ReservationResult.FAULTED),
    ConnectorState.UNAVAILABLE_FAULTED: (2, ReservationResult.FAULTED),
    ConnectorState.OCCUPIED: (3, ReservationResult.OCCUPIED),
    ConnectorState.FAULTED_OCCUPIED: (3, ReservationResult.OCCUPIED),
}
Counts = Mapping[ConnectorType, int]


def weightiest(states: Iterable[ConnectorState]) -> ReservationResult:
    """The refusal named by the weightiest non-Available state (Unavailable when there is none)."""
    best = (1, ReservationResult.UNAVAILABLE)
    for state in states:
        if state is not ConnectorState.AVAILABLE and _WEIGHT[state][0] > best[0]:
            best = _WEIGHT[state]
    return best[1]


class Site:
    """EVSEs, connector states, plugs and live reservations, with the decisions over them."""

    def __init__(self, evses: Mapping[int, Sequence[Connector]], feasibility: Feasibility) -> None:
        """Validate the EVSEs; every connector starts Available, nothing plugged or reserved."""
        self.evses: dict[int, tuple[Connector, ...]] = {}
        for evse_id in sorted(evses):
            connectors = tuple(evses[evse_id])
            if isinstance(evse_id, bool) or not isinstance(evse_id, int) or evse_id < 1:
                raise ValueError(f"evse id must be a positive integer, got {evse_id!r}")
            if not connectors:
                raise ValueError(f"evse {evse_id}: has no connectors")
            ids = [c.id for c in connectors]
            if len(set(ids)) != len(ids):
                raise ValueError(f"evse {evse_id}: connector ids are not unique: {ids}")
            self.evses[evse_id] = connectors
        self._types_of = {e: frozenset(c.type for c in cs) for e, cs in self.evses.items()}
        self._all_types = frozenset(t for ts in self._types_of.values() for t in ts)
        self._feasible_fn = feasibility
        self._hall = feasibility is is_feasible  # the default decision: answered from HallTables
        self.states = {(e, c.id): ConnectorState.AVAILABLE for e, cs in self.evses.items() for c in cs}
        self.plugged: set[int] = set()
        self.specific: dict[int, Reservation] = {}
        self._globals: dict[int, Reservation] = {}  # reservation_id -> global reservation, in arrival order
        self._global_types: dict[int, ConnectorType] = {}  # the same ids -> wanted type, same order
        self.global_counts: Counter[ConnectorType] = Counter()  # wanted type -> live globals (no zero counts)
        self._globals_version = 0
        self._by_id: dict[int, Reservation] = {}
        self.seq: dict[int, int] = {}  # reservation_id -> arrival sequence
        self.next_seq = 0
        self.dirty = True  # something that decides the reserved indication changed
        self._free = FreeIndex(self._types_of)
        self.changed()
        self._expiry = ExpiryQueue(lambda rid, seq: self.seq.get(rid) == seq)
        self._tables: dict[frozenset[ConnectorType], HallTable] = {}  # for the free groups of _tables_version
        self._tables_version = -1
        self._plus_one: dict[ConnectorType, bool] = {}  # t -> globals + one car of t feasible, for _plus_one_key
        self._plus_one_key = (-1, -1, -1)

    # ------------------------------------------------------------ state

    def check_evse(self, evse_id: int) -> None:
        """ValueError naming the known EVSEs when ``evse_id`` is not one of them."""
        if evse_id not in self.evses:
            raise ValueError(f"unknown evse {evse_id} (known: {sorted(self.evses)})")

    def changed(self, evse_id: int | None = None) -> None:
        """This EVSE's states or plug changed (None: any EVSE's may have): re-classify it."""
        self.dirty = True
        for e in self.evses if evse_id is None else (evse_id,):
            self._free.update(e, self._contribution(e))

    def _contribution(self, evse_id: int) -> Contribution:
        """The Available types of a free EVSE (not plugged, nothing occupied, not specifically reserved), else None."""
        if evse_id in self.plugged or evse_id in self.specific:
            return None
        states = self.states
        available: list[ConnectorType] = []
        for c in self.evses[evse_id]:
            state = states[(evse_id, c.id)]
            if state in _OCCUPIED_STATES:
                return None
            if state is ConnectorState.AVAILABLE:
                available.append(c.type)
        return frozenset(available)

    @property
    def globals(self) -> ValuesView[Reservation]:
        """The global reservations in arrival order."""
        return self._globals.values()

    def live(self) -> list[Reservation]:
        """Every live reservation (EVSE-specific ones first; then the global ones in arrival order)."""
        return [*self.specific.values(), *self._globals.values()]

    def ordered(self) -> list[Reservation]:
        """Every live reservation in arrival order."""
        seq = self.seq
        return sorted(self._by_id.values(), key=lambda r: seq[r.reservation_id])

    def find(self, reservation_id: int) -> Reservation | None:
        """One live reservation by id."""
        return self._by_id.get(reservation_id)

    def insert(self, r: Reservation, seq: int | None = None) -> None:
        """Make ``r`` live with its arrival sequence (the next one when not given); globals stay in arrival order.

        Also puts back a detached reservation where it was, given its old sequence.
        """
        if seq is None:
            seq = self.next_seq
        self.next_seq = max(self.next_seq, seq + 1)
        rid = r.reservation_id
        self.seq[rid] = seq
        self._by_id[rid] = r
        self._expiry.push(r, seq)
        self.dirty = True
        if r.evse_id is not None:
            replaced = self.specific.get(r.evse_id)
            if replaced is not None:  # never happens (decide refuses it); as before, the old one is dropped
                self._by_id.pop(replaced.reservation_id, None)
            self.specific[r.evse_id] = r
            self._free.update(r.evse_id, None)
            return
        later: list[int] = []  # newer globals, newest first
        for k in reversed(self._globals):
            if self.seq[k] <= seq:
                break
            later.append(k)
        self._globals[rid] = r
        self._global_types[rid] = r.wanted_type
        if later:  # put back behind newer ones: re-make the order (a newcomer is last: never here)
            for k in reversed(later):
                self._globals[k] = self._globals.pop(k)
                self._global_types[k] = self._global_types.pop(k)
        self.global_counts[r.wanted_type] += 1
        self._globals_version += 1

    def detach(self, reservation: Reservation) -> None:
        """Take a live reservation out; ``insert`` with its old sequence puts it back where it was."""
        rid = reservation.reservation_id
        if reservation.evse_id is not None and self.specific.get(reservation.evse_id) is reservation:
            del self.specific[reservation.evse_id]
            self._free.update(reservation.evse_id, self._contribution(reservation.evse_id))
        else:
            if self._globals.get(rid) != reservation:
                raise ValueError(f"reservation {rid} is not live")
            del self._globals[rid]
            t = self._global_types.pop(rid)
            if self.global_counts[t] == 1:
                del self.global_counts[t]
            else:
                self.global_counts[t] -= 1
            self._globals_version += 1
        self.dirty = True
        self.seq.pop(rid, None)
        if self._by_id.get(rid) is reservation:
            del self._by_id[rid]
        self._expiry.dropped(lambda: ((r, self.seq[r.reservation_id]) for r in self._by_id.values()))

    def due(self, now: datetime) -> list[Reservation]:
        """The live reservations with expiry_time <= now, by (expiry_time, arrival sequence)."""
        return [self._by_id[rid] for rid in self._expiry.due(now)]

    def next_expiry(self) -> datetime | None:
        """When the next live reservation expires, or None."""
        return self._expiry.next_time()

    # ------------------------------------------------------------ what is free

    def is_free(self, evse_id: int, taken: Iterable[int]) -> bool:
        """Not plugged, no connector occupied, not held by an EVSE-specific reservation."""
        if evse_id in self.plugged or evse_id in taken:
            return False
        return not any(self.states[(evse_id, c.id)] in _OCCUPIED_STATES for c in self.evses[evse_id])

    def available_types(self, evse_id: int) -> frozenset[ConnectorType]:
        """The types of the EVSE's Available connectors."""
        states = self.states
        return frozenset(c.type for c in self.evses[evse_id] if states[(evse_id, c.id)] is ConnectorState.AVAILABLE)

    def has_type(self, evse_id: int, wanted: ConnectorType | None) -> bool:
        """Could a car wanting ``wanted`` charge at this EVSE (whatever its connectors' states)?"""
        types = self._types_of[evse_id]
        return wanted is None or wanted is ConnectorType.Unknown or ConnectorType.Unknown in types or wanted in types

    def _free_groups(self, taken: frozenset[int]) -> Counter[frozenset[ConnectorType]]:
        """Free EVSEs, not in ``taken``, grouped by the types of their Available connectors."""
        specific = self.specific.keys()
        if taken.issuperset(specific):
            groups = self._free.groups.copy()
            for e in taken:
                contribution = self._free.contribution.get(e)
                if contribution is not None:
                    groups[contribution] -= 1
            return groups
        return Counter(self.available_types(e) for e in self.evses if self.is_free(e, taken))

    def feasible(self, cars: Sequence[ConnectorType], taken: frozenset[int]) -> bool:
        """Every global car can charge with ``taken`` EVSEs held by EVSE-specific reservations."""
        if len(cars) + len(taken) > len(self.evses):
            return False
        if not cars:
            return True
        return self._feasible_fn(cars, self._free_groups(taken))

    def global_types(self) -> list[ConnectorType]:
        """The wanted types of the global reservations, in arrival order."""
        return list(self._global_types.values())

    # ------------------------------------------------------------ one feasibility question

    def _table(self, types: frozenset[ConnectorType]) -> HallTable | None:
        """The HallTable of the current free groups over ``types`` (None: too many types for one)."""
        if len(types) > HALL_LIMIT:
            return None
        if self._tables_version != self._free.version:
            self._tables, self._tables_version = {}, self._free.version
        table = self._tables.get(types)
        if table is None:
            table = self._tables[types] = HallTable(list(types), self._free.groups)
        return table

    def _check(self, counts: Counts, n_cars: int, extra: int | None = None) -> bool:
        """``feasible`` for these car counts with the EVSE-specific EVSEs, and ``extra`` if given, taken."""
        if n_cars + len(self.specific) + (extra is not None) > len(self.evses):
            return False
        if n_cars == 0:
            return True
        without = None if extra is None else self._free.contribution[extra]
        if self._hall:
            table = self._table(frozenset(self.global_counts.keys() | counts.keys()))
            if table is not None:
                return table.without(without).feasible(counts, n_cars)
        groups: Mapping[frozenset[ConnectorType], int] = self._free.groups
        if without is not None:
            groups = self._free.groups.copy()
            groups[without] -= 1
        if self._hall:
            return feasible_counts(counts, n_cars, groups)
        return self._feasible_fn([t for t, n in counts.items() for _ in range(n)], groups)

    def _plus_one_feasible(self, wanted: ConnectorType) -> bool:
        """The global reservations and one more car of ``wanted`` can all charge (cached per version)."""
        key = (self._free.version, self._globals_version, len(self.specific))
        if key != self._plus_one_key:
            self._plus_one, self._plus_one_key = {}, key
        found = self._plus_one.get(wanted)
        if found is None:
            counts = self.global_counts.copy()
            counts[wanted] += 1
            found = self._plus_one[wanted] = self._check(counts, len(self._globals) + 1)
        return found

    # ------------------------------------------------------------ deciding

    def decide(self, r: Reservation) -> ReservationResult:
        """Steps 3-5 of DESIGN.md's reserve_now decision, for a reservation not yet live."""
        wanted = r.wanted_type
        if r.evse_id is not None:
            evse_id = r.evse_id
            if evse_id in self.specific:
                return ReservationResult.OCCUPIED
            if evse_id not in self.evses:
                return ReservationResult.REJECTED
            compatible = [c for c in self.evses[evse_id] if types_compatible(c.type, wanted)]
            if not compatible:
                return ReservationResult.REJECTED
            states = [self.states[(evse_id, c.id)] for c in self.evses[evse_id]]
            if evse_id in self.plugged or ConnectorState.OCCUPIED in states:
                return ReservationResult.OCCUPIED
            if ConnectorState.FAULTED_OCCUPIED in states:
                return ReservationResult.FAULTED
            own = [self.states[(evse_id, c.id)] for c in compatible]
            if ConnectorState.AVAILABLE not in own:
                return weightiest(own)
            if self._globals and not self._check(self.global_counts, len(self._globals), extra=evse_id):
                return self._refusal(wanted)
            return ReservationResult.ACCEPTED
        all_types = self._all_types
        if not self.evses or not (
            wanted is ConnectorType.Unknown or ConnectorType.Unknown in all_types or wanted in all_types
        ):
            return ReservationResult.REJECTED  # no EVSE has the type
        if not self._plus_one_feasible(wanted):
            return self._refusal(wanted)
        return ReservationResult.ACCEPTED

    def _refusal(self, wanted: ConnectorType) -> ReservationResult:
        """Step 5: Occupied if anything is reserved or plugged, else the weightiest compatible state."""
        if self._globals or self.specific or self.plugged:
            return ReservationResult.OCCUPIED
        return weightiest(
            self.states[(e, c.id)] for e, cs in self.evses.items() for c in cs if types_compatible(c.type, wanted)
        )

    def impossible(self) -> list[Reservation]:
        """What is no longer possible, first-come first-kept (EVSE-specific by EVSE, then global).

        An EVSE-specific reservation is checked with no global car, where only the number of taken EVSEs
        counts, and they are distinct EVSEs of the site: each is kept. The global ones: see the module doc.
        """
        cancel: list[Reservation] = []
        n_all = len(self._globals)
        if self._check(self.global_counts, n_all):
            return cancel
        reservations = list(self._globals.values())
        types = list(self._global_types.values())
        dropped: Counter[ConnectorType] = Counter()
        kept: Counter[ConnectorType] = Counter()  # the kept ones before ``start``
        n_kept, start = 0, 0
        while True:
            # kept + everything from start on fails: find the first prefix that does (lo) by bisection
            lo, hi = start, n_all - 1
            lo_counts, n_lo = kept, n_kept  # kept + types[start:lo]
            while lo < hi:
                mid = (lo + hi) // 2
                counts = lo_counts.copy()
                counts.update(types[lo : mid + 1])
                if self._check(counts, n_lo + mid + 1 - lo):
                    lo_counts, n_lo, lo = counts, n_lo + mid + 1 - lo, mid + 1
                else:
                    hi = mid
            cancel.append(reservations[lo])
            dropped[types[lo]] += 1
            kept, n_kept, start = lo_counts, n_lo, lo + 1
            rest = self.global_counts - dropped
            if start >= n_all or self._check(rest, n_all - len(cancel)):
                return cancel

    def global_part(self) -> tuple[frozenset[int], frozenset[int]]:
        """(EVSEs held for global reservations, available EVSEs), as EVerest's Auth computes them."""
        available = frozenset(self._free.available)
        if not self._globals:
            return frozenset(), available
        if len(available) == len(self._globals):
            return available, available
        held: set[int] = set()
        for t in self.global_counts:
            if not self._plus_one_feasible(t):
                held |= self._free.available_with(t)
        return frozenset(held), available

    def is_charging_possible(self, evse_id: int) -> bool:
        """May a driver without a reservation charge here and every global reservation still be honoured?"""
        if evse_id in self.specific or evse_id not in self.evses:
            return False
        return self._check(self.global_counts, len(self._globals), extra=evse_id)
