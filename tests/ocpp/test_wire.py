"""controller.ocpp.wire on its own: the CALLERROR each faulty CALL deserves (``refusal``, for the protocol layers'
charge points), and the wire log that hides id tokens and the Basic auth password."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from controller.ocpp.wire import refusal, wire_logger

HANDLED = {"Reset", "ReserveNow", "GetVariables", "ChangeAvailability"}
OCCURRENCE = ("OccurenceConstraintViolation", "OccurrenceConstraintViolation")


@pytest.mark.parametrize(("action", "payload", "code"), [
    ("FlyToTheMoon", {}, "NotImplemented"),  # not known by the receiver
    ("GetLog", {"logType": "DiagnosticsLog", "requestId": 1, "log": {"remoteLocation": "x"}}, "NotSupported"),
    ("Reset", "Immediate", "FormatViolation"),
    ("Reset", ["Immediate"], "FormatViolation"),
    ("Reset", {"type": "Sometime"}, "FormatViolation"),
    ("Reset", {"type": 5}, "TypeConstraintViolation"),
    ("ChangeAvailability", {"operationalStatus": "Operative", "evse": {"id": "one"}}, "TypeConstraintViolation"),
    ("Reset", {}, OCCURRENCE),
    ("GetVariables", {"getVariableData": []}, OCCURRENCE),
    ("Reset", {"type": "Immediate", "colour": "red"}, "PropertyConstraintViolation"),
])
def test_refusal_names_the_fault(action: str, payload: Any, code: str | tuple[str, ...]) -> None:
    error = refusal("2.0.1", action, payload, HANDLED)
    assert error is not None
    assert error.code in ((code,) if isinstance(code, str) else code), (error.code, error.details)


def test_a_good_call_is_not_refused() -> None:
    assert refusal("2.0.1", "Reset", {"type": "OnIdle", "evseId": 1}, HANDLED) is None
    assert refusal("1.6", "Reset", {"type": "Soft"}, {"Reset"}) is None
    assert refusal("1.6", "Reset", {"type": "OnIdle"}, {"Reset"}) is not None


def _logged(text: str) -> str:
    """What the wire logger keeps of a record with this message."""
    record = logging.LogRecord("controller.ocpp.wire", logging.INFO, __file__, 1, "%s: %s", ("CS001", text), None)
    for log_filter in wire_logger().filters:
        assert not isinstance(log_filter, logging.Filter) or log_filter.filter(record)
    return record.getMessage()


def test_the_wire_log_hides_tokens_and_the_password() -> None:
    authorize = _logged('[2,"1","Authorize",{"idToken":{"idToken":"ALICE-1234-5678","type":"ISO14443"}}]')
    assert "ALICE-1234-5678" not in authorize and "Authorize" in authorize
    secret = 'pa"ss\\word-0123456789'
    frame = ('[2,"2","SetVariables",{"setVariableData":[{"component":{"name":"SecurityCtrlr"},'
             '"variable":{"name":"BasicAuthPassword"},"attributeValue":"pa\\"ss\\\\word-0123456789"}]}]')
    shown = _logged(frame)
    assert "word-0123456789" not in shown and "BasicAuthPassword" in shown and secret not in shown
    repr_form = _logged("{'set_variable_data': [{'variable': {'name': 'BasicAuthPassword'}, "
                        "'attribute_value': 'it\\'s-a-secret-value'}]}")
    assert "secret-value" not in repr_form
    key16 = _logged('[2,"3","ChangeConfiguration",{"key":"AuthorizationKey","value":"0123456789abcdef"}]')
    assert "0123456789abcdef" not in key16
    other = _logged('[2,"4","SetVariables",{"setVariableData":[{"component":{"name":"TxCtrlr"},'
                    '"variable":{"name":"TxStartPoint"},"attributeValue":"EVConnected"}]}]')
    assert "EVConnected" in other  # only a frame about the password is hidden
