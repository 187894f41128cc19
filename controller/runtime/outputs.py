"""Driving one EVSE's outputs: the LEDs, the contactor and the lock motor, as the output policy decided.

The policy (controller.charging.outputs.decide_outputs) already holds every interlock; this module only acts on its
decision and never does more: it closes the contactor only when told to, and a lock move towards unlocked
that does not come from a fresh decision (an operator's retry after a fault) is checked against the unlock
interlock again here. A lock move runs as a task and asks for a new evaluation when it ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from controller.charging.outputs import Outputs, unlock_permitted
from controller.runtime.evse import EvseRecord, RuntimeContext
from controller.runtime.interlock import current_for_unlock
from drivers.interfaces import LockPosition

log = logging.getLogger("controller.runtime")  # one name for the whole runtime, as before the split


class OutputDriver:
    """Applies decided outputs to an EVSE's drivers and moves its lock (one lock task at a time)."""

    def __init__(self, ctx: RuntimeContext, request: Callable[[EvseRecord], None]) -> None:
        """``request`` asks for an evaluation of an EVSE soon (called when a lock move ends)."""
        self._ctx = ctx
        self._request = request

    def apply(self, e: EvseRecord, outputs: Outputs) -> None:
        """Bring the LEDs, contactor and lock of ``e`` to ``outputs``, touching only what differs."""
        hw = e.hw
        if hw.indicator.reserved_mode is not outputs.reserved_led:
            hw.indicator.set_reserved(outputs.reserved_led)
        wanted_status = (outputs.status_color, outputs.status_pattern)
        if hw.indicator.status is not None and hw.indicator.status != wanted_status:
            hw.indicator.set_status(*wanted_status)
        report = hw.contactor.report(self._ctx.mono())
        if outputs.contactor_closed and not report.commanded_closed:
            log.info("EVSE %d: closing contactor", e.evse_id)
            hw.contactor.close()
        elif not outputs.contactor_closed and (
            report.commanded_closed or getattr(hw.contactor, "close_pending", False)
        ):
            log.info("EVSE %d: opening contactor", e.evse_id)
            hw.contactor.open()
        if outputs.lock is not None and hw.lock is not None and (e.lock_task is None or e.lock_task.done()):
            lock_report = hw.lock.report()
            if lock_report.fault is None and (
                lock_report.commanded is not outputs.lock or lock_report.position is not outputs.lock
            ):
                e.lock_task = asyncio.ensure_future(self.move_lock(e, outputs.lock))

    def retry_faulted_lock(self, e: EvseRecord) -> None:
        """After an operator reset: drive a lock that failed to confirm once more to where it was commanded.

        Towards unlocked only if the unlock interlock allows it now; nothing while a lock move runs.
        """
        lock = e.hw.lock
        if lock is not None and (e.lock_task is None or e.lock_task.done()):
            report = lock.report()
            if report.fault is not None and self.lock_move_permitted(e, report.commanded):
                e.lock_task = asyncio.ensure_future(self.move_lock(e, report.commanded))

    def lock_move_permitted(self, e: EvseRecord, target: LockPosition) -> bool:
        """Locking is always safe; unlocking only under the unlock interlock (contactor open, no current)."""
        if target is not LockPosition.UNLOCKED:
            return True
        now = self._ctx.mono()
        return unlock_permitted(
            e.hw.contactor.report(now),
            current_for_unlock(e, now),
            meter_fitted=e.hw.meter is not None,
            threshold_a=self._ctx.settings.current_threshold_a,
        )

    async def move_lock(self, e: EvseRecord, target: LockPosition) -> None:
        """Move the lock of ``e`` to ``target``; log a fault or a driver failure; then ask for an evaluation."""
        lock = e.hw.lock
        assert lock is not None
        log.info("EVSE %d: %s", e.evse_id, "locking" if target is LockPosition.LOCKED else "unlocking")
        try:
            report = await (lock.lock() if target is LockPosition.LOCKED else lock.unlock())
            if report.fault is not None:
                log.warning("EVSE %d: lock fault: %s", e.evse_id, report.fault.detail or report.fault.kind)
        except Exception:
            log.exception("EVSE %d: lock driver failed", e.evse_id)
        finally:
            self._request(e)
