"""The reservation core at depot scale (issue #15): every operation timed, incremental core against the legacy one.

For 200, 1,000 and 5,000 EVSEs (six connector kinds, 5 % EVSE-specific reservations, then global ones
until refused) a cycle of operations runs on the incremental core and, for its first cycles, in lockstep on
the legacy core (tests/legacy, the algorithm before issue #15): each call's result and events must be equal
there. Median and p99 in ms per operation kind, of wall-clock time and of the thread's CPU time (on a
shared machine the wall-clock tail is mostly time spent descheduled). The status document is timed on the
core's side of it, as the runtime builds it (before: reserved_evses once per EVSE; now: once per document),
without the JSON encoding of the reservations, which is the same before and after.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from legacy.reservation import ReservationCore as LegacyCore

from controller.core.reservation import ReservationCore
from controller.core.types import Connector, ConnectorState, ConnectorType, CoreEvent, Reservation, ReservationResult

Core = ReservationCore | LegacyCore
LOCKSTEP_FILL_MAX = 1_000  # larger sites are filled on the new core alone, then replayed into the legacy one
Layout = dict[int, list[Connector]]


class Clock:
    """A fake clock both cores share."""

    def __init__(self, now: Any) -> None:
        """Start at ``now``."""
        self.now = now

    def __call__(self) -> Any:
        """The current fake time."""
        return self.now


def status_document(core: Core, *, per_evse: bool) -> list[Any]:
    """What the runtime's status document asks of the core: reserved set, connector states, reservations."""
    reserved = core.reserved_evses()
    evses = []
    for evse_id in core.evse_ids:
        is_reserved = evse_id in (core.reserved_evses() if per_evse else reserved)
        states = [core.connector_state(evse_id, c.id) for c in core.connectors(evse_id)]
        evses.append((evse_id, is_reserved, states))
    return [evses, core.reservations()]


class Lockstep:
    """Runs each operation on the new core (timed) and, while ``old`` is set, on the legacy one (timed, compared)."""

    def __init__(self, layout: Layout, clock: Clock, legacy: bool) -> None:
        """Both cores on ``layout`` with event recorders."""
        self.clock = clock
        self.new = ReservationCore(layout, clock=clock)
        self.old: LegacyCore | None = LegacyCore(layout, clock=clock) if legacy else None
        self.new_events: list[CoreEvent] = []
        self.old_events: list[CoreEvent] = []
        self.new.subscribe(self.new_events.append)
        if self.old is not None:
            self.old.subscribe(self.old_events.append)
        self.times: dict[str, dict[str, list[float]]] = {"new": {}, "old": {}}
        self.cpu: dict[str, dict[str, list[float]]] = {"new": {}, "old": {}}
        self.compared = 0
        self.mismatches: list[str] = []

    def run(
        self, label: str | None, call: Callable[[Core], Any], *, old_call: Callable[[Core], Any] | None = None
    ) -> Any:
        """``call`` on both cores, timed under ``label`` (None: untimed); returns the new core's result."""
        got = self._timed("new", label, lambda: call(self.new))
        if self.old is not None:
            old = self.old
            want = self._timed("old", label, lambda: (old_call or call)(old))
            self.compared += 1
            if got != want or self.new_events != self.old_events:
                self.mismatches.append(f"{label}: {got!r} != {want!r}")
            self.new_events.clear()
            self.old_events.clear()
        else:
            self.new_events.clear()
        return got

    def _timed(self, side: str, label: str | None, call: Callable[[], Any]) -> Any:
        """Run ``call``; under ``label`` note its wall-clock and thread CPU time (ms)."""
        cpu, wall = time.thread_time(), time.perf_counter()
        result = call()
        wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
        if label is not None:
            self.times[side].setdefault(label, []).append(wall * 1000)
            self.cpu[side].setdefault(label, []).append(cpu * 1000)
        return result

    def stop_legacy(self) -> None:
        """Compare the end states once more, then go on with the new core alone."""
        if self.old is not None:
            if (
                self.new.reserved_evses() != self.old.reserved_evses()
                or self.new.reservations() != self.old.reservations()
            ):
                self.mismatches.append("end state differs")
            self.old = None


def make_layout(n_evses: int, rng: random.Random, kinds: list[ConnectorType]) -> Layout:
    """EVSEs with 1 (60 %), 2 (30 %) or 3 (10 %) connectors of the given kinds."""
    layout = {}
    for evse in range(1, n_evses + 1):
        types = rng.sample(kinds, rng.choices([1, 2, 3], weights=[6, 3, 1])[0])
        layout[evse] = [Connector(i, t) for i, t in enumerate(types, start=1)]
    return layout


class Depot:
    """One seeded depot: filled, then cycled through every operation kind."""

    def __init__(self, n_evses: int, seed: int, kinds: list[ConnectorType], now: Any, legacy: bool) -> None:
        """Build the site and both cores; fill them (untimed): 5 % specific, then globals until refused."""
        self.rng = random.Random(seed)
        self.kinds = kinds
        self.layout = make_layout(n_evses, self.rng, kinds)
        self.clock = Clock(now)
        self.step = Lockstep(self.layout, self.clock, legacy)
        self.next_rid = 1
        legacy_core = self.step.old
        if n_evses > LOCKSTEP_FILL_MAX:  # the legacy core would take minutes: it gets the outcome, below
            self.step.old = None
        for evse_id in self.rng.sample(list(self.layout), n_evses // 20):
            self.reserve(None, evse_id, self.rng.choice(self.layout[evse_id]).type)
        self.refill(None)
        if legacy_core is not None and self.step.old is None:
            new_site = self.step.new._site  # the benchmark's own replay: the same reservations, same sequences
            for r in self.step.new.reservations():
                legacy_core._site.insert(r, new_site.seq[r.reservation_id])
            legacy_core.reserved_evses()  # its indication: the events the new core sent during the fill
            self.step.old_events.clear()
            self.step.old = legacy_core
            self.step.run(None, lambda c: c.reserved_evses())  # compared: the same reserved EVSEs
            self.step.run(None, lambda c: c.reservations())

    def reservation(self, rid: int | None, evse_id: int | None, kind: ConnectorType) -> Reservation:
        """A reservation expiring 1 to 3 hours from now (a new id unless ``rid`` is given)."""
        if rid is None:
            rid, self.next_rid = self.next_rid, self.next_rid + 1
        expiry = self.clock.now + timedelta(seconds=self.rng.randrange(3_600, 10_800))
        return Reservation(rid, f"TOKEN{rid}", expiry, None, evse_id, kind)

    def reserve(self, label: str | None, evse_id: int | None, kind: ConnectorType, rid: int | None = None) -> Any:
        """reserve_now on both cores; ``label`` gets ``_accepted`` or ``_refused`` unless it says replaced."""
        r = self.reservation(rid, evse_id, kind)
        if label is None or label.endswith("replaced"):
            return self.step.run(label, lambda c: c.reserve_now(r))
        result = self.step.run("pending", lambda c: c.reserve_now(r))
        outcome = "accepted" if result is ReservationResult.ACCEPTED else "refused"
        for side in ("new", "old"):
            for samples in (self.step.times[side], self.step.cpu[side]):
                pending = samples.pop("pending", [])
                if pending:
                    samples.setdefault(f"{label}_{outcome}", []).extend(pending)
        return result

    def refill(self, label: str | None) -> None:
        """Global reservations of shuffled kinds until a full round of kinds is refused."""
        while True:
            accepted = False
            for kind in self.rng.sample(self.kinds, len(self.kinds)):
                accepted |= self.reserve(label, None, kind) is ReservationResult.ACCEPTED
            if not accepted:
                return

    def free_evse(self) -> int | None:
        """An EVSE without a specific reservation, plug or occupied connector, if any."""
        core = self.step.new
        for _ in range(50):
            evse_id = self.rng.choice(core.evse_ids)
            states = [core.connector_state(evse_id, c.id) for c in core.connectors(evse_id)]
            if not core.is_evse_reserved(evse_id) and ConnectorState.OCCUPIED not in states:
                return evse_id
        return None

    def cycle(self) -> None:
        """One of each timed operation, keeping the depot full of global reservations."""
        rng, core = self.rng, self.step.new
        self.refill("reserve_global")
        globals_ = [r for r in core.reservations() if r.evse_id is None]
        if globals_:
            self.reserve("reserve_global_replaced", None, rng.choice(self.kinds), rng.choice(globals_).reservation_id)
        evse_id = self.free_evse()
        if evse_id is not None:
            kind = rng.choice(self.layout[evse_id]).type
            if self.reserve("reserve_specific", evse_id, kind) is ReservationResult.ACCEPTED:
                self.step.run("cancel", lambda c: c.cancel_reservation(self.next_rid - 1))
        specific = [r for r in core.reservations() if r.evse_id is not None]
        if specific:
            old = rng.choice(specific)
            self.reserve(
                "reserve_specific_replaced", old.evse_id, old.connector_type or self.kinds[0], old.reservation_id
            )
        globals_ = [r for r in core.reservations() if r.evse_id is None]
        if globals_:
            rid = rng.choice(globals_).reservation_id
            self.step.run("cancel", lambda c: c.cancel_reservation(rid))
        live = core.reservations()
        if live:
            rid = rng.choice(live).reservation_id
            self.step.run("use", lambda c: c.use_reservation(rid))
        due = core.next_expiry()
        if due is not None:
            self.clock.now = max(self.clock.now, due)
            self.step.run("expire", lambda c: c.expire_due())
        evse_id = self.free_evse()
        if evse_id is not None:
            connector = rng.choice(self.layout[evse_id]).id
            self.step.run("fault_recheck", lambda c: c.set_connector_state(evse_id, connector, ConnectorState.FAULTED))
            self.step.run(None, lambda c: c.set_connector_state(evse_id, connector, ConnectorState.AVAILABLE))
        self.step.run(
            "status_document",
            lambda c: status_document(c, per_evse=False),
            old_call=lambda c: status_document(c, per_evse=True),
        )


def _p99(values: list[float]) -> float:
    """The 99th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def summary(wall: dict[str, list[float]], cpu: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    """Median and p99 (ms) of wall-clock and CPU time, and the sample count, of each operation kind."""
    return {
        label: {
            "median_ms": round(statistics.median(values), 4),
            "p99_ms": round(_p99(values), 4),
            "cpu_median_ms": round(statistics.median(cpu[label]), 4),
            "cpu_p99_ms": round(_p99(cpu[label]), 4),
            "n": len(values),
        }
        for label, values in sorted(wall.items())
    }


def run_size(
    n_evses: int, seeds: list[int], cycles: int, legacy_cycles: int, kinds: list[ConnectorType], now: Any
) -> dict[str, Any]:
    """Every operation kind at one site size over several seeds: new and legacy timings, and their agreement."""
    merged: dict[str, dict[str, dict[str, list[float]]]] = {
        "wall": {"new": {}, "old": {}},
        "cpu": {"new": {}, "old": {}},
    }
    compared, mismatches, held = 0, [], []
    for seed in seeds:
        depot = Depot(n_evses, seed, kinds, now, legacy=legacy_cycles > 0)
        held.append(len(depot.step.new.reservations()))
        for i in range(cycles):
            if i == legacy_cycles:
                depot.step.stop_legacy()
            depot.cycle()
        depot.step.stop_legacy()
        for kind, samples in (("wall", depot.step.times), ("cpu", depot.step.cpu)):
            for side in ("new", "old"):
                for label, values in samples[side].items():
                    merged[kind][side].setdefault(label, []).extend(values)
        compared += depot.step.compared
        mismatches += depot.step.mismatches
    new = summary(merged["wall"]["new"], merged["cpu"]["new"])
    old = summary(merged["wall"]["old"], merged["cpu"]["old"])
    return {
        "evses": n_evses,
        "seeds": seeds,
        "reservations_held_after_fill": held,
        "new": new,
        "old": old,
        "speedup_median": {
            k: round(old[k]["median_ms"] / max(v["median_ms"], 1e-6), 1) for k, v in new.items() if k in old
        },
        "compared_calls": compared,
        "decisions_identical": not mismatches,
        "mismatches": mismatches[:5],
    }
