"""The OCPP fronts on loopback, 2.0.1 and 1.6J side by side: ReserveNow round trip, ReserveNow -> StatusNotification
and -> reserved LED, draining queued meter values after a reconnect, and the idle cost of ``run --sim`` connected.

Prints one JSON object with the figures of each version under its subprotocol's name (``"ocpp2.0.1"``,
``"ocpp1.6"``), measured in one run, the versions one after the other, each against the bench's CSMS speaking it
(hil/csms.py with that ``version``: answers every CALL at once, schema checks off; times are ``time.monotonic()``
at the frame handed to the socket and at the frame read). The measurements are the same for both
(benchmarks/ocpp_phases.py); what differs is a driver's (benchmarks/ocpp_v201.py, benchmarks/ocpp_v16.py).

* ``daemon``: ``charger-controller run --sim --ocpp-url ws://127.0.0.1:PORT/ocpp --ocpp-id BENCH`` (1.6: with
  ``--ocpp-version 1.6``) as a subprocess, the CSMS in this process. Once it is connected and its
  StatusNotifications are in, ``idle_cpu_percent`` and ``rss_mb`` over ``--idle-seconds`` (nothing to say: the
  heartbeat is every 300 s). Then ``--pairs`` ReserveNow (EVSE 1 = 1.6 connectorId 1, 10 min) /
  CancelReservation pairs, each after the previous cancel's StatusNotification Available:
  ``reserve_now_rtt_ms`` is ReserveNow sent -> its CALLRESULT read, ``reserve_now_to_status_ms`` the same
  ReserveNow sent -> StatusNotification (EVSE 1, Reserved) read.
* ``in process``: the sim runtime and ``OcppFront`` as tests/ocpp/station_harness.py builds them, the CSMS in its
  own thread and event loop. ``reserve_now_to_led_ms``: ReserveNow sent -> the EVSE 1 reserved LED's mock pin
  (GPIO24) changes to on (a hook on the pin's ``_change_state``, as benchmarks/latency.py), ``--led-samples`` times.
* ``drain``: the same station; a transaction runs on EVSE 1, the CSMS goes down, and ``--drain`` meter values are
  queued through the station's own path: ``TransactionFlow.trigger`` (TriggerMessage's) makes them with the meter's
  readings (2.0.1: TransactionEvents Updated, offline = true; 1.6: MeterValues, context Trigger, transactionId
  filled in at send time) and the writer stores each in the durable queue (SQLite WAL, synchronous=FULL). The CSMS
  comes back; ``drain_msgs_per_s`` = N / (the Nth one read - the reconnection).

    python3 benchmarks/ocpp.py [--quick] [--version 2.0.1|1.6 ...] [--pairs N] [--led-samples N] [--drain N]
                               [--idle-seconds S] [--dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# This file is named like the ``ocpp`` library: take its folder off the front of the path (Python put it there) so
# ``import ocpp`` finds the library, and put it at the end, for its sibling modules. Hence the imports below (E402).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))
sys.path.append(str(HERE))

from ocpp_phases import daemon_phase, in_process_phase  # noqa: E402
from ocpp_v16 import Driver16  # noqa: E402
from ocpp_v201 import Driver  # noqa: E402

DRIVERS: dict[str, Driver] = {"2.0.1": Driver(), "1.6": Driver16()}
TARGETS = {"reserve_now_rtt_p99_ms": 10.0, "reserve_now_to_led_p99_ms": 20.0, "drain_msgs_per_s": 500.0,
           "idle_cpu_percent": 1.0, "rss_mb": 90.0}


# ------------------------------------------------------------------ main


def filesystem(path: Path) -> str:
    """The filesystem type a path lives on (the longest matching mount point), for the fsync-bound drain."""
    mounts = [line.split() for line in Path("/proc/mounts").read_text().splitlines()]
    found = [(len(m[1]), m[2]) for m in mounts if len(m) > 2 and str(path.resolve()).startswith(m[1])]
    return max(found)[1] if found else "unknown"


def targets(daemon: dict[str, Any], station: dict[str, Any]) -> dict[str, Any]:
    """The headline figures of one version against the issue's targets."""
    figures = {"reserve_now_rtt_p99_ms": daemon["reserve_now_rtt_ms"]["p99"],
               "reserve_now_to_led_p99_ms": station["reserve_now_to_led_ms"]["p99"],
               "drain_msgs_per_s": station["drain_msgs_per_s"], "idle_cpu_percent": daemon["idle_cpu_percent"],
               "rss_mb": daemon["rss_mb"]}
    return {name: {"value": value, "target": f"{'>=' if name.startswith('drain') else '<'} {TARGETS[name]:g}",
                   "met": value is not None and (value >= TARGETS[name] if name.startswith("drain")
                                                  else value < TARGETS[name])}
            for name, value in figures.items()}


def measure(driver: Driver, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Every figure of one version, each phase on a fresh state directory."""
    daemon_dir, station_dir = tmp / driver.name / "daemon", tmp / driver.name / "station"
    daemon_dir.mkdir(parents=True)
    station_dir.mkdir(parents=True)
    daemon = asyncio.run(daemon_phase(driver, args.pairs, args.idle_seconds, daemon_dir))
    station = asyncio.run(in_process_phase(driver, args.led_samples, args.drain, station_dir))
    return {**daemon, **station, "csms": driver.csms_description, "targets": targets(daemon, station)}


def main() -> None:
    """Run the measurements of each version and print the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples (pairs 50, LED 50, drain 200, idle 3 s)")
    parser.add_argument("--version", action="append", choices=sorted(DRIVERS), dest="versions",
                        help="an OCPP version to measure (repeatable; default: 2.0.1 and 1.6)")
    parser.add_argument("--pairs", type=int, default=500, help="ReserveNow/CancelReservation pairs (default 500)")
    parser.add_argument("--led-samples", type=int, default=200, help="ReserveNow -> LED samples (default 200)")
    parser.add_argument("--drain", type=int, default=1000, help="queued meter values to drain (default 1000)")
    parser.add_argument("--idle-seconds", type=float, default=10.0, help="idle CPU/RSS window (default 10)")
    parser.add_argument("--dir", type=Path, default=None, help="where the state directories go (default: a temp dir)")
    args = parser.parse_args()
    logging.getLogger("controller").setLevel(logging.ERROR)  # the drain's outage: expected reconnect warnings
    if args.quick:
        args.pairs, args.led_samples, args.drain, args.idle_seconds = 50, 50, 200, 3.0
    versions = args.versions or list(DRIVERS)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="ocpp-bench-") as tmp:
        measured = {DRIVERS[v].name: measure(DRIVERS[v], args, Path(tmp)) for v in dict.fromkeys(versions)}
        fs = filesystem(Path(tmp))
    result = {
        "benchmark": "ocpp",
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "state_filesystem": fs,
        "load_average_1m": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2),
                            "note": "other processes on the machine share its CPUs: tails (p99) rise with the load"},
        **measured,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
