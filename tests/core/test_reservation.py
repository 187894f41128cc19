"""Every rule of DESIGN.md's reservation section, one behaviour per test."""

from __future__ import annotations

from datetime import timedelta

import pytest
from core_helpers import T0, FakeClock, Recorder, res, site

from controller.core.reservation import ReservationCore
from controller.core.types import (
    ConnectorState,
    ConnectorType,
    EvseReservedChanged,
    ReservationCheck,
    ReservationCheckStatus,
    ReservationEnd,
    ReservationEndReason,
    ReservationResult,
    ReservationUpdate,
    ReservationUpdateStatus,
)

T2 = ConnectorType.cType2
CCS = ConnectorType.cCCS2
UNK = ConnectorType.Unknown
A, OCCUPIED, F, U = (
    ConnectorState.AVAILABLE,
    ConnectorState.OCCUPIED,
    ConnectorState.FAULTED,
    ConnectorState.UNAVAILABLE,
)
ACC, OCC, REJ = ReservationResult.ACCEPTED, ReservationResult.OCCUPIED, ReservationResult.REJECTED


def make(*evses: tuple[ConnectorType, ...], clock: FakeClock | None = None) -> tuple[ReservationCore, Recorder]:
    core = ReservationCore(site(*evses), clock=clock or FakeClock())
    rec = Recorder()
    core.subscribe(rec)
    return core, rec


# ------------------------------------------------------------------ EVSE-specific


def test_specific_reservation_is_placed_and_lights_its_evse() -> None:
    core, rec = make((T2,), (T2,))
    assert core.reserve_now(res(1, evse=2, ctype=T2)) is ACC
    assert rec == [ReservationUpdateStatus(1, ReservationUpdate.PLACED), EvseReservedChanged(2, True)]
    assert core.reserved_evses() == {2}
    assert core.is_evse_reserved(2) and not core.is_evse_reserved(1)


def test_evse_already_specifically_reserved_is_occupied() -> None:
    core, _ = make((T2,))
    assert core.reserve_now(res(1, evse=1)) is ACC
    assert core.reserve_now(res(2, evse=1)) is OCC


def test_unknown_evse_and_missing_type_are_rejected() -> None:
    core, rec = make((T2,))
    assert core.reserve_now(res(1, evse=9)) is REJ
    assert core.reserve_now(res(2, evse=1, ctype=CCS)) is REJ
    assert rec == []


def test_plugged_or_occupied_evse_is_occupied_and_faulted_occupied_is_faulted() -> None:
    core, _ = make((T2, CCS), (T2, CCS), (T2, CCS))
    core.set_plugged_in(1, True)
    core.set_connector_state(2, 2, OCCUPIED)
    core.set_connector_state(3, 2, ConnectorState.FAULTED_OCCUPIED)
    assert core.reserve_now(res(1, evse=1, ctype=T2)) is OCC
    assert core.reserve_now(res(2, evse=2, ctype=T2)) is OCC
    assert core.reserve_now(res(3, evse=3, ctype=T2)) is ReservationResult.FAULTED


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ((F,), ReservationResult.FAULTED),
        ((U,), ReservationResult.UNAVAILABLE),
        ((U, F), ReservationResult.FAULTED),
        ((ConnectorState.UNAVAILABLE_FAULTED, U), ReservationResult.FAULTED),
    ],
)
def test_no_compatible_connector_available_names_the_weightiest_state(
    states: tuple[ConnectorState, ...], expected: ReservationResult
) -> None:
    core, _ = make((*(T2 for _ in states), CCS))
    for cid, state in enumerate(states, start=1):
        core.set_connector_state(1, cid, state)
    assert core.reserve_now(res(1, evse=1, ctype=T2)) is expected
    assert core.reserve_now(res(2, evse=1, ctype=CCS)) is ACC  # the CCS connector is still fine


def test_unknown_and_absent_types_match_any_connector_and_unknown_connector_matches_any_type() -> None:
    core, _ = make((T2,), (UNK,), (CCS,))
    assert core.reserve_now(res(1, evse=1, ctype=UNK)) is ACC
    assert core.reserve_now(res(2, evse=2, ctype=CCS)) is ACC
    assert core.reserve_now(res(3, evse=3)) is ACC


def test_specific_refused_when_it_would_strand_a_global_reservation() -> None:
    core, _ = make((T2,), (CCS,))
    assert core.reserve_now(res(1, ctype=T2)) is ACC
    assert core.reserve_now(res(2, evse=1)) is OCC  # EVSE 1 is the only Type 2
    assert core.reserve_now(res(3, evse=2)) is ACC


# ------------------------------------------------------------------ global


def test_global_type_that_no_evse_has_is_rejected() -> None:
    core, _ = make((T2,))
    assert core.reserve_now(res(1, ctype=CCS)) is REJ
    empty, _ = make()
    assert empty.reserve_now(res(1)) is REJ


def test_globals_fill_the_site_then_are_refused_occupied() -> None:
    core, _ = make((T2,), (T2,))
    assert core.reserve_now(res(1)) is ACC
    assert core.reserve_now(res(2)) is ACC
    assert core.reserve_now(res(3)) is OCC
    assert core.reserved_evses() == {1, 2}


def test_feasibility_is_adversarial_over_choices() -> None:
    # EVSE 1 has Type 2 and CCS, EVSE 2 only Type 2: a Type 2 car may take EVSE 1 and strand the CCS car.
    core, _ = make((T2, CCS), (T2,))
    assert core.reserve_now(res(1, ctype=T2)) is ACC
    assert core.reserve_now(res(2, ctype=CCS)) is OCC
    other, _ = make((T2, CCS), (T2,))
    assert other.reserve_now(res(1, ctype=CCS)) is ACC
    assert other.reserve_now(res(2, ctype=T2)) is OCC  # same pair, either order


def test_refusal_without_reservations_names_the_weightiest_compatible_state() -> None:
    core, _ = make((T2,), (T2,), (CCS,))
    core.set_connector_state(1, 1, F)
    core.set_connector_state(2, 1, U)
    assert core.reserve_now(res(1, ctype=T2)) is ReservationResult.FAULTED
    core.set_plugged_in(3, True)
    assert core.reserve_now(res(2, ctype=T2)) is OCC  # anything plugged in: Occupied


def test_refusal_with_only_unavailable_connectors_is_unavailable() -> None:
    core, _ = make((T2,))
    core.set_connector_state(1, 1, U)
    assert core.reserve_now(res(1)) is ReservationResult.UNAVAILABLE


# ------------------------------------------------------------------ ids, expiry, cancel, use


def test_expiry_in_the_past_is_rejected_and_equal_to_now_is_accepted_then_expires() -> None:
    clock = FakeClock()
    core, rec = make((T2,), clock=clock)
    assert core.reserve_now(res(1, minutes=-1)) is REJ
    assert core.reserve_now(res(2, minutes=0)) is ACC
    assert core.expire_due() == [ReservationEnd(ReservationEndReason.EXPIRED, 2)]
    assert rec[-2:] == [
        ReservationUpdateStatus(2, ReservationUpdate.EXPIRED),
        EvseReservedChanged(1, False, ReservationEndReason.GLOBAL_RESERVATION_REQUIREMENT_DROPPED),
    ]


def test_same_id_replaces_even_when_the_new_one_is_refused() -> None:
    core, rec = make((T2,), (CCS,))
    assert core.reserve_now(res(5, evse=1)) is ACC
    rec.clear()
    assert core.reserve_now(res(5, evse=9)) is REJ
    assert core.reservations() == []
    assert rec[:2] == [
        ReservationEnd(ReservationEndReason.CANCELLED, 5, 1),
        ReservationUpdateStatus(5, ReservationUpdate.REMOVED),
    ]


def test_replacing_reservation_queues_behind_older_ones() -> None:
    core, _ = make((T2,), (T2,), (T2,))
    for rid in (1, 2, 3):
        assert core.reserve_now(res(rid)) is ACC
    assert core.reserve_now(res(1, "NEW")) is ACC
    assert [r.reservation_id for r in core.reservations()] == [2, 3, 1]
    core.set_connector_state(3, 1, F)  # one EVSE fewer: the newest in line goes
    assert [r.reservation_id for r in core.reservations()] == [2, 3]


def test_expiry_by_clock_and_next_expiry() -> None:
    clock = FakeClock()
    core, rec = make((T2,), (T2,), clock=clock)
    core.reserve_now(res(1, evse=1, minutes=10))
    core.reserve_now(res(2, minutes=5))
    assert core.next_expiry() == T0 + timedelta(minutes=5)
    clock.advance(5 * 60 - 1)
    assert core.expire_due() == []
    clock.advance(1)
    assert core.expire_due() == [ReservationEnd(ReservationEndReason.EXPIRED, 2)]
    assert core.next_expiry() == T0 + timedelta(minutes=10)
    clock.advance(10 * 60)
    rec.clear()
    assert core.is_evse_reserved(1) is False  # any call ends what is due first
    assert rec == [
        ReservationEnd(ReservationEndReason.EXPIRED, 1, 1),
        ReservationUpdateStatus(1, ReservationUpdate.EXPIRED),
        EvseReservedChanged(1, False, ReservationEndReason.EXPIRED),
    ]
    assert core.next_expiry() is None


def test_cancel_and_use_end_once_with_one_status_each() -> None:
    core, rec = make((T2,), (T2,))
    core.reserve_now(res(1, evse=1))
    core.reserve_now(res(2, evse=2))
    rec.clear()
    assert core.cancel_reservation(1) is True
    assert core.cancel_reservation(1) is False
    assert core.use_reservation(2) is True
    assert core.use_reservation(2) is False
    assert rec == [
        ReservationEnd(ReservationEndReason.CANCELLED, 1, 1),
        ReservationUpdateStatus(1, ReservationUpdate.CANCELLED),
        EvseReservedChanged(1, False, ReservationEndReason.CANCELLED),
        ReservationEnd(ReservationEndReason.USED_TO_START_CHARGING, 2, 2),
        ReservationUpdateStatus(2, ReservationUpdate.USED),
        EvseReservedChanged(2, False, ReservationEndReason.USED_TO_START_CHARGING),
    ]


# ------------------------------------------------------------------ tokens


def test_tokens_and_parents_match_case_insensitively() -> None:
    core, _ = make((T2,), (T2,), (T2,))
    core.reserve_now(res(1, "AbCd", evse=1, parent="Fleet"))
    core.reserve_now(res(2, "glob", parent="Group"))
    assert core.matches_reserved_identifier("abcd", 1) == 1
    assert core.matches_reserved_identifier("other", 1, "FLEET") == 1
    assert core.matches_reserved_identifier("other", 1) is None
    assert core.matches_reserved_identifier("GLOB", 1) is None  # EVSE 1 is held for someone else
    assert core.matches_reserved_identifier("GLOB", 2) == 2
    assert core.matches_reserved_identifier("x", None, "group") == 2
    assert core.matches_reserved_identifier("x") is None


def test_exists_reservation_four_outcomes() -> None:
    core, _ = make((T2,), (T2,), (T2,))
    core.reserve_now(res(1, "alice", evse=1, parent="fleet"))
    core.reserve_now(res(2, "bob", evse=2))
    check = core.exists_reservation
    assert check(ReservationCheck("ALICE", 1)) is ReservationCheckStatus.RESERVED_FOR_TOKEN
    assert check(ReservationCheck("carol", 1, "FLEET")) is ReservationCheckStatus.RESERVED_FOR_TOKEN
    assert check(ReservationCheck("carol", 1)) is ReservationCheckStatus.RESERVED_FOR_OTHER_TOKEN_AND_HAS_PARENT_TOKEN
    assert check(ReservationCheck("carol", 1, "other")) is ReservationCheckStatus.RESERVED_FOR_OTHER_TOKEN
    assert check(ReservationCheck("carol", 2)) is ReservationCheckStatus.RESERVED_FOR_OTHER_TOKEN
    assert check(ReservationCheck("carol", 3)) is ReservationCheckStatus.NOT_RESERVED
    assert check(ReservationCheck("bob")) is ReservationCheckStatus.NOT_RESERVED  # no EVSE: globals only
    core.reserve_now(res(3, "dave"))
    assert check(ReservationCheck("DAVE")) is ReservationCheckStatus.RESERVED_FOR_TOKEN


def test_has_reservation_parent_id() -> None:
    core, _ = make((T2,), (T2,), (T2,))
    assert core.has_reservation_parent_id(None) is False
    core.reserve_now(res(1, evse=1))
    assert core.has_reservation_parent_id(1) is False
    core.reserve_now(res(2, parent="p"))
    assert core.has_reservation_parent_id(1) is False  # its own reservation decides
    assert core.has_reservation_parent_id(3) is True  # falls back to the global ones
    assert core.has_reservation_parent_id(None) is True
    assert core.has_reservation_parent_id(99) is False


# ------------------------------------------------------------------ state changes


def test_matching_connector_going_faulted_cancels_only_that_specific_reservation() -> None:
    core, rec = make((T2, CCS), (T2,), (T2,))
    core.reserve_now(res(1, evse=1, ctype=T2))
    core.reserve_now(res(2))
    core.reserve_now(res(3))
    rec.clear()
    core.set_connector_state(1, 1, F)
    assert [r.reservation_id for r in core.reservations()] == [2, 3]
    assert rec[:2] == [
        ReservationEnd(ReservationEndReason.CANCELLED, 1, 1),
        ReservationUpdateStatus(1, ReservationUpdate.REMOVED),
    ]


def test_absent_type_specific_reservation_is_cancelled_too() -> None:
    core, _ = make((T2, CCS))
    core.reserve_now(res(1, evse=1))
    core.set_connector_state(1, 2, U)
    assert core.reservations() == []


def test_other_connector_going_faulted_rechecks_first_come_first_kept() -> None:
    core, rec = make((T2, CCS), (T2,), (T2,))
    core.reserve_now(res(1, evse=1, ctype=CCS))
    core.reserve_now(res(10, ctype=T2))
    core.reserve_now(res(11, ctype=T2))
    rec.clear()
    core.set_connector_state(1, 1, F)  # Type 2 on EVSE 1: the CCS reservation stays
    assert [r.reservation_id for r in core.reservations()] == [1, 10, 11]
    core.set_connector_state(3, 1, OCCUPIED)  # only EVSE 2 left for two Type 2 cars: the later one goes
    assert [r.reservation_id for r in core.reservations()] == [1, 10]
    assert ReservationEnd(ReservationEndReason.CANCELLED, 11) in rec


def test_becoming_available_and_plugging_in_cancel_nothing() -> None:
    core, _ = make((T2,), (T2,))
    core.reserve_now(res(1, evse=1))
    core.reserve_now(res(2))
    core.set_plugged_in(1, True)
    core.set_plugged_in(2, True)
    core.set_connector_state(2, 1, A)
    assert [r.reservation_id for r in core.reservations()] == [1, 2]


def test_unknown_ids_in_state_changes_are_clear_errors() -> None:
    core, _ = make((T2,))
    with pytest.raises(ValueError, match="unknown evse 4"):
        core.set_connector_state(4, 1, F)
    with pytest.raises(ValueError, match="evse 1: unknown connector 3"):
        core.set_connector_state(1, 3, F)
    with pytest.raises(ValueError, match="unknown evse 0"):
        core.set_plugged_in(0, True)


# ------------------------------------------------------------------ charging possible and the LEDs


def test_is_charging_possible() -> None:
    core, _ = make((T2,), (T2,), (CCS,))
    core.reserve_now(res(1, evse=1))
    core.reserve_now(res(2, ctype=T2))
    assert core.is_charging_possible(1) is False  # specifically reserved
    assert core.is_charging_possible(2) is False  # the last Type 2 for the global car
    assert core.is_charging_possible(3) is True
    assert core.is_charging_possible(42) is False


def test_reserved_evses_all_available_when_counts_match_else_by_type() -> None:
    core, rec = make((T2,), (T2,), (CCS,))
    core.reserve_now(res(1, ctype=T2))
    assert core.reserved_evses() == set()  # one Type 2 car, two Type 2 EVSEs, three free: none held
    core.reserve_now(res(2, ctype=T2))
    assert core.reserved_evses() == {1, 2}  # another Type 2 car would not fit
    core.reserve_now(res(3, ctype=CCS))
    assert core.reserved_evses() == {1, 2, 3}
    rec.clear()
    core.cancel_reservation(2)
    dropped = ReservationEndReason.GLOBAL_RESERVATION_REQUIREMENT_DROPPED
    assert rec[-2:] == [EvseReservedChanged(1, False, dropped), EvseReservedChanged(2, False, dropped)]
    assert core.reserved_evses() == {3}


def test_evse_leaving_the_set_by_its_own_fault_is_not_requirement_dropped() -> None:
    core, rec = make((T2,), (T2,))
    core.reserve_now(res(1))
    core.reserve_now(res(2))
    rec.clear()
    core.set_plugged_in(2, True)
    assert rec == [EvseReservedChanged(2, False, None)]


def test_ends_come_before_indication_changes_and_a_failing_subscriber_is_contained() -> None:
    core, rec = make((T2,))

    def broken(_: object) -> None:
        raise RuntimeError("subscriber bug")

    core.subscribe(broken)
    core.reserve_now(res(1, evse=1))
    core.cancel_reservation(1)
    kinds = [type(e).__name__ for e in rec]
    assert kinds == [
        "ReservationUpdateStatus",
        "EvseReservedChanged",
        "ReservationEnd",
        "ReservationUpdateStatus",
        "EvseReservedChanged",
    ]


def test_unsubscribe_stops_events() -> None:
    core, _ = make((T2,))
    rec = Recorder()
    stop = core.subscribe(rec)
    stop()
    core.reserve_now(res(1))
    assert rec == []


def test_bad_site_is_refused() -> None:
    with pytest.raises(ValueError, match="evse 1: has no connectors"):
        ReservationCore({1: []})
    with pytest.raises(ValueError, match="positive integer"):
        ReservationCore({0: site((T2,))[1]})
    with pytest.raises(ValueError, match="not unique"):
        ReservationCore({1: [*site((T2,))[1], *site((CCS,))[1]]})
