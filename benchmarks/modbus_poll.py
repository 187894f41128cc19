"""Modbus meter polling: wire bytes per snapshot against the least possible, and snapshots per second.

For each shipped map, a SimulatedMeterServer serves RTU frames over loopback TCP (pyserial
socket://) behind a counting proxy; ModbusMeter reads it with no quiet gap. Bytes are counted on the
wire (RTU framing: request 8 bytes, response 5 + 2 * count). The minimum is computed here,
independently of the planner: a DP over the sorted registers of each function code.
Prints ONE JSON object. Run: python3 benchmarks/modbus_poll.py [--snapshots N] [--runs R]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drivers.interfaces import MeterSnapshot
from drivers.meter import ModbusMeter
from drivers.meter_map import MeterMap, builtin_models, load_builtin
from drivers.modbus_bus import BusTiming, ModbusBus
from drivers.sim.meter_server import SimTransport, SimulatedMeter, SimulatedMeterServer

REQUEST_BYTES = 8
RESPONSE_OVERHEAD = 5


def min_bytes_per_snapshot(meter_map: MeterMap) -> int:
    """The least RTU bytes any client needs to read every quantity of the map, honoring its limits."""
    total = 0
    for fc in sorted({q.function_code for q in meter_map.quantities.values()}):
        registers = sorted({address for q in meter_map.quantities.values() if q.function_code == fc
                            for address in range(q.address, q.address + q.count)})
        best = [0] + [sys.maxsize] * len(registers)
        for stop in range(1, len(registers) + 1):
            for start in range(stop):
                span = registers[stop - 1] - registers[start] + 1
                if span > meter_map.max_registers_per_request:
                    continue
                if not meter_map.bridge_gaps and span != stop - start:
                    continue
                best[stop] = min(best[stop], best[start] + REQUEST_BYTES + RESPONSE_OVERHEAD + 2 * span)
        total += best[-1]
    return total


async def measure(model: str, snapshots: int, runs: int) -> dict[str, Any]:
    """Poll one simulated meter ``runs`` times ``snapshots`` reads; wire counts and median rate."""
    meter_map = load_builtin(model)
    sim = SimulatedMeter(meter_map)
    sim.set_load([230.0, 231.0, 229.0][: meter_map.phases], [16.0, 15.0, 14.0][: meter_map.phases])
    async with SimulatedMeterServer(sim, SimTransport.RTU_SOCKET) as server:
        bus = ModbusBus(server.bus_config(f"bench-{model}", BusTiming(timeout_s=1.0, retries=0, quiet_s=0.0)))
        meter = ModbusMeter(model, bus, meter_map, sim.unit_id)
        try:
            if not isinstance(await meter.read(), MeterSnapshot):  # warm-up (connect)
                raise RuntimeError(f"{model}: simulated meter did not answer")
            rates = []
            server.reset_wire_stats()
            for _ in range(runs):
                start = time.perf_counter()
                for _ in range(snapshots):
                    result = await meter.read()
                    if not isinstance(result, MeterSnapshot):
                        raise RuntimeError(f"{model}: read failed during the benchmark: {result}")
                rates.append(snapshots / (time.perf_counter() - start))
            wire = server.wire
        finally:
            await bus.aclose()
    reads = snapshots * runs
    wire_bytes = (wire.request_bytes + wire.response_bytes) / reads
    minimum = min_bytes_per_snapshot(meter_map)
    return {
        "requests_per_snapshot": wire.request_frames / reads,
        "bytes_per_snapshot": wire_bytes,
        "min_bytes_per_snapshot": minimum,
        "ratio": round(wire_bytes / minimum, 4),
        "bytes_one_request_per_quantity": sum(REQUEST_BYTES + RESPONSE_OVERHEAD + 2 * q.count
                                              for q in meter_map.quantities.values()),
        "snapshots_per_s": round(statistics.median(rates), 1),
        "plan": [f"FC{r.function_code}@0x{r.address:04X}x{r.count}" for r in meter_map.plan],
    }


async def main(snapshots: int, runs: int) -> dict[str, Any]:
    """Measure every shipped map."""
    meters = {model: await measure(model, snapshots, runs) for model in builtin_models()}
    return {
        "benchmark": "modbus_poll",
        "transport": "RTU frames over loopback TCP (socket://) to a pymodbus SimulatedMeterServer",
        "quiet_s": 0.0,
        "snapshots_per_run": snapshots,
        "runs": runs,
        "meters": meters,
        "max_ratio": max(m["ratio"] for m in meters.values()),
        "target_ratio": 1.10,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snapshots", type=int, default=200, help="reads per run (default 200)")
    parser.add_argument("--runs", type=int, default=5, help="runs per meter; the rate is their median")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    print(json.dumps(asyncio.run(main(args.snapshots, args.runs)), indent=2))
