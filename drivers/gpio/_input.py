"""A gpiozero input whose edges cross into the loop through the bridge and are debounced there.

Shared by the plug sensor, the contactor's aux contact and the lock's feedback switch. The
gpiozero callback only posts; the pin is re-read in the loop thread, so a burst of edges costs
one re-read each and the last level wins.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeAlias

from gpiozero import DigitalInputDevice

from drivers.bridge import LoopBridge
from drivers.debounce import Debouncer

Clock: TypeAlias = Callable[[], float]
PinFactory: TypeAlias = Any  # a gpiozero Factory; gpiozero has no type hints


def require_factory(pin_factory: PinFactory) -> PinFactory:
    """Refuse the implicit global factory: every device gets its factory passed in."""
    if pin_factory is None:
        raise ValueError("pin_factory: required (no global gpiozero Device.pin_factory is used)")
    return pin_factory


class DebouncedInput:
    """One digital input read as "condition true/false", debounced in the loop thread.

    ``active_high`` is the level that means true, whatever the pull; gpiozero ties the active
    level to the pull, so the reading is inverted here when the two disagree.
    """

    def __init__(
        self,
        pin: str,
        *,
        pull_up: bool | None,
        active_high: bool,
        hold_s: float,
        bridge: LoopBridge,
        clock: Clock,
        pin_factory: PinFactory,
        on_change: Callable[[bool, float], None],
    ) -> None:
        self._bridge = bridge
        self._clock = clock
        self._on_change = on_change
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        if pull_up is None:
            self._device = DigitalInputDevice(
                pin, pull_up=None, active_state=active_high, pin_factory=require_factory(pin_factory)
            )
            self._invert = False
        else:
            self._device = DigitalInputDevice(pin, pull_up=pull_up, pin_factory=require_factory(pin_factory))
            self._invert = (not pull_up) != active_high  # gpiozero: pull-up means active low
        self._debouncer = Debouncer(self.raw, hold_s)
        # gpiozero keeps these bound methods strongly (per-device handler table); we keep the device.
        self._device.when_activated = self._on_edge
        self._device.when_deactivated = self._on_edge

    @property
    def raw(self) -> bool:
        """The undebounced condition, read from the pin now."""
        return bool(self._device.is_active) != self._invert

    @property
    def value(self) -> bool:
        """The debounced condition."""
        return self._debouncer.value

    @property
    def pending(self) -> bool:
        """True while a change waits out its hold time."""
        return self._debouncer.pending

    def _on_edge(self) -> None:
        """gpiozero callback (any thread): only hand over to the loop."""
        self._bridge.post(self.sample)

    def sample(self) -> None:
        """Re-read the pin in the loop thread and report a debounced change; re-arm while pending."""
        if self._closed:
            return
        now = self._clock()
        changed = self._debouncer.update(self.raw, now)
        self._arm(now)
        if changed:
            self._on_change(self._debouncer.value, now)

    def _arm(self, now: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self._debouncer.deadline()
        if deadline is not None:
            self._timer = self._bridge.loop.call_later(max(0.0, deadline - now), self.sample)

    async def settled(self, timeout_s: float) -> bool:
        """Wait until no change pends (at most ``timeout_s`` of loop time); return the debounced value."""
        loop = self._bridge.loop
        end = loop.time() + timeout_s
        self.sample()
        while self._debouncer.pending:
            remaining = end - loop.time()
            if remaining <= 0:
                break  # still chattering: report the last stable value
            deadline = self._debouncer.deadline()
            wait = 0.0 if deadline is None else max(0.0, deadline - self._clock())
            await asyncio.sleep(min(wait + 0.001, remaining))
            self.sample()
        return self._debouncer.value

    def close(self) -> None:
        """Stop sampling and release the pin; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._device.when_activated = None
        self._device.when_deactivated = None
        self._device.close()
