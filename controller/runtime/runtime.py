"""The one asyncio runtime: drivers in, reservation core and policy in the middle, outputs out.

All state lives in the loop. Driver callbacks arrive through the bridge and only request an
evaluation; an evaluation reads every driver of one EVSE, runs the pure EVSE model, session
and output policy, feeds changes to the reservation core and applies the outputs. Reservation
expiry runs from one timer set to ``core.next_expiry()``; nothing polls.

``Runtime`` is the lifecycle, the wiring and the controller.port.charger.Charger front door; the work is done
by its collaborators: controller.runtime.evaluation (reading and evaluating an EVSE),
controller.runtime.outputs (LEDs, contactor, lock), controller.runtime.timers (expiry, store retry,
deadlines), controller.runtime.tokens (answering tokens), controller.runtime.limit_settings (limits and
pauses), controller.runtime.status (the status document and its events), controller.runtime.durable (the
store's writer thread: reservations are committed off the loop, the caller answered after the commit),
controller.runtime.loop_lag (the loop's lag and the callbacks that held it) and controller.runtime.sim (the
``--sim`` controls), over the records of controller.runtime.evse and the interlock evidence of
controller.runtime.interlock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from controller.charging.evse import EvseModel
from controller.charging.session import RUNNING, ChargingSession
from controller.core.pending import Change
from controller.core.reservation import ReservationCore
from controller.core.types import (
    CoreEvent,
    Reservation,
    ReservationCheck,
    ReservationCheckStatus,
    ReservationResult,
)
from controller.port.charger import (
    ReservationUse,
    SimPlantControls,
    Supply,
    TokenAuthority,
    TokenOutcome,
    UnlockOutcome,
)
from controller.port.events import EventHub
from controller.runtime.durable import StoreWriter
from controller.runtime.evaluation import Evaluator
from controller.runtime.evse import EvseHardware, EvseRecord, RuntimeContext, RuntimeSettings
from controller.runtime.interlock import contactor_closed
from controller.runtime.limit_settings import LimitSettings
from controller.runtime.loop_lag import LoopLag
from controller.runtime.outputs import OutputDriver
from controller.runtime.sim import SimControls
from controller.runtime.status import StatusReporter
from controller.runtime.timers import Timers
from controller.runtime.tokens import TokenAuthorizer
from drivers.interfaces import Fault, LedMode, LockPosition, Meter, MeterSnapshot

log = logging.getLogger("controller.runtime")  # one name for the whole runtime
T = TypeVar("T")


class Runtime:
    """The running controller: implements controller.port.charger.Charger."""

    def __init__(
        self,
        evses: Sequence[EvseHardware],
        core: ReservationCore,
        *,
        settings: RuntimeSettings | None = None,
        wall_clock: Callable[[], datetime] | None = None,
        mono_clock: Callable[[], float] = time.monotonic,
        sim: SimPlantControls | None = None,
        on_stop: Sequence[Callable[[], Awaitable[None]]] = (),
        read_meter_soon: Callable[[Meter], None] | None = None,
    ) -> None:
        """Build one record per EVSE and the collaborators; nothing runs until ``start``.

        ``read_meter_soon(meter)`` asks the meter's poller for a reading out of turn (after a contactor opened)."""
        self.core = core
        self.settings = settings or RuntimeSettings()
        self.events = EventHub()
        self._on_stop = list(on_stop)
        records: dict[int, EvseRecord] = {}
        for hw in evses:
            model = EvseModel(
                hw.evse_id,
                hw.connectors,
                fault_hold_s=self.settings.fault_hold_s,
                meter_fault_state=hw.meter_fault_state,
            )
            session = ChargingSession(authorize_timeout_s=self.settings.authorize_timeout_s)
            records[hw.evse_id] = EvseRecord(hw, model, session)
        self._ctx = RuntimeContext(
            evses=records,
            core=core,
            settings=self.settings,
            events=self.events,
            wall=wall_clock or (lambda: datetime.now().astimezone()),
            mono=mono_clock,
            read_meter_soon=read_meter_soon,
        )
        self._status = StatusReporter(self._ctx)
        self._timers = Timers(self._ctx, self._request)
        self._outputs = OutputDriver(self._ctx, self._request)
        self._evaluator = Evaluator(self._ctx, self._outputs, self._timers, self._status, self._request)
        self._tokens = TokenAuthorizer(self._ctx, self._evaluator.evaluate)
        self._limits = LimitSettings(self._ctx, self._evaluator.evaluate)
        self.sim: SimPlantControls | None = None if sim is None else SimControls(sim, self._ctx.evse, self.reset_faults)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._evaluations_done = dict.fromkeys(records, 0)  # requested evaluations run, per EVSE (loop health)
        self.writer: StoreWriter | None = None  # the store's writer thread, from start (before: writes in place)
        self.loop_lag = LoopLag()
        core.subscribe(self._on_core_event)

    # The records and clocks, as tests and the HIL interlock monitor read them (one copy: the context's).

    @property
    def _evses(self) -> dict[int, EvseRecord]:
        """The per-EVSE records by id."""
        return self._ctx.evses

    @property
    def _wall(self) -> Callable[[], datetime]:
        """The wall clock (reservation expiry)."""
        return self._ctx.wall

    @property
    def _mono(self) -> Callable[[], float]:
        """The monotonic clock (timeouts, meter freshness, the unlock interlock)."""
        return self._ctx.mono

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Wire driver callbacks, evaluate every EVSE once and arm the expiry timer."""
        loop = self._ctx.loop = asyncio.get_running_loop()
        self.loop_lag.start(loop)
        store = self.core.store
        if store is not None and self.writer is None:
            self.writer = StoreWriter(self.core, store, loop, self._after_write)
            self.core.defer_writes(self.writer.submit, on_held=self._on_core_change)
        for e in self._ctx.evses.values():
            hw = e.hw
            hw.contactor.subscribe(self._requester(e))
            hw.plug.subscribe(self._requester(e))
            if hw.lock is not None:
                hw.lock.subscribe(self._requester(e))
            if hw.token_reader is not None:
                hw.token_reader.subscribe(self._token_handler(e))
            if hw.pilot is not None:
                hw.pilot.start(e.evse_id, self._ctx.mono)
        for event in self.core.startup_events:
            self._status.publish_core_event(event)
        for e in self._ctx.evses.values():
            self._evaluator.evaluate(e)
        self._timers.arm_expiry()
        self._timers.arm_store_retry()
        log.info("controller running with %d EVSEs", len(self._ctx.evses))

    async def stop(self) -> None:
        """Safe shutdown: contactors open (and confirmed), then LEDs off, then drivers closed."""
        if self._ctx.stopping:
            return
        self._ctx.stopping = True
        self._timers.cancel_all()
        evses = self._ctx.evses.values()
        for e in evses:
            e.hw.contactor.open()
        mono = self._ctx.mono
        deadline = mono() + 1.0
        while mono() < deadline and any(contactor_closed(e.hw.contactor.report(mono())) for e in evses):
            await asyncio.sleep(0.02)
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for e in evses:
            e.hw.indicator.set_reserved(LedMode.OFF)
            if e.hw.pilot is not None:
                await e.hw.pilot.stop()  # its output goes to its resting level (-12 V) when the drivers close
        self.loop_lag.stop()
        if self.writer is not None:
            await self.writer.close()  # what was acknowledged is on disk; nothing is written after this
            self.core.defer_writes(None)
        for closer in self._on_stop:
            try:
                await closer()
            except Exception:
                log.exception("error while shutting down")
        log.info("controller stopped")

    # ------------------------------------------------------------ wiring

    def _requester(self, e: EvseRecord) -> Callable[[object], None]:
        """A driver callback that asks for an evaluation of ``e``."""

        def request(_event: object) -> None:
            self._request(e)

        return request

    def _token_handler(self, e: EvseRecord) -> Callable[[str], None]:
        """A token reader callback: present the token at ``e``."""

        def present(token: str) -> None:
            self._spawn(self.present_token(e.evse_id, token))

        return present

    def _spawn(self, coro: Awaitable[Any]) -> None:
        """Run ``coro`` as a task the runtime cancels at stop; its failure is logged."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_log_task_error)

    def _request(self, e: EvseRecord) -> None:
        """Coalesce evaluation requests from callbacks into one evaluation soon, in the loop."""
        loop = self._ctx.loop
        if e.pending or self._ctx.stopping or loop is None:
            return
        e.pending = True
        loop.call_soon(self._evaluate_pending, e)

    def _evaluate_pending(self, e: EvseRecord) -> None:
        """The requested evaluation of ``e`` (later requests ask for a new one)."""
        e.pending = False
        self._evaluator.evaluate(e)
        self._evaluations_done[e.evse_id] += 1

    def request_evaluations(self) -> None:
        """Ask for an evaluation of every EVSE the way a driver callback does (the loop-health probe's question)."""
        for e in self._ctx.evses.values():
            self._request(e)

    def evaluations_done(self) -> dict[int, int]:
        """How many requested evaluations of each EVSE have run so far (the loop-health probe's evidence)."""
        return dict(self._evaluations_done)

    def on_meter_result(self, evse_id: int, result: MeterSnapshot | Fault) -> None:
        """A meter poll finished for this EVSE (called in the loop by the poller)."""
        e = self._ctx.evses.get(evse_id)
        if e is None:
            return
        if isinstance(result, MeterSnapshot):
            e.snapshot = result
        self._request(e)

    def _on_core_event(self, event: CoreEvent) -> None:
        """A core event: publish it, re-evaluate every EVSE (LEDs, locks) and re-arm the core's timers."""
        self._status.publish_core_event(event)
        self._on_core_change()

    def _on_core_change(self) -> None:
        """The core's memory changed (its events may wait for a write): re-evaluate every EVSE, re-arm timers."""
        if self._ctx.loop is not None:
            self.request_evaluations()
            self._timers.arm_expiry()
            self._timers.arm_store_retry()

    def _after_write(self, failed: bool) -> None:
        """A store transaction settled: retry a failing store; after an undo re-evaluate every EVSE (LEDs)."""
        if self._ctx.loop is None or self._ctx.stopping:
            return
        self._timers.arm_store_retry()
        if failed:
            self.request_evaluations()
            self._timers.arm_expiry()

    def check_expiry(self) -> None:
        """End reservations that are due now (the expiry timer calls this; tests with a fake clock too)."""
        self._timers.check_expiry()

    # ------------------------------------------------------------ Charger facade

    def evse_ids(self) -> list[int]:
        """Configured EVSE ids."""
        return list(self._ctx.evses)

    async def reserve(self, reservation: Reservation) -> ReservationResult:
        """ReserveNow, answered once durable; the LEDs and locks follow through the core's events.

        StoreError: refused, nothing changed (the change made in memory meanwhile was undone).
        """
        return await self._durable(lambda: self.core.begin_reserve(reservation))

    async def cancel(self, reservation_id: int) -> bool:
        """CancelReservation, answered once durable. StoreError: refused, the reservation is kept."""
        return await self._durable(lambda: self.core.begin_cancel(reservation_id))

    async def _durable(self, begin: Callable[[], Change[T]]) -> T:
        """Make a change (in memory at once) and wait until the writer made it durable; before start, in place."""
        try:
            change = begin()
            if self.writer is not None:
                await self.writer.settle(change)
        finally:
            self._timers.arm_store_retry()
        return change.result

    def reservations(self) -> list[Reservation]:
        """Live reservations in arrival order."""
        return self.core.reservations()

    def check(self, check: ReservationCheck) -> ReservationCheckStatus:
        """The four-way reservation check."""
        return self.core.exists_reservation(check)

    async def set_enabled(self, evse_id: int, enabled: bool) -> None:
        """Operator enable/disable (disabled EVSEs are Unavailable)."""
        e = self._ctx.evse(evse_id)
        e.enabled = enabled
        self._evaluator.evaluate(e)

    async def set_current_limit(self, evse_id: int, amps: float | None) -> float | None:
        """Operator/energy-manager current limit (A) per EVSE (controller.runtime.limit_settings)."""
        return self._limits.set_current_limit(evse_id, amps)

    async def set_profile_limit(self, evse_id: int | None, amps: float | None) -> None:
        """The CSMS's charging-profile limit (A per phase) for an EVSE or (None) the station."""
        self._limits.set_profile_limit(evse_id, amps)

    async def set_charging_allowed(self, evse_id: int, allowed: bool) -> None:
        """Pause (False) or resume (True) charging within the session (an energy manager's enable)."""
        self._limits.set_charging_allowed(evse_id, allowed)

    def supply(self, evse_id: int | None) -> Supply:
        """How the EVSE (None: the station) is fed, for converting watts to amperes."""
        return self._limits.supply(evse_id)

    async def reset_faults(self, evse_id: int) -> list[str]:
        """Operator reset after a repair: forget latched faults and re-evaluate.

        A welded contactor's latch is dropped; a lock that failed to confirm is driven once more to
        where it was commanded (towards unlocked only if the unlock interlock allows it now). Safe at
        any time: a cause still present is seen again (a weld within the contactor's supervision
        timeout, a jam by the lock's confirmation). Returns the faults active right after.
        """
        e = self._ctx.evse(evse_id)
        log.warning("EVSE %d: operator fault reset", evse_id)
        e.hw.contactor.reset_fault()
        self._outputs.retry_faulted_lock(e)
        self._evaluator.evaluate(e)
        return list(e.state.faults) if e.state is not None else []

    async def present_token(self, evse_id: int, id_token: str) -> TokenOutcome:
        """A token at an EVSE: use its reservation, refuse, allow, or stop the running session."""
        return await self._tokens.present(evse_id, id_token)

    async def unlock_connector(self, evse_id: int) -> UnlockOutcome:
        """OCPP UnlockConnector: release the lock under the unlock interlock, never while a session holds the car."""
        e = self._ctx.evse(evse_id)
        lock = e.hw.lock
        if lock is None:
            return UnlockOutcome.UNLOCKED
        if e.session.view.phase in RUNNING:
            return UnlockOutcome.SESSION_RUNNING
        if e.lock_task is not None and not e.lock_task.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(e.lock_task)
        report = lock.report()
        if report.fault is None and report.position is LockPosition.UNLOCKED:
            return UnlockOutcome.UNLOCKED
        if not self._outputs.lock_move_permitted(e, LockPosition.UNLOCKED):
            log.warning("EVSE %d: unlock refused by the interlock", evse_id)
            return UnlockOutcome.FAILED
        log.warning("EVSE %d: unlock requested remotely", evse_id)
        e.lock_task = asyncio.ensure_future(self._outputs.move_lock(e, LockPosition.UNLOCKED))
        await asyncio.shield(e.lock_task)
        report = lock.report()
        ok = report.fault is None and report.position is LockPosition.UNLOCKED
        return UnlockOutcome.UNLOCKED if ok else UnlockOutcome.FAILED

    async def stop_session(self, evse_id: int) -> bool:
        """A remote stop (OCPP RequestStopTransaction): as if the session's token was presented again."""
        return self._tokens.stop(evse_id)

    def set_token_authority(self, authority: TokenAuthority | None,
                            reservation_use: ReservationUse = ReservationUse.AT_AUTHORIZATION) -> None:
        """Ask ``authority`` (the OCPP front) about every presented token from now on; None: decide locally.

        ``reservation_use``: when a token's reservation is used up (controller.port.charger.ReservationUse)."""
        self._tokens.authority = authority
        self._tokens.reservation_use = reservation_use if authority is not None else ReservationUse.AT_AUTHORIZATION

    def evse_status(self, evse_id: int) -> dict[str, Any]:
        """One EVSE's entry of ``status()``."""
        return self._status.evse_status(evse_id)

    def status(self) -> dict[str, Any]:
        """The documented status document (see controller.port.charger.Charger), with the loop's lag."""
        return {**self._status.status(), "loop": self.loop_lag.summary()}

    def store_status(self) -> dict[str, Any]:
        """The reservation store's health: ``ok``, the ``error`` while it cannot write, ends not yet written."""
        return self._status.store_status()


def _log_task_error(task: asyncio.Task[Any]) -> None:
    """Done callback of a spawned task: log its exception, if any."""
    if not task.cancelled() and task.exception() is not None:
        log.error("background task failed", exc_info=task.exception())
