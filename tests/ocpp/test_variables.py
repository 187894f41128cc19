"""The OCPP configuration store: every get/set status, strict values, durability, secrets, reports, 1.6 keys.

Real SQLite files in tmp_path; a failed write is made real with SQLite's ``query_only`` on the store's own
connection (the way a read-only file system refuses it) or with another connection holding the write lock.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path
from typing import Any

import ocpp
import pytest
from jsonschema import Draft6Validator, FormatChecker

from controller.ocpp.station.variable_db import VariableStoreError
from controller.ocpp.station.variable_types import (
    DataType,
    GetStatus,
    Mutability,
    Reason,
    ReportBase,
    SetStatus,
    VariableDef,
)
from controller.ocpp.station.variable_values import check_value
from controller.ocpp.station.variables import VariableStore

RW, RO, WO = Mutability.READ_WRITE, Mutability.READ_ONLY, Mutability.WRITE_ONLY
SECRET = "s3cr3t-Passw0rd-XYZ"
SCHEMAS = Path(ocpp.__file__).parent / "v201" / "schemas"


def _defs() -> list[VariableDef]:
    """One variable per data type and behaviour, on a made-up controller, an EVSE and a connector."""
    c = "TestCtrlr"
    return [
        VariableDef(c, "Flag", DataType.BOOLEAN, RW, "true", "a boolean", persistent=True, aliases16=("Flag16",)),
        VariableDef(c, "Count", DataType.INTEGER, RW, "10", "an integer", unit="s", min_limit=0, max_limit=100,
                    persistent=True),
        VariableDef(c, "Count", DataType.INTEGER, RW, "1", "an instance", variable_instance="Other", persistent=True),
        VariableDef(c, "Ratio", DataType.DECIMAL, RW, "0.5", "a decimal", min_limit=-1.5, max_limit=2.5,
                    persistent=True),
        VariableDef(c, "When", DataType.DATE_TIME, RW, "2024-01-01T00:00:00Z", "a dateTime", persistent=True),
        VariableDef(c, "Name", DataType.STRING, RW, "abc", "a string", max_limit=10, persistent=True),
        VariableDef(c, "Mode", DataType.OPTION_LIST, RW, "A", "an option", values_list=("A", "B", "C"),
                    persistent=True),
        VariableDef(c, "Order", DataType.SEQUENCE_LIST, RW, "X,Y", "a sequence", values_list=("X", "Y", "Z"),
                    allow_empty=False, persistent=True),
        VariableDef(c, "Members", DataType.MEMBER_LIST, RW, "", "members", values_list=("X", "Y", "Z"),
                    persistent=True, aliases16=("Members16",)),
        VariableDef(c, "Fixed", DataType.INTEGER, RO, "7", "read-only", constant=True, aliases16=("Fixed16",)),
        VariableDef(c, "Secret", DataType.STRING, WO, None, "a password", min_limit=16, max_limit=40,
                    persistent=True, secret=True, aliases16=("Key16",)),
        VariableDef(c, "Restart", DataType.INTEGER, RW, "1", "needs a reboot", persistent=True, reboot_required=True),
        VariableDef(c, "Volatile", DataType.BOOLEAN, RW, "false", "not persisted"),
        VariableDef("Meter", "Energy", DataType.DECIMAL, RO, "0", "an instance of a component",
                    component_instance="Main", unit="Wh"),
        VariableDef("EVSE", "AvailabilityState", DataType.OPTION_LIST, RO, "Available", "status", evse_id=1,
                    values_list=("Available", "Occupied", "Unavailable")),
        VariableDef("EVSE", "Problem", DataType.BOOLEAN, RO, "false", "fault", evse_id=1),
        VariableDef("Connector", "AvailabilityState", DataType.OPTION_LIST, RO, "Available", "status", evse_id=1,
                    connector_id=1, values_list=("Available", "Occupied", "Unavailable")),
    ]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """Where the store's database lives."""
    return tmp_path / "ocpp.db"


@pytest.fixture
def store(path: Path) -> Any:
    """A fresh store of ``_defs``."""
    s = VariableStore(path, _defs())
    yield s
    s.close()


def _rows(path: Path) -> dict[str, str]:
    """What is on disk: variable[instance] -> value, read with a separate connection."""
    db = sqlite3.connect(path)
    try:
        rows = db.execute("SELECT variable, variable_instance, value FROM ocpp_variables").fetchall()
    finally:
        db.close()
    return {f"{v}[{i}]" if i else v: value for v, i, value in rows}


def _put_row(path: Path, variable: str, value: object, component: str = "TestCtrlr") -> None:
    """Write a row behind the store's back, as an edited file or a changed definition would leave it."""
    db = sqlite3.connect(path)
    try:
        db.execute("INSERT OR REPLACE INTO ocpp_variables VALUES (?, '', 0, 0, ?, '', ?)", (component, variable, value))
        db.commit()
    finally:
        db.close()


# -- get


def test_get_every_status(store: VariableStore) -> None:
    """Accepted with the value; unknown component/variable; other attributes; WriteOnly is Rejected without value."""
    assert (store.get("TestCtrlr", "Count").status, store.get("TestCtrlr", "Count").value) == ("Accepted", "10")
    assert store.get("TestCtrlr", "Count", variable_instance="Other").value == "1"
    assert store.get("NoCtrlr", "Count").status is GetStatus.UNKNOWN_COMPONENT
    assert store.get("TestCtrlr", "Nothing").status is GetStatus.UNKNOWN_VARIABLE
    assert store.get("TestCtrlr", "Count", variable_instance="Third").status is GetStatus.UNKNOWN_VARIABLE
    assert store.get("EVSE", "AvailabilityState", evse_id=2).status is GetStatus.UNKNOWN_COMPONENT
    assert store.get("EVSE", "AvailabilityState").status is GetStatus.UNKNOWN_COMPONENT
    assert store.get("Meter", "Energy").status is GetStatus.UNKNOWN_COMPONENT  # the instance is part of the name
    assert store.get("Meter", "Energy", component_instance="Main").value == "0"
    assert store.get("Connector", "AvailabilityState", evse_id=1, connector_id=1).value == "Available"
    for attribute in ("Target", "MinSet", "MaxSet", "Bogus"):
        result = store.get("TestCtrlr", "Count", attribute=attribute)
        assert (result.status, result.value, result.reason) == (
            GetStatus.NOT_SUPPORTED_ATTRIBUTE_TYPE, None, Reason.UNSUPPORTED_PARAM)
    secret = store.get("TestCtrlr", "Secret")
    assert (secret.status, secret.value, secret.reason) == (GetStatus.REJECTED, None, Reason.WRITE_ONLY)


def test_names_are_case_insensitive(store: VariableStore) -> None:
    """OCPP names compare without case; a set through another spelling changes the one variable."""
    assert store.get("testctrlr", "COUNT").value == "10"
    assert store.set("TESTCTRLR", "count", "11").status is SetStatus.ACCEPTED
    assert store.get("TestCtrlr", "Count").value == "11"
    assert store.get("meter", "energy", component_instance="MAIN").status is GetStatus.ACCEPTED


# -- set


def test_set_every_status(store: VariableStore, path: Path) -> None:
    """Accepted (on disk), Rejected (read-only, invalid), unknown component/variable, attribute, RebootRequired."""
    assert store.set("TestCtrlr", "Count", "42").status is SetStatus.ACCEPTED
    assert store.get("TestCtrlr", "Count").value == "42" and _rows(path)["Count"] == "42"
    fixed = store.set("TestCtrlr", "Fixed", "8")
    assert (fixed.status, fixed.reason) == (SetStatus.REJECTED, Reason.READ_ONLY)
    invalid = store.set("TestCtrlr", "Count", "lots")
    assert (invalid.status, invalid.reason) == (SetStatus.REJECTED, Reason.INVALID_VALUE)
    assert store.set("NoCtrlr", "Count", "1").status is SetStatus.UNKNOWN_COMPONENT
    assert store.set("TestCtrlr", "Nothing", "1").status is SetStatus.UNKNOWN_VARIABLE
    target = store.set("TestCtrlr", "Count", "1", attribute="MaxSet")
    assert (target.status, target.reason) == (SetStatus.NOT_SUPPORTED_ATTRIBUTE_TYPE, Reason.UNSUPPORTED_PARAM)
    assert store.get("TestCtrlr", "Fixed").value == "7" and store.get("TestCtrlr", "Count").value == "42"
    assert set(_rows(path)) == {"Count"}  # nothing refused reached the disk


def test_reboot_required_takes_effect_after_a_restart(store: VariableStore, path: Path) -> None:
    """A RebootRequired set is stored, the old value stays effective, and the new one is read after reopening."""
    heard: list[str] = []
    store.on_change(lambda d, v: heard.append(v))
    result = store.set("TestCtrlr", "Restart", "2")
    assert result.status is SetStatus.REBOOT_REQUIRED and store.reboot_pending()
    assert store.get("TestCtrlr", "Restart").value == "1" and store.int_value("TestCtrlr", "Restart") == 1
    assert _rows(path)["Restart"] == "2" and heard == []
    store.close()
    again = VariableStore(path, _defs())
    assert again.get("TestCtrlr", "Restart").value == "2" and not again.reboot_pending()
    assert again.set("TestCtrlr", "Restart", "2").status is SetStatus.ACCEPTED  # already effective
    again.close()


def test_reboot_required_set_back_to_the_effective_value_cancels(store: VariableStore, path: Path) -> None:
    """Setting the effective value again replaces the pending one on disk, and is Accepted."""
    store.set("TestCtrlr", "Restart", "5")
    assert store.set("TestCtrlr", "Restart", "1").status is SetStatus.ACCEPTED
    assert _rows(path)["Restart"] == "1" and not store.reboot_pending()


def test_write_only_secret_may_be_set(store: VariableStore, path: Path) -> None:
    """A WriteOnly variable is Accepted, readable internally, stored, and still not returned by get."""
    assert store.set("TestCtrlr", "Secret", SECRET).status is SetStatus.ACCEPTED
    assert store.str_value("TestCtrlr", "Secret") == SECRET == store.value("TestCtrlr", "Secret")
    assert store.get("TestCtrlr", "Secret").value is None
    assert _rows(path)["Secret"] == SECRET


# -- values


OK = None
INV, RANGE, LONG = Reason.INVALID_VALUE, Reason.VALUE_OUT_OF_RANGE, Reason.TOO_LARGE_ELEMENT
VALUES = [
    ("Flag", "true", OK), ("Flag", "false", OK), ("Flag", "True", INV), ("Flag", "1", INV), ("Flag", "", INV),
    ("Flag", " true", INV),
    ("Count", "0", OK), ("Count", "100", OK), ("Count", "-1", RANGE), ("Count", "101", RANGE), ("Count", "1.0", INV),
    ("Count", "+5", INV), ("Count", " 5", INV), ("Count", "1_0", INV), ("Count", "1e2", INV), ("Count", "٣", INV),
    ("Count", "", INV), ("Count", "99999999999", RANGE),
    ("Ratio", "2.5", OK), ("Ratio", "-1.5", OK), ("Ratio", "1", OK), ("Ratio", "2.51", RANGE), ("Ratio", "-2", RANGE),
    ("Ratio", "NaN", INV), ("Ratio", "inf", INV), ("Ratio", "1e0", INV), ("Ratio", ".5", INV),
    ("When", "2024-05-01T12:00:00Z", OK), ("When", "2024-05-01T12:00:00.123+02:00", OK),
    ("When", "2024-05-01t12:00:00z", OK), ("When", "2024-06-01T12:00:00", INV), ("When", "2024-06-01 12:00:00Z", INV),
    ("When", "2024-02-30T12:00:00Z", INV), ("When", "2024-07-01", INV), ("When", "yesterday", INV),
    ("Name", "", OK), ("Name", "0123456789", OK), ("Name", "0123456789a", LONG), ("Name", "x" * 1001, LONG),
    ("Mode", "B", OK), ("Mode", "b", INV), ("Mode", "A,B", INV), ("Mode", "", INV), ("Mode", "D", INV),
    ("Order", "Z,X", OK), ("Order", "Y", OK), ("Order", "", INV), ("Order", "X,X", INV), ("Order", "X, Y", INV),
    ("Order", "X,W", INV),
    ("Members", "", OK), ("Members", "Z,Y,X", OK), ("Members", "X,", INV), ("Members", "Y,Y", INV),
    ("Members", "W", INV),
    ("Secret", "x" * 16, OK), ("Secret", "x" * 40, OK), ("Secret", "x" * 15, INV), ("Secret", "x" * 41, LONG),
    ("Secret", "", INV),
]


@pytest.mark.parametrize(("variable", "value", "reason"), VALUES)
def test_values_are_checked_strictly(store: VariableStore, variable: str, value: str, reason: Reason | None) -> None:
    """Each data type's good values are Accepted and stored; bad ones Rejected with the reason, the old value kept."""
    before = store.value("TestCtrlr", variable)
    result = store.set("TestCtrlr", variable, value)
    if reason is None:
        assert result.status is SetStatus.ACCEPTED, result
        assert store.value("TestCtrlr", variable) == value
    else:
        assert (result.status, result.reason) == (SetStatus.REJECTED, reason)
        assert result.info and (len(value) < 4 or value not in result.info)  # the value is never echoed
        assert store.value("TestCtrlr", variable) == before


def test_a_value_that_is_not_a_string_is_rejected(store: VariableStore) -> None:
    """A JSON number or null where OCPP wants a string is InvalidValue, never an exception."""
    for value in (5, None, True, ["a"]):
        result = store.set_request({"component": {"name": "TestCtrlr"}, "variable": {"name": "Count"},
                                    "attribute_value": value})
        assert (result["attributeStatus"], result["attributeStatusInfo"]["reasonCode"]) == ("Rejected", "InvalidValue")


# -- durability


def test_values_survive_a_reopen(store: VariableStore, path: Path) -> None:
    """Persistent values come back after a restart; a non-persistent one starts from its default again."""
    store.set("TestCtrlr", "Count", "42")
    store.set("TestCtrlr", "Members", "Z,X")
    store.set("TestCtrlr", "Volatile", "true")
    store.set("TestCtrlr", "Secret", SECRET)
    store.close()
    again = VariableStore(path, _defs())
    assert again.int_value("TestCtrlr", "Count") == 42
    assert again.list_value("TestCtrlr", "Members") == ("Z", "X")
    assert again.bool_value("TestCtrlr", "Volatile") is False
    assert again.str_value("TestCtrlr", "Secret") == SECRET
    again.close()


def test_a_corrupt_stored_value_falls_back_to_the_default(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """An invalid stored value: WARNING naming variable and value, the default in use, the row kept until a set."""
    VariableStore(path, _defs()).close()
    _put_row(path, "Flag", "maybe")
    _put_row(path, "Count", b"\xff\xfe")  # not UTF-8
    _put_row(path, "Ratio", "0.75")  # a good one beside them
    with caplog.at_level(logging.WARNING):
        store = VariableStore(path, _defs())
    assert store.bool_value("TestCtrlr", "Flag") is True and store.int_value("TestCtrlr", "Count") == 10
    assert store.float_value("TestCtrlr", "Ratio") == 0.75
    flag = [r.getMessage() for r in caplog.records if "TestCtrlr.Flag" in r.getMessage()]
    assert len(flag) == 1 and "'maybe'" in flag[0] and "default 'true'" in flag[0]
    assert all(r.levelno == logging.WARNING for r in caplog.records)
    assert any("TestCtrlr.Count" in r.getMessage() for r in caplog.records)
    assert _rows(path)["Flag"] == "maybe"  # kept on disk
    store.close()
    again = VariableStore(path, _defs())  # still bad, still kept, still the default
    assert again.bool_value("TestCtrlr", "Flag") is True and _rows(path)["Flag"] == "maybe"
    assert again.set("TestCtrlr", "Flag", "false").status is SetStatus.ACCEPTED
    assert _rows(path)["Flag"] == "false"
    again.close()


def test_a_row_in_another_spelling_is_replaced_by_a_set(path: Path) -> None:
    """Names are case-insensitive on disk too: a set replaces a row written as 'testctrlr'.'count'."""
    VariableStore(path, _defs()).close()
    _put_row(path, "count", "33", component="testctrlr")
    store = VariableStore(path, _defs())
    assert store.int_value("TestCtrlr", "Count") == 33
    store.set("TestCtrlr", "Count", "34")
    assert _rows(path) == {"Count": "34"}
    store.close()


def test_a_set_that_cannot_be_written_is_rejected_and_changes_nothing(store: VariableStore, path: Path) -> None:
    """A refused write: Rejected/InternalError, memory and disk keep the old value, nobody hears a change."""
    store.set("TestCtrlr", "Count", "20")
    heard: list[str] = []
    store.on_change(lambda d, v: heard.append(v))
    store._db.execute("PRAGMA query_only=ON")
    result = store.set("TestCtrlr", "Count", "30")
    assert (result.status, result.reason) == (SetStatus.REJECTED, Reason.INTERNAL_ERROR)
    assert store.int_value("TestCtrlr", "Count") == 20 and _rows(path)["Count"] == "20" and heard == []
    with pytest.raises(VariableStoreError):
        store.set_internal("TestCtrlr", "Count", "31")
    assert store.int_value("TestCtrlr", "Count") == 20
    assert store.set("TestCtrlr", "Volatile", "true").status is SetStatus.ACCEPTED  # nothing to write
    store._db.execute("PRAGMA query_only=OFF")
    assert store.set("TestCtrlr", "Count", "30").status is SetStatus.ACCEPTED and heard == ["true", "30"]


def test_a_set_while_another_connection_holds_the_file_is_rejected(path: Path) -> None:
    """A shared file locked by another writer past the busy timeout: Rejected, memory unchanged."""
    store = VariableStore(path, _defs(), busy_timeout_s=0.05)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        assert store.set("TestCtrlr", "Count", "30").reason is Reason.INTERNAL_ERROR
        assert store.int_value("TestCtrlr", "Count") == 10
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert store.set("TestCtrlr", "Count", "30").status is SetStatus.ACCEPTED
    store.close()


def test_the_shared_file_keeps_other_tables(path: Path) -> None:
    """Other tables of the station's file are neither touched nor needed; the store adds only its own table."""
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE ocpp_queue (position INTEGER PRIMARY KEY, payload TEXT)")
    db.execute("INSERT INTO ocpp_queue VALUES (1, 'x')")
    db.commit()
    db.close()
    store = VariableStore(path, _defs())
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL: durable once committed
    store.set("TestCtrlr", "Count", "12")
    store.close()
    db = sqlite3.connect(path)
    assert db.execute("SELECT * FROM ocpp_queue").fetchall() == [(1, "x")]
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_an_empty_file_is_refused(path: Path) -> None:
    """A 0-byte file is a lost database, not an empty one."""
    path.write_bytes(b"")
    with pytest.raises(VariableStoreError, match="empty file"):
        VariableStore(path, _defs())


# -- secrets


def test_secrets_never_leave_through_get_report_16_or_logs(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The secret is never returned (get, reports, 1.6 listing) nor logged (set, refused set, corrupt row)."""
    caplog.set_level(logging.DEBUG)
    store = VariableStore(path, _defs())
    store.set("TestCtrlr", "Secret", SECRET)
    store.set("TestCtrlr", "Secret", SECRET[:10])  # refused: too short
    store.set_internal("TestCtrlr", "Secret", SECRET[::-1])
    outputs = [store.get("TestCtrlr", "Secret"), store.get_request({"component": {"name": "TestCtrlr"},
                                                                    "variable": {"name": "Secret"}})]
    outputs += [store.report(base) for base in ReportBase]
    outputs.append(store.key_values_16())
    store.close()
    _put_row(path, "Secret", "short-" + SECRET[:5])  # corrupt: too short
    VariableStore(path, _defs()).close()
    text = repr(outputs) + "\n".join(r.getMessage() for r in caplog.records)
    assert "Secret" in text and "<redacted>" in text  # the logs did speak about it
    for secret in (SECRET, SECRET[:10], SECRET[::-1], SECRET[:5]):
        assert secret not in text


# -- reports


def _validate(schema_name: str, payload: dict[str, Any]) -> None:
    """Validate ``payload`` against the ``ocpp`` library's copy of an OCPP 2.0.1 schema."""
    schema = json.loads((SCHEMAS / schema_name).read_text())
    Draft6Validator(schema, format_checker=FormatChecker()).validate(payload)


def _notify_report(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """A full NotifyReportRequest around ``entries``."""
    return {"requestId": 1, "generatedAt": "2024-05-01T12:00:00Z", "seqNo": 0, "tbc": False, "reportData": entries}


def _names(entries: list[dict[str, Any]]) -> set[str]:
    """component.variable[instance]@evse/connector of each entry."""
    found = set()
    for e in entries:
        evse = e["component"].get("evse", {})
        where = f"@{evse['id']}/{evse.get('connectorId', '')}" if evse else ""
        instance = e["variable"].get("instance", "")
        found.add(f"{e['component']['name']}.{e['variable']['name']}{f'[{instance}]' if instance else ''}{where}")
    return found


def test_reports_match_the_schema_and_their_base(store: VariableStore) -> None:
    """Full: all; Configuration: ReadWrite/WriteOnly; Summary: AvailabilityStates and problems that are true."""
    store.set("TestCtrlr", "Secret", SECRET)
    store.bind("Meter", "Energy", lambda: "123.4", component_instance="Main")
    full = store.report(ReportBase.FULL_INVENTORY)
    for base in ReportBase:
        _validate("NotifyReportRequest.json", _notify_report(store.report(base)))
    assert len(full) == len(_defs())
    by_name = {_names([e]).pop(): e for e in full}
    count = by_name["TestCtrlr.Count"]
    assert count["variableAttribute"] == [{"type": "Actual", "value": "10", "mutability": "ReadWrite",
                                           "persistent": True, "constant": False}]
    assert count["variableCharacteristics"] == {"dataType": "integer", "unit": "s", "minLimit": 0, "maxLimit": 100,
                                                "supportsMonitoring": False}
    assert by_name["TestCtrlr.Fixed"]["variableAttribute"][0]["constant"] is True
    assert by_name["TestCtrlr.Members"]["variableCharacteristics"]["valuesList"] == "X,Y,Z"
    assert by_name["Connector.AvailabilityState@1/1"]["component"] == {"name": "Connector",
                                                                       "evse": {"id": 1, "connectorId": 1}}
    assert by_name["Meter.Energy"]["component"] == {"name": "Meter", "instance": "Main"}
    assert by_name["Meter.Energy"]["variableAttribute"][0]["value"] == "123.4"  # live
    assert "value" not in by_name["TestCtrlr.Secret"]["variableAttribute"][0]
    configuration = _names(store.report("ConfigurationInventory"))
    assert configuration == {f"TestCtrlr.{n}" for n in ("Flag", "Count", "Count[Other]", "Ratio", "When", "Name",
                                                        "Mode", "Order", "Members", "Secret", "Restart", "Volatile")}
    summary = "SummaryInventory"
    assert _names(store.report(summary)) == {"EVSE.AvailabilityState@1/", "Connector.AvailabilityState@1/1"}
    store.set_internal("EVSE", "Problem", "true", evse_id=1)
    assert "EVSE.Problem@1/" in _names(store.report(summary))
    with pytest.raises(ValueError):
        store.report("EverythingPlease")


def test_get_and_set_requests_answer_in_the_response_schemas(store: VariableStore) -> None:
    """GetVariableData/SetVariableData in snake_case (the ocpp library's) or camelCase, answered schema-valid."""
    get = [
        {"component": {"name": "TestCtrlr"}, "variable": {"name": "Count", "instance": "Other"}},
        {"component": {"name": "Connector", "evse": {"id": 1, "connector_id": 1}},
         "variable": {"name": "AvailabilityState"}, "attribute_type": "Actual"},
        {"component": {"name": "Connector", "evse": {"id": 1, "connectorId": 1}},
         "variable": {"name": "AvailabilityState"}, "attributeType": "Target"},
        {"component": {"name": "Nope"}, "variable": {"name": "Count"}},
        {"component": {"name": "TestCtrlr"}, "variable": {"name": "Secret"}},
    ]
    results = [store.get_request(r) for r in get]
    _validate("GetVariablesResponse.json", {"getVariableResult": results})
    assert [r["attributeStatus"] for r in results] == [
        "Accepted", "Accepted", "NotSupportedAttributeType", "UnknownComponent", "Rejected"]
    assert results[0]["attributeValue"] == "1" and results[0]["variable"] == {"name": "Count", "instance": "Other"}
    assert results[1]["component"] == {"name": "Connector", "evse": {"id": 1, "connectorId": 1}}
    sets = [
        {"component": {"name": "TestCtrlr"}, "variable": {"name": "Count"}, "attribute_value": "11"},
        {"component": {"name": "TestCtrlr"}, "variable": {"name": "Count"}, "attributeValue": "x"},
        {"component": {"name": "TestCtrlr"}, "variable": {"name": "Restart"}, "attributeValue": "9"},
        {"component": {"name": "TestCtrlr"}, "variable": {"name": "Fixed"}, "attributeValue": "9"},
    ]
    answers = [store.set_request(r) for r in sets]
    _validate("SetVariablesResponse.json", {"setVariableResult": answers})
    assert [a["attributeStatus"] for a in answers] == ["Accepted", "Rejected", "RebootRequired", "Rejected"]
    assert answers[1]["attributeStatusInfo"]["reasonCode"] == "InvalidValue"
    assert answers[3]["attributeStatusInfo"] == {"reasonCode": "ReadOnly",
                                                 "additionalInfo": "the variable is read-only"}


# -- the station's side


def test_typed_readers(store: VariableStore) -> None:
    """Each reader returns its type, KeyError for an undefined variable, TypeError for the wrong data type."""
    assert store.bool_value("TestCtrlr", "Flag") is True
    assert store.int_value("TestCtrlr", "Count", variable_instance="Other") == 1
    assert store.float_value("TestCtrlr", "Ratio") == 0.5 and store.float_value("TestCtrlr", "Count") == 10.0
    assert store.list_value("TestCtrlr", "Order") == ("X", "Y") and store.list_value("TestCtrlr", "Members") == ()
    assert store.list_value("TestCtrlr", "Mode") == ("A",)
    assert store.str_value("TestCtrlr", "When") == "2024-01-01T00:00:00Z"
    assert store.str_value("TestCtrlr", "Secret") == "" and store.value("TestCtrlr", "Secret") is None
    assert store.str_value("EVSE", "AvailabilityState", evse_id=1) == "Available"
    with pytest.raises(KeyError):
        store.int_value("TestCtrlr", "Nothing")
    with pytest.raises(KeyError):
        store.bool_value("EVSE", "Problem")  # it has an EVSE
    with pytest.raises(TypeError):
        store.int_value("TestCtrlr", "Flag")
    with pytest.raises(TypeError):
        store.bool_value("TestCtrlr", "Count")


def test_set_internal_skips_mutability_not_validation(store: VariableStore) -> None:
    """The station may set a ReadOnly value; a bad value is a ValueError; an undefined variable a KeyError."""
    store.set_internal("EVSE", "AvailabilityState", "Occupied", evse_id=1)
    assert store.get("EVSE", "AvailabilityState", evse_id=1).value == "Occupied"
    store.set_internal("TestCtrlr", "Restart", "3")  # effective at once, no reboot for the station's own values
    assert store.int_value("TestCtrlr", "Restart") == 3
    with pytest.raises(ValueError, match="InvalidValue"):
        store.set_internal("EVSE", "AvailabilityState", "Sleeping", evse_id=1)
    with pytest.raises(KeyError):
        store.set_internal("EVSE", "AvailabilityState", "Occupied", evse_id=9)


def test_change_subscription(store: VariableStore, caplog: pytest.LogCaptureFixture) -> None:
    """Listeners hear effective changes once (not repeats), a failing one is logged, unsubscribing stops it."""
    heard: list[tuple[str, str, int | None, str]] = []
    stop = store.on_change(lambda d, v: heard.append((d.component, d.variable, d.evse_id, v)))

    def broken(definition: VariableDef, value: str) -> None:
        raise RuntimeError("listener bug")

    store.on_change(broken)
    assert store.set("TestCtrlr", "Count", "50").status is SetStatus.ACCEPTED
    store.set("TestCtrlr", "Count", "50")
    store.set_internal("EVSE", "AvailabilityState", "Unavailable", evse_id=1)
    store.set("TestCtrlr", "Count", "500")  # refused
    assert heard == [("TestCtrlr", "Count", None, "50"), ("EVSE", "AvailabilityState", 1, "Unavailable")]
    assert any("listener failed" in r.getMessage() for r in caplog.records)
    stop()
    store.set("TestCtrlr", "Count", "51")
    assert len(heard) == 2


def test_bound_reader_gives_live_values(store: VariableStore) -> None:
    """A bound reader answers get and the readers; when it fails the stored value is used."""
    now = ["1.0"]
    store.bind("Meter", "Energy", lambda: now[0], component_instance="Main")
    now[0] = "2.5"
    assert store.get("Meter", "Energy", component_instance="Main").value == "2.5"
    assert store.float_value("Meter", "Energy", component_instance="Main") == 2.5

    def broken() -> str:
        raise OSError("meter gone")

    store.bind("Meter", "Energy", broken, component_instance="Main")
    assert store.get("Meter", "Energy", component_instance="Main").value == "0"
    with pytest.raises(KeyError):
        store.bind("Meter", "Power", broken, component_instance="Main")


# -- OCPP 1.6 keys


def test_16_aliases(store: VariableStore) -> None:
    """1.6 keys find their variable (case-insensitively); the listing says readonly and hides WriteOnly values."""
    definition = store.by_alias("flag16")
    assert definition is not None and (definition.component, definition.variable) == ("TestCtrlr", "Flag")
    assert store.by_alias("Unknown") is None
    store.set("TestCtrlr", "Secret", SECRET)
    known, unknown = store.key_values_16()
    assert [(k.key, k.readonly, k.value) for k in known] == [
        ("Flag16", False, "true"), ("Members16", False, ""), ("Fixed16", True, "7"), ("Key16", False, None)]
    assert unknown == []
    known, unknown = store.key_values_16(["FIXED16", "Nope"])
    assert [(k.key, k.value) for k in known] == [("Fixed16", "7")] and unknown == ["Nope"]


# -- definitions


def test_bad_definitions_are_refused_at_start(path: Path) -> None:
    """A duplicate key or 1.6 key, or a default its own rules refuse, is a programming error said at once."""
    defs = _defs()
    with pytest.raises(ValueError, match="twice"):
        VariableStore(path, [*defs, defs[1]])
    with pytest.raises(ValueError, match="two variables"):
        VariableStore(path, [*defs, VariableDef("X", "Y", DataType.BOOLEAN, RW, "true", "d", aliases16=("FLAG16",))])
    with pytest.raises(ValueError, match="default"):
        VariableStore(path, [VariableDef("X", "Y", DataType.INTEGER, RW, "1", "d", min_limit=2)])
    with pytest.raises(ValueError, match="WriteOnly"):
        VariableDef("X", "Y", DataType.STRING, RW, "a", "d", secret=True)
    with pytest.raises(ValueError, match="values list"):
        VariableDef("X", "Y", DataType.OPTION_LIST, RW, "a", "d")
    with pytest.raises(ValueError, match="without a value"):
        VariableDef("X", "Y", DataType.STRING, RW, None, "d")
    with pytest.raises(ValueError, match="connector"):
        VariableDef("X", "Y", DataType.STRING, RO, "a", "d", connector_id=1)
    assert all(check_value(d, d.default) is None for d in defs if d.default is not None)
