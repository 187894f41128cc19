"""Output policy: DESIGN.md "From state to outputs" row by row, then every interlock on its own."""

from __future__ import annotations

from dataclasses import replace

import pytest

from controller.charging.evse import EvseState
from controller.charging.outputs import (
    OutputInputs,
    Outputs,
    close_permitted,
    decide_outputs,
    unlock_permitted,
)
from controller.charging.session import Phase, SessionView
from drivers.interfaces import (
    ContactorReport,
    Fault,
    FaultKind,
    LedMode,
    LockPosition,
    LockReport,
    StatusColor,
    StatusPattern,
)

L, UL = LockPosition.LOCKED, LockPosition.UNLOCKED
ON, OFF, BLINK = LedMode.ON, LedMode.OFF, LedMode.BLINK
STEADY, PULSE, FLASH = StatusPattern.STEADY, StatusPattern.PULSE, StatusPattern.BLINK

OPEN = ContactorReport(commanded_closed=False, feedback_closed=False, since=0.0, fault=None)
CLOSED = ContactorReport(commanded_closed=True, feedback_closed=True, since=0.0, fault=None)
WELDED = ContactorReport(False, True, 0.0, Fault(FaultKind.CONTACTOR_WELDED, 0.0))
LOCK_LOCKED = LockReport(L, L, None)
LOCK_UNLOCKED = LockReport(UL, UL, None)
LOCK_JAMMED = LockReport(L, LockPosition.UNKNOWN, Fault(FaultKind.LOCK_FAILED_LOCK, 0.0))


def state(
    *,
    plugged: bool = False,
    faults: tuple[FaultKind, ...] = (),
    unavailable: bool = False,
    occupied: bool = False,
) -> EvseState:
    return EvseState(plugged, faults, bool(faults), unavailable, occupied, {}, None)


def session(phase: Phase = Phase.IDLE, token: str | None = "tok") -> SessionView:
    if phase is Phase.IDLE:
        return SessionView(Phase.IDLE, None, False, None)
    return SessionView(phase, token, False, 0.0)


def inputs(**over: object) -> OutputInputs:
    base = OutputInputs(
        state=state(),
        session=session(),
        reserved=False,
        lock_when_reserved=True,
        lock_fitted=True,
        lock=LOCK_UNLOCKED,
        contactor=OPEN,
        current_a=0.0,
        meter_fitted=True,
    )
    return replace(base, **over)  # type: ignore[arg-type]


def out(led: LedMode, color: StatusColor, pattern: StatusPattern, lock: LockPosition | None, closed: bool) -> Outputs:
    return Outputs(led, color, pattern, lock, closed)


# ------------------------------------------------------------------ the table


CHARGING_LIVE = {
    "state": state(plugged=True, occupied=True),
    "session": session(Phase.CHARGING),
    "lock": LOCK_LOCKED,
    "contactor": CLOSED,
    "current_a": 16.0,
}

ROWS: dict[str, tuple[dict[str, object], Outputs]] = {
    "available": ({}, out(OFF, StatusColor.GREEN, STEADY, UL, False)),
    "available_plugged_no_session": ({"state": state(plugged=True)}, out(OFF, StatusColor.GREEN, STEADY, UL, False)),
    "authorized_waits_for_plug": (
        {"session": session(Phase.AUTHORIZED)},
        out(OFF, StatusColor.GREEN, STEADY, UL, False),
    ),
    "reserved_locks": ({"reserved": True}, out(ON, StatusColor.AMBER, STEADY, L, False)),
    "reserved_without_lock_when_reserved": (
        {"reserved": True, "lock_when_reserved": False},
        out(ON, StatusColor.AMBER, STEADY, UL, False),
    ),
    "reserved_plugged_without_token_blinks": (
        {"reserved": True, "state": state(plugged=True)},
        out(BLINK, StatusColor.AMBER, STEADY, L, False),
    ),
    "reserved_token_authorized_unlocks_for_the_plug": (
        {"reserved": True, "session": session(Phase.AUTHORIZED), "lock": LOCK_LOCKED},
        out(ON, StatusColor.AMBER, STEADY, UL, False),
    ),
    "locking_wants_locked": (
        {"state": state(plugged=True, occupied=True), "session": session(Phase.LOCKING)},
        out(OFF, StatusColor.BLUE, STEADY, L, False),
    ),
    "locking_complete_closes": (
        {"state": state(plugged=True, occupied=True), "session": session(Phase.LOCKING), "lock": LOCK_LOCKED},
        out(OFF, StatusColor.BLUE, STEADY, L, True),
    ),
    "charging_current_flows_pulses": (CHARGING_LIVE, out(OFF, StatusColor.BLUE, PULSE, L, True)),
    "charging_no_current_steady": ({**CHARGING_LIVE, "current_a": 0.5}, out(OFF, StatusColor.BLUE, STEADY, L, True)),
    "charging_current_unknown_steady": (
        {**CHARGING_LIVE, "current_a": None},
        out(OFF, StatusColor.BLUE, STEADY, L, True),
    ),
    "stopping_opens_and_keeps_locked": (
        {**CHARGING_LIVE, "session": session(Phase.STOPPING)},
        out(OFF, StatusColor.BLUE, PULSE, L, False),
    ),
    "unlocking_releases": (
        {"state": state(plugged=True), "session": session(Phase.UNLOCKING), "lock": LOCK_LOCKED},
        out(OFF, StatusColor.GREEN, STEADY, UL, False),
    ),
    "unlocking_at_reserved_evse_releases": (
        {"reserved": True, "state": state(plugged=True), "session": session(Phase.UNLOCKING), "lock": LOCK_LOCKED},
        out(ON, StatusColor.AMBER, STEADY, UL, False),
    ),
    "faulted_leaves_lock": (
        {"state": state(faults=(FaultKind.LOCK_FAILED_UNLOCK,)), "lock": LOCK_LOCKED},
        out(OFF, StatusColor.RED, FLASH, None, False),
    ),
    "faulted_while_charging_opens": (
        {**CHARGING_LIVE, "state": state(plugged=True, occupied=True, faults=(FaultKind.METER_STALE,))},
        out(OFF, StatusColor.RED, FLASH, None, False),
    ),
    "faulted_unlocking_releases_when_safe": (
        {
            "state": state(plugged=True, faults=(FaultKind.CONTACTOR_FAILED_TO_CLOSE,)),
            "session": session(Phase.UNLOCKING),
            "lock": LOCK_LOCKED,
        },
        out(OFF, StatusColor.RED, FLASH, UL, False),
    ),
    "welded_locks_and_opens": (
        {**CHARGING_LIVE, "state": state(plugged=True, occupied=True, faults=(FaultKind.CONTACTOR_WELDED,))},
        out(OFF, StatusColor.RED, FLASH, L, False),
    ),
    "welded_reported_before_the_model_sees_it": (
        {**CHARGING_LIVE, "contactor": WELDED},
        out(OFF, StatusColor.RED, FLASH, L, False),
    ),
    "unavailable_unlocks": ({"state": state(unavailable=True)}, out(OFF, StatusColor.OFF, STEADY, UL, False)),
    "unavailable_reserved_led_follows_reserved": (
        {"state": state(unavailable=True), "reserved": True},
        out(ON, StatusColor.OFF, STEADY, UL, False),
    ),
    "unavailable_while_charging_opens_keeps_locked": (
        {**CHARGING_LIVE, "state": state(plugged=True, occupied=True, unavailable=True)},
        out(OFF, StatusColor.BLUE, PULSE, L, False),
    ),
    "no_lock_fitted_never_moves_a_lock": (
        {"lock_fitted": False, "lock": None, "reserved": True},
        out(ON, StatusColor.AMBER, STEADY, None, False),
    ),
    "no_lock_fitted_charges": (
        {**CHARGING_LIVE, "lock_fitted": False, "lock": None},
        out(OFF, StatusColor.BLUE, PULSE, None, True),
    ),
}


@pytest.mark.parametrize(("over", "expected"), list(ROWS.values()), ids=list(ROWS))
def test_table_row(over: dict[str, object], expected: Outputs) -> None:
    result = decide_outputs(inputs(**over))
    assert result == expected
    # StrEnums of different classes compare equal by value ("blink"): pin the classes too
    kinds = (type(result.reserved_led), type(result.status_color), type(result.status_pattern))
    assert kinds == (LedMode, StatusColor, StatusPattern)


# ------------------------------------------------------------------ unlock interlock


@pytest.mark.parametrize(
    ("contactor", "current", "meter", "permitted"),
    [
        (OPEN, 0.0, True, True),
        (OPEN, 0.5, True, True),  # at the threshold is not above it
        (OPEN, 0.51, True, False),
        (OPEN, -3.0, True, False),  # a sign does not hide current
        (OPEN, None, True, False),  # meter fitted but current unknown: fail closed
        (OPEN, float("nan"), True, False),
        (OPEN, None, False, True),  # no meter: the aux contact alone confirms
        (replace(OPEN, commanded_closed=True), 0.0, True, False),  # coil energized, contacts not yet closed
        (replace(OPEN, feedback_closed=True), 0.0, True, False),  # aux says closed: feedback beats command
        (CLOSED, 0.0, True, False),
        (WELDED, 0.0, True, False),
        (replace(WELDED, feedback_closed=False), 0.0, True, False),  # latched weld, whatever the aux says
        (replace(OPEN, fault=Fault(FaultKind.CONTACTOR_FAILED_TO_CLOSE, 0.0)), 0.0, True, True),
        (replace(OPEN, feedback_closed=None), 0.0, True, True),  # no aux: command open + meter shows none
        (replace(OPEN, feedback_closed=None), 2.0, True, False),
        (replace(OPEN, feedback_closed=None), None, True, False),
        (replace(OPEN, feedback_closed=None), None, False, False),  # nothing confirms open
        (None, 0.0, True, False),
    ],
)
def test_unlock_permitted(
    contactor: ContactorReport | None, current: float | None, meter: bool, permitted: bool
) -> None:
    assert unlock_permitted(contactor, current, meter_fitted=meter, threshold_a=0.5) is permitted


@pytest.mark.parametrize(
    "blocking",
    [
        {"current_a": 6.0},
        {"current_a": None},
        {"contactor": replace(OPEN, feedback_closed=True)},
        {"contactor": replace(OPEN, commanded_closed=True)},
        {"contactor": replace(OPEN, feedback_closed=None), "current_a": None},
    ],
    ids=["current", "current_unknown", "feedback_closed", "commanded_closed", "no_aux_no_current"],
)
@pytest.mark.parametrize(
    "wants_unlocked",
    [
        {},
        {"state": state(unavailable=True)},
        {"reserved": True, "session": session(Phase.AUTHORIZED)},
        {"state": state(plugged=True), "session": session(Phase.UNLOCKING)},
    ],
    ids=["available", "unavailable", "reserved_authorized", "unlocking"],
)
def test_a_wanted_unlock_is_held_until_permitted(
    wants_unlocked: dict[str, object], blocking: dict[str, object]
) -> None:
    assert decide_outputs(inputs(**wants_unlocked)).lock is UL
    assert decide_outputs(inputs(**{**wants_unlocked, **blocking})).lock is None


# ------------------------------------------------------------------ close interlock


LOCKED_CHARGING = {"state": state(plugged=True, occupied=True), "session": session(Phase.CHARGING), "lock": LOCK_LOCKED}


@pytest.mark.parametrize(
    "breaking",
    [
        {"session": session(Phase.AUTHORIZED)},
        {"session": session(Phase.STOPPING)},
        {"session": session(Phase.UNLOCKING)},
        {"session": session(Phase.CHARGING, token=None)},
        {"state": state(plugged=False, occupied=True)},
        {"lock": LOCK_UNLOCKED},
        {"lock": LockReport(L, LockPosition.MOVING, None)},
        {"lock": replace(LOCK_LOCKED, fault=Fault(FaultKind.LOCK_UNEXPECTED_CHANGE, 0.0))},
        {"lock": None},
        {"state": state(plugged=True, occupied=True, faults=(FaultKind.METER_STALE,))},
        {"state": replace(state(plugged=True, occupied=True), faults=(FaultKind.METER_STALE,), faulted=False)},
        {"state": state(plugged=True, occupied=True, unavailable=True)},
        {"contactor": WELDED},
        {"contactor": replace(OPEN, fault=Fault(FaultKind.CONTACTOR_FAILED_TO_CLOSE, 0.0))},
        {"contactor": None},
    ],
    ids=[
        "authorized",
        "stopping",
        "unlocking",
        "no_token",
        "unplugged",
        "lock_unlocked",
        "lock_moving",
        "lock_fault",
        "lock_report_missing",
        "faulted",
        "fault_listed_as_unavailable",
        "unavailable",
        "welded_report",
        "contactor_fault",
        "no_contactor_report",
    ],
)
def test_contactor_stays_open_unless_everything_holds(breaking: dict[str, object]) -> None:
    assert decide_outputs(inputs(**LOCKED_CHARGING)).contactor_closed
    assert not decide_outputs(inputs(**{**LOCKED_CHARGING, **breaking})).contactor_closed


def test_close_permitted_directly() -> None:
    plugged = state(plugged=True, occupied=True)
    assert close_permitted(session(Phase.LOCKING), plugged, LOCK_LOCKED, lock_fitted=True)
    assert close_permitted(session(Phase.CHARGING), plugged, None, lock_fitted=False)
    assert not close_permitted(session(Phase.LOCKING), plugged, LOCK_UNLOCKED, lock_fitted=True)
    assert not close_permitted(session(Phase.IDLE), plugged, LOCK_LOCKED, lock_fitted=True)
    assert not close_permitted(session(Phase.CHARGING), state(occupied=True), None, lock_fitted=False)
    # a lock fault vetoes even before the model lists it (the report is read at the same moment)
    assert not close_permitted(session(Phase.CHARGING), plugged, replace(LOCK_JAMMED, position=L), lock_fitted=True)


def test_never_unlocked_while_the_contactor_is_closed() -> None:
    for phase in Phase:
        for reserved in (False, True):
            result = decide_outputs(inputs(session=session(phase), reserved=reserved, contactor=CLOSED))
            assert result.lock is not UL, (phase, reserved)


def test_jammed_lock_is_not_confirmed_even_if_commanded_locked() -> None:
    result = decide_outputs(inputs(**{**LOCKED_CHARGING, "lock": LOCK_JAMMED}))
    assert not result.contactor_closed


def test_with_a_pilot_the_contactor_waits_for_the_car_but_the_offer_does_not() -> None:
    """A control pilot offers the current once everything but the car allows charging; the contactor closes only
    when the car asks for it too (car_ready: state C with PWM on)."""
    import dataclasses

    ready = inputs(**CHARGING_LIVE)
    waiting = decide_outputs(dataclasses.replace(ready, car_ready=False))
    assert waiting.may_offer and not waiting.contactor_closed
    asking = decide_outputs(ready)
    assert asking.may_offer and asking.contactor_closed
    paused = decide_outputs(dataclasses.replace(ready, paused=True))
    assert not paused.may_offer and not paused.contactor_closed
