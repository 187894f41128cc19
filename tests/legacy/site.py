"""Legacy copy (verbatim, before issue #15) of controller/core/site.py.

The site as the reservation core sees it, and the decisions that only read it.

``Site`` holds the EVSEs with their typed connectors, each connector's state, the plugged EVSEs and
the live reservations (EVSE-specific by EVSE, global in arrival order, with their arrival sequence).
It answers DESIGN.md's questions: may this reservation be placed (``decide``), which reservations are
no longer possible (``impossible``), which EVSEs the global reservations hold (``global_part``). It
neither stores, emits events nor reads a clock: ``controller.core.reservation.ReservationCore`` does that.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from controller.core.types import (
    Connector,
    ConnectorState,
    ConnectorType,
    Reservation,
    ReservationResult,
    types_compatible,
)
from legacy.feasibility import Feasibility

_OCCUPIED_STATES = frozenset({ConnectorState.OCCUPIED, ConnectorState.FAULTED_OCCUPIED})
# Weight of a non-Available connector state when a refusal must name one (Occupied > Faulted > Unavailable).
_WEIGHT = {
    ConnectorState.UNAVAILABLE: (1, ReservationResult.UNAVAILABLE),
    ConnectorState.FAULTED: (2, ReservationResult.FAULTED),
    ConnectorState.UNAVAILABLE_FAULTED: (2, ReservationResult.FAULTED),
    ConnectorState.OCCUPIED: (3, ReservationResult.OCCUPIED),
    ConnectorState.FAULTED_OCCUPIED: (3, ReservationResult.OCCUPIED),
}


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
        self._feasible_fn = feasibility
        self.states = {(e, c.id): ConnectorState.AVAILABLE for e, cs in self.evses.items() for c in cs}
        self.plugged: set[int] = set()
        self.specific: dict[int, Reservation] = {}
        self.globals: list[Reservation] = []
        self.seq: dict[int, int] = {}  # reservation_id -> arrival sequence
        self.next_seq = 0
        self.dirty = True  # something that decides the reserved indication changed
        self._groups_cache: Counter[frozenset[ConnectorType]] | None = None  # free EVSEs minus specific ones

    # ------------------------------------------------------------ state

    def check_evse(self, evse_id: int) -> None:
        """ValueError naming the known EVSEs when ``evse_id`` is not one of them."""
        if evse_id not in self.evses:
            raise ValueError(f"unknown evse {evse_id} (known: {sorted(self.evses)})")

    def changed(self) -> None:
        """States, plugs or EVSE-specific reservations changed: drop what was derived from them."""
        self.dirty = True
        self._groups_cache = None

    def live(self) -> list[Reservation]:
        """Every live reservation (EVSE-specific ones first, by EVSE; then the global ones in arrival order)."""
        return [*self.specific.values(), *self.globals]

    def find(self, reservation_id: int) -> Reservation | None:
        """One live reservation by id."""
        for r in self.live():
            if r.reservation_id == reservation_id:
                return r
        return None

    def insert(self, r: Reservation, seq: int | None = None) -> None:
        """Make ``r`` live with its arrival sequence (the next one when not given); globals stay in arrival order.

        Also puts back a detached reservation where it was, given its old sequence.
        """
        if seq is None:
            seq = self.next_seq
        self.next_seq = max(self.next_seq, seq + 1)
        self.seq[r.reservation_id] = seq
        if r.evse_id is not None:
            self.specific[r.evse_id] = r
            self.changed()
            return
        at = len(self.globals)
        while at and self.seq[self.globals[at - 1].reservation_id] > seq:  # a newcomer is last: no step
            at -= 1
        self.globals.insert(at, r)
        self.dirty = True

    def detach(self, reservation: Reservation) -> None:
        """Take a live reservation out; ``insert`` with its old sequence puts it back where it was."""
        if reservation.evse_id is not None and self.specific.get(reservation.evse_id) is reservation:
            del self.specific[reservation.evse_id]
            self.changed()
        else:
            self.globals.remove(reservation)
            self.dirty = True
        self.seq.pop(reservation.reservation_id, None)

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
            if self._groups_cache is None:
                self._groups_cache = Counter(
                    self.available_types(e) for e in self.evses if e not in specific and self.is_free(e, ())
                )
            groups = self._groups_cache
            extra = [e for e in taken if e not in specific and self.is_free(e, ())]
            if not extra:
                return groups
            groups = groups.copy()
            for e in extra:
                groups[self.available_types(e)] -= 1
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
        return [r.wanted_type for r in self.globals]

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
            taken = frozenset(self.specific) | {evse_id}
            if self.globals and not self.feasible(self.global_types(), taken):
                return self._refusal(wanted)
            return ReservationResult.ACCEPTED
        if not any(self.has_type(e, wanted) for e in self.evses):
            return ReservationResult.REJECTED
        if not self.feasible([*self.global_types(), wanted], frozenset(self.specific)):
            return self._refusal(wanted)
        return ReservationResult.ACCEPTED

    def _refusal(self, wanted: ConnectorType) -> ReservationResult:
        """Step 5: Occupied if anything is reserved or plugged, else the weightiest compatible state."""
        if self.globals or self.specific or self.plugged:
            return ReservationResult.OCCUPIED
        return weightiest(
            self.states[(e, c.id)] for e, cs in self.evses.items() for c in cs if types_compatible(c.type, wanted)
        )

    def impossible(self) -> list[Reservation]:
        """What is no longer possible, first-come first-kept (EVSE-specific by EVSE, then global)."""
        kept: set[int] = set()
        cancel: list[Reservation] = []
        for evse_id in sorted(self.specific):
            if self.feasible([], frozenset(kept | {evse_id})):
                kept.add(evse_id)
            else:
                cancel.append(self.specific[evse_id])
        cars: list[ConnectorType] = []
        for r in self.globals:
            if self.feasible([*cars, r.wanted_type], frozenset(kept)):
                cars.append(r.wanted_type)
            else:
                cancel.append(r)
        return cancel

    def global_part(self) -> tuple[frozenset[int], frozenset[int]]:
        """(EVSEs held for global reservations, available EVSEs), as EVerest's Auth computes them."""
        taken = frozenset(self.specific)
        available = frozenset(e for e in self.evses if self.is_free(e, taken) and self.available_types(e))
        if not self.globals:
            return frozenset(), available
        if len(available) == len(self.globals):
            return available, available
        cars = self.global_types()
        held: set[int] = set()
        for t in dict.fromkeys(cars):
            if not self.feasible([*cars, t], taken):
                held.update(e for e in available if self.has_type(e, t))
        return frozenset(held), available

    def is_charging_possible(self, evse_id: int) -> bool:
        """May a driver without a reservation charge here and every global reservation still be honoured?"""
        if evse_id in self.specific or evse_id not in self.evses:
            return False
        return self.feasible(self.global_types(), frozenset(self.specific) | {evse_id})
