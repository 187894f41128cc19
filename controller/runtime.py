"""The one asyncio runtime: drivers in, reservation core and policy in the middle, outputs out.

All state lives in the loop. Driver callbacks arrive through the bridge and only request an
evaluation; an evaluation reads every driver of one EVSE, runs the pure EVSE model, session
and output policy, feeds changes to the reservation core and applies the outputs. Reservation
expiry runs from one timer set to ``core.next_expiry()``; nothing polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from controller.evse import EvseModel, EvseReadings, EvseState
from controller.facade import EventHub, SimFaultKind, SimPlantControls, TokenOutcome, TokenVerdict, UnknownEvse
from controller.outputs import OutputInputs, Outputs, decide_outputs, lock_confirmed_locked, unlock_permitted
from controller.reservation import ReservationCore
from controller.session import ChargingSession, Phase
from controller.types import (
    Connector,
    ConnectorState,
    CoreEvent,
    EvseReservedChanged,
    Reservation,
    ReservationCheck,
    ReservationCheckStatus,
    ReservationEnd,
    ReservationResult,
    same_token,
)
from drivers.interfaces import (
    Contactor,
    ContactorReport,
    Fault,
    Indicator,
    LedMode,
    Lock,
    LockPosition,
    Meter,
    MeterSnapshot,
    PlugSensor,
    TokenReader,
)
from drivers.redact import redact_token

log = logging.getLogger(__name__)

# An authorized session holds its EVSE before the plug arrives: otherwise a walk-in could take the
# EVSE that a just-used global reservation's car is about to plug into (the core would see it free).
_SESSION_OCCUPIES = (Phase.AUTHORIZED, Phase.LOCKING, Phase.CHARGING, Phase.STOPPING)
_MAX_TIMER_S = 3600.0  # re-check at least hourly, so a wall-clock jump cannot strand an expiry
STORE_RETRY_S = 2.0  # while the store cannot write, try again this often (one cheap write)


@dataclass
class EvseHardware:
    """The drivers of one EVSE, as the composition root built them."""

    evse_id: int
    connectors: tuple[Connector, ...]
    contactor: Contactor
    plug: PlugSensor
    indicator: Indicator
    lock: Lock | None = None
    meter: Meter | None = None
    token_reader: TokenReader | None = None
    lock_when_reserved: bool = True
    meter_fault_state: ConnectorState = ConnectorState.FAULTED


@dataclass(frozen=True, slots=True)
class RuntimeSettings:
    """Site-wide timing and thresholds (A, s)."""

    current_threshold_a: float = 0.5
    fault_hold_s: float = 5.0
    authorize_timeout_s: float = 60.0


@dataclass
class _Evse:
    hw: EvseHardware
    model: EvseModel
    session: ChargingSession
    enabled: bool = True
    snapshot: MeterSnapshot | None = None
    state: EvseState | None = None
    outputs: Outputs | None = None
    published: dict[str, Any] = field(default_factory=dict)
    timer: asyncio.TimerHandle | None = None
    lock_task: asyncio.Task[Any] | None = None
    pending: bool = False
    closed_seen: bool = False  # the contactor was closed (command or aux) at some evaluation
    open_since: float | None = None  # when it was first seen open again (command and aux) after that

    @property
    def evse_id(self) -> int:
        return self.hw.evse_id


def _contactor_closed(report: ContactorReport | None) -> bool:
    """Closed as far as we know: the aux contact, or the command where no aux is fitted."""
    if report is None:
        return False
    return report.feedback_closed if report.feedback_closed is not None else report.commanded_closed


class Runtime:
    """The running controller: implements controller.facade.Charger."""

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
    ) -> None:
        self.core = core
        self.settings = settings or RuntimeSettings()
        self.events = EventHub()
        self.sim: SimPlantControls | None = _SimControls(self, sim) if sim is not None else None
        self._wall = wall_clock or (lambda: datetime.now().astimezone())
        self._mono = mono_clock
        self._on_stop = list(on_stop)
        self._evses: dict[int, _Evse] = {}
        for hw in evses:
            model = EvseModel(
                hw.evse_id,
                hw.connectors,
                fault_hold_s=self.settings.fault_hold_s,
                meter_fault_state=hw.meter_fault_state,
            )
            session = ChargingSession(authorize_timeout_s=self.settings.authorize_timeout_s)
            self._evses[hw.evse_id] = _Evse(hw, model, session)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._expiry_timer: asyncio.TimerHandle | None = None
        self._store_timer: asyncio.TimerHandle | None = None
        self._stopping = False
        self._tasks: set[asyncio.Task[Any]] = set()
        core.subscribe(self._on_core_event)

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Wire driver callbacks, evaluate every EVSE once and arm the expiry timer."""
        self._loop = asyncio.get_running_loop()
        for e in self._evses.values():
            hw = e.hw
            hw.contactor.subscribe(self._requester(e))
            hw.plug.subscribe(self._requester(e))
            if hw.lock is not None:
                hw.lock.subscribe(self._requester(e))
            if hw.token_reader is not None:
                hw.token_reader.subscribe(self._token_handler(e))
        for event in self.core.startup_events:
            self._publish_core_event(event)
        for e in self._evses.values():
            self._evaluate(e)
        self._arm_expiry()
        self._arm_store_retry()
        log.info("controller running with %d EVSEs", len(self._evses))

    async def stop(self) -> None:
        """Safe shutdown: contactors open (and confirmed), then LEDs off, then drivers closed."""
        if self._stopping:
            return
        self._stopping = True
        if self._expiry_timer is not None:
            self._expiry_timer.cancel()
        if self._store_timer is not None:
            self._store_timer.cancel()
        for e in self._evses.values():
            if e.timer is not None:
                e.timer.cancel()
            e.hw.contactor.open()
        deadline = self._mono() + 1.0
        while self._mono() < deadline and any(
            _contactor_closed(e.hw.contactor.report(self._mono())) for e in self._evses.values()
        ):
            await asyncio.sleep(0.02)
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for e in self._evses.values():
            e.hw.indicator.set_reserved(LedMode.OFF)
        for closer in self._on_stop:
            try:
                await closer()
            except Exception:
                log.exception("error while shutting down")
        log.info("controller stopped")

    def _requester(self, e: _Evse) -> Callable[[object], None]:
        """A driver callback that asks for an evaluation of ``e``."""

        def request(_event: object) -> None:
            self._request(e)

        return request

    def _token_handler(self, e: _Evse) -> Callable[[str], None]:
        """A token reader callback: present the token at ``e``."""

        def present(token: str) -> None:
            self._spawn(self.present_token(e.evse_id, token))

        return present

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_log_task_error)

    # ------------------------------------------------------------ evaluation

    def _request(self, e: _Evse) -> None:
        """Coalesce evaluation requests from callbacks into one evaluation soon, in the loop."""
        if e.pending or self._stopping or self._loop is None:
            return
        e.pending = True
        self._loop.call_soon(self._evaluate_pending, e)

    def _request_all(self) -> None:
        for e in self._evses.values():
            self._request(e)

    def _evaluate_pending(self, e: _Evse) -> None:
        e.pending = False
        self._evaluate(e)

    def _readings(self, e: _Evse, now: float) -> EvseReadings:
        hw = e.hw
        return EvseReadings(
            plugged=hw.plug.plugged,
            contactor=hw.contactor.report(now),
            lock=hw.lock.report() if hw.lock is not None else None,
            meter_fault=hw.meter.fault(now) if hw.meter is not None else None,
            enabled=e.enabled,
            session_active=e.session.view.phase in _SESSION_OCCUPIES,
        )

    def _current_a(self, e: _Evse, now: float) -> float | None:
        """Largest phase current of a fresh, healthy reading; None when unknown."""
        if e.hw.meter is None or e.snapshot is None or e.hw.meter.fault(now) is not None:
            return None
        return e.snapshot.max_current_a()

    def _track_opening(self, e: _Evse, report: ContactorReport, now: float) -> None:
        """Note when the contactor, once closed, is seen open again (command and aux contact)."""
        if report.commanded_closed or report.feedback_closed is True:
            e.closed_seen, e.open_since = True, None
        elif e.closed_seen and e.open_since is None:
            e.open_since = now

    def _reading_after_opening(self, e: _Evse) -> bool:
        """The meter reading was completed after the contactor, once closed, was seen open again.

        Only such a reading may let the lock go: one from before (even from before the session's current
        started) says nothing about what flows now, so the lock waits for the next poll.
        """
        if not e.closed_seen:
            return True
        return e.open_since is not None and e.snapshot is not None and e.snapshot.timestamp >= e.open_since

    def _current_for_unlock(self, e: _Evse, now: float) -> float | None:
        """The current the unlock interlock may trust (see ``_reading_after_opening``); None fails closed."""
        return self._current_a(e, now) if self._reading_after_opening(e) else None

    def _evaluate(self, e: _Evse) -> None:
        """Read, decide and act for one EVSE; never raises into the loop."""
        if self._stopping:
            return
        try:
            self._evaluate_unsafe(e)
        except Exception:
            log.exception("evaluation of EVSE %d failed; outputs held as they were", e.evse_id)

    def _evaluate_unsafe(self, e: _Evse) -> None:
        now = self._mono()
        hw = e.hw
        current = self._current_a(e, now)
        threshold = self.settings.current_threshold_a
        for _ in range(4):  # the session and the model feed each other; settle in a few steps
            readings = self._readings(e, now)
            if readings.contactor is not None:
                self._track_opening(e, readings.contactor, now)
            after_opening = self._reading_after_opening(e)
            state = e.model.update(readings, now)
            self._push_to_core_safely(e, state)
            lock = readings.lock
            before = e.session.view.phase
            phase = e.session.step(
                now=now,
                plugged=state.plugged,
                faulted=state.faulted or state.unavailable,
                lock_locked=lock_confirmed_locked(lock, lock_fitted=hw.lock is not None),
                lock_unlocked=lock is None or lock.position is LockPosition.UNLOCKED,
                contactor_closed_confirmed=_contactor_closed(readings.contactor),
                contactor_open_confirmed=readings.contactor is not None
                and not readings.contactor.commanded_closed
                and readings.contactor.feedback_closed is not True,
                current_a=current,
                current_threshold_a=threshold,
                unlock_permitted=unlock_permitted(
                    readings.contactor,
                    current if after_opening else None,
                    meter_fitted=hw.meter is not None,
                    threshold_a=threshold,
                ),
            )
            if phase is before:
                break
        e.state = state
        outputs = decide_outputs(
            OutputInputs(
                state=state,
                session=e.session.view,
                reserved=self._reserved_safely(e),
                lock_when_reserved=hw.lock_when_reserved,
                lock_fitted=hw.lock is not None,
                lock=readings.lock,
                contactor=readings.contactor,
                current_a=current,
                reading_after_opening=after_opening,
                meter_fitted=hw.meter is not None,
                current_threshold_a=threshold,
            )
        )
        e.outputs = outputs
        self._apply(e, outputs)
        self._arm_evse_timer(e, state)
        self._publish_state(e)

    def _push_to_core_safely(self, e: _Evse, state: EvseState) -> None:
        """Feed the core; a failure there is logged and the evaluation goes on to drive the outputs."""
        try:
            self._push_to_core(e, state)
        except Exception:
            log.exception("EVSE %d: reservation core failed on a state change; outputs still driven", e.evse_id)

    def _reserved_safely(self, e: _Evse) -> bool:
        """Is the EVSE reserved? On a core failure, what the core last said (outputs must still be driven)."""
        try:
            return e.evse_id in self.core.reserved_evses()
        except Exception:
            log.exception("EVSE %d: reservation core failed; using its last reserved set", e.evse_id)
            return e.evse_id in self.core.last_reserved_evses

    def _push_to_core(self, e: _Evse, state: EvseState) -> None:
        for connector_id, connector_state in state.connector_states.items():
            if self.core.connector_state(e.evse_id, connector_id) is not connector_state:
                self.core.set_connector_state(e.evse_id, connector_id, connector_state)
        if self.core.is_plugged_in(e.evse_id) != state.plugged:
            self.core.set_plugged_in(e.evse_id, state.plugged)

    def _apply(self, e: _Evse, outputs: Outputs) -> None:
        hw = e.hw
        if hw.indicator.reserved_mode is not outputs.reserved_led:
            hw.indicator.set_reserved(outputs.reserved_led)
        wanted_status = (outputs.status_color, outputs.status_pattern)
        if hw.indicator.status is not None and hw.indicator.status != wanted_status:
            hw.indicator.set_status(*wanted_status)
        report = hw.contactor.report(self._mono())
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
                e.lock_task = asyncio.ensure_future(self._move_lock(e, outputs.lock))

    def _lock_move_permitted(self, e: _Evse, target: LockPosition) -> bool:
        """Locking is always safe; unlocking only under the unlock interlock (contactor open, no current)."""
        if target is not LockPosition.UNLOCKED:
            return True
        now = self._mono()
        return unlock_permitted(
            e.hw.contactor.report(now),
            self._current_for_unlock(e, now),
            meter_fitted=e.hw.meter is not None,
            threshold_a=self.settings.current_threshold_a,
        )

    async def _move_lock(self, e: _Evse, target: LockPosition) -> None:
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

    def _arm_evse_timer(self, e: _Evse, state: EvseState) -> None:
        deadlines = [d for d in (state.deadline, e.session.deadline()) if d is not None]
        if e.timer is not None:
            e.timer.cancel()
            e.timer = None
        if deadlines and self._loop is not None:
            delay = max(0.0, min(deadlines) - self._mono()) + 0.001
            e.timer = self._loop.call_later(delay, self._request, e)

    # ------------------------------------------------------------ meters

    def on_meter_result(self, evse_id: int, result: MeterSnapshot | Fault) -> None:
        """A meter poll finished for this EVSE (called in the loop by the poller)."""
        e = self._evses.get(evse_id)
        if e is None:
            return
        if isinstance(result, MeterSnapshot):
            e.snapshot = result
        self._request(e)

    # ------------------------------------------------------------ reservations

    def _on_core_event(self, event: CoreEvent) -> None:
        self._publish_core_event(event)
        if self._loop is not None:
            self._request_all()
            self._arm_expiry()
            self._arm_store_retry()

    def _arm_store_retry(self) -> None:
        """While the store cannot write (or owes deletes), retry it every STORE_RETRY_S; nothing waits on it."""
        if self._loop is None or self._stopping or self._store_timer is not None:
            return
        if self.core.store_fault is None and self.core.unsynced_ends == 0:
            return
        self._store_timer = self._loop.call_later(STORE_RETRY_S, self._retry_store)

    def _retry_store(self) -> None:
        self._store_timer = None
        self.core.retry_store()
        self._arm_store_retry()

    def _publish_core_event(self, event: CoreEvent) -> None:
        kind = (
            "evse_reserved"
            if isinstance(event, EvseReservedChanged)
            else "reservation_end"
            if isinstance(event, ReservationEnd)
            else "reservation_update"
        )
        self.events.publish({"type": kind, **event.to_dict()})

    def _arm_expiry(self) -> None:
        if self._loop is None or self._stopping:
            return
        if self._expiry_timer is not None:
            self._expiry_timer.cancel()
            self._expiry_timer = None
        nxt = self.core.next_expiry()
        if nxt is None:
            return
        delay = min(max(0.0, (nxt - self._wall()).total_seconds()), _MAX_TIMER_S)
        self._expiry_timer = self._loop.call_later(delay + 0.001, self.check_expiry)

    def check_expiry(self) -> None:
        """End reservations that are due now (the expiry timer calls this; tests with a fake clock too)."""
        self._expiry_timer = None
        try:
            self.core.expire_due()
        finally:
            self._arm_expiry()
            self._arm_store_retry()

    # ------------------------------------------------------------ Charger facade

    def evse_ids(self) -> list[int]:
        """Configured EVSE ids."""
        return list(self._evses)

    def _evse(self, evse_id: int) -> _Evse:
        e = self._evses.get(evse_id)
        if e is None:
            raise UnknownEvse(evse_id)
        return e

    def reserve(self, reservation: Reservation) -> ReservationResult:
        """ReserveNow; the LEDs and locks follow through the core's events. StoreError: refused, nothing changed."""
        try:
            return self.core.reserve_now(reservation)
        finally:
            self._arm_store_retry()

    def cancel(self, reservation_id: int) -> bool:
        """CancelReservation. StoreError: refused, the reservation is kept."""
        try:
            return self.core.cancel_reservation(reservation_id)
        finally:
            self._arm_store_retry()

    def reservations(self) -> list[Reservation]:
        """Live reservations in arrival order."""
        return self.core.reservations()

    def check(self, check: ReservationCheck) -> ReservationCheckStatus:
        """The four-way reservation check."""
        return self.core.exists_reservation(check)

    async def set_enabled(self, evse_id: int, enabled: bool) -> None:
        """Operator enable/disable (disabled EVSEs are Unavailable)."""
        e = self._evse(evse_id)
        e.enabled = enabled
        self._evaluate(e)

    async def reset_faults(self, evse_id: int) -> list[str]:
        """Operator reset after a repair: forget latched faults and re-evaluate.

        A welded contactor's latch is dropped; a lock that failed to confirm is driven once more to
        where it was commanded (towards unlocked only if the unlock interlock allows it now). Safe at
        any time: a cause still present is seen again (a weld within the contactor's supervision
        timeout, a jam by the lock's confirmation). Returns the faults active right after.
        """
        e = self._evse(evse_id)
        log.warning("EVSE %d: operator fault reset", evse_id)
        e.hw.contactor.reset_fault()
        lock = e.hw.lock
        if lock is not None and (e.lock_task is None or e.lock_task.done()):
            report = lock.report()
            if report.fault is not None and self._lock_move_permitted(e, report.commanded):
                e.lock_task = asyncio.ensure_future(self._move_lock(e, report.commanded))
        self._evaluate(e)
        return list(e.state.faults) if e.state is not None else []

    async def present_token(self, evse_id: int, id_token: str) -> TokenOutcome:
        """A token at an EVSE: use its reservation, refuse, allow, or stop the running session."""
        e = self._evse(evse_id)
        outcome = self._decide_token(e, id_token)
        now = self._mono()
        if outcome.verdict is TokenVerdict.STOPPED:
            e.session.request_stop(now)
        elif outcome.may_charge:
            e.session.authorize(id_token, now, reservation_used=outcome.verdict is TokenVerdict.RESERVATION_USED)
            if outcome.reservation_id is not None:
                self.core.use_reservation(outcome.reservation_id)
        log.info("EVSE %d: token %s -> %s (%s)", evse_id, redact_token(id_token), outcome.verdict, outcome.reason)
        self.events.publish({"type": "token", **outcome.to_dict()})
        self._evaluate(e)
        return outcome

    def _decide_token(self, e: _Evse, token: str) -> TokenOutcome:
        view = e.session.view
        evse_id = e.evse_id
        same = same_token(view.token, token)
        if view.phase in (Phase.LOCKING, Phase.CHARGING) and same:
            return TokenOutcome(evse_id, TokenVerdict.STOPPED, "the same token stops the running session")
        if view.phase is not Phase.IDLE:
            return TokenOutcome(evse_id, TokenVerdict.REFUSED_EVSE_NOT_READY, f"a session is {view.phase.value}")
        state = e.state
        if state is not None and (state.faulted or state.unavailable):
            why = "faulted: " + ", ".join(state.faults) if state.faulted else "unavailable"
            return TokenOutcome(evse_id, TokenVerdict.REFUSED_EVSE_NOT_READY, f"EVSE is {why}")
        rid = self.core.matches_reserved_identifier(token, evse_id)
        if self.core.is_evse_reserved(evse_id):
            if rid is None:
                return TokenOutcome(
                    evse_id, TokenVerdict.REFUSED_RESERVED_FOR_OTHER, "reserved for another token; reservation kept"
                )
            return TokenOutcome(evse_id, TokenVerdict.RESERVATION_USED, "reserved for this token", rid)
        if rid is not None:
            return TokenOutcome(evse_id, TokenVerdict.RESERVATION_USED, "the token's reservation is used here", rid)
        if not self.core.is_charging_possible(evse_id):
            return TokenOutcome(
                evse_id,
                TokenVerdict.REFUSED_GLOBAL_RESERVATIONS,
                "charging here would leave a reserved car without an EVSE",
            )
        return TokenOutcome(evse_id, TokenVerdict.ALLOWED, "not reserved; charging possible")

    # ------------------------------------------------------------ status

    def evse_status(self, evse_id: int) -> dict[str, Any]:
        """One EVSE's entry of ``status()``."""
        e = self._evse(evse_id)
        hw = e.hw
        now = self._mono()
        state = e.state
        contactor = hw.contactor.report(now)
        lock = hw.lock.report() if hw.lock is not None else None
        status = hw.indicator.status
        session_connector = state.connector_states if state is not None else {}
        main_state = next(iter(session_connector.values()), ConnectorState.AVAILABLE)
        faults = list(state.faults) if state is not None else []
        if lock is None:
            lock_text = "unlocked"
        elif lock.fault is not None:
            lock_text = "fault"
        else:
            lock_text = {LockPosition.LOCKED: "locked", LockPosition.UNLOCKED: "unlocked"}.get(lock.position, "moving")
        snapshot = e.snapshot
        return {
            "id": evse_id,
            "state": main_state.value,
            "enabled": e.enabled,
            "plugged_in": state.plugged if state is not None else hw.plug.plugged,
            "reserved": evse_id in self.core.reserved_evses(),
            "reserved_led": hw.indicator.reserved_mode.value,
            "status_led": None if status is None else {"color": status[0].value, "pattern": status[1].value},
            "lock": lock_text,
            "contactor": "closed" if _contactor_closed(contactor) else "open",
            "charging": e.session.view.phase is Phase.CHARGING and _contactor_closed(contactor),
            "phase": e.session.view.phase.value,
            "power_w": None if snapshot is None else snapshot.power_w,
            "energy_kwh": None if snapshot is None else snapshot.energy_import_kwh,
            "faults": [str(f) for f in faults],
            "connectors": [
                {"id": c.id, "type": c.type.value, "state": self.core.connector_state(evse_id, c.id).value}
                for c in hw.connectors
            ],
        }

    def status(self) -> dict[str, Any]:
        """The documented status document (see controller.facade.Charger)."""
        return {
            "evses": [self.evse_status(evse_id) for evse_id in self._evses],
            "reservations": [r.to_dict() for r in self.core.reservations()],
            "store": self.store_status(),
        }

    def store_status(self) -> dict[str, Any]:
        """The reservation store's health: ``ok``, the ``error`` while it cannot write, ends not yet written."""
        fault = self.core.store_fault
        return {"ok": fault is None, "error": fault, "unsynced_ends": self.core.unsynced_ends}

    def _publish_state(self, e: _Evse) -> None:
        doc = self.evse_status(e.evse_id)
        key = {k: v for k, v in doc.items() if k not in ("power_w", "energy_kwh")}
        if key != e.published:
            e.published = key
            self.events.publish({"type": "evse_state", **doc})


class _SimControls:
    """``--sim`` controls: the plant's, plus the operator reset that clearing a weld needs."""

    def __init__(self, runtime: Runtime, plant: SimPlantControls) -> None:
        self._runtime = runtime
        self._plant = plant

    async def plug(self, evse_id: int) -> None:
        self._runtime._evse(evse_id)
        await self._plant.plug(evse_id)

    async def unplug(self, evse_id: int) -> None:
        self._runtime._evse(evse_id)
        await self._plant.unplug(evse_id)

    async def fault(self, evse_id: int, kind: SimFaultKind) -> None:
        e = self._runtime._evse(evse_id)
        await self._plant.fault(evse_id, kind)
        if SimFaultKind(kind) is SimFaultKind.CLEAR:
            await self._runtime.reset_faults(e.evse_id)


def _log_task_error(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background task failed", exc_info=task.exception())
