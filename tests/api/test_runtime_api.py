"""The API over the real runtime of the simulated charger: the operator reset and the catch-up of start events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from controller.api.app import create_app
from controller.api.server import ApiServer
from controller.config.loader import load_sim_default
from controller.core.parsing import format_rfc3339
from controller.runtime.build import Built, build
from drivers.sim.plant import SimPlant

from .http_helpers import SseReader, call_sync, parse_frame

START = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


class WallClock:
    """A wall clock the test sets."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@asynccontextmanager
async def served(state_dir: Path, clock: Callable[[], datetime] | None = None) -> AsyncIterator[tuple[Built, int]]:
    """The sim charger built and started, its API on a free loopback port; stopped afterwards."""
    built = await build(load_sim_default(), state_dir=state_dir, **({"wall_clock": clock} if clock else {}))
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


async def call(port: int, method: str, path: str, body: object = None) -> dict:  # type: ignore[type-arg]
    reply = await asyncio.to_thread(call_sync, port, method, path, *(() if body is None else (body,)))
    assert reply.status == 200, reply.text
    assert isinstance(reply.json, dict)
    return reply.json


async def until(check: Callable[[], bool], what: str, within_s: float = 5.0) -> None:
    for _ in range(int(within_s / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not within {within_s} s: {what}")


async def test_a_weld_stays_faulted_after_the_repair_until_the_operator_reset(tmp_path: Path) -> None:
    async with served(tmp_path) as (built, port):
        plant, runtime = built.plant, built.runtime
        assert isinstance(plant, SimPlant)
        assert (await call(port, "POST", "/evses/1/token", {"id_token": "WALK-IN-1"}))["verdict"] == "allowed"
        await call(port, "POST", "/sim/evses/1/plug")
        await until(lambda: runtime.evse_status(1)["contactor"] == "closed", "charging")
        plant.evses[1].contactor.weld()
        await call(port, "POST", "/evses/1/token", {"id_token": "WALK-IN-1"})  # stop: the coil opens, contacts stay
        await until(lambda: "contactor_welded" in runtime.evse_status(1)["faults"], "weld seen")
        assert runtime.evse_status(1)["state"] == "FaultedOccupied" and runtime.evse_status(1)["lock"] == "locked"

        plant.evses[1].contactor.repair()  # the contacts are replaced: the aux contact now reads open
        await asyncio.sleep(3.0)  # longer than every hold time: a weld never clears by itself
        assert "contactor_welded" in runtime.evse_status(1)["faults"]

        await call(port, "POST", "/evses/1/reset")
        await until(lambda: runtime.evse_status(1)["faults"] == [], "faults cleared after the reset", within_s=6)
        # the lock's switch reports first, the session follows at the evaluation that hears it
        await until(lambda: runtime.evse_status(1)["lock"] == "unlocked" and runtime.evse_status(1)["phase"] == "idle",
                    "lock released for the car, the session over")
        status = runtime.evse_status(1)
        assert (status["state"], status["plugged_in"]) == ("Available", True)


async def test_a_reset_while_still_welded_does_not_clear_the_weld(tmp_path: Path) -> None:
    async with served(tmp_path) as (built, port):
        plant, runtime = built.plant, built.runtime
        assert isinstance(plant, SimPlant)
        await call(port, "POST", "/evses/2/token", {"id_token": "WALK-IN-2"})
        await call(port, "POST", "/sim/evses/2/plug")
        await until(lambda: runtime.evse_status(2)["contactor"] == "closed", "charging")
        plant.evses[2].contactor.weld()
        await call(port, "POST", "/evses/2/token", {"id_token": "WALK-IN-2"})
        await until(lambda: "contactor_welded" in runtime.evse_status(2)["faults"], "weld seen")
        answer = await call(port, "POST", "/evses/2/reset")
        assert answer["evse_id"] == 2
        await asyncio.sleep(1.0)  # supervision (0.2 s) sees the aux contact still closed and latches again
        assert "contactor_welded" in runtime.evse_status(2)["faults"]
        assert runtime.evse_status(2)["lock"] == "locked" and runtime.evse_status(2)["state"] == "FaultedOccupied"


async def test_a_reservation_that_expired_while_down_is_told_to_clients_that_catch_up(tmp_path: Path) -> None:
    clock = WallClock()
    async with served(tmp_path, clock) as (_built, port):
        body = {"reservation_id": 17, "id_token": "LATE-DRIVER", "evse_id": 1,
                "expiry_time": format_rfc3339(START + timedelta(minutes=5))}  # fmt: skip
        assert (await call(port, "POST", "/reservations", body))["result"] == "Accepted"
    clock.now = START + timedelta(minutes=10)  # the controller was off past the expiry
    async with served(tmp_path, clock) as (built, port):
        assert built.runtime.reservations() == []
        sse = await SseReader.open(port, path="/events?since=0")
        assert await sse.frame() == ": connected\n\n"
        seen = []
        for _ in range(20):
            kind, doc = parse_frame(await sse.frame())
            seen.append((kind, doc))
            if kind == "reservation_update":
                break
        await sse.close()
        assert ("reservation_end", {"type": "reservation_end", "reason": "Expired", "reservation_id": 17,
                                    "evse_id": 1}) in seen  # fmt: skip
        assert seen[-1] == ("reservation_update", {"type": "reservation_update", "reservation_id": 17,
                                                   "reservation_status": "Expired"})  # fmt: skip
