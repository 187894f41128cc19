"""Charging session state machine: every transition of the flow, time injected."""

from __future__ import annotations

from typing import Any

import pytest

from controller.charging.session import ChargingSession, Phase, SessionError, SessionView

TOKEN = "04A2B3C4"

# The inputs of a healthy EVSE with nothing plugged, the lock open and the contactor open.
BASE: dict[str, Any] = {
    "plugged": False,
    "faulted": False,
    "lock_locked": False,
    "lock_unlocked": True,
    "contactor_closed_confirmed": False,
    "contactor_open_confirmed": True,
    "current_a": 0.0,
    "current_threshold_a": 0.5,
    "unlock_permitted": True,
}
PLUGGED_UNLOCKED = {**BASE, "plugged": True}
LOCKED = {**BASE, "plugged": True, "lock_locked": True, "lock_unlocked": False}
CHARGING_IN = {
    **LOCKED,
    "contactor_closed_confirmed": True,
    "contactor_open_confirmed": False,
    "current_a": 16.0,
    "unlock_permitted": False,
}
STOPPED_LOCKED = LOCKED  # contactor open, no current, lock still locked


def step(s: ChargingSession, now: float, inputs: dict[str, Any], **over: Any) -> Phase:
    return s.step(now=now, **{**inputs, **over})


def charging(now: float = 0.0) -> ChargingSession:
    s = ChargingSession(authorize_timeout_s=60.0)
    s.authorize(TOKEN, now, reservation_used=False)
    assert step(s, now, PLUGGED_UNLOCKED) is Phase.LOCKING
    assert step(s, now, LOCKED) is Phase.CHARGING
    assert step(s, now, CHARGING_IN) is Phase.CHARGING
    return s


# ------------------------------------------------------------------ the happy path


def test_full_flow_in_order() -> None:
    s = ChargingSession()
    assert s.view == SessionView(Phase.IDLE, None, False, None)
    assert step(s, 0.0, BASE) is Phase.IDLE
    s.authorize(TOKEN, 1.0, reservation_used=True)
    assert s.view == SessionView(Phase.AUTHORIZED, TOKEN, True, 1.0)
    assert step(s, 2.0, BASE) is Phase.AUTHORIZED
    assert step(s, 3.0, PLUGGED_UNLOCKED) is Phase.LOCKING
    assert step(s, 3.5, PLUGGED_UNLOCKED) is Phase.LOCKING  # lock still moving
    assert step(s, 4.0, LOCKED) is Phase.CHARGING
    assert step(s, 5.0, CHARGING_IN) is Phase.CHARGING
    s.request_stop(6.0)
    assert s.phase is Phase.STOPPING
    assert step(s, 6.0, CHARGING_IN) is Phase.STOPPING  # contactor not open yet
    assert step(s, 6.2, STOPPED_LOCKED) is Phase.UNLOCKING
    assert s.view.token == TOKEN and s.view.reservation_used
    assert step(s, 6.5, STOPPED_LOCKED) is Phase.UNLOCKING  # lock still moving
    assert step(s, 7.0, PLUGGED_UNLOCKED) is Phase.IDLE
    assert s.view == SessionView(Phase.IDLE, None, False, None)


def test_authorize_while_already_plugged_moves_on_at_the_next_step() -> None:
    s = ChargingSession()
    s.authorize(TOKEN, 0.0, reservation_used=False)
    assert step(s, 0.0, LOCKED) is Phase.CHARGING  # plugged and the lock confirms at once


def test_no_lock_fitted_runs_through_with_lock_inputs_true() -> None:
    no_lock = {**BASE, "lock_locked": True, "lock_unlocked": True}
    s = ChargingSession()
    s.authorize(TOKEN, 0.0, reservation_used=False)
    assert step(s, 0.0, no_lock, plugged=True) is Phase.CHARGING
    s.request_stop(1.0)
    assert step(s, 1.0, no_lock, plugged=True) is Phase.IDLE


# ------------------------------------------------------------------ timeout


def test_authorized_times_out_without_a_plug_and_reports_its_deadline() -> None:
    s = ChargingSession(authorize_timeout_s=60.0)
    assert s.deadline() is None
    s.authorize(TOKEN, 100.0, reservation_used=True)
    assert s.deadline() == 160.0
    assert step(s, 159.999, BASE) is Phase.AUTHORIZED
    assert step(s, 160.0, BASE) is Phase.IDLE
    assert s.deadline() is None and s.view.token is None


def test_plug_before_the_timeout_ends_the_deadline() -> None:
    s = ChargingSession(authorize_timeout_s=60.0)
    s.authorize(TOKEN, 0.0, reservation_used=False)
    assert step(s, 59.0, PLUGGED_UNLOCKED) is Phase.LOCKING
    assert s.deadline() is None
    assert step(s, 500.0, PLUGGED_UNLOCKED) is Phase.LOCKING


def test_fault_before_the_plug_pauses_and_the_timeout_still_applies() -> None:
    s = ChargingSession(authorize_timeout_s=60.0)
    s.authorize(TOKEN, 0.0, reservation_used=False)
    assert step(s, 1.0, PLUGGED_UNLOCKED, faulted=True) is Phase.AUTHORIZED
    assert step(s, 2.0, PLUGGED_UNLOCKED) is Phase.LOCKING
    other = ChargingSession(authorize_timeout_s=60.0)
    other.authorize(TOKEN, 0.0, reservation_used=False)
    assert step(other, 60.0, PLUGGED_UNLOCKED, faulted=True) is Phase.IDLE


# ------------------------------------------------------------------ stopping


def test_stop_by_token_while_charging_goes_stopping() -> None:
    s = charging()
    s.request_stop(10.0)
    assert s.phase is Phase.STOPPING


def test_stop_while_authorized_ends_the_session() -> None:
    s = ChargingSession()
    s.authorize(TOKEN, 0.0, reservation_used=False)
    s.request_stop(1.0)
    assert s.view == SessionView(Phase.IDLE, None, False, None)


def test_stop_is_ignored_when_nothing_runs_or_already_stopping() -> None:
    s = ChargingSession()
    s.request_stop(0.0)
    assert s.phase is Phase.IDLE
    s = charging()
    s.request_stop(1.0)
    s.request_stop(2.0)
    assert s.phase is Phase.STOPPING


def test_unplug_while_charging_stops_then_ends_once_released() -> None:
    s = charging()
    unplugged_live = {**CHARGING_IN, "plugged": False}
    assert step(s, 10.0, unplugged_live) is Phase.STOPPING
    assert step(s, 10.1, {**BASE, "lock_locked": True, "lock_unlocked": False}) is Phase.IDLE


def test_fault_while_charging_goes_stopping() -> None:
    s = charging()
    assert step(s, 10.0, CHARGING_IN, faulted=True) is Phase.STOPPING


@pytest.mark.parametrize(
    "blocking",
    [
        {"unlock_permitted": False},
        {"contactor_open_confirmed": False},
        {"contactor_closed_confirmed": True},
        {"current_a": 0.6},
        {"current_a": float("nan")},
    ],
    ids=["interlock_denies", "not_confirmed_open", "feedback_closed", "current_above_threshold", "current_nan"],
)
def test_stopping_waits_for_unlock_permitted_whatever_else_happens(blocking: dict[str, Any]) -> None:
    s = charging()
    s.request_stop(10.0)
    for t, extra in enumerate(
        [{}, {"plugged": False}, {"faulted": True}, {"lock_unlocked": True, "lock_locked": False}], start=11
    ):
        assert step(s, float(t), STOPPED_LOCKED, **{**extra, **blocking}) is Phase.STOPPING
    s.request_stop(20.0)
    with pytest.raises(SessionError):
        s.authorize("other", 20.0, reservation_used=False)
    assert step(s, 21.0, STOPPED_LOCKED) is Phase.UNLOCKING


def test_unlocking_ends_when_the_car_is_unplugged_even_if_the_lock_never_confirms() -> None:
    s = charging()
    s.request_stop(10.0)
    assert step(s, 10.0, STOPPED_LOCKED) is Phase.UNLOCKING
    assert step(s, 11.0, STOPPED_LOCKED, plugged=False) is Phase.IDLE


# ------------------------------------------------------------------ locking aborts


def test_fault_while_locking_aborts_through_the_interlock() -> None:
    s = ChargingSession()
    s.authorize(TOKEN, 0.0, reservation_used=False)
    assert step(s, 0.0, PLUGGED_UNLOCKED, lock_unlocked=False) is Phase.LOCKING
    denied = step(s, 1.0, PLUGGED_UNLOCKED, lock_unlocked=False, faulted=True, unlock_permitted=False)
    assert denied is Phase.STOPPING  # never straight to unlocking
    assert step(s, 2.0, PLUGGED_UNLOCKED, lock_unlocked=False, faulted=True) is Phase.UNLOCKING
    assert step(s, 3.0, PLUGGED_UNLOCKED, faulted=True) is Phase.IDLE


def test_unplug_while_locking_ends_the_session() -> None:
    s = ChargingSession()
    s.authorize(TOKEN, 0.0, reservation_used=False)
    assert step(s, 0.0, PLUGGED_UNLOCKED, lock_unlocked=False) is Phase.LOCKING
    assert step(s, 1.0, BASE) is Phase.IDLE


def test_stop_while_locking_goes_stopping() -> None:
    s = ChargingSession()
    s.authorize(TOKEN, 0.0, reservation_used=False)
    assert step(s, 0.0, PLUGGED_UNLOCKED, lock_unlocked=False) is Phase.LOCKING
    s.request_stop(1.0)
    assert s.phase is Phase.STOPPING


# ------------------------------------------------------------------ misuse


def test_authorize_twice_is_a_programming_error() -> None:
    s = ChargingSession()
    s.authorize(TOKEN, 0.0, reservation_used=False)
    with pytest.raises(SessionError, match="already authorized"):
        s.authorize(TOKEN, 1.0, reservation_used=False)


@pytest.mark.parametrize("token", ["", "   "])
def test_empty_token_is_rejected(token: str) -> None:
    with pytest.raises(ValueError, match="token"):
        ChargingSession().authorize(token, 0.0, reservation_used=False)


@pytest.mark.parametrize("timeout", [0.0, -1.0, float("inf"), float("nan")])
def test_bad_timeout_is_rejected(timeout: float) -> None:
    with pytest.raises(ValueError, match="authorize_timeout_s"):
        ChargingSession(authorize_timeout_s=timeout)
