"""The embedded simulated charger on a warp loop, driven synchronously, with an interlock monitor.

For sync tests (hypothesis state machines): every call runs the loop until its coroutine is done, so
between calls the loop stands still; idle waits are skipped (hil.timewarp), so minutes of charger time
take well under a second. The loop runs on a ``SteppedClock``: a warp clock whose time moves only by
the skips, so the charger's timeline does not depend on how fast this machine runs and a hypothesis
example replays the same way (with a real-time part, shrinking reported flaky failures).

ERROR records with a traceback from the controller or the drivers are collected: the controller logs
expected hardware faults without one, so any such record is a bug.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from controller.config.loader import ChargerConfig, load_sim_default, without_pilots
from controller.runtime.build import Built, build
from hil.interlocks import InterlockMonitor, Violation, pilot_offer_mismatches, reserved_led_matches_core
from hil.timewarp import WarpClock, WarpLoop

T = TypeVar("T")

START = datetime(2026, 11, 21, 18, 0, tzinfo=UTC)
CLOCK_ORIGIN_S = 1000.0  # the loop's monotonic time at start: reproducible times in reports
WATCHED_LOGGERS = ("controller", "drivers")


class SteppedClock(WarpClock):
    """A WarpClock without its real-time part: time stands still while the loop works, and jumps when idle.

    Work takes no charger time at all, which is what makes a run reproducible; the simulated meters
    are served by the same loop, so no reply is ever skipped over.
    """

    def __init__(self) -> None:
        super().__init__(grace_s=0.0)

    def __call__(self) -> float:
        return CLOCK_ORIGIN_S + self.skipped_s

    def elapsed(self) -> float:
        return self.skipped_s


class ExceptionRecords(logging.Handler):
    """Keeps every ERROR (or worse) record that carries exc_info."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.records.append(record)

    def lines(self) -> list[str]:
        """One line per record: logger, message and the exception."""
        out = []
        for r in self.records:
            exc = r.exc_info[1] if r.exc_info else None
            out.append(f"{r.name}: {r.getMessage()} ({exc!r})")
        return out


class WarpSim:
    """A started sim charger (``controller.config.loader.load_sim_default()``) on its own WarpLoop.

    By default the plug-line charger (no control pilot: a pilot is sampled every 20 ms of loop time, which makes
    long warps two to three times as slow); pass ``load_sim_default()`` for the charger with pilots.
    """

    def __init__(self, config: ChargerConfig | None = None) -> None:
        self.config = config if config is not None else without_pilots(load_sim_default())
        self.loop = WarpLoop(SteppedClock())
        self.wall = self.loop.clock.wall(START)
        self.state_dir = Path(tempfile.mkdtemp(prefix="charger-props-"))
        self.errors = ExceptionRecords()
        for name in WATCHED_LOGGERS:
            logging.getLogger(name).addHandler(self.errors)
        self.built: Built | None = None
        self.monitor: InterlockMonitor | None = None
        try:
            self.run(self._start())
        except BaseException:
            self.close()
            raise

    async def _start(self) -> None:
        """Build, hook the monitor (so the start-up outputs are watched too), then start."""
        self.built = await build(self.config, state_dir=self.state_dir, wall_clock=self.wall, mono_clock=self.loop.time)
        self.monitor = InterlockMonitor(self.built).start()
        await self.built.start()

    @property
    def b(self) -> Built:
        """The running build."""
        assert self.built is not None
        return self.built

    @property
    def mon(self) -> InterlockMonitor:
        """The running monitor."""
        assert self.monitor is not None
        return self.monitor

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run the loop until ``coro`` is done."""
        return self.loop.run_until_complete(coro)

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` of loop time pass (skipped where the loop is idle)."""
        self.run(asyncio.sleep(seconds))

    def settle(self) -> None:
        """Run what is ready now (evaluations requested by callbacks) without letting loop time jump."""

        async def spin() -> None:
            for _ in range(50):
                await asyncio.sleep(0)
                if not any(e.pending for e in self.b.runtime._evses.values()):
                    for _ in range(3):  # callbacks those evaluations queued (core events, driver posts)
                        await asyncio.sleep(0)
                    if not any(e.pending for e in self.b.runtime._evses.values()):
                        return

        self.run(spin())

    def problems(self, tolerated: Callable[[Violation], bool] = lambda _v: False) -> list[str]:
        """Interlock violations (after the state checks), LED mismatches, pilot offers that the session or the
        limits do not allow, and logged exceptions, now.

        Violations for which ``tolerated`` is true (known issues) are left out. Settles first; then asks
        the core (which ends reservations due by now and so may request evaluations) and settles again,
        so the LEDs are compared once they could have followed.
        """
        self.settle()
        self.b.runtime.core.reserved_evses()
        self.settle()
        self.mon.check_now()
        return [
            *(str(v) for v in list(self.mon.records) if not tolerated(v)),
            *reserved_led_matches_core(self.b, self.config),
            *pilot_offer_mismatches(self.b),
            *(f"logged exception: {line}" for line in self.errors.lines()),
        ]

    def close(self) -> None:
        """Stop the monitor and the runtime (contactors open first), then close the loop; idempotent."""
        try:
            if self.monitor is not None:
                self.monitor.stop()
            if self.built is not None and not self.loop.is_closed():
                built, self.built = self.built, None
                self.run(built.stop())
                with contextlib.suppress(Exception):
                    built.pin_factory.close()
        finally:
            if not self.loop.is_closed():
                self._cancel_leftovers()
                self.loop.run_until_complete(self.loop.shutdown_asyncgens())
                self.loop.close()
            for name in WATCHED_LOGGERS:
                logging.getLogger(name).removeHandler(self.errors)
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def _cancel_leftovers(self) -> None:
        tasks = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            self.loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
