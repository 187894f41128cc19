"""The whole HIL scenario suite on the built-in sim benches: the real controller in this process, checked line by line.

Every scenario runs on ``sim`` where that bench has what it needs, else on ``sim-pilot`` (the pilot theme: a car
on each control pilot). The suite runs once, three scenarios at a time (each with its own DUT and event loop, about
35 s in all); each scenario is then its own test, and the reports are written and read back, so CI shows which
scenario failed and why. ``charger-hil run --bench sim`` (and ``--bench sim-pilot pilot``) runs the same one by one.
A scenario that misses its timing while sharing the machine with two others is run again alone before it counts as
failed (a real regression fails both times), with a warning.
"""

from __future__ import annotations

import asyncio
import base64
import warnings
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from hil.plot import rows_of
from hil.profile_loader import load_profile
from hil.report import write_reports
from hil.runner import ScenarioResult, run_scenario
from hil.scenario import load_all
from hil.sim_bench import SimBench

PROFILES = {name: load_profile(name) for name in ("sim", "sim-pilot")}
SCENARIOS = sorted(load_all())
BENCH = {name: "sim" if not load_all()[name].missing(PROFILES["sim"]) else "sim-pilot" for name in SCENARIOS}
JOBS = 3


def _expected(result: ScenarioResult) -> str:
    return "xfail" if result.scenario.known_issue else "passed"


def _run(name: str) -> ScenarioResult:
    """One scenario on its bench, in this thread's own event loop."""
    return asyncio.run(run_scenario(SimBench(PROFILES[BENCH[name]]), load_all()[name]))


@pytest.fixture(scope="module")
def suite() -> dict[str, ScenarioResult]:
    longest_first = sorted(SCENARIOS, key=lambda name: -load_all()[name].timeout_s)  # packs the pool tighter
    with ThreadPoolExecutor(max_workers=JOBS, thread_name_prefix="hil-scenario") as pool:
        by_name = dict(zip(longest_first, pool.map(_run, longest_first), strict=True))
    for name, first in list(by_name.items()):
        if first.status != _expected(first):
            again = _run(name)
            if again.status == _expected(again):
                warnings.warn(f"{name} missed its timing in the parallel run ({first.message}) but passed alone",
                              stacklevel=1)
            else:
                again.message = f"{again.message} (in the parallel run: {first.message})"
            by_name[name] = again
    return by_name


def _transcript(result: ScenarioResult) -> str:
    checks = result.timeline.checks if result.timeline is not None else []
    lines = [f"{c.decided:7.3f} {'ok  ' if c.ok else 'FAIL'} {c.text} {c.detail}" for c in checks]
    return "\n".join([*lines, "--- log", *result.log_lines[-40:], result.detail])


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario_on_the_sim_bench(suite: dict[str, ScenarioResult], name: str) -> None:
    result = suite[name]
    assert result.status == _expected(result), f"{result.status}: {result.message}\n{_transcript(result)}"
    assert result.timeline is not None and result.timeline.checks, "a scenario must check something"


def test_the_suite_covers_every_theme_on_a_bench_that_has_what_it_needs() -> None:
    themes = {name.partition(".")[0] for name in SCENARIOS}
    assert themes == {"reservations", "faults", "restart", "competition", "ocpp", "pilot"}
    assert {name for name, bench in BENCH.items() if bench == "sim-pilot"} == {n for n in SCENARIOS
                                                                               if n.startswith("pilot.")}
    for name in SCENARIOS:
        assert load_all()[name].missing(PROFILES[BENCH[name]]) == [], name


def test_the_pilot_traces_are_recorded_and_drawn(suite: dict[str, ScenarioResult]) -> None:
    """On the pilot bench the CP state, the PWM duty and the car's current are rows of EVSE 1's timeline; on the
    plain sim bench there are none."""
    pilot = suite["pilot.offer_and_charge"].timeline
    plain = suite["reservations.right_token_then_charge"].timeline
    assert pilot is not None and plain is not None
    drawn = {row.role for row in rows_of(pilot) if row.evse_id == 1}
    assert {"pilot_state", "pilot_duty", "meter_current", "coil"} <= drawn
    assert pilot.traces["evse1.pilot_duty"].unit == "%" and pilot.traces["evse1.pilot_state"].unit == "state"
    assert 100.0 in pilot.traces["evse1.pilot_duty"].values
    assert not {key for key in plain.traces if "pilot" in key}


def test_reports_of_the_run(suite: dict[str, ScenarioResult], tmp_path: Path) -> None:
    for bench, profile in PROFILES.items():
        names = [name for name in SCENARIOS if BENCH[name] == bench]
        junit, html = write_reports([suite[name] for name in names], profile, tmp_path / bench)

        suite_xml = ET.parse(junit).getroot().find("testsuite")
        assert suite_xml is not None
        assert int(suite_xml.get("tests", "0")) == len(names)
        assert suite_xml.get("failures") == "0" and suite_xml.get("errors") == "0"
        cases = {f"{c.get('classname')}.{c.get('name')}" for c in suite_xml.iter("testcase")}
        assert cases == {f"hil.{name}" for name in names}

        page = html.read_text(encoding="utf-8")
        images = page.split("src='data:image/png;base64,")[1:]
        assert len(images) == len(names)
        for image in images:
            png = base64.b64decode(image.split("'", 1)[0])
            assert png.startswith(b"\x89PNG") and len(png) > 20_000
        for index, name in enumerate(names):
            assert f"id='s{index}'>{name}" in page
        if bench == "sim-pilot":
            assert "duty_pct" in page and "C -&gt; B to coil released" in page  # the tolerance, a measured note
