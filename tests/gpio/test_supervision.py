"""Pure timing rules of contactor and lock supervision, at their exact boundaries."""

from __future__ import annotations

import pytest

from drivers.interfaces import FaultKind, LockPosition
from drivers.supervision import (
    contactor_fault,
    contactor_fault_due,
    fault_clears,
    lock_fault,
    lock_idle_fault,
    lock_position,
    reclose_wait_s,
)

LOCKED, UNLOCKED, MOVING, UNKNOWN = (
    LockPosition.LOCKED,
    LockPosition.UNLOCKED,
    LockPosition.MOVING,
    LockPosition.UNKNOWN,
)


@pytest.mark.parametrize(
    ("commanded", "feedback", "expected"),
    [
        (False, True, FaultKind.CONTACTOR_WELDED),
        (True, False, FaultKind.CONTACTOR_FAILED_TO_CLOSE),
        (True, True, None),
        (False, False, None),
        (True, None, None),
        (False, None, None),
    ],
)
def test_contactor_fault_after_timeout(
    commanded: bool, feedback: bool | None, expected: FaultKind | None
) -> None:
    assert contactor_fault(commanded, feedback, 100.0, 100.2, 0.2) is expected


@pytest.mark.parametrize(("commanded", "feedback"), [(False, True), (True, False)])
def test_contactor_no_fault_before_timeout(commanded: bool, feedback: bool) -> None:
    assert contactor_fault(commanded, feedback, 100.0, 100.1999, 0.2) is None
    assert contactor_fault(commanded, feedback, None, 500.0, 0.2) is None
    assert contactor_fault_due(commanded, feedback, 100.0, 0.2) == pytest.approx(100.2)


def test_contactor_fault_due_only_on_mismatch() -> None:
    assert contactor_fault_due(True, True, 1.0, 0.2) is None
    assert contactor_fault_due(True, None, 1.0, 0.2) is None


def test_weld_never_clears_by_itself_other_faults_after_hold() -> None:
    assert not fault_clears(FaultKind.CONTACTOR_WELDED, 0.0, 1e6, 5.0)
    assert not fault_clears(FaultKind.CONTACTOR_FAILED_TO_CLOSE, 10.0, 14.9, 5.0)
    assert fault_clears(FaultKind.CONTACTOR_FAILED_TO_CLOSE, 10.0, 15.0, 5.0)
    assert not fault_clears(FaultKind.CONTACTOR_FAILED_TO_CLOSE, None, 15.0, 5.0)


def test_reclose_wait() -> None:
    assert reclose_wait_s(None, 5.0, 10.0) == 0.0
    assert reclose_wait_s(1.0, 5.0, 10.0) == pytest.approx(6.0)
    assert reclose_wait_s(1.0, 11.0, 10.0) == 0.0
    assert reclose_wait_s(1.0, 2.0, 0.0) == 0.0


def test_lock_position() -> None:
    assert lock_position(True, True, UNKNOWN) is MOVING
    assert lock_position(True, False, UNKNOWN) is LOCKED
    assert lock_position(False, False, LOCKED) is UNLOCKED
    assert lock_position(None, False, LOCKED) is LOCKED  # no feedback: assumed


def test_lock_fault_only_when_retries_are_spent() -> None:
    assert lock_fault(LOCKED, UNLOCKED, attempts=1, retries=3) is None
    assert lock_fault(LOCKED, UNLOCKED, attempts=3, retries=3) is None
    assert lock_fault(LOCKED, UNLOCKED, attempts=4, retries=3) is FaultKind.LOCK_FAILED_LOCK
    assert lock_fault(UNLOCKED, LOCKED, attempts=1, retries=0) is FaultKind.LOCK_FAILED_UNLOCK
    assert lock_fault(LOCKED, LOCKED, attempts=9, retries=0) is None
    with pytest.raises(ValueError, match="target"):
        lock_fault(MOVING, UNLOCKED, attempts=9, retries=0)


def test_lock_idle_fault() -> None:
    assert lock_idle_fault(LOCKED, UNLOCKED) is FaultKind.LOCK_UNEXPECTED_CHANGE
    assert lock_idle_fault(UNLOCKED, LOCKED) is FaultKind.LOCK_UNEXPECTED_CHANGE
    assert lock_idle_fault(LOCKED, LOCKED) is None
    assert lock_idle_fault(UNKNOWN, LOCKED) is None  # nothing commanded yet
