"""Control-pilot and stop timings on the real runtime of ``run --sim`` (its pilots, plant, meters and all).

* ``cp_to_contactor_open_ms``: the simulated car opens S2 (C -> B: the CP high phase goes from 6 V to 9 V at that
  instant) until the contactor's coil is commanded open. IEC 61851-1 Table A.6 sequence 8.1 allows 100 ms.
* ``stop_to_unlock_ms``: the session's token presented again (a stop) until the lock's feedback reads unlocked:
  the contactor opens, the meter is read out of turn, the unlock interlock is satisfied and the lock motor runs
  (the sim lock takes 0.08 s to travel). Before the out-of-turn reading this waited for the next 2 s poll.

Each is a median and p99 (nearest rank) over ``rounds`` cycles of plug, token, charge, measure, unplug.

    python3 benchmarks/pilot_timing.py [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from controller.config.loader import load_sim_default
from controller.runtime.build import Built, build
from drivers.interfaces import LockPosition

POLL_S = 0.0005


def stats(samples_ms: list[float]) -> dict[str, Any]:
    """Median and p99 (nearest rank) in ms."""
    if not samples_ms:
        return {"median": None, "p99": None, "n": 0}
    ordered = sorted(samples_ms)
    p99 = ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]
    return {"median": round(statistics.median(ordered), 2), "p99": round(p99, 2), "n": len(ordered)}


async def until(check: Callable[[], bool], timeout: float = 10.0) -> float:
    """Poll ``check`` every POLL_S; the monotonic time it first held."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("the controller did not react in time")
        await asyncio.sleep(POLL_S)
    return time.monotonic()


async def charging(built: Built, evse_id: int) -> None:
    """Plug, present a token and wait until the contactor is commanded closed."""
    runtime = built.runtime
    assert runtime.sim is not None
    hw = runtime._ctx.evse(evse_id).hw
    await runtime.sim.plug(evse_id)
    await until(lambda: runtime.evse_status(evse_id)["plugged_in"])
    await runtime.present_token(evse_id, "BENCH")
    await until(lambda: hw.contactor.report(time.monotonic()).commanded_closed)


async def measure(rounds: int) -> dict[str, Any]:
    """Both timings over ``rounds`` cycles on EVSE 1 of the simulated charger."""
    cp_ms: list[float] = []
    unlock_ms: list[float] = []
    with tempfile.TemporaryDirectory() as state:
        built = await build(load_sim_default(), state_dir=Path(state))
        await built.start()
        try:
            runtime = built.runtime
            assert runtime.sim is not None
            hw = runtime._ctx.evse(1).hw
            assert hw.pilot is not None and hw.lock is not None, "the sim charger needs a pilot and a lock"
            car = built.plant.evses[1].pilot.car
            for _ in range(rounds):
                await charging(built, 1)
                with car._lock:  # the car opens S2 now (C -> B), as a full battery does
                    car.full, car.s2_closed, car._s2_target, car._s2_change_at = True, False, False, None
                began = time.monotonic()
                opened = await until(lambda: not hw.contactor.report(time.monotonic()).commanded_closed)
                cp_ms.append(1000 * (opened - began))
                car.set_full(False)
                await until(lambda: hw.contactor.report(time.monotonic()).commanded_closed)  # back in C
                await asyncio.sleep(0.3)  # a reading with current flowing, as in a real stop
                began = time.monotonic()
                await runtime.present_token(1, "BENCH")
                released = await until(lambda: hw.lock.report().position is LockPosition.UNLOCKED)  # type: ignore[union-attr]
                unlock_ms.append(1000 * (released - began))
                await until(lambda: runtime.evse_status(1)["phase"] == "idle")
                await runtime.sim.unplug(1)
                await until(lambda: not runtime.evse_status(1)["plugged_in"])
        finally:
            await built.stop()
    return {"cp_to_contactor_open_ms": stats(cp_ms), "stop_to_unlock_ms": stats(unlock_ms)}


def main() -> None:
    """Print the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args.rounds)), indent=2))


if __name__ == "__main__":
    main()
