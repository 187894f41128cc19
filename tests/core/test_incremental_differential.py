"""The incremental core decides exactly as the full recomputation it replaced (tests/legacy), step by step.

Seeded random operation sequences run on both cores side by side: reserve_now (global, EVSE-specific,
replacing, refused, already expired), cancel, use, expiry by a fake clock, connector states (faults,
occupied, unavailable), plugs. After every step the return value, the events emitted (in order), the
reserved EVSEs, the live reservations, the next expiry and is_charging_possible must be equal. Many
small sites find the corner cases; sites of 50 to 2,000 EVSEs, filled with global reservations until
one is refused, find what only shows at scale.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from core_helpers import T0, FakeClock, Recorder
from legacy.feasibility import is_feasible as legacy_is_feasible
from legacy.reservation import ReservationCore as LegacyCore
from legacy.site import Site as LegacySite

from controller.core.feasibility import HallTable, is_feasible
from controller.core.reservation import ReservationCore
from controller.core.site import Site
from controller.core.types import Connector, ConnectorState, ConnectorType, Reservation, ReservationResult

KINDS = [
    ConnectorType.cType2,
    ConnectorType.cCCS2,
    ConnectorType.cCCS1,
    ConnectorType.cType1,
    ConnectorType.cTesla,
    ConnectorType.sType2,
]
ABSENT = ConnectorType.cMCS  # never on a site built here: a global reservation of it is Rejected
STATES = list(ConnectorState)
STATE_WEIGHTS = [6 if s is ConnectorState.AVAILABLE else 1 for s in STATES]


class Pair:
    """The new core and the legacy one on the same site and clock, compared after every call."""

    def __init__(self, layout: dict[int, list[Connector]], rng: random.Random) -> None:
        """Both cores on ``layout``, each with an event recorder."""
        self.layout = layout
        self.rng = rng
        self.clock = FakeClock()
        self.new = ReservationCore(layout, clock=self.clock)
        self.old = LegacyCore(layout, clock=self.clock)
        self.new_events, self.old_events = Recorder(), Recorder()
        self.new.subscribe(self.new_events)
        self.old.subscribe(self.old_events)
        self.next_rid = 1
        self.steps = 0

    def call(self, method: str, *args: Any) -> Any:
        """Call ``method`` on both cores; the results, new events and derived views must be equal."""
        self.steps += 1
        got = getattr(self.new, method)(*args)
        want = getattr(self.old, method)(*args)
        where = f"step {self.steps}: {method}{args}"
        assert got == want, where
        assert self.new_events == self.old_events, where
        assert self.new.reserved_evses() == self.old.reserved_evses(), where
        assert self.new.reservations() == self.old.reservations(), where
        assert self.new.next_expiry() == self.old.next_expiry(), where
        return got

    def check_views(self, sample: int) -> None:
        """is_charging_possible of ``sample`` random EVSEs (every EVSE when the site is that small)."""
        evses = list(self.layout)
        for evse_id in evses if len(evses) <= sample else self.rng.sample(evses, sample):
            self.call("is_charging_possible", evse_id)
        rid = self.rng.randrange(1, self.next_rid + 2)
        assert self.new.reservation(rid) == self.old.reservation(rid)

    def reservation(self, evse_id: int | None, kinds: list[ConnectorType]) -> Reservation:
        """A new reservation, or one replacing a live one (same id); sometimes already expired."""
        live = self.new.reservations()
        if live and self.rng.random() < 0.25:
            rid = self.rng.choice(live).reservation_id
        else:
            rid, self.next_rid = self.next_rid, self.next_rid + 1
        ctype = self.rng.choice([*kinds, *kinds, ConnectorType.Unknown, None, ABSENT])
        minutes = self.rng.choice([-1, 0, *range(1, 40)])
        parent = self.rng.choice([None, None, "GROUP1", "group2"])
        token = f"TOKEN{self.rng.randrange(6)}"
        return Reservation(rid, token, self.clock.now + timedelta(minutes=minutes), parent, evse_id, ctype)

    def random_step(self, kinds: list[ConnectorType]) -> None:
        """One random operation on both cores."""
        rng, n = self.rng, len(self.layout)
        op = rng.choices(
            ["global", "specific", "cancel", "use", "advance", "state", "hit", "plug", "token"],
            weights=[8, 3, 2, 2, 2, 5, 3, 2, 1],
        )[0]
        evse_id = rng.randrange(1, n + 1)
        if op == "hit":  # a connector of a reserved EVSE goes out of service: what the re-check must handle
            reserved = sorted(self.new.reserved_evses())
            evse_id = rng.choice(reserved) if reserved else evse_id
            op = "state"
        if op == "global":
            self.call("reserve_now", self.reservation(None, kinds))
        elif op == "specific":
            self.call("reserve_now", self.reservation(rng.randrange(1, n + 2), kinds))
        elif op in ("cancel", "use"):
            live = self.new.reservations()
            rid = rng.choice(live).reservation_id if live and rng.random() < 0.8 else rng.randrange(1, 9)
            self.call("cancel_reservation" if op == "cancel" else "use_reservation", rid)
        elif op == "advance":
            self.clock.advance(rng.choice([0, 30, 60, 300, 600, 1200]))
            self.call("expire_due")
        elif op == "state":
            connector = rng.choice(self.layout[evse_id]).id
            self.call("set_connector_state", evse_id, connector, rng.choices(STATES, STATE_WEIGHTS)[0])
        elif op == "plug":
            self.call("set_plugged_in", evse_id, rng.random() < 0.5)
        else:
            token = f"token{rng.randrange(6)}"
            self.call("matches_reserved_identifier", token, rng.choice([None, evse_id]), rng.choice([None, "GROUP1"]))

    def fill(self, kinds: list[ConnectorType], busy: float, specific: float) -> None:
        """Make a share of EVSEs busy (plugged or occupied), reserve some specifically, then globals until refused."""
        rng = self.rng
        for evse_id in rng.sample(list(self.layout), int(busy * len(self.layout))):
            if rng.random() < 0.5:
                self.call("set_plugged_in", evse_id, True)
            else:
                self.call("set_connector_state", evse_id, self.layout[evse_id][0].id, ConnectorState.OCCUPIED)
        for evse_id in rng.sample(list(self.layout), int(specific * len(self.layout))):
            r = Reservation(self.next_rid, "TOKEN", T0 + timedelta(hours=2), None, evse_id, None)
            self.next_rid += 1
            self.call("reserve_now", r)
        refused = 0
        while refused < 2 * len(kinds):
            r = Reservation(
                self.next_rid, "TOKEN", T0 + timedelta(minutes=rng.randrange(20, 120)), None, None, rng.choice(kinds)
            )
            self.next_rid += 1
            refused = 0 if self.call("reserve_now", r) is ReservationResult.ACCEPTED else refused + 1


def make_layout(
    rng: random.Random, n_evses: int, kinds: list[ConnectorType], unknown: bool
) -> dict[int, list[Connector]]:
    """EVSEs with 1 to 3 connectors of ``kinds`` (and, if ``unknown``, sometimes an Unknown one)."""
    pool = [*kinds, ConnectorType.Unknown] if unknown else kinds
    layout = {}
    for evse_id in range(1, n_evses + 1):
        count = min(len(pool), rng.choices([1, 2, 3], weights=[6, 3, 1])[0])
        layout[evse_id] = [Connector(i, t) for i, t in enumerate(rng.sample(pool, count), start=1)]
    return layout


def run(seed: int, n_evses: int, steps: int, *, fill: bool = False, busy: float = 0.0, sample: int = 12) -> Pair:
    """One random sequence: a site of ``n_evses``, optionally filled, then ``steps`` random operations."""
    rng = random.Random(seed)
    kinds = rng.sample(KINDS, rng.randint(1, len(KINDS)))
    pair = Pair(make_layout(rng, n_evses, kinds, unknown=rng.random() < 0.3), rng)
    if fill:
        pair.fill(kinds, busy, specific=0.05)
    for _ in range(steps):
        pair.random_step(kinds)
        if rng.random() < 0.3:
            pair.check_views(sample)
    return pair


@pytest.mark.parametrize("chunk", range(8))
def test_small_sites_decide_as_before(chunk: int) -> None:
    """2,400 sequences of 30 operations on sites of 1 to 12 EVSEs."""
    for seed in range(chunk * 300, (chunk + 1) * 300):
        run(seed, random.Random(seed).randint(1, 12), 30)


@pytest.mark.parametrize("chunk", range(4))
def test_filled_sites_of_50_to_200_evses_decide_as_before(chunk: int) -> None:
    """60 filled sites of 50 to 200 EVSEs, 40 operations each (most EVSEs busy so the legacy core stays quick)."""
    for seed in range(10_000 + chunk * 15, 10_000 + (chunk + 1) * 15):
        rng = random.Random(seed)
        run(seed, rng.randint(50, 200), 40, fill=True, busy=rng.choice([0.5, 0.8]))


@pytest.mark.parametrize(
    ("seed", "n_evses", "busy"), [(20_001, 500, 0.85), (20_002, 1_000, 0.9), (20_003, 2_000, 0.95)]
)
def test_large_filled_sites_decide_as_before(seed: int, n_evses: int, busy: float) -> None:
    """Sites of 500 to 2,000 EVSEs filled until refused, then random operations."""
    run(seed, n_evses, 60, fill=True, busy=busy, sample=4)


def test_every_end_and_expiry_of_many_reservations_matches() -> None:
    """Hundreds of reservations ended by cancel, use and expiry: the expiry heap's lazy deletion and rebuild."""
    rng = random.Random(7)
    pair = Pair(make_layout(rng, 300, KINDS, unknown=False), rng)
    for i in range(260):
        evse = rng.randrange(1, 301) if i % 10 == 0 else None
        pair.call("reserve_now", pair.reservation(evse, KINDS))
    for r in rng.sample(pair.new.reservations(), len(pair.new.reservations()) * 2 // 3):
        pair.call(rng.choice(["cancel_reservation", "use_reservation"]), r.reservation_id)
    for _ in range(50):
        pair.clock.advance(60)
        pair.call("expire_due")
    assert pair.new.reservations() == []


@pytest.mark.parametrize("chunk", range(3))
def test_site_decisions_on_arbitrary_reservation_sets(chunk: int) -> None:
    """Site on its own, globals inserted without asking (so sets can be infeasible): impossible(), several
    cancelled in one re-check, global_part, decide and is_charging_possible all equal the legacy Site's."""
    multi = 0
    for seed in range(30_000 + chunk * 400, 30_000 + (chunk + 1) * 400):
        rng = random.Random(seed)
        kinds = rng.sample(KINDS, rng.randint(1, len(KINDS)))
        layout = make_layout(rng, rng.choice([3, 8, 20, 60]), kinds, unknown=rng.random() < 0.3)
        new, old = Site(layout, is_feasible), LegacySite(layout, legacy_is_feasible)
        for (evse_id, connector_id), _ in rng.sample(sorted(old.states.items()), len(old.states) // 3):
            state = rng.choices(STATES, STATE_WEIGHTS)[0]
            for site in (new, old):
                site.states[(evse_id, connector_id)] = state
            new.changed(evse_id)
            old.changed()
        for evse_id in rng.sample(list(layout), len(layout) // 5):
            new.plugged.add(evse_id)
            old.plugged.add(evse_id)
            new.changed(evse_id)
            old.changed()
        for rid in range(1, rng.randint(1, 2 * len(layout))):
            evse = rng.randrange(1, len(layout) + 1) if rng.random() < 0.15 else None
            r = Reservation(rid, "T", T0 + timedelta(minutes=rid), None, evse, rng.choice([*kinds, None]))
            if evse is not None and evse in old.specific:
                continue
            new.insert(r)
            old.insert(r)
        cancel = new.impossible()
        assert cancel == old.impossible(), seed
        multi += len(cancel) > 1
        assert new.global_part() == old.global_part(), seed
        for r in cancel:
            new.detach(r)
            old.detach(r)
        assert new.impossible() == old.impossible() == [], seed
        assert new.global_part() == old.global_part(), seed
        for evse_id in layout:
            assert new.is_charging_possible(evse_id) == old.is_charging_possible(evse_id), seed
        for t in [*kinds, ConnectorType.Unknown, ABSENT]:
            for evse in (None, rng.randrange(1, len(layout) + 2)):
                r = Reservation(10_000, "T", T0, None, evse, t)
                assert new.decide(r) == old.decide(r), seed
    assert multi > 20  # the re-check cancelled several reservations at once often enough


def test_a_global_put_back_under_its_old_sequence_takes_its_old_place() -> None:
    """Site.insert with an old sequence (a replaced reservation restored when its store write fails)."""
    layout = make_layout(random.Random(3), 20, KINDS, unknown=False)
    new, old = Site(layout, is_feasible), LegacySite(layout, legacy_is_feasible)
    placed = [Reservation(i, "T", T0 + timedelta(minutes=i), None, None, KINDS[i % 6]) for i in range(1, 9)]
    for r in placed:
        new.insert(r)
        old.insert(r)
    for r in (placed[3], placed[0], placed[7]):
        seq = new.seq[r.reservation_id]
        new.detach(r)
        old.detach(r)
        assert list(new.globals) == old.globals and new.global_part() == old.global_part()
        new.insert(r, seq)
        old.insert(r, seq)
        assert list(new.globals) == old.globals == placed
        assert new.impossible() == old.impossible() and new.global_part() == old.global_part()
    # a reservation put back has two heap entries: it is due once, in (expiry, sequence) order
    due = sorted(old.live(), key=lambda r: (r.expiry_time, old.seq[r.reservation_id]))
    assert new.due(T0 + timedelta(hours=1)) == due
    assert new.due(T0 + timedelta(hours=2)) == []


def test_feasibility_equals_the_max_flow_with_few_and_many_types() -> None:
    """is_feasible (Hall's condition, or the max-flow past HALL_LIMIT types) equals the legacy max-flow."""
    rng = random.Random(11)
    every = list(ConnectorType)
    outcomes: Counter[tuple[bool, bool]] = Counter()
    for _ in range(6_000):
        kinds = rng.sample(every, rng.choice([1, 3, 6, 12, len(every)]))
        free: Counter[frozenset[ConnectorType]] = Counter()
        for _ in range(rng.randint(0, 40)):
            free[frozenset(rng.sample(kinds, rng.randint(0, min(3, len(kinds)))))] += 1
        n_free = sum(free.values())
        cars = [rng.choice(kinds) for _ in range(rng.randint(0, max(1, n_free // rng.choice([1, 2, 4]))))]
        want = legacy_is_feasible(cars, free)
        assert is_feasible(cars, free) == want, (cars, free)
        outcomes[(want, len(set(cars)) > 10)] += 1
        if cars and len(set(cars)) <= 10 and free:
            taken = rng.choice(list(free))
            fewer = free.copy()
            fewer[taken] -= 1
            table = HallTable(list(dict.fromkeys([*cars, *kinds[:10]]))[:10], free).without(taken)
            if set(cars) <= set(table.types):
                assert table.feasible(Counter(cars), len(cars)) == legacy_is_feasible(cars, fewer)
    assert min(outcomes.values()) > 50, outcomes  # both answers, with few and with many types
