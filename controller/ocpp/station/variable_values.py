"""Strict parsing and validation of device-model values in their OCPP string form, one rule per data type.

Strict on purpose: a CSMS that sends ``"True"``, ``" 60"``, ``"1e3"`` or ``"60.0"`` for an integer gets Rejected
with a reason, instead of a value that the station would read differently from what the CSMS meant. A Rejection
names what is wrong but never repeats the value (it may be a password).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import datetime

from controller.ocpp.station.variable_types import (
    CONFIGURATION_VALUE_SIZE,
    DataType,
    Reason,
    Rejection,
    VariableDef,
)

INT32_MIN = -(2**31)  # OCPP's integer is 32 bits
INT32_MAX = 2**31 - 1

_INTEGER = re.compile(r"-?[0-9]+")  # [0-9], not \d: no other scripts' digits
_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")  # no exponent, no NaN/Infinity, no leading '+' or '.'
# RFC 3339 date-time: full date, 'T', full time with optional fraction, and an offset (Z or +hh:mm)
_DATE_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def parse_bool(text: str) -> bool:
    """``true``/``false`` exactly (OCPP's boolean), ValueError otherwise."""
    if text == "true":
        return True
    if text == "false":
        return False
    raise ValueError("a boolean is 'true' or 'false'")


def parse_int(text: str) -> int:
    """A decimal 32-bit integer without sign '+', spaces or separators; ValueError otherwise."""
    if not _INTEGER.fullmatch(text):
        raise ValueError("an integer is written as digits with an optional leading '-'")
    number = int(text)
    if not INT32_MIN <= number <= INT32_MAX:
        raise OverflowError("an integer is 32 bits")
    return number


def parse_decimal(text: str) -> float:
    """A decimal number like ``-12.5`` (no exponent, no NaN or infinity); ValueError otherwise."""
    if not _DECIMAL.fullmatch(text):
        raise ValueError("a decimal is written as digits with an optional '-' and fraction")
    number = float(text)
    if not math.isfinite(number):
        raise OverflowError("the decimal is too large")
    return number


def parse_datetime(text: str) -> datetime:
    """An RFC 3339 date-time with a UTC offset (``Z`` or ``+hh:mm``); ValueError otherwise."""
    if not _DATE_TIME.fullmatch(text):
        raise ValueError("a dateTime is RFC 3339 with an offset, e.g. 2024-05-01T12:00:00Z")
    try:
        return datetime.fromisoformat(text.upper())
    except ValueError as exc:
        raise ValueError(f"not a real date and time ({exc})") from None


def split_list(text: str) -> tuple[str, ...]:
    """The members of a comma-separated list value; ``""`` is the empty list."""
    return tuple(text.split(",")) if text else ()


def check_value(definition: VariableDef, value: object) -> Rejection | None:
    """None if ``value`` is a valid value of ``definition``, else the Rejection saying why (without the value)."""
    if not isinstance(value, str):
        return Rejection(Reason.INVALID_VALUE, f"the value is a {type(value).__name__}, not a string")
    if len(value) > CONFIGURATION_VALUE_SIZE:
        return Rejection(Reason.TOO_LARGE_ELEMENT, f"longer than {CONFIGURATION_VALUE_SIZE} characters")
    if value == "" and not (definition.allow_empty and definition.data_type in _MAY_BE_EMPTY):
        return Rejection(Reason.INVALID_VALUE, "must not be empty")
    data_type = definition.data_type
    if data_type is DataType.BOOLEAN:
        return _parsed(parse_bool, value)
    if data_type in (DataType.INTEGER, DataType.DECIMAL):
        return _check_number(definition, value)
    if data_type is DataType.DATE_TIME:
        return _parsed(parse_datetime, value)
    too_long = _check_length(definition, value)
    if too_long is not None or data_type is DataType.STRING:
        return too_long
    members = split_list(value)
    if data_type is DataType.OPTION_LIST and len(members) != 1:
        return Rejection(Reason.INVALID_VALUE, f"one of: {_listed(definition)}")
    unknown = [m for m in members if m not in definition.values_list]
    if unknown:
        return Rejection(Reason.INVALID_VALUE, f"{len(unknown)} member(s) not among: {_listed(definition)}")
    if len(set(members)) != len(members):
        return Rejection(Reason.INVALID_VALUE, "a member is listed twice")
    return None


_MAY_BE_EMPTY = frozenset({DataType.STRING, DataType.MEMBER_LIST, DataType.SEQUENCE_LIST})


def _parsed(parse: Callable[[str], object], value: str) -> Rejection | None:
    """Run a parser: its ValueError becomes an InvalidValue, its OverflowError a ValueOutOfRange."""
    try:
        parse(value)
    except OverflowError as exc:
        return Rejection(Reason.VALUE_OUT_OF_RANGE, str(exc))
    except ValueError as exc:
        return Rejection(Reason.INVALID_VALUE, str(exc))
    return None


def _check_number(definition: VariableDef, value: str) -> Rejection | None:
    """An integer or decimal, within minLimit..maxLimit."""
    parse = parse_int if definition.data_type is DataType.INTEGER else parse_decimal
    problem = _parsed(parse, value)
    if problem is not None:
        return problem
    number: float = parse(value)
    if definition.min_limit is not None and number < definition.min_limit:
        return Rejection(Reason.VALUE_OUT_OF_RANGE, f"below the minimum {_number(definition.min_limit)}")
    if definition.max_limit is not None and number > definition.max_limit:
        return Rejection(Reason.VALUE_OUT_OF_RANGE, f"above the maximum {_number(definition.max_limit)}")
    return None


def _check_length(definition: VariableDef, value: str) -> Rejection | None:
    """A string (or a list's comma-separated form) no longer than maxLimit, and a string no shorter than minLimit."""
    if definition.max_limit is not None and len(value) > definition.max_limit:
        return Rejection(Reason.TOO_LARGE_ELEMENT, f"longer than {_number(definition.max_limit)} characters")
    minimum = definition.min_limit
    if definition.data_type is DataType.STRING and minimum is not None and len(value) < minimum:
        return Rejection(Reason.INVALID_VALUE, f"shorter than {_number(minimum)} characters")
    return None


def _number(limit: float) -> str:
    """A limit as people write it: 60, not 60.0."""
    return str(int(limit)) if float(limit).is_integer() else str(limit)


def _listed(definition: VariableDef) -> str:
    """The values list for a reason's additionalInfo (at most 512 characters)."""
    text = ",".join(definition.values_list)
    return text if len(text) <= 400 else text[:397] + "..."
