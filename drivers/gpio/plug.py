"""Plug-present input on GPIO, debounced in software (MockPin and some backends ignore bounce_time)."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType

from drivers.bridge import LoopBridge
from drivers.gpio._input import Clock, DebouncedInput, PinFactory
from drivers.gpio.config import PlugConfig


class GpioPlugSensor:
    """Implements ``drivers.interfaces.PlugSensor``; subscribers get each debounced change in the loop."""

    def __init__(
        self,
        config: PlugConfig,
        *,
        bridge: LoopBridge,
        pin_factory: PinFactory,
        clock: Clock = time.monotonic,
    ) -> None:
        self._config = config
        self._subscribers: list[Callable[[bool], None]] = []
        self._input = DebouncedInput(
            config.pin,
            pull_up=config.pull_up,
            active_high=config.active_high,
            hold_s=config.debounce_s,
            bridge=bridge,
            clock=clock,
            pin_factory=pin_factory,
            on_change=self._on_change,
        )
        self._closed = False

    @property
    def plugged(self) -> bool:
        """The debounced plug-present reading."""
        return self._input.value

    def subscribe(self, callback: Callable[[bool], None]) -> None:
        """Call ``callback(plugged)`` in the loop thread after every debounced change."""
        self._subscribers.append(callback)

    def _on_change(self, plugged: bool, now: float) -> None:
        for callback in list(self._subscribers):
            callback(plugged)

    def close(self) -> None:
        """Release the pin; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._input.close()

    async def aclose(self) -> None:
        """Async form of ``close()``."""
        self.close()

    async def __aenter__(self) -> GpioPlugSensor:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
