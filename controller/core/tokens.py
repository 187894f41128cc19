"""The id-token policy: what a token may hold, how two tokens match, the limits OCPP adds.

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

from controller.core.parsing import FormatError

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
