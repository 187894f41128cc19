"""The id token policy: ASCII case-insensitive matching, refused control and invisible-only tokens, OCPP limits."""

from __future__ import annotations

import json
import re
import sqlite3
import sys
import unicodedata
from pathlib import Path

import pytest
from core_helpers import FakeClock, res, site

from controller.core.parsing import FormatError
from controller.core.reservation import ReservationCore
from controller.core.store import ReservationStore
from controller.core.tokens import (
    CONTROL_RANGES,
    INVISIBLE_RANGES,
    MAX_TOKEN_LENGTH,
    OCPP16_ID_TAG_MAX_LENGTH,
    OCPP201_ID_TOKEN_MAX_LENGTH,
    TOKEN_PATTERN,
    fold_token,
    parse_token,
    same_token,
)
from controller.core.types import ConnectorType, Reservation, ReservationCheck

# As JSON Schema (ECMA-262) reads it: there "$" is the end of the text, where Python's "$" also matches before a
# final newline.
PATTERN = re.compile(TOKEN_PATTERN.removesuffix("$") + r"\Z")


def refused(value: object, field: str = "id_token") -> FormatError:
    """The FormatError parse_token raises for ``value`` (the test fails when it accepts it)."""
    with pytest.raises(FormatError) as info:
        parse_token(field, value)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")
    return info.value


def in_ranges(cp: int, ranges: tuple[tuple[int, int], ...]) -> bool:
    """Whether code point ``cp`` lies in one of the inclusive ``ranges``."""
    return any(lo <= cp <= hi for lo, hi in ranges)


# ------------------------------------------------------------------ matching


@pytest.mark.parametrize(
    ("a", "b"),
    [("ALICE", "alice"), ("alice", "ALICE"), ("Card-0A1b", "CARD-0a1B"), ("04a1b2c3", "04A1B2C3"), ("x", "x"),
     ("Zürich", "züRICH"), ("É-ok", "É-OK")],
)  # fmt: skip
def test_tokens_differing_only_in_ascii_letter_case_match(a: str, b: str) -> None:
    assert same_token(a, b) and same_token(b, a)
    assert fold_token(a) == fold_token(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("\u212a", "k"),  # KELVIN SIGN: Unicode casefold makes it "k"; OCPP's ASCII comparison does not
        ("\u212a", "K"),
        ("\u212aEY", "key"),
        ("stra\u00dfe", "strasse"),  # ß casefolds to "ss"
        ("\u0130", "i"),  # İ: lower() gives "i" plus a combining dot
        ("\u017f", "s"),  # LONG S casefolds to "s"
        ("\ufb01", "fi"),  # the fi ligature casefolds to "fi"
        ("\u00c9", "\u00e9"),  # É and é: only A-Z/a-z fold (documented choice)
        ("\u0391", "\u03b1"),  # Greek Alpha and alpha: not ASCII, no fold
        ("ALICE", "ALICE "),
        ("ALICE", "ALIC"),
        ("A", "\uff21"),  # fullwidth A
    ],
)
def test_only_ascii_letters_fold(a: str, b: str) -> None:
    assert not same_token(a, b) and not same_token(b, a)


def test_none_never_matches() -> None:
    assert not same_token(None, None)
    assert not same_token("ALICE", None) and not same_token(None, "ALICE")


def test_fold_token_lowers_ascii_letters_only() -> None:
    assert fold_token("AbC-\u212a-\u00c9-Z@[`{") == "abc-\u212a-\u00c9-z@[`{"


# ------------------------------------------------------------------ control characters


@pytest.mark.parametrize(
    ("token", "code", "position"),
    [
        ("\x00", "U+0000", 1),
        ("ABC\x00", "U+0000", 4),
        ("AB\x00CD", "U+0000", 3),
        ("\x1b[31mRED", "U+001B", 1),
        ("CARD\x7f", "U+007F", 5),
        ("CARD\x85X", "U+0085", 5),  # NEL, a C1 control (and white space to str.strip)
        ("\x9fCARD", "U+009F", 1),
        ("CA\tRD", "U+0009", 3),
        ("CARD\n", "U+000A", 5),
        ("CARD\r\nX", "U+000D", 5),  # the first one is named
        ("\x00" * 10, "U+0000", 1),
    ],
)
def test_a_control_character_anywhere_is_refused_naming_it_and_its_position(
    token: str, code: str, position: int
) -> None:
    error = refused(token)
    assert error.problem == f"contains the control character {code} at position {position}"


def test_every_control_character_is_refused_and_only_those_are() -> None:
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        is_control = unicodedata.category(chr(cp)) == "Cc"
        assert in_ranges(cp, CONTROL_RANGES) == is_control, hex(cp)
        if is_control:
            assert "control character" in refused(f"A{chr(cp)}").problem


def test_the_error_does_not_quote_the_token() -> None:
    """Errors are logged and answered; the token is a credential, so only code points are named."""
    for token in ("SECRET-CARD\x00", "\u200bSECRET\x1b", "\u200b\u200b"):
        assert "SECRET" not in str(refused(token)) and token not in str(refused(token))


# ------------------------------------------------------------------ invisible-only tokens


@pytest.mark.parametrize(
    "token",
    [
        " ",
        "   ",
        "\u00a0",  # no-break space
        "\u3000",  # ideographic space
        "\u2028",  # line separator
        "\u200b",  # zero-width space
        "\u200b\u200c\u200d",  # zero-width space, non-joiner, joiner
        "\ufeff",  # byte order mark
        "\u00ad",  # soft hyphen
        "\u2060",  # word joiner
        "\u202e",  # right-to-left override
        "\u2066\u2069",  # bidi isolates
        "\u180e",  # Mongolian vowel separator
        "\u0301",  # a combining acute accent with nothing to sit on
        "\u034f",  # combining grapheme joiner
        "\ufe0f",  # variation selector 16
        "\U000e0100",  # variation selector 17
        "\u3164",  # Hangul filler
        "\u115f\u1160",  # Hangul choseong / jungseong fillers
        "\uffa0",  # halfwidth Hangul filler
        "\u2800",  # braille pattern blank
        "\U000e0001\U000e0041\U000e007f",  # language tag, tag A, cancel tag
        " \u200b\ufeff\u0301 ",
    ],
)
def test_a_token_of_invisible_characters_only_is_refused(token: str) -> None:
    error = refused(token)
    assert "empty" in error.problem and "invisible" in error.problem
    assert f"the first is U+{ord(token[0]):04X}" in error.problem


def test_the_empty_token_keeps_its_message() -> None:
    """Quarantined store rows and API clients match on it."""
    assert refused("").problem == "must not be empty"


@pytest.mark.parametrize(
    "token",
    ["A", "0A1B2C3D", "A\u200bB", "\u200bA", "e\u0301", "\u00e9", "ALICE SMITH", "\u212a", "\U0001f50b", "\uff21",
     "\u3042", "-", ".", "\ufffd", "\ue000", "A\ufe0f", "\u0661", "\u2065"],
)  # fmt: skip
def test_a_token_with_a_visible_character_is_accepted_whatever_else_it_holds(token: str) -> None:
    assert parse_token("id_token", token) == token
    assert PATTERN.search(token)


def test_every_white_space_and_format_character_counts_as_invisible() -> None:
    """The explicit table covers this Python's str.isspace() and category Cf (a newer Unicode may add to Cf)."""
    for cp in range(0x110000):
        char = chr(cp)
        if in_ranges(cp, CONTROL_RANGES) or 0xD800 <= cp <= 0xDFFF:
            continue
        if char.isspace() or unicodedata.category(char) in ("Cf", "Zs", "Zl", "Zp"):
            assert in_ranges(cp, INVISIBLE_RANGES), f"U+{cp:04X} ({unicodedata.name(char, '?')})"


def test_invisible_ranges_hold_no_letter_digit_or_symbol() -> None:
    """Nothing visible was put in the table by mistake (this Python's Unicode: no L*, N*, P*, S* there)."""
    for lo, hi in INVISIBLE_RANGES:
        for cp in range(lo, hi + 1):
            category = unicodedata.category(chr(cp))
            assert category[0] not in "LNPS" or cp in (0x115F, 0x1160, 0x3164, 0xFFA0, 0x2800), (hex(cp), category)


# ------------------------------------------------------------------ length, surrogates, records


def test_length_limit_counts_characters() -> None:
    assert parse_token("id_token", "\U0001f50b" * MAX_TOKEN_LENGTH)  # 4 UTF-8 bytes each: characters count
    assert "at most 255 allowed" in refused("A" * (MAX_TOKEN_LENGTH + 1)).problem
    assert "at most 255 allowed" in refused("\x00" * (MAX_TOKEN_LENGTH + 1)).problem  # the length comes first


def test_a_lone_surrogate_is_still_refused() -> None:
    assert "lone UTF-16 surrogate" in refused("CARD-\udfff").problem


def test_ocpp_length_limits_are_documented_and_ours_is_wider() -> None:
    assert OCPP201_ID_TOKEN_MAX_LENGTH == 36  # IdTokenType.idToken string[0..36]
    assert OCPP16_ID_TAG_MAX_LENGTH == 20  # CiString20Type
    assert MAX_TOKEN_LENGTH == 255 >= OCPP201_ID_TOKEN_MAX_LENGTH
    doc = sys.modules[parse_token.__module__].__doc__ or ""
    assert "36" in doc and "20" in doc and "CiString20Type" in doc and "idToken" in doc


@pytest.mark.parametrize("field", ["id_token", "parent_id_token"])
def test_reservation_tokens_follow_the_policy(field: str) -> None:
    document = {"reservation_id": 1, "id_token": "CARD-0001", "expiry_time": "2030-01-01T00:00:00Z"}
    for bad, words in (("CARD\x00", "control character U+0000"), ("\u200b", "invisible")):
        with pytest.raises(FormatError) as info:
            Reservation.from_dict({**document, field: bad})
        assert info.value.field == field and words in info.value.problem


@pytest.mark.parametrize("field", ["id_token", "group_id_token"])
def test_check_tokens_follow_the_policy(field: str) -> None:
    with pytest.raises(FormatError) as info:
        ReservationCheck.from_dict({"id_token": "CARD-0001", field: "\ufeff"})
    assert info.value.field == field


def test_a_stored_row_the_policy_now_refuses_is_quarantined(tmp_path: Path) -> None:
    """A row written before the policy (a NUL token) is set aside at load, not loaded and not lost."""
    path = tmp_path / "res.db"
    t2 = ConnectorType.cType2
    core = ReservationCore(site((t2,), (t2,)), clock=FakeClock(), store=ReservationStore(path))
    core.reserve_now(res(1))
    core.reserve_now(res(2))
    bad = json.dumps({"reservation_id": 2, "id_token": "CARD\x00", "expiry_time": "2030-01-01T00:00:00Z"})
    with sqlite3.connect(path) as db:
        db.execute("UPDATE reservations SET payload = ? WHERE reservation_id = 2", (bad,))
    store = ReservationStore(path)
    again = ReservationCore(site((t2,), (t2,)), clock=FakeClock(), store=store)
    assert [r.reservation_id for r in again.reservations()] == [1]
    assert store.quarantined() == [(bad, "id_token: contains the control character U+0000 at position 5")]


# ------------------------------------------------------------------ the schema pattern


@pytest.mark.parametrize(
    "token",
    ["A", "a\u200b", "\u200b", "", " ", "A\x00", "\x00", "A\n", "\n", "\U000e0041", "\U000e0041X", "\u0301e",
     "A" * 300, "\x7f", "B\x9f"],
)  # fmt: skip
def test_the_schema_pattern_says_what_parse_token_says(token: str) -> None:
    """The OpenAPI schema documents tokens with TOKEN_PATTERN; it must accept exactly what the parser accepts."""
    try:
        parse_token("id_token", token)
    except FormatError as exc:
        if "characters long" in exc.problem or exc.problem == "must not be empty":
            return  # maxLength and minLength say these in the schema
        assert PATTERN.search(token) is None, exc
    else:
        assert PATTERN.search(token) is not None
