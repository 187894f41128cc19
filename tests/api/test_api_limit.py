"""``POST /evses/{id}/limit`` over real HTTP on the real runtime of ``run --sim``: the local current limit, the
car following it on the meter, and refusals named as everywhere else in the API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from controller.api.app import create_app
from controller.api.server import ApiServer
from controller.config.loader import load_sim_default
from controller.runtime.build import Built, build

from .http_helpers import Reply, call_sync

LIMIT_RANGE = "current limit must be 0 (pause) or 6 to 80 A"


@asynccontextmanager
async def served(state_dir: Path) -> AsyncIterator[tuple[Built, int]]:
    """The sim charger built and started, its API on a free loopback port; stopped afterwards."""
    built = await build(load_sim_default(), state_dir=state_dir)
    await built.start()
    server = ApiServer(create_app(built.runtime), "127.0.0.1", 0)
    stop = asyncio.Event()
    task = await server.start(stop=stop)
    try:
        yield built, server.port
    finally:
        stop.set()
        await task
        await built.stop()


async def call(port: int, method: str, path: str, *body: Any, raw: bytes | None = None) -> Reply:
    """One request in a worker thread (the server runs in this loop)."""
    if raw is not None:
        return await asyncio.to_thread(call_sync, port, method, path, raw=raw,
                                       headers={"Content-Type": "application/json"})
    return await asyncio.to_thread(call_sync, port, method, path, *body)


async def until(check: Callable[[], bool], what: str, within_s: float = 8.0) -> None:
    """Wait for ``check()`` (polled), failing with ``what`` after ``within_s``."""
    for _ in range(int(within_s / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not within {within_s} s: {what}")


async def test_the_limit_is_answered_with_the_evses_entry(tmp_path: Path) -> None:
    async with served(tmp_path) as (built, port):
        reply = await call(port, "POST", "/evses/2/limit", {"amps": 10})
        assert reply.status == 200, reply.text
        assert set(reply.json) == {"evse_id", "current_limit_a", "evse"}
        assert (reply.json["evse_id"], reply.json["current_limit_a"]) == (2, 10.0)
        assert reply.json["evse"] == built.runtime.evse_status(2)
        assert (reply.json["evse"]["id"], reply.json["evse"]["current_limit_a"]) == (2, 10.0)
        assert built.runtime.evse_status(1)["current_limit_a"] is None  # the other EVSE keeps its own

        paused = (await call(port, "POST", "/evses/2/limit", {"amps": 0})).json
        assert (paused["current_limit_a"], paused["evse"]["current_limit_a"]) == (0.0, 0.0)
        fraction = (await call(port, "POST", "/evses/2/limit", {"amps": 12.5})).json
        assert fraction["current_limit_a"] == 12.5
        removed = (await call(port, "POST", "/evses/2/limit", {"amps": None})).json
        assert (removed["current_limit_a"], removed["evse"]["current_limit_a"]) == (None, None)
        status = (await call(port, "GET", "/status")).json
        assert [e["current_limit_a"] for e in status["evses"]] == [None, None]


async def test_the_car_follows_the_limit_on_the_meter(tmp_path: Path) -> None:
    async with served(tmp_path) as (built, port):
        runtime = built.runtime

        def drawn() -> float | None:
            currents = runtime.evse_status(1)["current_a"]
            return None if currents is None else currents[0]

        assert (await call(port, "POST", "/evses/1/limit", {"amps": 10})).status == 200
        assert (await call(port, "POST", "/evses/1/token", {"id_token": "WALK-IN-1"})).json["may_charge"]
        assert (await call(port, "POST", "/sim/evses/1/plug")).status == 200
        await until(lambda: runtime.evse_status(1)["contactor"] == "closed", "the contactor closes")
        await until(lambda: drawn() == 10.0, "the car draws the 10 A it is offered")

        paused = (await call(port, "POST", "/evses/1/limit", {"amps": 0})).json
        assert paused["current_limit_a"] == 0.0
        await until(lambda: runtime.evse_status(1)["contactor"] == "open" and drawn() == 0.0, "0 A pauses charging")
        entry = runtime.evse_status(1)
        assert (entry["phase"], entry["lock"], entry["plugged_in"]) == ("charging", "locked", True)  # session kept

        assert (await call(port, "POST", "/evses/1/limit", {"amps": None})).json["current_limit_a"] is None
        await until(lambda: runtime.evse_status(1)["contactor"] == "closed", "removing the limit resumes charging")
        await until(lambda: drawn() == 16.0, "the car draws the EVSE's 16 A again")


@pytest.mark.parametrize(("body", "field", "wording"), [
    ({"amps": 5}, "amps", f"amps: {LIMIT_RANGE}, got 5"),
    ({"amps": 80.5}, "amps", f"amps: {LIMIT_RANGE}, got 80.5"),
    ({"amps": -1}, "amps", f"amps: {LIMIT_RANGE}, got -1"),
    ({"amps": "10"}, "amps", "amps: current limit must be a number of amperes, got '10'"),
    ({"amps": True}, "amps", "amps: current limit must be a number of amperes, got True"),
    ({}, "amps", "amps: is required in limit request: a number of amperes, or null to remove the limit"),
    ({"amps": 10, "phase": 1}, "phase", "phase: unknown field in limit request (allowed: amps)"),
    ([10], None, "request body must be a JSON object, got list"),
])
async def test_a_bad_limit_is_422_naming_the_field(tmp_path: Path, body: Any, field: str | None,
                                                    wording: str) -> None:
    async with served(tmp_path) as (built, port):
        reply = await call(port, "POST", "/evses/1/limit", body)
        assert reply.status == 422, reply.text
        assert reply.error_body() == {"error": wording, "field": field}
        assert built.runtime.evse_status(1)["current_limit_a"] is None  # nothing changed


async def test_numbers_json_cannot_hold_as_a_float_are_refused(tmp_path: Path) -> None:
    async with served(tmp_path) as (_, port):
        for raw in (b'{"amps": 1e400}', b'{"amps": ' + b"9" * 400 + b"}", b'{"amps": NaN}'):
            reply = await call(port, "POST", "/evses/1/limit", raw=raw)
            assert reply.status == 422, raw
            assert reply.error_body()["field"] == "amps"


async def test_an_unknown_evse_is_404_and_a_bad_body_is_refused_as_elsewhere(tmp_path: Path) -> None:
    async with served(tmp_path) as (_, port):
        unknown = await call(port, "POST", "/evses/9/limit", {"amps": 10})
        assert unknown.status == 404
        assert unknown.error_body() == {"error": "evse_id: unknown evse 9 (known: 1, 2)", "field": "evse_id"}
        assert (await call(port, "POST", "/evses/x/limit", {"amps": 10})).status == 422
        assert (await call(port, "POST", "/evses/1/limit")).status == 400  # no body
        not_json = await asyncio.to_thread(call_sync, port, "POST", "/evses/1/limit", raw=b'{"amps": 10}')
        assert not_json.status == 415  # no Content-Type: application/json
        assert (await call(port, "GET", "/evses/1/limit")).status == 405
