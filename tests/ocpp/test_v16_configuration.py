"""OCPP 1.6 GetConfiguration and ChangeConfiguration: every key the station implements (the device model's variables
under their 1.6 names, and the keys only 1.6 has), read-only keys, unknown keys, values the station refuses,
booleans and lists as 1.6 CSMSs write them, the write-only AuthorizationKey, and values that survive a restart.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from controller.ocpp.station.variable_types import DataType, Mutability, VariableDef
from controller.ocpp.station.variables import VariableStore
from controller.ocpp.v16.configuration import GET_CONFIGURATION_MAX_KEYS, change_configuration, get_configuration

from .csms import Csms
from .station_harness import OcppStation, booted16, ocpp_config

CORE_KEYS = {  # OCPP 1.6 section 9.1 (Core) and 9.2-9.4 keys this station has, with their accessibility
    "AllowOfflineTxForUnknownId": False, "AuthorizationCacheEnabled": False, "AuthorizeRemoteTxRequests": False,
    "ClockAlignedDataInterval": False, "ConnectionTimeOut": False, "ConnectorPhaseRotation": False,
    "ConnectorPhaseRotationMaxLength": True, "GetConfigurationMaxKeys": True, "HeartbeatInterval": False,
    "LocalAuthorizeOffline": False, "LocalPreAuthorize": False, "MeterValuesAlignedData": False,
    "MeterValuesAlignedDataMaxLength": True, "MeterValuesSampledData": False,
    "MeterValuesSampledDataMaxLength": True, "MeterValueSampleInterval": False, "NumberOfConnectors": True,
    "ResetRetries": False, "StopTransactionOnEVSideDisconnect": True, "StopTransactionOnInvalidId": False,
    "StopTxnAlignedData": False, "StopTxnAlignedDataMaxLength": True, "StopTxnSampledData": False,
    "StopTxnSampledDataMaxLength": True, "SupportedFeatureProfiles": True, "TransactionMessageAttempts": False,
    "TransactionMessageRetryInterval": False, "UnlockConnectorOnEVSideDisconnect": True,
    "WebSocketPingInterval": False, "LocalAuthListEnabled": False, "LocalAuthListMaxLength": True,
    "SendLocalListMaxLength": True, "ReserveConnectorZeroSupported": True, "AuthorizationKey": False,
    "SecurityProfile": True, "ChargeProfileMaxStackLevel": True, "ChargingScheduleAllowedChargingRateUnit": True,
    "ChargingScheduleMaxPeriods": True, "MaxChargingProfilesInstalled": True,
}


@pytest.fixture
async def station(tmp_path: Path, csms_16: Csms) -> AsyncIterator[OcppStation]:
    """The sim charger connected and booted at ``csms_16`` (OCPP 1.6), every connector reported."""
    async with OcppStation(tmp_path, ocpp_config(csms_16.url, version="1.6")) as s:
        await booted16(csms_16)
        yield s


async def get(csms: Csms, *keys: str) -> dict[str, Any]:
    """GetConfiguration of ``keys`` (all without)."""
    return await csms.call("GetConfiguration", {"key": list(keys)} if keys else {})


async def change(csms: Csms, key: str, value: str) -> str:
    """ChangeConfiguration; the status answered."""
    return str((await csms.call("ChangeConfiguration", {"key": key, "value": value}))["status"])


async def test_every_key_is_listed_with_its_accessibility(station: OcppStation, csms_16: Csms) -> None:
    answer = await get(csms_16)
    listed = {entry["key"]: entry for entry in answer["configurationKey"]}
    assert {key: entry["readonly"] for key, entry in listed.items()} == CORE_KEYS
    assert "unknownKey" not in answer
    assert len(listed) <= GET_CONFIGURATION_MAX_KEYS
    assert listed["NumberOfConnectors"]["value"] == "2"
    assert listed["SupportedFeatureProfiles"]["value"] == \
        "Core,LocalAuthListManagement,Reservation,SmartCharging,RemoteTrigger"
    assert listed["MeterValuesSampledDataMaxLength"]["value"] == "3"
    assert listed["ConnectorPhaseRotation"]["value"] == "0.Unknown,1.Unknown,2.Unknown"
    assert listed["HeartbeatInterval"]["value"] == str(csms_16.heartbeat_interval)  # from the boot answer
    assert "value" not in listed["AuthorizationKey"]  # write-only: never shown


async def test_asked_keys_come_back_and_unknown_ones_are_listed(station: OcppStation, csms_16: Csms) -> None:
    answer = await get(csms_16, "metervaluesampleinterval", "NoSuchKey", "NumberOfConnectors")
    assert answer["configurationKey"] == [
        {"key": "MeterValueSampleInterval", "readonly": False, "value": "60"},
        {"key": "NumberOfConnectors", "readonly": True, "value": "2"},
    ]
    assert answer["unknownKey"] == ["NoSuchKey"]


@pytest.mark.parametrize(("key", "value", "status"), [
    ("MeterValueSampleInterval", "10", "Accepted"),
    ("MeterValueSampleInterval", "ten", "Rejected"),
    ("MeterValueSampleInterval", "-1", "Rejected"),
    ("NumberOfConnectors", "3", "Rejected"),  # read-only
    ("SupportedFeatureProfiles", "Core", "Rejected"),
    ("NoSuchKey", "1", "NotSupported"),
    ("LocalPreAuthorize", "True", "Accepted"),  # 1.6 CSMSs write booleans in any case
    ("LocalPreAuthorize", "yes", "Rejected"),
    ("MeterValuesSampledData", "Energy.Active.Import.Register, Power.Active.Import", "Accepted"),
    ("MeterValuesSampledData", "Energy.Active.Import.Register,SoC", "Rejected"),  # no SoC reading
    ("MeterValuesSampledData", "Voltage", "Rejected"),  # nor a voltage one
    ("ConnectorPhaseRotation", "0.RST, 1.RST, 2.RTS", "Accepted"),
    ("ConnectorPhaseRotation", "3.RST", "Rejected"),
    ("ConnectorPhaseRotation", "1.XYZ", "Rejected"),
    ("AuthorizationKey", "short", "Rejected"),
    ("AuthorizationKey", "0123456789abcdef0123", "Accepted"),
])
async def test_change_configuration_answers(station: OcppStation, csms_16: Csms, key: str, value: str,
                                            status: str) -> None:
    assert await change(csms_16, key, value) == status


async def test_changes_are_persisted_and_survive_a_restart(tmp_path: Path, csms_16: Csms) -> None:
    config = ocpp_config(csms_16.url, version="1.6")
    changes = {"MeterValueSampleInterval": "15", "LocalPreAuthorize": "true", "StopTransactionOnInvalidId": "false",
               "MeterValuesSampledData": "Power.Active.Import", "ConnectorPhaseRotation": "0.RST,1.RST,2.STR",
               "ClockAlignedDataInterval": "900"}
    async with OcppStation(tmp_path, config):
        await booted16(csms_16)
        for key, value in changes.items():
            assert await change(csms_16, key, value) == "Accepted"
        assert await change(csms_16, "AuthorizationKey", "0123456789abcdef0123") == "Accepted"
    async with OcppStation(tmp_path, config) as station:
        await booted16(csms_16, count=2)
        answer = await get(csms_16, *changes)
        assert {e["key"]: e["value"] for e in answer["configurationKey"]} == changes
        assert station.station.variables.str_value("SecurityCtrlr", "BasicAuthPassword") == "0123456789abcdef0123"


async def test_a_new_heartbeat_interval_is_used_at_once(station: OcppStation, csms_16: Csms) -> None:
    assert await change(csms_16, "HeartbeatInterval", "1") == "Accepted"
    await csms_16.expect("Heartbeat", timeout=5)
    await csms_16.expect("Heartbeat", timeout=5)


async def test_clock_aligned_meter_values_come_on_the_interval(station: OcppStation, csms_16: Csms) -> None:
    assert await change(csms_16, "ClockAlignedDataInterval", "1") == "Accepted"
    for _ in range(2):
        values = await csms_16.expect("MeterValues", timeout=5)
        assert values["connectorId"] in (1, 2) and "transactionId" not in values
        assert {v["context"] for m in values["meterValue"] for v in m["sampledValue"]} == {"Sample.Clock"}
    assert await change(csms_16, "ClockAlignedDataInterval", "0") == "Accepted"


def test_a_key_that_needs_a_restart_answers_reboot_required(tmp_path: Path) -> None:
    slot = VariableDef("OCPPCommCtrlr", "NetworkConfigurationPriority", DataType.INTEGER, Mutability.READ_WRITE, "1",
                       "a setting effective after a restart", persistent=True, reboot_required=True,
                       aliases16=("SomeRestartKey",))
    store = VariableStore(tmp_path / "ocpp.db", [slot])
    try:
        assert change_configuration(store, "SomeRestartKey", "1") == "Accepted"  # unchanged: nothing to restart
        assert change_configuration(store, "somerestartkey", "2") == "RebootRequired"
        assert get_configuration(store, ["SomeRestartKey"])["configuration_key"] == [
            {"key": "SomeRestartKey", "readonly": False, "value": "1"}]  # the new value counts after the restart
    finally:
        store.close()
