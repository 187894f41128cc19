"""The OCPP 2.0.1 device model this station implements: every component and variable, and base reports in parts.

Names (components, variables, instances) are the standardized ones of OCPP 2.0.1 Part 2, Appendix 3
("Standardized Components" / "Standardized Variables"), as the ``ocpp`` library spells them in
``ocpp.v201.enums`` (ControllerComponentName, PhysicalComponentName and the ``*VariableName`` enums; the tests check
every name against them). Data types, units, mutability and the usual defaults follow the same appendix's
controller-component tables, cross-checked with EVerest libocpp's ``config/v2/component_config/standardized/*.json``
and ``custom/EVSE_1.json``/``Connector_1_1.json``. Values lists name only what this station does (the measurands its
meters read, the transaction start/stop points it implements), as VariableCharacteristics.valuesList means. The
1.6 keys in ``aliases16`` are OCPP 1.6 section 9 "Standard Configuration Key Names" (and the 1.6 security
whitepaper's AuthorizationKey and SecurityProfile) that mean the same setting as the 2.0.1 variable.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from controller.ocpp.station.charging_profiles import MAX_PERIODS, MAX_PROFILES, MAX_STACK_LEVEL
from controller.ocpp.station.variable_types import (
    CONFIGURATION_VALUE_SIZE,
    REPORTING_VALUE_SIZE,
    DataType,
    Mutability,
    ReportBase,
    VariableDef,
)
from controller.ocpp.station.variables import VariableStore

STR, DEC, INT, DATE, BOOL = DataType.STRING, DataType.DECIMAL, DataType.INTEGER, DataType.DATE_TIME, DataType.BOOLEAN
OPTIONS, SEQUENCE, MEMBERS = DataType.OPTION_LIST, DataType.SEQUENCE_LIST, DataType.MEMBER_LIST

MEASURANDS = ("Energy.Active.Import.Register", "Power.Active.Import", "Current.Import", "Voltage")  # the meters'
TX_POINTS = ("EVConnected", "Authorized", "PowerPathClosed")  # TxStartStopPointEnumType values the station implements
AVAILABILITY_STATES = ("Available", "Occupied", "Reserved", "Unavailable", "Faulted")  # ConnectorStatusEnumType
TIME_SOURCES = ("NTP", "Heartbeat")  # the system clock when NTP-synchronized, else the CSMS's time
FILE_TRANSFER_PROTOCOLS = ("HTTP", "HTTPS")  # none offered yet: no GetLog or UpdateFirmware
ITEMS_PER_MESSAGE = 100  # DeviceDataCtrlr.ItemsPerMessage (GetReport, GetVariables, SetVariables)
BYTES_PER_MESSAGE = 65536  # DeviceDataCtrlr.BytesPerMessage (GetReport, GetVariables, SetVariables)
_ENVELOPE_BYTES = 256  # a NotifyReport's OCPP-J frame and fields around reportData, generously


def _rw(component: str, variable: str, data_type: DataType, default: str, description: str,
        **more: Any) -> VariableDef:
    """A ReadWrite variable the CSMS may set, persisted across restarts."""
    return VariableDef(component, variable, data_type, Mutability.READ_WRITE, default, description,
                       persistent=True, **more)


def _ro(component: str, variable: str, data_type: DataType, default: str, description: str,
        **more: Any) -> VariableDef:
    """A ReadOnly variable: from the configuration, or kept current by the station (``set_internal``/``bind``)."""
    return VariableDef(component, variable, data_type, Mutability.READ_ONLY, default, description, **more)


def _b(value: bool) -> str:
    """OCPP's boolean spelling."""
    return "true" if value else "false"


def definitions(
    evses: Sequence[tuple[int, Sequence[tuple[int, str]]]],
    *,
    reservations_available: bool,
    non_evse_specific: bool,
    vendor: str,
    model: str,
    security_profile: int,
    serial_number: str | None = None,
    firmware_version: str | None = None,
    station_id: str | None = None,
    basic_auth_password: str | None = None,
    supply_phases: int = 3,
    max_power_w: float = 22080.0,
) -> list[VariableDef]:
    """Every variable of a station with ``evses`` = [(evse id, [(connector id, OCPP connector type)])].

    ``reservations_available``/``non_evse_specific``: ReservationCtrlr.Available/NonEvseSpecific (the ``[ocpp]``
    section's ``reservations`` and ``non_evse_specific_reservations``). ``vendor``/``model``/``serial_number``/
    ``firmware_version``: what BootNotification says (within its lengths: 50/20/25/50). ``station_id``:
    SecurityCtrlr.Identity. ``security_profile``: 0 (none, ws://), 1 or 2. ``basic_auth_password``: the configured
    password, BasicAuthPassword's value until the CSMS sets another (16..40 characters). ``supply_phases`` and
    ``max_power_w`` (3 x 230 V x 32 A by default) describe every EVSE. The connector type is written as OCPP 2.0.1's
    ConnectorEnumType (e.g. ``cType2``, ``sType2``, ``s309-1P-16A``).
    """
    phases = str(supply_phases)
    found = [
        *_device_data(),
        *_communication(),
        *_reservations(reservations_available, non_evse_specific),
        *_authorization(),
        *_transactions(),
        *_metering(),
        *_smart_charging(),
        *_security(security_profile, basic_auth_password, station_id),
        *_clock(),
        *_station(vendor, model, serial_number, firmware_version, phases),
    ]
    for evse_id, connectors in evses:
        found += _evse(evse_id, connectors, phases, max_power_w)
    return found


def _device_data() -> list[VariableDef]:
    """DeviceDataCtrlr: how much one GetReport/GetVariables/SetVariables may carry, and value sizes."""
    ddc = "DeviceDataCtrlr"
    found: list[VariableDef] = []
    for message in ("GetReport", "GetVariables", "SetVariables"):
        found += [
            _ro(ddc, "ItemsPerMessage", INT, str(ITEMS_PER_MESSAGE), f"Most entries in one {message} message",
                variable_instance=message, constant=True),
            _ro(ddc, "BytesPerMessage", INT, str(BYTES_PER_MESSAGE), f"Most bytes in one {message} message",
                variable_instance=message, constant=True),
        ]
    return [
        *found,
        _ro(ddc, "ConfigurationValueSize", INT, str(CONFIGURATION_VALUE_SIZE), "Longest value a set may carry",
            constant=True),
        _ro(ddc, "ReportingValueSize", INT, str(REPORTING_VALUE_SIZE), "Longest value a get or report returns",
            constant=True),
    ]


def _communication() -> list[VariableDef]:
    """OCPPCommCtrlr: heartbeat, message retries and timeouts, reconnect back-off, pings."""
    occ = "OCPPCommCtrlr"
    return [
        _rw(occ, "HeartbeatInterval", INT, "300", "Seconds without traffic before a Heartbeat", unit="s",
            min_limit=1, max_limit=86400, aliases16=("HeartbeatInterval",)),
        _rw(occ, "MessageAttempts", INT, "5", "Tries to deliver a TransactionEvent the CSMS failed to process",
            variable_instance="TransactionEvent", min_limit=1, max_limit=1000,
            aliases16=("TransactionMessageAttempts",)),
        _rw(occ, "MessageAttemptInterval", INT, "10", "Seconds before the next TransactionEvent try, times the try",
            variable_instance="TransactionEvent", unit="s", min_limit=1, max_limit=3600,
            aliases16=("TransactionMessageRetryInterval",)),
        _ro(occ, "MessageTimeout", INT, "30", "Seconds to wait for the CSMS's answer to a CALL",
            variable_instance="Default", unit="s", constant=True),
        _rw(occ, "NetworkConfigurationPriority", SEQUENCE, "1", "Network connection profile slots, in order of use",
            values_list=("1",), allow_empty=False, reboot_required=True),
        _rw(occ, "NetworkProfileConnectionAttempts", INT, "3", "Connection attempts before the next profile",
            min_limit=1, max_limit=100),
        _rw(occ, "OfflineThreshold", INT, "60", "Seconds offline after which all statuses are sent on reconnect",
            unit="s", min_limit=0, max_limit=86400),
        _rw(occ, "ResetRetries", INT, "3", "Tries of a reset that failed", min_limit=0, max_limit=10,
            aliases16=("ResetRetries",)),
        _rw(occ, "RetryBackOffRepeatTimes", INT, "5", "Times the reconnect wait is doubled", min_limit=0,
            max_limit=20),
        _rw(occ, "RetryBackOffRandomRange", INT, "10", "Most random seconds added to a reconnect wait", unit="s",
            min_limit=0, max_limit=3600),
        _rw(occ, "RetryBackOffWaitMinimum", INT, "3", "Seconds before the first reconnect attempt", unit="s",
            min_limit=0, max_limit=3600),
        _rw(occ, "WebSocketPingInterval", INT, "30", "Seconds between WebSocket pings, 0 for none", unit="s",
            min_limit=0, max_limit=3600, aliases16=("WebSocketPingInterval",)),
        _ro(occ, "FileTransferProtocols", MEMBERS, "", "File transfer protocols for logs and firmware (none yet)",
            values_list=FILE_TRANSFER_PROTOCOLS, constant=True),
        _ro(occ, "UnlockOnEVSideDisconnect", BOOL, "true", "The connector unlocks when the EV side is unplugged",
            constant=True, aliases16=("UnlockConnectorOnEVSideDisconnect",)),
    ]


def _reservations(available: bool, non_evse_specific: bool) -> list[VariableDef]:
    """ReservationCtrlr: whether reservations exist (configuration), are accepted, and may name no EVSE."""
    res = "ReservationCtrlr"
    return [
        _ro(res, "Available", BOOL, _b(available), "Reservations are supported", constant=True),
        _rw(res, "Enabled", BOOL, "true", "Reservations are accepted"),
        _ro(res, "NonEvseSpecific", BOOL, _b(non_evse_specific), "Reservations without an EVSE are supported",
            constant=True, aliases16=("ReserveConnectorZeroSupported",)),
    ]


def _authorization() -> list[VariableDef]:
    """AuthCtrlr, AuthCacheCtrlr and LocalAuthListCtrlr: online and offline authorization rules."""
    auth, cache, local = "AuthCtrlr", "AuthCacheCtrlr", "LocalAuthListCtrlr"
    return [
        _rw(auth, "Enabled", BOOL, "true", "Tokens are authorized before charging"),
        _rw(auth, "AuthorizeRemoteStart", BOOL, "true", "A remote start's token is authorized like a local one",
            aliases16=("AuthorizeRemoteTxRequests",)),
        _rw(auth, "LocalAuthorizeOffline", BOOL, "true", "Offline, tokens valid in the cache or local list start",
            aliases16=("LocalAuthorizeOffline",)),
        _rw(auth, "LocalPreAuthorize", BOOL, "false", "Online, tokens valid in the cache or local list start at once",
            aliases16=("LocalPreAuthorize",)),
        _rw(auth, "OfflineTxForUnknownIdEnabled", BOOL, "false", "Offline, unknown tokens may charge",
            aliases16=("AllowOfflineTxForUnknownId",)),
        _rw(auth, "DisableRemoteAuthorization", BOOL, "false", "Tokens are never sent to the CSMS for authorization"),
        _rw(cache, "Enabled", BOOL, "true", "The authorization cache is used",
            aliases16=("AuthorizationCacheEnabled",)),
        _ro(cache, "Available", BOOL, "true", "An authorization cache is present", constant=True),
        _rw(cache, "LifeTime", INT, "86400", "Seconds a cache entry stays valid after the CSMS last updated it",
            unit="s", min_limit=1),
        _ro(cache, "Storage", INT, "1048576", "Bytes the authorization cache may use", unit="B", constant=True),
        _rw(cache, "Policy", OPTIONS, "LRU", "Which entry a full cache drops", values_list=("LRU",)),
        _rw(cache, "DisablePostAuthorize", BOOL, "false", "Cached tokens not Accepted are not sent to the CSMS"),
        _rw(local, "Enabled", BOOL, "true", "The local authorization list is used",
            aliases16=("LocalAuthListEnabled",)),
        _ro(local, "Available", BOOL, "true", "A local authorization list is present", constant=True),
        _ro(local, "Entries", INT, "0", "Tokens in the local authorization list", max_limit=10000),
        _ro(local, "ItemsPerMessage", INT, "250", "Most tokens in one SendLocalList", constant=True,
            aliases16=("SendLocalListMaxLength",)),
        _ro(local, "BytesPerMessage", INT, str(BYTES_PER_MESSAGE), "Most bytes in one SendLocalList", constant=True),
        _ro(local, "Storage", INT, "1048576", "Bytes the local authorization list may use", unit="B", constant=True),
        _rw(local, "DisablePostAuthorize", BOOL, "false", "Listed tokens not Accepted are not sent to the CSMS"),
    ]


def _transactions() -> list[VariableDef]:
    """TxCtrlr: when a transaction starts and stops, and what an invalid token or an unplug does."""
    tx = "TxCtrlr"
    return [
        _rw(tx, "EVConnectionTimeOut", INT, "120", "Seconds to plug in after authorization", unit="s", min_limit=1,
            aliases16=("ConnectionTimeOut",)),
        _ro(tx, "StopTxOnEVSideDisconnect", BOOL, "true", "Unplugging on the EV side ends the transaction",
            constant=True, aliases16=("StopTransactionOnEVSideDisconnect",)),
        _rw(tx, "StopTxOnInvalidId", BOOL, "true", "A token found invalid after the start ends the transaction",
            aliases16=("StopTransactionOnInvalidId",)),
        _rw(tx, "MaxEnergyOnInvalidId", INT, "0", "Wh still delivered after the token was found invalid", unit="Wh",
            min_limit=0),
        _rw(tx, "TxStartPoint", MEMBERS, "PowerPathClosed", "What starts a transaction", values_list=TX_POINTS,
            allow_empty=False),
        _rw(tx, "TxStopPoint", MEMBERS, "EVConnected,Authorized", "What ends a transaction when it stops",
            values_list=TX_POINTS, allow_empty=False),
    ]


def _metering() -> list[VariableDef]:
    """SampledDataCtrlr and AlignedDataCtrlr: which measurands are sent, and how often."""
    sampled, aligned = "SampledDataCtrlr", "AlignedDataCtrlr"
    return [
        _ro(sampled, "Available", BOOL, "true", "Sampled meter data is supported", constant=True),
        _rw(sampled, "Enabled", BOOL, "true", "Sampled meter data is sent"),
        _rw(sampled, "TxStartedMeasurands", MEMBERS, "Energy.Active.Import.Register",
            "Measurands in the TransactionEvent Started", values_list=MEASURANDS),
        _rw(sampled, "TxUpdatedMeasurands", MEMBERS, "Energy.Active.Import.Register,Power.Active.Import,Current.Import",
            "Measurands sampled during a transaction", values_list=MEASURANDS, aliases16=("MeterValuesSampledData",)),
        _rw(sampled, "TxUpdatedInterval", INT, "60", "Seconds between samples during a transaction, 0 for none",
            unit="s", min_limit=0, max_limit=86400, aliases16=("MeterValueSampleInterval",)),
        _rw(sampled, "TxEndedMeasurands", MEMBERS, "Energy.Active.Import.Register",
            "Measurands in the TransactionEvent Ended", values_list=MEASURANDS, aliases16=("StopTxnSampledData",)),
        _rw(sampled, "TxEndedInterval", INT, "0", "Seconds between samples kept for the Ended event, 0: start and end",
            unit="s", min_limit=0, max_limit=86400),
        _ro(sampled, "SignReadings", BOOL, "false", "Meter values are signed", constant=True),
        _ro(sampled, "RegisterValuesWithoutPhases", BOOL, "true", "Energy registers are sent as totals only",
            constant=True),
        _ro(aligned, "Available", BOOL, "true", "Clock-aligned meter data is supported", constant=True),
        _rw(aligned, "Enabled", BOOL, "true", "Clock-aligned meter data is sent"),
        _rw(aligned, "Measurands", MEMBERS, "Energy.Active.Import.Register", "Measurands sampled on the clock",
            values_list=MEASURANDS, aliases16=("MeterValuesAlignedData",)),
        _rw(aligned, "Interval", INT, "0", "Seconds between clock-aligned samples from midnight, 0 for none", unit="s",
            min_limit=0, max_limit=86400, aliases16=("ClockAlignedDataInterval",)),
        _rw(aligned, "TxEndedMeasurands", MEMBERS, "Energy.Active.Import.Register",
            "Clock-aligned measurands in the TransactionEvent Ended", values_list=MEASURANDS,
            aliases16=("StopTxnAlignedData",)),
        _rw(aligned, "TxEndedInterval", INT, "0", "Seconds between aligned samples kept for the Ended event",
            unit="s", min_limit=0, max_limit=86400),
    ]


def _smart_charging() -> list[VariableDef]:
    """SmartChargingCtrlr (K01-K10): what charging profiles the station accepts, and how many are installed."""
    sc = "SmartChargingCtrlr"
    return [
        _ro(sc, "Available", BOOL, "true", "Smart charging is supported", constant=True),
        _rw(sc, "Enabled", BOOL, "true", "Charging profiles are accepted"),
        _ro(sc, "Entries", INT, "0", "Charging profiles installed", variable_instance="ChargingProfiles",
            max_limit=MAX_PROFILES),
        _rw(sc, "LimitChangeSignificance", DEC, "10", "Percent change of a limit worth reporting", unit="Percent",
            min_limit=0, max_limit=100),
        _ro(sc, "PeriodsPerSchedule", INT, str(MAX_PERIODS), "Most periods in a charging schedule", constant=True,
            aliases16=("ChargingScheduleMaxPeriods",)),
        _ro(sc, "ProfileStackLevel", INT, str(MAX_STACK_LEVEL), "Highest stackLevel of a charging profile",
            constant=True, aliases16=("ChargeProfileMaxStackLevel",)),
        _ro(sc, "RateUnit", MEMBERS, "A,W", "Units a charging schedule may use", values_list=("A", "W"),
            constant=True),
    ]


def _security(profile: int, password: str | None, station_id: str | None) -> list[VariableDef]:
    """SecurityCtrlr: the security profile, the Basic auth password (secret) and the station's identity."""
    sec = "SecurityCtrlr"
    found = [
        _ro(sec, "SecurityProfile", INT, str(profile), "0: none, 1: Basic auth on ws, 2: Basic auth on wss",
            min_limit=0, max_limit=3, aliases16=("SecurityProfile",)),
        VariableDef(sec, "BasicAuthPassword", STR, Mutability.WRITE_ONLY, password,
                    "Password for HTTP Basic authentication at the CSMS", min_limit=16, max_limit=40,
                    persistent=True, secret=True, aliases16=("AuthorizationKey",)),
        _rw(sec, "OrganizationName", STR, "", "The CSO's organization name, for certificates", max_limit=64),
        _ro(sec, "CertificateEntries", INT, "0", "Installed certificates"),
    ]
    if station_id is not None:
        found.append(_ro(sec, "Identity", STR, station_id, "The station's identity at the CSMS", max_limit=48,
                         constant=True))
    return found


def _clock() -> list[VariableDef]:
    """ClockCtrlr: the current time (the station binds a live reader) and where it comes from."""
    clock = "ClockCtrlr"
    return [
        _ro(clock, "DateTime", DATE, "1970-01-01T00:00:00Z", "The station's current time (live)"),
        _rw(clock, "TimeSource", SEQUENCE, ",".join(TIME_SOURCES), "Clock sources, in order of preference",
            values_list=TIME_SOURCES, allow_empty=False),
    ]


def _station(vendor: str, model: str, serial: str | None, firmware: str | None, phases: str) -> list[VariableDef]:
    """ChargingStation (and Controller's firmware version): status, identity and supply."""
    cs = "ChargingStation"
    found = [
        _ro(cs, "AvailabilityState", OPTIONS, "Available", "The station's status", values_list=AVAILABILITY_STATES),
        _ro(cs, "Available", BOOL, "true", "The station is present"),
        _ro(cs, "Problem", BOOL, "false", "The station has a fault"),
        _ro(cs, "VendorName", STR, vendor, "The station's manufacturer", max_limit=50, constant=True),
        _ro(cs, "Model", STR, model, "The station's model", max_limit=20, constant=True),
        _ro(cs, "SupplyPhases", INT, phases, "Phases the station is connected to", min_limit=0, max_limit=3,
            constant=True),
    ]
    if serial is not None:
        found.append(_ro(cs, "SerialNumber", STR, serial, "The station's serial number", max_limit=25, constant=True))
    if firmware is not None:
        found.append(_ro("Controller", "FirmwareVersion", STR, firmware, "The controller's firmware version",
                         max_limit=50, constant=True))
    return found


def _evse(evse_id: int, connectors: Sequence[tuple[int, str]], phases: str, max_power_w: float) -> list[VariableDef]:
    """The EVSE component of ``evse_id`` and the Connector components of its connectors."""
    at = {"evse_id": evse_id}
    found = [
        _ro("EVSE", "AvailabilityState", OPTIONS, "Available", "The EVSE's status", values_list=AVAILABILITY_STATES,
            **at),
        _ro("EVSE", "Available", BOOL, "true", "The EVSE is present", **at),
        _ro("EVSE", "Problem", BOOL, "false", "The EVSE has a fault", **at),
        _ro("EVSE", "Power", DEC, "0", "Power delivered now (live)", unit="W", min_limit=0, max_limit=max_power_w,
            **at),
        _ro("EVSE", "SupplyPhases", INT, phases, "Phases the EVSE can use", min_limit=0, max_limit=3, constant=True,
            **at),
    ]
    for connector_id, connector_type in connectors:
        on = {"evse_id": evse_id, "connector_id": connector_id}
        found += [
            _ro("Connector", "AvailabilityState", OPTIONS, "Available", "The connector's status",
                values_list=AVAILABILITY_STATES, **on),
            _ro("Connector", "Available", BOOL, "true", "The connector is present", **on),
            _ro("Connector", "ConnectorType", STR, connector_type, "The connector's type (ConnectorEnumType)",
                constant=True, **on),
            _ro("Connector", "SupplyPhases", INT, phases, "Phases the connector can use", min_limit=0, max_limit=3,
                constant=True, **on),
        ]
    return found


class ReportBuilder:
    """A GetBaseReport's NotifyReport parts, split by DeviceDataCtrlr ItemsPerMessage/BytesPerMessage[GetReport]."""

    def __init__(self, store: VariableStore) -> None:
        self.store = store

    def parts(self, report_base: str) -> list[tuple[list[dict[str, Any]], bool]] | None:
        """[(reportData, tbc)] in order; None for a report base this station does not know, [] when empty."""
        try:
            entries = self.store.report(ReportBase(report_base))
        except ValueError:
            return None
        items = self.store.int_value("DeviceDataCtrlr", "ItemsPerMessage", variable_instance="GetReport")
        budget = self.store.int_value("DeviceDataCtrlr", "BytesPerMessage", variable_instance="GetReport")
        chunks: list[list[dict[str, Any]]] = []
        size = 0
        for entry in entries:
            length = len(json.dumps(entry, separators=(",", ":"))) + 1
            if not chunks or len(chunks[-1]) >= items or size + length > budget - _ENVELOPE_BYTES:
                chunks.append([])
                size = 0
            chunks[-1].append(entry)
            size += length
        return [(chunk, n < len(chunks) - 1) for n, chunk in enumerate(chunks)]
