"""Pure timing rules for contactor and lock supervision; time is always passed in as a value.

The GPIO drivers apply these rules when a timer fires; tests call them without hardware.
"""

from __future__ import annotations

from drivers.interfaces import FaultKind, LockPosition

# ---------------------------------------------------------------- contactor


def contactor_fault(
    commanded_closed: bool,
    feedback_closed: bool | None,
    mismatch_since: float | None,
    now: float,
    timeout_s: float,
) -> FaultKind | None:
    """The fault a disagreeing aux contact means once it has disagreed for ``timeout_s``.

    Commanded open but feedback closed is a weld; commanded closed but feedback open is a
    failure to close (or a drop-out). No aux contact, agreement, or a mismatch younger than
    the timeout is no fault.
    """
    if feedback_closed is None or feedback_closed == commanded_closed or mismatch_since is None:
        return None
    if now < mismatch_since + timeout_s:  # the same sum as contactor_fault_due(), so they agree
        return None
    return FaultKind.CONTACTOR_FAILED_TO_CLOSE if commanded_closed else FaultKind.CONTACTOR_WELDED


def contactor_fault_due(
    commanded_closed: bool, feedback_closed: bool | None, mismatch_since: float | None, timeout_s: float
) -> float | None:
    """When a current mismatch turns into a fault (monotonic s); None if nothing disagrees."""
    if feedback_closed is None or feedback_closed == commanded_closed or mismatch_since is None:
        return None
    return mismatch_since + timeout_s


def fault_clears(kind: FaultKind, healthy_since: float | None, now: float, hold_s: float) -> bool:
    """True when a fault may clear: readings healthy for ``hold_s``; a weld never clears by itself."""
    if kind is FaultKind.CONTACTOR_WELDED or healthy_since is None:
        return False
    return now >= healthy_since + hold_s


def reclose_wait_s(last_opened_at: float | None, now: float, min_interval_s: float) -> float:
    """Seconds a close must still wait to respect the minimum re-close interval (0.0: close now)."""
    if last_opened_at is None or min_interval_s <= 0:
        return 0.0
    return max(0.0, last_opened_at + min_interval_s - now)


# ---------------------------------------------------------------- lock


def lock_position(feedback_locked: bool | None, motor_running: bool, assumed: LockPosition) -> LockPosition:
    """Where the lock is: MOVING while the motor runs, else the feedback switch, else ``assumed``."""
    if motor_running:
        return LockPosition.MOVING
    if feedback_locked is None:
        return assumed
    return LockPosition.LOCKED if feedback_locked else LockPosition.UNLOCKED


def lock_fault(target: LockPosition, position: LockPosition, attempts: int, retries: int) -> FaultKind | None:
    """The fault after ``attempts`` pulses towards ``target``: one only once all retries are spent.

    ``retries`` counts the pulses after the first, so ``retries + 1`` pulses are tried in all.
    """
    if position == target or attempts <= retries:
        return None
    if target is LockPosition.LOCKED:
        return FaultKind.LOCK_FAILED_LOCK
    if target is LockPosition.UNLOCKED:
        return FaultKind.LOCK_FAILED_UNLOCK
    raise ValueError(f"target: a lock can only be driven to LOCKED or UNLOCKED, not {target!r}")


def lock_idle_fault(commanded: LockPosition, position: LockPosition) -> FaultKind | None:
    """An idle lock whose confirmed position leaves the commanded one has been moved by force."""
    if commanded not in (LockPosition.LOCKED, LockPosition.UNLOCKED):
        return None
    if position in (commanded, LockPosition.UNKNOWN):
        return None
    return FaultKind.LOCK_UNEXPECTED_CHANGE
