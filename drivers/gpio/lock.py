"""Connector lock on GPIO: two H-bridge motor lines and an optional "locked" feedback switch.

A command pulses the motor for ``pulse_s``, brakes (both lines off), reads the debounced
feedback and retries after ``retry_backoff_s`` until ``retries`` are spent, then reports
LOCK_FAILED_LOCK / LOCK_FAILED_UNLOCK. A newer command supersedes a running one. Without a
feedback switch the position is assumed from the last completed pulse (time-based locks).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from types import TracebackType

from gpiozero import DigitalOutputDevice

from drivers.bridge import LoopBridge
from drivers.gpio._input import Clock, DebouncedInput, PinFactory, require_factory
from drivers.gpio.config import LockConfig
from drivers.interfaces import Fault, LockPosition, LockReport
from drivers.supervision import lock_fault, lock_idle_fault, lock_position

log = logging.getLogger(__name__)


class GpioLock:
    """Implements ``drivers.interfaces.Lock``; every gpiozero device uses the given factory."""

    def __init__(
        self,
        config: LockConfig,
        *,
        bridge: LoopBridge,
        pin_factory: PinFactory,
        clock: Clock = time.monotonic,
    ) -> None:
        self._config = config
        self._bridge = bridge
        self._clock = clock
        self._subscribers: list[Callable[[LockReport], None]] = []
        self._commanded = LockPosition.UNKNOWN
        self._assumed = LockPosition.UNKNOWN
        self._fault: Fault | None = None
        self._motor_running = False
        self._busy = False
        self._generation = 0  # bumped by every command and by close(); older commands stand down
        self._closed = False
        self._published: LockReport | None = None
        factory = require_factory(pin_factory)
        devices: list[DigitalOutputDevice] = []
        try:
            self._lock_line = DigitalOutputDevice(
                config.lock_pin,
                active_high=config.motor_active_high,
                initial_value=False,
                pin_factory=factory,
            )
            devices.append(self._lock_line)
            self._unlock_line = DigitalOutputDevice(
                config.unlock_pin,
                active_high=config.motor_active_high,
                initial_value=False,
                pin_factory=factory,
            )
            devices.append(self._unlock_line)
            self._feedback: DebouncedInput | None = None
            if config.feedback_pin is not None:
                self._feedback = DebouncedInput(
                    config.feedback_pin,
                    pull_up=config.feedback_pull_up,
                    active_high=config.feedback_active_high,
                    hold_s=config.feedback_debounce_s,
                    bridge=bridge,
                    clock=clock,
                    pin_factory=factory,
                    on_change=self._on_feedback,
                )
        except Exception:
            for device in devices:
                device.close()
            raise

    # ------------------------------------------------------------ Lock protocol

    async def lock(self) -> LockReport:
        """Drive to LOCKED and confirm it; the report carries LOCK_FAILED_LOCK if it never confirms."""
        return await self._move(LockPosition.LOCKED)

    async def unlock(self) -> LockReport:
        """Drive to UNLOCKED and confirm it; the interlock (caller) has made sure no current flows."""
        return await self._move(LockPosition.UNLOCKED)

    def report(self) -> LockReport:
        """Commanded position, confirmed (or assumed) position and the active fault."""
        feedback = None if self._feedback is None else self._feedback.value
        position = lock_position(feedback, self._motor_running, self._assumed)
        return LockReport(self._commanded, position, self._fault)

    def subscribe(self, callback: Callable[[LockReport], None]) -> None:
        """Call ``callback(report)`` in the loop thread whenever the report changes."""
        self._subscribers.append(callback)

    @property
    def busy(self) -> bool:
        """True while a lock/unlock command is pulsing, confirming or backing off."""
        return self._busy

    # ------------------------------------------------------------ lifetime

    def close(self) -> None:
        """Brake the motor, stop any running command and release the pins; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._generation += 1
        try:
            self._brake()
        finally:
            self._lock_line.close()
            self._unlock_line.close()
            if self._feedback is not None:
                self._feedback.close()

    async def aclose(self) -> None:
        """Async form of ``close()``."""
        self.close()

    async def __aenter__(self) -> GpioLock:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # ------------------------------------------------------------ movement

    async def _move(self, target: LockPosition) -> LockReport:
        if self._closed:
            raise RuntimeError(f"lock {self._config.lock_pin}: used after close()")
        self._generation += 1
        generation = self._generation
        self._brake()  # a superseded command may have left the motor running
        self._commanded = target
        self._busy = True
        self._publish()
        try:
            attempts = 0
            while True:
                attempts += 1
                await self._pulse(target, generation)
                if generation != self._generation:
                    return self.report()
                position = await self._confirm(target)
                if generation != self._generation:
                    return self.report()
                kind = lock_fault(target, position, attempts, self._config.retries)
                if position == target:
                    self._fault = None
                    break
                if kind is not None:
                    self._fault = Fault(kind, self._clock(), f"{position} after {attempts} pulse(s)")
                    log.error("lock %s: %s (%s)", self._config.lock_pin, kind, self._fault.detail)
                    break
                log.warning(
                    "lock %s: %s not confirmed (%s), retrying", self._config.lock_pin, target, position
                )
                self._publish()
                await asyncio.sleep(self._config.retry_backoff_s)
                if generation != self._generation:
                    return self.report()
        finally:
            if generation == self._generation:
                self._brake()
                self._busy = False
                self._publish()
        return self.report()

    async def _pulse(self, target: LockPosition, generation: int) -> None:
        line, other = (
            (self._lock_line, self._unlock_line)
            if target is LockPosition.LOCKED
            else (self._unlock_line, self._lock_line)
        )
        other.off()  # never both H-bridge inputs on
        line.on()
        self._motor_running = True
        self._publish()
        try:
            await asyncio.sleep(self._config.pulse_s)
        finally:
            if generation == self._generation:
                self._brake()
        self._publish()

    async def _confirm(self, target: LockPosition) -> LockPosition:
        if self._feedback is None:
            self._assumed = target  # time-based lock: a full pulse is taken as done
            return target
        locked = await self._feedback.settled(4 * self._config.feedback_debounce_s + 0.05)
        return LockPosition.LOCKED if locked else LockPosition.UNLOCKED

    def _brake(self) -> None:
        self._lock_line.off()
        self._unlock_line.off()
        self._motor_running = False

    # ------------------------------------------------------------ feedback

    def _on_feedback(self, locked: bool, now: float) -> None:
        """Debounced feedback change in the loop thread: while idle, it is checked against the command."""
        if not self._busy:
            position = LockPosition.LOCKED if locked else LockPosition.UNLOCKED
            kind = lock_idle_fault(self._commanded, position)
            if kind is not None and self._fault is None:
                self._fault = Fault(kind, now, f"feedback went {position} while {self._commanded}")
                log.error("lock %s: %s (%s)", self._config.lock_pin, kind, self._fault.detail)
            elif kind is None and self._fault is not None:
                log.info(
                    "lock %s: %s cleared, feedback back at %s",
                    self._config.lock_pin,
                    self._fault.kind,
                    position,
                )
                self._fault = None
        self._publish()

    def _publish(self) -> None:
        report = self.report()
        if report == self._published:
            return
        self._published = report
        for callback in list(self._subscribers):
            try:
                callback(report)
            except Exception:
                log.exception("lock %s: subscriber failed", self._config.lock_pin)
