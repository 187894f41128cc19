"""Every class of bad request gets a 4xx in the one error shape, naming the field or the body."""

from __future__ import annotations

import logging

import pytest

from controller.api.errors import MAX_BODY_BYTES

from .http_helpers import Api

LATER = "2026-11-21T13:00:00Z"
GOOD = {"reservation_id": 1, "id_token": "CARD-0001", "expiry_time": LATER}


async def test_malformed_json_is_400_saying_so(api: Api) -> None:
    for raw in (b"{bad", b'{"reservation_id": 1,', b"\xff\xfe\x00", b"[" * 100_000 + b"]" * 100_000):
        reply = await api.call("POST", "/reservations", raw=raw[:60_000], headers={"Content-Type": "application/json"})
        assert reply.status == 400, raw[:20]
        assert reply.error_body()["field"] is None
        assert reply.json["error"].startswith("request body is not valid JSON")


async def test_empty_body_is_400(api: Api) -> None:
    reply = await api.call("POST", "/reservations/check", raw=b"", headers={"Content-Type": "application/json"})
    assert (reply.status, reply.error_body()["field"]) == (400, None)
    assert "empty" in reply.json["error"]


async def test_wrong_content_type_is_415(api: Api) -> None:
    reply = await api.call("POST", "/reservations", raw=b"reservation_id=1", headers={"Content-Type": "text/plain"})
    assert reply.status == 415
    assert "Content-Type: application/json" in reply.error_body()["error"]


async def test_a_body_that_is_not_an_object_is_422_about_the_body(api: Api) -> None:
    for body in ([GOOD], "reservation", 42, None):
        reply = await api.call("POST", "/reservations", body)
        assert (reply.status, reply.error_body()["field"]) == (422, None), body
        assert reply.json["error"].startswith("request body must be a JSON object")


async def test_too_large_body_is_413(api: Api) -> None:
    raw = b'{"id_token": "' + b"A" * MAX_BODY_BYTES + b'"}'
    reply = await api.call("POST", "/reservations/check", raw=raw, headers={"Content-Type": "application/json"})
    assert (reply.status, reply.error_body()["field"]) == (413, None)


FIELD_ERRORS: list[tuple[dict[str, object], str, str]] = [
    ({"id_token": None}, "id_token", "required"),
    ({"reservation_id": "1"}, "reservation_id", "integer"),
    ({"reservation_id": -1}, "reservation_id", "non-negative"),
    ({"reservation_id": True}, "reservation_id", "integer"),
    ({"id_token": 1234}, "id_token", "string"),
    ({"id_token": "   "}, "id_token", "empty"),
    ({"id_token": "A" * 256}, "id_token", "at most 255"),
    ({"expiry_time": "tomorrow"}, "expiry_time", "RFC3339"),
    ({"expiry_time": "2026-11-21 13:00:00"}, "expiry_time", "RFC3339"),
    ({"expiry_time": "2026-13-01T00:00:00Z"}, "expiry_time", "month"),
    ({"connector_type": "Type2"}, "connector_type", "unknown connector type"),
    ({"evse_id": 1.5}, "evse_id", "integer"),
    ({"colour": "red"}, "colour", "unknown field"),
]


async def test_reservation_field_errors_are_422_naming_the_field(api: Api) -> None:
    for change, field, words in FIELD_ERRORS:
        body = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
        reply = await api.call("POST", "/reservations", body)
        assert reply.status == 422, change
        assert reply.error_body()["field"] == field, change
        assert reply.json["error"].startswith(f"{field}: ") and words in reply.json["error"], reply.json


async def test_a_date_out_of_range_after_its_offset_is_422_not_500(api: Api) -> None:
    reply = await api.call("POST", "/reservations", {**GOOD, "expiry_time": "0001-01-01T00:00:00+01:00"})
    assert reply.status == 422
    body = reply.error_body()
    assert body["field"] == "expiry_time" and "out of range" in body["error"]


async def test_check_and_token_field_errors(api: Api) -> None:
    reply = await api.call("POST", "/reservations/check", {"evse_id": 1})
    assert (reply.status, reply.error_body()["field"]) == (422, "id_token")
    reply = await api.call("POST", "/reservations/check", {"id_token": "X", "group_id_token": 5})
    assert (reply.status, reply.error_body()["field"]) == (422, "group_id_token")
    for body, field in (({}, "id_token"), ({"id_token": 5}, "id_token"), ({"id_token": "A", "x": 1}, "x")):
        reply = await api.call("POST", "/evses/1/token", body)
        assert (reply.status, reply.error_body()["field"]) == (422, field), body


async def test_path_parameter_that_is_not_an_integer_is_422(api: Api) -> None:
    reply = await api.call("POST", "/evses/one/enable")
    assert (reply.status, reply.error_body()["field"]) == (422, "evse_id")
    reply = await api.call("DELETE", "/reservations/abc")
    assert (reply.status, reply.error_body()["field"]) == (422, "reservation_id")


async def test_unknown_route_is_404_and_wrong_method_405(api: Api) -> None:
    reply = await api.call("GET", "/nowhere")
    assert (reply.status, reply.error_body()["field"]) == (404, None)
    assert "GET /nowhere" in reply.json["error"]
    reply = await api.call("DELETE", "/status")
    assert reply.status == 405
    assert reply.headers["allow"] == "GET"
    assert "allowed: GET" in reply.error_body()["error"]
    assert (await api.call("GET", "/evses/1/enable")).status == 405


async def test_a_failing_charger_is_500_logged_and_the_server_keeps_serving(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    api.charger.fail_with = RuntimeError("driver exploded")
    with caplog.at_level(logging.ERROR, logger="controller.api.errors"):
        reply = await api.call("GET", "/status")
    assert (reply.status, reply.json) == (500, {"error": "internal error"})
    assert "driver exploded" not in reply.text
    record = next(r for r in caplog.records if r.name == "controller.api.errors")
    assert record.exc_info is not None and "GET /status" in record.getMessage()
    api.charger.fail_with = None
    assert (await api.call("GET", "/status")).status == 200
