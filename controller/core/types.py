"""The reservation data types of EVerest's Auth module (``shared/seeds``), with strict parsing.

Field names and enum values are the seed's. ``from_dict`` accepts the current shape and the
older one (no ``evse_id``/``connector_type``); bad input raises ``FormatError`` naming the field.
Id tokens follow the policy of controller.core.tokens.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from controller.core.parsing import FormatError, format_rfc3339, parse_id, parse_rfc3339
from controller.core.tokens import parse_token


class ReservationResult(StrEnum):
    """Answer to ``reserve_now``."""

    ACCEPTED = "Accepted"
    FAULTED = "Faulted"
    OCCUPIED = "Occupied"
    REJECTED = "Rejected"
    UNAVAILABLE = "Unavailable"


class ReservationEndReason(StrEnum):
    """Why a reservation (or, for GlobalReservationRequirementDropped, an EVSE's hold) ended."""

    EXPIRED = "Expired"
    CANCELLED = "Cancelled"
    USED_TO_START_CHARGING = "UsedToStartCharging"
    GLOBAL_RESERVATION_REQUIREMENT_DROPPED = "GlobalReservationRequirementDropped"


class ReservationCheckStatus(StrEnum):
    """Answer to ``exists_reservation`` (the enum wins over the seed's prose)."""

    NOT_RESERVED = "NotReserved"
    RESERVED_FOR_TOKEN = "ReservedForToken"
    RESERVED_FOR_OTHER_TOKEN = "ReservedForOtherToken"
    RESERVED_FOR_OTHER_TOKEN_AND_HAS_PARENT_TOKEN = "ReservedForOtherTokenAndHasParentToken"


class ReservationUpdate(StrEnum):
    """``reservation_status`` values of a ReservationUpdateStatus."""

    EXPIRED = "Expired"
    REMOVED = "Removed"
    PLACED = "Placed"
    CANCELLED = "Cancelled"
    USED = "Used"


class ConnectorType(StrEnum):
    """OCPP / EVerest connector types (evse_manager ConnectorTypeEnum)."""

    cCCS1 = "cCCS1"
    cCCS2 = "cCCS2"
    cG105 = "cG105"
    cMCS = "cMCS"
    cTesla = "cTesla"
    cType1 = "cType1"
    cType2 = "cType2"
    s309_1P_16A = "s309_1P_16A"
    s309_1P_32A = "s309_1P_32A"
    s309_3P_16A = "s309_3P_16A"
    s309_3P_32A = "s309_3P_32A"
    sBS1361 = "sBS1361"
    sCEE_7_7 = "sCEE-7_7"
    sType2 = "sType2"
    sType3 = "sType3"
    Other1PhMax16A = "Other1PhMax16A"
    Other1PhOver16A = "Other1PhOver16A"
    Other3Ph = "Other3Ph"
    Pan = "Pan"
    wInductive = "wInductive"
    wResonant = "wResonant"
    Undetermined = "Undetermined"
    Unknown = "Unknown"


class ConnectorState(StrEnum):
    """A connector's state as the reservation core sees it."""

    AVAILABLE = "Available"
    UNAVAILABLE = "Unavailable"
    FAULTED = "Faulted"
    OCCUPIED = "Occupied"
    UNAVAILABLE_FAULTED = "UnavailableFaulted"
    FAULTED_OCCUPIED = "FaultedOccupied"


@dataclass(frozen=True, slots=True)
class Connector:
    """A connector of an EVSE: its id and type (Unknown matches every reservation type)."""

    id: int
    type: ConnectorType = ConnectorType.Unknown


def effective_type(connector_type: ConnectorType | None) -> ConnectorType:
    """Absent and Unknown behave the same everywhere."""
    return ConnectorType.Unknown if connector_type is None else connector_type


def types_compatible(connector: ConnectorType, wanted: ConnectorType | None) -> bool:
    """A connector serves a wanted type if either is Unknown or they are equal."""
    wanted = effective_type(wanted)
    return wanted is ConnectorType.Unknown or connector is ConnectorType.Unknown or connector is wanted


def _connector_type(field: str, value: object) -> ConnectorType:
    if not isinstance(value, str):
        raise FormatError(field, f"must be a connector type string, got {type(value).__name__}")
    try:
        return ConnectorType(value)
    except ValueError:
        raise FormatError(field, f"unknown connector type {value!r}") from None


def _mapping(kind: str, data: object, allowed: set[str], required: set[str]) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise FormatError(kind, f"must be a JSON object, got {type(data).__name__}")
    unknown = sorted(str(k) for k in data if k not in allowed)
    if unknown:
        raise FormatError(unknown[0], f"unknown field in {kind} (allowed: {', '.join(sorted(allowed))})")
    for key in sorted(required):
        if key not in data or data[key] is None:
            raise FormatError(key, f"is required in {kind}")
    return data


# ---------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class Reservation:
    """A reservation: EVSE-specific when ``evse_id`` is set, global otherwise."""

    reservation_id: int
    id_token: str
    expiry_time: datetime
    parent_id_token: str | None = None
    evse_id: int | None = None
    connector_type: ConnectorType | None = None

    _FIELDS = frozenset({"reservation_id", "id_token", "expiry_time", "parent_id_token", "evse_id", "connector_type"})

    @classmethod
    def from_dict(cls, data: object) -> Reservation:
        """Parse the seed's JSON shape (current or previous); raises FormatError naming the field."""
        d = _mapping("Reservation", data, set(cls._FIELDS), {"reservation_id", "id_token", "expiry_time"})
        parent = d.get("parent_id_token")
        evse_id = d.get("evse_id")
        ctype = d.get("connector_type")
        return cls(
            reservation_id=parse_id("reservation_id", d["reservation_id"]),
            id_token=parse_token("id_token", d["id_token"]),
            expiry_time=parse_rfc3339("expiry_time", d["expiry_time"]),
            parent_id_token=None if parent is None else parse_token("parent_id_token", parent),
            evse_id=None if evse_id is None else parse_id("evse_id", evse_id),
            connector_type=None if ctype is None else _connector_type("connector_type", ctype),
        )

    def to_dict(self) -> dict[str, Any]:
        """The seed's JSON shape; optional fields only when set."""
        out: dict[str, Any] = {
            "reservation_id": self.reservation_id,
            "id_token": self.id_token,
            "expiry_time": format_rfc3339(self.expiry_time),
        }
        if self.parent_id_token is not None:
            out["parent_id_token"] = self.parent_id_token
        if self.evse_id is not None:
            out["evse_id"] = self.evse_id
        if self.connector_type is not None:
            out["connector_type"] = self.connector_type.value
        return out

    @property
    def wanted_type(self) -> ConnectorType:
        """The connector type this reservation needs (absent means Unknown: any)."""
        return effective_type(self.connector_type)


@dataclass(frozen=True, slots=True)
class ReservationCheck:
    """Is there a reservation for this token (at this EVSE)?"""

    id_token: str
    evse_id: int | None = None
    group_id_token: str | None = None

    @classmethod
    def from_dict(cls, data: object) -> ReservationCheck:
        """Parse the seed's JSON shape; raises FormatError naming the field."""
        d = _mapping("ReservationCheck", data, {"evse_id", "id_token", "group_id_token"}, {"id_token"})
        evse_id = d.get("evse_id")
        group = d.get("group_id_token")
        return cls(
            id_token=parse_token("id_token", d["id_token"]),
            evse_id=None if evse_id is None else parse_id("evse_id", evse_id),
            group_id_token=None if group is None else parse_token("group_id_token", group),
        )

    def to_dict(self) -> dict[str, Any]:
        """The seed's JSON shape."""
        out: dict[str, Any] = {"id_token": self.id_token}
        if self.evse_id is not None:
            out["evse_id"] = self.evse_id
        if self.group_id_token is not None:
            out["group_id_token"] = self.group_id_token
        return out


@dataclass(frozen=True, slots=True)
class ReservationEnd:
    """A reservation ended, once, for one reason; ``evse_id`` names the EVSE where one applies."""

    reason: ReservationEndReason
    reservation_id: int
    evse_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The seed's JSON shape (plus evse_id where known)."""
        out: dict[str, Any] = {"reason": self.reason.value, "reservation_id": self.reservation_id}
        if self.evse_id is not None:
            out["evse_id"] = self.evse_id
        return out


@dataclass(frozen=True, slots=True)
class ReservationUpdateStatus:
    """Status of a reservation: Placed when accepted, then exactly one end status."""

    reservation_id: int
    reservation_status: ReservationUpdate

    def to_dict(self) -> dict[str, Any]:
        """The seed's JSON shape."""
        return {"reservation_id": self.reservation_id, "reservation_status": self.reservation_status.value}


@dataclass(frozen=True, slots=True)
class EvseReservedChanged:
    """An EVSE's reserved indication (its reserved LED) turned on or off, and why it went off."""

    evse_id: int
    reserved: bool
    reason: ReservationEndReason | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON shape for event streams."""
        return {
            "evse_id": self.evse_id,
            "reserved": self.reserved,
            "reason": None if self.reason is None else self.reason.value,
        }


CoreEvent = ReservationEnd | ReservationUpdateStatus | EvseReservedChanged
