"""Plugged with a control pilot: B, C and D say a car is there, A that it left; a fault reading (E, F) or no stable
reading says nothing about the car, so the last answer holds and a faulted session hands the car back."""

from __future__ import annotations

import pytest

from controller.charging.pilot import still_plugged


@pytest.mark.parametrize("was", [False, True])
@pytest.mark.parametrize(("state", "plugged"), [("A", False), ("B", True), ("C", True), ("D", True)])
def test_a_b_c_d_decide_whatever_came_before(state: str, plugged: bool, was: bool) -> None:
    assert still_plugged(state, was) is plugged


@pytest.mark.parametrize("state", ["E", "F", None])
@pytest.mark.parametrize("was", [False, True])
def test_a_fault_reading_keeps_the_last_answer(state: str | None, was: bool) -> None:
    assert still_plugged(state, was) is was
