"""Redaction of identifiers that must not appear in logs (RFID tokens, card numbers).

A presented token authorizes charging, so a full token in a log file is a credential leak.
Logs keep only enough to tell two cards apart while debugging on site: a few characters of long
tokens, the last two of short ones, none of very short ones. Short tokens are the common case
(an RFID UID is 8 to 20 hex digits), so they must not show half of themselves.
"""

from __future__ import annotations

_KEEP = 2  # characters shown at an end
_MASK = "..."
_HIDDEN_UP_TO = 6  # tokens this short show nothing
_TAIL_ONLY_UP_TO = 16  # tokens this short show their last _KEEP characters only


def redact_token(token: str) -> str:
    """A token shortened for logs: never more than 2 of its characters up to 16 long, never more than 4 in all.

    Up to 6 characters: ``"..."``; up to 16: ``"..."`` and the last two (an 8-hex UID ``"0A1B2C3D"`` is
    ``"...3D"``); longer: the first two, ``"..."``, the last two (``"DR...11"``). Never raises: logging must not
    fail on odd input.
    """
    if len(token) <= _HIDDEN_UP_TO:
        return _MASK
    if len(token) <= _TAIL_ONLY_UP_TO:
        return f"{_MASK}{token[-_KEEP:]}"
    return f"{token[:_KEEP]}{_MASK}{token[-_KEEP:]}"
