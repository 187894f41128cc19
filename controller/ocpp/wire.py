"""The ``ocpp`` library as the protocol layers use it: typed entry points and a wire log that hides id tokens.

The library is untyped; this module gives its decorator and errors types once, so the layers stay mypy-strict.
It logs every frame at INFO on the logger we hand it: that logger is ``controller.ocpp.wire``, quiet unless
asked for (DEBUG), and its records pass through a filter that replaces id token values by their redacted
form (``drivers.redact``), as the rest of the controller logs tokens.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any, TypeVar, cast

from ocpp.exceptions import (
    FormatViolationError,
    GenericError,
    OCPPError,
    PropertyConstraintViolationError,
    TypeConstraintViolationError,
)
from ocpp.exceptions import (
    NotImplementedError as OcppNotImplementedError,
)
from ocpp.routing import after as _after
from ocpp.routing import on as _on

from drivers.redact import redact_token

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
    "wire_logger",
]

# "idToken": "X", "id_token": "X", "idTag": "X", "parentIdTag": "X" (1.6) in a JSON frame or a repr of one
_TOKEN_VALUE = re.compile(r"""(["'](?:idToken|id_token|idTag|id_tag|parentIdTag|parent_id_tag)["']\s*:\s*["'])"""
                          r"""([^"']*)(["'])""")


class _RedactTokens(logging.Filter):
    """Rewrites a wire log record so no id token appears in it."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Format the record once and replace every id token value by its redacted form."""
        try:
            text = record.getMessage()
        except Exception:
            return True
        record.msg = _TOKEN_VALUE.sub(lambda m: m.group(1) + redact_token(m.group(2)) + m.group(3), text)
        record.args = None
        return True


def wire_logger() -> logging.Logger:
    """``controller.ocpp.wire``: every frame at INFO (shown only with --log-level DEBUG), id tokens redacted."""
    logger = logging.getLogger("controller.ocpp.wire")
    if not any(isinstance(f, _RedactTokens) for f in logger.filters):
        logger.addFilter(_RedactTokens())
        if logger.level == logging.NOTSET and not logging.getLogger().isEnabledFor(logging.DEBUG):
            logger.setLevel(logging.WARNING)
    return logger
