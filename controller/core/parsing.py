"""Strict parsing shared by every type: the error that names a field, RFC 3339 times, 32-bit ids."""

from __future__ import annotations

import re
from datetime import UTC, datetime


class FormatError(ValueError):
    """A payload does not fit its type; ``field`` names the offending key."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field_name(field)}: {problem}")
        self.field = field
        self.problem = problem


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


def parse_id(field: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FormatError(field, f"must be a non-negative integer, got {value!r}")
    if value < 0:
        raise FormatError(field, f"must be a non-negative integer, got {value}")
    if value > MAX_ID:
        raise FormatError(field, f"must be at most {MAX_ID} (a 32-bit id), got {value}")
    return value


def field_name(key: object) -> str:
    """A key as it can be named in an error: as is when it is a plain name, else quoted (empty, newlines)."""
    text = str(key)
    return text if text.isidentifier() else repr(text)
