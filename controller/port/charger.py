"""What the running controller offers to its fronts: one small contract, no transport.

The runtime implements ``Charger``; the HTTP API and the CLI client (controller.api.app) and the MQTT
bridge (controller.mqtt) speak only through it, so each can be tested against the real runtime on simulated
hardware. Status and event documents are plain JSON-able dicts whose shapes are given here.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from controller.core.types import Reservation, ReservationCheck, ReservationCheckStatus, ReservationResult
from controller.port.events import EventHub

MIN_CURRENT_LIMIT_A = 6.0  # IEC 61851-1: the least current a car may be offered
MAX_CURRENT_LIMIT_A = 80.0  # no configured maximum yet: the most an AC charging point offers


class TokenVerdict(StrEnum):
    """What presenting a token at an EVSE led to."""

    RESERVATION_USED = "reservation_used"  # reserved for this token (or its parent): used, charging may start
    ALLOWED = "allowed"  # not reserved and is_charging_possible: charging may start
    REFUSED_RESERVED_FOR_OTHER = "refused_reserved_for_other"  # reserved for another token; reservation kept
    REFUSED_GLOBAL_RESERVATIONS = "refused_global_reservations"  # charging here would strand a global reservation
    REFUSED_EVSE_NOT_READY = "refused_evse_not_ready"  # faulted, unavailable or already charging
    STOPPED = "stopped"  # the token of the running session was presented again: charging stops
    REFUSED_NOT_AUTHORIZED = "refused_not_authorized"  # the token authority (a CSMS) did not accept the token


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


@dataclass(frozen=True, slots=True)
class Authorization:
    """What a token authority (a CSMS, through its front) says about a token presented at an EVSE.

    ``group_id_token`` is the token's group (OCPP groupIdToken / 1.6 parentIdTag): a reservation made for
    that group may be used by this token.
    """

    accepted: bool
    group_id_token: str | None = None
    reason: str = ""


class TokenAuthority(Protocol):
    """Decides whether a token presented at an EVSE may be used at all, before any reservation or charging.

    Set by a front (OCPP) with ``Charger.set_token_authority``. ``authorize`` runs in the controller's loop and
    must answer within its own timeout and offline rules (it never raises for a peer that is down; it answers
    from its cache or local list, or refuses).
    """

    async def authorize(self, evse_id: int, id_token: str) -> Authorization: ...

    def session_stopped(self, evse_id: int, id_token: str) -> None:
        """``id_token`` stopped the EVSE's session (its own token, or one of its group): the front names it as the
        token that ended the transaction (1.6 StopTransaction idTag, 2.0.1 the Ended event's idToken)."""
        ...


class ReservationUse(StrEnum):
    """When a token's reservation is used up (ends UsedToStartCharging), as the token authority's protocol says."""

    AT_AUTHORIZATION = "at_authorization"  # DESIGN.md / EVerest / OCPP 2.0.1: when the token is accepted
    AT_TRANSACTION_START = "at_transaction_start"  # OCPP 1.6 (5.13): when its transaction starts, at the plug


class UnlockOutcome(StrEnum):
    """What an unlock request for a connector's lock led to (OCPP UnlockConnector)."""

    UNLOCKED = "unlocked"  # the lock reports unlocked (or no lock is fitted: nothing holds the cable)
    FAILED = "failed"  # the interlock forbids it now (contactor not confirmed open, current flows) or it jammed
    SESSION_RUNNING = "session_running"  # a charging session holds the car: stop it first


class SimFaultKind(StrEnum):
    """Faults the simulated plant can inject (``POST /sim/faults``)."""

    WELD = "weld"
    LOCK_JAM = "lock_jam"
    METER_SILENT = "meter_silent"
    DIODE_SHORT = "diode_short"  # the car's CP diode shorted (a control pilot only): state F, the EVSE faults
    CP_SHORT = "cp_short"  # the control pilot shorted to PE: state E
    OVERCURRENT_EV = "overcurrent_ev"  # the car draws more than it is offered
    CLEAR = "clear"


class UnknownEvse(LookupError):
    """An EVSE id that the configuration does not have."""

    def __init__(self, evse_id: int) -> None:
        super().__init__(f"unknown evse {evse_id}")
        self.evse_id = evse_id


def check_current_limit(amps: float | None) -> float | None:
    """A current limit as given, if valid: None, 0 (pause) or MIN_CURRENT_LIMIT_A..MAX_CURRENT_LIMIT_A amperes.

    6 A is the least current IEC 61851 lets a car be offered; 80 A the most on an AC charging point.
    """
    if amps is None:
        return None
    if isinstance(amps, bool) or not isinstance(amps, int | float) or not math.isfinite(amps):
        raise ValueError(f"current limit must be a number of amperes, got {amps!r}")
    if amps != 0 and not MIN_CURRENT_LIMIT_A <= amps <= MAX_CURRENT_LIMIT_A:
        raise ValueError(f"current limit must be 0 (pause) or {MIN_CURRENT_LIMIT_A:g} to {MAX_CURRENT_LIMIT_A:g} A, "
                         f"got {amps:g}")
    return float(amps)


NO_CURRENT_LIMIT = frozenset({"", "none", "null"})  # a current limit written as text: "no limit" (any case)


def parse_current_limit(text: str) -> float | None:
    """A current limit written as text (MQTT payload, CLI argument): ``16``, ``16.0``; ``none``, ``null`` or nothing
    removes the limit. ValueError for anything else; the range is ``check_current_limit``'s, checked where it is set.
    """
    word = text.strip()
    if word.lower() in NO_CURRENT_LIMIT:
        return None
    shown = json.dumps(text if len(text) <= 40 else text[:37] + "...")
    try:
        amps = float(word)
    except ValueError:
        raise ValueError(f"expected a number of amperes (e.g. 16), or None to remove the limit, got {shown}") from None
    if not math.isfinite(amps):
        raise ValueError(f"expected a finite number of amperes, got {shown}")
    return amps


@dataclass(frozen=True, slots=True)
class Supply:
    """How an EVSE (or the whole station) is fed: what turns a power limit (W) into amperes per phase.

    From the EVSE's ``[evses.pilot]`` (``voltage_v``, ``phases``, ``max_current_a``); 230 V, 3 phases and no
    maximum for an EVSE without a control pilot.
    """

    voltage_v: float = 230.0
    phases: int = 3
    max_current_a: float | None = None  # None: no configured maximum


class SimPlantControls(Protocol):
    """Drives the simulated plant under ``run --sim`` only."""

    async def plug(self, evse_id: int) -> None: ...

    async def unplug(self, evse_id: int) -> None: ...

    async def fault(self, evse_id: int, kind: SimFaultKind) -> None: ...


class Charger(Protocol):
    """The running controller as its API sees it. All methods run in the controller's loop.

    ``status()`` returns::

        {"evses": [{"id", "state", "enabled" (bool), "plugged_in", "reserved", "reserved_led" (on|off|blink),
                    "status_led" ({"color", "pattern"} or null), "lock" (locked|unlocked|moving|fault),
                    "contactor" (open|closed), "charging" (bool), "phase", "power_w" (float|null),
                    "energy_kwh" (float|null), "current_a" ([L1, L2, L3] A, each float|null; null without
                    a reading), "current_limit_a" (float|null: the local limit, none), "charging_allowed" (bool:
                    false = paused), "limit_a" (float|null: the limit in effect, the least of every limit that
                    applies; 0 = nothing offered), "pilot" ({"state": "A".."F", "duty_percent": float,
                    "advertised_a": float} or null without a control pilot),
                    "faults": [str],
                    "connectors": [{"id", "type", "state"}]}],
         "reservations": [Reservation.to_dict()],
         "store": {"ok" (bool), "error" (str|null), "unsynced_ends" (int)},
         "loop": {"lag_max_ms" (float|null), "lag_p99_ms" (float|null): the event loop's lag over the last
                  minute, null while not measured; "samples" (int), "slow_callbacks" (int: callbacks that held
                  the loop over 20 ms since start)}}  (the runtime's; a front must not require "loop")

    ``reserve`` and ``cancel`` answer once the change is durable (the disk is written off the loop, which
    goes on meanwhile); they raise controller.core.store.StoreError when the reservation store cannot
    write; then nothing changed (the HTTP API answers 503). Everything else goes on without the disk.

    With a token authority set (``set_token_authority``: the OCPP front), ``present_token`` asks it about
    every token before the token may use a reservation or start charging (the token of the running session
    stops it without asking); a refused token gets ``refused_not_authorized``, and the group token it
    answers with may use a reservation made for that group.

    Event documents published on ``events`` have a ``type`` of ``reservation_update``
    (ReservationUpdateStatus fields), ``reservation_end`` (ReservationEnd fields),
    ``evse_reserved`` (EvseReservedChanged fields), ``evse_state`` (one evse entry of status) or
    ``token`` (TokenOutcome fields). Id tokens in events are redacted.
    """

    events: EventHub
    sim: SimPlantControls | None

    def evse_ids(self) -> list[int]: ...

    async def reserve(self, reservation: Reservation) -> ReservationResult: ...

    async def cancel(self, reservation_id: int) -> bool: ...

    def reservations(self) -> list[Reservation]: ...

    def check(self, check: ReservationCheck) -> ReservationCheckStatus: ...

    async def present_token(self, evse_id: int, id_token: str) -> TokenOutcome: ...

    def set_token_authority(self, authority: TokenAuthority | None,
                            reservation_use: ReservationUse = ReservationUse.AT_AUTHORIZATION) -> None:
        """Ask ``authority`` about every presented token (None: decide locally, reservations used at authorization).

        With AT_TRANSACTION_START a reserved token's session holds its reservation until the cable is in: the EVSE's
        outputs treat it as used (reserved LED off, lock free for the plug), but should the session end before the
        plug (a timeout, a stop) the reservation is still there.
        """
        ...

    async def unlock_connector(self, evse_id: int) -> UnlockOutcome:
        """Release the EVSE's lock for a driver who cannot unplug, under the unlock interlock; never during a session.

        UnknownEvse for an unknown id. The output policy may lock again later (e.g. a reservation that locks).
        """
        ...

    async def stop_session(self, evse_id: int) -> bool:
        """Stop the EVSE's session as its own token would (a remote stop): True if one was stopped.

        The contactor opens and the lock releases under the interlocks; an authorized session without a plug
        simply ends. UnknownEvse for an unknown id.
        """
        ...

    async def set_enabled(self, evse_id: int, enabled: bool) -> None: ...

    async def reset_faults(self, evse_id: int) -> list[str]: ...

    async def set_current_limit(self, evse_id: int, amps: float | None) -> float | None:
        """Set a current limit (A; None removes it): 0 pauses charging now; other values cap what the EVSE's control
        pilot offers the car (on an EVSE without a pilot they are recorded only).

        Raises ValueError outside 0 or MIN_CURRENT_LIMIT_A..MAX_CURRENT_LIMIT_A, UnknownEvse for an unknown id.
        """
        ...

    async def set_profile_limit(self, evse_id: int | None, amps: float | None) -> None:
        """The CSMS's charging-profile limit (A per phase) for one EVSE, or the station (None: shared between the
        EVSEs like the site limit); None removes it, 0 pauses charging. ValueError if negative; UnknownEvse."""
        ...

    async def set_charging_allowed(self, evse_id: int, allowed: bool) -> None:
        """Pause (False) or resume charging within the session (an energy manager's enable); UnknownEvse."""
        ...

    def supply(self, evse_id: int | None) -> Supply:
        """How the EVSE (None: the whole station) is fed, for converting watts to amperes; UnknownEvse."""
        ...

    def status(self) -> dict[str, Any]: ...
