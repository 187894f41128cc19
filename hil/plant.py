"""The plant a real bench's harness plays, on its own GPIO pins wired to the DUT's pins.

Per EVSE: the EV's plug (an output into the DUT's plug input), the contactor's aux contact (an
output that follows the DUT's coil line after ``contactor_delay_s``, and can weld), the lock's
"locked" switch (an output that follows the DUT's lock motor lines after ``lock_travel_s``, and
can jam), and a simulated meter whose current follows the load (plugged in and contacts
closed). The DUT's LED lines are watched only. Every line change is reported to ``on_change``
with its monotonic time; gpiozero callbacks (lgpio's thread) are handed into the loop first.

Runs on any gpiozero pin factory: lgpio on the harness Pi, MockFactory in the tests.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from gpiozero import DigitalInputDevice, DigitalOutputDevice

from drivers.sim.meter_server import SimulatedMeter
from hil.profile import BenchProfile, EvseBench, LineSpec

log = logging.getLogger(__name__)

LineChange = Callable[[int, str, float, float], None]
"""on_change(evse_id, role, monotonic_s, value): a line took ``value`` (1.0 on, 0.0 off)."""


class _Watched:
    """A DUT output read by a harness input pin; reports changes in the loop."""

    def __init__(self, spec: LineSpec, factory: Any, loop: asyncio.AbstractEventLoop,
                 changed: Callable[[float, float], None]) -> None:
        self.spec = spec
        self._loop = loop
        self._changed = changed
        self.device = DigitalInputDevice(spec.harness, pull_up=None, active_state=spec.active_high,
                                         pin_factory=factory)
        self.device.when_activated = self._edge
        self.device.when_deactivated = self._edge

    @property
    def on(self) -> bool:
        return bool(self.device.is_active)

    def _edge(self) -> None:  # gpiozero's thread (lgpio) or the caller's (mock): hand over with the time
        self._loop.call_soon_threadsafe(self._changed, time.monotonic(), 1.0 if self.on else 0.0)

    def close(self) -> None:
        self.device.when_activated = None
        self.device.when_deactivated = None
        self.device.close()


class _Driven:
    """A DUT input driven by a harness output pin; reports what it drives."""

    def __init__(self, spec: LineSpec, factory: Any, changed: Callable[[float, float], None]) -> None:
        self.spec = spec
        self._changed = changed
        self.device = DigitalOutputDevice(spec.harness, active_high=spec.active_high, initial_value=False,
                                          pin_factory=factory)

    @property
    def on(self) -> bool:
        return bool(self.device.value)

    def set(self, on: bool) -> None:
        if on != self.on:
            self.device.value = on
            self._changed(time.monotonic(), 1.0 if on else 0.0)

    def close(self) -> None:
        self.device.close()


class HarnessEvse:
    """The plant of one EVSE on harness pins."""

    def __init__(self, bench: EvseBench, factory: Any, loop: asyncio.AbstractEventLoop, on_change: LineChange,
                 *, contactor_delay_s: float, lock_travel_s: float, meter: SimulatedMeter | None) -> None:
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
        self.watched: dict[str, _Watched] = {}
        self.driven: dict[str, _Driven] = {}
        for role, spec in bench.lines.items():
            if spec.observed:
                self.watched[role] = _Watched(spec, factory, loop, self._watched_changed(role))
            else:
                self.driven[role] = _Driven(spec, factory, self._report(role))

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
        """The plug goes in or out."""
        if "plug" in self.driven:
            self.driven["plug"].set(plugged)
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
        """The meter sees current only while plugged in with the contacts closed."""
        current = self.charging_current_a if self.plugged and self.contacts_closed else 0.0
        if self.meter is not None:
            self.meter.set_load(self.voltage_v, current)
        self._on_change(self.evse_id, "meter_current", time.monotonic(), current)

    def clear(self) -> None:
        """Healthy again: contacts follow the coil, the bolt moves."""
        self.welded = self.jammed = False
        self._coil_changed()

    def close(self) -> None:
        for timer in (self._contact_timer, self._lock_timer):
            if timer is not None:
                timer.cancel()
        for watched in self.watched.values():
            watched.close()
        for driven in self.driven.values():
            driven.close()


class HarnessPlant:
    """Every EVSE of a real bench's profile on a harness pin factory."""

    def __init__(self, profile: BenchProfile, factory: Any, loop: asyncio.AbstractEventLoop, on_change: LineChange,
                 meters: dict[int, SimulatedMeter] | None = None) -> None:
        self.evses: dict[int, HarnessEvse] = {}
        try:
            for bench in profile.evses:
                evse = HarnessEvse(bench, factory, loop, on_change,
                                   contactor_delay_s=profile.plant.contactor_delay_s,
                                   lock_travel_s=profile.plant.lock_travel_s,
                                   meter=(meters or {}).get(bench.evse_id))
                evse.charging_current_a = profile.plant.charging_current_a
                evse.voltage_v = profile.plant.voltage_v
                self.evses[bench.evse_id] = evse
        except Exception:
            self.close()
            raise

    def evse(self, evse_id: int) -> HarnessEvse:
        try:
            return self.evses[evse_id]
        except KeyError:
            raise LookupError(f"the bench has no EVSE {evse_id} wired") from None

    def close(self) -> None:
        for evse in self.evses.values():
            evse.close()
        self.evses = {}
