"""The duty formula at every boundary of IEC 61851-1 Annex A (EVSE side and car side)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.pilot.duty import (
    DutyMeaning,
    current_for_duty,
    duty_for_current,
    duty_for_offer,
    meaning_of_duty,
    pwm_running,
)


@pytest.mark.parametrize(
    ("amps", "duty"),
    [
        (6.0, 10.0),  # the minimum
        (10.0, 100.0 / 6.0),
        (16.0, 16.0 / 0.6),
        (32.0, 32.0 / 0.6),
        (51.0, 85.0),  # the top of the low range
        (52.5, 85.0),  # the high range's formula meets 85 % again here
        (63.0, 63.0 / 2.5 + 64.0),
        (80.0, 96.0),  # the maximum
    ],
)
def test_duty_for_current_at_the_boundaries(amps: float, duty: float) -> None:
    assert duty_for_current(amps) == pytest.approx(duty)


def test_the_range_switch_is_just_above_51_a() -> None:
    assert duty_for_current(51.0) == pytest.approx(85.0)  # I / 0.6
    assert duty_for_current(51.01) == pytest.approx(51.01 / 2.5 + 64.0)  # I / 2.5 + 64


@pytest.mark.parametrize("amps", [5.99, 0.0, -1.0, 80.01, 100.0, math.nan, math.inf])
def test_duty_for_current_refuses_what_the_standard_cannot_express(amps: float) -> None:
    with pytest.raises(ValueError, match="amps"):
        duty_for_current(amps)


@pytest.mark.parametrize(("amps", "duty"), [(0.0, 100.0), (5.99, 100.0), (6.0, 10.0), (80.0, 96.0), (125.0, 96.0)])
def test_an_offer_below_6_a_is_no_pwm_and_above_80_a_is_80_a(amps: float, duty: float) -> None:
    assert duty_for_offer(amps) == pytest.approx(duty)


@pytest.mark.parametrize(
    ("duty", "meaning"),
    [
        (0.0, DutyMeaning.OFF),
        (0.01, DutyMeaning.NO_CHARGING),
        (2.99, DutyMeaning.NO_CHARGING),
        (3.0, DutyMeaning.DIGITAL),
        (5.0, DutyMeaning.DIGITAL),
        (7.0, DutyMeaning.DIGITAL),
        (7.01, DutyMeaning.NO_CHARGING),
        (7.99, DutyMeaning.NO_CHARGING),
        (8.0, DutyMeaning.CURRENT),
        (97.0, DutyMeaning.CURRENT),
        (97.01, DutyMeaning.NO_CHARGING),
        (99.99, DutyMeaning.NO_CHARGING),
        (100.0, DutyMeaning.NO_PWM),
    ],
)
def test_what_a_car_reads_at_every_band_edge(duty: float, meaning: DutyMeaning) -> None:
    assert meaning_of_duty(duty) is meaning


@pytest.mark.parametrize(
    ("duty", "amps"),
    [
        (7.99, 0.0),
        (8.0, 6.0),
        (9.99, 6.0),
        (10.0, 6.0),
        (50.0, 30.0),
        (85.0, 51.0),
        (85.01, (85.01 - 64.0) * 2.5),
        (96.0, 80.0),
        (96.01, 80.0),
        (97.0, 80.0),
        (97.01, 0.0),
        (100.0, 0.0),
        (0.0, 0.0),
        (5.0, 0.0),
    ],
)
def test_current_for_duty_at_every_band_edge(duty: float, amps: float) -> None:
    assert current_for_duty(duty) == pytest.approx(amps)


@pytest.mark.parametrize("duty", [-0.01, 100.01, math.nan])
def test_a_duty_outside_0_to_100_is_an_error(duty: float) -> None:
    with pytest.raises(ValueError, match="duty_percent"):
        meaning_of_duty(duty)


@pytest.mark.parametrize(("duty", "running"), [(0.0, False), (0.01, True), (5.0, True), (99.99, True), (100.0, False)])
def test_pwm_runs_strictly_between_0_and_100(duty: float, running: bool) -> None:
    assert pwm_running(duty) is running


@given(st.floats(min_value=6.0, max_value=80.0))
def test_the_car_never_reads_more_than_offered(amps: float) -> None:
    read = current_for_duty(duty_for_current(amps))
    assert read <= amps + 1e-9
    assert read >= amps - 1.5  # only the 51..52.5 A gap loses anything: at most 1.5 A (52.5 A reads 51 A)


@given(st.floats(min_value=6.0, max_value=51.0))
def test_the_low_range_round_trips_exactly(amps: float) -> None:
    assert current_for_duty(duty_for_current(amps)) == pytest.approx(amps)
