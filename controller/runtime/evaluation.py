"""Evaluating one EVSE: read every driver, settle the EVSE model and charging session, feed the core, act.

An evaluation never raises into the loop, and a failing reservation core never stops it from driving the
outputs: the core is fed and asked "reserved?" through guards that log and go on (with the core's last
reserved set). The unlock interlock gets only the meter current read after the contactor opened (see
controller.runtime.interlock).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from controller.charging.evse import EvseReadings, EvseState
from controller.charging.outputs import OutputInputs, decide_outputs, lock_confirmed_locked, unlock_permitted
from controller.charging.pilot import car_ready
from controller.charging.session import Phase
from controller.runtime.evse import EvseRecord, RuntimeContext
from controller.runtime.interlock import contactor_closed, current_a, reading_after_opening, track_opening
from controller.runtime.limits import offered_limits, own_limit, site_limit
from controller.runtime.outputs import OutputDriver
from controller.runtime.status import StatusReporter
from controller.runtime.timers import Timers
from drivers.interfaces import LockPosition

log = logging.getLogger("controller.runtime")  # one name for the whole runtime, as before the split

# An authorized session holds its EVSE before the plug arrives: otherwise a walk-in could take the
# EVSE that a just-used global reservation's car is about to plug into (the core would see it free).
_SESSION_OCCUPIES = (Phase.AUTHORIZED, Phase.LOCKING, Phase.CHARGING, Phase.STOPPING)


class Evaluator:
    """Reads, decides and acts for one EVSE at a time: model, session, core, output policy, outputs, timer, status."""

    def __init__(self, ctx: RuntimeContext, outputs: OutputDriver, timers: Timers, status: StatusReporter,
                 request: Callable[[EvseRecord], None] | None = None) -> None:
        """Evaluate the EVSEs of ``ctx``, acting through ``outputs``, arming ``timers`` and publishing ``status``;
        ``request(e)`` asks for another EVSE's evaluation soon (its share of the site limit changed)."""
        self._request = request
        self._ctx = ctx
        self._outputs = outputs
        self._timers = timers
        self._status = status

    def evaluate(self, e: EvseRecord) -> None:
        """Read, decide and act for one EVSE; never raises into the loop."""
        if self._ctx.stopping:
            return
        try:
            self._evaluate_unsafe(e)
        except Exception:
            log.exception("evaluation of EVSE %d failed; outputs held as they were", e.evse_id)

    def readings(self, e: EvseRecord, now: float) -> EvseReadings:
        """What the EVSE model reads: plug, contactor, lock, meter health, enabled, and whether a session holds it."""
        hw = e.hw
        return EvseReadings(
            plugged=hw.plug.plugged,
            contactor=hw.contactor.report(now),
            lock=hw.lock.report() if hw.lock is not None else None,
            meter_fault=hw.meter.fault(now) if hw.meter is not None else None,
            enabled=e.enabled,
            # a session still holding its reservation (1.6: used at the plug) leaves the EVSE to that reservation
            session_active=e.session.view.phase in _SESSION_OCCUPIES
            and not (e.session.view.phase is Phase.AUTHORIZED and e.reservation_pending is not None),
            extra_faults=hw.pilot.faults() if hw.pilot is not None else (),
        )

    def _evaluate_unsafe(self, e: EvseRecord) -> None:
        """One evaluation: settle model and session, decide the outputs, apply them, arm the timer, publish."""
        now = self._ctx.mono()
        hw = e.hw
        current = current_a(e, now)
        threshold = self._ctx.settings.current_threshold_a
        if hw.pilot is not None:  # before the model reads the faults: an over-current latched now acts now
            closed = e.outputs is not None and e.outputs.contactor_closed
            hw.pilot.check_current(e.evse_id, current if closed else None, now)
        for _ in range(4):  # the session and the model feed each other; settle in a few steps
            if e.reservation_pending is not None:
                self._settle_pending_reservation(e)
            readings = self.readings(e, now)
            if readings.contactor is not None and track_opening(e, readings.contactor, now):
                self._read_meter_soon(e)
            after_opening = reading_after_opening(e)
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
                contactor_closed_confirmed=contactor_closed(readings.contactor),
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
        pilot = hw.pilot
        if pilot is not None:
            e.max_current_a, e.cable_a = pilot.max_current_a, pilot.cable_a
        limit = self._limits(e)
        outputs = decide_outputs(
            OutputInputs(
                state=state,
                session=e.session.view,
                reserved=self._reserved_safely(e) and e.reservation_pending is None,
                lock_when_reserved=hw.lock_when_reserved,
                lock_fitted=hw.lock is not None,
                lock=readings.lock,
                contactor=readings.contactor,
                current_a=current,
                reading_after_opening=after_opening,
                meter_fitted=hw.meter is not None,
                current_threshold_a=threshold,
                paused=not e.charging_allowed or limit == 0,
                car_ready=car_ready(pilot.view() if pilot is not None else None),
            )
        )
        e.outputs = outputs
        self._outputs.apply(e, outputs)
        if pilot is not None:
            pilot.apply(e.evse_id, may_charge=outputs.may_offer, limit_a=limit)
        self._timers.arm_evse(e, state)
        self._status.publish_state(e)

    def _limits(self, e: EvseRecord) -> float | None:
        """``e``'s limit now. Without a shared site limit it is its own (O(1)); with one every EVSE's share is
        computed and the others whose limit changed are evaluated soon."""
        if site_limit(self._ctx) is None:
            e.limit_a = own_limit(e)
            return e.limit_a
        limits = offered_limits(self._ctx)
        for other in self._ctx.evses.values():
            if other is not e and other.limit_a != limits[other.evse_id] and self._request is not None:
                self._request(other)
        e.limit_a = limits[e.evse_id]
        return e.limit_a

    def _read_meter_soon(self, e: EvseRecord) -> None:
        """The contactor was just seen open: ask for a meter reading now, so the unlock interlock (which trusts only a
        reading completed after the opening) is satisfied in one bus round trip instead of up to a poll interval."""
        meter, read_soon = e.hw.meter, self._ctx.read_meter_soon
        if meter is None or read_soon is None:
            return
        try:
            read_soon(meter)
        except Exception:
            log.exception("EVSE %d: could not ask for a meter reading; the next poll will do", e.evse_id)

    def _settle_pending_reservation(self, e: EvseRecord) -> None:
        """A session holding its reservation until the transaction starts (1.6): the cable is in, so it is used now,
        before the plug's Occupied reaches the core (which would cancel it); a session that ended without the plug
        leaves the reservation as it was."""
        rid, phase = e.reservation_pending, e.session.view.phase
        if phase is Phase.IDLE:
            e.reservation_pending = None
            log.info("EVSE %d: session ended before the plug; reservation %s kept", e.evse_id, rid)
        elif phase is not Phase.AUTHORIZED or e.hw.plug.plugged:
            e.reservation_pending = None
            try:
                if rid is not None:
                    self._ctx.core.use_reservation(rid)
            except Exception:
                log.exception("EVSE %d: reservation core failed to use reservation %s", e.evse_id, rid)

    def _push_to_core_safely(self, e: EvseRecord, state: EvseState) -> None:
        """Feed the core; a failure there is logged and the evaluation goes on to drive the outputs."""
        try:
            self._push_to_core(e, state)
        except Exception:
            log.exception("EVSE %d: reservation core failed on a state change; outputs still driven", e.evse_id)

    def _reserved_safely(self, e: EvseRecord) -> bool:
        """Is the EVSE reserved? On a core failure, what the core last said (outputs must still be driven)."""
        core = self._ctx.core
        try:
            return e.evse_id in core.reserved_evses()
        except Exception:
            log.exception("EVSE %d: reservation core failed; using its last reserved set", e.evse_id)
            return e.evse_id in core.last_reserved_evses

    def _push_to_core(self, e: EvseRecord, state: EvseState) -> None:
        """Tell the core the connector states and the plug that changed since it last heard."""
        core = self._ctx.core
        for connector_id, connector_state in state.connector_states.items():
            if core.connector_state(e.evse_id, connector_id) is not connector_state:
                core.set_connector_state(e.evse_id, connector_id, connector_state)
        if core.is_plugged_in(e.evse_id) != state.plugged:
            core.set_plugged_in(e.evse_id, state.plugged)
