"""The pilot scenarios catch a DUT that mishandles its control pilot.

The controller runs on the sim-pilot bench with one pilot rule broken, and the scenario that guards that rule must
FAIL on the check that guards it: a controller that closes the contactor in B (it ignores whether the car asks for
energy), one whose PWM never follows a lower limit, and one that samples CP so slowly that C -> B takes longer than
IEC 61851-1's 100 ms to open the contactor. Each case runs in its own forked process (the break is a module
attribute), three at a time.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from scenario_pool import outcomes_in_fresh_processes

import controller.runtime.evaluation
import controller.runtime.pilot_build
from controller.charging.pilot import PilotView, car_ready
from controller.runtime.pilot import PilotHardware
from hil.profile_loader import load_profile
from hil.runner import run_scenario
from hil.scenario import load_all
from hil.sim_bench import SimBench

SLOW_SAMPLING_S = 0.06  # 3 samples to debounce: C -> B seen >= 120 ms after the car left C


def closes_in_b() -> None:
    """The close interlock forgets the car: as far as the pilot goes, the contactor may always close."""

    def always(view: PilotView | None) -> bool:
        return True

    controller.runtime.evaluation.car_ready = always


def ignores_limits() -> None:
    """The PWM offers the EVSE's maximum whatever limit is in effect (a pause still stops it)."""

    class Stubborn(PilotHardware):
        def apply(self, evse_id: int, *, may_charge: bool, limit_a: float | None) -> None:
            super().apply(evse_id, may_charge=may_charge, limit_a=None)

    controller.runtime.pilot_build.PilotHardware = Stubborn  # type: ignore[misc]


def samples_slowly() -> None:
    """CP is sampled every 60 ms instead of 20 ms."""

    @dataclasses.dataclass
    class Slow(PilotHardware):
        def __post_init__(self) -> None:
            self.period_s = SLOW_SAMPLING_S

    controller.runtime.pilot_build.PilotHardware = Slow  # type: ignore[misc]


# case: (scenario, the break, the check that must fail)
CASES: dict[str, tuple[str, Any, str]] = {
    "closes_in_b": ("pilot.offer_and_charge", closes_in_b, "EVSE 1 contactor coil stays released for"),
    "ignores_limits": ("pilot.limit_follows", ignores_limits, "EVSE 1 CP PWM duty offers 10 A (16.67 %) within"),
    "samples_slowly": ("pilot.car_leaves_c", samples_slowly, "EVSE 1 contactor coil released within 0.10 s"),
}


def run_case(case: str) -> tuple[str, str]:
    """In a fresh process: break the rule, run the scenario on sim-pilot, return (status, message)."""
    scenario, breaks, _ = CASES[case]
    breaks()
    result = asyncio.run(run_scenario(SimBench(load_profile("sim-pilot")), load_all()[scenario], after_failure_s=0.0))
    return result.status, result.message


@pytest.fixture(scope="module")
def outcomes() -> Iterator[dict[str, tuple[str, str]]]:
    yield outcomes_in_fresh_processes(run_case, CASES)


@pytest.mark.parametrize("case", list(CASES))
def test_a_pilot_scenario_fails_when_the_dut_breaks_its_rule(outcomes: dict[str, tuple[str, str]], case: str) -> None:
    scenario, _, guard = CASES[case]
    status, message = outcomes[case]
    assert status == "failed", f"{scenario} with {case}: {status} {message}"
    assert message.startswith(guard), message


def test_the_rules_are_whole_in_this_process() -> None:
    """The breaks happened in the worker processes only."""
    assert controller.runtime.evaluation.car_ready is car_ready
    assert controller.runtime.pilot_build.PilotHardware is PilotHardware
