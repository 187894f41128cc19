"""What the runtime tells the world: the status document (controller.port.charger.Charger.status) and its events.

An ``evse_state`` event is published when an EVSE's status changes (the meter's power, energy and phase
currents alone do not count); the core's events are published as ``evse_reserved``, ``reservation_end`` or
``reservation_update``.
"""

from __future__ import annotations

from typing import Any

from controller.charging.session import Phase
from controller.core.types import ConnectorState, CoreEvent, EvseReservedChanged, ReservationEnd
from controller.runtime.evse import EvseRecord, RuntimeContext
from controller.runtime.interlock import contactor_closed
from drivers.interfaces import LockPosition

MEASUREMENTS = ("power_w", "energy_kwh", "current_a")  # meter readings: a change alone publishes no evse_state


class StatusReporter:
    """Builds the status document from the EVSE records, drivers and core, and publishes its changes."""

    def __init__(self, ctx: RuntimeContext) -> None:
        """Report on the EVSEs and core of ``ctx``, publishing on its event hub."""
        self._ctx = ctx

    def evse_status(self, evse_id: int, reserved: frozenset[int] | None = None) -> dict[str, Any]:
        """One EVSE's entry of ``status()``; ``reserved``: the core's reserved EVSEs, if already asked for."""
        e = self._ctx.evse(evse_id)
        core = self._ctx.core
        hw = e.hw
        now = self._ctx.mono()
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
            "reserved": evse_id in (core.reserved_evses() if reserved is None else reserved),
            "reserved_led": hw.indicator.reserved_mode.value,
            "status_led": None if status is None else {"color": status[0].value, "pattern": status[1].value},
            "lock": lock_text,
            "contactor": "closed" if contactor_closed(contactor) else "open",
            "charging": e.session.view.phase is Phase.CHARGING and contactor_closed(contactor),
            "phase": e.session.view.phase.value,
            "power_w": None if snapshot is None else snapshot.power_w,
            "energy_kwh": None if snapshot is None else snapshot.energy_import_kwh,
            "current_a": None if snapshot is None else list(snapshot.current_a),
            "current_limit_a": e.current_limit_a,
            "charging_allowed": e.charging_allowed,
            "limit_a": e.limit_a,
            "pilot": hw.pilot.status() if hw.pilot is not None else None,
            "faults": [str(f) for f in faults],
            "connectors": [
                {"id": c.id, "type": c.type.value, "state": core.connector_state(evse_id, c.id).value}
                for c in hw.connectors
            ],
        }

    def status(self) -> dict[str, Any]:
        """The documented status document (see controller.port.charger.Charger)."""
        reserved = self._ctx.core.reserved_evses()  # once per document, not once per EVSE
        return {
            "evses": [self.evse_status(evse_id, reserved) for evse_id in self._ctx.evses],
            "reservations": [r.to_dict() for r in self._ctx.core.reservations()],
            "store": self.store_status(),
        }

    def store_status(self) -> dict[str, Any]:
        """The reservation store's health: ``ok``, the ``error`` while it cannot write, ends not yet written."""
        fault = self._ctx.core.store_fault
        return {"ok": fault is None, "error": fault, "unsynced_ends": self._ctx.core.unsynced_ends}

    def publish_state(self, e: EvseRecord) -> None:
        """Publish an ``evse_state`` event if the EVSE's status changed beyond its power and energy."""
        doc = self.evse_status(e.evse_id)
        key = {k: v for k, v in doc.items() if k not in MEASUREMENTS}
        if key != e.published:
            e.published = key
            self._ctx.events.publish({"type": "evse_state", **doc})

    def publish_core_event(self, event: CoreEvent) -> None:
        """Publish one event of the reservation core, typed by its kind."""
        kind = (
            "evse_reserved"
            if isinstance(event, EvseReservedChanged)
            else "reservation_end"
            if isinstance(event, ReservationEnd)
            else "reservation_update"
        )
        self._ctx.events.publish({"type": kind, **event.to_dict()})
