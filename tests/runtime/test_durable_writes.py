"""Reservations are written off the loop (controller.runtime.durable), and the loop's health is measured.

The real sim runtime on a real SQLite file, its HTTP API served in the same loop; requests come from
threads over real connections. A slow disk (the store's ``write_batch`` slowed on the writer thread, as a
slow SD card's fsync) must delay no output; each answer comes only once its row is on disk; a write that
fails is undone in memory and answered 503; writes that arrive together share one commit. The loop lag
probe reports in ``/status``, and a callback that holds the loop is named in a WARNING.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import http.client
import json
import logging
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from controller.api.app import create_app
from controller.api.server import bound_port, serve
from controller.config.loader import ChargerConfig, load_sim_default
from controller.core.store import ReservationStore
from controller.core.types import Reservation, ReservationResult
from controller.runtime.build import Built, build
from controller.runtime.durable import StoreWriter


def sim_config() -> ChargerConfig:
    """The sim charger with no plug debounce, so an edge reaches the outputs at once; its plug line is the plug
    (no control pilot: the test drives the plug pin itself, as a board whose CP is handled elsewhere)."""
    config = load_sim_default()
    evses = tuple(
        dataclasses.replace(e, plug=dataclasses.replace(e.plug, debounce_s=0.0), pilot=None) for e in config.evses
    )
    return dataclasses.replace(config, evses=evses)


@contextlib.asynccontextmanager
async def served(state_dir: Path) -> AsyncIterator[tuple[Built, int]]:
    """The sim runtime, started, with its HTTP API on a free port; both stopped afterwards."""
    built = await build(sim_config(), state_dir=state_dir)
    await built.start()
    app = create_app(built.runtime)
    ready, stop = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(serve(app, "127.0.0.1", 0, ready=ready, stop=stop))
    try:
        await asyncio.wait_for(ready.wait(), 5)
        await asyncio.sleep(0.3)  # the first meter polls and lock moves
        yield built, bound_port(app)
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
        await built.stop()


def store_of(built: Built) -> ReservationStore:
    """The running runtime's store."""
    store = built.runtime.core.store
    assert store is not None
    return store


def writer_of(built: Built) -> StoreWriter:
    """The running runtime's writer thread."""
    assert built.runtime.writer is not None
    return built.runtime.writer


def slow_disk(store: ReservationStore, seconds: float) -> list[int]:
    """Every transaction takes ``seconds`` longer (on the writer thread); returns the writes per transaction."""
    real = store.write_batch
    batches: list[int] = []

    def slowly(writes: Any) -> None:
        """The slow disk: wait, then the real transaction."""
        time.sleep(seconds)
        batches.append(len(writes))
        real(writes)

    store.write_batch = slowly  # type: ignore[method-assign]
    return batches


def call(port: int, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """One request on a fresh connection (from a thread); status and JSON body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if method == "POST" else {}
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        conn.close()


def reservation_doc(rid: int, token: str, evse_id: int | None, hours: float = 1.0) -> dict[str, Any]:
    """A POST /reservations body."""
    expiry = (datetime.now(UTC) + timedelta(hours=hours)).isoformat().replace("+00:00", "Z")
    doc: dict[str, Any] = {"reservation_id": rid, "id_token": token, "expiry_time": expiry}
    if evse_id is not None:
        doc["evse_id"] = evse_id
    return doc


def rows(path: Path) -> list[int]:
    """Reservation ids committed to the file, as another process would read them."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        return [r[0] for r in db.execute("SELECT reservation_id FROM reservations ORDER BY seq")]


async def until(check: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    """Wait in the loop until ``check()`` holds."""
    end = time.monotonic() + timeout
    while not check():
        if time.monotonic() > end:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.005)


async def test_a_slow_disk_delays_no_edge_to_output_reaction(tmp_path: Path) -> None:
    """A global reservation is being rewritten (1 s per commit) when EVSE 2 is plugged in: EVSE 1's reserved LED
    (the only free EVSE now, so the global reservation needs it) goes on at once, long before the answer."""
    async with served(tmp_path) as (built, port):
        runtime = built.runtime
        evse2_plug = sim_config().evse(2).plug
        led = built.pin_factory.pin(sim_config().evse(1).indicator.reserved_pin)
        plug = built.pin_factory.pin(evse2_plug.pin)
        expiry = datetime.now(UTC) + timedelta(hours=1)
        assert await runtime.reserve(Reservation(1, "GLOBAL", expiry)) is ReservationResult.ACCEPTED
        await asyncio.sleep(0.2)
        led_before = led.state
        slow_disk(store_of(built), 1.0)
        answered: list[float] = []

        def replace() -> None:
            """In a thread: replace the global reservation over HTTP; note when answered."""
            assert call(port, "POST", "/reservations", reservation_doc(1, "GLOBAL", None, hours=2))[0] == 200
            answered.append(time.monotonic())

        request = threading.Thread(target=replace)
        sent = time.monotonic()
        request.start()
        await until(lambda: built.runtime.core.writes_in_flight > 0, "the replacement in flight")
        edge = time.monotonic()
        (plug.drive_high if evse2_plug.active_high else plug.drive_low)()
        await until(lambda: led.state != led_before, "EVSE 1's reserved LED follows the plug edge")
        reacted = time.monotonic() - edge
        assert built.runtime.core.writes_in_flight > 0  # the disk is still busy with the replacement
        await asyncio.to_thread(request.join, 10)
        assert answered and answered[0] - sent >= 1.0
        assert reacted < 0.25, f"the output waited {reacted * 1000:.0f} ms for the disk"
        lag = built.runtime.status()["loop"]
        assert lag["lag_max_ms"] is not None and lag["lag_max_ms"] < 250


async def test_the_answer_comes_only_once_the_row_is_on_disk(tmp_path: Path) -> None:
    """The reservation is live in memory at once, but the HTTP answer waits for its commit."""
    async with served(tmp_path) as (built, port):
        path = store_of(built).path
        slow_disk(store_of(built), 0.3)
        seen_at_answer: list[list[int]] = []

        def reserve() -> None:
            """In a thread: reserve over HTTP; read the file the moment the answer arrives."""
            status, body = call(port, "POST", "/reservations", reservation_doc(7, "ALICE", 1))
            assert status == 200 and body == {"result": "Accepted"}
            seen_at_answer.append(rows(path))

        request = threading.Thread(target=reserve)
        request.start()
        await until(lambda: built.runtime.core.writes_in_flight > 0, "the write in flight")
        assert [r.reservation_id for r in built.runtime.reservations()] == [7]  # in memory already
        assert await asyncio.to_thread(rows, path) == []  # not yet committed: no answer yet
        assert request.is_alive()
        await asyncio.to_thread(request.join, 10)
        assert seen_at_answer == [[7]]
        # a cancel, the same way
        status, body = await asyncio.to_thread(call, port, "DELETE", "/reservations/7")
        assert status == 200 and body == {"cancelled": True}
        assert await asyncio.to_thread(rows, path) == []


async def test_a_write_that_fails_is_undone_and_answered_503(tmp_path: Path) -> None:
    """A store that cannot write: changes refused with 503 and undone, memory and disk agree, then recovery."""
    async with served(tmp_path) as (built, port):
        store, runtime = store_of(built), built.runtime
        status, _ = await asyncio.to_thread(call, port, "POST", "/reservations", reservation_doc(3, "KEPT", 2))
        assert status == 200
        before = runtime.status()["reservations"]
        store._db.execute("PRAGMA query_only=ON")  # every write now fails inside SQLite, as on a full disk
        status, body = await asyncio.to_thread(call, port, "POST", "/reservations", reservation_doc(4, "NEW", 1))
        assert status == 503 and "store" in body["error"]
        status, body = await asyncio.to_thread(call, port, "DELETE", "/reservations/3")
        assert status == 503
        status, body = await asyncio.to_thread(call, port, "POST", "/reservations", reservation_doc(3, "OTHER", 1))
        assert status == 503  # a replacement: the old 3 must still be there
        doc = runtime.status()
        assert doc["reservations"] == before and doc["store"]["ok"] is False
        assert runtime.core.reserved_evses() == {2} and rows(store.path) == [3]  # memory and disk agree
        await asyncio.sleep(0.1)
        assert runtime.evse_status(1)["reserved_led"] == "off"
        store._db.execute("PRAGMA query_only=OFF")
        status, body = await asyncio.to_thread(call, port, "POST", "/reservations", reservation_doc(4, "NEW", 1))
        assert status == 200 and body == {"result": "Accepted"}
        assert runtime.status()["store"]["ok"] is True and rows(store.path) == [3, 4]


async def test_writes_that_arrive_together_share_one_commit(tmp_path: Path) -> None:
    """Six changes at once: the first commits alone, the four writes queued meanwhile in one transaction."""
    async with served(tmp_path) as (built, _port):
        runtime, path = built.runtime, store_of(built).path
        batches = slow_disk(store_of(built), 0.2)
        writer = writer_of(built)
        transactions, writes = writer.transactions, writer.writes
        expiry = datetime.now(UTC) + timedelta(hours=1)
        changes = [
            runtime.reserve(Reservation(10, "A", expiry, evse_id=1)),
            runtime.reserve(Reservation(11, "B", expiry, evse_id=2)),
            runtime.reserve(Reservation(10, "A2", expiry + timedelta(minutes=5), evse_id=1)),  # replaces 10
            runtime.reserve(Reservation(12, "C", expiry)),  # global: no EVSE left for it
            runtime.cancel(11),
            runtime.reserve(Reservation(13, "D", expiry, evse_id=2)),  # EVSE 2 free again after the cancel
        ]
        results = await asyncio.gather(*changes)
        assert [getattr(r, "value", r) for r in results] == [
            "Accepted", "Accepted", "Accepted", "Occupied", True, "Accepted"
        ]
        assert writer.writes - writes == 5  # the refused global wrote nothing
        assert writer.transactions - transactions == 2 and batches == [1, 4]  # the first alone, then the rest
        assert rows(path) == [10, 13] == [r.reservation_id for r in runtime.reservations()]


async def test_loop_lag_is_reported_and_a_callback_that_holds_the_loop_is_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A callback holding the loop 150 ms shows in /status's loop lag and is named in a WARNING."""
    caplog.set_level(logging.WARNING, logger="controller.runtime")
    async with served(tmp_path) as (_built, port):

        def hold_the_loop_for_150_ms() -> None:
            """A callback that blocks the loop."""
            time.sleep(0.15)  # longer than the probe's period: the probe's timer is due meanwhile

        asyncio.get_running_loop().call_soon(hold_the_loop_for_150_ms)
        await asyncio.sleep(0.4)
        status, doc = await asyncio.to_thread(call, port, "GET", "/status")
        assert status == 200
        loop = doc["loop"]
        assert loop["samples"] >= 2 and loop["lag_max_ms"] >= 45 and loop["lag_p99_ms"] <= loop["lag_max_ms"]
        assert loop["slow_callbacks"] >= 1
    named = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "held" in r.getMessage()]
    assert any("hold_the_loop_for_150_ms" in line for line in named), named
