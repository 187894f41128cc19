"""A harness pin on one wire to the DUT: ``WatchedLine`` reads a DUT output, ``DrivenLine`` drives a DUT input (or a
switch of the harness's own boards, e.g. the car simulator's relays). Changes are reported with their monotonic time;
gpiozero callbacks (lgpio's thread) are handed into the loop first. Runs on any gpiozero pin factory."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from gpiozero import DigitalInputDevice, DigitalOutputDevice

from hil.profile import LineSpec


class WatchedLine:
    """A DUT output read by a harness input pin; reports changes in the loop."""

    def __init__(self, spec: LineSpec, factory: Any, loop: asyncio.AbstractEventLoop,
                 changed: Callable[[float, float], None]) -> None:
        """An input on the harness pin; ``changed(t, value)`` hears every edge, in ``loop``."""
        self.spec = spec
        self._loop = loop
        self._changed = changed
        self.device = DigitalInputDevice(spec.harness, pull_up=None, active_state=spec.active_high,
                                         pin_factory=factory)
        self.device.when_activated = self._edge
        self.device.when_deactivated = self._edge

    @property
    def on(self) -> bool:
        """The DUT's line is on now."""
        return bool(self.device.is_active)

    def _edge(self) -> None:  # gpiozero's thread (lgpio) or the caller's (mock): hand over with the time
        self._loop.call_soon_threadsafe(self._changed, time.monotonic(), 1.0 if self.on else 0.0)

    def close(self) -> None:
        """Stop hearing edges, release the pin."""
        self.device.when_activated = None
        self.device.when_deactivated = None
        self.device.close()


class DrivenLine:
    """A DUT input driven by a harness output pin; reports what it drives."""

    def __init__(self, spec: LineSpec, factory: Any, changed: Callable[[float, float], None]) -> None:
        """An output on the harness pin, off; ``changed(t, value)`` hears what it drives."""
        self.spec = spec
        self._changed = changed
        self.device = DigitalOutputDevice(spec.harness, active_high=spec.active_high, initial_value=False,
                                          pin_factory=factory)

    @property
    def on(self) -> bool:
        """The line is driven on now."""
        return bool(self.device.value)

    def set(self, on: bool) -> None:
        """Drive the line on or off (a change is reported)."""
        if on != self.on:
            self.device.value = on
            self._changed(time.monotonic(), 1.0 if on else 0.0)

    def close(self) -> None:
        """Release the pin."""
        self.device.close()
