"""Running a storm: start the actors on a built sim charger, watch it for hours, end it and fill the report.

``run_storm`` drives a controller already built and started; ``sim_storm`` builds the embedded
simulated charger on the running loop (best a ``hil.timewarp`` loop), storms it and stops it. While
it runs, unhandled exceptions (the loop's exception handler, log records carrying a traceback,
exceptions escaping the actors) and the safety interlocks (hil.interlocks: every coil and
lock-motor edge, and state checks every few seconds, control-pilot rules and offers included where
the EVSEs have a pilot) are watched throughout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import time
import traceback
import tracemalloc
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from controller.config.model import ChargerConfig
from hil.interlocks import InterlockMonitor, pilot_offer_mismatches, reserved_led_matches_core
from hil.storm.faults import FaultEpisodes
from hil.storm.memory import MemoryWatch
from hil.storm.report import StormReport
from hil.storm.settings import START_UTC, BenchLimits, StormSettings
from hil.storm.site import Site, settle
from hil.storm.traffic import Traffic


class _Capture(logging.Handler):
    """Keeps log records that carry a traceback: code that failed where it should not have."""

    def __init__(self, report: StormReport, sim_time: Callable[[], float]) -> None:
        super().__init__(logging.ERROR)
        self._report = report
        self._sim_time = sim_time

    def emit(self, record: logging.LogRecord) -> None:
        """Record a logged traceback (or a critical record) as an unhandled exception."""
        if record.exc_info is None and record.levelno < logging.CRITICAL:
            return  # expected faults are logged as errors without a traceback
        detail = ""
        if record.exc_info is not None and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            detail = " | " + "".join(traceback.format_exception(exc)).strip().replace("\n", " | ")[-1500:]
        self._report.add("unhandled", f"t={self._sim_time():.1f}s {record.name}: {record.getMessage()}{detail}")


class Storm:
    """One storm: the site, its actors (traffic, faults, memory, interlock checks) and the run that ends it."""

    def __init__(self, site: Site, *, hours: float, trace_hours: float | None = None) -> None:
        self.site = site
        self.hours = hours
        self.traffic = Traffic(site)
        self.faults = FaultEpisodes(site, self.traffic)
        self.memory = MemoryWatch(site, trace_hours)

    async def checker(self, monitor: InterlockMonitor) -> None:
        """State-level interlock checks, the reserved LEDs against the core and each pilot's offer against its session
        and limits, with the loop settled."""
        site = self.site
        checks = (("reserved-led", reserved_led_matches_core), ("pilot-offer", pilot_offer_mismatches))
        while not await site.sleep(site.s.check_interval_s):
            await settle()
            monitor.check_now()
            site.report.interlock_checks += 1
            suspects = {name: check(site.built) for name, check in checks}
            if any(suspects.values()):  # the outputs follow on the next evaluation: only a lasting mismatch counts
                await asyncio.sleep(0.2)
                await settle()
                for name, check in checks:
                    for mismatch in check(site.built):
                        if mismatch in suspects[name]:
                            site.report.add("violations", f"{name} at t={site.now():.1f}s: {mismatch}")

    async def run(self) -> StormReport:
        """Run every actor for ``hours`` of loop time, then clear what is held, prove it and summarize."""
        site = self.site
        report = site.report
        real0 = time.monotonic()
        monitor = InterlockMonitor(site.built)
        capture = _Capture(report, site.now)
        root = logging.getLogger()
        root.addHandler(capture)
        root_level = root.level
        if root.getEffectiveLevel() > logging.ERROR:
            root.setLevel(logging.ERROR)  # the capture must see every logged traceback
        old_handler = site.loop.get_exception_handler()

        def on_loop_error(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            exc = context.get("exception")
            tb = "" if exc is None else " | " + "".join(traceback.format_exception(exc)).strip().replace("\n", " | ")
            report.add("unhandled", f"t={site.now():.1f}s loop: {context.get('message')}{tb[-1500:]}")

        site.loop.set_exception_handler(on_loop_error)
        unsubscribe = site.runtime.events.subscribe(site.on_event)
        monitor.start()
        report.interlock_monitor = True
        self.memory.sample_memory()
        actors = [
            asyncio.ensure_future(site.guarded("injector", self.faults.injector())),
            asyncio.ensure_future(site.guarded("operator", self.traffic.operator())),
            asyncio.ensure_future(site.guarded("limits", self.traffic.limits())),
            asyncio.ensure_future(site.guarded("sampler", self.memory.sampler())),
            *(asyncio.ensure_future(site.guarded(f"cars {i}", self.traffic.car_actor(i))) for i in site.evse_ids),
        ]
        actors.append(asyncio.ensure_future(site.guarded("checker", self.checker(monitor))))
        episodes = self.faults.episodes
        try:
            await asyncio.sleep(self.hours * 3600.0)
            site.ending.set()  # faults held now are cleared at once and their recovery proven
            while episodes:
                await asyncio.gather(*list(episodes))
            for task in actors:
                task.cancel()
            await asyncio.gather(*actors, return_exceptions=True)
            self.memory.memory_summary()
            await settle()
            monitor.check_now()
            for violation in monitor.violations:
                report.add("violations", violation)
        finally:
            with contextlib.suppress(Exception):
                monitor.stop()
            unsubscribe()
            site.loop.set_exception_handler(old_handler)
            root.removeHandler(capture)
            root.setLevel(root_level)
            for task in [*actors, *episodes]:
                task.cancel()
        report.simulated_hours = round(site.now() / 3600.0, 4)
        report.real_seconds = round(time.monotonic() - real0, 2)
        report.energy_kwh = round(report.energy_kwh, 3)
        return report


async def run_storm(
    built: Any,
    *,
    hours: float,
    seed: int,
    settings: StormSettings | None = None,
    limits: BenchLimits | None = None,
    wall_clock: Callable[[], datetime] | None = None,
    trace_hours: float | None = None,
) -> StormReport:
    """Run a fault storm for ``hours`` of loop time against a started simulated ``built``.

    ``limits`` defaults to those of the embedded sim configuration, ``wall_clock`` to the runtime's
    own (reservation expiries must be on the clock the controller uses). Start tracemalloc before
    the build (``sim_storm`` does) for a memory slope that covers everything the build allocated;
    ``trace_hours`` stops it after that many hours (RSS and live blocks are sampled to the end).
    """
    if limits is None:
        from controller.config.loader import load_sim_default

        limits = BenchLimits.from_config(load_sim_default())
    wall = wall_clock if wall_clock is not None else built.runtime._wall
    site = Site(built, seed=seed, settings=settings or StormSettings(), limits=limits, wall_clock=wall)
    return await Storm(site, hours=hours, trace_hours=trace_hours).run()


async def sim_storm(
    *,
    hours: float,
    seed: int,
    config: ChargerConfig | None = None,
    settings: StormSettings | None = None,
    state_dir: Path | None = None,
    trace_hours: float | None = None,
    trace_frames: int = 1,
    pilots: bool = False,
) -> StormReport:
    """Start tracemalloc, build and start the sim charger on the running loop, storm it, stop it.

    Run it on a ``hil.timewarp`` loop: ``run_warped(sim_storm(hours=24, seed=1))``. Tracing about
    doubles the run time: ``trace_hours`` limits it to the first hours (None: all, 0: none). Without a
    ``config`` the embedded one: the plug-line charger, or with ``pilots`` the one with a control pilot on both
    EVSEs (sampled every 20 ms of loop time: a simulated hour takes two to three times as long; storm it with
    ``hil.storm.settings.pilot_settings()``).
    """
    import controller.runtime.build
    from controller.config.loader import load_sim_default, without_pilots

    if config is None:
        config = load_sim_default() if pilots else without_pilots(load_sim_default())
    if not config.controller.simulated:
        raise ValueError("a fault storm needs a simulated configuration (controller.simulated = true)")
    started_tracing = trace_hours != 0 and not tracemalloc.is_tracing()
    if started_tracing:
        tracemalloc.start(trace_frames)
    loop = asyncio.get_running_loop()
    clock: Any = getattr(loop, "clock", None)
    wall = clock.wall(START_UTC) if clock is not None else (lambda: START_UTC + timedelta(seconds=loop.time()))
    pymodbus_log = logging.getLogger("pymodbus")
    pymodbus_level = pymodbus_log.level
    pymodbus_log.setLevel(logging.CRITICAL)  # as `charger-controller run` has it: pymodbus' frame dumps are noise
    with _state_dir(state_dir) as directory:
        built = await controller.runtime.build.build(config, state_dir=directory, wall_clock=wall, mono_clock=loop.time)
        try:
            await built.start()
            return await run_storm(
                built, hours=hours, seed=seed, settings=settings, limits=BenchLimits.from_config(config),
                wall_clock=wall, trace_hours=trace_hours,
            )
        finally:
            await built.stop()
            pymodbus_log.setLevel(pymodbus_level)
            if started_tracing and tracemalloc.is_tracing():
                tracemalloc.stop()


@contextlib.contextmanager
def _state_dir(given: Path | None) -> Iterator[Path]:
    """The given state directory, or a temporary one removed afterwards."""
    if given is not None:
        yield given
        return
    with tempfile.TemporaryDirectory(prefix="storm-") as tmp:
        yield Path(tmp)
