"""The durable OCPP message queue: enqueue and drain throughput on a real file with synchronous=FULL.

Prints one JSON object.

* ``enqueue_msgs_per_s``: ``MessageQueue.enqueue_transaction_event`` of N TransactionEvent-sized payloads, each
  committed (WAL, synchronous=FULL: one fsync per message) before the next starts.
* ``drain_msgs_per_s``: N queued messages delivered by ``drain()`` against an immediate in-memory ``send`` (the
  CSMS answers at once), from the first send until the queue is empty: peek + delivered per message, each
  removal durable, queue I/O in a worker thread as in the station. ``drain_msgs_per_s_durable_removals_false``: the
  same with ``MessageQueue(durable_removals=False)`` (removals committed without fsync: exact across SIGKILLs, a
  power cut may cause resends).

Each figure is the median of ``--runs`` runs on a fresh file in ``--dir`` (default: a temporary directory; point
it at the SD card to measure the Pi's real fsync cost).

    python3 benchmarks/ocpp_queue.py [--messages N] [--runs R] [--dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from controller.ocpp.station.delivery import SendOutcome, drain
from controller.ocpp.station.queue import MessageQueue, QueuedMessage


def transaction_event(seq_no: int) -> dict[str, Any]:
    """A TransactionEvent Updated of a realistic size (three meter values)."""
    return {
        "eventType": "Updated", "timestamp": "2025-01-01T12:00:00.000Z", "triggerReason": "MeterValuePeriodic",
        "seqNo": seq_no, "offline": False,
        "transactionInfo": {"transactionId": "tx-bench", "chargingState": "Charging"},
        "evse": {"id": 1, "connectorId": 1},
        "meterValue": [{"timestamp": "2025-01-01T12:00:00.000Z", "sampledValue": [
            {"value": 1234.5, "measurand": "Energy.Active.Import.Register", "unitOfMeasure": {"unit": "Wh"}},
            {"value": 7360.0, "measurand": "Power.Active.Import", "unitOfMeasure": {"unit": "W"}},
            {"value": 32.0, "measurand": "Current.Import", "phase": "L1", "unitOfMeasure": {"unit": "A"}},
        ]}],
    }


def enqueue_rate(path: Path, messages: int) -> float:
    """Messages per second for ``messages`` durable enqueues on a fresh file."""
    queue = MessageQueue(path)
    try:
        start = time.perf_counter()
        for _ in range(messages):
            queue.enqueue_transaction_event("tx-bench", transaction_event, droppable=True)
        return messages / (time.perf_counter() - start)
    finally:
        queue.close()


async def drain_rate(path: Path, durable_removals: bool = True) -> tuple[float, int]:
    """Messages per second for draining the queue at ``path`` with an immediate send; and how many were sent."""
    queue = MessageQueue(path, durable_removals=durable_removals)
    total = queue.pending_count()
    done = asyncio.Event()
    sent = 0

    async def send(message: QueuedMessage) -> SendOutcome:
        nonlocal sent
        message.payload_to_send()
        sent += 1
        if sent == total:
            done.set()
        return SendOutcome.delivered()

    online = asyncio.Event()
    online.set()
    start = time.perf_counter()
    task = asyncio.create_task(drain(queue, send, max_attempts=lambda: 3, retry_interval_s=lambda: 60.0, online=online))
    await done.wait()
    while queue.pending_count():  # the last removal is recorded after its send returned
        await asyncio.sleep(0)
    elapsed = time.perf_counter() - start
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    queue.close()
    return total / elapsed, sent


def main() -> None:
    """Run the measurements and print the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000, help="messages per run (default 1000)")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure; the median is reported (default 3)")
    parser.add_argument("--dir", type=Path, default=None, help="where the files go (default: a temporary directory)")
    args = parser.parse_args()
    enqueue_runs: list[float] = []
    drain_runs: list[float] = []
    relaxed_runs: list[float] = []
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="ocpp-queue-bench-") as tmp:
        for run in range(args.runs):
            path = Path(tmp) / f"run{run}.db"
            enqueue_runs.append(enqueue_rate(path, args.messages))
            rate, sent = asyncio.run(drain_rate(path))
            if sent != args.messages:
                raise SystemExit(f"drain sent {sent} of {args.messages} messages")
            drain_runs.append(rate)
            relaxed_path = Path(tmp) / f"run{run}-relaxed.db"
            enqueue_rate(relaxed_path, args.messages)
            rate, sent = asyncio.run(drain_rate(relaxed_path, durable_removals=False))
            if sent != args.messages:
                raise SystemExit(f"drain sent {sent} of {args.messages} messages")
            relaxed_runs.append(rate)
    result = {
        "benchmark": "ocpp_queue",
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "messages": args.messages,
        "runs": args.runs,
        "synchronous": "FULL",
        "journal_mode": "WAL",
        "enqueue_msgs_per_s": round(statistics.median(enqueue_runs), 1),
        "drain_msgs_per_s": round(statistics.median(drain_runs), 1),
        "drain_msgs_per_s_durable_removals_false": round(statistics.median(relaxed_runs), 1),
        "enqueue_runs": [round(r, 1) for r in enqueue_runs],
        "drain_runs": [round(r, 1) for r in drain_runs],
        "drain_runs_durable_removals_false": [round(r, 1) for r in relaxed_runs],
        "target_drain_msgs_per_s": 500,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
