"""The measurements of benchmarks/ocpp.py, the same for every OCPP version; a ``Driver`` says what differs.

``daemon_phase``: ``run --sim`` as a subprocess connected to the bench's CSMS (in this process): idle CPU and RSS,
then ReserveNow/CancelReservation pairs (round trip, ReserveNow -> StatusNotification Reserved).
``in_process_phase``: the sim runtime and ``OcppFront`` in this process, the CSMS in its own thread and loop:
ReserveNow -> the reserved LED's mock pin, then ``drain_phase`` (queued meter values drained after an outage).
The version-specific parts are the driver's (benchmarks/ocpp_v201.py, benchmarks/ocpp_v16.py). Times are
``time.monotonic()`` at the frame handed to the socket and at the frame read (hil/csms.py records both).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import math
import statistics
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from idle_daemon import daemon, free_port, proc_cpu_s, proc_memory_mb
from ocpp_v201 import Driver

from controller.config.loader import load_sim_default
from controller.config.ocpp_model import OcppConfig
from controller.ocpp.front import OcppFront
from controller.runtime.build import build
from hil.csms import HarnessCsms, Received

ROOT = Path(__file__).resolve().parent.parent
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


async def until(check: Callable[[], T | None], what: str, timeout: float = TIMEOUT_S, every: float = 0.001) -> T:
    """Poll ``check`` every ``every`` s until it gives something (RuntimeError naming ``what`` on timeout); only
    where the loop is not the station's (the daemon phase) or outside what is measured."""
    deadline = time.monotonic() + timeout
    while (found := check()) is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(every)
    return found


def status_after(driver: Driver, csms: HarnessCsms, status: str, since: float) -> Callable[[], Received | None]:
    """A probe for the first StatusNotification (EVSE 1, ``status``) read at or after ``since``."""

    def probe() -> Received | None:
        """Such a StatusNotification read at or after ``since`` (one per pair), scanning back from the newest."""
        for message in reversed(csms.received):
            if message.at < since:
                return None
            if driver.connector_status(message) == (1, status):
                return message
        return None

    return probe


def reported(driver: Driver, csms: HarnessCsms, evses: frozenset[int]) -> Callable[[], bool | None]:
    """A probe: the station is connected and has reported the status of these EVSEs."""

    def probe() -> bool | None:
        """True once connected and the EVSEs' statuses are in."""
        seen = {found[0] for m in list(csms.received) if (found := driver.connector_status(m)) is not None}
        return True if csms.connected.is_set() and evses <= seen else None

    return probe


# ------------------------------------------------------------------ the daemon as a subprocess


async def daemon_phase(driver: Driver, pairs: int, idle_seconds: float, state_dir: Path) -> dict[str, Any]:
    """RSS and idle CPU of ``run --sim --ocpp-url`` connected, then ReserveNow round trips and status latencies."""
    csms = await driver.make_csms().start()
    extra = ("--ocpp-url", csms.url, "--ocpp-id", "BENCH", *driver.daemon_args())
    try:
        with daemon(str(state_dir), free_port(), *extra) as proc:
            started = time.monotonic()
            await until(reported(driver, csms, frozenset({1, 2})), "the daemon to connect and report its connectors",
                        30.0)
            connected_s = time.monotonic() - started
            await asyncio.sleep(1.0)  # start-up lock moves and first meter polls are not idle
            cpu0, t0 = proc_cpu_s(proc.pid), time.monotonic()
            await asyncio.sleep(idle_seconds)
            cpu1, t1 = proc_cpu_s(proc.pid), time.monotonic()
            memory = proc_memory_mb(proc.pid)
            idle_messages = len([m for m in csms.received if m.at >= t0])

            rtt, to_status, refused = [], [], 0
            for n in range(pairs):
                answer = await csms.call("ReserveNow", driver.reserve_now(n))
                if answer.payload.get("status") != "Accepted":
                    refused += 1
                else:
                    rtt.append(answer.answered_at - answer.sent_at)
                    reserved = await until(status_after(driver, csms, "Reserved", answer.sent_at),
                                           "StatusNotification Reserved")
                    to_status.append(reserved.at - answer.sent_at)
                cancel = await csms.call("CancelReservation", driver.cancel_reservation(n))
                if answer.payload.get("status") == "Accepted":
                    await until(status_after(driver, csms, "Available", cancel.sent_at), "StatusNotification Available")
            memory_after = proc_memory_mb(proc.pid)
    finally:
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
            "command": " ".join(["python -m controller.cli run --sim --ocpp-url ws://127.0.0.1:PORT/ocpp",
                                 "--ocpp-id BENCH", *driver.daemon_args(), "--api 127.0.0.1:PORT --state-dir DIR"]),
        },
    }


# ------------------------------------------------------------------ the station in this process


class CsmsThread:
    """The CSMS in its own thread and event loop, so the station's loop carries only the station."""

    def __init__(self, driver: Driver) -> None:
        """Start the loop's thread and the driver's CSMS in it."""
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="csms", daemon=True)
        self.thread.start()
        self.csms: HarnessCsms = self.run_sync(driver.make_csms().start())

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


async def in_process_phase(driver: Driver, led_samples: int, drain_count: int, state_dir: Path) -> dict[str, Any]:
    """ReserveNow -> reserved LED, then the drain of ``drain_count`` queued meter values after a reconnect."""
    server = CsmsThread(driver)
    csms = server.csms
    config = load_sim_default()
    ocpp = OcppConfig(url=csms.url, host="127.0.0.1", port=csms.port, tls=False, station_id="BENCH",
                      version=driver.version, reservations=True, non_evse_specific_reservations=True,
                      security_profile=0, password=None, ca_file=None, reconnect_min_s=0.05, reconnect_max_s=0.5)
    built = await build(config, state_dir=state_dir)
    await built.start()
    front = OcppFront(built.runtime, ocpp, state_dir)
    await front.start()
    led = config.evse(1).indicator
    probe = PinProbe(built.pin_factory.pin(led.reserved_pin))
    on = 1.0 if led.reserved_active_high else 0.0
    try:
        await until(reported(driver, csms, frozenset({1})), "the station")
        await asyncio.sleep(0.5)
        to_led, missed = [], 0
        for n in range(led_samples):
            answer = await server.run(csms.call("ReserveNow", driver.reserve_now(1000 + n)))
            lit = await probe.reaches(on, answer.sent_at, "the reserved LED on")
            to_led.append(lit - answer.sent_at)
            cancel = await server.run(csms.call("CancelReservation", driver.cancel_reservation(1000 + n)))
            await probe.reaches(1.0 - on, cancel.sent_at, "the reserved LED off")
            if answer.payload.get("status") != "Accepted":
                missed += 1
        probe.unhook()
        drained = await drain_phase(driver, server, built, front, drain_count)
    finally:
        await front.stop()
        await built.stop()
        server.close()
    return {"reserve_now_to_led_ms": {**ms_stats(to_led), "refused": missed,
                                      "pin": f"{led.reserved_pin} (EVSE 1 reserved LED)"}, **drained}


async def drain_phase(driver: Driver, server: CsmsThread, built: Any, front: OcppFront, count: int) -> dict[str, Any]:
    """A transaction on EVSE 1; the CSMS down; ``count`` triggered meter values queued; the CSMS back: the rate."""
    csms, runtime = server.csms, built.runtime
    station = front.station
    assert station is not None
    flow: Any = station.transactions
    outcome = await runtime.present_token(1, "BENCH-DRAIN")
    if not outcome.may_charge:
        raise RuntimeError(f"the drain's token was refused: {outcome}")
    await runtime.sim.plug(1)
    tx = await until(lambda: flow.open_transaction(1), "a transaction on EVSE 1", 15.0)

    def charging() -> bool | None:
        """The CSMS was told the transaction charges, knows it by its name, and has every message so far."""
        told = any(driver.told_charging(m) for m in list(csms.received))
        known = driver.transaction_ref(flow, tx) is not None
        return True if told and known and flow.queue.pending_count() == 0 else None

    await until(charging, "the transaction to be Charging and delivered", 15.0, every=0.01)
    ref = driver.transaction_ref(flow, tx)
    await server.run(csms.stop())
    await until(lambda: None if station.online else True, "the station to notice the outage")
    queued_at = time.monotonic()
    for _ in range(count):
        flow.trigger(1)
    await until(lambda: True if flow.queue.pending_count() >= count else None, "the messages to be queued", 120.0,
                every=0.01)
    queue_s = time.monotonic() - queued_at
    events: list[Received] = []
    all_in: concurrent.futures.Future[None] = concurrent.futures.Future()

    def arrived(message: Received) -> None:
        """Count the triggered messages as they arrive, in the CSMS's thread (the station's loop is not polled)."""
        if driver.triggered(message, ref):
            events.append(message)
            if len(events) == count:
                all_in.set_result(None)

    csms.on_message = arrived
    await server.run(csms.start())
    await asyncio.wait_for(asyncio.wrap_future(all_in), 120.0)
    reconnected = csms.connected_at[-1]
    last = events[count - 1].at
    return {
        "drain_msgs_per_s": round(count / (last - reconnected), 1),
        "drain": {
            "messages": count,
            "how_queued": driver.how_queued,
            "queue_s": round(queue_s, 3),
            "reconnect_to_first_ms": round((events[0].at - reconnected) * 1000, 1),
            "reconnect_to_last_s": round(last - reconnected, 3),
            **driver.delivery_facts(events[:count]),
            "durable_removals": flow.queue.durable_removals,
        },
    }
