"""CALLs from the CSMS that the station must refuse (OCPP-J 2.0.1 Part 4, 4.3 "Valid Error Codes"): each gets the
CALLERROR its fault deserves, the connection stays up, and the station answers the next CALL.

The codes: TypeConstraintViolation for a field of the wrong JSON type; OccurrenceConstraintViolation for a required
field that is missing; PropertyConstraintViolation for a property the action does not have; FormatViolation for a
payload that is not an object or a value outside the field's format (an enumeration); NotImplemented for an action
the receiver does not know, NotSupported for one it knows but does not support. The same mapping as the independent
strict peer's (ocpp-rpc, tests/ocpp/js: lib/validator.js and lib/errors.js).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from .csms import Csms
from .station_harness import OcppStation, booted, ocpp_config

OCCURRENCE = ("OccurrenceConstraintViolation", "OccurenceConstraintViolation")  # 2.0.1 spelling, and 1.6's


@pytest.fixture
async def station(tmp_path: Path, csms_201: Csms) -> AsyncIterator[OcppStation]:
    """The sim charger connected and booted at ``csms_201``, every connector reported."""
    async with OcppStation(tmp_path, ocpp_config(csms_201.url)) as s:
        await booted(csms_201)
        yield s


async def _still_answering(csms: Csms) -> None:
    """The same connection is up and the station answers a good CALL on it."""
    answer = await csms.call("GetVariables", {"getVariableData": [
        {"component": {"name": "ReservationCtrlr"}, "variable": {"name": "Enabled"}}]})
    assert answer["getVariableResult"][0]["attributeValue"] == "true"
    assert len(csms.connections) == 1 and csms.connections[0].open


async def _error_code(csms: Csms, action: str, payload: Any) -> str:
    """The CALLERROR code the station answers ``action`` with (fails on a CALLRESULT)."""
    outcome = await csms.call_raw(action, payload)
    assert outcome[0] == "error", outcome
    return str(outcome[1])


async def test_a_field_of_the_wrong_type_is_a_type_constraint_violation(station: OcppStation, csms_201: Csms) -> None:
    assert await _error_code(csms_201, "Reset", {"type": 5}) == "TypeConstraintViolation"
    assert await _error_code(csms_201, "ChangeAvailability",
                             {"operationalStatus": "Operative", "evse": {"id": "one"}}) == "TypeConstraintViolation"
    await _still_answering(csms_201)


async def test_a_value_outside_the_enumeration_is_a_format_violation(station: OcppStation, csms_201: Csms) -> None:
    assert await _error_code(csms_201, "Reset", {"type": "Sometime"}) == "FormatViolation"
    await _still_answering(csms_201)


async def test_a_missing_required_field_is_an_occurrence_constraint_violation(
        station: OcppStation, csms_201: Csms) -> None:
    try:
        assert await _error_code(csms_201, "Reset", {}) in OCCURRENCE
        assert await _error_code(csms_201, "RequestStopTransaction", {}) in OCCURRENCE
    finally:
        await _still_answering(csms_201)


async def test_an_unknown_property_is_a_property_constraint_violation(station: OcppStation, csms_201: Csms) -> None:
    try:
        assert await _error_code(csms_201, "Reset", {"type": "Immediate", "colour": "red"}) \
            == "PropertyConstraintViolation"
    finally:
        await _still_answering(csms_201)
    assert station.resets == 0  # nothing of the reset happened


async def test_a_payload_that_is_not_an_object_is_a_format_violation(station: OcppStation, csms_201: Csms) -> None:
    try:
        assert await _error_code(csms_201, "Reset", "Immediate") == "FormatViolation"
        assert await _error_code(csms_201, "Reset", ["Immediate"]) == "FormatViolation"
    finally:
        await _still_answering(csms_201)


async def test_an_action_the_station_does_not_know_is_not_implemented(station: OcppStation, csms_201: Csms) -> None:
    try:
        assert await _error_code(csms_201, "FlyToTheMoon", {}) == "NotImplemented"
    finally:
        await _still_answering(csms_201)


async def test_an_action_the_station_knows_but_does_not_do_is_not_supported(
        station: OcppStation, csms_201: Csms) -> None:
    try:
        assert await _error_code(csms_201, "GetLog", {"logType": "DiagnosticsLog", "requestId": 1,
                                                      "log": {"remoteLocation": "https://example.com/logs"}}) \
            == "NotSupported"
    finally:
        await _still_answering(csms_201)


async def test_unknown_actions_and_bad_payloads_never_close_the_connection(
        station: OcppStation, csms_201: Csms) -> None:
    bad: list[tuple[str, Any]] = [
        ("FlyToTheMoon", {}), ("GetLog", {"logType": "DiagnosticsLog", "requestId": 1, "log": {}}),
        ("Reset", {}), ("Reset", {"type": "Immediate", "colour": "red"}), ("Reset", "Immediate"),
        ("Reset", {"type": 5}), ("ReserveNow", {"id": "one", "expiryDateTime": "soon"}),
        ("SetVariables", {"setVariableData": []}), ("GetVariables", {"getVariableData": [{}]}),
    ]
    for action, payload in bad:
        outcome = await csms_201.call_raw(action, payload)
        assert outcome[0] == "error", (action, payload, outcome)
    await csms_201.charge_point().websocket.send("this is not OCPP-J")  # no message id to answer to
    await csms_201.charge_point().websocket.send('[2, "x-1"]')
    await _still_answering(csms_201)
    assert station.resets == 0


async def test_a_bad_date_time_is_refused_and_nothing_is_reserved(station: OcppStation, csms_201: Csms) -> None:
    outcome = await csms_201.call_raw("ReserveNow", {"id": 1, "expiryDateTime": "tomorrow", "evseId": 1,
                                                     "idToken": {"idToken": "ALICE", "type": "ISO14443"}})
    refused = outcome[1] == "FormatViolation" if outcome[0] == "error" else outcome[1]["status"] == "Rejected"
    assert refused, outcome
    assert not station.evse(1)["reserved"]
    await _still_answering(csms_201)
