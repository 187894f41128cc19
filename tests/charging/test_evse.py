"""EVSE state model: DESIGN.md "From hardware to state", one rule per test, time injected."""

from __future__ import annotations

from dataclasses import replace

import pytest

from controller.charging.evse import EvseModel, EvseReadings, combine_state
from controller.core.types import Connector, ConnectorState, ConnectorType
from drivers.interfaces import ContactorReport, Fault, FaultKind, LockPosition, LockReport

A = ConnectorState.AVAILABLE
U = ConnectorState.UNAVAILABLE
F = ConnectorState.FAULTED
O = ConnectorState.OCCUPIED  # noqa: E741
UF = ConnectorState.UNAVAILABLE_FAULTED
FO = ConnectorState.FAULTED_OCCUPIED

OPEN = ContactorReport(commanded_closed=False, feedback_closed=False, since=0.0, fault=None)
UNLOCKED = LockReport(LockPosition.UNLOCKED, LockPosition.UNLOCKED, None)
HEALTHY = EvseReadings(
    plugged=False, contactor=OPEN, lock=UNLOCKED, meter_fault=None, enabled=True, session_active=False
)


def contactor_fault(kind: FaultKind) -> ContactorReport:
    return replace(OPEN, feedback_closed=kind is FaultKind.CONTACTOR_WELDED, fault=Fault(kind, 0.0))


def lock_fault(kind: FaultKind) -> LockReport:
    return LockReport(LockPosition.LOCKED, LockPosition.MOVING, Fault(kind, 0.0))


def model(**kwargs: object) -> EvseModel:
    return EvseModel(1, [Connector(1, ConnectorType.cType2), Connector(2, ConnectorType.cCCS2)], **kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------ combinations


@pytest.mark.parametrize(
    ("faulted", "unavailable", "occupied", "expected"),
    [
        (False, False, False, A),
        (False, True, False, U),
        (True, False, False, F),
        (False, False, True, O),
        (True, True, False, UF),
        (True, False, True, FO),
        (False, True, True, O),
        (True, True, True, FO),
    ],
)
def test_combinations(faulted: bool, unavailable: bool, occupied: bool, expected: ConnectorState) -> None:
    assert combine_state(faulted=faulted, unavailable=unavailable, occupied=occupied) is expected


# ------------------------------------------------------------------ table rows


def test_healthy_enabled_idle_is_available_on_every_connector() -> None:
    state = model().update(HEALTHY, 0.0)
    assert state.connector_states == {1: A, 2: A}
    assert (state.faulted, state.unavailable, state.occupied, state.faults, state.deadline) == (
        False,
        False,
        False,
        (),
        None,
    )


def test_plugged_alone_is_not_occupied() -> None:
    state = model().update(replace(HEALTHY, plugged=True), 0.0)
    assert state.plugged
    assert state.connector_states == {1: A, 2: A}


def test_session_occupies_only_the_session_connector() -> None:
    state = model().update(replace(HEALTHY, plugged=True, session_active=True), 0.0)
    assert state.occupied
    assert state.connector_states == {1: O, 2: A}
    other = model(session_connector_id=2).update(replace(HEALTHY, session_active=True), 0.0)
    assert other.connector_states == {1: A, 2: O}


def test_operator_disable_is_unavailable_everywhere() -> None:
    state = model().update(replace(HEALTHY, enabled=False), 0.0)
    assert state.unavailable and not state.faulted
    assert state.connector_states == {1: U, 2: U}


@pytest.mark.parametrize(
    "readings",
    [
        replace(HEALTHY, contactor=contactor_fault(FaultKind.CONTACTOR_WELDED)),
        replace(HEALTHY, contactor=contactor_fault(FaultKind.CONTACTOR_FAILED_TO_CLOSE)),
        replace(HEALTHY, lock=lock_fault(FaultKind.LOCK_FAILED_LOCK)),
        replace(HEALTHY, lock=lock_fault(FaultKind.LOCK_UNEXPECTED_CHANGE)),
        replace(HEALTHY, meter_fault=Fault(FaultKind.METER_STALE, 0.0)),
    ],
    ids=["welded", "failed_to_close", "lock_failed", "lock_moved", "meter_stale"],
)
def test_each_fault_is_faulted_at_once(readings: EvseReadings) -> None:
    state = model().update(readings, 0.0)
    assert state.faulted
    assert state.connector_states == {1: F, 2: F}
    assert len(state.faults) == 1


def test_meter_fault_maps_to_unavailable_when_configured() -> None:
    state = model(meter_fault_state=U).update(
        replace(HEALTHY, meter_fault=Fault(FaultKind.METER_NO_RESPONSE, 0.0)), 0.0
    )
    assert state.unavailable and not state.faulted
    assert state.faults == (FaultKind.METER_NO_RESPONSE,)
    assert state.connector_states == {1: U, 2: U}


def test_meter_unavailable_with_another_fault_is_unavailable_faulted() -> None:
    readings = replace(
        HEALTHY,
        meter_fault=Fault(FaultKind.METER_STALE, 0.0),
        lock=lock_fault(FaultKind.LOCK_FAILED_UNLOCK),
    )
    state = model(meter_fault_state=U).update(readings, 0.0)
    assert state.faulted and state.unavailable
    assert state.connector_states == {1: UF, 2: UF}


def test_disabled_and_faulted_is_unavailable_faulted() -> None:
    readings = replace(HEALTHY, enabled=False, contactor=contactor_fault(FaultKind.CONTACTOR_WELDED))
    assert model().update(readings, 0.0).connector_states == {1: UF, 2: UF}


def test_faulted_with_session_is_faulted_occupied_on_the_session_connector() -> None:
    readings = replace(HEALTHY, plugged=True, session_active=True, lock=lock_fault(FaultKind.LOCK_UNEXPECTED_CHANGE))
    assert model().update(readings, 0.0).connector_states == {1: FO, 2: F}


def test_disabled_with_session_stays_occupied() -> None:
    readings = replace(HEALTHY, plugged=True, session_active=True, enabled=False)
    assert model().update(readings, 0.0).connector_states == {1: O, 2: U}


def test_faults_are_sorted_and_combined() -> None:
    readings = replace(
        HEALTHY,
        contactor=contactor_fault(FaultKind.CONTACTOR_WELDED),
        lock=lock_fault(FaultKind.LOCK_FAILED_LOCK),
        meter_fault=Fault(FaultKind.METER_BAD_DATA, 0.0),
    )
    state = model().update(readings, 0.0)
    assert state.faults == (FaultKind.CONTACTOR_WELDED, FaultKind.LOCK_FAILED_LOCK, FaultKind.METER_BAD_DATA)


# ------------------------------------------------------------------ hold logic


def test_fault_clears_only_after_the_hold_time_and_reports_its_deadline() -> None:
    m = model(fault_hold_s=5.0)
    faulty = replace(HEALTHY, lock=lock_fault(FaultKind.LOCK_FAILED_LOCK))
    assert m.update(faulty, 10.0).faulted
    assert m.update(faulty, 12.0).deadline is None  # still reported: nothing to wait for
    healed = m.update(HEALTHY, 13.0)  # healthy from 13.0 on
    assert healed.faulted and healed.faults == (FaultKind.LOCK_FAILED_LOCK,)
    assert healed.deadline == 18.0
    assert m.update(HEALTHY, 17.999).faulted
    assert m.update(HEALTHY, 17.999).deadline == 18.0
    cleared = m.update(HEALTHY, 18.0)
    assert not cleared.faulted and cleared.faults == () and cleared.deadline is None
    assert cleared.connector_states == {1: A, 2: A}


def test_fault_returning_during_hold_restarts_the_hold() -> None:
    m = model(fault_hold_s=5.0)
    faulty = replace(HEALTHY, meter_fault=Fault(FaultKind.METER_STALE, 0.0))
    m.update(faulty, 0.0)
    m.update(HEALTHY, 1.0)
    m.update(faulty, 4.0)  # flickers back
    assert m.update(HEALTHY, 5.0).deadline == 10.0
    assert m.update(HEALTHY, 9.0).faulted
    assert not m.update(HEALTHY, 10.0).faulted


def test_welded_stays_while_the_driver_latches_it_then_holds() -> None:
    m = model(fault_hold_s=5.0)
    welded = replace(HEALTHY, contactor=contactor_fault(FaultKind.CONTACTOR_WELDED))
    for t in (0.0, 60.0, 3600.0):
        state = m.update(welded, t)
        assert state.faulted and state.deadline is None
    assert m.update(HEALTHY, 4000.0).faulted  # operator reset at 4000: still held
    assert not m.update(HEALTHY, 4005.0).faulted


def test_held_faults_report_the_earliest_deadline() -> None:
    m = model(fault_hold_s=2.0)
    both = replace(HEALTHY, lock=lock_fault(FaultKind.LOCK_FAILED_LOCK), meter_fault=Fault(FaultKind.METER_STALE, 0))
    m.update(both, 0.0)
    m.update(replace(both, meter_fault=None), 1.0)  # meter healthy from 1.0
    state = m.update(HEALTHY, 1.5)  # lock healthy from 1.5
    assert state.deadline == 3.0
    state = m.update(HEALTHY, 3.0)
    assert state.faults == (FaultKind.LOCK_FAILED_LOCK,) and state.deadline == 3.5
    assert m.update(HEALTHY, 3.5).faults == ()


def test_zero_hold_clears_at_once() -> None:
    m = model(fault_hold_s=0.0)
    m.update(replace(HEALTHY, lock=lock_fault(FaultKind.LOCK_FAILED_LOCK)), 0.0)
    assert not m.update(HEALTHY, 0.0).faulted


def test_held_meter_fault_keeps_its_configured_meaning() -> None:
    m = model(fault_hold_s=5.0, meter_fault_state=U)
    m.update(replace(HEALTHY, meter_fault=Fault(FaultKind.METER_STALE, 0.0)), 0.0)
    held = m.update(HEALTHY, 1.0)
    assert held.unavailable and not held.faulted
    assert not m.update(HEALTHY, 6.0).unavailable


# ------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    ("args", "kwargs", "problem"),
    [
        ((0, [Connector(1)]), {}, "evse_id"),
        ((True, [Connector(1)]), {}, "evse_id"),
        ((1, []), {}, "connectors must not be empty"),
        ((1, [Connector(1), Connector(1)]), {}, "not unique"),
        ((1, [Connector(1)]), {"fault_hold_s": -1.0}, "fault_hold_s"),
        ((1, [Connector(1)]), {"fault_hold_s": float("nan")}, "fault_hold_s"),
        ((1, [Connector(1)]), {"meter_fault_state": O}, "meter_fault_state"),
        ((1, [Connector(1)]), {"session_connector_id": 7}, "session_connector_id"),
    ],
)
def test_constructor_rejects_bad_arguments(args: tuple[object, ...], kwargs: dict[str, object], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        EvseModel(*args, **kwargs)  # type: ignore[arg-type]


def test_default_session_connector_is_the_first() -> None:
    m = EvseModel(3, [Connector(7), Connector(2)])
    assert m.session_connector_id == 7
