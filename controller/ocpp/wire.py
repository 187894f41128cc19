"""The ``ocpp`` library as the protocol layers use it: typed entry points and a wire log that hides id tokens.

The library is untyped; this module gives its decorator and errors types once, so the layers stay mypy-strict.
It logs every frame at INFO on the logger we hand it: that logger is ``controller.ocpp.wire``, quiet unless
asked for (DEBUG), and its records pass through a filter that replaces id token values by their redacted
form (``drivers.redact``), as the rest of the controller logs tokens, and hides every value of a frame that
names the Basic auth password (a SetVariables or ChangeConfiguration that sets it).
"""

from __future__ import annotations

import decimal
import functools
import json
import logging
import re
from collections.abc import Awaitable, Callable, Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import ocpp
from jsonschema import Draft4Validator  # type: ignore[import-untyped]
from ocpp.charge_point import snake_to_camel_case
from ocpp.exceptions import (
    FormatViolationError,
    GenericError,
    NotSupportedError,
    OccurenceConstraintViolationError,
    OCPPError,
    PropertyConstraintViolationError,
    TypeConstraintViolationError,
)
from ocpp.exceptions import (
    NotImplementedError as OcppNotImplementedError,
)
from ocpp.messages import MessageType, get_validator
from ocpp.routing import after as _after
from ocpp.routing import on as _on
from ocpp.v16.enums import Action as Action16
from ocpp.v201.enums import Action as Action201

from drivers.redact import redact_token

if TYPE_CHECKING:
    from controller.ocpp.station.outbox import Outbox

log = logging.getLogger("controller.ocpp")

F = TypeVar("F", bound=Callable[..., Any])

on = cast(Callable[[str], Callable[[F], F]], _on)
"""``@on(action)``: marks a method as the handler of a CSMS CALL (typed)."""
after = cast(Callable[[str], Callable[[F], F]], _after)
"""``@after(action)``: runs after the CALLRESULT was sent (typed)."""

__all__ = [
    "FormatViolationError",
    "GenericError",
    "OCPPError",
    "OcppNotImplementedError",
    "PropertyConstraintViolationError",
    "TypeConstraintViolationError",
    "after",
    "on",
    "refusal",
    "wire_logger",
]

# "idToken": "X", "id_token": "X", "idTag": "X", "parentIdTag": "X" (1.6) in a JSON frame or a repr of one
_TOKEN_VALUE = re.compile(r"""(["'](?:idToken|id_token|idTag|id_tag|parentIdTag|parent_id_tag)["']\s*:\s*["'])"""
                          r"""([^"']*)(["'])""")
# a frame that names the Basic auth password (2.0.1 SecurityCtrlr.BasicAuthPassword, 1.6 AuthorizationKey) has
# every value hidden: the variable's name and its value are separate fields of one entry
_SECRET_NAMES = re.compile(r"BasicAuthPassword|AuthorizationKey", re.IGNORECASE)
_VALUE = re.compile(r"""(["'](?:attributeValue|attribute_value|value)["']\s*:\s*)"""
                    r"""("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')""")  # a JSON or repr string, escapes and all
_HIDDEN = '"<redacted>"'


class _RedactTokens(logging.Filter):
    """Rewrites a wire log record so no id token and no password appears in it."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Format the record once; replace every id token value by its redacted form, and hide the values of a frame
        that names the password."""
        try:
            text = record.getMessage()
        except Exception:
            return True
        text = _TOKEN_VALUE.sub(lambda m: m.group(1) + redact_token(m.group(2)) + m.group(3), text)
        if _SECRET_NAMES.search(text):
            text = _VALUE.sub(lambda m: m.group(1) + _HIDDEN, text)
        record.msg = text
        record.args = None
        return True


def handled_actions(route_map: Mapping[str, Mapping[str, Any]]) -> frozenset[str]:
    """The actions a charge point has an ``@on`` handler for (its library route map may also hold ``@after`` hooks)."""
    return frozenset(action for action, hooks in route_map.items() if "_on_action" in hooks)


async def answer_call(msg: Any, version: str, handled: Collection[str], outbox: Outbox,
                      send: Callable[[str], Awaitable[None]], handle: Callable[[Any], Awaitable[Any]]) -> Any:
    """One CSMS CALL, for both protocol layers: with the outbox held (our answer is the next frame we send), either
    the CALLERROR OCPP-J says it deserves (``refusal``: sent here with one WARNING; the library would log an ERROR
    with a traceback for each) or the library's ``handle`` with our handler."""
    outbox.hold()
    try:
        if (refused := refusal(version, msg.action, msg.payload, handled)) is not None:
            log.warning("refused a CSMS %s: %s", msg.action, type(refused).__name__)  # details may hold a token
            await send(msg.create_call_error(refused).to_json())
            return None
        return await handle(msg)
    finally:
        outbox.release()


def message_bytes(payload: Mapping[str, Any]) -> int:
    """The size of a CALL's payload as it came on the wire (compact camelCase JSON, UTF-8): what the BytesPerMessage
    limits count. Handlers get the payload in snake_case; it is turned back first."""
    text = json.dumps(snake_to_camel_case(dict(payload)), separators=(",", ":"), ensure_ascii=False, default=str)
    return len(text.encode("utf-8"))


def wire_logger() -> logging.Logger:
    """``controller.ocpp.wire``: every frame at INFO (shown only with --log-level DEBUG), id tokens redacted."""
    logger = logging.getLogger("controller.ocpp.wire")
    if not any(isinstance(f, _RedactTokens) for f in logger.filters):
        logger.addFilter(_RedactTokens())
        if logger.level == logging.NOTSET and not logging.getLogger().isEnabledFor(logging.DEBUG):
            logger.setLevel(logging.WARNING)
    return logger


_ACTIONS = {"2.0.1": frozenset(a.value for a in Action201), "1.6": frozenset(a.value for a in Action16)}
_OCCURRENCE = OccurenceConstraintViolationError  # the spelling of 1.6 and 2.0.1 (fixed only in 2.1)
_ERROR_OF_KEYWORD: dict[str, type[OCPPError]] = {
    "type": TypeConstraintViolationError,
    "maxLength": TypeConstraintViolationError,  # string[50] and the like are data types in OCPP
    "required": _OCCURRENCE,
    "minItems": _OCCURRENCE,
    "maxItems": _OCCURRENCE,
    "additionalProperties": PropertyConstraintViolationError,
}


_DECIMAL_ACTIONS_16 = frozenset({"SetChargingProfile", "RemoteStartTransaction"})  # limits: multipleOf 0.1


@functools.cache
def _decimal_validator(action: str) -> Any:
    """The 1.6 schema of ``action`` with its numbers read as Decimal, as the library checks these actions: with
    floats, ``multipleOf 0.1`` refuses 21.4. Built apart: the library caches one validator per action whatever its
    number parser, and the one it takes for these must be its own Decimal one."""
    path = Path(ocpp.__file__).parent / "v16" / "schemas" / f"{action}.json"
    return Draft4Validator(json.loads(path.read_text(encoding="utf-8-sig"), parse_float=decimal.Decimal))


def refusal(version: str, action: str, payload: object, handled: Collection[str]) -> OCPPError | None:
    """The CALLERROR a CALL from the peer deserves before any handler sees it, or None when it may be handled.

    OCPP-J (1.6 4.2.3, 2.0.1 Part 4 4.3) "Valid Error Codes", with schema failures mapped as the independent strict
    peer of the tests maps them (ocpp-rpc): NotImplemented for an action ``version`` does not have ("not known by
    receiver") and NotSupported for one it has that is not in ``handled`` ("recognized but not supported"): the
    ``ocpp`` library swaps these two. FormatViolation for a payload that is not an object or a value outside its
    enumeration or format; TypeConstraintViolation for a field of the wrong JSON type or too long;
    OccurenceConstraintViolation (1.6's and 2.0.1's spelling) for a missing required field or too few or too many
    items; PropertyConstraintViolation for a property the action does not have.
    """
    if action not in _ACTIONS[version]:
        return OcppNotImplementedError(description="Requested Action is not known by receiver",
                                       details={"cause": f"{action} is not an OCPP {version} action"})
    if action not in handled:
        return NotSupportedError(description="Requested Action is recognized but not supported by the receiver",
                                 details={"cause": f"this station does not support {action}"})
    if not isinstance(payload, dict):
        return FormatViolationError(details={"cause": f"the payload of {action} is not a JSON object"})
    if version == "1.6" and action in _DECIMAL_ACTIONS_16:
        validator, payload = _decimal_validator(action), json.loads(json.dumps(payload), parse_float=decimal.Decimal)
    else:
        validator = get_validator(MessageType.Call, action, version)
    errors = sorted(validator.iter_errors(payload), key=lambda error: len(error.absolute_path))
    if not errors:
        return None
    first = errors[0]
    where = "/".join(str(part) for part in first.absolute_path) or "(root)"
    error_class = _ERROR_OF_KEYWORD.get(str(first.validator), FormatViolationError)
    return error_class(details={"cause": f"{where}: {first.message}"[:500]})
