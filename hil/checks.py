"""How a scenario's checks are judged and recorded: ``CheckFailed``, ``Progress`` and ``CheckRecorder``.

A check waits on the recorded lines (never on sleeps alone), records its window and outcome on the
timeline for the report, tells the progress, and raises CheckFailed when the DUT did not do what
was expected in time. ``CheckRecorder`` is the part of ``hil.harness.Bench`` the line views
(hil.line_views) check through.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import Callable
from typing import Protocol

from hil.profile import Tolerances
from hil.timeline import CheckRecord, Timeline


class CheckFailed(AssertionError):
    """The DUT's lines (or answers) were not what the scenario expects."""


class Progress(Protocol):
    """Where live progress goes (the CLI prints it; tests may collect it)."""

    def step(self, t: float, text: str) -> None: ...

    def check(self, record: CheckRecord) -> None: ...

    def note(self, t: float, text: str) -> None: ...


class QuietProgress:
    """Progress that goes nowhere."""

    def step(self, t: float, text: str) -> None:
        pass

    def check(self, record: CheckRecord) -> None:
        pass

    def note(self, t: float, text: str) -> None:
        pass


class CheckRecorder:
    """Records checks on a scenario's timeline and waits on its recorded lines; counts from ``last_action``."""

    def __init__(self, timeline: Timeline, tolerance: Tolerances, progress: Progress | None = None) -> None:
        self.timeline = timeline
        self.tol = tolerance
        self.progress: Progress = progress or QuietProgress()
        self.last_action = 0.0

    def now(self) -> float:
        """Seconds since the scenario started."""
        return self.timeline.now()

    def _record(self, record: CheckRecord) -> None:
        """Record a decided check (timeline, progress); a failed one is marked and raises CheckFailed."""
        record = dataclasses.replace(record, decided=self.now())
        self.timeline.add_check(record)
        self.progress.check(record)
        if not record.ok:
            self.timeline.mark(f"FAIL: {record.text}", "fail", t=min(self.now(), record.t_to))
            raise CheckFailed(f"{record.text}: {record.detail}" if record.detail else record.text)

    def _answer(self, text: str, ok: bool, t: float, detail: str) -> None:
        """Record a check on one of the DUT's answers, decided at once (at ``t``)."""
        self._record(CheckRecord(text, ok, t, t, (), t if ok else None, "" if ok else detail))

    async def _check_within(
        self,
        what: str,
        keys: tuple[str, ...],
        since: float,
        within: float,
        reached: Callable[[], float | None],
        why_not: Callable[[], str],
    ) -> float:
        """Record whether ``reached()`` gave a time within ``within`` s of ``since``; that time, or NaN."""
        seen = await self._until(reached, since + within)
        ok = seen is not None
        latency = f"{seen - since:.3f} s" if seen is not None else "never"
        self._record(
            CheckRecord(f"{what} within {within:.2f} s ({latency})", ok, since, since + within, keys, seen,
                        "" if ok else why_not())
        )
        return seen if seen is not None else math.nan

    async def _until(self, probe: Callable[[], float | None], deadline: float) -> float | None:
        """Wait until ``probe()`` gives a time, or until ``deadline`` (scenario time) has passed."""
        while True:
            seen = probe()
            if seen is not None:
                return seen
            remaining = deadline - self.now()
            if remaining < 0:
                return probe()
            await self.timeline.changed(min(remaining + 0.01, 0.05))

    async def _settle(self, until: float) -> None:
        """Wait until scenario time ``until`` (plus a little, so late probes have reported)."""
        while self.now() < until + 0.01:
            await asyncio.sleep(max(0.0, until + 0.01 - self.now()))

