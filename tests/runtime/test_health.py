"""controller.runtime.health: the loop-health probe (fake and real runtime) and the STATUS= summary line."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from controller.config.loader import load_sim_default
from controller.runtime.build import build
from controller.runtime.health import LoopHealth, summary_line


class FakeRuntime:
    """Counts requests; ``serve()`` runs the requested evaluations (of the EVSEs not ``stuck``)."""

    def __init__(self, evse_ids: tuple[int, ...] = (1, 2)) -> None:
        """EVSEs ``evse_ids``, nothing evaluated yet."""
        self.done = dict.fromkeys(evse_ids, 0)
        self.requested: set[int] = set()
        self.stuck: set[int] = set()

    def request_evaluations(self) -> None:
        """Note a request for every EVSE."""
        self.requested |= set(self.done)

    def evaluations_done(self) -> dict[int, int]:
        """The counts so far."""
        return dict(self.done)

    def serve(self) -> None:
        """Run what was requested, except for the stuck EVSEs (their requests stay open)."""
        for evse_id in sorted(self.requested - self.stuck):
            self.done[evse_id] += 1
        self.requested &= self.stuck


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        """Start at an arbitrary 100 s."""
        self.now = 100.0

    def __call__(self) -> float:
        """The current time (s)."""
        return self.now


def probe(runtime: FakeRuntime, clock: Clock, max_age_s: float = 7.5) -> LoopHealth:
    """The probe under test, on the fake runtime and clock."""
    return LoopHealth(runtime, max_age_s=max_age_s, clock=clock)


def test_the_first_check_only_asks() -> None:
    runtime, clock = FakeRuntime(), Clock()
    health = probe(runtime, clock)
    verdict = health.check()
    assert not verdict.healthy
    assert verdict.reason == ""  # nothing to judge yet: not a failure to log
    assert runtime.requested == {1, 2}


def test_healthy_when_every_requested_evaluation_ran_and_the_check_came_on_time() -> None:
    runtime, clock = FakeRuntime(), Clock()
    health = probe(runtime, clock)
    health.check()
    for _ in range(3):
        runtime.serve()
        clock.now += 5.0
        assert health.check().healthy


def test_an_evaluation_that_did_not_run_is_unhealthy_and_named() -> None:
    """One EVSE whose evaluation never comes (a stuck request flag) fails the probe although the other runs."""
    runtime, clock = FakeRuntime(), Clock()
    health = probe(runtime, clock)
    health.check()
    runtime.stuck = {2}
    runtime.serve()
    clock.now += 5.0
    verdict = health.check()
    assert not verdict.healthy
    assert "EVSE 2" in verdict.reason and "EVSE 1" not in verdict.reason


def test_evaluations_before_the_request_do_not_count() -> None:
    """Evidence must be fresh: counts that moved before the probe asked prove nothing about now."""
    runtime, clock = FakeRuntime(), Clock()
    health = probe(runtime, clock)
    runtime.request_evaluations()
    runtime.serve()  # an evaluation that ran before the probe's question
    health.check()
    runtime.stuck = {1, 2}
    clock.now += 5.0
    assert not health.check().healthy


def test_a_late_check_is_unhealthy_even_if_the_evaluations_ran() -> None:
    """The loop stalled between two checks: the old evidence is stale, so no keep-alive on waking up."""
    runtime, clock = FakeRuntime(), Clock()
    health = probe(runtime, clock, max_age_s=7.5)
    health.check()
    runtime.serve()
    clock.now += 20.0
    verdict = health.check()
    assert not verdict.healthy
    assert "did not turn for 20.0 s" in verdict.reason
    runtime.serve()  # the next round, on time, passes again
    clock.now += 5.0
    assert health.check().healthy


def test_max_age_must_be_positive() -> None:
    with pytest.raises(ValueError):
        LoopHealth(FakeRuntime(), max_age_s=0)


async def test_the_real_runtime_answers_the_probe_through_the_request_path(tmp_path: Path) -> None:
    """Runtime.request_evaluations is served by the loop; a stuck request flag on one EVSE fails the probe."""
    built = await build(load_sim_default(), state_dir=tmp_path)
    await built.start()
    try:
        runtime = built.runtime
        clock = Clock()
        health = LoopHealth(runtime, max_age_s=7.5, clock=clock)
        before = runtime.evaluations_done()
        health.check()
        await asyncio.sleep(0.05)
        assert all(runtime.evaluations_done()[i] > before[i] for i in before)
        clock.now += 5.0
        assert health.check().healthy
        await asyncio.sleep(0.05)  # that check's request is served
        runtime._evses[1].pending = True  # a request flag that is never cleared: EVSE 1 is never evaluated again
        clock.now += 5.0
        assert health.check().healthy  # judges the round asked before the flag stuck; asks again (in vain for 1)
        await asyncio.sleep(0.05)
        clock.now += 5.0
        verdict = health.check()
        assert not verdict.healthy
        assert "EVSE 1:" in verdict.reason
    finally:
        await built.stop()


def evse(**fields: Any) -> dict[str, Any]:
    """One EVSE entry of the status document, idle unless ``fields`` say otherwise."""
    entry: dict[str, Any] = {
        "id": 1, "state": "Available", "enabled": True, "plugged_in": False, "reserved": False,
        "charging": False, "faults": [],
    }
    return entry | fields


STORE_OK = {"ok": True, "error": None, "unsynced_ends": 0}


@pytest.mark.parametrize(
    ("evses", "store", "expected"),
    [
        ([evse(), evse(id=2)], STORE_OK, "2 EVSEs: 2 available; store ok"),
        (
            [evse(state="Occupied", plugged_in=True, charging=True), evse(id=2, reserved=True)],
            STORE_OK,
            "2 EVSEs: 1 charging, 1 reserved; store ok",
        ),
        (
            [evse(state="Faulted", faults=["contactor_welded"]), evse(id=2, enabled=False, state="Unavailable"),
             evse(id=3, state="Occupied", plugged_in=True)],
            STORE_OK,
            "3 EVSEs: 1 occupied, 1 unavailable, 1 faulted; store ok",
        ),
        ([evse()], STORE_OK, "1 EVSE: 1 available; store ok"),
        (
            [evse()],
            {"ok": False, "error": "database or disk is full\n(SQLITE_FULL)", "unsynced_ends": 2},
            "1 EVSE: 1 available; store failing (2 ends unsynced): database or disk is full (SQLITE_FULL)",
        ),
        ([], STORE_OK, "0 EVSEs: none; store ok"),
    ],
)
def test_summary_line(evses: list[dict[str, Any]], store: dict[str, Any], expected: str) -> None:
    assert summary_line({"evses": evses, "reservations": [], "store": store}) == expected


def test_summary_line_is_one_bounded_line() -> None:
    line = summary_line({"evses": [evse()], "store": {"ok": False, "error": "x\n" * 500, "unsynced_ends": 0}})
    assert "\n" not in line and len(line) <= 200
