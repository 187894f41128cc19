"""The CP state decoder: every band edge, the hysteresis in the gaps, debounce, noise, diode check."""

from __future__ import annotations

import math
import random

import pytest

from drivers.pilot.states import (
    DEFAULT_THRESHOLDS,
    CpState,
    CpThresholds,
    PilotDecoder,
    PilotError,
    classify,
    low_phase_ok,
)

A, B, C, D, E, F = CpState.A, CpState.B, CpState.C, CpState.D, CpState.E, CpState.F


@pytest.mark.parametrize(
    ("volts", "state"),
    [
        (13.0, A),
        (12.0, A),
        (11.0, A),
        (10.0, B),
        (9.0, B),
        (8.0, B),
        (7.0, C),
        (6.0, C),
        (5.0, C),
        (4.0, D),
        (3.0, D),
        (2.0, D),
        (1.0, E),
        (0.0, E),
        (-1.0, E),
        (-11.0, F),
        (-12.0, F),
        (-13.0, F),
    ],
)
def test_every_band_edge_is_inside_its_band(volts: float, state: CpState) -> None:
    for previous in [None, *CpState]:
        assert classify(volts, previous) is state


@pytest.mark.parametrize("volts", [13.01, 20.0, -13.01, -20.0, math.nan, math.inf, -5.0])
def test_outside_every_band_and_gap_is_invalid(volts: float) -> None:
    for previous in [None, *CpState]:
        assert classify(volts, previous) is None


@pytest.mark.parametrize(
    ("volts", "upper", "lower"),
    [(10.5, A, B), (7.5, B, C), (4.5, C, D), (1.5, D, E)],
)
def test_a_narrow_gap_keeps_the_side_the_line_came_from(volts: float, upper: CpState, lower: CpState) -> None:
    assert classify(volts, upper) is upper  # coming down: not yet the lower state
    assert classify(volts, lower) is lower  # coming up: not yet the upper state
    assert classify(volts, None) is None  # no history: no guess


def test_from_a_higher_state_a_gap_reads_as_its_upper_neighbour() -> None:
    assert classify(7.5, A) is B  # A straight into the B/C gap: still B, never C
    assert classify(7.5, D) is C  # from below: C


def test_the_wide_e_f_gap_is_sticky_only_within_the_hysteresis() -> None:
    assert classify(-1.5, E) is E
    assert classify(-1.5, C) is E
    assert classify(-2.5, E) is None
    assert classify(-10.5, F) is F
    assert classify(-9.5, F) is None
    assert classify(-10.5, E) is None


def test_zero_hysteresis_makes_every_gap_invalid() -> None:
    strict = CpThresholds(hysteresis_v=0.0)
    assert classify(10.5, A, strict) is None
    assert classify(11.0, B, strict) is A


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("b_max", 11.5, "b_max"),
        ("hysteresis_v", -0.1, "hysteresis_v"),
        ("c_min", math.nan, "c_min"),
        ("f_min", -10.0, "f_min"),
    ],
)
def test_bad_thresholds_name_the_field(field: str, value: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CpThresholds(**{field: value})


@pytest.mark.parametrize(("volts", "ok"), [(-12.0, True), (-11.0, True), (-13.0, True), (-10.9, False), (0.0, False)])
def test_low_phase_must_be_minus_12_v(volts: float, ok: bool) -> None:
    assert low_phase_ok(volts) is ok


def feed(
    decoder: PilotDecoder,
    samples: list[tuple[float, float | None]],
    *,
    pwm_on: bool = True,
    start: float = 0.0,
    period: float = 0.01,
) -> list[CpState | None]:
    """Feed samples 10 ms apart; the debounced state after each."""
    states = []
    for index, (high, low) in enumerate(samples):
        decoder.update(high, low, pwm_on, start + index * period)
        states.append(decoder.state)
    return states


def test_a_state_counts_after_confirm_samples_equal_readings() -> None:
    decoder = PilotDecoder(confirm_samples=3)
    assert feed(decoder, [(12.0, -12.0)] * 3) == [None, None, A]
    assert feed(decoder, [(9.0, -12.0)] * 3, start=1.0) == [A, A, B]
    assert decoder.reading.since == pytest.approx(1.02)


def test_hold_s_also_has_to_pass() -> None:
    decoder = PilotDecoder(confirm_samples=1, hold_s=0.05)
    decoder.update(12.0, -12.0, True, 0.0)
    decoder.update(12.0, -12.0, True, 0.049)
    assert decoder.state is None
    decoder.update(12.0, -12.0, True, 0.05)
    assert decoder.state is A


def test_single_spikes_never_change_the_state() -> None:
    decoder = PilotDecoder(confirm_samples=3)
    feed(decoder, [(6.0, -12.0)] * 3)
    glitchy = [(6.0, -12.0), (9.0, -12.0), (6.0, -12.0), (12.0, -12.0), (9.0, -12.0), (6.0, -12.0), (25.0, -12.0)]
    assert set(feed(decoder, glitchy, start=1.0)) == {C}


def test_gaussian_noise_of_half_a_volt_is_ridden_out() -> None:
    rng = random.Random(7)
    decoder = PilotDecoder(confirm_samples=3)
    seen = feed(decoder, [(6.0 + rng.gauss(0, 0.5), -12.0 + rng.gauss(0, 0.3)) for _ in range(2000)])
    assert seen[-1] is C
    assert set(seen[3:]) == {C}


def test_hysteresis_keeps_b_while_the_line_sags_into_the_gap() -> None:
    decoder = PilotDecoder(confirm_samples=2)
    feed(decoder, [(9.0, -12.0)] * 2)
    assert feed(decoder, [(7.6, -12.0)] * 5, start=1.0)[-1] is B  # sagging B is still B
    assert feed(decoder, [(6.5, -12.0)] * 2, start=2.0)[-1] is C
    assert feed(decoder, [(7.6, -12.0)] * 5, start=3.0)[-1] is C  # and a high C is still C


def test_a_missing_diode_is_state_f_with_a_diode_fault() -> None:
    decoder = PilotDecoder(confirm_samples=2)
    feed(decoder, [(9.0, -12.0)] * 2)
    assert feed(decoder, [(9.0, -9.0)] * 2, start=1.0)[-1] is F
    assert decoder.error is PilotError.DIODE


def test_the_diode_check_needs_a_running_pwm() -> None:
    decoder = PilotDecoder(confirm_samples=2)
    assert feed(decoder, [(9.0, 9.0)] * 2, pwm_on=False)[-1] is B  # x1: no low phase to check
    assert decoder.error is None


def test_without_a_low_phase_input_there_is_no_diode_check() -> None:
    decoder = PilotDecoder(confirm_samples=2)
    assert feed(decoder, [(6.0, None)] * 2)[-1] is C


def test_a_diode_fault_stays_latched_until_the_ev_leaves() -> None:
    decoder = PilotDecoder(confirm_samples=2)
    feed(decoder, [(9.0, -9.0)] * 2)
    assert decoder.error is PilotError.DIODE
    assert feed(decoder, [(9.0, 9.0)] * 3, pwm_on=False, start=1.0)[-1] is F  # PWM off: still faulted
    assert feed(decoder, [(6.0, -12.0)] * 3, start=2.0)[-1] is F  # a good low phase: still faulted
    assert feed(decoder, [(12.0, -12.0)] * 2, start=3.0)[-1] is A  # unplugged: cleared
    assert decoder.error is None
    assert feed(decoder, [(9.0, -12.0)] * 2, start=4.0)[-1] is B


def test_zero_volts_is_state_e_a_cp_short() -> None:
    decoder = PilotDecoder(confirm_samples=2)
    assert feed(decoder, [(0.0, 0.0)] * 2)[-1] is E
    assert decoder.error is PilotError.CP_SHORT


def test_minus_12_on_both_phases_is_state_f_without_an_error() -> None:
    decoder = PilotDecoder(confirm_samples=2)
    assert feed(decoder, [(-12.0, -12.0)] * 2, pwm_on=False)[-1] is F
    assert decoder.error is None


def test_a_stable_out_of_band_reading_is_an_error_with_no_state() -> None:
    decoder = PilotDecoder(confirm_samples=2)
    feed(decoder, [(9.0, -12.0)] * 2)
    assert feed(decoder, [(-5.0, -12.0)] * 2, start=1.0)[-1] is None
    assert decoder.error is PilotError.OUT_OF_RANGE
    assert feed(decoder, [(math.nan, None)] * 2, start=2.0)[-1] is None


def test_bad_debounce_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="confirm_samples"):
        PilotDecoder(confirm_samples=0)
    with pytest.raises(ValueError, match="hold_s"):
        PilotDecoder(hold_s=-1.0)


def test_reset_forgets_the_state_and_the_latch() -> None:
    decoder = PilotDecoder(confirm_samples=1)
    decoder.update(9.0, -9.0, True, 0.0)
    assert decoder.error is PilotError.DIODE
    decoder.reset()
    assert decoder.state is None
    decoder.update(9.0, -12.0, True, 1.0)
    assert decoder.state is B


def test_default_thresholds_are_the_nominal_plus_minus_one_volt() -> None:
    bands = {state: (low, high) for state, low, high in DEFAULT_THRESHOLDS.bands()}
    assert bands == {A: (11, 13), B: (8, 10), C: (5, 7), D: (2, 4), E: (-1, 1), F: (-13, -11)}
