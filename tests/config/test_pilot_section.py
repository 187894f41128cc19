"""``[evses.pilot]`` and ``[site]``: validated like the rest (every problem, named by its path), and the pins a
pilot uses join the check that every pin is used once."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from controller.config.loader import load_config, load_sim_default, parse_config
from controller.config.model import EvsePilotConfig, SiteConfig
from controller.config.pilot import section_model
from drivers.pilot.config import PilotConfig
from drivers.pilot.states import CpThresholds

from .config_helpers import base, load, only_problem, problems, put

PI_EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "pi-2evse.toml"


def pilot(evse: int, table: dict[str, Any], data: dict[str, Any] | None = None) -> dict[str, Any]:
    """``base()`` (or ``data``) with ``table`` as EVSE ``evse``'s (0-based) ``[evses.pilot]``."""
    return put(base() if data is None else data, f"evses[{evse}].pilot", table)


def simulated(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` as a simulated charger's (the CP input is the simulated car's)."""
    return put(data, "controller.simulated", True)


# ---------------------------------------------------------------- what loads


def test_the_simulated_charger_has_a_pilot_on_both_evses() -> None:
    config = load_sim_default()
    assert config.site == SiteConfig(None)
    for evse, pin in zip(config.evses, ("GPIO7", "GPIO8"), strict=True):
        assert evse.pilot is not None
        assert (evse.pilot.phases, evse.pilot.voltage_v, evse.pilot.ventilation) == (3, 230.0, False)
        config = evse.pilot.pilot
        assert (config.output, config.input, config.max_current_a) == ("gpio", "adc", 16.0)
        assert config.gpio is not None and config.gpio.pin == pin


def test_without_a_pilot_table_there_is_no_pilot_and_no_site_limit() -> None:
    config = load(base())
    assert [e.pilot for e in config.evses] == [None, None]
    assert config.site == SiteConfig(None)


def test_a_full_pilot_table_builds_the_drivers_config() -> None:
    table = {"output": "gpio", "input": "comparator", "max_current_a": 32, "phases": 1, "voltage_v": 120,
             "ventilation": True, "confirm_samples": 2, "hold_s": 0.05, "frequency_hz": 1000, "invert_output": True,
             "gpio": {"pin": 13},  # any pin name the other sections take, normalized
             "comparator": {"pins": ["GPIO2", "BCM3", "J8:8", 15, "GPIO7"], "low_ok_pin": "GPIO8",
                            "active_high": False},
             "thresholds": {"hysteresis_v": 0.5}}
    evse_pilot = load(pilot(0, table)).evses[0].pilot
    assert isinstance(evse_pilot, EvsePilotConfig)
    assert (evse_pilot.phases, evse_pilot.voltage_v, evse_pilot.ventilation) == (1, 120.0, True)
    config = evse_pilot.pilot
    assert (config.output, config.input, config.max_current_a, config.confirm_samples, config.hold_s) == \
        ("gpio", "comparator", 32.0, 2, 0.05)
    assert config.invert_output and config.gpio is not None and config.gpio.pin == "GPIO13"
    assert config.comparator is not None and config.comparator.pins == ("GPIO2", "GPIO3", "GPIO14", "GPIO15", "GPIO7")
    assert (config.comparator.low_ok_pin, config.comparator.active_high) == ("GPIO8", False)
    assert config.thresholds == CpThresholds(hysteresis_v=0.5)


def test_an_empty_pilot_table_is_the_drivers_default() -> None:
    evse_pilot = load(pilot(1, {})).evses[1].pilot
    assert evse_pilot == EvsePilotConfig(PilotConfig())


def test_every_pilot_option_of_the_driver_is_a_key() -> None:
    keys = set(section_model(PilotConfig).model_fields)
    assert keys == {"output", "input", "sysfs", "gpio", "adc", "comparator", "frequency_hz", "invert_output",
                    "thresholds", "confirm_samples", "hold_s", "max_current_a", "phases", "voltage_v", "ventilation"}


@pytest.mark.parametrize("amps", [6, 6.0, 32.5, 1000])
def test_a_site_limit_of_6_to_1000_a(amps: float) -> None:
    assert load(put(base(), "site.max_current_a", amps)).site == SiteConfig(float(amps))
    assert load(put(base(), "site", {})).site == SiteConfig(None)


# ---------------------------------------------------------------- problems


@pytest.mark.parametrize(("key", "value", "wording"), [
    ("phases", 2, "expected 1 or 3, got integer 2"),
    ("phases", True, "expected an integer, got boolean true"),
    ("voltage_v", 90, "must be >= 100.0, got integer 90"),
    ("voltage_v", 481.0, "must be <= 480.0, got float 481.0"),
    ("ventilation", 1, "expected true or false, got integer 1"),
    ("output", "pwm", 'expected "sysfs" or "gpio", got string "pwm"'),
    ("input", "ads1115", 'expected "adc" or "comparator", got string "ads1115"'),
    ("max_current_a", "16", 'expected a number, got string "16"'),
    ("max_current_a", 5, "5.0 is outside [6.0, 80.0]"),  # an integer is taken as a float
    ("max_current_a", 80.5, "80.5 is outside [6.0, 80.0]"),
    ("frequency_hz", 50, "50.0 is outside [990.0, 1010.0]"),
    ("confirm_samples", 0, "must be a whole number in [1, 100], got 0"),
    ("gpio", "GPIO7", 'expected a table, got string "GPIO7"'),
])
def test_a_bad_pilot_value_is_named_by_its_path(key: str, value: Any, wording: str) -> None:
    assert only_problem(pilot(1, {key: value})) == f"pi.toml: evses[id=2].pilot.{key}: {wording}"


@pytest.mark.parametrize(("table", "path", "wording"), [
    ({"adc": {"cp_high_channel": 9}}, "adc.cp_high_channel", "must be a whole number in [0, 7], got 9"),
    ({"adc": {"chip": "mcp3004"}}, "adc.chip", 'expected "mcp3008" or "mcp3208", got string "mcp3004"'),
    ({"adc": {"pp_channel": 0}}, "adc.pp_channel", "0 is already a CP channel"),
    ({"adc": {"spi_port": 1}}, "adc.spi_port", "the ADC is driven on SPI0 only: spi_port = 0 and spi_device = 0 "
                                               "(CE0, GPIO8) or 1 (CE1, GPIO7), got spi_port = 1, spi_device = 0"),
    ({"adc": {"spi_device": 2}}, "adc.spi_device", "the ADC is driven on SPI0 only: spi_port = 0 and spi_device = 0 "
                                                   "(CE0, GPIO8) or 1 (CE1, GPIO7), got spi_port = 0, spi_device = 2"),
    ({"sysfs": {"channel": 16}}, "sysfs.channel", "must be a whole number in [0, 15], got 16"),
    ({"thresholds": {"a_min": 20}}, "thresholds.a_min",
     "20.0 must be below a_max (13.0); bands run from A (highest) down to F and must not overlap"),
    ({"output": "gpio"}, "gpio", "output = 'gpio' needs a [pilot.gpio] table with its pin"),
    ({"output": "gpio", "gpio": {}}, "gpio.pin", "required, but missing"),
    ({"output": "gpio", "gpio": {"pin": "GPIO28"}}, "gpio.pin",
     "GPIO28 does not exist on the 40-pin header (GPIO0..GPIO27)"),
    ({"input": "comparator"}, "comparator", "input = 'comparator' needs a [pilot.comparator] table with its pins"),
    ({"input": "comparator", "comparator": {"pins": ["GPIO2"]}}, "comparator.pins",
     "give 5 pins (A/B, B/C, C/D, D/E, E/F thresholds), got ('GPIO2',)"),
    ({"input": "comparator", "comparator": {"pins": ["GPIO2", "GPIO3", "GPIO7", "GPIO8", "BOARD3"]}},
     "comparator.pins[4]",
     'pin GPIO2 (written string "BOARD3") is already used by evses[id=1].pilot.comparator.pins[0]'),
])
def test_a_bad_pilot_sub_table_is_named_by_its_path(table: dict[str, Any], path: str, wording: str) -> None:
    assert only_problem(pilot(0, table)) == f"pi.toml: evses[id=1].pilot.{path}: {wording}"


def test_every_type_problem_of_a_pilot_is_reported_at_once() -> None:
    table = {"phases": 2, "voltage_v": "230", "adc": {"chanel": 1, "samples": 1.5}, "thresholds": {"c_min": "5"}}
    assert sorted(problems(pilot(0, table))) == [
        "pi.toml: evses[id=1].pilot.adc.chanel: unknown key; allowed keys: chip, cp_high_channel, cp_low_channel, "
        "cp_offset_v, cp_scale, mode, pp_channel, pp_pullup_ohm, pp_supply_v, samples, spi_device, spi_port, vref_v",
        "pi.toml: evses[id=1].pilot.adc.samples: expected an integer, got float 1.5",
        "pi.toml: evses[id=1].pilot.phases: expected 1 or 3, got integer 2",
        'pi.toml: evses[id=1].pilot.thresholds.c_min: expected a number, got string "5"',
        'pi.toml: evses[id=1].pilot.voltage_v: expected a number, got string "230"',
    ]


def test_a_bad_pilot_hides_no_problem_of_another_evse() -> None:
    data = pilot(0, {"max_current_a": 100}, put(base(), "evses[1].lock.pulse_s", 5))
    assert sorted(problems(data)) == ["pi.toml: evses[id=1].pilot.max_current_a: 100.0 is outside [6.0, 80.0]",
                                      "pi.toml: evses[id=2].lock.pulse_s: 5.0 is outside [0.1, 4.0]"]


def test_a_pilot_that_is_no_table() -> None:
    assert only_problem(pilot(0, "sysfs")) == 'pi.toml: evses[id=1].pilot: expected a table, got string "sysfs"'  # type: ignore[arg-type]


@pytest.mark.parametrize(("value", "wording"), [
    (5.9, "must be >= 6.0, got float 5.9"),
    (1001, "must be <= 1000.0, got integer 1001"),
    (True, "expected a number, got boolean true"),
    ("32", 'expected a number, got string "32"'),
])
def test_a_bad_site_limit(value: Any, wording: str) -> None:
    assert only_problem(put(base(), "site.max_current_a", value)) == f"pi.toml: site.max_current_a: {wording}"


def test_site_is_a_table() -> None:
    assert only_problem(put(base(), "site", 32)) == "pi.toml: site: expected a table, got integer 32"


# ---------------------------------------------------------------- pins and ADC channels


def test_a_pilot_output_pin_joins_the_pin_check() -> None:
    data = pilot(1, {"output": "gpio", "gpio": {"pin": 17}})
    assert only_problem(data) == \
        'pi.toml: evses[id=2].pilot.gpio.pin: pin GPIO17 (written integer 17) is already used by ' \
        'evses[id=1].contactor.coil_pin'


def test_comparator_pins_join_the_pin_check() -> None:
    data = pilot(0, {"input": "comparator", "comparator": {"pins": ["GPIO2", "GPIO3", "GPIO7", "GPIO8", "GPIO9"],
                                                           "low_ok_pin": "J8:36"}})  # J8:36 = GPIO16
    put(data, "evses[1].plug.pin", "GPIO9")
    assert sorted(problems(data)) == [
        "pi.toml: evses[id=2].contactor.coil_pin: pin GPIO16 is already used by "
        "evses[id=1].pilot.comparator.low_ok_pin",
        "pi.toml: evses[id=2].plug.pin: pin GPIO9 is already used by evses[id=1].pilot.comparator.pins[4]",
    ]


def test_an_unused_pilot_table_claims_no_pin() -> None:
    data = pilot(0, {"output": "sysfs", "input": "comparator", "gpio": {"pin": "GPIO17"},
                     "comparator": {"pins": ["GPIO2", "GPIO3", "GPIO7", "GPIO12", "GPIO13"]}})
    assert load(data).evses[0].pilot is not None  # gpio.pin is not used by a sysfs output; no ADC, no SPI pins


def test_the_adc_claims_the_spi0_pins() -> None:
    data = put(pilot(0, {}), "evses[1].indicator", {"reserved_pin": "GPIO18", "status_red_pin": "GPIO9",
                                                    "status_green_pin": "GPIO10", "status_blue_pin": "GPIO11"})
    put(data, "evses[1].plug.pin", "GPIO8")
    assert sorted(problems(data)) == [
        "pi.toml: evses[id=2].indicator.status_blue_pin: pin GPIO11 is already used by evses[id=1].pilot.adc "
        "(SPI0 SCLK)",
        "pi.toml: evses[id=2].indicator.status_green_pin: pin GPIO10 is already used by evses[id=1].pilot.adc "
        "(SPI0 MOSI)",
        "pi.toml: evses[id=2].indicator.status_red_pin: pin GPIO9 is already used by evses[id=1].pilot.adc (SPI0 MISO)",
        "pi.toml: evses[id=2].plug.pin: pin GPIO8 is already used by evses[id=1].pilot.adc (SPI0 CE0)",
    ]
    data = pilot(1, {"adc": {"spi_device": 1}}, put(base(), "evses[0].plug.pin", "GPIO7"))
    assert only_problem(data) == \
        "pi.toml: evses[id=2].pilot.adc: pin GPIO7 (SPI0 CE1) is already used by evses[id=1].plug.pin"


def test_adc_inputs_share_spi0_and_a_chip_but_not_a_channel() -> None:
    shared_bus = pilot(1, {"adc": {"spi_device": 1}}, pilot(0, {}))
    assert all(e.pilot is not None for e in load(shared_bus).evses)
    shared_chip = pilot(1, {"adc": {"cp_high_channel": 2, "cp_low_channel": 3, "pp_channel": 4}},
                        pilot(0, {"adc": {"pp_channel": 5}}))
    assert all(e.pilot is not None for e in load(shared_chip).evses)
    same_channel = pilot(1, {"adc": {"cp_high_channel": 2, "cp_low_channel": 3, "pp_channel": 1}},
                         pilot(0, {}))
    assert only_problem(same_channel) == ("pi.toml: evses[id=2].pilot.adc.pp_channel: channel 1 of the ADC on SPI0 CE0 "
                                          "is already read by evses[id=1].pilot.adc.cp_low_channel")


def test_a_simulated_pilot_claims_no_spi_pin_and_no_channel() -> None:
    same_channels = pilot(1, {}, pilot(0, {}))
    assert sorted(problems(same_channels)) == [
        f"pi.toml: evses[id=2].pilot.adc.{key}: channel {channel} of the ADC on SPI0 CE0 is already read by "
        f"evses[id=1].pilot.adc.{key}" for key, channel in (("cp_high_channel", 0), ("cp_low_channel", 1))]
    assert all(e.pilot is not None for e in load(simulated(same_channels)).evses)
    spi_pin = put(pilot(0, {}), "evses[1].plug.pin", "GPIO9")
    assert "pilot.adc (SPI0 MISO)" in only_problem(spi_pin)
    assert load(simulated(spi_pin)).evses[0].pilot is not None


def test_the_commented_pilot_of_the_pi_example_is_valid_but_for_the_pins_it_names(tmp_path: Path) -> None:
    text = PI_EXAMPLE.read_text(encoding="utf-8")
    start = text.index("# [evses.pilot]\n")
    end = text.index("\n\n", text.index("# pp_channel"))
    block = re.sub(r"(?m)^# ?", "", text[start:end])
    text = text[:start] + block + text[end:]
    text = text.replace("# [site]\n# max_current_a", "[site]\nmax_current_a")
    (tmp_path / "pi.toml").write_text(text, encoding="utf-8")
    with pytest.raises(ValueError) as caught:
        load_config(tmp_path / "pi.toml")
    assert [line.split(": ", 1)[1] for line in str(caught.value).splitlines()] == [
        f"evses[id=2].indicator.status_{color}_pin: pin GPIO{pin} is already used by evses[id=1].pilot.adc "
        f"(SPI0 {line})"
        for color, pin, line in (("red", 9, "MISO"), ("green", 10, "MOSI"), ("blue", 11, "SCLK"))
    ]  # as the comment says: the ADC needs the SPI0 pins EVSE 2's status LED uses
    moved = text.replace('status_red_pin = "GPIO9"', 'status_red_pin = "GPIO2"').replace(
        'status_green_pin = "GPIO10"', 'status_green_pin = "GPIO3"').replace(
        'status_blue_pin = "GPIO11"', 'status_blue_pin = "GPIO7"')
    config = parse_config(moved, source="pi.toml")
    assert config.site == SiteConfig(32.0)
    evse_pilot = config.evse(1).pilot
    assert evse_pilot is not None and evse_pilot.pilot.adc is not None and evse_pilot.pilot.adc.pp_channel == 2
