"""``Reservation.from_dict`` / ``ReservationCheck.from_dict`` on random, mutated and truncated JSON.

They parse every payload the API, the store and the CLI accept, so any input must end in a parsed
record or a ``FormatError`` naming a field; anything else would be a 500 or a store that cannot load.
A parsed record must survive its own ``to_dict`` unchanged.
"""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema_rs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.core.parsing import FormatError, field_name
from controller.core.tokens import INVISIBLE_RANGES, MAX_TOKEN_LENGTH, TOKEN_PATTERN, parse_token, same_token
from controller.core.types import Reservation, ReservationCheck

from .live_api import scale_factor

RESERVATION_KEYS = ("reservation_id", "id_token", "expiry_time", "parent_id_token", "evse_id", "connector_type")
CHECK_KEYS = ("id_token", "evse_id", "group_id_token")
PARSERS: dict[str, tuple[type[Reservation] | type[ReservationCheck], tuple[str, ...]]] = {
    "Reservation": (Reservation, RESERVATION_KEYS),
    "ReservationCheck": (ReservationCheck, CHECK_KEYS),
}
FUZZ = settings(deadline=None, database=None, suppress_health_check=list(HealthCheck),
                max_examples=500 * scale_factor())

json_scalars = (
    st.none() | st.booleans() | st.integers() | st.integers(-(2**70), 2**70)
    | st.floats() | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
times = st.builds(
    "{:04d}-{:02d}-{:02d}{}{:02d}:{:02d}:{:02d}{}{}".format,
    st.integers(0, 9999), st.integers(0, 13), st.integers(0, 32), st.sampled_from(["T", "t", " ", "_"]),
    st.integers(0, 25), st.integers(0, 61), st.integers(0, 61),
    st.sampled_from(["", ".5", ".123456", ".1234567891", "."]),
    st.sampled_from(["Z", "z", "+00:00", "-23:59", "+24:00", "+99:99", "", "+0100"]),
)  # fmt: skip
near_values = (
    json_values | times | st.integers(-3, 3) | st.just(2**31 - 1) | st.just(2**31)
    | st.sampled_from(["cType2", "Unknown", "sCEE-7_7", "ctype2", "", " ", "\t"])
    | st.text(min_size=250, max_size=260)
)
ECMA_TOKEN = re.compile(TOKEN_PATTERN.removesuffix("$") + r"\Z")  # "$" as JSON Schema reads it: the end
tokens = st.text(min_size=1, max_size=20).filter(ECMA_TOKEN.search)
ids = st.integers(0, 2**31 - 1)
expiries = st.sampled_from(["2030-01-01T00:00:00Z", "2026-11-21T13:00:00.123+01:00", "0001-01-01T00:00:00Z"])
valid_reservation = st.fixed_dictionaries(
    {"reservation_id": ids, "id_token": tokens, "expiry_time": expiries},
    optional={"parent_id_token": tokens, "evse_id": ids, "connector_type": st.sampled_from(["cType2", "Unknown"])},
)
valid_check = st.fixed_dictionaries({"id_token": tokens}, optional={"evse_id": ids, "group_id_token": tokens})


def _mutate(base: dict[str, Any], key: str, value: Any, drop: bool) -> dict[str, Any]:
    out = dict(base)
    if drop:
        out.pop(key, None)
    else:
        out[key] = value
    return out


def mutated(valid: st.SearchStrategy[dict[str, Any]], keys: tuple[str, ...]) -> st.SearchStrategy[dict[str, Any]]:
    """A valid document with one key replaced by a near-valid value, dropped, or an unknown key added."""
    return st.builds(_mutate, valid, st.sampled_from([*keys, "x", "", "ID_TOKEN"]), near_values, st.booleans())


def assert_parses_or_names_a_field(kind: str, data: object) -> None:
    """The contract: a record that round-trips, or a FormatError whose field is a key of the input or the type."""
    parser, keys = PARSERS[kind]
    try:
        record = parser.from_dict(data)
    except FormatError as exc:
        assert isinstance(exc.field, str), exc
        assert str(exc) == f"{field_name(exc.field)}: {exc.problem}" and exc.problem.strip(), exc
        assert "\n" not in str(exc) and not str(exc).startswith(":"), exc  # the field is named, visibly
        present = set(data) if isinstance(data, dict) else set()
        assert exc.field in {*keys, kind} | present, (exc.field, data)
        if exc.field == kind:
            assert not isinstance(data, dict), data
        return
    assert isinstance(data, dict), data
    assert parser.from_dict(record.to_dict()) == record
    json.dumps(record.to_dict())  # what the store writes


@pytest.mark.parametrize("kind", sorted(PARSERS))
@FUZZ
@given(data=st.data())
def test_random_json_is_parsed_or_refused_naming_a_field(kind: str, data: st.DataObject) -> None:
    _, keys = PARSERS[kind]
    valid = valid_reservation if kind == "Reservation" else valid_check
    document = data.draw(json_values | mutated(valid, keys) | valid, label="document")
    assert_parses_or_names_a_field(kind, document)


@pytest.mark.parametrize("kind", sorted(PARSERS))
@FUZZ
@given(data=st.data())
def test_truncated_json_is_parsed_or_refused_naming_a_field(kind: str, data: st.DataObject) -> None:
    """A valid document cut short, as text: whatever still parses as JSON must meet the contract."""
    valid = valid_reservation if kind == "Reservation" else valid_check
    text = json.dumps(data.draw(valid, label="valid"))
    cut = data.draw(st.integers(0, len(text)), label="cut")
    closer = data.draw(st.sampled_from(["", "}", '"}', "0}", '":1}', "]"]), label="closer")
    try:
        document = json.loads(text[:cut] + closer)
    except ValueError:
        return  # not JSON any more: the API's read_json answers 400 before from_dict runs
    assert_parses_or_names_a_field(kind, document)


def test_every_truncation_of_a_full_reservation_meets_the_contract() -> None:
    """Deterministically: each prefix of a document with every field, closed where JSON allows."""
    full = {"reservation_id": 7, "id_token": "CARD-0001", "expiry_time": "2030-01-01T12:00:00.5+01:00",
            "parent_id_token": "FLEET-01", "evse_id": 2, "connector_type": "cType2"}
    text = json.dumps(full)
    parsed = 0
    for cut in range(len(text) + 1):
        for closer in ("", "}", '"}', "0}", '":1}'):
            try:
                document = json.loads(text[:cut] + closer)
            except ValueError:
                continue
            parsed += 1
            assert_parses_or_names_a_field("Reservation", document)
    assert parsed > len(full)  # the loop did reach from_dict with many shapes


@pytest.mark.parametrize("key", ["id_token", "parent_id_token"])
def test_a_token_that_is_not_unicode_text_is_refused(key: str) -> None:
    document = {"reservation_id": 1, "id_token": "CARD-0001", "expiry_time": "2030-01-01T00:00:00Z"}
    document[key] = "CARD-\udfff"
    with pytest.raises(FormatError) as refused:
        Reservation.from_dict(document)
    assert refused.value.field == key


# ------------------------------------------------------------------ the token policy

_INVISIBLE = [chr(cp) for lo, hi in INVISIBLE_RANGES for cp in (lo, (lo + hi) // 2, hi)]
token_like = st.text(
    st.sampled_from(_INVISIBLE) | st.characters(max_codepoint=0xA0) | st.characters(exclude_categories=["Cs"]),
    max_size=8,
) | st.text(max_size=MAX_TOKEN_LENGTH + 2)
TOKEN_SCHEMA = jsonschema_rs.validator_for(  # the API's token schema (controller.api.models), as schemathesis checks it
    {"type": "string", "minLength": 1, "maxLength": MAX_TOKEN_LENGTH, "pattern": TOKEN_PATTERN}
)


@FUZZ
@given(token=token_like)
def test_parse_token_and_the_schema_pattern_agree(token: str) -> None:
    """What the OpenAPI schema calls a valid token (as a JSON Schema validator reads it) is what the parser takes."""
    try:
        accepted = parse_token("id_token", token) == token
    except FormatError as exc:
        assert exc.field == "id_token" and exc.problem, exc
        accepted = False
    assert TOKEN_SCHEMA.is_valid(token) == accepted, token
    assert (ECMA_TOKEN.search(token) is not None and 1 <= len(token) <= MAX_TOKEN_LENGTH) == accepted, token


@FUZZ
@given(a=token_like, b=token_like | st.builds(str.swapcase, token_like) | st.builds(str.upper, token_like))
def test_same_token_is_ascii_case_insensitive_equality(a: str, b: str) -> None:
    """Symmetric, and true exactly when the two are equal once A-Z are lowered (nothing else folds)."""
    expected = len(a) == len(b) and all(
        x == y or (x.isascii() and y.isascii() and x.lower() == y.lower()) for x, y in zip(a, b, strict=True)
    )
    assert same_token(a, b) == same_token(b, a) == expected
    assert same_token(a, a)
