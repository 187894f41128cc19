"""OCPP 1.6 configuration keys: GetConfiguration and ChangeConfiguration on the station's configuration store.

Every 1.6 key the station implements is a variable of the one VariableStore (persisted, validated): most are the
2.0.1 device model's variables under their 1.6 names (``VariableDef.aliases16``, e.g. MeterValueSampleInterval =
SampledDataCtrlr.TxUpdatedInterval); the keys 1.6 has and 2.0.1 does not (NumberOfConnectors,
SupportedFeatureProfiles, GetConfigurationMaxKeys, ConnectorPhaseRotation, LocalAuthListMaxLength, the
*MaxLength keys, the SmartCharging keys ChargingScheduleAllowedChargingRateUnit and MaxChargingProfilesInstalled;
ChargeProfileMaxStackLevel and ChargingScheduleMaxPeriods are SmartChargingCtrlr's variables) are defined here
(``definitions16``) under a component of their own, ``OCPP16``.

ChangeConfiguration: an unknown key is NotSupported, a read-only one Rejected, a value its definition refuses
Rejected (and a measurand the EVSEs have no reading of: only Energy.Active.Import.Register, Power.Active.Import and
Current.Import are sampled), one that needs a restart RebootRequired; Accepted once stored. As 1.6 CSMSs write
them, booleans are taken in any case (``True``) and comma-separated lists with spaces after the commas.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from controller.ocpp.station.charging_profiles import MAX_PROFILES
from controller.ocpp.station.variable_types import (
    LIST_TYPES,
    DataType,
    Mutability,
    SetStatus,
    VariableDef,
)
from controller.ocpp.station.variables import VariableStore
from controller.ocpp.v16.transactions import SAMPLED_MEASURANDS

COMPONENT = "OCPP16"
GET_CONFIGURATION_MAX_KEYS = 100
LOCAL_AUTH_LIST_MAX_LENGTH = 10_000  # LocalAuthListCtrlr.Entries' limit (the store's bound)
KEY_MAX = 50  # KeyValue.key maxLength
VALUE_MAX = 500  # KeyValue.value and ChangeConfiguration.value maxLength
PHASE_ROTATIONS = ("NotApplicable", "Unknown", "RST", "RTS", "SRT", "STR", "TRS", "TSR")
CORE_PROFILES = ("Core", "LocalAuthListManagement")
RESERVATION_PROFILE = "Reservation"
SMART_CHARGING_PROFILE = "SmartCharging"
TRIGGER_PROFILE = "RemoteTrigger"
RATE_UNITS_16 = {"Current": "A", "Power": "W"}  # ChargingScheduleAllowedChargingRateUnit's spelling of A and W
MEASURAND_KEYS = ("MeterValuesSampledData", "MeterValuesAlignedData", "StopTxnSampledData", "StopTxnAlignedData")
_SET_STATUS = {SetStatus.ACCEPTED: "Accepted", SetStatus.REBOOT_REQUIRED: "RebootRequired"}


def feature_profiles(*, reservations: bool) -> tuple[str, ...]:
    """SupportedFeatureProfiles: Core, LocalAuthListManagement, Reservation (when configured), SmartCharging,
    RemoteTrigger."""
    return (*CORE_PROFILES, *((RESERVATION_PROFILE,) if reservations else ()), SMART_CHARGING_PROFILE, TRIGGER_PROFILE)


def definitions16(base: Sequence[VariableDef], *, connectors: int, reservations: bool) -> list[VariableDef]:
    """The 1.6-only keys of a station with ``connectors`` connectors, next to the device model ``base``."""

    def ro(name: str, data_type: DataType, value: str, description: str) -> VariableDef:
        """A read-only key whose value never changes while the station runs."""
        return VariableDef(COMPONENT, name, data_type, Mutability.READ_ONLY, value, description, constant=True,
                           aliases16=(name,))

    rotation = ",".join(f"{n}.Unknown" for n in range(connectors + 1))
    found = [
        ro("NumberOfConnectors", DataType.INTEGER, str(connectors), "Connectors of the station"),
        ro("SupportedFeatureProfiles", DataType.STRING, ",".join(feature_profiles(reservations=reservations)),
           "Feature profiles the station supports"),
        ro("GetConfigurationMaxKeys", DataType.INTEGER, str(GET_CONFIGURATION_MAX_KEYS),
           "Most keys one GetConfiguration may ask for"),
        VariableDef(COMPONENT, "ConnectorPhaseRotation", DataType.STRING, Mutability.READ_WRITE, rotation,
                    "How each connector is wired to the grid's phases", max_limit=VALUE_MAX, persistent=True,
                    allow_empty=False, aliases16=("ConnectorPhaseRotation",)),
        ro("ConnectorPhaseRotationMaxLength", DataType.INTEGER, str(connectors + 1),
           "Most entries of ConnectorPhaseRotation"),
        ro("LocalAuthListMaxLength", DataType.INTEGER, str(LOCAL_AUTH_LIST_MAX_LENGTH),
           "Most tokens in the local authorization list"),
        ro("ChargingScheduleAllowedChargingRateUnit", DataType.STRING, ",".join(RATE_UNITS_16),
           "Units a charging schedule may use (Current: A, Power: W)"),
        ro("MaxChargingProfilesInstalled", DataType.INTEGER, str(MAX_PROFILES),
           "Most charging profiles installed at once"),
    ]
    for key in MEASURAND_KEYS:
        known = next((d for d in base if key in d.aliases16), None)
        if known is not None:
            sampled = [m for m in known.values_list if m in SAMPLED_MEASURANDS]
            found.append(ro(f"{key}MaxLength", DataType.INTEGER, str(len(sampled)), f"Most measurands in {key}"))
    return found


def get_configuration(variables: VariableStore, keys: Sequence[str] | None) -> dict[str, Any]:
    """GetConfiguration: every key (none asked) or the asked ones, and the unknown ones; WriteOnly values left out."""
    known, unknown = variables.key_values_16(keys or None)
    entries = []
    for entry in known:
        item: dict[str, Any] = {"key": entry.key[:KEY_MAX], "readonly": entry.readonly}
        if entry.value is not None:
            item["value"] = entry.value[:VALUE_MAX]
        entries.append(item)
    answer: dict[str, Any] = {"configuration_key": entries}
    if unknown:
        answer["unknown_key"] = [key[:KEY_MAX] for key in unknown]
    return answer


def change_configuration(variables: VariableStore, key: str, value: str) -> str:
    """ChangeConfiguration's status for setting 1.6 ``key`` to ``value``."""
    definition = variables.by_alias(key)
    if definition is None:
        return "NotSupported"
    if definition.mutability is Mutability.READ_ONLY:
        return "Rejected"
    value = _as_16_writes_it(definition, value)
    if key.casefold() in _MEASURAND_KEYS_FOLDED and any(m not in SAMPLED_MEASURANDS for m in value.split(",") if m):
        return "Rejected"  # a measurand the station has no reading of (e.g. Voltage, SoC, Current.Offered)
    if definition.variable == "ConnectorPhaseRotation":
        rotation = _phase_rotation(value, variables)
        if rotation is None:
            return "Rejected"
        value = rotation
    result = variables.set(definition.component, definition.variable, value,
                           component_instance=definition.component_instance, evse_id=definition.evse_id,
                           connector_id=definition.connector_id, variable_instance=definition.variable_instance)
    return _SET_STATUS.get(result.status, "Rejected")


def _as_16_writes_it(definition: VariableDef, value: str) -> str:
    """A 1.6 value in the store's strict spelling: booleans in lower case, list members without spaces."""
    if definition.data_type is DataType.BOOLEAN and value.strip().lower() in ("true", "false"):
        return value.strip().lower()
    if definition.data_type in LIST_TYPES:
        return ",".join(member.strip() for member in value.split(",")) if value.strip() else ""
    return value


_MEASURAND_KEYS_FOLDED = frozenset(key.casefold() for key in MEASURAND_KEYS)
_ROTATION = re.compile(r"([0-9]+)\.([A-Za-z]+)")


def _phase_rotation(value: str, variables: VariableStore) -> str | None:
    """ConnectorPhaseRotation without spaces, if it is ``N.RST`` entries (connector 0..NumberOfConnectors, each
    once, a known rotation); None otherwise."""
    connectors = variables.int_value(COMPONENT, "NumberOfConnectors")
    members = [m.strip() for m in value.split(",")]
    seen: set[int] = set()
    for member in members:
        match = _ROTATION.fullmatch(member)
        if match is None or match.group(2) not in PHASE_ROTATIONS:
            return None
        number = int(match.group(1))
        if number > connectors or number in seen:
            return None
        seen.add(number)
    return ",".join(members)
