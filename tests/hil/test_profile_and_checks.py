"""Bench profiles, timelines and the scenario checks, without a DUT (fast)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

import hil
from drivers.gpio.config import DEFAULT_STATUS_COLORS
from hil.checks import CheckFailed
from hil.harness import Bench
from hil.profile import DRIVEN_ROLES, OBSERVED_ROLES, ProfileError
from hil.profile_loader import builtin_benches, load_profile, parse_profile
from hil.scenario import load_all, select
from hil.timeline import Timeline, classify

BENCHES = Path(hil.__file__).parent / "benches"


def test_sim_bench_is_built_in_and_wired_to_the_dut_pins() -> None:
    assert "sim" in builtin_benches()
    profile = load_profile("sim")
    assert profile.kind == "sim"
    assert [e.evse_id for e in profile.evses] == [1, 2]
    for evse in profile.evses:
        assert set(evse.lines) == set(OBSERVED_ROLES) | set(DRIVEN_ROLES)
        assert all(spec.harness == spec.dut for spec in evse.lines.values())
    assert profile.evse(1).lines["plug"].active_high is False  # sim_default: plug switch to GND
    timing = profile.timing(1)
    assert timing.lock_pulse_s == 0.2 and timing.lock_retries == 1
    assert timing.lock_fail_s == pytest.approx(2 * (0.2 + 0.25) + 0.5)


def test_example_real_bench_loads_and_is_checked_against_the_dut_configuration() -> None:
    profile = load_profile(str(BENCHES / "example-real.toml"))
    assert profile.kind == "real" and profile.meter is not None and profile.meter.link == "rtu"
    assert profile.evse(1).lines["coil"].harness == "GPIO5" and profile.evse(1).lines["coil"].dut == "GPIO17"
    harness_pins = [s.harness for e in profile.evses for s in e.lines.values()]
    assert len(harness_pins) == len(set(harness_pins)) == 20
    assert profile.timing(1).lock_fail_s > 10  # the production config retries for a while

    text = (BENCHES / "example-real.toml").read_text().replace('dut = "GPIO17"', 'dut = "GPIO18"', 1)
    with pytest.raises(ProfileError, match="coil: wired to DUT GPIO18 but the DUT uses GPIO17"):
        parse_profile(text, source="bad.toml", base_dir=BENCHES)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[bench]\nkind = 'sim'\ncolour = 1\n", "unknown key 'colour'"),
        ("[bench]\nkind = 'lab'\n", "bench.kind"),
        ("[tolerance]\nlatency_s = 'fast'\n", "latency_s must be a number"),
        ("[[evses]]\nid = 9\n", "the DUT has no EVSE 9"),
        ("[[evses]]\nid = 1\n[evses.lines]\ncoil = { harness = 'GPIO2', dut = 'GPIO17', active_high = true }\n",
         "the sim bench watches the DUT's own pins"),
        ("[bench]\nkind = 'real'\n[dut]\napi = 'http://10.0.0.2:8080'\n", "copy of the DUT's configuration"),
    ],
)
def test_profile_problems_name_the_key(text: str, problem: str) -> None:
    with pytest.raises(ProfileError, match=problem):
        parse_profile(text, source="p.toml")


def test_unknown_bench_name() -> None:
    with pytest.raises(ProfileError, match="no built-in bench 'lab'"):
        load_profile("lab")


def test_scenario_selection() -> None:
    every = load_all()
    assert {s.theme for s in every.values()} == {"reservations", "faults", "restart", "competition", "ocpp", "pilot"}
    assert [s.name for s in select(["faults.weld"])] == ["faults.weld"]
    assert [s.name for s in select(["weld"])] == ["faults.weld"]
    assert {s.theme for s in select(["restart"])} == {"restart"}
    assert {s.name for s in select(["*expir*"])} == {"reservations.expiry", "restart.expired_while_down",
                                                     "ocpp.reservation_expires"}
    with pytest.raises(LookupError):
        select(["nothing-like-this"])
    for scenario in every.values():
        assert scenario.title and scenario.title != scenario.name, f"{scenario.name} needs a docstring"


def test_status_colours_by_hue() -> None:
    palette = DEFAULT_STATUS_COLORS
    assert classify((1.0, 0.5, 0.0), palette) == "amber"
    assert classify((1.0, 1.0, 0.0), palette) == "amber"  # a non-PWM LED rounds amber to red + green
    assert classify((0.0, 0.0, 0.3), palette) == "blue"  # pulsing, dimmed
    assert classify((0.0, 0.0, 0.01), palette) == "off"
    assert classify((1.0, 0.0, 1.0), palette) == "other"


# ---------------------------------------------------------------- checks on a recorded timeline


class _Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class _Driver:
    def __init__(self) -> None:
        self.profile = load_profile("sim")
        self.api: Any = None


def _bench(now: float, traces: dict[str, list[tuple[float, float]]]) -> Bench:
    clock = _Clock()
    timeline = Timeline(clock)
    for key, samples in traces.items():
        evse, role = key.split(".")
        timeline.trace(key, evse_id=int(evse[4:]), role=role, label=role, kind="observed")
        for t, value in samples:
            timeline.record(key, t, value)
    timeline.palettes[1] = DEFAULT_STATUS_COLORS
    clock.t += now
    return Bench(_Driver(), timeline)  # type: ignore[arg-type]


async def test_turns_on_counts_from_the_action_and_fails_late() -> None:
    bench = _bench(5.0, {"evse1.reserved_led": [(0.0, 0.0), (1.1, 1.0)]})
    led = bench.evse(1).reserved_led
    assert await led.turns_on(within=0.3, after=1.0) == pytest.approx(1.1)
    with pytest.raises(CheckFailed, match=r"EVSE 1 reserved LED on within 0\.05 s \(never\): still off"):
        await led.turns_on(within=0.05, after=1.0)
    assert [c.ok for c in bench.timeline.checks] == [True, False]
    assert bench.timeline.markers[-1].kind == "fail"


async def test_turns_off_judges_the_final_state_not_the_state_before() -> None:
    """Off before, briefly on, off again at 2.0: 'turns off within 1.5 s of t=1.0' is seen at 2.0, not at 1.0."""
    bench = _bench(5.0, {"evse1.reserved_led": [(0.0, 0.0), (1.01, 1.0), (2.0, 0.0)]})
    assert await bench.evse(1).reserved_led.turns_off(within=1.5, after=1.0) == pytest.approx(2.0)


async def test_a_blinking_led_that_turned_on_in_time_passes_while_off() -> None:
    bench = _bench(5.0, {"evse1.reserved_led": [(0.0, 0.0), (1.1, 1.0), (1.6, 0.0), (2.1, 1.0), (4.9, 0.0)]})
    assert await bench.evse(1).reserved_led.turns_on(within=0.3, after=1.0) == pytest.approx(1.1)


async def test_stays_and_pulses() -> None:
    bench = _bench(5.0, {
        "evse1.coil": [(0.0, 0.0), (1.0, 1.0), (3.0, 0.0)],
        "evse1.lock_motor_lock": [(0.0, 0.0), (1.0, 1.0), (1.2, 0.0), (2.0, 1.0), (2.21, 0.0)],
    })
    e1 = bench.evse(1)
    await e1.coil.stays(True, for_s=1.5, after=1.2)
    with pytest.raises(CheckFailed, match=r"it was released at t=3\.000 s"):
        await e1.coil.stays(True, for_s=2.5, after=1.2)
    pulses = await e1.lock_motor_lock.pulses_exactly(2, width=0.2, within=2.0, after=0.5)
    assert [round(b - a, 2) for a, b in pulses] == [0.2, 0.21]
    with pytest.raises(CheckFailed, match="1 pulse"):
        await e1.lock_motor_lock.pulses_exactly(2, width=0.2, within=1.0, after=0.5)


async def test_status_led_colours() -> None:
    rgb = {"red": [(0.0, 0.0)], "green": [(0.0, 1.0)], "blue": [(0.0, 0.0)]}
    rgb["red"] += [(1.0, 1.0)]
    rgb["green"] += [(1.0005, 0.5)]  # the driver sets r, then g: a glitch of yellow, then amber
    rgb["red"] += [(2.0, 0.0)]
    rgb["green"] += [(2.0, 0.0)]
    rgb["blue"] += [(2.001, 1.0)]
    bench = _bench(5.0, {f"evse1.status_{c}": samples for c, samples in rgb.items()})
    assert bench.timeline.status_changes(1) == [(0.0, "green"), (1.0005, "amber"), (2.001, "blue")]
    status = bench.evse(1).status
    assert await status.shows("amber", within=0.1, after=0.95) == pytest.approx(1.0005)
    await status.only({"amber"}, for_s=0.9, after=1.05)
    with pytest.raises(CheckFailed, match="it showed blue"):
        await status.only({"amber"}, for_s=1.5, after=1.05)
    assert math.isnan(bench.timeline.checks[-1].seen or math.nan)
