"""Random JSON bodies never make the API fail: only 200 or a 4xx that names a field or the body."""

from __future__ import annotations

import asyncio
from datetime import UTC
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.core.parsing import format_rfc3339
from controller.core.types import ConnectorType

from .http_helpers import Api, Reply, call_sync

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)
offsets = st.sampled_from(["Z", "z", "+00:00", "+01:00", "-01:00", "+23:59", "-23:59", "+24:00", ""])
rfc3339ish = st.builds(
    "{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}{}".format,
    st.integers(0, 9999), st.integers(0, 13), st.integers(0, 32),
    st.integers(0, 25), st.integers(0, 61), st.integers(0, 61), offsets,
)  # fmt: skip
edge_times = st.builds(
    str.__add__,
    st.sampled_from(["0001-01-01T00:00:00", "9999-12-31T23:59:59", "2026-02-29T12:00:00", "2026-11-21T12:00:00"]),
    offsets,
)
connector_types = st.sampled_from([t.value for t in ConnectorType])
near_values = json_values | rfc3339ish | edge_times | connector_types | st.integers(-3, 3)
reservation_like = st.fixed_dictionaries(
    {},
    optional={
        key: near_values
        for key in ("reservation_id", "id_token", "expiry_time", "parent_id_token", "evse_id", "connector_type")
    },
)
valid_times = edge_times | st.datetimes(timezones=st.just(UTC)).map(format_rfc3339)
mostly_valid = st.fixed_dictionaries(
    {
        "reservation_id": st.integers(0, 20),
        "id_token": st.sampled_from(["CARD-0001", "card-0001", "CARD-0002"]),
        "expiry_time": valid_times,
    },
    optional={
        "evse_id": st.integers(0, 3),
        "connector_type": st.sampled_from(["cType2", "Unknown", "cCCS2"]),
        "parent_id_token": st.sampled_from(["FLEET", "fleet"]),
    },
)
mutated = st.builds(
    lambda base, key, value: {**base, key: value},
    mostly_valid,
    st.sampled_from(["reservation_id", "id_token", "expiry_time", "evse_id", "connector_type", "x"]),
    near_values,
)
check_like = st.fixed_dictionaries({}, optional={k: near_values for k in ("id_token", "evse_id", "group_id_token")})


def assert_answer(reply: Reply, body: Any) -> None:
    assert reply.status == 200 or 400 <= reply.status < 500, (reply.status, reply.text, body)
    if reply.status >= 400:
        error = reply.error_body()
        assert error["field"] is not None or "body" in error["error"], error


FUZZ = settings(deadline=None, suppress_health_check=list(HealthCheck), database=None)


async def test_random_bodies_get_200_or_a_4xx_naming_the_problem(api: Api) -> None:
    @settings(FUZZ, max_examples=200)
    @given(body=json_values | reservation_like | mostly_valid | mutated)
    def post_reservation(body: Any) -> None:
        assert_answer(call_sync(api.port, "POST", "/reservations", body), body)

    @settings(FUZZ, max_examples=100)
    @given(body=json_values | check_like)
    def post_check(body: Any) -> None:
        assert_answer(call_sync(api.port, "POST", "/reservations/check", body), body)

    @settings(FUZZ, max_examples=60)
    @given(path=st.sampled_from(["/reservations", "/reservations/check", "/evses/1/token"]), raw=st.binary(max_size=64))
    def post_bytes(path: str, raw: bytes) -> None:
        headers = {"Content-Type": "application/json"}
        assert_answer(call_sync(api.port, "POST", path, raw=raw, headers=headers), raw)

    for fuzz in (post_reservation, post_check, post_bytes):
        await asyncio.to_thread(fuzz)
    assert (await api.call("GET", "/status")).status == 200
