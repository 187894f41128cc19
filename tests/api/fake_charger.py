"""A small but real ``Charger`` for the API tests: a real ReservationCore on a 2-EVSE cType2 site.

Reservations, checks and cancels go to the core; tokens are decided with the core's own
questions; the sim controls record what they were asked and publish ``evse_state`` events.
"""

from __future__ import annotations

from typing import Any

from core_helpers import FakeClock, site

from controller.core.reservation import ReservationCore
from controller.core.types import (
    ConnectorState,
    ConnectorType,
    CoreEvent,
    EvseReservedChanged,
    Reservation,
    ReservationCheck,
    ReservationCheckStatus,
    ReservationEnd,
    ReservationResult,
)
from controller.port.charger import SimFaultKind, SimPlantControls, TokenOutcome, TokenVerdict, UnknownEvse
from controller.port.events import EventHub


class FakeSim:
    """Simulated-plant controls that record calls and move the plug in the core."""

    def __init__(self, charger: FakeCharger) -> None:
        self._charger = charger
        self.calls: list[tuple[str, int, SimFaultKind | None]] = []

    async def plug(self, evse_id: int) -> None:
        self._charger.check_evse(evse_id)
        self.calls.append(("plug", evse_id, None))
        self._charger.core.set_plugged_in(evse_id, True)
        self._charger.publish_state(evse_id)

    async def unplug(self, evse_id: int) -> None:
        self._charger.check_evse(evse_id)
        self.calls.append(("unplug", evse_id, None))
        self._charger.core.set_plugged_in(evse_id, False)
        self._charger.publish_state(evse_id)

    async def fault(self, evse_id: int, kind: SimFaultKind) -> None:
        self._charger.check_evse(evse_id)
        self.calls.append(("fault", evse_id, kind))
        if kind is SimFaultKind.CLEAR:
            self._charger.faults[evse_id].clear()
        else:
            self._charger.faults[evse_id].append(kind.value)
        self._charger.publish_state(evse_id)


class FakeCharger:
    """The ``Charger`` facade over a real reservation core, without hardware."""

    def __init__(self, *, sim: bool = True, clock: FakeClock | None = None) -> None:
        self.clock = clock or FakeClock()
        self.core = ReservationCore(site((ConnectorType.cType2,), (ConnectorType.cType2,)), clock=self.clock)
        self.events = EventHub()
        self.fake_sim = FakeSim(self)  # its call record, also when the API sees no sim
        self.sim: SimPlantControls | None = self.fake_sim if sim else None
        self.enabled = {evse_id: True for evse_id in self.core.evse_ids}
        self.faults: dict[int, list[str]] = {evse_id: [] for evse_id in self.core.evse_ids}
        self.fail_with: Exception | None = None  # raised by status(), to test the 500 path
        self.core.subscribe(self._on_core_event)

    def check_evse(self, evse_id: int) -> None:
        if evse_id not in self.core.evse_ids:
            raise UnknownEvse(evse_id)

    def _on_core_event(self, event: CoreEvent) -> None:
        kind = (
            "evse_reserved"
            if isinstance(event, EvseReservedChanged)
            else "reservation_end"
            if isinstance(event, ReservationEnd)
            else "reservation_update"
        )
        self.events.publish({"type": kind, **event.to_dict()})

    def publish_state(self, evse_id: int) -> None:
        self.events.publish({"type": "evse_state", **self._evse_status(evse_id)})

    # ------------------------------------------------------------ Charger

    def evse_ids(self) -> list[int]:
        return self.core.evse_ids

    async def reserve(self, reservation: Reservation) -> ReservationResult:
        return self.core.reserve_now(reservation)

    async def cancel(self, reservation_id: int) -> bool:
        return self.core.cancel_reservation(reservation_id)

    def reservations(self) -> list[Reservation]:
        return self.core.reservations()

    def check(self, check: ReservationCheck) -> ReservationCheckStatus:
        return self.core.exists_reservation(check)

    async def present_token(self, evse_id: int, id_token: str) -> TokenOutcome:
        self.check_evse(evse_id)
        outcome = self._decide(evse_id, id_token)
        if outcome.reservation_id is not None:
            self.core.use_reservation(outcome.reservation_id)
        self.events.publish({"type": "token", **outcome.to_dict()})
        return outcome

    def _decide(self, evse_id: int, token: str) -> TokenOutcome:
        if not self.enabled[evse_id] or self.faults[evse_id]:
            return TokenOutcome(evse_id, TokenVerdict.REFUSED_EVSE_NOT_READY, "EVSE is not ready")
        rid = self.core.matches_reserved_identifier(token, evse_id)
        if self.core.is_evse_reserved(evse_id) and rid is None:
            return TokenOutcome(evse_id, TokenVerdict.REFUSED_RESERVED_FOR_OTHER, "reserved for another token")
        if rid is not None:
            return TokenOutcome(evse_id, TokenVerdict.RESERVATION_USED, "reserved for this token", rid)
        if not self.core.is_charging_possible(evse_id):
            return TokenOutcome(evse_id, TokenVerdict.REFUSED_GLOBAL_RESERVATIONS, "would strand a reservation")
        return TokenOutcome(evse_id, TokenVerdict.ALLOWED, "not reserved; charging possible")

    async def set_enabled(self, evse_id: int, enabled: bool) -> None:
        self.check_evse(evse_id)
        self.enabled[evse_id] = enabled
        state = ConnectorState.AVAILABLE if enabled else ConnectorState.UNAVAILABLE
        self.core.set_connector_state(evse_id, 1, state)
        self.publish_state(evse_id)

    async def reset_faults(self, evse_id: int) -> list[str]:
        self.check_evse(evse_id)
        self.faults[evse_id] = [f for f in self.faults[evse_id] if f != SimFaultKind.WELD.value]
        self.publish_state(evse_id)
        return list(self.faults[evse_id])

    def status(self) -> dict[str, Any]:
        if self.fail_with is not None:
            raise self.fail_with
        return {
            "evses": [self._evse_status(evse_id) for evse_id in self.core.evse_ids],
            "reservations": [r.to_dict() for r in self.core.reservations()],
            "store": {"ok": self.core.store_fault is None, "error": self.core.store_fault,
                      "unsynced_ends": self.core.unsynced_ends},
        }

    def _evse_status(self, evse_id: int) -> dict[str, Any]:
        reserved = evse_id in self.core.reserved_evses()
        faulted = bool(self.faults[evse_id])
        color = "red" if faulted else "amber" if reserved else "green" if self.enabled[evse_id] else "off"
        return {
            "id": evse_id,
            "state": self.core.connector_state(evse_id, 1).value,
            "plugged_in": self.core.is_plugged_in(evse_id),
            "reserved": reserved,
            "reserved_led": "on" if reserved else "off",
            "status_led": {"color": color, "pattern": "blink" if faulted else "steady"},
            "lock": "locked" if reserved else "unlocked",
            "contactor": "open",
            "charging": False,
            "power_w": None,
            "faults": list(self.faults[evse_id]),
            "connectors": [
                {"id": c.id, "type": c.type.value, "state": self.core.connector_state(evse_id, c.id).value}
                for c in self.core.connectors(evse_id)
            ],
        }
