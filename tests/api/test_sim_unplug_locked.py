"""A locked plug cannot be pulled in the simulation: a 409 naming the EVSE, never a 500."""

from __future__ import annotations

import asyncio
from pathlib import Path

from controller.api.app import create_app
from controller.api.server import ApiServer
from controller.config.loader import load_sim_default
from controller.runtime.build import build
from drivers.sim.plant import SimPlant

from .http_helpers import call_sync


async def test_unplug_of_a_locked_plug_is_409(tmp_path: Path) -> None:
    built = await build(load_sim_default(), state_dir=tmp_path)
    await built.start()
    server = ApiServer(create_app(built.runtime), "127.0.0.1", 0)
    stop = asyncio.Event()
    task = await server.start(stop=stop)
    try:
        reply = await asyncio.to_thread(call_sync, server.port, "POST", "/sim/evses/1/unplug")
        assert reply.status == 200  # nothing plugged in: nothing to do
        plant = built.plant
        assert isinstance(plant, SimPlant)
        await plant.plug(1)
        lock = plant.evses[1].lock
        assert lock is not None
        lock.force(True)
        reply = await asyncio.to_thread(call_sync, server.port, "POST", "/sim/evses/1/unplug")
        assert reply.status == 409
        body = reply.error_body()
        assert body["field"] == "evse_id" and "locked in" in body["error"]
    finally:
        stop.set()
        await task
        await built.stop()
