"""Time the reservation core: the max-flow core against EVerest's brute force, and at depot scale.

Prints one JSON object. ``cases``: sites seeded-random with 4-6 connector kinds, each filled with
global reservations, then the next decision is timed; the brute-force oracle (tests/oracle.py) is
timed only where one call finishes within 10 s. ``depot_scale`` (benchmarks/depot_scale.py): every
operation at 200, 1,000 and 5,000 EVSEs, median and p99, the incremental core against the legacy
one (tests/legacy) in the same run, their decisions compared call by call.

    python benchmarks/feasibility.py [--repeat N] [--cycles N] [--legacy-cycles N N N] [--depot-only]
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from depot_scale import run_size
from oracle import oracle_is_feasible

from controller.core.feasibility import Feasibility, is_feasible
from controller.core.reservation import ReservationCore
from controller.core.types import Connector, ConnectorType, Reservation, ReservationResult

KINDS = [
    ConnectorType.cType2,
    ConnectorType.cCCS2,
    ConnectorType.cCCS1,
    ConnectorType.cType1,
    ConnectorType.cTesla,
    ConnectorType.sType2,
]
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
ORACLE_LIMIT_S = 10.0


class Timeout(Exception):
    """One oracle call ran past its limit."""


def _alarm(_signum: int, _frame: FrameType | None) -> None:
    raise Timeout


def make_site(n_evses: int, n_kinds: int, rng: random.Random) -> dict[int, list[Connector]]:
    """EVSEs with 1 (60 %), 2 (30 %) or 3 (10 %) connectors of the first n_kinds types."""
    kinds = KINDS[:n_kinds]
    site = {}
    for evse in range(1, n_evses + 1):
        types = rng.sample(kinds, rng.choices([1, 2, 3], weights=[6, 3, 1])[0])
        site[evse] = [Connector(i, t) for i, t in enumerate(types, start=1)]
    return site


def reservation(rid: int, kind: ConnectorType) -> Reservation:
    return Reservation(rid, f"TOKEN{rid}", NOW + timedelta(hours=1), None, None, kind)


def fill(core: ReservationCore, n_kinds: int, rng: random.Random, limit: int | None) -> int:
    """Add global reservations of shuffled kinds until ``limit`` are held or no kind is accepted any more."""
    held, rid = 0, 1000
    while limit is None or held < limit:
        accepted = False
        for kind in rng.sample(KINDS[:n_kinds], n_kinds):
            rid += 1
            if core.reserve_now(reservation(rid, kind)) is ReservationResult.ACCEPTED:
                held, accepted = held + 1, True
                if held == limit:
                    break
        if not accepted:
            break
    return held


def time_calls(core: ReservationCore, kinds: list[ConnectorType], evses: list[int], repeat: int) -> dict[str, float]:
    """Median ms of deciding the next global reservation and of is_charging_possible."""
    reserve: list[float] = []
    charge: list[float] = []
    for i in range(repeat):
        r = reservation(1, kinds[i % len(kinds)])
        start = time.perf_counter()
        result = core.reserve_now(r)
        reserve.append((time.perf_counter() - start) * 1000)
        if result is ReservationResult.ACCEPTED:
            core.cancel_reservation(1)
        evse = evses[i % len(evses)]
        start = time.perf_counter()
        core.is_charging_possible(evse)
        charge.append((time.perf_counter() - start) * 1000)
    return {"reserve_now": statistics.median(reserve), "is_charging_possible": statistics.median(charge)}


def build(site: dict[int, list[Connector]], feasibility: Feasibility) -> ReservationCore:
    return ReservationCore(site, clock=lambda: NOW, feasibility=feasibility)


def run_case(n_evses: int, n_kinds: int, limit: int | None, repeat: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    site = make_site(n_evses, n_kinds, rng)
    core = build(site, is_feasible)
    held = fill(core, n_kinds, random.Random(seed + 1), limit)
    kinds = KINDS[:n_kinds]
    evses = list(site)
    case: dict[str, Any] = {
        "evses": n_evses,
        "connector_kinds": n_kinds,
        "global_reservations": held,
        "core_median_ms": time_calls(core, kinds, evses, repeat),
        "oracle_median_ms": None,
        "speedup": None,
    }
    live = core.reservations()

    def oracle_round(n: int) -> dict[str, float]:
        oracle = build(site, oracle_is_feasible)
        for r in live:  # same reservations, same arrival order (untimed, but inside the limit)
            oracle.reserve_now(r)
        return time_calls(oracle, kinds, evses, n)

    oracle_times = _time_oracle(oracle_round, repeat)
    if oracle_times is not None:
        case["oracle_median_ms"] = oracle_times
        case["speedup"] = {k: round(oracle_times[k] / max(v, 1e-9), 1) for k, v in case["core_median_ms"].items()}
    case["core_median_ms"] = {k: round(v, 4) for k, v in case["core_median_ms"].items()}
    if oracle_times is not None:
        case["oracle_median_ms"] = {k: round(v, 4) for k, v in oracle_times.items()}
    return case


def _time_oracle(timed: Callable[[int], dict[str, float]], repeat: int) -> dict[str, float] | None:
    """Time the oracle if one round finishes within the limit; fewer rounds when it is slow."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    try:
        signal.setitimer(signal.ITIMER_REAL, ORACLE_LIMIT_S)
        start = time.perf_counter()
        first = timed(1)
        signal.setitimer(signal.ITIMER_REAL, 0)
        one_round = time.perf_counter() - start
        rounds = max(1, min(repeat, int(ORACLE_LIMIT_S / max(one_round, 1e-6))))
        if rounds == 1:
            return first
        signal.setitimer(signal.ITIMER_REAL, ORACLE_LIMIT_S * 3)
        result = timed(rounds)
        signal.setitimer(signal.ITIMER_REAL, 0)
        return result
    except Timeout:
        return None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=31, help="timed calls per case (median)")
    parser.add_argument("--cycles", type=int, default=60, help="depot scale: operation cycles per seed")
    parser.add_argument(
        "--legacy-cycles",
        type=int,
        nargs=3,
        default=[20, 6, 2],
        help="depot scale: cycles also run on the legacy "
        "core, per seed, at 200, 1,000 and 5,000 EVSEs (it takes seconds per call at 5,000)",
    )
    parser.add_argument("--depot-only", action="store_true", help="only the depot-scale part")
    args = parser.parse_args()
    depot = [
        run_size(n, [n + 1, n + 2, n + 3], args.cycles, legacy, KINDS, NOW)
        for n, legacy in zip([200, 1_000, 5_000], args.legacy_cycles, strict=True)
    ]
    by_size = {d["evses"]: d["new"] for d in depot}
    depot_targets = {
        "1000_evses_every_median_under_2ms": all(v["median_ms"] < 2.0 for v in by_size[1_000].values()),
        "1000_evses_every_p99_under_10ms": all(v["p99_ms"] < 10.0 for v in by_size[1_000].values()),
        "5000_evses_every_median_under_5ms": all(v["median_ms"] < 5.0 for v in by_size[5_000].values()),
        "depot_decisions_identical_to_legacy": all(d["decisions_identical"] for d in depot),
    }
    if args.depot_only:
        print(
            json.dumps(
                {
                    "benchmark": "feasibility",
                    "python": sys.version.split()[0],
                    "depot_scale": depot,
                    "targets": depot_targets,
                }
            )
        )
        return
    cases = [
        run_case(8, 4, None, args.repeat, seed=8),
        run_case(12, 5, 4, args.repeat, seed=12),  # deciding the 5th global reservation
        run_case(12, 5, None, args.repeat, seed=12),
        run_case(50, 6, None, args.repeat, seed=50),
        run_case(200, 6, None, args.repeat, seed=200),
    ]
    big = cases[-1]
    fifth = cases[1]
    targets = {
        "200_evses_reservations_held": big["global_reservations"],
        "200_evses_reserve_now_under_5ms": big["core_median_ms"]["reserve_now"] < 5.0,
        # None: the oracle did not finish within 10 s, so the speedup exceeds 10 s / core time
        "12_evses_5th_reserve_now_speedup_at_least_1000": (
            None if fifth["speedup"] is None else fifth["speedup"]["reserve_now"] >= 1000
        ),
    }
    targets.update(depot_targets)
    print(
        json.dumps(
            {
                "benchmark": "feasibility",
                "python": sys.version.split()[0],
                "cases": cases,
                "targets": targets,
                "depot_scale": depot,
            }
        )
    )


if __name__ == "__main__":
    main()
