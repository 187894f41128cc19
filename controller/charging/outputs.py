"""Output policy: EVSE state + session -> LEDs, lock and contactor, with the safety interlocks.

This is the only place the interlocks live (DESIGN.md, "From state to outputs"): the lock is
released only when the contactor is confirmed open by feedback and no current above the
threshold flows; the contactor closes only for an authorized, plugged, locked, fault-free EVSE.
The table picks what is wanted; the interlocks then veto, whatever the table said.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from controller.charging.evse import EvseState
from controller.charging.session import RUNNING, Phase, SessionView
from drivers.interfaces import ContactorReport, FaultKind, LedMode, LockPosition, LockReport, StatusColor, StatusPattern

_CLOSING_PHASES = (Phase.LOCKING, Phase.CHARGING)


@dataclass(frozen=True, slots=True)
class OutputInputs:
    """Everything the policy looks at for one EVSE, read at one moment."""

    state: EvseState
    session: SessionView
    reserved: bool  # EVSE is in ReservationCore.reserved_evses()
    lock_when_reserved: bool
    lock_fitted: bool
    lock: LockReport | None
    contactor: ContactorReport | None
    current_a: float | None  # max phase current from the meter, None if unknown/no meter
    meter_fitted: bool
    current_threshold_a: float = 0.5
    # current_a is from a reading completed after the contactor was last seen open again; only such a
    # reading may let the lock go (one from before says nothing about what flows now)
    reading_after_opening: bool = True
    # charging paused (energy manager or a 0 A limit): the contactor stays open, the session and the lock stay
    paused: bool = False
    # with a control pilot (controller.charging.pilot): the car asks for energy and is offered a current (else
    # the contactor stays open); without one always True
    car_ready: bool = True


@dataclass(frozen=True, slots=True)
class Outputs:
    """What the runtime should drive: indicators, lock and contactor coil."""

    reserved_led: LedMode
    status_color: StatusColor
    status_pattern: StatusPattern
    lock: LockPosition | None  # LOCKED / UNLOCKED wanted, None = leave as it is
    contactor_closed: bool  # wanted coil state
    # everything but the car lets it charge: a control pilot offers the current now (not part of the table's rows)
    may_offer: bool = field(default=False, compare=False)


def is_welded(contactor: ContactorReport | None) -> bool:
    """True when the contactor driver reports a (latched) weld."""
    return contactor is not None and contactor.fault is not None and contactor.fault.kind is FaultKind.CONTACTOR_WELDED


def current_known_low(current_a: float | None, threshold_a: float) -> bool:
    """True only for a known current at or below the threshold (NaN and None are not known)."""
    return current_a is not None and abs(current_a) <= threshold_a


def unlock_permitted(
    contactor: ContactorReport | None, current_a: float | None, *, meter_fitted: bool, threshold_a: float
) -> bool:
    """The unlock interlock: the contactor is confirmed open and no current above the threshold flows.

    Confirmed open means commanded open, not welded, and the aux contact reads open; with no aux
    contact fitted only a fitted meter showing a known low current can confirm it. With a meter
    fitted its current must be known and at most ``threshold_a``; unknown fails closed.
    """
    if contactor is None or contactor.commanded_closed or is_welded(contactor):
        return False
    if contactor.feedback_closed is True:
        return False
    if contactor.feedback_closed is None and not meter_fitted:
        return False  # nothing at all confirms the contacts are open
    return not meter_fitted or current_known_low(current_a, threshold_a)


def lock_confirmed_locked(lock: LockReport | None, *, lock_fitted: bool) -> bool:
    """The lock is commanded LOCKED, its feedback says LOCKED and it has no fault (true with no lock fitted).

    The command matters: between the pulses of an unlock that is being retried the feedback still reads
    LOCKED, and the next pulse would drive the motor towards unlock.
    """
    if not lock_fitted:
        return True
    return (
        lock is not None
        and lock.commanded is LockPosition.LOCKED
        and lock.position is LockPosition.LOCKED
        and lock.fault is None
    )


def close_permitted(session: SessionView, state: EvseState, lock: LockReport | None, *, lock_fitted: bool) -> bool:
    """The close interlock: authorized session in LOCKING/CHARGING, plugged, lock confirmed, no fault."""
    return (
        session.phase in _CLOSING_PHASES
        and session.token is not None
        and state.plugged
        and lock_confirmed_locked(lock, lock_fitted=lock_fitted)
        and not state.faults
        and not state.faulted
        and not state.unavailable
    )


def _welded(i: OutputInputs) -> bool:
    """A weld seen by the model (held) or reported by the driver right now."""
    return FaultKind.CONTACTOR_WELDED in i.state.faults or is_welded(i.contactor)


def _reserved_led(i: OutputInputs) -> LedMode:
    """On exactly while reserved; blinking while a car is plugged in that has not shown its token."""
    if not i.reserved:
        return LedMode.OFF
    waiting_for_token = i.state.plugged and i.session.phase is Phase.IDLE
    return LedMode.BLINK if waiting_for_token else LedMode.ON


def _status_and_lock(i: OutputInputs) -> tuple[StatusColor, StatusPattern, LockPosition | None]:
    """The table row: the first condition that holds decides status LED and wanted lock position."""
    phase = i.session.phase
    if _welded(i):
        return StatusColor.RED, StatusPattern.BLINK, LockPosition.LOCKED  # car kept, socket shut: contacts may be live
    if i.state.faulted:
        # unchanged, unless a stopped session is handing the car back (the interlock still decides)
        return StatusColor.RED, StatusPattern.BLINK, LockPosition.UNLOCKED if phase is Phase.UNLOCKING else None
    if phase in RUNNING or i.state.occupied:
        flowing = i.current_a is not None and abs(i.current_a) > i.current_threshold_a
        pattern = StatusPattern.PULSE if flowing else StatusPattern.STEADY
        if i.state.plugged and phase in RUNNING:
            return StatusColor.BLUE, pattern, LockPosition.LOCKED
        # an authorized token waits for its car: the socket opens for the plug (a reserved lock releases)
        return StatusColor.BLUE, pattern, LockPosition.UNLOCKED if phase is Phase.AUTHORIZED else None
    if i.state.unavailable:
        return StatusColor.OFF, StatusPattern.STEADY, LockPosition.UNLOCKED
    if i.reserved:
        keep_locked = i.lock_when_reserved and phase is not Phase.AUTHORIZED and phase is not Phase.UNLOCKING
        return StatusColor.AMBER, StatusPattern.STEADY, LockPosition.LOCKED if keep_locked else LockPosition.UNLOCKED
    return StatusColor.GREEN, StatusPattern.STEADY, LockPosition.UNLOCKED


def decide_outputs(inputs: OutputInputs) -> Outputs:
    """The table of DESIGN.md, then the interlocks, which override everything."""
    color, pattern, lock = _status_and_lock(inputs)
    may_offer = (
        close_permitted(inputs.session, inputs.state, inputs.lock, lock_fitted=inputs.lock_fitted)
        and not inputs.paused
        and inputs.contactor is not None
        and inputs.contactor.fault is None
        and (inputs.lock is None or inputs.lock.fault is None)
    )
    closed = may_offer and inputs.car_ready
    if not inputs.lock_fitted:
        lock = None
    elif lock is LockPosition.UNLOCKED and (
        closed
        or not unlock_permitted(
            inputs.contactor,
            inputs.current_a if inputs.reading_after_opening else None,
            meter_fitted=inputs.meter_fitted,
            threshold_a=inputs.current_threshold_a,
        )
    ):
        lock = None  # hold the lock where it is until releasing it is safe
    return Outputs(
        reserved_led=_reserved_led(inputs),
        status_color=color,
        status_pattern=pattern,
        lock=lock,
        contactor_closed=closed,
        may_offer=may_offer,
    )
