"""ComparatorPilotInput: thermometer-coded comparator lines on MockFactory pins, decoded to states."""

from __future__ import annotations

import pytest
from gpiozero.pins.mock import MockFactory

from drivers.pilot.comparator import ComparatorPilotInput, decode_lines
from drivers.pilot.config import ComparatorInputConfig
from drivers.pilot.interfaces import PilotInput
from drivers.pilot.states import CpState, PilotDecoder, PilotError

PINS = ("GPIO5", "GPIO6", "GPIO13", "GPIO19", "GPIO26")
LOW_OK = "GPIO21"
LINES_FOR = {CpState.A: 5, CpState.B: 4, CpState.C: 3, CpState.D: 2, CpState.E: 1, CpState.F: 0}


@pytest.mark.parametrize(("state", "count"), list(LINES_FOR.items()))
def test_thermometer_codes(state: CpState, count: int) -> None:
    """A line is active above its threshold and the lines run from the highest threshold down: the active ones are
    the last ``count``."""
    assert decode_lines([False] * (5 - count) + [True] * count) is state


@pytest.mark.parametrize("levels", [[True, True, True, True, False], [True, False, True, False, False],
                                    [False, True, False, True, True]])
def test_a_broken_code_is_invalid(levels: list[bool]) -> None:
    assert decode_lines(levels) is None


def drive(factory: MockFactory, state: CpState, *, active_high: bool = True, low_ok: bool = True) -> None:
    """Drive the comparator lines to ``state``'s thermometer code."""
    count = LINES_FOR[state]
    for index, pin in enumerate(PINS):
        level = (index >= 5 - count) == active_high  # above its threshold: the lowest `count` thresholds
        (factory.pin(pin).drive_high if level else factory.pin(pin).drive_low)()
    (factory.pin(LOW_OK).drive_high if low_ok == active_high else factory.pin(LOW_OK).drive_low)()


@pytest.mark.parametrize("active_high", [True, False])
def test_every_state_through_the_lines(mock_factory: MockFactory, active_high: bool) -> None:
    config = ComparatorInputConfig(pins=PINS, active_high=active_high, low_ok_pin=LOW_OK)
    comparator = ComparatorPilotInput(config, PilotDecoder(confirm_samples=2), pin_factory=mock_factory)
    assert isinstance(comparator, PilotInput)
    t = 0.0
    for state in (CpState.A, CpState.B, CpState.C, CpState.D, CpState.A):
        drive(mock_factory, state, active_high=active_high)
        for _ in range(2):
            t += 0.01
            reading = comparator.sample(t, pwm_on=True)
        assert (reading.state, reading.error) == (state, None)
    drive(mock_factory, CpState.E, active_high=active_high)
    comparator.sample(1.0, pwm_on=True)
    assert comparator.sample(1.01, pwm_on=True).error is PilotError.CP_SHORT
    drive(mock_factory, CpState.B, active_high=active_high, low_ok=False)  # the diode is gone
    comparator.sample(2.0, pwm_on=True)
    reading = comparator.sample(2.01, pwm_on=True)
    assert (reading.state, reading.error) == (CpState.F, PilotError.DIODE)
    assert comparator.cable() is None
    comparator.close()
    comparator.close()


def test_with_pulls_the_config_says_which_level_is_active(mock_factory: MockFactory) -> None:
    config = ComparatorInputConfig(pins=PINS, active_high=False, pull_up=True)  # open-collector outputs
    comparator = ComparatorPilotInput(config, PilotDecoder(confirm_samples=1), pin_factory=mock_factory)
    for index, pin in enumerate(PINS):
        (mock_factory.pin(pin).drive_low if index >= 2 else mock_factory.pin(pin).drive_high)()
    assert comparator.levels() == [False, False, True, True, True]
    assert comparator.sample(0.0, pwm_on=False).state is CpState.C
    comparator.close()


def test_a_broken_comparator_reads_out_of_range(mock_factory: MockFactory) -> None:
    config = ComparatorInputConfig(pins=PINS)
    comparator = ComparatorPilotInput(config, PilotDecoder(confirm_samples=1), pin_factory=mock_factory)
    mock_factory.pin(PINS[1]).drive_high()  # B/C active but the lower thresholds not: impossible
    reading = comparator.sample(0.0, pwm_on=False)
    assert (reading.state, reading.error) == (None, PilotError.OUT_OF_RANGE)
    comparator.close()
