"""When the DUT read the plant's meter: the end of each poll's burst of Modbus requests, watched while a scenario
runs. The DUT decides on a meter reading when its poll completes, so a check of a decision that waits for a reading
(an over-current's timeout) counts from these times, not from the current's change."""

from __future__ import annotations

import asyncio
import contextlib

from drivers.sim.meter_server import SimulatedMeter
from hil.timeline import Timeline

BURST_GAP_S = 0.3  # requests closer than this belong to one poll (a poll reads its registers back to back)
WATCH_S = 0.005


class MeterReads:
    """Watches a simulated meter's request count (``SimulatedMeter.reads``) and keeps the end of each poll."""

    def __init__(self, meter: SimulatedMeter, timeline: Timeline) -> None:
        """Start watching now (in the running loop)."""
        self.meter = meter
        self.timeline = timeline
        self.polls: list[float] = []  # scenario time of each poll's last request
        self._task = asyncio.ensure_future(self._watch())

    async def _watch(self) -> None:
        """Poll the request count; a change after a gap starts a poll, one within the gap extends it."""
        count, last = self.meter.reads, -1.0
        while True:
            await asyncio.sleep(WATCH_S)
            if self.meter.reads == count:
                continue
            count, now = self.meter.reads, self.timeline.now()
            if self.polls and now - last <= BURST_GAP_S:
                self.polls[-1] = now
            else:
                self.polls.append(now)
            last = now

    def first_after(self, t: float) -> float | None:
        """The end of the first poll that began after ``t`` (None: none yet)."""
        for end in self.polls:
            if end > t:
                return end
        return None

    async def stop(self) -> None:
        """Stop watching."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
