"""The plant a real bench's harness plays, on its own GPIO pins wired to the DUT's pins.

Per EVSE: the EV's plug (an output into the DUT's plug input), the contactor's aux contact (an
output that follows the DUT's coil line after ``contactor_delay_s``, and can weld), the lock's
"locked" switch (an output that follows the DUT's lock motor lines after ``lock_travel_s``, and
can jam), and a simulated meter whose current follows the load (plugged in and contacts
closed). The DUT's LED lines are watched only. With a control pilot the car is played on CP
(hil.harness_car), stepped every ``CAR_TICK_S`` by the plant's tick; the meter then sees what the car
draws. Every line change is reported to ``on_change`` with its monotonic time; gpiozero callbacks
(lgpio's thread) are handed into the loop first.

Runs on any gpiozero pin factory: lgpio on the harness Pi, MockFactory in the tests.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from drivers.sim.meter_server import SimulatedMeter
from hil.harness_car import CAR_TICK_S, HarnessCar
from hil.harness_pins import DrivenLine, WatchedLine
from hil.profile import BenchProfile, EvseBench

log = logging.getLogger(__name__)

LineChange = Callable[[int, str, float, float], None]
"""on_change(evse_id, role, monotonic_s, value): a line took ``value`` (1.0 on, 0.0 off)."""


class HarnessEvse:
    """The plant of one EVSE on harness pins."""

    def __init__(self, bench: EvseBench, factory: Any, loop: asyncio.AbstractEventLoop, on_change: LineChange,
                 *, contactor_delay_s: float, lock_travel_s: float, meter: SimulatedMeter | None,
                 car_max_current_a: float = 32.0) -> None:
        self.evse_id = bench.evse_id
        self._loop = loop
        self._on_change = on_change
        self.contactor_delay_s = contactor_delay_s
        self.lock_travel_s = lock_travel_s
        self.meter = meter
        self.charging_current_a = 16.0
        self.voltage_v = 230.0
        self.welded = False
        self.jammed = False
        self._contact_timer: asyncio.TimerHandle | None = None
        self._lock_timer: asyncio.TimerHandle | None = None
        self.watched: dict[str, WatchedLine] = {}
        self.driven: dict[str, DrivenLine] = {}
        self.car: HarnessCar | None = None
        try:
            for role, spec in bench.lines.items():
                if spec.observed:
                    self.watched[role] = WatchedLine(spec, factory, loop, self._watched_changed(role))
                else:
                    self.driven[role] = DrivenLine(spec, factory, self._report(role))
            if bench.pilot is not None:
                self.car = HarnessCar(bench.pilot, factory, self._report_pilot, max_current_a=car_max_current_a)
        except Exception:
            self.close()
            raise

    def _report_pilot(self, role: str, t: float, value: float) -> None:
        """A pilot trace of the car (its state, the duty it reads) changed."""
        self._on_change(self.evse_id, role, t, value)

    def _report(self, role: str) -> Callable[[float, float], None]:
        def changed(t: float, value: float) -> None:
            self._on_change(self.evse_id, role, t, value)

        return changed

    def _watched_changed(self, role: str) -> Callable[[float, float], None]:
        report = self._report(role)

        def changed(t: float, value: float) -> None:
            report(t, value)
            if role == "coil":
                self._coil_changed()
            elif role in ("lock_motor_lock", "lock_motor_unlock"):
                self._motor_changed()

        return changed

    # ------------------------------------------------------------ state

    def level(self, role: str) -> bool:
        """Whether a line is on now (watched or driven)."""
        if role in self.watched:
            return self.watched[role].on
        return self.driven[role].on if role in self.driven else False

    @property
    def plugged(self) -> bool:
        return self.level("plug")

    @property
    def contacts_closed(self) -> bool:
        return self.level("contactor_aux")

    # ------------------------------------------------------------ the EV

    def plug(self, plugged: bool) -> None:
        """The plug goes in or out (with a control pilot: the car's plug on CP as well)."""
        if "plug" in self.driven:
            self.driven["plug"].set(plugged)
        if self.car is not None:
            self.car.plug(plugged, time.monotonic())
        self.update_load()

    def tick(self, now: float) -> None:
        """Step the car on the control pilot (if any): it follows the measured duty and draws its current."""
        if self.car is not None:
            self.car.step(now, self.plugged and self.contacts_closed)
            self.update_load()

    # ------------------------------------------------------------ the contactor

    def _coil_changed(self) -> None:
        if self.welded:
            return
        if self._contact_timer is not None:
            self._contact_timer.cancel()
        energized = self.level("coil")
        self._contact_timer = self._loop.call_later(self.contactor_delay_s, self._set_contacts, energized)

    def _set_contacts(self, closed: bool) -> None:
        self._contact_timer = None
        if "contactor_aux" in self.driven:
            self.driven["contactor_aux"].set(closed)
        self.update_load()

    def weld(self) -> None:
        """The main contacts weld shut: the aux contact stays closed."""
        self.welded = True
        if self._contact_timer is not None:
            self._contact_timer.cancel()
        self._set_contacts(True)

    # ------------------------------------------------------------ the lock

    def _motor_changed(self) -> None:
        locking, unlocking = self.level("lock_motor_lock"), self.level("lock_motor_unlock")
        if self._lock_timer is not None:
            self._lock_timer.cancel()  # a movement cut short leaves the bolt where it was
            self._lock_timer = None
        if locking == unlocking or self.jammed:
            return
        self._lock_timer = self._loop.call_later(self.lock_travel_s, self._arrive, locking)

    def _arrive(self, locked: bool) -> None:
        self._lock_timer = None
        if not self.jammed and "lock_feedback" in self.driven:
            self.driven["lock_feedback"].set(locked)

    def jam(self) -> None:
        """The bolt stops moving."""
        self.jammed = True
        if self._lock_timer is not None:
            self._lock_timer.cancel()
            self._lock_timer = None

    # ------------------------------------------------------------ the meter

    def update_load(self) -> None:
        """The meter sees current only while plugged in with the contacts closed (on a pilot: what the car draws)."""
        flowing = self.plugged and self.contacts_closed
        if self.car is not None:
            current = self.car.car.current_a if flowing else 0.0
        else:
            current = self.charging_current_a if flowing else 0.0
        if self.meter is not None:
            self.meter.set_load(self.voltage_v, current)
        self._on_change(self.evse_id, "meter_current", time.monotonic(), current)

    def clear(self) -> None:
        """Healthy again: contacts follow the coil, the bolt moves, the car's pilot faults are gone."""
        self.welded = self.jammed = False
        self._coil_changed()
        if self.car is not None:
            self.car.fault("clear", time.monotonic())

    def close(self) -> None:
        for timer in (self._contact_timer, self._lock_timer):
            if timer is not None:
                timer.cancel()
        for watched in self.watched.values():
            watched.close()
        for driven in self.driven.values():
            driven.close()
        if self.car is not None:
            self.car.close()


class HarnessPlant:
    """Every EVSE of a real bench's profile on a harness pin factory."""

    def __init__(self, profile: BenchProfile, factory: Any, loop: asyncio.AbstractEventLoop, on_change: LineChange,
                 meters: dict[int, SimulatedMeter] | None = None) -> None:
        self.evses: dict[int, HarnessEvse] = {}
        self._task: asyncio.Task[None] | None = None
        try:
            for bench in profile.evses:
                evse = HarnessEvse(bench, factory, loop, on_change,
                                   contactor_delay_s=profile.plant.contactor_delay_s,
                                   lock_travel_s=profile.plant.lock_travel_s,
                                   meter=(meters or {}).get(bench.evse_id),
                                   car_max_current_a=profile.plant.car_max_current_a)
                evse.charging_current_a = profile.plant.charging_current_a
                evse.voltage_v = profile.plant.voltage_v
                self.evses[bench.evse_id] = evse
        except Exception:
            self.close()
            raise
        if any(evse.car is not None for evse in self.evses.values()):
            self._task = loop.create_task(self._tick(), name="harness-cars")

    async def _tick(self) -> None:
        """Step the cars on the control pilots every CAR_TICK_S."""
        while True:
            now = time.monotonic()
            for evse in self.evses.values():
                try:
                    evse.tick(now)
                except Exception:
                    log.exception("EVSE %d: stepping the car failed", evse.evse_id)
            await asyncio.sleep(CAR_TICK_S)

    def evse(self, evse_id: int) -> HarnessEvse:
        try:
            return self.evses[evse_id]
        except KeyError:
            raise LookupError(f"the bench has no EVSE {evse_id} wired") from None

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        for evse in self.evses.values():
            evse.close()
        self.evses = {}
