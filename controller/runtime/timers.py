"""The runtime's timers: reservation expiry, the store retry and each EVSE's next deadline; nothing polls.

Reservation expiry runs from one timer set to ``core.next_expiry()`` (re-checked at least hourly, so a
wall-clock jump cannot strand an expiry); while the store cannot write, one cheap write is retried every
STORE_RETRY_S; an EVSE is evaluated again at the earliest deadline of its model or session.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from controller.charging.evse import EvseState
from controller.runtime.evse import EvseRecord, RuntimeContext

_MAX_TIMER_S = 3600.0  # re-check at least hourly, so a wall-clock jump cannot strand an expiry
STORE_RETRY_S = 2.0  # while the store cannot write, try again this often (one cheap write)


class Timers:
    """Arms and cancels the expiry, store-retry and per-EVSE deadline timers on the runtime's loop."""

    def __init__(self, ctx: RuntimeContext, request: Callable[[EvseRecord], None]) -> None:
        """``request`` asks for an evaluation of an EVSE soon (what a deadline timer does when it fires)."""
        self._ctx = ctx
        self._request = request
        self._expiry_timer: asyncio.TimerHandle | None = None
        self._store_timer: asyncio.TimerHandle | None = None

    def cancel_all(self) -> None:
        """Cancel every timer (at shutdown)."""
        if self._expiry_timer is not None:
            self._expiry_timer.cancel()
        if self._store_timer is not None:
            self._store_timer.cancel()
        for e in self._ctx.evses.values():
            if e.timer is not None:
                e.timer.cancel()

    # ------------------------------------------------------------ per-EVSE deadlines

    def arm_evse(self, e: EvseRecord, state: EvseState) -> None:
        """Evaluate ``e`` again just after the earliest deadline of its model and session (if any)."""
        deadlines = [d for d in (state.deadline, e.session.deadline()) if d is not None]
        if e.timer is not None:
            e.timer.cancel()
            e.timer = None
        if deadlines and self._ctx.loop is not None:
            delay = max(0.0, min(deadlines) - self._ctx.mono()) + 0.001
            e.timer = self._ctx.loop.call_later(delay, self._request, e)

    # ------------------------------------------------------------ reservation expiry

    def arm_expiry(self) -> None:
        """Set the one expiry timer to the core's next expiry (at most _MAX_TIMER_S away)."""
        loop = self._ctx.loop
        if loop is None or self._ctx.stopping:
            return
        if self._expiry_timer is not None:
            self._expiry_timer.cancel()
            self._expiry_timer = None
        nxt = self._ctx.core.next_expiry()
        if nxt is None:
            return
        delay = min(max(0.0, (nxt - self._ctx.wall()).total_seconds()), _MAX_TIMER_S)
        self._expiry_timer = loop.call_later(delay + 0.001, self.check_expiry)

    def check_expiry(self) -> None:
        """End reservations that are due now and re-arm the timers (the expiry timer calls this)."""
        self._expiry_timer = None
        try:
            self._ctx.core.expire_due()
        finally:
            self.arm_expiry()
            self.arm_store_retry()

    # ------------------------------------------------------------ store retry

    def arm_store_retry(self) -> None:
        """While the store cannot write (or owes deletes), retry it every STORE_RETRY_S; nothing waits on it."""
        loop = self._ctx.loop
        if loop is None or self._ctx.stopping or self._store_timer is not None:
            return
        if self._ctx.core.store_fault is None and self._ctx.core.unsynced_ends == 0:
            return
        self._store_timer = loop.call_later(STORE_RETRY_S, self._retry_store)

    def _retry_store(self) -> None:
        """One store retry (the timer's callback), then re-arm while it still fails."""
        self._store_timer = None
        self._ctx.core.retry_store()
        self.arm_store_retry()
