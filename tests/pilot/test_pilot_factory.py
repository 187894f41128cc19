"""build_output / build_input: the configuration chooses the backend and the front end."""

from __future__ import annotations

from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from drivers.pilot.comparator import ComparatorPilotInput
from drivers.pilot.config import ComparatorInputConfig, GpioPwmConfig, PilotConfig
from drivers.pilot.factory import build_decoder, build_input, build_output
from drivers.pilot.output import GpioZeroPwmOutput
from drivers.pilot.sysfs import SysfsPwmOutput


def test_sysfs_is_the_default_output(tmp_path: Path) -> None:
    pwm = tmp_path / "pwmchip0" / "pwm0"
    pwm.mkdir(parents=True)  # already exported
    for name in ("period", "duty_cycle", "enable", "polarity"):
        (pwm / name).write_text("0\n")
    output = build_output(PilotConfig(), sysfs_root=tmp_path)
    assert isinstance(output, SysfsPwmOutput)
    assert output.set_current(16.0).advertised_a == pytest.approx(16.0)
    output.close()


def test_gpio_output_and_comparator_input(mock_factory: MockFactory) -> None:
    config = PilotConfig(
        output="gpio",
        gpio=GpioPwmConfig(pin="GPIO18"),
        input="comparator",
        comparator=ComparatorInputConfig(pins=("GPIO5", "GPIO6", "GPIO13", "GPIO19", "GPIO26")),
        confirm_samples=1,
    )
    output = build_output(config, pin_factory=mock_factory)
    assert isinstance(output, GpioZeroPwmOutput)
    pilot_input = build_input(config, pin_factory=mock_factory)
    assert isinstance(pilot_input, ComparatorPilotInput)
    output.close()
    pilot_input.close()


def test_the_decoder_takes_the_configured_debounce() -> None:
    decoder = build_decoder(PilotConfig(confirm_samples=1))
    decoder.update(9.0, -12.0, True, 0.0)
    assert decoder.state is not None
