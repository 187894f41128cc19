"""The OCPP 2.0.1 front on loopback: ReserveNow round trip, ReserveNow -> StatusNotification and -> reserved LED,
draining queued TransactionEvents after a reconnect, and the idle cost of ``run --sim`` connected to a CSMS.

Prints one JSON object, measured in one run against the bench's CSMS (hil/csms.py: answers every CALL at once,
schema checks off; times are ``time.monotonic()`` at the frame handed to the socket and at the frame read).

* ``daemon``: ``charger-controller run --sim --ocpp-url ws://127.0.0.1:PORT/ocpp --ocpp-id BENCH`` as a
  subprocess, the CSMS in this process. Once it is connected and its StatusNotifications are in, ``idle_cpu_percent``
  and ``rss_mb`` over ``--idle-seconds`` (nothing to say: the heartbeat is every 300 s). Then ``--pairs``
  ReserveNow (EVSE 1, 10 min) / CancelReservation pairs, each after the previous cancel's StatusNotification
  Available: ``reserve_now_rtt_ms`` is ReserveNow sent -> its CALLRESULT read, ``reserve_now_to_status_ms`` the
  same ReserveNow sent -> StatusNotification (EVSE 1, Reserved) read.
* ``in process``: the sim runtime and ``OcppFront`` as tests/ocpp/station_harness.py builds them, the CSMS in its
  own thread and event loop. ``reserve_now_to_led_ms``: ReserveNow sent -> the EVSE 1 reserved LED's mock pin
  (GPIO24) changes to on (a hook on the pin's ``_change_state``, as benchmarks/latency.py), ``--led-samples`` times.
* ``drain``: the same station; a transaction runs on EVSE 1, the CSMS goes down, and ``--drain`` TransactionEvents
  are queued through the station's own path: TriggerMessage TransactionEvent's ``TransactionFlow.trigger`` makes
  an Updated event with meter values (offline = true) and the writer stores it in the durable queue (SQLite WAL,
  synchronous=FULL). The CSMS comes back; ``drain_msgs_per_s`` = N / (the Nth event read - the reconnection).

    python3 benchmarks/ocpp.py [--quick] [--pairs N] [--led-samples N] [--drain N] [--idle-seconds S] [--dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import json
import logging
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

HERE = Path(__file__).resolve().parent
# This file is named like the ``ocpp`` library: take its folder off the front of the path (Python put it there) so
# ``import ocpp`` finds the library, and put it at the end, for idle_daemon. Hence the imports below this (E402).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))
sys.path.append(str(HERE))

from idle_daemon import free_port, proc_cpu_s, proc_memory_mb  # noqa: E402

from controller.config.loader import load_sim_default  # noqa: E402
from controller.config.ocpp_model import OcppConfig  # noqa: E402
from controller.ocpp.front import OcppFront  # noqa: E402
from controller.runtime.build import build  # noqa: E402
from hil.csms import HarnessCsms, Received, ocpp_time  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {"reserve_now_rtt_p99_ms": 10.0, "reserve_now_to_led_p99_ms": 20.0, "drain_msgs_per_s": 500.0,
           "idle_cpu_percent": 1.0, "rss_mb": 90.0}
TIMEOUT_S = 10.0
T = TypeVar("T")


def ms_stats(samples_s: list[float]) -> dict[str, Any]:
    """Median, p99 (nearest rank) and max in ms of samples in seconds."""
    if not samples_s:
        return {"median": None, "p99": None, "max": None, "n": 0}
    ordered = sorted(samples_s)
    p99 = ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]
    return {"median": round(statistics.median(ordered) * 1000, 3), "p99": round(p99 * 1000, 3),
            "max": round(ordered[-1] * 1000, 3), "n": len(ordered)}


def reserve_now(reservation_id: int) -> dict[str, Any]:
    """A ReserveNow for EVSE 1, ten minutes long."""
    return {"id": reservation_id, "evseId": 1, "idToken": {"idToken": "BENCH-TOKEN", "type": "ISO14443"},
            "expiryDateTime": ocpp_time(datetime.now(UTC) + timedelta(minutes=10))}


async def until(check: Callable[[], T | None], what: str, timeout: float = TIMEOUT_S, every: float = 0.001) -> T:
    """Poll ``check`` every ``every`` s until it gives something (RuntimeError naming ``what`` on timeout); only
    where the loop is not the station's (the daemon phase) or outside what is measured."""
    deadline = time.monotonic() + timeout
    while (found := check()) is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(every)
    return found


def status_after(csms: HarnessCsms, status: str, since: float) -> Callable[[], Received | None]:
    """A probe for the first StatusNotification (EVSE 1, ``status``) read at or after ``since``."""

    def probe() -> Received | None:
        """Such a StatusNotification read at or after ``since`` (one per pair), scanning back from the newest."""
        for message in reversed(csms.received):
            if message.at < since:
                return None
            payload = message.payload
            if (message.action == "StatusNotification" and payload.get("evseId") == 1
                    and payload.get("connectorStatus") == status):
                return message
        return None

    return probe


# ------------------------------------------------------------------ the daemon as a subprocess


async def daemon_phase(pairs: int, idle_seconds: float, state_dir: Path) -> dict[str, Any]:
    """RSS and idle CPU of ``run --sim --ocpp-url`` connected, then ReserveNow round trips and status latencies."""
    csms = await HarnessCsms(validate=False).start()
    command = [sys.executable, "-m", "controller.cli", "run", "--sim", "--ocpp-url", csms.url, "--ocpp-id", "BENCH",
               "--api", f"127.0.0.1:{free_port()}", "--state-dir", str(state_dir)]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        started = time.monotonic()
        await until(lambda: True if csms.connected.is_set() and {(1, 1), (2, 1)} <= set(csms.statuses) else None,
                    "the daemon to connect and report its connectors", 30.0)
        connected_s = time.monotonic() - started
        await asyncio.sleep(1.0)  # start-up lock moves and first meter polls are not idle
        cpu0, t0 = proc_cpu_s(proc.pid), time.monotonic()
        await asyncio.sleep(idle_seconds)
        cpu1, t1 = proc_cpu_s(proc.pid), time.monotonic()
        memory = proc_memory_mb(proc.pid)
        idle_messages = len([m for m in csms.received if m.at >= t0])

        rtt, to_status, refused = [], [], 0
        for n in range(pairs):
            answer = await csms.call("ReserveNow", reserve_now(n))
            if answer.payload.get("status") != "Accepted":
                refused += 1
            else:
                rtt.append(answer.answered_at - answer.sent_at)
                reserved = await until(status_after(csms, "Reserved", answer.sent_at), "StatusNotification Reserved")
                to_status.append(reserved.at - answer.sent_at)
            cancel = await csms.call("CancelReservation", {"reservationId": n})
            if answer.payload.get("status") == "Accepted":
                await until(status_after(csms, "Available", cancel.sent_at), "StatusNotification Available")
        memory_after = proc_memory_mb(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        await csms.stop()
    return {
        "reserve_now_rtt_ms": ms_stats(rtt),
        "reserve_now_to_status_ms": ms_stats(to_status),
        "reserve_now_refused": refused,
        "idle_cpu_percent": round(100 * (cpu1 - cpu0) / (t1 - t0), 3),
        "rss_mb": memory.get("VmRSS"),
        "daemon": {
            "connected_and_reported_s": round(connected_s, 3),
            "idle_seconds": round(t1 - t0, 1),
            "messages_while_idle": idle_messages,
            "rss_peak_mb": memory.get("VmHWM"),
            "rss_after_pairs_mb": memory_after.get("VmRSS"),
            "command": "python -m controller.cli run --sim --ocpp-url ws://127.0.0.1:PORT/ocpp --ocpp-id BENCH "
                       "--api 127.0.0.1:PORT --state-dir DIR",
        },
    }


# ------------------------------------------------------------------ the station in this process


class CsmsThread:
    """The CSMS in its own thread and event loop, so the station's loop carries only the station."""

    def __init__(self) -> None:
        """Start the loop's thread and the CSMS in it."""
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="csms", daemon=True)
        self.thread.start()
        self.csms: HarnessCsms = self.run_sync(HarnessCsms(validate=False).start())

    def run_sync(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine in the CSMS's loop and wait for it (from a thread that is not that loop's)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(TIMEOUT_S * 3)

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine in the CSMS's loop, awaited from another loop."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def close(self) -> None:
        """Stop the CSMS and its loop."""
        with contextlib.suppress(Exception):
            self.run_sync(self.csms.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


class PinProbe:
    """The monotonic time of every change of a mock pin, by a hook on its ``_change_state`` (called in the station's
    loop, where the runtime sets its outputs); ``reaches`` is woken by the hook, so waiting costs the loop nothing."""

    def __init__(self, pin: Any) -> None:
        """Hook ``pin`` (a MockPin) until ``unhook``."""
        self.pin = pin
        self._original = pin._change_state
        self.changes: list[tuple[float, float]] = []
        self._changed = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        pin._change_state = self._change_state

    def _change_state(self, value: Any) -> bool:
        """The pin's own change, timed when it really changed."""
        changed = bool(self._original(value))
        if changed:
            self.changes.append((time.monotonic(), float(value)))
            self._loop.call_soon_threadsafe(self._changed.set)
        return changed

    def first(self, level: float, since: float) -> float | None:
        """When the pin first took ``level`` at or after ``since``."""
        return next((t for t, v in reversed(self.changes) if t >= since and v == level), None)

    async def reaches(self, level: float, since: float, what: str) -> float:
        """Wait until the pin took ``level`` at or after ``since``; when it did."""
        try:
            async with asyncio.timeout(2.0):
                while (seen := self.first(level, since)) is None:
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise RuntimeError(f"timed out waiting for {what}") from None
        return seen

    def unhook(self) -> None:
        """Give the pin its own ``_change_state`` back."""
        self.pin._change_state = self._original


async def in_process_phase(led_samples: int, drain_count: int, state_dir: Path) -> dict[str, Any]:
    """ReserveNow -> reserved LED, then the drain of ``drain_count`` queued TransactionEvents after a reconnect."""
    server = CsmsThread()
    csms = server.csms
    config = load_sim_default()
    ocpp = OcppConfig(url=csms.url, host="127.0.0.1", port=csms.port, tls=False, station_id="BENCH", version="2.0.1",
                      reservations=True, non_evse_specific_reservations=True, security_profile=0, password=None,
                      ca_file=None, reconnect_min_s=0.05, reconnect_max_s=0.5)
    built = await build(config, state_dir=state_dir)
    await built.start()
    front = OcppFront(built.runtime, ocpp, state_dir)
    await front.start()
    led = config.evse(1).indicator
    probe = PinProbe(built.pin_factory.pin(led.reserved_pin))
    on = 1.0 if led.reserved_active_high else 0.0
    try:
        await until(lambda: True if csms.connected.is_set() and (1, 1) in csms.statuses else None, "the station")
        await asyncio.sleep(0.5)
        to_led, missed = [], 0
        for n in range(led_samples):
            answer = await server.run(csms.call("ReserveNow", reserve_now(1000 + n)))
            lit = await probe.reaches(on, answer.sent_at, "the reserved LED on")
            to_led.append(lit - answer.sent_at)
            cancel = await server.run(csms.call("CancelReservation", {"reservationId": 1000 + n}))
            await probe.reaches(1.0 - on, cancel.sent_at, "the reserved LED off")
            if answer.payload.get("status") != "Accepted":
                missed += 1
        probe.unhook()
        drained = await drain_phase(server, built, front, drain_count)
    finally:
        await front.stop()
        await built.stop()
        server.close()
    return {"reserve_now_to_led_ms": {**ms_stats(to_led), "refused": missed,
                                      "pin": f"{led.reserved_pin} (EVSE 1 reserved LED)"}, **drained}


async def drain_phase(server: CsmsThread, built: Any, front: OcppFront, count: int) -> dict[str, Any]:
    """A transaction on EVSE 1; the CSMS down; ``count`` Updated events queued; the CSMS back: the drain rate."""
    csms, runtime = server.csms, built.runtime
    station = front.station
    assert station is not None
    flow = station.transactions
    outcome = await runtime.present_token(1, "BENCH-DRAIN")
    if not outcome.may_charge:
        raise RuntimeError(f"the drain's token was refused: {outcome}")
    await runtime.sim.plug(1)
    tx = await until(lambda: flow.open_transaction(1), "a transaction on EVSE 1", 15.0)

    def charging() -> bool | None:
        """The meter shows the power (ChargingStateChanged) and the CSMS has every event so far."""
        told = any(m.action == "TransactionEvent" and m.payload["transactionInfo"].get("chargingState") == "Charging"
                   for m in list(csms.received))
        return True if told and flow.queue.pending_count() == 0 else None

    await until(charging, "the transaction to be Charging and delivered", 15.0, every=0.01)
    await server.run(csms.stop())
    await until(lambda: None if station.online else True, "the station to notice the outage")
    queued_at = time.monotonic()
    for _ in range(count):
        flow.trigger(1)
    await until(lambda: True if flow.queue.pending_count() >= count else None, "the events to be queued", 120.0,
                every=0.01)
    queue_s = time.monotonic() - queued_at
    events: list[Received] = []
    tx_id = tx.transaction_id
    all_in: concurrent.futures.Future[None] = concurrent.futures.Future()

    def arrived(message: Received) -> None:
        """Count the triggered events as they arrive, in the CSMS's thread (the station's loop is not polled)."""
        payload = message.payload
        if (message.action == "TransactionEvent" and payload["transactionInfo"]["transactionId"] == tx_id
                and payload["triggerReason"] == "Trigger"):
            events.append(message)
            if len(events) == count:
                all_in.set_result(None)

    csms.on_message = arrived
    await server.run(csms.start())
    await asyncio.wait_for(asyncio.wrap_future(all_in), 120.0)
    reconnected = csms.connected_at[-1]
    last = events[count - 1].at
    offline = sum(1 for m in events[:count] if m.payload.get("offline") is True)
    seq = [int(m.payload["seqNo"]) for m in events[:count]]
    return {
        "drain_msgs_per_s": round(count / (last - reconnected), 1),
        "drain": {
            "messages": count,
            "how_queued": "TransactionFlow.trigger(1) (TriggerMessage TransactionEvent's path) while the CSMS was "
                          "down: Updated events with meter values, each written to the durable queue by the station's "
                          "writer (WAL, synchronous=FULL)",
            "queue_s": round(queue_s, 3),
            "reconnect_to_first_ms": round((events[0].at - reconnected) * 1000, 1),
            "reconnect_to_last_s": round(last - reconnected, 3),
            "marked_offline": offline,
            "seq_no_contiguous": seq == list(range(seq[0], seq[0] + count)),
            "durable_removals": flow.queue.durable_removals,
        },
    }


# ------------------------------------------------------------------ main


def filesystem(path: Path) -> str:
    """The filesystem type a path lives on (the longest matching mount point), for the fsync-bound drain."""
    mounts = [line.split() for line in Path("/proc/mounts").read_text().splitlines()]
    found = [(len(m[1]), m[2]) for m in mounts if len(m) > 2 and str(path.resolve()).startswith(m[1])]
    return max(found)[1] if found else "unknown"


def main() -> None:
    """Run the measurements and print the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples (pairs 50, LED 50, drain 200, idle 3 s)")
    parser.add_argument("--pairs", type=int, default=500, help="ReserveNow/CancelReservation pairs (default 500)")
    parser.add_argument("--led-samples", type=int, default=200, help="ReserveNow -> LED samples (default 200)")
    parser.add_argument("--drain", type=int, default=1000, help="queued TransactionEvents to drain (default 1000)")
    parser.add_argument("--idle-seconds", type=float, default=10.0, help="idle CPU/RSS window (default 10)")
    parser.add_argument("--dir", type=Path, default=None, help="where the state directories go (default: a temp dir)")
    args = parser.parse_args()
    logging.getLogger("controller").setLevel(logging.ERROR)  # the drain's outage: expected reconnect warnings
    if args.quick:
        args.pairs, args.led_samples, args.drain, args.idle_seconds = 50, 50, 200, 3.0
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="ocpp-bench-") as tmp:
        daemon_dir, station_dir = Path(tmp) / "daemon", Path(tmp) / "station"
        daemon_dir.mkdir()
        station_dir.mkdir()
        daemon = asyncio.run(daemon_phase(args.pairs, args.idle_seconds, daemon_dir))
        station = asyncio.run(in_process_phase(args.led_samples, args.drain, station_dir))
        fs = filesystem(Path(tmp))
    rtt, led = daemon["reserve_now_rtt_ms"], station["reserve_now_to_led_ms"]
    figures = {"reserve_now_rtt_p99_ms": rtt["p99"], "reserve_now_to_led_p99_ms": led["p99"],
               "drain_msgs_per_s": station["drain_msgs_per_s"], "idle_cpu_percent": daemon["idle_cpu_percent"],
               "rss_mb": daemon["rss_mb"]}
    targets = {name: {"value": value, "target": f"{'>=' if name.startswith('drain') else '<'} {TARGETS[name]:g}",
                      "met": value is not None and (value >= TARGETS[name] if name.startswith("drain")
                                                     else value < TARGETS[name])}
               for name, value in figures.items()}
    result = {
        "benchmark": "ocpp",
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "state_filesystem": fs,
        "load_average_1m": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2),
                            "note": "other processes on the machine share its CPUs: tails (p99) rise with the load"},
        **daemon,
        **station,
        "csms": "hil/csms.py (websockets server, ocpp.messages framing, no schema checks) on 127.0.0.1",
        "targets": targets,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
