"""OCPP 2.0.1 authorization on the wire: payloads in as the ``ocpp`` library hands them over, answers schema-checked.

Requests are written in camelCase, checked against the library's OCA schemas, and converted with
``camel_to_snake_case`` as the library does before calling a handler; every answer is converted back with
``snake_to_camel_case`` and checked against its response schema with date-time format checking.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ocpp
import pytest
from jsonschema import Draft6Validator, FormatChecker
from ocpp.charge_point import camel_to_snake_case, snake_to_camel_case
from ocpp.v201 import call_result

from controller.core.parsing import FormatError
from controller.ocpp.station.auth_types import AuthSettings, IdTokenInfo
from controller.ocpp.station.authorization import AuthorizationStore
from controller.ocpp.v201 import auth

SCHEMAS = Path(ocpp.__file__).parent / "v201" / "schemas"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ON = AuthSettings()
SECRET = "SECRETCARD0123456789"


def _validator(schema_file: str, definition: str | None = None) -> Draft6Validator:
    """A validator of a whole message schema, or of one of its definitions, with date-time checking."""
    schema = json.loads((SCHEMAS / schema_file).read_text())
    if definition is not None:
        schema = {"definitions": schema["definitions"], "$ref": f"#/definitions/{definition}"}
    return Draft6Validator(schema, format_checker=FormatChecker())


def wire_valid(payload: dict[str, Any], schema_file: str, definition: str | None = None) -> dict[str, Any]:
    """The payload in camelCase, asserted valid against the schema."""
    camel: dict[str, Any] = snake_to_camel_case(payload)
    errors = [e.message for e in _validator(schema_file, definition).iter_errors(camel)]
    assert not errors, errors
    return camel


def handler_kwargs(camel: dict[str, Any], schema_file: str) -> dict[str, Any]:
    """A CSMS request checked against its schema and converted as the library does before the handler sees it."""
    errors = [e.message for e in _validator(schema_file).iter_errors(camel)]
    assert not errors, errors
    converted: dict[str, Any] = camel_to_snake_case(camel)
    return converted


@pytest.fixture
def store(tmp_path: Path) -> Iterator[AuthorizationStore]:
    """A store in a fresh file."""
    s = AuthorizationStore(tmp_path / "ocpp.db")
    yield s
    s.close()


def _list_request(version: int, update: str, *items: tuple[str, dict[str, Any] | None]) -> dict[str, Any]:
    """A SendLocalListRequest in camelCase: (token, idTokenInfo or None) per entry."""
    request: dict[str, Any] = {"versionNumber": version, "updateType": update}
    if items:
        request["localAuthorizationList"] = [
            {"idToken": {"idToken": token, "type": "ISO14443"}, **({"idTokenInfo": info} if info else {})}
            for token, info in items
        ]
    return request


def send(store: AuthorizationStore, request: dict[str, Any], settings: AuthSettings = ON) -> dict[str, Any]:
    """Answer a SendLocalListRequest; the answer in camelCase, schema-checked and accepted by call_result."""
    answer = auth.send_local_list(store, handler_kwargs(request, "SendLocalListRequest.json"), settings=settings)
    call_result.SendLocalList(**answer)
    return wire_valid(answer, "SendLocalListResponse.json")


# ---------------------------------------------------------------- IdTokenInfoType

def test_id_token_info_both_ways() -> None:
    """IdTokenInfoType <-> IdTokenInfo: status, cacheExpiryDateTime, groupIdToken; what we make is schema-valid."""
    wire = {"status": "Accepted", "cacheExpiryDateTime": "2026-03-02T08:00:00+01:00", "language1": "de",
            "evseId": [1], "groupIdToken": {"idToken": "FLEET-7", "type": "Central"}}
    assert not list(_validator("AuthorizeResponse.json", "IdTokenInfoType").iter_errors(wire))
    info = auth.id_token_info(camel_to_snake_case(wire))
    assert info == IdTokenInfo("Accepted", "FLEET-7", datetime(2026, 3, 2, 7, 0, tzinfo=UTC))
    back = wire_valid(auth.id_token_info_payload(info), "AuthorizeResponse.json", "IdTokenInfoType")
    assert back == {"status": "Accepted", "cacheExpiryDateTime": "2026-03-02T07:00:00Z",
                    "groupIdToken": {"idToken": "FLEET-7", "type": "Central"}}
    assert wire_valid(auth.id_token_info_payload(IdTokenInfo("Blocked")), "SendLocalListRequest.json",
                      "IdTokenInfoType") == {"status": "Blocked"}


@pytest.mark.parametrize("bad", [
    {}, {"status": ""}, {"status": "Accepted", "cache_expiry_date_time": "tomorrow"},
    {"status": "Accepted", "group_id_token": {"type": "Central"}}, "Accepted",
])
def test_unusable_id_token_info(bad: Any) -> None:
    """A payload we cannot use is a FormatError naming the field, never a crash further on."""
    with pytest.raises(FormatError, match="idTokenInfo"):
        auth.id_token_info(bad)


def test_authorization_of_an_answer() -> None:
    """AuthorizeResponse.idTokenInfo -> the port's Authorization: accepted only when Accepted, with the group."""
    ok = auth.authorization({"status": "Accepted", "group_id_token": {"id_token": "G", "type": "Central"}})
    assert (ok.accepted, ok.group_id_token, ok.reason) == (True, "G", "Accepted")
    no = auth.authorization({"status": "NotAtThisTime"})
    assert (no.accepted, no.group_id_token, no.reason) == (False, None, "NotAtThisTime")
    odd = auth.authorization({"status": "Accepted", "cache_expiry_date_time": "soon", "group_id_token": "G"})
    assert (odd.accepted, odd.group_id_token) == (True, None)  # an unreadable expiry or group never costs the answer
    assert auth.authorization({}).accepted is False


def test_remember_caches_answers_except_central_tokens(store: AuthorizationStore,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    """C10.FR.04: answers are cached; Central/NoAuthorization tokens never; a bad answer or disk is only logged."""
    info = {"status": "Accepted", "group_id_token": {"id_token": "G", "type": "Central"}}
    assert auth.remember(store, {"id_token": SECRET, "type": "ISO14443"}, info, now=T0, settings=ON)
    assert store.cache_lookup(SECRET.lower(), T0, lifetime_s=None) == IdTokenInfo("Accepted", "G")
    for kind in ("Central", "NoAuthorization"):
        assert not auth.remember(store, {"id_token": f"X-{kind}", "type": kind}, info, now=T0, settings=ON)
    assert store.cache_size() == 1
    with caplog.at_level(logging.WARNING):
        assert not auth.remember(store, {"id_token": SECRET, "type": "ISO14443"}, {"status": 7}, now=T0, settings=ON)
        store._db._db.execute("PRAGMA query_only=ON")
        assert not auth.remember(store, {"id_token": "OTHER-CARD", "type": "ISO14443"}, info, now=T0, settings=ON)
        store._db._db.execute("PRAGMA query_only=OFF")
    assert "unusable" in caplog.text and str(store.path) in caplog.text
    assert SECRET not in caplog.text and store.cache_size() == 1


# ---------------------------------------------------------------- SendLocalList, GetLocalListVersion, ClearCache

def test_send_local_list_full_then_differential(store: AuthorizationStore) -> None:
    """D01 through the wire: Full, Differential with a deletion, VersionMismatch; GetLocalListVersion follows."""
    accepted = {"status": "Accepted", "groupIdToken": {"idToken": "FLEET", "type": "Central"}}
    assert send(store, _list_request(3, "Full", ("AA11", accepted), ("BB22", {"status": "Blocked"}))) == \
        {"status": "Accepted"}
    assert store.list_lookup("aa11", T0) == IdTokenInfo("Accepted", "FLEET")
    assert send(store, _list_request(4, "Differential", ("bb22", None), ("CC33", {"status": "Accepted"}))) == \
        {"status": "Accepted"}
    assert (store.list_lookup("BB22", T0), store.local_list_size()) == (None, 2)
    mismatch = send(store, _list_request(4, "Differential", ("DD44", {"status": "Accepted"})))
    assert mismatch["status"] == "VersionMismatch" and store.list_lookup("DD44", T0) is None
    version = auth.get_local_list_version(store, settings=ON)
    call_result.GetLocalListVersion(**version)
    assert wire_valid(version, "GetLocalListVersionResponse.json") == {"versionNumber": 4}
    assert auth.get_local_list_version(store, settings=replace(ON, list_enabled=False)) == {"version_number": 0}
    assert send(store, _list_request(5, "Full")) == {"status": "Accepted"}  # no list at all: cleared
    assert store.local_list_size() == 0


@pytest.mark.parametrize(("request_", "settings", "reason"), [
    (_list_request(1, "Full", ("AA11", {"status": "Accepted"})), replace(ON, list_enabled=False), "Disabled"),
    (_list_request(1, "Full", ("AA11", {"status": "Accepted"}), ("aa11", {"status": "Blocked"})), ON,
     "DuplicateToken"),
    (_list_request(1, "Full", ("AA11", None)), ON, "MissingIdTokenInfo"),
    (_list_request(0, "Full", ("AA11", {"status": "Accepted"})), ON, "InvalidVersion"),
    (_list_request(1, "Full", *[(f"T{n:03}", {"status": "Accepted"}) for n in range(251)]), ON, "TooManyItems"),
    (_list_request(1, "Full", ("AA11", {"status": "Accepted"})), replace(ON, list_bytes_per_message=50),
     "TooManyBytes"),
    (_list_request(1, "Full", ("AA11", {"status": "Accepted", "cacheExpiryDateTime": "2026-13-45T00:00:00Z"})), ON,
     "InvalidValue"),
])
def test_send_local_list_failures(store: AuthorizationStore, request_: dict[str, Any], settings: AuthSettings,
                                  reason: str) -> None:
    """Failed, with a statusInfo reasonCode saying why; the list is left as it was."""
    if reason == "InvalidValue":  # the library's validator checks no formats: a bad date-time reaches the handler
        answer = auth.send_local_list(store, camel_to_snake_case(request_), settings=settings)
        answer = wire_valid(answer, "SendLocalListResponse.json")
    else:
        answer = send(store, request_, settings)
    assert answer["status"] == "Failed" and answer["statusInfo"]["reasonCode"] == reason
    assert store.local_list_size() == 0 and store.local_list_version(settings=ON) == 0


def test_send_local_list_store_failure(store: AuthorizationStore) -> None:
    """A list that cannot be written is Failed (StoreFailure), and nothing changed."""
    store._db._db.execute("PRAGMA query_only=ON")
    answer = send(store, _list_request(1, "Full", ("AA11", {"status": "Accepted"})))
    store._db._db.execute("PRAGMA query_only=OFF")
    assert (answer["status"], answer["statusInfo"]["reasonCode"]) == ("Failed", "StoreFailure")
    assert store.local_list_size() == 0


def test_message_bytes_counts_the_wire_form() -> None:
    """BytesPerMessage is measured on the compact camelCase JSON the CSMS sent."""
    request = _list_request(2, "Full", ("AA11", {"status": "Accepted"}))
    assert auth.message_bytes(camel_to_snake_case(request)) == len(json.dumps(request, separators=(",", ":")))


def test_clear_cache(store: AuthorizationStore) -> None:
    """C11: Accepted once cleared; Rejected while AuthCacheCtrlr.Enabled is false (C11.FR.04) or when it fails."""
    store.remember("AA11", IdTokenInfo("Accepted"), now=T0, settings=ON)
    disabled = auth.clear_cache(store, settings=replace(ON, cache_enabled=False))
    assert wire_valid(disabled, "ClearCacheResponse.json")["status"] == "Rejected" and store.cache_size() == 1
    store._db._db.execute("PRAGMA query_only=ON")
    failed = auth.clear_cache(store, settings=ON)
    store._db._db.execute("PRAGMA query_only=OFF")
    assert wire_valid(failed, "ClearCacheResponse.json")["statusInfo"]["reasonCode"] == "StoreFailure"
    assert store.cache_size() == 1
    done = auth.clear_cache(store, settings=ON)
    call_result.ClearCache(**done)
    assert wire_valid(done, "ClearCacheResponse.json") == {"status": "Accepted"} and store.cache_size() == 0
