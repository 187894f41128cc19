"""The pure debouncer: a value counts only after it has been stable for the hold time."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.debounce import Debouncer


def test_change_is_reported_only_once_held() -> None:
    d = Debouncer(False, hold_s=0.1)
    assert d.update(True, 10.0) is False
    assert d.pending and d.deadline() == pytest.approx(10.1)
    assert d.update(True, 10.099) is False
    assert d.value is False
    assert d.update(True, 10.1) is True
    assert d.value is True and not d.pending and d.deadline() is None


def test_bounce_back_cancels_and_restarts_the_hold() -> None:
    d = Debouncer(False, hold_s=0.1)
    d.update(True, 0.0)
    d.update(False, 0.05)  # back to the stable value: nothing pends
    assert not d.pending
    d.update(True, 0.08)  # a new candidate starts its own hold
    assert d.update(True, 0.17) is False
    assert d.update(True, 0.18) is True


def test_zero_hold_follows_at_once() -> None:
    d = Debouncer(0, hold_s=0.0)
    assert d.update(3, 1.0) is True and d.value == 3


def test_negative_hold_is_refused() -> None:
    with pytest.raises(ValueError, match="hold_s"):
        Debouncer(False, hold_s=-0.1)


samples = st.lists(
    st.tuples(st.floats(min_value=0.0, max_value=0.05, allow_nan=False), st.booleans()), max_size=60
)


@given(samples, st.floats(min_value=0.0, max_value=0.1, allow_nan=False), st.booleans())
def test_output_changes_exactly_when_a_raw_run_has_lasted_the_hold(
    steps: list[tuple[float, bool]], hold_s: float, initial: bool
) -> None:
    """Never early (a change needs an unbroken run of hold_s), never late (a held run is reported)."""
    d = Debouncer(initial, hold_s)
    now = 0.0
    run_value, run_start = initial, float("-inf")  # the initial level counts as held forever
    for dt, raw in steps:
        now += dt
        if raw != run_value:
            run_value, run_start = raw, now
        before = d.value
        changed = d.update(raw, now)
        held = now >= run_start + hold_s
        assert changed == (d.value != before)
        if changed:  # never early
            assert d.value == raw and held
        if held:  # never late
            assert d.value == raw
    deadline = d.deadline()
    if deadline is not None:  # a pending run becomes the value at its deadline, not before
        assert d.update(run_value, max(now, deadline)) is True and d.value == run_value
