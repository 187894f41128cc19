"""The controller on the embedded sim config, started in this process, and what the latency benchmarks share:
a state directory per run, a call into its loop from a worker thread, and latency statistics."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import statistics
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from controller.config.loader import ChargerConfig, load_sim_default
from controller.runtime.build import Built, build

WAIT_S = 2.0  # an output that has not changed by then counts as missed


def ms_stats(samples_ns: list[int]) -> dict[str, Any]:
    """Median, p99 (nearest rank) and max in ms of nanosecond samples."""
    if not samples_ns:
        return {"median": None, "p99": None, "max": None, "n": 0}
    ordered = sorted(samples_ns)
    p99 = ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]
    return {
        "median": round(statistics.median(ordered) / 1e6, 4),
        "p99": round(p99 / 1e6, 4),
        "max": round(ordered[-1] / 1e6, 4),
        "n": len(ordered),
    }


def sim_config(plug_debounce_s: float | None) -> ChargerConfig:
    """The embedded sim config; ``plug_debounce_s`` (if given) replaces every plug's software debounce.

    Without control pilots: the benchmark drives the plug pins itself, so the plug line is the plug (as on a
    board whose CP is handled elsewhere; a simulated pilot would hold the plug state from its simulated car).
    """
    config = load_sim_default()
    evses = tuple(
        dataclasses.replace(
            e,
            pilot=None,
            plug=e.plug if plug_debounce_s is None else dataclasses.replace(e.plug, debounce_s=plug_debounce_s),
        )
        for e in config.evses
    )
    return dataclasses.replace(config, evses=evses)


@contextlib.asynccontextmanager
async def running(config: ChargerConfig) -> AsyncIterator[Built]:
    """The controller built from ``config``, started, with a throwaway state directory."""
    with tempfile.TemporaryDirectory(prefix="latency-") as state:
        built = await build(config, state_dir=Path(state))
        await built.start()
        try:
            await asyncio.sleep(0.3)  # let the first meter polls and lock moves settle
            yield built
        finally:
            await built.stop()


def in_loop(loop: asyncio.AbstractEventLoop, func: Callable[[], Any]) -> Any:
    """Run ``func`` in the controller's loop from a worker thread and return its result."""

    async def call() -> Any:
        result = func()
        if asyncio.iscoroutine(result):
            result = await result
        return result

    return asyncio.run_coroutine_threadsafe(call(), loop).result(WAIT_S)
