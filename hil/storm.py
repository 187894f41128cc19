"""Fault storms on the simulated bench: many simulated hours of cars, reservations and random faults.

``run_storm(built, hours=..., seed=...)`` drives a controller built on the simulated charger
(``controller.app.build`` with ``simulated = true``), best on a ``hil.timewarp`` loop so that a
simulated day passes in a few minutes; ``sim_storm`` builds one and ``python -m hil.storm`` runs
that and prints the ``StormReport`` as JSON. While it runs:

- cars come and go at every EVSE: a walk-in shows its token and plugs in, or a driver reserves
  (EVSE-specific or global), travels (sometimes too long: the reservation expires; sometimes the
  plans change and it is cancelled) and then shows the token; the car charges for minutes to an
  hour and a half, is stopped with the same token and unplugs once the socket lets the plug go;
  plugs sometimes bounce on the way in and out; some plug in after their authorization timed out;
- an operator places reservations nobody comes for, and cancels some;
- faults come at random and are each held for a random time, then cleared: meter silence, broken
  CRCs and late answers on the meter wire, the USB adapter vanishing and returning, plug input
  chatter, lock jams and a welded contactor (cleared by the repair plus the operator reset).

After every clear it proves recovery: within a bound derived from the configuration's hold times,
poll intervals and retry timings (``BenchLimits``) each affected EVSE is Available or Occupied with
no fault, and, where the bay is free and nothing is reserved, a probe session is accepted and
charges. A car that cannot start or leave within the bound while no fault is in force on its EVSE
is stuck. Unhandled exceptions (the loop's exception handler, log records carrying a traceback,
exceptions escaping the storm's actors), the safety interlocks (hil.interlocks: every coil and
lock-motor edge, and state checks every few seconds) and memory are watched throughout. Memory is
sampled once per simulated hour after ``gc.collect()``: tracemalloc's traced bytes (started before
the build; ``trace_hours`` stops it early, since it about doubles the run time), RSS and live
blocks; the slopes are least squares from hour 2 on.

Timing is real while the loop is busy, so a seed fixes the storm's decisions but not every
interleaving: two runs with one seed are alike, not identical.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import math
import random
import sys
import tempfile
import time
import traceback
import tracemalloc
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from controller.config_model import ChargerConfig
from controller.facade import SimFaultKind, TokenOutcome, TokenVerdict
from controller.types import Reservation, ReservationResult
from hil.interlocks import InterlockMonitor, reserved_led_matches_core

log = logging.getLogger(__name__)

STORM_KINDS = ("meter_silent", "meter_crc", "meter_late", "adapter_vanish", "plug_bounce", "lock_jam", "weld")
"""Every fault kind a storm can inject."""

HOLD_S: dict[str, tuple[float, float]] = {
    "meter_silent": (5.0, 600.0),
    "meter_crc": (5.0, 300.0),
    "meter_late": (5.0, 300.0),
    "adapter_vanish": (2.0, 600.0),
    "plug_bounce": (0.0, 0.0),  # the chatter is the whole fault
    "lock_jam": (60.0, 1800.0),  # shows only if the lock is driven meanwhile
    "weld": (60.0, 1800.0),  # until an operator has repaired it and pressed reset
}
"""(shortest, longest) simulated seconds a fault of each kind is held before it is cleared."""

START_UTC = datetime(2026, 3, 1, 6, 0, tzinfo=UTC)
MAX_LISTED = 50  # failure lists keep this many entries (plus a count of the rest)
_POLL_S = 0.5  # how often a waiting car or check looks at the EVSE (simulated s)
_OK_STATES = ("Available", "Occupied")


@dataclass(frozen=True)
class StormSettings:
    """The mix of traffic and faults (simulated seconds)."""

    kinds: tuple[str, ...] = STORM_KINDS
    fault_interval_mean_s: float = 240.0  # mean time between fault starts (site-wide)
    car_idle_mean_s: float = 1200.0  # mean time a bay stays empty between cars
    reservation_share: float = 0.5  # cars that reserve before they come
    global_share: float = 0.35  # of those, global (any EVSE) reservations
    charge_min_s: float = 180.0  # log-uniform between these
    charge_max_s: float = 5400.0
    plug_bounce_share: float = 0.3  # plug-ins and unplugs that bounce
    late_plug_share: float = 0.05  # cars that plug in after the authorization timed out
    operator_interval_mean_s: float = 1800.0  # reservations nobody comes for, and cancellations
    sample_interval_s: float = 3600.0  # memory sample period
    warmup_samples: int = 2  # memory samples (hours) left out of the slope
    check_interval_s: float = 5.0  # state-level interlock and reserved-LED checks (edges are checked live)


@dataclass(frozen=True)
class BenchLimits:
    """Timing of the bench the checks need, derived from its configuration."""

    recovery_bound_s: float  # a cleared fault is gone (and a car can move on) within this
    plug_debounce_s: float
    authorize_timeout_s: float

    @classmethod
    def from_config(cls, config: ChargerConfig, margin_s: float = 5.0) -> BenchLimits:
        """Fault hold + meter staleness and polling + bus reconnect + contactor and lock retry timings."""
        ctl = config.controller
        meter_s = max(
            (e.meter.stale_after_s + 2 * e.meter.poll_interval_s for e in config.evses if e.meter is not None),
            default=0.0,
        )
        bus_s = max(
            (b.timing.reconnect_max_s + (b.timing.retries + 1) * b.timing.timeout_s for b in config.meter_buses),
            default=0.0,
        )
        contactor_s = max(e.contactor.fault_clear_s + e.contactor.supervision_timeout_s for e in config.evses)
        lock_s = max(
            ((e.lock.retries + 1) * (e.lock.pulse_s + e.lock.retry_backoff_s) for e in config.evses if e.lock),
            default=0.0,
        )
        return cls(
            recovery_bound_s=ctl.fault_hold_s + meter_s + bus_s + contactor_s + lock_s + margin_s,
            plug_debounce_s=min(e.plug.debounce_s for e in config.evses),
            authorize_timeout_s=ctl.authorize_timeout_s,
        )


@dataclass
class StormReport:
    """What a storm did and what went wrong; ``failures()`` is empty for a passing storm."""

    seed: int
    simulated_hours: float = 0.0
    real_seconds: float = 0.0
    kinds: list[str] = field(default_factory=list)
    recovery_bound_s: float = 0.0
    faults_injected: dict[str, int] = field(default_factory=dict)
    faults_seen: dict[str, int] = field(default_factory=dict)  # the controller reported a fault while held
    recoveries_verified: dict[str, int] = field(default_factory=dict)
    recovery_max_s: dict[str, float] = field(default_factory=dict)
    probes_charged: int = 0  # sessions accepted and charging right after a recovery
    probes_skipped: int = 0  # bay busy or reserved: the next car proves it instead
    weld_clears: dict[str, int] = field(default_factory=dict)  # "sim_clear" or "repair_and_reset"
    cars: int = 0
    sessions_started: int = 0  # the contactor closed for a car
    sessions_completed: int = 0  # charged, stopped with the token, unplugged and gone
    sessions_interrupted: int = 0  # charged until a fault ended it; still got its plug back and left
    energy_kwh: float = 0.0
    plug_bounces: int = 0  # bouncing plug-ins and unplugs of cars
    token_verdicts: dict[str, int] = field(default_factory=dict)
    reservations_requested: int = 0
    reservation_results: dict[str, int] = field(default_factory=dict)
    reservations_cancelled: int = 0  # by the operator or the driver (cancel returned True)
    reservation_ends: dict[str, int] = field(default_factory=dict)  # reason -> count (events)
    memory_samples: list[dict[str, float]] = field(default_factory=list)  # hour, traced_mb, rss_mb, blocks
    traced_hours: float = 0.0  # tracemalloc ran (from before the build) for this long
    memory_slope_mb_per_h: float | None = None  # tracemalloc bytes: least squares over hours 2..traced
    rss_slope_mb_per_h: float | None = None  # RSS over hours 2..end, or the untraced hours (allocator noise too)
    blocks_slope_per_h: float | None = None  # sys.getallocatedblocks() (live allocations), the same hours
    memory_peak_mb: float = 0.0  # tracemalloc's peak while tracing
    rss_peak_mb: float = 0.0
    memory_growth_top: list[str] = field(default_factory=list)  # tracemalloc: biggest growth after warm-up
    interlock_checks: int = 0  # state-level check rounds (the monitor also checks every coil/motor edge)
    interlock_monitor: bool = False
    violations: list[str] = field(default_factory=list)
    unhandled: list[str] = field(default_factory=list)
    unrecovered: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)  # list entries beyond MAX_LISTED

    def failures(self, *, max_slope_mb_per_h: float = 1.0) -> list[str]:
        """Every reason the storm failed, one line each."""
        out = [f"interlock violation: {v}" for v in self.violations]
        out += [f"unhandled exception: {u}" for u in self.unhandled]
        out += [f"unrecovered: {u}" for u in self.unrecovered]
        out += [f"stuck: {s}" for s in self.stuck]
        out += [f"{n} more {what} not listed" for what, n in self.dropped.items() if n]
        if not self.interlock_monitor:
            out.append("the interlock monitor (hil.interlocks) did not run")
        for what, slope in (("traced memory", self.memory_slope_mb_per_h), ("RSS", self.rss_slope_mb_per_h)):
            if slope is not None and slope >= max_slope_mb_per_h:
                out.append(f"{what} grows {slope:.3f} MB per simulated hour (limit {max_slope_mb_per_h})")
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the benchmarks/ convention)."""
        return {"name": "fault_storm", **asdict(self), "failures": self.failures()}

    def to_json(self, indent: int | None = None) -> str:
        """One JSON object."""
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False)


# ---------------------------------------------------------------- measurement helpers


def rss_mb() -> float | None:
    """Resident set size of this process from /proc (None where there is no /proc)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        return None
    return None


def least_squares_slope(points: list[tuple[float, float]]) -> float | None:
    """Slope of the least-squares line through (x, y) points; None for fewer than two distinct x."""
    if len(points) < 2:
        return None
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in points) / sxx


class _Capture(logging.Handler):
    """Keeps log records that carry a traceback: code that failed where it should not have."""

    def __init__(self, report: StormReport, sim_time: Callable[[], float]) -> None:
        super().__init__(logging.ERROR)
        self._report = report
        self._sim_time = sim_time

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info is None and record.levelno < logging.CRITICAL:
            return  # expected faults are logged as errors without a traceback
        detail = ""
        if record.exc_info is not None and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            detail = " | " + "".join(traceback.format_exception(exc)).strip().replace("\n", " | ")[-1500:]
        _add(self._report, "unhandled", f"t={self._sim_time():.1f}s {record.name}: {record.getMessage()}{detail}")


def _add(report: StormReport, what: str, entry: str) -> None:
    items: list[str] = getattr(report, what)
    if len(items) < MAX_LISTED:
        items.append(entry)
        log.warning("storm %s: %s", what, entry)
    else:
        report.dropped[what] = report.dropped.get(what, 0) + 1


# ---------------------------------------------------------------- the storm


class _Storm:
    """The actors of one storm and the bookkeeping they share."""

    def __init__(
        self,
        built: Any,
        *,
        hours: float,
        seed: int,
        settings: StormSettings,
        limits: BenchLimits,
        wall_clock: Callable[[], datetime],
    ) -> None:
        unknown = set(settings.kinds) - set(STORM_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)} (known: {', '.join(STORM_KINDS)})")
        self.built = built
        self.runtime = built.runtime
        self.plant = built.plant
        if self.plant is None or self.plant.server is None:
            raise ValueError("a fault storm needs the simulated plant with its meter server (simulated = true)")
        self.hours = hours
        self.seed = seed
        self.s = settings
        self.limits = limits
        self.wall = wall_clock
        self.loop = asyncio.get_running_loop()
        self.report = StormReport(seed=seed, kinds=list(settings.kinds), recovery_bound_s=limits.recovery_bound_s)
        self.evse_ids: list[int] = list(self.runtime.evse_ids())
        self.unit_of = {i: sim.meter.unit_id for i, sim in self.plant.evses.items() if sim.meter is not None}
        self.bays = {i: asyncio.Lock() for i in self.evse_ids}  # held by the car (or probe) using the EVSE
        self.plug_busy = {i: asyncio.Lock() for i in self.evse_ids}  # plug moves (cars, chatter) one at a time
        self.busy: set[str] = set()  # fault resources taken: "wire", "evse<N>"
        self.active = dict.fromkeys(self.evse_ids, 0)  # faults in force per EVSE
        self.quiet_since = dict.fromkeys(self.evse_ids, 0.0)  # when the last fault on it was cleared
        self.plug_changes = dict.fromkeys(self.evse_ids, 0)  # plugged_in flips seen in the event stream
        self.last_plugged: dict[int, Any] = {}
        self.ending = asyncio.Event()
        self.episodes: set[asyncio.Task[None]] = set()
        self.counter = 0
        self.next_rid = 1
        self.first_snapshot: Path | None = None  # the warm-up snapshot, dumped to a file
        self.trace_hours: float | None = None  # stop tracing after this many hours (None: never)
        self.t0 = self.loop.time()

    # ------------------------------------------------------------ small helpers

    def now(self) -> float:
        """Simulated seconds since the storm started."""
        return self.loop.time() - self.t0

    def rng(self, actor: str) -> random.Random:
        """An independent random stream per actor, so one actor's draws do not shift another's."""
        return random.Random(f"{self.seed}:{actor}")

    def count(self, what: str, key: str, n: int = 1) -> None:
        counts: dict[str, int] = getattr(self.report, what)
        counts[key] = counts.get(key, 0) + n

    def status(self, evse_id: int) -> dict[str, Any]:
        return self.runtime.evse_status(evse_id)  # type: ignore[no-any-return]

    async def sleep(self, seconds: float) -> bool:
        """Sleep simulated ``seconds``; returns early (True) when the storm is ending."""
        if self.ending.is_set():
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.ending.wait(), timeout=max(0.0, seconds))
            return True
        return False

    def new_token(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}-{self.counter}"

    def reservation_id(self) -> int:
        rid, self.next_rid = self.next_rid, self.next_rid + 1
        return rid

    def take(self, names: set[str]) -> bool:
        """Take fault resources, all or none."""
        if names & self.busy:
            return False
        self.busy |= names
        return True

    def on_event(self, event: dict[str, Any]) -> None:
        """Runtime events: reservation ends and plug flips."""
        kind = event.get("type")
        if kind == "reservation_end":
            self.count("reservation_ends", str(event.get("reason")))
        elif kind == "evse_state" and event.get("id") in self.plug_changes:
            evse_id, plugged = event["id"], event.get("plugged_in")
            if self.last_plugged.get(evse_id, plugged) != plugged:
                self.plug_changes[evse_id] += 1
            self.last_plugged[evse_id] = plugged

    async def guarded(self, name: str, coro: Awaitable[None]) -> None:
        """Run an actor; an exception escaping it is a finding (the controller's or the storm's)."""
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            tb = "".join(traceback.format_exception(exc)).strip().replace("\n", " | ")[-1500:]
            _add(self.report, "unhandled", f"t={self.now():.1f}s {name} raised: {tb}")

    # ------------------------------------------------------------ waiting with a fault-aware bound

    async def wait_for(self, evse_id: int, pred: Callable[[dict[str, Any]], bool], what: str) -> bool:
        """Wait until ``pred(status)``; reports the EVSE stuck once the bound has passed with no fault in force.

        The bound counts from the later of now and the last clear on this EVSE (twice the bound then:
        recovery first, the transition after). Keeps waiting after reporting, until the storm ends.
        """
        start = self.now()
        reported = False
        while True:
            if pred(self.status(evse_id)):
                return True
            if self.ending.is_set():
                return False
            if not reported and self.active[evse_id] == 0:
                bound = self.limits.recovery_bound_s
                deadline = max(start + bound, self.quiet_since[evse_id] + 2 * bound)
                if self.now() > deadline:
                    reported = True
                    st = self.status(evse_id)
                    _add(self.report, "stuck", f"t={self.now():.1f}s EVSE {evse_id}: {what} not within "
                         f"{self.now() - start:.1f}s (no fault in force): {_brief(st)}")
            await self.sleep(_POLL_S)

    # ------------------------------------------------------------ cars

    async def car_actor(self, evse_id: int) -> None:
        """Cars arrive at one bay, one after the other."""
        rng = self.rng(f"car{evse_id}")
        while not self.ending.is_set():
            if await self.sleep(rng.expovariate(1.0 / self.s.car_idle_mean_s)):
                return
            async with self.bays[evse_id]:
                await self.guarded(f"car at EVSE {evse_id}", self.visit(evse_id, rng))

    async def present(self, evse_id: int, token: str) -> TokenOutcome:
        outcome: TokenOutcome = await self.runtime.present_token(evse_id, token)
        self.count("token_verdicts", outcome.verdict.value)
        return outcome

    async def visit(self, evse_id: int, rng: random.Random) -> None:
        """One car: maybe reserve and travel, show the token, plug in, charge, stop, unplug, go."""
        self.report.cars += 1
        token = self.new_token(f"CAR{evse_id}")
        if rng.random() < self.s.reservation_share:
            is_global = rng.random() < self.s.global_share
            rid = self.reserve(token, None if is_global else evse_id, rng.uniform(900.0, 3600.0))
            if rid is not None:
                if rng.random() < 0.1:  # plans change: the driver cancels
                    await self.sleep(rng.uniform(60.0, 1200.0))
                    if self.runtime.cancel(rid):
                        self.report.reservations_cancelled += 1
                    return
                if await self.sleep(rng.uniform(60.0, 1800.0)):  # travel; beyond the expiry sometimes
                    return
        outcome = await self.present(evse_id, token)
        if not outcome.may_charge:
            return  # the driver goes elsewhere; a reservation left behind expires
        late = rng.random() < self.s.late_plug_share
        delay = self.limits.authorize_timeout_s + rng.uniform(1.0, 60.0) if late else rng.uniform(2.0, 40.0)
        if await self.sleep(delay):
            return
        energy0 = self.energy(evse_id)
        await self.plug(evse_id, True, rng)
        await self.wait_for(
            evse_id,
            lambda st: st["charging"] or st["phase"] in ("idle", "stopping", "unlocking"),
            "charging did not start (nor the session end)",
        )
        charged = bool(self.status(evse_id)["charging"])
        interrupted = False
        if charged:
            self.report.sessions_started += 1
            remaining = math.exp(rng.uniform(math.log(self.s.charge_min_s), math.log(self.s.charge_max_s)))
            while remaining > 0 and not interrupted:
                chunk = min(remaining, 300.0)
                if await self.sleep(chunk):
                    return
                remaining -= chunk
                interrupted = self.status(evse_id)["phase"] not in ("charging", "locking")
        if self.status(evse_id)["phase"] in ("locking", "charging"):
            await self.present(evse_id, token)  # the same token stops the session
        await self.leave(evse_id, rng)
        if charged and not self.ending.is_set():
            self.report.energy_kwh += max(0.0, self.energy(evse_id) - energy0)
            if interrupted:
                self.report.sessions_interrupted += 1
            else:
                self.report.sessions_completed += 1

    async def leave(self, evse_id: int, rng: random.Random) -> None:
        """Wait for the socket to let the plug go, then unplug."""
        sim = self.plant.evses[evse_id]
        await self.wait_for(
            evse_id,
            lambda st: st["phase"] == "idle" and (sim.lock is None or not sim.lock.locked),
            "the plug was not released after the session",
        )
        if not self.ending.is_set():
            await self.plug(evse_id, False, rng)

    def energy(self, evse_id: int) -> float:
        meter = self.plant.evses[evse_id].meter
        return 0.0 if meter is None else float(meter.energy_kwh)

    async def plug(self, evse_id: int, plugged: bool, rng: random.Random, *, bounce: bool | None = None) -> None:
        """Plug in or out, bouncing on the way sometimes; the plant then settles the plug for good."""
        async with self.plug_busy[evse_id]:
            if bounce if bounce is not None else rng.random() < self.s.plug_bounce_share:
                self.report.plug_bounces += 1
                await self.chatter(evse_id, plugged, rng)
            if plugged:
                await self.plant.plug(evse_id)
            else:
                await self.plant.unplug(evse_id)

    async def chatter(self, evse_id: int, final: bool, rng: random.Random) -> None:
        """The plug contact bounces: edges closer together than the debounce time, ending at ``final``."""
        pin = self.plant.evses[evse_id].plug
        edges = rng.randint(2, 12)
        for i in range(edges):
            pin.set(final if (edges - i) % 2 == 0 else not final)
            await asyncio.sleep(rng.uniform(0.1, 0.8) * self.limits.plug_debounce_s)
        pin.set(final)

    # ------------------------------------------------------------ reservations

    def reserve(self, token: str, evse_id: int | None, expires_in_s: float) -> int | None:
        """Place a reservation; its id when accepted."""
        rid = self.reservation_id()
        reservation = Reservation(rid, token, self.wall() + timedelta(seconds=expires_in_s), evse_id=evse_id)
        self.report.reservations_requested += 1
        result: ReservationResult = self.runtime.reserve(reservation)
        self.count("reservation_results", result.value)
        return rid if result is ReservationResult.ACCEPTED else None

    async def operator(self) -> None:
        """Reservations nobody comes for (they expire, or are cancelled), and cancellations."""
        rng = self.rng("operator")
        while not await self.sleep(rng.expovariate(1.0 / self.s.operator_interval_mean_s)):
            live = self.runtime.reservations()
            if live and rng.random() < 0.35:
                if self.runtime.cancel(rng.choice(live).reservation_id):
                    self.report.reservations_cancelled += 1
                continue
            evse = None if rng.random() < 0.4 else rng.choice(self.evse_ids)
            self.reserve(self.new_token("NOSHOW"), evse, rng.uniform(120.0, 5400.0))

    # ------------------------------------------------------------ faults

    async def injector(self) -> None:
        """Start a fault episode now and then; kinds and EVSEs at random, resources permitting."""
        rng = self.rng("faults")
        kinds = list(self.s.kinds)
        if not kinds:
            return
        turn = 0
        while not await self.sleep(rng.expovariate(1.0 / self.s.fault_interval_mean_s)):
            kind = kinds[turn % len(kinds)] if rng.random() < 0.5 else rng.choice(kinds)  # every kind, often
            turn += 1
            evse_id = rng.choice(self.evse_ids)
            lo, hi = HOLD_S[kind]
            hold = math.exp(rng.uniform(math.log(lo), math.log(hi))) if lo > 0 else 0.0
            episode_rng = random.Random(rng.random())
            episode = self.episode(kind, evse_id, hold, episode_rng)
            task = asyncio.ensure_future(self.guarded(f"{kind} episode", episode))
            self.episodes.add(task)
            task.add_done_callback(self.episodes.discard)

    def resources(self, kind: str, evse_id: int) -> tuple[set[str], list[int]]:
        """What an episode must own, and the EVSEs it affects."""
        if kind == "adapter_vanish":
            return {"wire", *(f"evse{i}" for i in self.evse_ids)}, list(self.evse_ids)
        if kind in ("meter_silent", "meter_crc", "meter_late"):
            # clear_wire_fault() clears the whole wire, so wire faults take turns
            return {"wire", f"evse{evse_id}"}, [evse_id]
        return {f"evse{evse_id}"}, [evse_id]

    async def episode(self, kind: str, evse_id: int, hold: float, rng: random.Random) -> None:
        """Inject one fault, hold it, clear it and prove the affected EVSEs recover."""
        names, affected = self.resources(kind, evse_id)
        if kind in ("meter_silent", "meter_crc", "meter_late") and evse_id not in self.unit_of:
            return
        if not self.take(names):
            return  # something else is going on there; the injector tries again later
        try:
            for i in affected:
                self.active[i] += 1
            started = self.now()
            self.count("faults_injected", kind)
            seen = await self.inject_and_hold(kind, evse_id, hold, affected, rng)
            if seen:
                self.count("faults_seen", kind)
            cleared_at = self.now()
            for i in affected:
                self.active[i] -= 1
                self.quiet_since[i] = cleared_at
            recovered = [i for i in affected if await self.verify_recovery(kind, i, started, cleared_at)]
            for i in recovered:
                if not self.ending.is_set():
                    await self.probe(kind, i, rng)
        finally:
            self.busy -= names

    async def inject_and_hold(self, kind: str, evse_id: int, hold: float, affected: list[int],
                              rng: random.Random) -> bool:
        """Inject, hold (watching whether the controller notices), clear. Returns whether it noticed."""
        server = self.plant.server
        sim = self.plant.evses[evse_id]
        unit = [self.unit_of[evse_id]] if evse_id in self.unit_of else []
        if kind == "plug_bounce":
            return await self.spurious_chatter(evse_id, rng)
        if kind == "meter_silent":
            server.go_silent(unit)
        elif kind == "meter_crc":
            server.corrupt_crc(unit)
        elif kind == "meter_late":
            server.answer_late(rng.uniform(0.2, 3.0), unit)  # sometimes still within the client timeout
        elif kind == "adapter_vanish":
            await server.vanish()
        elif kind == "lock_jam":
            if sim.lock is None:
                return False
            sim.lock.jam()
        elif kind == "weld":
            sim.contactor.weld()
        seen = False
        end = self.now() + hold
        while self.now() < end and not self.ending.is_set():
            seen = seen or any(self.status(i)["faults"] for i in affected)
            await self.sleep(min(1.0, end - self.now()))
        seen = seen or any(self.status(i)["faults"] for i in affected)
        if kind in ("meter_silent", "meter_crc", "meter_late"):
            server.clear_wire_fault()
        elif kind == "adapter_vanish":
            await server.reappear()
        elif kind in ("lock_jam", "weld"):
            await self.repair(kind, evse_id)
        return seen

    async def repair(self, kind: str, evse_id: int) -> None:
        """The technician repairs the mechanism and the operator resets the EVSE's faults.

        The sim's "clear" does both, but also clears every wire fault of the shared meter bus; while
        another EVSE's wire fault is in force the same two steps are taken one by one instead.
        """
        sim = self.plant.evses[evse_id]
        if "wire" not in self.busy and self.runtime.sim is not None:
            await self.runtime.sim.fault(evse_id, SimFaultKind.CLEAR)
            if kind == "weld":
                self.count("weld_clears", "sim_clear")
            return
        sim.contactor.repair()
        if sim.lock is not None:
            sim.lock.unjam()
        self.plant.tick()
        await self.runtime.reset_faults(evse_id)
        if kind == "weld":
            self.count("weld_clears", "repair_and_reset")

    async def spurious_chatter(self, evse_id: int, rng: random.Random) -> bool:
        """The plug contact chatters without the plug moving: no plug change may get through the debounce.

        Needs the runtime's evse_state events (plugged_in flips), which ``run`` subscribes to.
        """
        async with self.plug_busy[evse_id]:
            before = self.plug_changes[evse_id]
            plugged = self.plant.evses[evse_id].plugged
            await self.chatter(evse_id, plugged, rng)
            await asyncio.sleep(3 * self.limits.plug_debounce_s + 0.05)
            leaked = self.plug_changes[evse_id] != before
        if leaked:
            _add(self.report, "unrecovered", f"t={self.now():.1f}s EVSE {evse_id}: plug chatter shorter than the "
                 f"debounce changed the plugged state")
        return False  # chatter must never show: a leak is a failure (above), not a detection

    async def verify_recovery(self, kind: str, evse_id: int, started: float, cleared_at: float) -> bool:
        """Within the bound after the clear the EVSE is fault-free (Available or Occupied, no fault)."""
        bound = self.limits.recovery_bound_s
        while True:
            st = self.status(evse_id)
            if st["state"] in _OK_STATES and not st["faults"]:
                break
            if self.now() - cleared_at > bound:
                _add(self.report, "unrecovered", f"{kind} on EVSE {evse_id} (t={started:.1f}s..{cleared_at:.1f}s): "
                     f"still {_brief(st)} {self.now() - cleared_at:.1f}s after the clear (bound {bound:.1f}s)")
                return False
            await asyncio.sleep(0.25)  # not cut short by the end: the last clears are proven too
        took = self.now() - cleared_at
        self.count("recoveries_verified", kind)
        self.report.recovery_max_s[kind] = round(max(self.report.recovery_max_s.get(kind, 0.0), took), 3)
        return True

    async def probe(self, kind: str, evse_id: int, rng: random.Random) -> None:
        """A short session right after recovery: the EVSE must accept a token and charge."""
        bay = self.bays[evse_id]
        st = self.status(evse_id)
        if bay.locked() or st["plugged_in"] or st["reserved"] or st["phase"] != "idle" or self.runtime.reservations():
            self.report.probes_skipped += 1  # reservations could legitimately refuse a walk-in
            return
        async with bay:
            token = self.new_token("PROBE")
            outcome = await self.present(evse_id, token)
            if outcome.verdict is not TokenVerdict.ALLOWED:
                if outcome.verdict is TokenVerdict.REFUSED_EVSE_NOT_READY:
                    _add(self.report, "unrecovered", f"after {kind}: EVSE {evse_id} refused a session "
                         f"({outcome.reason}) at t={self.now():.1f}s")
                else:
                    self.report.probes_skipped += 1
                return
            await self.plug(evse_id, True, rng, bounce=False)
            ok = await self.wait_for(evse_id, lambda st: bool(st["charging"]), f"probe after {kind}: charging")
            if ok:
                self.report.probes_charged += 1
                await self.sleep(rng.uniform(5.0, 60.0))
            if self.status(evse_id)["phase"] in ("locking", "charging"):
                await self.present(evse_id, token)
            await self.leave(evse_id, rng)

    # ------------------------------------------------------------ memory

    def sample_memory(self) -> None:
        """One sample after a full collection: traced bytes (while tracing), RSS and live blocks."""
        gc.collect()
        sample = {"hour": round(self.now() / 3600.0, 3), "blocks": float(sys.getallocatedblocks())}
        if tracemalloc.is_tracing():
            sample["traced_mb"] = round(tracemalloc.get_traced_memory()[0] / 1e6, 4)
            self.report.traced_hours = sample["hour"]
            self.report.memory_peak_mb = round(max(self.report.memory_peak_mb,
                                                   tracemalloc.get_traced_memory()[1] / 1e6), 4)
        rss = rss_mb()
        if rss is not None:
            sample["rss_mb"] = round(rss, 2)
            self.report.rss_peak_mb = max(self.report.rss_peak_mb, sample["rss_mb"])
        self.report.memory_samples.append(sample)

    def take_first_snapshot(self) -> None:
        """The warm-up snapshot, kept in a file until the comparison (held in memory it would skew RSS)."""
        with tempfile.NamedTemporaryFile(prefix="storm-", suffix=".tracemalloc", delete=False) as f:
            self.first_snapshot = Path(f.name)
        snapshot = tracemalloc.take_snapshot()
        snapshot.dump(str(self.first_snapshot))
        del snapshot
        gc.collect()
        tracemalloc.reset_peak()  # the snapshot's own peak is not the controller's

    def snapshot_growth(self) -> None:
        """Name the lines whose memory grew most since the warm-up snapshot (while still tracing)."""
        path, self.first_snapshot = self.first_snapshot, None
        if path is None:
            return
        try:
            if tracemalloc.is_tracing():
                mine = [tracemalloc.Filter(False, tracemalloc.__file__)]  # the loaded snapshot itself
                first = tracemalloc.Snapshot.load(str(path)).filter_traces(mine)
                stats = tracemalloc.take_snapshot().filter_traces(mine).compare_to(first, "lineno")
                self.report.memory_growth_top = [str(stat) for stat in stats[:8]]
        finally:
            path.unlink(missing_ok=True)

    async def sampler(self) -> None:
        """Memory once per sample interval; tracing stops at ``trace_hours`` (it doubles the run time)."""
        n = 0
        while not await self.sleep(self.s.sample_interval_s):
            n += 1
            if n == self.s.warmup_samples and tracemalloc.is_tracing():
                self.take_first_snapshot()  # before the sample: its own traces are in the baseline
            self.sample_memory()
            if self.trace_hours is not None and tracemalloc.is_tracing() and self.now() >= self.trace_hours * 3600:
                self.snapshot_growth()
                tracemalloc.stop()

    def slope(self, key: str, from_hour: float) -> float | None:
        """Least-squares slope of one sampled quantity over the samples from ``from_hour`` on."""
        pts = [(s["hour"], s[key]) for s in self.report.memory_samples if key in s and s["hour"] >= from_hour - 1e-6]
        slope = least_squares_slope(pts)
        return None if slope is None else round(slope, 5)

    def memory_summary(self) -> None:
        report = self.report
        self.sample_memory()  # the end, after the last faults were cleared
        self.snapshot_growth()
        warmup_h = self.s.warmup_samples * self.s.sample_interval_s / 3600.0
        report.memory_slope_mb_per_h = self.slope("traced_mb", warmup_h)
        # tracing inflates RSS and the live blocks: where it stopped early, fit them on the untraced hours
        untraced_from = warmup_h if "traced_mb" in report.memory_samples[-1] else report.traced_hours + 1.0
        report.rss_slope_mb_per_h = self.slope("rss_mb", max(warmup_h, untraced_from))
        report.blocks_slope_per_h = self.slope("blocks", max(warmup_h, untraced_from))

    # ------------------------------------------------------------ interlocks

    async def checker(self, monitor: InterlockMonitor) -> None:
        """State-level interlock checks and the reserved LEDs against the core, with the loop settled."""
        while not await self.sleep(self.s.check_interval_s):
            await _settle()
            monitor.check_now()
            self.report.interlock_checks += 1
            suspects = reserved_led_matches_core(self.built)
            if suspects:  # the LED follows on the next evaluation: only a lasting mismatch counts
                await asyncio.sleep(0.2)
                await _settle()
                for mismatch in reserved_led_matches_core(self.built):
                    if mismatch in suspects:
                        _add(self.report, "violations", f"reserved-led at t={self.now():.1f}s: {mismatch}")

    # ------------------------------------------------------------ the whole run

    async def run(self) -> StormReport:
        report = self.report
        real0 = time.monotonic()
        monitor = InterlockMonitor(self.built)
        capture = _Capture(report, self.now)
        root = logging.getLogger()
        root.addHandler(capture)
        root_level = root.level
        if root.getEffectiveLevel() > logging.ERROR:
            root.setLevel(logging.ERROR)  # the capture must see every logged traceback
        old_handler = self.loop.get_exception_handler()

        def on_loop_error(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            exc = context.get("exception")
            tb = "" if exc is None else " | " + "".join(traceback.format_exception(exc)).strip().replace("\n", " | ")
            _add(report, "unhandled", f"t={self.now():.1f}s loop: {context.get('message')}{tb[-1500:]}")

        self.loop.set_exception_handler(on_loop_error)
        unsubscribe = self.runtime.events.subscribe(self.on_event)
        monitor.start()
        report.interlock_monitor = True
        self.sample_memory()
        actors = [
            asyncio.ensure_future(self.guarded("injector", self.injector())),
            asyncio.ensure_future(self.guarded("operator", self.operator())),
            asyncio.ensure_future(self.guarded("sampler", self.sampler())),
            *(asyncio.ensure_future(self.guarded(f"cars {i}", self.car_actor(i))) for i in self.evse_ids),
        ]
        actors.append(asyncio.ensure_future(self.guarded("checker", self.checker(monitor))))
        try:
            await asyncio.sleep(self.hours * 3600.0)
            self.ending.set()  # faults held now are cleared at once and their recovery proven
            while self.episodes:
                await asyncio.gather(*list(self.episodes))
            for task in actors:
                task.cancel()
            await asyncio.gather(*actors, return_exceptions=True)
            self.memory_summary()
            await _settle()
            monitor.check_now()
            for violation in monitor.violations:
                _add(report, "violations", violation)
        finally:
            with contextlib.suppress(Exception):
                monitor.stop()
            unsubscribe()
            self.loop.set_exception_handler(old_handler)
            root.removeHandler(capture)
            root.setLevel(root_level)
            for task in [*actors, *self.episodes]:
                task.cancel()
        report.simulated_hours = round(self.now() / 3600.0, 4)
        report.real_seconds = round(time.monotonic() - real0, 2)
        report.energy_kwh = round(report.energy_kwh, 3)
        return report


async def _settle() -> None:
    """Let callbacks already due (evaluations requested by the last changes) run first."""
    for _ in range(3):
        await asyncio.sleep(0)


def _brief(st: dict[str, Any]) -> str:
    """One line of an EVSE status for a finding."""
    keys = ("state", "phase", "faults", "plugged_in", "lock", "contactor", "reserved")
    return ", ".join(f"{k}={st.get(k)}" for k in keys)


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
        from controller.config import load_sim_default

        limits = BenchLimits.from_config(load_sim_default())
    wall = wall_clock if wall_clock is not None else built.runtime._wall
    storm = _Storm(built, hours=hours, seed=seed, settings=settings or StormSettings(), limits=limits, wall_clock=wall)
    storm.trace_hours = trace_hours
    return await storm.run()


async def sim_storm(
    *,
    hours: float,
    seed: int,
    config: ChargerConfig | None = None,
    settings: StormSettings | None = None,
    state_dir: Path | None = None,
    trace_hours: float | None = None,
    trace_frames: int = 1,
) -> StormReport:
    """Start tracemalloc, build and start the sim charger on the running loop, storm it, stop it.

    Run it on a ``hil.timewarp`` loop: ``run_warped(sim_storm(hours=24, seed=1))``. Tracing about
    doubles the run time: ``trace_hours`` limits it to the first hours (None: all, 0: none).
    """
    import controller.app
    from controller.config import load_sim_default

    config = config if config is not None else load_sim_default()
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
        built = await controller.app.build(config, state_dir=directory, wall_clock=wall, mono_clock=loop.time)
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
    if given is not None:
        yield given
        return
    with tempfile.TemporaryDirectory(prefix="storm-") as tmp:
        yield Path(tmp)


def main(argv: list[str] | None = None) -> int:
    """``python -m hil.storm --hours 24 --seed N [--json]``: exit 0 when the storm found nothing."""
    from controller.config import load_config
    from hil.timewarp import run_warped

    parser = argparse.ArgumentParser(prog="python -m hil.storm", description=__doc__.split("\n")[0])
    parser.add_argument("--hours", type=float, default=24.0, help="simulated hours (default 24)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: a random one)")
    parser.add_argument("--config", type=Path, default=None, help="a simulated charger config (default: embedded)")
    parser.add_argument("--kinds", default=",".join(STORM_KINDS), help="fault kinds, comma-separated")
    parser.add_argument("--trace-hours", type=float, default=None,
                        help="trace memory with tracemalloc for the first H hours (default: all; it about "
                             "doubles the run time; 0: RSS and live blocks only)")
    parser.add_argument("--json", action="store_true", help="print only the report, as one JSON object")
    parser.add_argument("--log-level", default="CRITICAL", help="controller log level on stderr (default quiet)")
    args = parser.parse_args(argv)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(args.log_level.upper())
    console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(console)
    logging.getLogger().setLevel(min(console.level, logging.WARNING))
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    config = load_config(args.config) if args.config is not None else None
    kinds = tuple(k for k in args.kinds.split(",") if k)
    settings = replace(StormSettings(), kinds=kinds)
    report = run_warped(sim_storm(hours=args.hours, seed=seed, config=config, settings=settings,
                                  trace_hours=args.trace_hours))
    if args.json:
        print(report.to_json())
    else:
        print(report.to_json(indent=2))
        failures = report.failures()
        print(f"{len(failures)} failure(s)" if failures else "storm passed", file=sys.stderr)
    return 1 if report.failures() else 0


if __name__ == "__main__":
    sys.exit(main())
