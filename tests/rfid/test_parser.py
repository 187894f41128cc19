"""The pure RDM6300 parser, repeat filter, frame encoder and token redaction (no I/O, no clock)."""

from __future__ import annotations

import random
from collections import Counter
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.redact import redact_token
from drivers.rfid import BODY_LEN, ETX, STX, Rdm6300Parser, RepeatFilter, SkipReason, encode_frame
from drivers.sim.serial_link import bad_checksum_frame, truncated_frame

TOKEN = "0F00A1B2C3"
OTHER = "1122334455"


def skips(parser: Rdm6300Parser) -> dict[SkipReason, int]:
    """Only the non-zero skip counts, for compact assertions."""
    return {reason: n for reason, n in parser.skips.items() if n}


def feed_chunks(parser: Rdm6300Parser, data: bytes, cuts: list[int]) -> list[str]:
    """Feed ``data`` cut at the given offsets; return all tokens in order."""
    bounds = [0, *sorted(cuts), len(data)]
    tokens: list[str] = []
    for start, end in pairwise(bounds):
        tokens += parser.feed(data[start:end])
        assert parser.buffered <= BODY_LEN
    return tokens


# ------------------------------------------------------------------ frames


def test_frame_layout_matches_the_rdm6300_datasheet() -> None:
    # 0x0F ^ 0x00 ^ 0xA1 ^ 0xB2 ^ 0xC3 = 0xDF
    assert encode_frame(TOKEN) == b"\x020F00A1B2C3DF\x03"


def test_valid_frame_yields_the_uppercase_hex_of_its_five_bytes() -> None:
    parser = Rdm6300Parser()
    assert parser.feed(encode_frame(TOKEN)) == [TOKEN]
    assert skips(parser) == {}
    assert parser.buffered == 0


def test_lowercase_hex_is_accepted_and_normalised() -> None:
    parser = Rdm6300Parser()
    assert parser.feed(b"\x020f00a1b2c3df\x03") == [TOKEN]


def test_several_frames_in_one_chunk_come_out_in_order() -> None:
    parser = Rdm6300Parser()
    assert parser.feed(encode_frame(TOKEN) + encode_frame(OTHER) + encode_frame(TOKEN)) == [TOKEN, OTHER, TOKEN]


@pytest.mark.parametrize("cut", range(1, 14))
def test_a_frame_split_at_any_byte_still_parses(cut: int) -> None:
    frame = encode_frame(TOKEN)
    parser = Rdm6300Parser()
    assert parser.feed(frame[:cut]) == []
    assert parser.feed(frame[cut:]) == [TOKEN]


def test_byte_by_byte_feeding_works() -> None:
    parser = Rdm6300Parser()
    data = encode_frame(TOKEN) + encode_frame(OTHER)
    assert feed_chunks(parser, data, list(range(1, len(data)))) == [TOKEN, OTHER]


# ------------------------------------------------------------------ skips


def test_bad_checksum_is_skipped_with_its_reason_and_the_next_frame_parses() -> None:
    parser = Rdm6300Parser()
    assert parser.feed(bad_checksum_frame(TOKEN) + encode_frame(OTHER)) == [OTHER]
    assert skips(parser) == {SkipReason.BAD_CHECKSUM: 1}


def test_garbage_is_counted_once_per_run_even_across_chunks() -> None:
    parser = Rdm6300Parser()
    assert parser.feed(b"\x00\xffAB") == []
    assert parser.feed(b"CD\x03\r\n") == []  # same run continues
    assert parser.feed(encode_frame(TOKEN) + b"zz" + encode_frame(OTHER)) == [TOKEN, OTHER]
    assert skips(parser) == {SkipReason.GARBAGE: 2}


def test_a_new_stx_truncates_a_partial_frame() -> None:
    parser = Rdm6300Parser()
    assert parser.feed(truncated_frame(TOKEN, 7) + encode_frame(OTHER)) == [OTHER]
    assert skips(parser) == {SkipReason.TRUNCATED: 1}


def test_an_early_etx_is_a_truncated_frame() -> None:
    parser = Rdm6300Parser()
    assert parser.feed(b"\x020F00A1\x03" + encode_frame(OTHER)) == [OTHER]
    assert skips(parser) == {SkipReason.TRUNCATED: 1}


def test_twelve_characters_without_etx_is_missing_etx_and_the_rest_is_dropped() -> None:
    parser = Rdm6300Parser()
    frame = encode_frame(TOKEN)
    assert parser.feed(frame[:-1] + b"5555\x03" + encode_frame(OTHER)) == [OTHER]
    assert skips(parser) == {SkipReason.MISSING_ETX: 1}


def test_a_non_hex_character_inside_a_frame_is_not_hex_and_the_frame_is_dropped() -> None:
    parser = Rdm6300Parser()
    assert parser.feed(b"\x020F00G1B2C3DF\x03" + encode_frame(OTHER)) == [OTHER]
    assert skips(parser) == {SkipReason.NOT_HEX: 1}


def test_flush_counts_an_unfinished_frame_as_truncated() -> None:
    parser = Rdm6300Parser()
    parser.feed(truncated_frame(TOKEN, 5))
    assert parser.buffered == 4
    parser.flush()
    assert parser.buffered == 0
    assert skips(parser) == {SkipReason.TRUNCATED: 1}
    assert parser.feed(encode_frame(OTHER)) == [OTHER]


def test_buffer_stays_bounded_under_a_long_stream_of_garbage() -> None:
    rng = random.Random(6300)
    parser = Rdm6300Parser()
    alphabet = bytes([STX, ETX]) + b"0123456789ABCDEF\x00\xff"
    for _ in range(2000):
        parser.feed(bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 64))))
        assert parser.buffered <= BODY_LEN
    parser.feed(b"\xff" * 1_000_000)  # a megabyte of noise in one chunk
    assert parser.buffered <= BODY_LEN
    assert parser.feed(encode_frame(TOKEN)) == [TOKEN]  # and it still resynchronises


def test_skips_view_is_read_only() -> None:
    parser = Rdm6300Parser()
    with pytest.raises(TypeError):
        parser.skips[SkipReason.GARBAGE] = 5  # type: ignore[index]


# ------------------------------------------------------------------ properties

tokens = st.binary(min_size=5, max_size=5).map(lambda b: b.hex().upper())
garbage = st.binary(min_size=1, max_size=30).map(lambda b: b.replace(bytes([STX]), b"")).filter(bool)
piece = st.one_of(
    st.tuples(st.just("valid"), tokens),
    st.tuples(st.just("bad_checksum"), tokens),
    st.tuples(st.just("garbage"), garbage),
    # a cut-off frame is always followed by a frame start, otherwise the next bytes would continue it
    st.tuples(st.just("truncated"), st.tuples(tokens, st.integers(1, 13), tokens)),
)


@given(pieces=st.lists(piece, max_size=20), data=st.data())
def test_any_mix_split_anywhere_yields_exactly_the_valid_tokens(
    pieces: list[tuple[str, object]], data: st.DataObject
) -> None:
    stream = b""
    expected_tokens: list[str] = []
    expected_skips: Counter[SkipReason] = Counter()
    previous = ""
    for kind, value in pieces:
        if kind == "valid":
            assert isinstance(value, str)
            stream += encode_frame(value)
            expected_tokens.append(value)
        elif kind == "bad_checksum":
            assert isinstance(value, str)
            stream += bad_checksum_frame(value)
            expected_skips[SkipReason.BAD_CHECKSUM] += 1
        elif kind == "garbage":
            assert isinstance(value, bytes)
            stream += value
            if previous != "garbage":
                expected_skips[SkipReason.GARBAGE] += 1
        else:
            assert isinstance(value, tuple)
            cut_token, keep, next_token = value
            stream += truncated_frame(cut_token, keep) + encode_frame(next_token)
            expected_skips[SkipReason.TRUNCATED] += 1
            expected_tokens.append(next_token)
        previous = kind
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=12), label="cuts")

    parser = Rdm6300Parser()
    assert feed_chunks(parser, stream, cuts) == expected_tokens
    parser.flush()
    assert skips(parser) == dict(expected_skips)


frame_ish = st.lists(st.sampled_from(list(bytes([STX, ETX]) + b"0123456789ABCDEFaf\x00\xffZ")), max_size=200).map(bytes)


@given(stream=st.one_of(st.binary(max_size=200), frame_ish), data=st.data())
def test_chunking_never_changes_the_result_and_never_raises(stream: bytes, data: st.DataObject) -> None:
    whole = Rdm6300Parser()
    expected = whole.feed(stream)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=20), label="cuts")
    chunked = Rdm6300Parser()
    assert feed_chunks(chunked, stream, cuts) == expected
    assert dict(chunked.skips) == dict(whole.skips)
    assert all(len(t) == 10 and t == t.upper() for t in expected)


@given(token=tokens)
def test_encode_then_parse_round_trips(token: str) -> None:
    assert Rdm6300Parser().feed(encode_frame(token)) == [token]


# ------------------------------------------------------------------ encoder errors


@pytest.mark.parametrize(
    ("token", "message"),
    [("0F00A1B2C", "must be 10 hex characters, got 9"), ("0F00A1B2CG", "only hex digits")],
)
def test_encode_frame_names_what_is_wrong(token: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        encode_frame(token)


# ------------------------------------------------------------------ repeat suppression


def test_a_held_card_is_one_presentation_until_it_leaves_for_the_interval() -> None:
    repeats = RepeatFilter(interval_s=1.0)
    seen = [repeats.admit(TOKEN, t / 10) for t in range(0, 50)]  # held 5 s, a frame every 100 ms
    assert seen[0] is True
    assert not any(seen[1:])
    assert repeats.suppressed == 49
    assert repeats.admit(TOKEN, 5.5) is False  # a 0.6 s gap: still the same presentation
    assert repeats.admit(TOKEN, 7.0) is True  # lifted for 1.5 s: a new presentation


def test_another_card_in_between_makes_the_first_card_new_again() -> None:
    repeats = RepeatFilter(interval_s=1.0)
    assert repeats.admit(TOKEN, 0.0)
    assert repeats.admit(OTHER, 0.1)
    assert repeats.admit(TOKEN, 0.2)


def test_zero_interval_admits_every_read() -> None:
    repeats = RepeatFilter(interval_s=0.0)
    assert all(repeats.admit(TOKEN, 0.0) for _ in range(3))


def test_negative_interval_is_rejected() -> None:
    with pytest.raises(ValueError, match="interval must be >= 0 s"):
        RepeatFilter(interval_s=-1.0)


# ------------------------------------------------------------------ redaction


@pytest.mark.parametrize(
    ("token", "shown"),
    [
        ("", "..."),
        ("A", "..."),
        ("ABCDEF", "..."),  # up to 6 characters: nothing shown
        ("ABCDEFG", "...FG"),  # 7 to 16: the last two only
        ("0A1B2C3D", "...3D"),  # an 8-hex RFID UID (it showed "0A...3D", half of it)
        (TOKEN, "...C3"),
        ("0123456789ABCDEF", "...EF"),
        ("0123456789ABCDEFG", "01...FG"),  # longer: two at each end
        ("DRIVER-SECRET-4711", "DR...11"),
    ],
)
def test_redact_token_shows_at_most_two_characters_of_a_short_token(token: str, shown: str) -> None:
    assert redact_token(token) == shown


@given(st.text(max_size=40))
def test_redact_token_never_reveals_much(token: str) -> None:
    """At most 2 characters of a token of 16 or fewer, at most 4 of any, and only from its ends."""
    shown = redact_token(token)
    # the mask "..." stands between what is kept of each end; a token may itself hold dots, so try every split
    kept = len(shown) - 3
    assert kept <= (2 if len(token) <= 16 else 4), shown
    ends = [(token[:h], token[len(token) - (kept - h):] if kept > h else "") for h in range(kept + 1)]
    assert any(shown == head + "..." + tail for head, tail in ends), shown
