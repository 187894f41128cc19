"""The 2.0.1 device model: standardized names, valid defaults, configuration-driven values, reports, 1.6 keys."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import ocpp
import pytest
from jsonschema import Draft6Validator
from ocpp.v201 import enums

from controller.ocpp.station.variable_types import DataType, Mutability, VariableDef
from controller.ocpp.station.variable_values import check_value
from controller.ocpp.station.variables import VariableStore
from controller.ocpp.v201.device_model import (
    AVAILABILITY_STATES,
    MEASURANDS,
    TX_POINTS,
    ReportBuilder,
    definitions,
)

SCHEMAS = Path(ocpp.__file__).parent / "v201" / "schemas"
PASSWORD = "0123456789abcdef-pw"
EVSES = [(1, [(1, "cType2")]), (2, [(1, "sType2"), (2, "cCCS2")])]


def _definitions(**overrides: Any) -> list[VariableDef]:
    """A two-EVSE station with every optional argument given."""
    args: dict[str, Any] = dict(
        reservations_available=True, non_evse_specific=True, vendor="Example Chargers", model="PiCharge 2",
        security_profile=1, serial_number="SN-0001", firmware_version="0.1.0", station_id="cp-001",
        basic_auth_password=PASSWORD,
    )
    args.update(overrides)
    return definitions(EVSES, **args)


@pytest.fixture
def store(tmp_path: Path) -> Any:
    """A store of the full device model."""
    s = VariableStore(tmp_path / "ocpp.db", _definitions())
    yield s
    s.close()


def _key(d: VariableDef) -> tuple[object, ...]:
    """A definition's key without case, as the store compares it."""
    return d.key.folded()


def test_keys_are_unique_and_every_default_valid() -> None:
    """No key twice (nor a 1.6 key), and each default passes its own definition's rules."""
    defs = _definitions()
    assert len({_key(d) for d in defs}) == len(defs)
    aliases = [a.casefold() for d in defs for a in d.aliases16]
    assert len(set(aliases)) == len(aliases)
    for d in defs:
        assert d.default is not None or d.mutability is Mutability.WRITE_ONLY, d.key.label()
        if d.default is not None:
            assert check_value(d, d.default) is None, d.key.label()


def test_names_are_the_standardized_ones() -> None:
    """Every component and variable name is spelled as OCPP 2.0.1's standardized lists (the ocpp library's enums)."""
    components = {c.value for c in enums.ControllerComponentName} | {c.value for c in enums.PhysicalComponentName}
    data_types = {t.value for t in enums.DataEnumType}
    mutabilities = {m.value for m in enums.MutabilityEnumType}
    for d in _definitions():
        assert d.component in components, d.key.label()
        names = getattr(enums, f"{d.component}VariableName")
        assert d.variable in {n.value for n in names}, d.key.label()
        assert d.data_type.value in data_types and d.mutability.value in mutabilities


def test_values_lists_are_ocpp_values() -> None:
    """Measurands, transaction points, availability states and connector types are OCPP 2.0.1 enumeration values."""
    assert set(MEASURANDS) <= {m.value for m in enums.MeasurandEnumType}
    assert set(TX_POINTS) <= {p.value for p in enums.TxStartStopPointEnumType}
    assert set(AVAILABILITY_STATES) == {s.value for s in enums.ConnectorStatusEnumType}
    by_name = {(d.component, d.variable): d for d in _definitions()}
    assert set(by_name["SampledDataCtrlr", "TxUpdatedMeasurands"].values_list) == {
        "Energy.Active.Import.Register", "Power.Active.Import", "Current.Import", "Voltage"}
    assert by_name["TxCtrlr", "TxStartPoint"].data_type is DataType.MEMBER_LIST


REQUIRED = {
    "DeviceDataCtrlr": ["ItemsPerMessage[GetReport]", "ItemsPerMessage[GetVariables]", "ItemsPerMessage[SetVariables]",
                        "BytesPerMessage[GetReport]", "BytesPerMessage[GetVariables]", "BytesPerMessage[SetVariables]"],
    "OCPPCommCtrlr": ["HeartbeatInterval", "MessageAttempts[TransactionEvent]",
                      "MessageAttemptInterval[TransactionEvent]", "MessageTimeout[Default]",
                      "NetworkConfigurationPriority", "NetworkProfileConnectionAttempts", "OfflineThreshold",
                      "ResetRetries", "RetryBackOffRepeatTimes", "RetryBackOffRandomRange", "RetryBackOffWaitMinimum",
                      "WebSocketPingInterval", "FileTransferProtocols", "UnlockOnEVSideDisconnect"],
    "ReservationCtrlr": ["Available", "Enabled", "NonEvseSpecific"],
    "AuthCtrlr": ["Enabled", "AuthorizeRemoteStart", "LocalAuthorizeOffline", "LocalPreAuthorize",
                  "OfflineTxForUnknownIdEnabled", "DisableRemoteAuthorization"],
    "AuthCacheCtrlr": ["Enabled", "Available", "LifeTime", "Storage", "Policy", "DisablePostAuthorize"],
    "LocalAuthListCtrlr": ["Enabled", "Available", "Entries", "ItemsPerMessage", "BytesPerMessage", "Storage",
                           "DisablePostAuthorize"],
    "TxCtrlr": ["EVConnectionTimeOut", "StopTxOnEVSideDisconnect", "StopTxOnInvalidId", "TxStartPoint", "TxStopPoint",
                "MaxEnergyOnInvalidId"],
    "SampledDataCtrlr": ["Enabled", "TxStartedMeasurands", "TxUpdatedMeasurands", "TxUpdatedInterval",
                         "TxEndedMeasurands", "TxEndedInterval", "SignReadings", "RegisterValuesWithoutPhases"],
    "AlignedDataCtrlr": ["Enabled", "Measurands", "Interval", "TxEndedMeasurands", "TxEndedInterval"],
    "SecurityCtrlr": ["SecurityProfile", "BasicAuthPassword", "Identity", "OrganizationName", "CertificateEntries"],
    "ClockCtrlr": ["DateTime", "TimeSource"],
    "ChargingStation": ["AvailabilityState", "Available", "Model", "VendorName", "SupplyPhases", "SerialNumber"],
    "Controller": ["FirmwareVersion"],
}


def test_the_station_implements_the_variables_it_should(store: VariableStore) -> None:
    """Every controller variable of the list, and the EVSE/Connector ones for each configured EVSE and connector."""
    for component, names in REQUIRED.items():
        for name in names:
            variable, _, instance = name.rstrip("]").partition("[")
            assert store.definition(component, variable, variable_instance=instance or None), f"{component}.{name}"
    for evse_id, connectors in EVSES:
        for name in ("AvailabilityState", "Available", "Power", "SupplyPhases"):
            assert store.definition("EVSE", name, evse_id=evse_id), (evse_id, name)
        for connector_id, connector_type in connectors:
            for name in ("AvailabilityState", "Available", "SupplyPhases"):
                assert store.definition("Connector", name, evse_id=evse_id, connector_id=connector_id)
            assert store.str_value("Connector", "ConnectorType", evse_id=evse_id,
                                   connector_id=connector_id) == connector_type
    assert store.definition("EVSE", "Available", evse_id=3) is None
    assert store.definition("Connector", "Available", evse_id=1, connector_id=2) is None
    power = store.definition("EVSE", "Power", evse_id=1)
    assert power is not None and power.max_limit == 22080.0 and power.unit == "W"


def test_configuration_decides_the_read_only_values(tmp_path: Path) -> None:
    """Reservations, security profile, identity and password come from the arguments; optional ones may be absent."""
    store = VariableStore(tmp_path / "a.db", _definitions(
        reservations_available=False, non_evse_specific=False, security_profile=2, basic_auth_password=None,
        serial_number=None, firmware_version=None, station_id=None, supply_phases=1, max_power_w=7360.0))
    assert store.bool_value("ReservationCtrlr", "Available") is False
    assert store.bool_value("ReservationCtrlr", "NonEvseSpecific") is False
    assert store.int_value("SecurityCtrlr", "SecurityProfile") == 2
    assert store.value("SecurityCtrlr", "BasicAuthPassword") is None
    assert store.str_value("SecurityCtrlr", "BasicAuthPassword") == ""
    assert store.int_value("Connector", "SupplyPhases", evse_id=2, connector_id=2) == 1
    power = store.definition("EVSE", "Power", evse_id=1)
    assert power is not None and power.max_limit == 7360.0
    absent = [("ChargingStation", "SerialNumber"), ("Controller", "FirmwareVersion"), ("SecurityCtrlr", "Identity")]
    assert all(store.definition(component, variable) is None for component, variable in absent)
    store.close()
    full = VariableStore(tmp_path / "b.db", _definitions())
    assert full.bool_value("ReservationCtrlr", "Available") is True
    assert full.str_value("SecurityCtrlr", "BasicAuthPassword") == PASSWORD
    assert full.get("SecurityCtrlr", "BasicAuthPassword").value is None
    assert full.str_value("SecurityCtrlr", "Identity") == "cp-001"
    assert full.str_value("Controller", "FirmwareVersion") == "0.1.0"
    full.close()


def test_too_long_identity_is_refused(tmp_path: Path) -> None:
    """A vendor or model longer than BootNotification allows is refused when the store starts."""
    with pytest.raises(ValueError, match=r"ChargingStation\.Model"):
        VariableStore(tmp_path / "c.db", _definitions(model="M" * 21))
    with pytest.raises(ValueError, match="BasicAuthPassword"):
        VariableStore(tmp_path / "d.db", _definitions(basic_auth_password="short"))


def test_settings_the_csms_may_change(store: VariableStore) -> None:
    """Typical SetVariables of a CSMS: measurands, intervals, start points, a password; bad ones refused."""
    assert store.set("SampledDataCtrlr", "TxUpdatedMeasurands", "Energy.Active.Import.Register,Voltage") == (
        store.set("OCPPCommCtrlr", "HeartbeatInterval", "60"))
    assert store.set("SampledDataCtrlr", "TxUpdatedMeasurands", "SoC").status == "Rejected"
    assert store.set("TxCtrlr", "TxStartPoint", "EVConnected,Authorized").status == "Accepted"
    assert store.set("TxCtrlr", "TxStartPoint", "ParkingBayOccupancy").status == "Rejected"
    assert store.set("OCPPCommCtrlr", "MessageAttempts", "3", variable_instance="TransactionEvent").status == "Accepted"
    assert store.set("OCPPCommCtrlr", "MessageTimeout", "10", variable_instance="Default").reason == "ReadOnly"
    assert store.set("OCPPCommCtrlr", "NetworkConfigurationPriority", "1").status == "Accepted"  # already in effect
    assert store.set("SecurityCtrlr", "BasicAuthPassword", "another-password-1").status == "Accepted"
    assert store.set("ReservationCtrlr", "Available", "false").reason == "ReadOnly"
    assert store.set("EVSE", "AvailabilityState", "Occupied", evse_id=1).reason == "ReadOnly"


ALIASES_16 = {
    "HeartbeatInterval": ("OCPPCommCtrlr", "HeartbeatInterval"),
    "ReserveConnectorZeroSupported": ("ReservationCtrlr", "NonEvseSpecific"),
    "AuthorizeRemoteTxRequests": ("AuthCtrlr", "AuthorizeRemoteStart"),
    "LocalAuthorizeOffline": ("AuthCtrlr", "LocalAuthorizeOffline"),
    "LocalPreAuthorize": ("AuthCtrlr", "LocalPreAuthorize"),
    "AllowOfflineTxForUnknownId": ("AuthCtrlr", "OfflineTxForUnknownIdEnabled"),
    "AuthorizationCacheEnabled": ("AuthCacheCtrlr", "Enabled"),
    "LocalAuthListEnabled": ("LocalAuthListCtrlr", "Enabled"),
    "MeterValueSampleInterval": ("SampledDataCtrlr", "TxUpdatedInterval"),
    "MeterValuesSampledData": ("SampledDataCtrlr", "TxUpdatedMeasurands"),
    "ClockAlignedDataInterval": ("AlignedDataCtrlr", "Interval"),
    "TransactionMessageAttempts": ("OCPPCommCtrlr", "MessageAttempts"),
    "TransactionMessageRetryInterval": ("OCPPCommCtrlr", "MessageAttemptInterval"),
    "StopTransactionOnEVSideDisconnect": ("TxCtrlr", "StopTxOnEVSideDisconnect"),
    "StopTransactionOnInvalidId": ("TxCtrlr", "StopTxOnInvalidId"),
    "ConnectionTimeOut": ("TxCtrlr", "EVConnectionTimeOut"),
    "AuthorizationKey": ("SecurityCtrlr", "BasicAuthPassword"),
    "SecurityProfile": ("SecurityCtrlr", "SecurityProfile"),
}


def test_16_keys_resolve(store: VariableStore) -> None:
    """Each 1.6 key names the 2.0.1 variable of the same setting; GetConfiguration hides AuthorizationKey's value."""
    for key, (component, variable) in ALIASES_16.items():
        definition = store.by_alias(key)
        assert definition is not None and (definition.component, definition.variable) == (component, variable), key
    known, unknown = store.key_values_16(["MeterValueSampleInterval", "AuthorizationKey", "NumberOfConnectors"])
    assert [(k.key, k.readonly, k.value) for k in known] == [
        ("MeterValueSampleInterval", False, "60"), ("AuthorizationKey", False, None)]
    assert unknown == ["NumberOfConnectors"]
    assert store.by_alias("ReserveConnectorZeroSupported") is store.definition("ReservationCtrlr", "NonEvseSpecific")


def _validator() -> Draft6Validator:
    """The ocpp library's NotifyReportRequest schema."""
    return Draft6Validator(json.loads((SCHEMAS / "NotifyReportRequest.json").read_text()))


def test_base_reports_in_parts_match_the_schema(store: VariableStore) -> None:
    """Every base report, split by ItemsPerMessage/BytesPerMessage[GetReport], is schema-valid and complete."""
    validator = _validator()
    builder = ReportBuilder(store)
    for base in ("FullInventory", "ConfigurationInventory", "SummaryInventory"):
        parts = builder.parts(base)
        assert parts, base
        for seq_no, (items, tbc) in enumerate(parts):
            validator.validate({"requestId": 7, "generatedAt": "2024-05-01T12:00:00Z", "seqNo": seq_no, "tbc": tbc,
                                "reportData": items})
        assert [e for items, _ in parts for e in items] == store.report(base)
        assert [tbc for _, tbc in parts] == [True] * (len(parts) - 1) + [False]
    assert builder.parts("Everything") is None
    full = store.report("FullInventory")
    assert len(full) == len(store.definitions)
    secret = [e for e in full if e["variable"]["name"] == "BasicAuthPassword"]
    assert secret and "value" not in secret[0]["variableAttribute"][0] and PASSWORD not in json.dumps(full)


def test_report_parts_respect_the_limits(store: VariableStore) -> None:
    """Fewer items or bytes per message give more parts, each within the limit, in order."""
    store.set_internal("DeviceDataCtrlr", "ItemsPerMessage", "10", variable_instance="GetReport")
    parts = ReportBuilder(store).parts("FullInventory")
    assert parts is not None
    assert all(len(items) <= 10 for items, _ in parts) and len(parts) == -(-len(store.definitions) // 10)
    store.set_internal("DeviceDataCtrlr", "ItemsPerMessage", "100", variable_instance="GetReport")
    store.set_internal("DeviceDataCtrlr", "BytesPerMessage", "2000", variable_instance="GetReport")
    parts = ReportBuilder(store).parts("FullInventory")
    assert parts is not None and len(parts) > 3
    for items, _ in parts:
        assert len(json.dumps(items, separators=(",", ":"))) + 256 <= 2000
    assert [e for items, _ in parts for e in items] == store.report("FullInventory")
