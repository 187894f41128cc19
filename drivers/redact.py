"""Redaction of identifiers that must not appear in logs (RFID tokens, card numbers).

A presented token authorizes charging, so a full token in a log file is a credential leak.
Logs keep only enough to tell two cards apart while debugging on site.
"""

from __future__ import annotations

_KEEP = 2  # characters kept at each end
_MASK = "..."


def redact_token(token: str) -> str:
    """Shorten a token to its first and last two characters, e.g. ``"0A...3F"``.

    Tokens of six characters or fewer would leak most of themselves that way, so they
    become ``"..."`` alone. Never raises: logging must not fail on odd input.
    """
    if len(token) <= 3 * _KEEP:
        return _MASK
    return f"{token[:_KEEP]}{_MASK}{token[-_KEEP:]}"
