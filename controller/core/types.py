"""The reservation data types of EVerest's Auth module (``shared/seeds``), with strict parsing.

Field names and enum values are the seed's. ``from_dict`` accepts the current shape and the
older one (no ``evse_id``/``connector_type``); bad input raises ``FormatError`` naming the field.

Id tokens (``parse_token``, one policy for the API, the store and the CLI): at most MAX_TOKEN_LENGTH
(255) characters of valid Unicode text, no control character (category Cc: U+0000-U+001F, U+007F-U+009F)
anywhere, and at least one visible character (not only white space, format characters such as U+200B or
U+FEFF, combining marks, variation selectors or Hangul fillers: INVISIBLE_RANGES). Tokens are matched
ASCII case-insensitively (``same_token``): only A-Z/a-z fold, as OCPP compares identifiers.

OCPP limits tokens that go to a CSMS more tightly than we do: an OCPP 2.0.1 idToken (IdTokenType.idToken,
string[0..36]) holds at most 36 characters (OCPP201_ID_TOKEN_MAX_LENGTH), an OCPP 1.6 idTag (CiString20Type)
at most 20 (OCPP16_ID_TAG_MAX_LENGTH). Our own limit stays MAX_TOKEN_LENGTH: local tokens (and reservations
made over this API) may be longer; whatever forwards a token to a CSMS must check the protocol's limit.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class FormatError(ValueError):
    """A payload does not fit its type; ``field`` names the offending key."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field_name(field)}: {problem}")
        self.field = field
        self.problem = problem


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


# ---------------------------------------------------------------- id tokens

MAX_TOKEN_LENGTH = 255
"""Our limit on an id token, in characters; wider than OCPP's limits below, on purpose (module docstring)."""
OCPP201_ID_TOKEN_MAX_LENGTH = 36
"""OCPP 2.0.1 IdTokenType.idToken is string[0..36]: the longest token a 2.0.1 CSMS takes."""
OCPP16_ID_TAG_MAX_LENGTH = 20
"""OCPP 1.6 idTag is a CiString20Type: the longest token a 1.6 CSMS takes."""

CONTROL_RANGES: tuple[tuple[int, int], ...] = ((0x00, 0x1F), (0x7F, 0x9F))
"""Unicode category Cc (C0 controls, DEL, C1 controls; fixed by Unicode's stability policy): refused anywhere."""

_WHITE_SPACE = (  # Zs, Zl, Zp (the controls among str.isspace() are refused as controls)
    (0x0020, 0x0020), (0x00A0, 0x00A0), (0x1680, 0x1680), (0x2000, 0x200A), (0x2028, 0x2029), (0x202F, 0x202F),
    (0x205F, 0x205F), (0x3000, 0x3000),
)
_FORMAT = (  # Cf as of Unicode 15.1: soft hyphen, zero-width space/joiners, bidi controls, BOM, tags, ...
    (0x00AD, 0x00AD), (0x0600, 0x0605), (0x061C, 0x061C), (0x06DD, 0x06DD), (0x070F, 0x070F), (0x0890, 0x0891),
    (0x08E2, 0x08E2), (0x180E, 0x180E), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x2064), (0x2066, 0x206F),
    (0xFEFF, 0xFEFF), (0xFFF9, 0xFFFB), (0x110BD, 0x110BD), (0x110CD, 0x110CD), (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A), (0xE0001, 0xE0001), (0xE0020, 0xE007F),
)
_BLANK_MARKS = (  # combining-mark blocks (nothing to combine with), variation selectors, fillers, blank braille
    (0x0300, 0x036F), (0x115F, 0x1160), (0x17B4, 0x17B5), (0x180B, 0x180D), (0x180F, 0x180F), (0x1AB0, 0x1AFF),
    (0x1DC0, 0x1DFF), (0x20D0, 0x20FF), (0x2800, 0x2800), (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFE20, 0xFE2F),
    (0xFFA0, 0xFFA0), (0xE0100, 0xE01EF),
)


def _merged(ranges: tuple[tuple[int, int], ...]) -> tuple[tuple[int, int], ...]:
    """Sorted ranges with overlapping and adjacent ones joined."""
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(hi, out[-1][1]))
        else:
            out.append((lo, hi))
    return tuple(out)


INVISIBLE_RANGES = _merged(_WHITE_SPACE + _FORMAT + _BLANK_MARKS)
"""Code points that show nothing on their own: a token made only of these is refused (they may appear with others).

An explicit table, not ``unicodedata``, so that a Python upgrade (a newer Unicode) cannot start refusing stored tokens.
"""


def _class_items(ranges: tuple[tuple[int, int], ...]) -> str:
    """Ranges as regex character-class items both Python ``re`` and ECMA-262 (JSON Schema) read the same way.

    BMP code points are ``\\uXXXX`` escapes; others are the characters themselves (ECMA-262 needs its "u" flag,
    which JSON Schema validators use, to read those as one character).
    """

    def one(cp: int) -> str:
        return f"\\u{cp:04X}" if cp <= 0xFFFF else chr(cp)

    return "".join(one(lo) if lo == hi else f"{one(lo)}-{one(hi)}" for lo, hi in ranges)


_CONTROL_ITEMS = _class_items(CONTROL_RANGES)
TOKEN_PATTERN = f"^[^{_CONTROL_ITEMS}]*[^{_CONTROL_ITEMS}{_class_items(INVISIBLE_RANGES)}][^{_CONTROL_ITEMS}]*$"
"""The token policy's characters as one regular expression (JSON Schema ``pattern``, also valid for Python ``re``).

No control character anywhere and at least one visible one; the API's schema documents tokens with it.
"""
_CONTROL_CHAR = re.compile(f"[{_CONTROL_ITEMS}]")
_VISIBLE_CHAR = re.compile(f"[^{_CONTROL_ITEMS}{_class_items(INVISIBLE_RANGES)}]")
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


# ---------------------------------------------------------------- parsing helpers

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$")
MAX_ID = 2**31 - 1  # OCPP ids are 32-bit signed integers


def parse_rfc3339(field: str, value: object) -> datetime:
    """An RFC3339 time with an explicit offset, as an aware UTC datetime."""
    if not isinstance(value, str):
        raise FormatError(field, f"must be an RFC3339 string, got {type(value).__name__}")
    if not _RFC3339.match(value):
        raise FormatError(field, f"{value!r} is not an RFC3339 date-time with offset (e.g. 2026-01-01T12:00:00Z)")
    text = value
    frac = re.search(r"\.(\d+)", text)
    if frac and len(frac.group(1)) > 6:  # datetime keeps microseconds; drop finer digits
        text = text.replace(frac.group(0), "." + frac.group(1)[:6], 1)
    try:
        parsed = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError as exc:
        raise FormatError(field, f"{value!r} is not a valid date-time: {exc}") from exc
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise FormatError(field, f"{value!r} is out of range once converted to UTC") from None


def format_rfc3339(value: datetime) -> str:
    """UTC RFC3339 with a Z suffix; fractional seconds only when present."""
    text = value.astimezone(UTC).isoformat(timespec="microseconds" if value.microsecond else "seconds")
    return text.replace("+00:00", "Z")


def _id(field: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FormatError(field, f"must be a non-negative integer, got {value!r}")
    if value < 0:
        raise FormatError(field, f"must be a non-negative integer, got {value}")
    if value > MAX_ID:
        raise FormatError(field, f"must be at most {MAX_ID} (a 32-bit id), got {value}")
    return value


def parse_token(field: str, value: object) -> str:
    """An id token as the token policy (module docstring) allows it, else a FormatError saying what is wrong.

    Checked in this order: a string, not empty, at most MAX_TOKEN_LENGTH characters, valid Unicode text (no
    lone surrogate), no control character (the error names the first one and its position, counted from 1),
    not only invisible characters. The token itself is never quoted in the error: errors are logged.
    """
    if not isinstance(value, str):
        raise FormatError(field, f"must be a string, got {type(value).__name__}")
    if not value:
        raise FormatError(field, "must not be empty")
    if len(value) > MAX_TOKEN_LENGTH:
        raise FormatError(field, f"is {len(value)} characters long, at most {MAX_TOKEN_LENGTH} allowed")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise FormatError(field, "is not valid Unicode text (it holds a lone UTF-16 surrogate)") from None
    control = _CONTROL_CHAR.search(value)
    if control is not None:
        raise FormatError(
            field, f"contains the control character {_code_point(control.group())} at position {control.start() + 1}"
        )
    if _VISIBLE_CHAR.search(value) is None:
        raise FormatError(
            field,
            "must not be empty: it holds only invisible characters (white space, format or combining characters;"
            f" the first is {_code_point(value[0])})",
        )
    return value


def same_token(a: str | None, b: str | None) -> bool:
    """Whether two id tokens match: ASCII case-insensitively, as OCPP compares identifiers; None matches nothing.

    Only A-Z and a-z fold: "ALICE" matches "alice", but "É" does not match "é", and the Kelvin sign U+212A
    does not match "K" (Unicode casefold would make it, and "ß" match "ss", letting a different card pass).
    """
    if a is None or b is None:
        return False
    return a == b or (len(a) == len(b) and fold_token(a) == fold_token(b))


def fold_token(token: str) -> str:
    """The token with A-Z lowered and every other character kept: a key that matches where ``same_token`` does."""
    return token.translate(_ASCII_LOWER)


def _code_point(char: str) -> str:
    return f"U+{ord(char):04X}"


def field_name(key: object) -> str:
    """A key as it can be named in an error: as is when it is a plain name, else quoted (empty, newlines)."""
    text = str(key)
    return text if text.isidentifier() else repr(text)


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
            reservation_id=_id("reservation_id", d["reservation_id"]),
            id_token=parse_token("id_token", d["id_token"]),
            expiry_time=parse_rfc3339("expiry_time", d["expiry_time"]),
            parent_id_token=None if parent is None else parse_token("parent_id_token", parent),
            evse_id=None if evse_id is None else _id("evse_id", evse_id),
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
            evse_id=None if evse_id is None else _id("evse_id", evse_id),
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
