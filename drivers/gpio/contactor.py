"""Mains contactor on GPIO: a coil output and an optional aux (mirror) contact, supervised in time.

When the aux contact starts to disagree with the coil, a loop timer re-checks after the
supervision timeout (``drivers.supervision.contactor_fault``). A weld latches until
``reset_fault()``; a failure to close (or drop-out) opens the coil and clears once the
contactor has agreed with its command for ``fault_clear_s``.
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
from drivers.gpio.config import ContactorConfig
from drivers.interfaces import ContactorReport, Fault, FaultKind
from drivers.supervision import contactor_fault, contactor_fault_due, fault_clears, reclose_wait_s

log = logging.getLogger(__name__)

_DETAIL = {
    FaultKind.CONTACTOR_WELDED: "aux contact still closed {:.3f} s after the coil was released",
    FaultKind.CONTACTOR_FAILED_TO_CLOSE: "aux contact open {:.3f} s while the coil is energized",
}


class GpioContactor:
    """Implements ``drivers.interfaces.Contactor`` with gpiozero devices on an explicit factory.

    ``close()``/``open()`` are contactor commands; release the pins with ``aclose()`` or
    ``release()`` (which also de-energize the coil).
    """

    def __init__(
        self,
        config: ContactorConfig,
        *,
        bridge: LoopBridge,
        pin_factory: PinFactory,
        clock: Clock = time.monotonic,
    ) -> None:
        self._config = config
        self._bridge = bridge
        self._clock = clock
        self._subscribers: list[Callable[[ContactorReport], None]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._pending_close: asyncio.TimerHandle | None = None
        self._fault: Fault | None = None
        self._last_opened_at: float | None = None
        self._released = False
        now = clock()
        self._since = now
        self._coil = DigitalOutputDevice(
            config.coil_pin,
            active_high=config.coil_active_high,
            initial_value=False,
            pin_factory=require_factory(pin_factory),
        )
        self._aux: DebouncedInput | None = None
        if config.feedback_pin is not None:
            try:
                self._aux = DebouncedInput(
                    config.feedback_pin,
                    pull_up=config.feedback_pull_up,
                    active_high=config.feedback_active_high,
                    hold_s=config.feedback_debounce_s,
                    bridge=bridge,
                    clock=clock,
                    pin_factory=pin_factory,
                    on_change=self._on_feedback,
                )
            except Exception:
                self._coil.close()
                raise
        self._supervise(now)  # an aux contact closed at start-up is a weld candidate too

    # ------------------------------------------------------------ Contactor protocol

    @property
    def commanded_closed(self) -> bool:
        """True while the coil is energized."""
        return bool(self._coil.value)

    @property
    def feedback_closed(self) -> bool | None:
        """The debounced aux contact (main contacts closed?), None if no aux is fitted."""
        return None if self._aux is None else self._aux.value

    @property
    def close_pending(self) -> bool:
        """True while a close waits for the minimum re-close interval."""
        return self._pending_close is not None

    def close(self) -> None:
        """Energize the coil (after the minimum re-close interval, if one is still running)."""
        self._check_usable()
        if self.commanded_closed or self._pending_close is not None:
            return
        now = self._clock()
        wait_s = reclose_wait_s(self._last_opened_at, now, self._config.min_reclose_s)
        if wait_s > 0:
            log.info(
                "contactor %s: close deferred %.3f s (min re-close interval)", self._config.coil_pin, wait_s
            )
            self._pending_close = self._bridge.loop.call_later(wait_s, self._deferred_close)
            return
        self._set_coil(True, now)

    def open(self) -> None:
        """Release the coil; an open always wins over a close still waiting for its interval."""
        if self._released:
            return  # released pins are already de-energized
        self._cancel_pending_close()
        if self.commanded_closed:
            self._set_coil(False, self._clock())

    def report(self, now: float) -> ContactorReport:
        """Command, feedback and fault at ``now``; a mismatch already past its timeout shows as its fault."""
        fault = self._fault
        if fault is None or fault.kind is not FaultKind.CONTACTOR_WELDED:
            due = self._fault_at(now)
            if due is not None and (fault is None or due is FaultKind.CONTACTOR_WELDED):
                fault = Fault(due, now, self._detail(due, now))
        return ContactorReport(self.commanded_closed, self.feedback_closed, self._since, fault)

    def reset_fault(self) -> None:
        """Operator reset: forget the latched fault; a mismatch still present is timed afresh."""
        if self._fault is None:
            return
        log.warning("contactor %s: fault %s reset", self._config.coil_pin, self._fault.kind)
        self._fault = None
        now = self._clock()
        self._since = now
        self._supervise(now)
        self._publish(now)

    def subscribe(self, callback: Callable[[ContactorReport], None]) -> None:
        """Call ``callback(report)`` in the loop thread on every command, feedback or fault change."""
        self._subscribers.append(callback)

    # ------------------------------------------------------------ lifetime

    def release(self) -> None:
        """De-energize the coil and release the pins; idempotent."""
        if self._released:
            return
        self._released = True
        self._cancel_pending_close()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        try:
            self._coil.off()
        finally:
            self._coil.close()
            if self._aux is not None:
                self._aux.close()

    async def aclose(self) -> None:
        """Async form of ``release()`` for ``async with`` and the runtime's shutdown order."""
        self.release()

    async def __aenter__(self) -> GpioContactor:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # ------------------------------------------------------------ supervision

    def _check_usable(self) -> None:
        if self._released:
            raise RuntimeError(f"contactor {self._config.coil_pin}: used after release()")

    def _deferred_close(self) -> None:
        self._pending_close = None
        if not self._released and not self.commanded_closed:
            self._set_coil(True, self._clock())

    def _cancel_pending_close(self) -> None:
        if self._pending_close is not None:
            self._pending_close.cancel()
            self._pending_close = None

    def _set_coil(self, closed: bool, now: float) -> None:
        if closed:
            self._coil.on()
        else:
            self._coil.off()
            self._last_opened_at = now
        self._since = now
        self._supervise(now)
        self._publish(now)

    def _on_feedback(self, closed: bool, now: float) -> None:
        """Debounced aux change, in the loop thread."""
        self._since = now
        self._supervise(now)
        self._publish(now)

    def _mismatch_since(self) -> float | None:
        feedback = self.feedback_closed
        if feedback is None or feedback == self.commanded_closed:
            return None
        return self._since  # every command or feedback change flips agreement, so it began then

    def _fault_at(self, now: float) -> FaultKind | None:
        return contactor_fault(
            self.commanded_closed,
            self.feedback_closed,
            self._mismatch_since(),
            now,
            self._config.supervision_timeout_s,
        )

    def _detail(self, kind: FaultKind, now: float) -> str:
        since = self._mismatch_since()
        return _DETAIL.get(kind, "").format(now - since if since is not None else 0.0)

    def _supervise(self, now: float) -> None:
        """Apply the timing rule now and arm a timer for the next moment it could change."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._released:
            return
        kind = self._fault_at(now)
        if kind is not None:
            self._raise_fault(kind, now)
        due = contactor_fault_due(
            self.commanded_closed,
            self.feedback_closed,
            self._mismatch_since(),
            self._config.supervision_timeout_s,
        )
        if due is not None and (self._fault is None or self._fault.kind is not FaultKind.CONTACTOR_WELDED):
            self._arm(due - now)
        elif self._fault is not None and self._mismatch_since() is None:
            if fault_clears(self._fault.kind, self._since, now, self._config.fault_clear_s):
                log.info("contactor %s: fault %s cleared", self._config.coil_pin, self._fault.kind)
                self._fault = None
            elif self._fault.kind is not FaultKind.CONTACTOR_WELDED:
                self._arm(self._since + self._config.fault_clear_s - now)

    def _arm(self, delay_s: float) -> None:
        self._timer = self._bridge.loop.call_later(max(0.0, delay_s), self._recheck)

    def _recheck(self) -> None:
        self._timer = None
        before = self._fault
        now = self._clock()
        self._supervise(now)
        if self._fault != before:
            self._publish(now)

    def _raise_fault(self, kind: FaultKind, now: float) -> None:
        detail = self._detail(kind, now)
        if kind is FaultKind.CONTACTOR_FAILED_TO_CLOSE:
            self._cancel_pending_close()
            self._coil.off()  # never leave a coil energized whose contacts did not follow
            self._last_opened_at = now
            self._since = now
        if self._fault is not None and self._fault.kind in (FaultKind.CONTACTOR_WELDED, kind):
            return  # a weld outranks everything and stays; the same fault keeps its first time
        self._fault = Fault(kind, now, detail)
        log.error("contactor %s: %s (%s)", self._config.coil_pin, kind, detail)

    def _publish(self, now: float) -> None:
        report = self.report(now)
        for callback in list(self._subscribers):
            try:
                callback(report)
            except Exception:
                log.exception("contactor %s: subscriber failed", self._config.coil_pin)
