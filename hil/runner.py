"""Runs scenarios one after the other on one bench, each on a fresh (or reset) DUT, and collects results.

Each scenario gets its own timeline, starting when the bench is open and the DUT has settled
(its start-up lock moves done). A failed check ends the scenario; an unexpected exception is
an error; a scenario the bench cannot run (no lock wired, one EVSE only...) is skipped.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
import traceback
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

from hil.bench import BenchDriver
from hil.checks import CheckFailed, Progress, QuietProgress
from hil.harness import Bench
from hil.profile import BenchProfile
from hil.scenario import Scenario
from hil.timeline import Timeline

log = logging.getLogger(__name__)

SETTLE_QUIET_S = 0.3  # the DUT counts as settled when no line changed for this long
SETTLE_MAX_S = 5.0
AFTER_FAILURE_S = 1.0  # lines keep being recorded this long after a failed check


@dataclass
class ScenarioResult:
    """How one scenario went, with everything the report shows."""

    scenario: Scenario
    status: str  # "passed", "failed", "error", "skipped", "xfail" (a known issue showed, as expected)
    message: str = ""
    duration_s: float = 0.0
    timeline: Timeline | None = None
    steps: list[tuple[float, str]] = field(default_factory=list)
    notes: list[tuple[float, str]] = field(default_factory=list)  # findings the scenario kept (measured times)
    log_lines: list[str] = field(default_factory=list)
    detail: str = ""  # traceback of an error

    @property
    def ok(self) -> bool:
        """Passed, skipped or failed as expected."""
        return self.status in ("passed", "skipped", "xfail")


def make_driver(profile: BenchProfile) -> BenchDriver:
    """The driver for a profile's kind (the real one is imported only when asked for)."""
    if profile.kind == "sim":
        from hil.sim_bench import SimBench

        return SimBench(profile)
    from hil.real_bench import RealBench

    return RealBench(profile)


_RUNNING: contextvars.ContextVar[Timeline | None] = contextvars.ContextVar("hil_scenario", default=None)
"""The timeline of the scenario whose tasks log (the DUT's tasks inherit it); None in other threads."""


class _Capture(logging.Handler):
    """Keeps the DUT's and the bench's log lines of one scenario, with scenario times."""

    def __init__(self, timeline: Timeline) -> None:
        super().__init__(logging.INFO)
        self.timeline = timeline
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(("uvicorn", "pymodbus")) or _RUNNING.get() not in (self.timeline, None):
            return
        t = self.timeline.rel(record.created - time.time() + time.monotonic())
        self.lines.append(f"{t:8.3f} {record.levelname:<7} {record.name}: {record.getMessage()}")


_lowered: list[int] = []  # the root level before the first running scenario lowered it


@contextmanager
def _capturing(timeline: Timeline) -> Iterator[_Capture]:
    """Collect INFO log lines while a scenario runs (the root logger is lowered to INFO meanwhile)."""
    capture = _Capture(timeline)
    root = logging.getLogger()
    if not any(isinstance(h, _Capture) for h in root.handlers):
        _lowered[:] = [root.level]
        root.setLevel(min(root.getEffectiveLevel(), logging.INFO))
    root.addHandler(capture)
    token = _RUNNING.set(timeline)
    try:
        yield capture
    finally:
        _RUNNING.reset(token)
        root.removeHandler(capture)
        if _lowered and not any(isinstance(h, _Capture) for h in root.handlers):
            root.setLevel(_lowered.pop())


async def run_scenario(
    driver: BenchDriver,
    scenario: Scenario,
    progress: Progress | None = None,
    *,
    after_failure_s: float = AFTER_FAILURE_S,
) -> ScenarioResult:
    """Open the bench, let the DUT settle, run the scenario under its timeout, close the bench.

    After a failed check the lines are recorded ``after_failure_s`` longer, for the report.
    """
    progress = progress or QuietProgress()
    missing = scenario.missing(driver.profile)
    if missing:
        return ScenarioResult(scenario, "skipped", f"the bench has no {', '.join(missing)}")
    timeline = Timeline()
    with _capturing(timeline) as capture:
        bench = Bench(driver, timeline, progress)
        started = time.monotonic()
        result = ScenarioResult(scenario, "passed", timeline=timeline)
        try:
            await bench.start(ocpp="ocpp" in scenario.needs)
            await _settle(bench)
            bench.last_action = bench.now()
            await asyncio.wait_for(scenario.func(bench), scenario.timeout_s)
        except CheckFailed as exc:
            result.status, result.message = "failed", str(exc)
            await asyncio.sleep(after_failure_s)  # the report shows what the DUT did next
        except TimeoutError:
            result.status, result.message = "error", f"the scenario did not finish within {scenario.timeout_s:.0f} s"
            timeline.mark("TIMEOUT", "fail")
        except Exception as exc:
            result.status, result.message = "error", f"{type(exc).__name__}: {exc}"
            result.detail = traceback.format_exc()
            timeline.mark(f"ERROR: {type(exc).__name__}", "fail")
        finally:
            try:
                await bench.stop()
            except Exception as exc:
                log.exception("closing the bench failed")
                if result.status == "passed":
                    result.status, result.message = "error", f"closing the bench failed: {exc!r}"
    if scenario.known_issue:
        if result.status == "failed":
            result.status, result.message = "xfail", f"known issue: {scenario.known_issue} ({result.message})"
        elif result.status == "passed":
            result.status = "error"
            result.message = (
                f"passed although marked with a known issue ({scenario.known_issue}): fixed? remove the mark"
            )
    result.duration_s = time.monotonic() - started
    result.steps = bench.steps
    result.notes = bench.notes
    result.log_lines = capture.lines
    return result


async def _settle(bench: Bench) -> None:
    """Wait until the freshly started DUT stops moving its lines (start-up unlock, first meter read)."""
    timeline = bench.timeline
    deadline = timeline.now() + SETTLE_MAX_S
    while timeline.now() < deadline:
        last = max((tr.times[-1] for tr in timeline.traces.values() if tr.times), default=0.0)
        quiet_for = timeline.now() - last
        if quiet_for >= SETTLE_QUIET_S:
            break
        await asyncio.sleep(SETTLE_QUIET_S - quiet_for + 0.01)
    timeline.mark("DUT settled", "action")


class RunProgress(Progress, Protocol):
    """Progress of a whole run: also told when each scenario begins and ends."""

    def begin(self, index: int, total: int, scenario: Scenario) -> None: ...

    def end(self, result: ScenarioResult) -> None: ...


async def run_all(
    profile: BenchProfile,
    scenarios: Sequence[Scenario],
    *,
    progress: RunProgress | None = None,
    driver: BenchDriver | None = None,
    jobs: int = 1,
) -> list[ScenarioResult]:
    """Run ``scenarios`` in order on one bench; ``progress`` is told about each one as it runs.

    ``jobs`` > 1 (sim bench only) runs that many scenarios at once, each with its own DUT and event
    loop in a thread of this process; ``progress`` then only hears each scenario's end, as it comes.
    """
    if jobs > 1:
        if profile.kind != "sim" or driver is not None:
            raise ValueError("parallel runs are for the sim bench (one DUT per scenario)")
        return await _run_parallel(profile, scenarios, jobs, progress)
    driver = driver or make_driver(profile)
    results = []
    try:
        for index, scenario in enumerate(scenarios, 1):
            if progress is not None:
                progress.begin(index, len(scenarios), scenario)
            result = await run_scenario(driver, scenario, progress)
            if progress is not None:
                progress.end(result)
            results.append(result)
    finally:
        shutdown = getattr(driver, "shutdown", None)
        if shutdown is not None:
            await shutdown()
    return results


async def _run_parallel(
    profile: BenchProfile, scenarios: Sequence[Scenario], jobs: int, progress: RunProgress | None
) -> list[ScenarioResult]:
    """Each scenario in a worker thread with its own event loop, so one DUT's blocking call (e.g. pyserial's
    socket:// close sleeps 0.3 s) cannot stretch another DUT's timing."""

    def one(scenario: Scenario) -> ScenarioResult:
        return asyncio.run(run_scenario(make_driver(profile), scenario))

    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="hil-scenario") as pool:
        futures = [loop.run_in_executor(pool, one, s) for s in scenarios]
        for done in asyncio.as_completed(futures):
            result = await done
            if progress is not None:
                progress.end(result)
        return [f.result() for f in futures]
