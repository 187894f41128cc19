"""Regression tests for the defects and schema gaps the API fuzzing found, each the exact request that showed it.

Each test gets a fresh simulated charger (real runtime, real HTTP).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from .live_api import LiveApi

TIMEOUT_S = 10.0
MAX_ID = 2**31 - 1
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def live_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    """A fresh simulated charger per test: some of these requests leave the runtime damaged."""
    live = LiveApi(tmp_path_factory.mktemp("defect-state")).start()
    yield live
    live.stop()


def _schema(live: LiveApi) -> dict[str, Any]:
    reply = requests.get(f"{live.url}/openapi.json", timeout=TIMEOUT_S)
    assert reply.status_code == 200
    document: dict[str, Any] = reply.json()
    return document


def _branches(node: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [branch for branch in node.get("anyOf", [node]) if branch.get("type") == kind]


def test_405_names_every_method_the_path_serves(live_api: LiveApi) -> None:
    reply = requests.put(f"{live_api.url}/reservations", timeout=TIMEOUT_S)
    assert reply.status_code == 405
    allowed = {method.strip() for method in reply.headers["allow"].split(",")}
    assert allowed == {"GET", "POST"}, reply.headers["allow"]
    assert "GET" in reply.json()["error"], reply.json()


def test_last_event_id_with_a_superscript_digit_is_a_422(live_api: LiveApi) -> None:
    for value in ("\u00b2", "1\u00b3", "\u00b9"):  # latin-1 bytes B2, B3, B9 on the wire
        with requests.get(f"{live_api.url}/events", headers={"Last-Event-ID": value}, stream=True,
                          timeout=TIMEOUT_S) as reply:
            assert reply.status_code == 422, (value, reply.status_code, reply.raw.read(200))
            assert reply.json()["field"] == "Last-Event-ID"
    assert live_api.tracebacks.describe() == []


def test_a_token_with_a_lone_surrogate_does_not_break_status(live_api: LiveApi) -> None:
    body = b'{"reservation_id": 2, "id_token": "CARD-0002", "parent_id_token": "\\udfff", ' \
           b'"expiry_time": "2030-01-01T00:00:00Z"}'
    reserve = requests.post(f"{live_api.url}/reservations", data=body, headers=JSON, timeout=TIMEOUT_S)
    if reserve.status_code == 422:  # refusing it, naming the field, is a fix too
        assert reserve.json()["field"] == "parent_id_token", reserve.text
    else:
        assert reserve.status_code == 200, reserve.text
    for path in ("/status", "/reservations"):
        reply = requests.get(f"{live_api.url}{path}", timeout=TIMEOUT_S)
        assert reply.status_code == 200, (path, reply.status_code, reply.text)
    assert live_api.tracebacks.describe() == []


def test_an_unknown_key_is_named_visibly_on_one_line(live_api: LiveApi) -> None:
    for raw_key, shown in ((b'""', ("''", '""')), (b'"\\n"', ("\\n",))):
        body = b'{' + raw_key + b': 1, "id_token": "CARD-0001"}'
        reply = requests.post(f"{live_api.url}/reservations/check", data=body, headers=JSON, timeout=TIMEOUT_S)
        assert reply.status_code == 422, reply.text
        error = reply.json()["error"]
        assert "\n" not in error and any(text in error for text in shown), (raw_key, error)


# ------------------------------------------------------------------ schema gaps


def test_schema_documents_the_32_bit_id_limit(live_api: LiveApi) -> None:
    body: dict[str, Any] = {"reservation_id": MAX_ID + 1, "id_token": "CARD-0001",
                            "expiry_time": "2030-01-01T00:00:00Z"}
    refused = requests.post(f"{live_api.url}/reservations", json=body, timeout=TIMEOUT_S)
    assert refused.status_code == 422 and refused.json()["field"] == "reservation_id", refused.text
    schemas = _schema(live_api)["components"]["schemas"]
    for model, prop in (("ReservationBody", "reservation_id"), ("ReservationBody", "evse_id"),
                        ("ReservationCheckBody", "evse_id")):
        for branch in _branches(schemas[model]["properties"][prop], "integer"):
            assert branch.get("maximum", float("inf")) <= MAX_ID, (model, prop, branch)


def test_schema_documents_the_409_of_the_simulated_plant(live_api: LiveApi) -> None:
    url = live_api.url
    assert requests.post(f"{url}/sim/evses/1/plug", headers=JSON, timeout=TIMEOUT_S).status_code == 200
    token = requests.post(f"{url}/evses/1/token", json={"id_token": "CARD-0001"}, timeout=TIMEOUT_S)
    assert token.json()["may_charge"] is True, token.text
    for _ in range(200):  # the lock motor runs in the background; wait (bounded) until it reports locked
        if requests.get(f"{url}/status", timeout=TIMEOUT_S).json()["evses"][0]["lock"] == "locked":
            break
        time.sleep(0.05)
    refused = requests.post(f"{url}/sim/evses/1/unplug", headers=JSON, timeout=TIMEOUT_S)
    assert refused.status_code == 409 and refused.json()["field"] == "evse_id", refused.text
    paths = _schema(live_api)["paths"]
    for path in ("/sim/evses/{evse_id}/unplug", "/sim/faults"):
        assert "409" in paths[path]["post"]["responses"], path


def test_schema_documents_the_last_event_id_format(live_api: LiveApi) -> None:
    with requests.get(f"{live_api.url}/events", headers={"Last-Event-ID": "abc"}, stream=True,
                      timeout=TIMEOUT_S) as refused:
        assert refused.status_code == 422, refused.status_code
    parameters = _schema(live_api)["paths"]["/events"]["get"]["parameters"]
    header = next(p for p in parameters if p["name"] == "Last-Event-ID")
    assert all("pattern" in branch for branch in _branches(header["schema"], "string")), header


def test_schema_documents_that_a_token_must_not_be_blank(live_api: LiveApi) -> None:
    refused = requests.post(f"{live_api.url}/evses/1/token", json={"id_token": " "}, timeout=TIMEOUT_S)
    assert refused.status_code == 422 and refused.json()["field"] == "id_token", refused.text
    schemas = _schema(live_api)["components"]["schemas"]
    for model, prop in (("ReservationBody", "id_token"), ("ReservationBody", "parent_id_token"),
                        ("ReservationCheckBody", "id_token"), ("ReservationCheckBody", "group_id_token"),
                        ("TokenIn", "id_token")):
        for branch in _branches(schemas[model]["properties"][prop], "string"):
            assert "pattern" in branch, (model, prop, branch)
