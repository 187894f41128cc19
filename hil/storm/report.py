"""A storm's accounting: ``StormReport``, the counts and findings its actors add, and the verdict it gives.

Findings (violations, unhandled exceptions, unrecovered faults, stuck cars) are kept up to
``MAX_LISTED`` each, the rest only counted, so a storm gone wrong for hours stays readable.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from typing import Any

log = logging.getLogger(__name__)

MAX_LISTED = 50  # failure lists keep this many entries (plus a count of the rest)


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
    pilot_events: dict[str, int] = field(default_factory=dict)  # "car_full", "car_pause", "local_limit", ...
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

    def add(self, what: str, entry: str) -> None:
        """Add a finding to the list ``what`` ("violations", "unhandled", ...), or count it past ``MAX_LISTED``."""
        items: list[str] = getattr(self, what)
        if len(items) < MAX_LISTED:
            items.append(entry)
            log.warning("storm %s: %s", what, entry)
        else:
            self.dropped[what] = self.dropped.get(what, 0) + 1

    def count(self, what: str, key: str, n: int = 1) -> None:
        """Add ``n`` to the counter ``key`` of the tally ``what`` ("faults_injected", "token_verdicts", ...)."""
        counts: dict[str, int] = getattr(self, what)
        counts[key] = counts.get(key, 0) + n
