"""Each fault scenario catches the loss of its fault handling.

The controller runs with the handling of one fault switched off: the EVSE model and the output
policy used by controller.runtime.runtime are swapped for ones that do not see that fault (or the plug
loses its debounce), and the scenario must then FAIL on the check that guards that handling.
Each case runs in its own forked process (the swap is a module attribute, so cases cannot share
a process), three at a time.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator

import pytest
from scenario_pool import outcomes_in_fresh_processes

import controller.runtime.evaluation
import controller.runtime.runtime
import drivers.gpio.plug
from controller.charging.evse import EvseModel, EvseReadings, EvseState
from controller.charging.outputs import OutputInputs, Outputs, decide_outputs
from drivers.gpio._input import DebouncedInput
from drivers.interfaces import ContactorReport, FaultKind, LockReport
from hil.profile_loader import load_profile
from hil.runner import run_scenario
from hil.scenario import load_all
from hil.sim_bench import SimBench

LOCK_FAULTS = frozenset({FaultKind.LOCK_FAILED_LOCK, FaultKind.LOCK_FAILED_UNLOCK, FaultKind.LOCK_UNEXPECTED_CHANGE})
NO_DEBOUNCE = frozenset({"plug debounce"})

# (scenario, what its DUT does not handle, the check(s) that must then fail, what the scenario must end as)
CASES: dict[str, tuple[str, frozenset[object], str | tuple[str, ...], str]] = {
    "weld": ("faults.weld", frozenset({FaultKind.CONTACTOR_WELDED}), "EVSE 1 status LED red within", "failed"),
    "lock_jam": ("faults.lock_jam", LOCK_FAULTS, "EVSE 1 status LED red within", "failed"),
    "meter_silent": ("faults.meter_silent", frozenset({FaultKind.METER_NO_RESPONSE, FaultKind.METER_STALE}),
                     "EVSE 1 contactor coil released within", "failed"),
    "meter_late": ("faults.meter_late", frozenset({FaultKind.METER_NO_RESPONSE, FaultKind.METER_STALE}),
                   "EVSE 1 contactor coil released within", "failed"),
    "meter_crc": ("faults.meter_crc", frozenset({FaultKind.METER_BAD_DATA, FaultKind.METER_STALE}),
                  "EVSE 1 contactor coil released within", "failed"),
    "plug_bounce": ("faults.plug_bounce", NO_DEBOUNCE, ("EVSE 1 contactor coil energized", "EVSE 1 lock motor: lock:"),
                    "failed"),
    # the swap is targeted: a controller blind to welds still handles a jammed lock
    "weld_blind_lock_jam": ("faults.lock_jam", frozenset({FaultKind.CONTACTOR_WELDED}), "", "passed"),
}


def _contactor(report: ContactorReport | None, blind: frozenset[object]) -> ContactorReport | None:
    if report is not None and report.fault is not None and report.fault.kind in blind:
        return dataclasses.replace(report, fault=None)
    return report


def _lock(report: LockReport | None, blind: frozenset[object]) -> LockReport | None:
    if report is not None and report.fault is not None and report.fault.kind in blind:
        return dataclasses.replace(report, fault=None)
    return report


def blind_controller(blind: frozenset[object]) -> None:
    """controller.runtime.runtime gets an EVSE model and an output policy that never see the ``blind`` faults."""

    class BlindModel(EvseModel):
        def update(self, readings: EvseReadings, now: float) -> EvseState:
            meter = readings.meter_fault
            if meter is not None and meter.kind in blind:
                meter = None
            readings = dataclasses.replace(
                readings,
                contactor=_contactor(readings.contactor, blind),
                lock=_lock(readings.lock, blind),
                meter_fault=meter,
            )
            return super().update(readings, now)

    def blind_outputs(inputs: OutputInputs) -> Outputs:
        return decide_outputs(
            dataclasses.replace(inputs, contactor=_contactor(inputs.contactor, blind), lock=_lock(inputs.lock, blind))
        )

    controller.runtime.runtime.EvseModel = BlindModel  # type: ignore[misc]
    controller.runtime.evaluation.decide_outputs = blind_outputs


def undebounced_plug() -> None:
    """The plug input of drivers.gpio.plug loses its debounce (every edge counts)."""

    class Undebounced(DebouncedInput):
        def __init__(self, *args: object, **kwargs: object) -> None:
            kwargs["hold_s"] = 0.0
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    drivers.gpio.plug.DebouncedInput = Undebounced  # type: ignore[misc]


def run_case(case: str) -> tuple[str, str]:
    """In a fresh process: switch the handling off, run the scenario, return (status, message)."""
    scenario, blind, _, _ = CASES[case]
    if blind is NO_DEBOUNCE:
        undebounced_plug()
    else:
        blind_controller(blind)
    result = asyncio.run(run_scenario(SimBench(load_profile("sim")), load_all()[scenario], after_failure_s=0.0))
    return result.status, result.message


@pytest.fixture(scope="module")
def outcomes() -> Iterator[dict[str, tuple[str, str]]]:
    yield outcomes_in_fresh_processes(run_case, CASES)


@pytest.mark.parametrize("case", list(CASES))
def test_fault_scenario_fails_without_its_handling(outcomes: dict[str, tuple[str, str]], case: str) -> None:
    scenario, _, guard, expected = CASES[case]
    status, message = outcomes[case]
    assert status == expected, f"{scenario} with {case} handling off: {status} {message}"
    assert message.startswith(guard), message


def test_the_handling_is_back_in_this_process() -> None:
    """The swaps happened in the worker processes only."""
    assert controller.runtime.runtime.EvseModel is EvseModel
    assert controller.runtime.evaluation.decide_outputs is decide_outputs
    assert drivers.gpio.plug.DebouncedInput is DebouncedInput
