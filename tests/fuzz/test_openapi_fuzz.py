"""OpenAPI-driven fuzzing of the real API: thousands of schemathesis requests against the simulated charger.

The schema is read from the running controller's own ``/openapi.json``; schemathesis generates valid and
invalid requests for every operation (coverage and fuzzing phases, both generation modes) and sends them
over real HTTP to the real runtime of ``run --sim``. Every answer must be below 500, every 4xx must carry
the API's error shape naming the field or the body, and answers must conform to the schema. Afterwards
the process must still answer ``GET /status`` and must not have logged a single traceback.

The defects and schema gaps this found are pinned in ``test_api_defects.py``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from schemathesis import BaseSchema, Case

from .live_api import CountingSession, LiveApi, publish_summary, scale_factor

EXAMPLES_PER_OPERATION = 185  # fuzzing phase, per operation and scale unit: 11 parametrised operations x 185 > 2000
MIN_REQUESTS = 2000  # per scale unit
REQUEST_TIMEOUT_S = 10.0
EVENT_STREAM = ("GET", "/events")
CONNECTED = b": connected\n\n"
BODY_STATUSES = (400, 413, 415, 422)

# Checks replaced by this module's own versions (see the test): the built-ins flag a JSON float such as 3.0
# for an integer field (JSON Schema counts it as an integer; the API takes JSON integers only and says so)
# and DELETE /reservations/check (which is DELETE /reservations/{reservation_id} with a non-integer id: the
# router serves it, answering 422 for reservation_id, so the Allow of /reservations/check rightly lists DELETE;
# assert_undeclared_method_refused checks Allow against every template matching the path instead).
CONFIG = {
    "checks": {
        "positive_data_acceptance": {"enabled": False},
        "unsupported_method": {"enabled": False},
        "allow_header_conformance": {"enabled": False},
    },
    "generation": {"mode": "all", "database": "none"},
}


@pytest.fixture(scope="module")
def live_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    """The real runtime of ``run --sim`` with its API on a free loopback port, for the whole module."""
    live = LiveApi(tmp_path_factory.mktemp("fuzz-state")).start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def session() -> Iterator[CountingSession]:
    """The one HTTP session every fuzz request goes through, so they are counted."""
    with CountingSession() as counting:
        yield counting


@pytest.fixture(scope="module")
def api_schema(live_api: LiveApi) -> BaseSchema:
    """The running controller's own OpenAPI description, with this module's budget."""
    raw = requests.get(f"{live_api.url}/openapi.json", timeout=REQUEST_TIMEOUT_S).json()
    schema = schemathesis.openapi.from_dict(raw, config=schemathesis.Config.from_dict(CONFIG))
    schema.config.update(base_url=live_api.url)
    schema.config.generation.update(max_examples=EXAMPLES_PER_OPERATION * scale_factor())
    return schema


def _where(case: Case[Any], status: int, body: bytes) -> str:
    return f"{case.method} {case.formatted_path} -> {status}: {body[:300]!r}"


def _error_document(case: Case[Any], status: int, body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except ValueError:
        pytest.fail(f"a {status} answer that is not JSON: {_where(case, status, body)}")
    assert isinstance(document, dict), _where(case, status, body)
    return document


def assert_error_names_the_problem(case: Case[Any], status: int, body: bytes) -> None:
    """A 4xx body is ``{"error": <non-empty text>, "field": <name or null>}`` and says what was wrong.

    With a field, the text names it (``evse_id`` may be named as "evse"); without one, the text speaks
    about the body, or (404, 405) about the endpoint or method.
    """
    where = _where(case, status, body)
    document = _error_document(case, status, body)
    assert set(document) == {"error", "field"}, f"not the error shape: {where}"
    error, field = document["error"], document["field"]
    assert isinstance(error, str) and error.strip(), f"empty error text: {where}"
    assert "\n" not in error, f"the error is not one line: {where}"
    if field is not None:
        assert isinstance(field, str), f"bad field: {where}"
        names = {field.lower(), field.lower().removesuffix("_id"), repr(field).lower()} - {""}
        assert any(name in error.lower() for name in names), f"the error text does not name {field!r}: {where}"
    elif status in (404, 405):
        named = ("no such endpoint", "method not allowed", case.formatted_path.split("?")[0])
        assert any(text in error for text in named), f"the error does not name the path or method: {where}"
    else:
        assert "body" in error, f"the error names neither a field nor the body: {where}"


def _is_accepted_deviation(case: Case[Any], document: dict[str, Any]) -> bool:
    """Refusals of schema-valid input that are not defects of the implementation.

    JSON Schema's "integer" includes 3.0; the API takes JSON integers only and names the field. An optional
    header is ``anyOf [string, null]`` in the schema, and schemathesis sends the null branch as the text
    "null": a header cannot be null, and "null" is no event seq.
    """
    field = document.get("field")
    if field == "Last-Event-ID" and (case.headers or {}).get("Last-Event-ID") == "null":
        return True
    body = case.body if isinstance(case.body, dict) else {}
    value = body.get(field) if isinstance(field, str) else None
    return isinstance(value, float) and value.is_integer()


def assert_valid_data_accepted(case: Case[Any], status: int, body: bytes) -> None:
    """A request the (amended) schema calls valid is not refused as malformed."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or case.method.upper() != case.operation.method.upper():
        return
    if status in BODY_STATUSES:
        document = _error_document(case, status, body)
        assert _is_accepted_deviation(case, document), f"schema-valid request refused: {_where(case, status, body)}"


def _declared_methods(raw: dict[str, Any], path: str) -> set[str]:
    """Methods the schema declares for any path template matching the concrete ``path``."""
    methods: set[str] = set()
    for template, operations in raw["paths"].items():
        if re.fullmatch(re.sub(r"\{[^/]+\}", "[^/]+", template), path):
            methods.update(method.upper() for method in operations)
    return methods


def assert_undeclared_method_refused(case: Case[Any], status: int, headers: dict[str, list[str]]) -> None:
    """A method no operation declares for the path is a 405 whose ``Allow`` names only declared methods."""
    if case.method.upper() == case.operation.method.upper():
        return
    path = case.formatted_path.split("?")[0]
    declared = _declared_methods(case.operation.schema.raw_schema, path)
    if case.method.upper() in declared | {"HEAD"}:
        return  # another operation answers it (DELETE /reservations/check is DELETE /reservations/{id})
    assert status == 405, f"undeclared {case.method} {path} answered {status}"
    allow = {m.strip().upper() for value in headers.get("allow", []) for m in value.split(",") if m.strip()}
    assert allow and allow <= declared, f"Allow {allow} for {path}, declared {declared}"


def with_json_content_type_on_bodyless_posts(case: Case[Any]) -> None:
    """The API's description says every POST needs ``Content-Type: application/json``, also one without a body
    (a CSRF guard); OpenAPI cannot express a Content-Type without a request body, so the fuzzer is told here."""
    if case.method.upper() == "POST" and "requestBody" not in case.operation.definition.raw:
        case.headers = {**(case.headers or {}), "Content-Type": "application/json"}


def call_event_stream(case: Case[Any], session: requests.Session, base_url: str) -> schemathesis.Response:
    """``GET /events`` never ends when it succeeds: read the head and the ``: connected`` line, then hang up."""
    kwargs = case.as_transport_kwargs(base_url=base_url)
    kwargs["timeout"] = REQUEST_TIMEOUT_S
    started = time.monotonic()
    with session.request(**kwargs, stream=True) as reply:
        content = reply.raw.read(len(CONNECTED)) if reply.status_code == 200 else reply.content
        return schemathesis.Response(
            status_code=reply.status_code,
            headers={name.lower(): [value] for name, value in reply.headers.items()},
            content=content,
            request=reply.request,
            elapsed=time.monotonic() - started,
            verify=True,
            stream_cut_short=reply.status_code == 200,
        )


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
def test_fuzzed_requests_get_a_documented_answer(case: Case[Any], live_api: LiveApi, session: CountingSession) -> None:
    """No 5xx and no hang; 4xx bodies name the problem; answers conform to the schema."""
    session.operations[case.operation.label] += 1
    if (case.method.upper(), case.operation.path) == EVENT_STREAM:
        response = call_event_stream(case, session, live_api.url)
        if response.status_code == 200:
            assert response.content == CONNECTED, response.content
    else:
        with_json_content_type_on_bodyless_posts(case)
        response = case.call(session=session, timeout=REQUEST_TIMEOUT_S)
    status, body = response.status_code, response.content
    assert status < 500, _where(case, status, body)
    if 400 <= status < 500:
        assert_error_names_the_problem(case, status, body)
    case.validate_response(response)
    assert_valid_data_accepted(case, status, body)
    assert_undeclared_method_refused(case, status, response.headers)


def test_after_fuzzing_the_runtime_is_healthy_and_logged_no_traceback(
    live_api: LiveApi, session: CountingSession
) -> None:
    """Runs after the fuzz test (definition order): publishes the summary, then checks the process is well."""
    summary = {**session.summary(), "scale": scale_factor()}
    publish_summary("api_fuzz.json", summary)
    assert session.sent >= MIN_REQUESTS * scale_factor(), (
        f"only {session.sent} fuzz requests were sent (run this whole module: the fuzz test must run first)"
    )
    assert summary["5xx"] == 0, summary
    status = requests.get(f"{live_api.url}/status", timeout=REQUEST_TIMEOUT_S)
    assert status.status_code == 200, status.text
    assert {evse["id"] for evse in status.json()["evses"]} == {1, 2}
    assert live_api.tracebacks.describe() == []
