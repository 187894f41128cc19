"""The simulated charger behind ``run --sim``: EV plugs, contactors, lock motors and meters.

Built from the same driver configurations as the real drivers, so the real driver classes run
on MockFactory pins wired to these mechanisms and on real Modbus frames from a simulated meter.
The meter's load follows physics: current flows only while a car is plugged in and the main
contacts are closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from drivers.gpio.config import ContactorConfig, LockConfig, PlugConfig
from drivers.sim.meter_server import SimulatedMeter, SimulatedMeterServer
from drivers.sim.pilot import PILOT_FAULT_KINDS, SimPilot
from drivers.sim.pins import SimContactor, SimLockMechanism, SimPlug

log = logging.getLogger(__name__)

FAULT_KINDS = ("weld", "lock_jam", "meter_silent", *PILOT_FAULT_KINDS, "clear")


@dataclass
class SimEvse:
    """The simulated hardware of one EVSE."""

    contactor: SimContactor
    plug: SimPlug
    lock: SimLockMechanism | None = None
    meter: SimulatedMeter | None = None
    charging_current_a: float = 16.0
    plugged: bool = False
    pilot: SimPilot | None = None  # the CP line and its car: with one, the car decides what it draws


class SimPlant:
    """Animates the simulated hardware; implements the runtime's sim controls (plug, unplug, fault)."""

    def __init__(self, factory: Any, server: SimulatedMeterServer | None = None, *, tick_s: float = 0.2,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """The plant on ``factory``'s pins; ``clock`` (monotonic s) paces the cars on control pilots."""
        self._clock = clock
        self.factory = factory
        self.server = server
        self.evses: dict[int, SimEvse] = {}
        self._tick_s = tick_s
        self._task: asyncio.Task[None] | None = None
        self._loads: dict[int, float] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def add_evse(
        self,
        evse_id: int,
        contactor: ContactorConfig,
        plug: PlugConfig,
        lock: LockConfig | None = None,
        meter: SimulatedMeter | None = None,
        *,
        contactor_delay_s: float = 0.03,
        lock_travel_s: float = 0.08,
    ) -> SimEvse:
        """Wire one EVSE's mechanisms to the pins its drivers will use (call before making the drivers)."""
        sim = SimEvse(
            contactor=SimContactor(
                self.factory,
                contactor.coil_pin,
                contactor.feedback_pin,
                delay_s=contactor_delay_s,
                coil_active_high=contactor.coil_active_high,
                aux_closed_level=contactor.feedback_active_high,
            ),
            plug=SimPlug(self.factory, plug.pin, plugged_level=plug.active_high),
            lock=None
            if lock is None
            else SimLockMechanism(
                self.factory,
                lock.lock_pin,
                lock.unlock_pin,
                lock.feedback_pin,
                travel_s=lock_travel_s,
                motor_active_high=lock.motor_active_high,
                locked_level=lock.feedback_active_high,
            ),
            meter=meter,
        )
        sim.contactor.on_contacts = self._contacts_moved
        self.evses[evse_id] = sim
        return sim

    def _contacts_moved(self, _closed: bool) -> None:
        """Main contacts moved (in a timer thread): the meters follow in the loop at once, not at the next tick,
        as current stops the instant real contacts open."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.tick)

    def add_pilot(self, evse_id: int, line: SimPilot) -> None:
        """Give an EVSE a control-pilot line with its car (the car follows the CP and draws what it is offered);
        the plant steps the car at every tick, so it ticks faster (100 ms) to let the car react in time."""
        self._evse(evse_id).pilot = line
        self._tick_s = min(self._tick_s, 0.1)

    def _evse(self, evse_id: int) -> SimEvse:
        try:
            return self.evses[evse_id]
        except KeyError:
            raise LookupError(f"unknown evse {evse_id}") from None

    # ------------------------------------------------------------ controls

    async def plug(self, evse_id: int) -> None:
        """The EV's plug goes in."""
        sim = self._evse(evse_id)
        sim.plug.plug()
        sim.plugged = True
        if sim.pilot is not None:
            sim.pilot.car.plug()
        self.tick()

    async def unplug(self, evse_id: int) -> None:
        """The EV's plug comes out (a locked plug cannot: the sim refuses, like the real socket)."""
        sim = self._evse(evse_id)
        if not sim.plugged:
            return
        if sim.lock is not None and sim.lock.locked:
            raise PermissionError(f"evse {evse_id}: the plug is locked in")
        sim.plug.unplug()
        sim.plugged = False
        if sim.pilot is not None:
            sim.pilot.car.unplug()
        self.tick()

    async def fault(self, evse_id: int, kind: str) -> None:
        """Inject ``weld``, ``lock_jam``, ``meter_silent`` or (with a pilot) the car's ``diode_short``, ``cp_short``
        or ``overcurrent_ev``; ``clear`` repairs everything."""
        sim = self._evse(evse_id)
        kind = str(kind)
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r} (known: {', '.join(FAULT_KINDS)})")
        unit = [sim.meter.unit_id] if sim.meter is not None else []
        if kind == "weld":
            sim.contactor.weld()
        elif kind == "lock_jam":
            if sim.lock is None:
                raise ValueError(f"evse {evse_id} has no lock")
            sim.lock.jam()
        elif kind in PILOT_FAULT_KINDS:
            if sim.pilot is None:
                raise ValueError(f"evse {evse_id} has no control pilot")
            sim.pilot.car.fault(kind)
        elif kind == "meter_silent":
            if self.server is None or not unit:
                raise ValueError(f"evse {evse_id} has no simulated meter")
            self.server.go_silent(unit)
        else:
            sim.contactor.repair()
            if sim.lock is not None:
                sim.lock.unjam()
            if sim.pilot is not None:
                sim.pilot.car.fault("clear")
            if self.server is not None:
                self.server.clear_wire_fault()
        log.info("sim: evse %d fault %s", evse_id, kind)
        self.tick()

    # ------------------------------------------------------------ physics

    def tick(self) -> None:
        """Meters see current only while plugged in with the main contacts closed (with a pilot: what the car draws,
        following the CP)."""
        now = self._clock()
        for evse_id, sim in self.evses.items():
            closed = sim.contactor.contacts_closed
            if sim.pilot is not None:
                current = sim.pilot.step(now, closed and sim.plugged)  # the car follows the CP
            else:
                current = sim.charging_current_a if closed and sim.plugged else 0.0
            if sim.meter is None:
                continue
            if self._loads.get(evse_id) != current:
                self._loads[evse_id] = current
                sim.meter.set_load(230.0, current)

    async def _run(self) -> None:
        while True:
            self.tick()
            await asyncio.sleep(self._tick_s)

    async def start(self) -> None:
        """Start the meter server and the physics tick."""
        self._loop = asyncio.get_running_loop()
        if self.server is not None:
            await self.server.start()
        self.tick()
        self._task = asyncio.create_task(self._run(), name="sim-plant")

    async def stop(self) -> None:
        """Stop the tick, the meter server and pending mechanism timers (idempotent)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for sim in self.evses.values():
            sim.contactor.close()
            if sim.lock is not None:
                sim.lock.close()
        if self.server is not None:
            await self.server.stop()
