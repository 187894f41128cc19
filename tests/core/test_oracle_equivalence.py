"""The polynomial decision equals EVerest's brute force on random small sites (hypothesis)."""

from __future__ import annotations

from dataclasses import dataclass

from core_helpers import FakeClock, Recorder, res
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oracle import oracle_is_feasible

from controller.core.feasibility import is_feasible
from controller.core.reservation import ReservationCore
from controller.core.types import Connector, ConnectorState, ConnectorType

TYPES = [ConnectorType.cType2, ConnectorType.cCCS2, ConnectorType.sType2, ConnectorType.Unknown]
STATES = list(ConnectorState)

sites = st.lists(st.lists(st.sampled_from(TYPES), min_size=1, max_size=3), min_size=1, max_size=6)


@dataclass(frozen=True)
class Op:
    kind: str
    a: int
    b: int
    c: int


ops = st.lists(
    st.builds(
        Op,
        st.sampled_from(["global", "global", "global", "specific", "state", "plug", "cancel", "use"]),
        st.integers(0, 7),
        st.integers(0, 3),
        st.integers(0, 5),
    ),
    max_size=14,
)


def build(evses: list[list[ConnectorType]], feasibility: object) -> tuple[ReservationCore, Recorder]:
    layout = {i: [Connector(j, t) for j, t in enumerate(ts, 1)] for i, ts in enumerate(evses, 1)}
    core = ReservationCore(layout, clock=FakeClock(), feasibility=feasibility)  # type: ignore[arg-type]
    rec = Recorder()
    core.subscribe(rec)
    return core, rec


def apply(core: ReservationCore, op: Op, evses: list[list[ConnectorType]], rid: int) -> object:
    n = len(evses)
    evse = op.a % n + 1
    if op.kind == "global":
        return core.reserve_now(res(rid, ctype=TYPES[op.b]))
    if op.kind == "specific":
        return core.reserve_now(res(rid, evse=op.a % (n + 1) + 1, ctype=TYPES[op.b]))
    if op.kind == "state":
        connector = op.b % len(evses[evse - 1]) + 1
        core.set_connector_state(evse, connector, STATES[op.c % len(STATES)])
        return None
    if op.kind == "plug":
        core.set_plugged_in(evse, op.c % 2 == 0)
        return None
    if op.kind == "cancel":
        return core.cancel_reservation(op.c)
    return core.use_reservation(op.c)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sites, ops)
def test_core_with_flow_equals_core_with_brute_force(evses: list[list[ConnectorType]], sequence: list[Op]) -> None:
    fast, fast_events = build(evses, is_feasible)
    slow, slow_events = build(evses, oracle_is_feasible)
    for rid, op in enumerate(sequence):
        assert apply(fast, op, evses, rid) == apply(slow, op, evses, rid), op
        for evse in range(1, len(evses) + 1):
            assert fast.is_charging_possible(evse) == slow.is_charging_possible(evse)
        assert fast.reserved_evses() == slow.reserved_evses()
        assert fast.reservations() == slow.reservations()
    assert fast_events == slow_events


free_sites = st.dictionaries(st.frozensets(st.sampled_from(TYPES), max_size=3), st.integers(0, 3), max_size=5)


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.sampled_from(TYPES), max_size=6), free_sites)
def test_flow_decision_equals_enumeration(cars: list[ConnectorType], free: dict[frozenset[ConnectorType], int]) -> None:
    assert is_feasible(cars, free) == oracle_is_feasible(cars, free)


def test_oracle_itself_sees_the_adversarial_trap() -> None:
    t2, ccs = ConnectorType.cType2, ConnectorType.cCCS2
    free = {frozenset({t2, ccs}): 1, frozenset({t2}): 1}
    assert oracle_is_feasible([t2], free) and is_feasible([t2], free)
    assert not oracle_is_feasible([t2, ccs], free) and not is_feasible([t2, ccs], free)
    assert oracle_is_feasible([ccs, t2], {frozenset({ccs}): 1, frozenset({t2}): 1})
