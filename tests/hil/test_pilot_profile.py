"""Bench profiles with a control pilot: the built-in sim-pilot bench, [evses.pilot] on a real bench checked against
the DUT's pilot, the commented example of example-real.toml, and which benches have what the pilot theme needs."""

from __future__ import annotations

from pathlib import Path

import pytest
from pilot_bench_files import (
    ADC_DUT,
    ANALOG_TOML,
    BENCHES,
    COMPARATOR_DUT,
    COMPARATOR_LINES_TOML,
    ROOT,
    one_evse_dut,
    real_profile,
)

from hil.profile import COMPARATOR_LINES, BenchProfile, ProfileError
from hil.profile_loader import builtin_benches, load_profile, parse_profile
from hil.scenario import load_all


def test_sim_pilot_is_built_in_and_keeps_the_dut_pilots() -> None:
    assert {"sim", "sim-pilot"} <= set(builtin_benches())
    profile = load_profile("sim-pilot")
    assert profile.kind == "sim" and profile.dut.pilots
    pilots = {e.evse_id: e.pilot for e in profile.evses}
    assert {i: (p.front_end, p.duty, p.pwm_pin) for i, p in pilots.items() if p} == {
        1: ("sim", "pin", "GPIO7"), 2: ("sim", "pin", "GPIO8")}
    assert all(e.pilot is not None for e in profile.dut_config.evses)
    assert profile.timing(1).pilot_max_current_a == 16.0 and profile.timing(1).overcurrent_s == 7.0
    assert profile.tolerance.duty_pct == pytest.approx(0.1)
    plain = load_profile("sim")
    assert all(e.pilot is None for e in plain.evses) and all(e.pilot is None for e in plain.dut_config.evses)


def _needs(profile: BenchProfile) -> dict[str, list[str]]:
    return {name: s.missing(profile) for name, s in load_all().items()}


def test_the_pilot_theme_needs_a_pilot_and_the_plug_bounce_a_plug_line() -> None:
    on_sim, on_pilot = _needs(load_profile("sim")), _needs(load_profile("sim-pilot"))
    pilot_theme = [name for name in on_sim if name.startswith("pilot.")]
    assert len(pilot_theme) >= 6
    assert all(on_sim[name] == ["pilot"] for name in pilot_theme)
    assert all(on_pilot[name] == [] for name in pilot_theme)
    assert on_sim["faults.plug_bounce"] == [] and on_pilot["faults.plug_bounce"] == ["plug_line"]


def test_a_real_comparator_pilot_is_wired_to_the_dut_lines(tmp_path: Path) -> None:
    dut = one_evse_dut(tmp_path, COMPARATOR_DUT)
    profile = parse_profile(real_profile(dut, COMPARATOR_LINES_TOML), source="bench.toml")
    pilot = profile.evse(1).pilot
    assert pilot is not None and (pilot.front_end, pilot.duty, pilot.adc) == ("comparator", "status", None)
    assert [pilot.lines[role].dut for role in COMPARATOR_LINES] == ["GPIO7", "GPIO8", "GPIO9", "GPIO10", "GPIO11"]
    assert profile.timing(1).pilot_max_current_a == 20.0


def test_a_real_analog_pilot_with_a_duty_adc(tmp_path: Path) -> None:
    dut = one_evse_dut(tmp_path, ADC_DUT)
    profile = parse_profile(real_profile(dut, ANALOG_TOML), source="bench.toml")
    pilot = profile.evse(1).pilot
    assert pilot is not None and pilot.front_end == "analog" and pilot.adc is not None
    assert (pilot.adc.channel, pilot.adc.spi_device, pilot.adc.pwm_high_v) == (3, 1, 3.3)
    assert pilot.lines["cp_short"].active_high is False and pilot.lines["ev_present"].dut == ""


@pytest.mark.parametrize(
    ("dut_pilot", "bench_pilot", "problem"),
    [
        (COMPARATOR_DUT, "", r"\[evses\[0\]\] EVSE 1: the DUT reads a car from its control pilot"),
        ("", COMPARATOR_LINES_TOML, r"\[evses\[0\]\.pilot\] the DUT's EVSE 1 has no control pilot"),
        (COMPARATOR_DUT, COMPARATOR_LINES_TOML.replace("duty = ", "colour = 1\nduty = "),
         r"\[evses\[0\]\.pilot\] unknown key 'colour'"),
        (COMPARATOR_DUT, COMPARATOR_LINES_TOML.replace('front_end = "comparator"', 'front_end = "relay"'),
         "front_end must be one of 'comparator', 'analog', got 'relay'"),
        (COMPARATOR_DUT, COMPARATOR_LINES_TOML.replace('duty = "status"', "duty = 5"),
         "duty must be one of 'adc', 'status', got 5"),
        (COMPARATOR_DUT, COMPARATOR_LINES_TOML.replace('"GPIO18"', '"GPIO19"'),
         r"pwm_pin: the DUT's PWM \(sysfs\) is on GPIO12 or GPIO18, not GPIO19"),
        (COMPARATOR_DUT, COMPARATOR_LINES_TOML.replace('dut = "GPIO9"', 'dut = "GPIO12"'),
         r"\[evses\[0\]\.pilot\.lines\] cp_cd: wired to DUT GPIO12 but the DUT uses GPIO9"),
        (COMPARATOR_DUT, COMPARATOR_LINES_TOML.replace('dut = "GPIO10", active_high = true',
                                                       'dut = "GPIO10", active_high = false'),
         "cp_de: active_high must be the DUT's comparator active_high"),
        (COMPARATOR_DUT, COMPARATOR_LINES_TOML.split("low_ok")[0], "low_ok is missing: the DUT reads it on GPIO14"),
        (COMPARATOR_DUT, COMPARATOR_LINES_TOML.replace('active_high = true }\ncp_bc', 'active_high = "yes" }\ncp_bc'),
         r"\[evses\[0\]\.pilot\.lines\.cp_ab\] needs harness"),
        (COMPARATOR_DUT, COMPARATOR_LINES_TOML.replace('pwm_pin = "GPIO18"', 'pwm_pin = "GPIO18"\nduty_channel = 1'),
         'duty_channel is for duty = "adc"'),
        (ADC_DUT, ANALOG_TOML.replace("duty_channel = 3", "duty_channel = 8"),
         "duty_channel must be a whole number from 0 to 7, got 8"),
        (ADC_DUT, ANALOG_TOML.replace("duty_channel = 3\n", ""), "duty_channel must be a whole number"),
        (ADC_DUT, ANALOG_TOML.replace('pwm_pin = "GPIO7"\n', ""), 'pwm_pin must be .* the RC filter of duty = "adc"'),
        (ADC_DUT, ANALOG_TOML.replace("duty_spi_device = 1", "pwm_high_v = 12"),
         "pwm_high_v must be a voltage from 1 to 5.5 V"),
        (ADC_DUT, ANALOG_TOML.replace("cp_short", "cp_shorted"), "unknown key 'cp_shorted'"),
        (ADC_DUT, ANALOG_TOML.split("cp_short")[0], "the analogue car needs the switch 'cp_short'"),
        (ADC_DUT, ANALOG_TOML.replace('{ harness = "GPIO2",  active_high = true }',
                                      '{ harness = "GPIO2", dut = "GPIO2", active_high = true }'),
         r"\[evses\[0\]\.pilot\.lines\.ev_present\] unknown key 'dut'"),
        (ADC_DUT, COMPARATOR_LINES_TOML.replace('"GPIO18"', '"GPIO7"'),
         'front_end = "comparator" needs a DUT whose pilot input is "comparator"'),
    ],
)
def test_real_pilot_problems_name_the_file_and_key(tmp_path: Path, dut_pilot: str, bench_pilot: str,
                                                    problem: str) -> None:
    dut = one_evse_dut(tmp_path, dut_pilot)
    with pytest.raises(ProfileError, match=f"^bench.toml: .*{problem}"):
        parse_profile(real_profile(dut, bench_pilot), source="bench.toml")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[dut]\npilots = 1\n", r"\[dut\] pilots has the wrong type: 1"),
        ("[dut]\npilots = true\n[[evses]]\nid = 1\n[evses.pilot]\nfront_end = 'comparator'\n",
         r"\[evses\[0\]\.pilot\] the sim bench's car is simulated"),
        ("[tolerance]\nduty_pct = 'tight'\n", "duty_pct must be a number"),
        ("[plant]\ncar_max_current_a = -1\n", "car_max_current_a must be a number"),
        ("[bench]\nkind = 'real'\n[dut]\nconfig = 'x.toml'\napi = 'http://h:1'\npilots = true\n",
         r"\[dut\] pilots is for the sim bench"),
    ],
)
def test_pilot_keys_are_checked(text: str, problem: str) -> None:
    with pytest.raises(ProfileError, match=f"^p.toml: .*{problem}"):
        parse_profile(text, source="p.toml")


def _uncommented(example: str, marker: str) -> str:
    """example-real.toml with the commented [evses.pilot] block holding ``marker`` uncommented."""
    lines = example.splitlines()
    at = lines.index(marker)
    start = max(i for i in range(at) if lines[i] == "# [evses.pilot]")
    end = next(i for i in range(at, len(lines)) if not lines[i].startswith("# "))
    return "\n".join([*lines[:start], *(line[2:] for line in lines[start:end]), *lines[end:]])


SYSFS_ADC_DUT = COMPARATOR_DUT.replace('input = "comparator"', 'input = "adc"').split("[evses.pilot.comparator]")[0]


@pytest.mark.parametrize(("marker", "dut_pilot"), [('# front_end = "comparator"', COMPARATOR_DUT),
                                                   ('# front_end = "analog"', SYSFS_ADC_DUT)])
def test_the_commented_examples_of_example_real_load(tmp_path: Path, marker: str, dut_pilot: str) -> None:
    """Each commented [evses.pilot] of example-real.toml, uncommented, is a valid profile for a DUT whose EVSE 1
    has that pilot (pi-2evse.toml's two EVSEs, EVSE 1 with the pilot)."""
    moved = (("GPIO9", "GPIO2"), ("GPIO10", "GPIO3"), ("GPIO11", "GPIO15"))  # EVSE 2's status LED, as it says
    text = (ROOT / "examples" / "pi-2evse.toml").read_text(encoding="utf-8")
    for old, new in moved:
        text = text.replace(f'_pin = "{old}"', f'_pin = "{new}"')
    evse2 = text.index("# ------------------------------------------------------------------ EVSE 2")
    (tmp_path / "dut.toml").write_text(text[:evse2] + dut_pilot + text[evse2:], encoding="utf-8")
    example = (BENCHES / "example-real.toml").read_text(encoding="utf-8")
    profile_text = _uncommented(example, marker).replace('config = "../../examples/pi-2evse.toml"',
                                                         'config = "dut.toml"')
    evse2 = profile_text.index("[[evses]]\nid = 2")
    for old, new in moved:
        profile_text = profile_text[:evse2] + profile_text[evse2:].replace(f'dut = "{old}",', f'dut = "{new}",')
    profile = parse_profile(profile_text, source="bench.toml", base_dir=tmp_path)
    pilot = profile.evse(1).pilot
    assert pilot is not None and pilot.front_end == marker.split('"')[1]
    assert profile.evse(2).pilot is None
