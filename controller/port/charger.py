"""What the running controller offers to its fronts: one small contract, no transport.

The runtime implements ``Charger``; the HTTP API and the CLI client (controller.api.app) speak only
through it, so both can be tested against the real runtime on simulated hardware. Status and
event documents are plain JSON-able dicts whose shapes are given here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from controller.core.types import Reservation, ReservationCheck, ReservationCheckStatus, ReservationResult
from controller.port.events import EventHub


class TokenVerdict(StrEnum):
    """What presenting a token at an EVSE led to."""

    RESERVATION_USED = "reservation_used"  # reserved for this token (or its parent): used, charging may start
    ALLOWED = "allowed"  # not reserved and is_charging_possible: charging may start
    REFUSED_RESERVED_FOR_OTHER = "refused_reserved_for_other"  # reserved for another token; reservation kept
    REFUSED_GLOBAL_RESERVATIONS = "refused_global_reservations"  # charging here would strand a global reservation
    REFUSED_EVSE_NOT_READY = "refused_evse_not_ready"  # faulted, unavailable or already charging
    STOPPED = "stopped"  # the token of the running session was presented again: charging stops


@dataclass(frozen=True, slots=True)
class TokenOutcome:
    """The answer to a presented token, with a human-readable reason."""

    evse_id: int
    verdict: TokenVerdict
    reason: str
    reservation_id: int | None = None

    @property
    def may_charge(self) -> bool:
        """True when charging may start."""
        return self.verdict in (TokenVerdict.RESERVATION_USED, TokenVerdict.ALLOWED)

    def to_dict(self) -> dict[str, Any]:
        """JSON shape of ``POST /evses/{id}/token``."""
        return {
            "evse_id": self.evse_id,
            "may_charge": self.may_charge,
            "verdict": self.verdict.value,
            "reason": self.reason,
            "reservation_id": self.reservation_id,
        }


class SimFaultKind(StrEnum):
    """Faults the simulated plant can inject (``POST /sim/faults``)."""

    WELD = "weld"
    LOCK_JAM = "lock_jam"
    METER_SILENT = "meter_silent"
    CLEAR = "clear"


class UnknownEvse(LookupError):
    """An EVSE id that the configuration does not have."""

    def __init__(self, evse_id: int) -> None:
        super().__init__(f"unknown evse {evse_id}")
        self.evse_id = evse_id


class SimPlantControls(Protocol):
    """Drives the simulated plant under ``run --sim`` only."""

    async def plug(self, evse_id: int) -> None: ...

    async def unplug(self, evse_id: int) -> None: ...

    async def fault(self, evse_id: int, kind: SimFaultKind) -> None: ...


class Charger(Protocol):
    """The running controller as its API sees it. All methods run in the controller's loop.

    ``status()`` returns::

        {"evses": [{"id", "state", "plugged_in", "reserved", "reserved_led" (on|off|blink),
                    "status_led" ({"color", "pattern"} or null), "lock" (locked|unlocked|moving|fault),
                    "contactor" (open|closed), "charging" (bool), "power_w" (float|null),
                    "faults": [str], "connectors": [{"id", "type", "state"}]}],
         "reservations": [Reservation.to_dict()],
         "store": {"ok" (bool), "error" (str|null), "unsynced_ends" (int)}}

    ``reserve`` and ``cancel`` raise controller.core.store.StoreError when the reservation store cannot
    write; then nothing changed (the HTTP API answers 503). Everything else goes on without the disk.

    Event documents published on ``events`` have a ``type`` of ``reservation_update``
    (ReservationUpdateStatus fields), ``reservation_end`` (ReservationEnd fields),
    ``evse_reserved`` (EvseReservedChanged fields), ``evse_state`` (one evse entry of status) or
    ``token`` (TokenOutcome fields). Id tokens in events are redacted.
    """

    events: EventHub
    sim: SimPlantControls | None

    def evse_ids(self) -> list[int]: ...

    def reserve(self, reservation: Reservation) -> ReservationResult: ...

    def cancel(self, reservation_id: int) -> bool: ...

    def reservations(self) -> list[Reservation]: ...

    def check(self, check: ReservationCheck) -> ReservationCheckStatus: ...

    async def present_token(self, evse_id: int, id_token: str) -> TokenOutcome: ...

    async def set_enabled(self, evse_id: int, enabled: bool) -> None: ...

    async def reset_faults(self, evse_id: int) -> list[str]: ...

    def status(self) -> dict[str, Any]: ...
