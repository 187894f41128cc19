"""PilotConfig: defaults, nested tables from TOML, and errors that name what is wrong."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from drivers.pilot.config import (
    AdcInputConfig,
    ComparatorInputConfig,
    PilotConfig,
    pilot_config_from_mapping,
)
from drivers.pilot.states import CpThresholds


def test_defaults_are_hardware_pwm_and_an_mcp3008() -> None:
    config = PilotConfig()
    assert config.output == "sysfs" and config.sysfs is not None and config.sysfs.chip == 0
    assert config.input == "adc" and config.adc is not None and config.adc.chip == "mcp3008"
    assert config.thresholds == CpThresholds()


def test_a_toml_table_builds_every_part() -> None:
    data = tomllib.loads(
        """
        output = "gpio"
        input = "comparator"
        max_current_a = 32
        confirm_samples = 2
        [gpio]
        pin = "GPIO18"
        [comparator]
        pins = ["GPIO5", "GPIO6", "GPIO13", "GPIO19", "GPIO26"]
        low_ok_pin = "GPIO21"
        [thresholds]
        hysteresis_v = 0.5
        """
    )
    config = pilot_config_from_mapping(data)
    assert config.gpio is not None and config.gpio.pin == "GPIO18"
    assert config.comparator is not None and config.comparator.pins[4] == "GPIO26"
    assert config.thresholds.hysteresis_v == 0.5
    assert config.max_current_a == 32


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"output": "bitbang"}, r"PilotConfig\.output: 'bitbang' is not one of gpio, sysfs"),
        ({"output": "gpio"}, r"PilotConfig\.gpio: output = 'gpio' needs"),
        ({"input": "comparator"}, r"PilotConfig\.comparator: input = 'comparator' needs"),
        ({"max_current_a": 5}, r"PilotConfig\.max_current_a: 5 is outside \[6.0, 80.0\]"),
        ({"max_current_a": 81}, r"PilotConfig\.max_current_a"),
        ({"frequency_hz": 500}, r"PilotConfig\.frequency_hz"),
        ({"confirm_samples": 0}, r"PilotConfig\.confirm_samples"),
        ({"colour": "red"}, r"PilotConfig\.colour: unknown option"),
        ({"adc": {"chanel": 1}}, r"PilotConfig\.adc\.chanel: unknown option"),
        ({"adc": {"chip": "ads1115"}}, r"AdcInputConfig\.chip: 'ads1115' is not one of"),
        ({"adc": {"cp_high_channel": 8}}, r"AdcInputConfig\.cp_high_channel"),
        ({"adc": {"pp_channel": 1}}, r"AdcInputConfig\.pp_channel: 1 is already a CP channel"),
        ({"adc": {"mode": "peak", "cp_low_channel": 0}}, r"AdcInputConfig\.cp_low_channel: peak mode"),
        ({"adc": {"mode": "burst"}}, r"AdcInputConfig\.cp_low_channel: in burst mode"),
        ({"sysfs": {"channel": -1}}, r"SysfsPwmConfig\.channel"),
        ({"output": "gpio", "gpio": {"pin": "18"}}, r"GpioPwmConfig\.pin: '18' is not a gpiozero pin name"),
        ({"thresholds": {"b_max": 12}}, r"CpThresholds\.b_max"),
        ({"input": "comparator", "comparator": {"pins": ["GPIO5"]}}, r"ComparatorInputConfig\.pins: give 5 pins"),
        (
            {"input": "comparator", "comparator": {"pins": ["GPIO5", "GPIO6", "GPIO13", "GPIO19", "GPIO5"]}},
            r"ComparatorInputConfig\.pins: 'GPIO5' is used twice",
        ),
        ({"gpio": "GPIO18"}, r"PilotConfig\.gpio: must be a table"),
        ({"input": "comparator", "comparator": {}}, r"PilotConfig\.comparator: .*pins"),
    ],
)
def test_errors_name_the_field(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        pilot_config_from_mapping(data)


def test_burst_mode_reads_both_phases_on_one_channel() -> None:
    config = AdcInputConfig(mode="burst", cp_low_channel=0, samples=64)
    assert config.cp_low_channel == config.cp_high_channel


def test_comparator_lines_may_share_no_pin_with_low_ok() -> None:
    with pytest.raises(ValueError, match="used twice"):
        ComparatorInputConfig(pins=("GPIO5", "GPIO6", "GPIO13", "GPIO19", "GPIO26"), low_ok_pin="GPIO26")
