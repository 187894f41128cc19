"""The configuration store's OCPP 2.0.1 JSON shapes: base reports, GetVariables/SetVariables requests and results.

Plain dicts with OCPP's camelCase keys (the ``ocpp`` library sends them unchanged, and its snake_case arguments are
read too); the 1.6 layer has no use for them. Which variables a base report lists is ``in_report``. A report entry
is NotifyReportRequest's ReportDataType: component {name, instance?, evse {id, connectorId?}?}, variable {name,
instance?}, one Actual variableAttribute {type, value?, mutability, persistent, constant} and
variableCharacteristics {dataType, unit?, minLimit?, maxLimit?, valuesList?, supportsMonitoring: false}. A
WriteOnly (hence secret) variable is listed without its value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controller.ocpp.station.variable_types import (
    ACTUAL,
    REPORTING_VALUE_SIZE,
    GetResult,
    Mutability,
    Reason,
    ReportBase,
    SetResult,
    VariableDef,
    VariableKey,
)

REASON_CODE_MAX = 20  # StatusInfoType.reasonCode maxLength
ADDITIONAL_INFO_MAX = 512  # StatusInfoType.additionalInfo maxLength

# SummaryInventory, after ReportBaseEnumType's description: the availability of the station, its EVSEs and
# connectors (AvailabilityState), and the components in an abnormal state (these variables when true)
SUMMARY_STATE = "AvailabilityState"
SUMMARY_PROBLEMS = frozenset({"problem", "tripped", "overload", "fallback"})


def in_report(definition: VariableDef, base: ReportBase, value: str | None) -> bool:
    """Whether ``definition`` (currently ``value``) belongs in a base report of kind ``base``.

    FullInventory: every variable. ConfigurationInventory: those the CSMS may set (ReadWrite, WriteOnly).
    SummaryInventory: every AvailabilityState, and Problem/Tripped/Overload/Fallback variables that are true.
    """
    if base is ReportBase.FULL_INVENTORY:
        return True
    if base is ReportBase.CONFIGURATION_INVENTORY:
        return definition.mutability in (Mutability.READ_WRITE, Mutability.WRITE_ONLY)
    name = definition.variable.casefold()
    return name == SUMMARY_STATE.casefold() or (name in SUMMARY_PROBLEMS and value == "true")


def report_entry(definition: VariableDef, value: str | None) -> dict[str, Any]:
    """The ReportDataType of ``definition`` with its current ``value`` (left out when WriteOnly or None)."""
    component: dict[str, Any] = {"name": definition.component}
    if definition.component_instance is not None:
        component["instance"] = definition.component_instance
    if definition.evse_id is not None:
        evse: dict[str, Any] = {"id": definition.evse_id}
        if definition.connector_id is not None:
            evse["connectorId"] = definition.connector_id
        component["evse"] = evse
    variable: dict[str, Any] = {"name": definition.variable}
    if definition.variable_instance is not None:
        variable["instance"] = definition.variable_instance
    attribute: dict[str, Any] = {"type": ACTUAL}
    if definition.readable and value is not None:
        attribute["value"] = value[:REPORTING_VALUE_SIZE]
    attribute["mutability"] = definition.mutability.value
    attribute["persistent"] = definition.persistent or definition.constant
    attribute["constant"] = definition.constant
    characteristics: dict[str, Any] = {"dataType": definition.data_type.value}
    if definition.unit is not None:
        characteristics["unit"] = definition.unit
    if definition.min_limit is not None:
        characteristics["minLimit"] = _json_number(definition.min_limit)
    if definition.max_limit is not None:
        characteristics["maxLimit"] = _json_number(definition.max_limit)
    if definition.values_list:
        characteristics["valuesList"] = ",".join(definition.values_list)
    characteristics["supportsMonitoring"] = False
    return {
        "component": component,
        "variable": variable,
        "variableAttribute": [attribute],
        "variableCharacteristics": characteristics,
    }


def _json_number(limit: float) -> int | float:
    """60 rather than 60.0 on the wire."""
    return int(limit) if float(limit).is_integer() else limit


def request_key(request: Mapping[str, Any]) -> VariableKey:
    """The key a GetVariableData/SetVariableData names: component {name, instance?, evse?}, variable {name, ...}."""
    component = _mapping(request.get("component"))
    variable = _mapping(request.get("variable"))
    evse = _mapping(component.get("evse"))
    return VariableKey(
        str(component.get("name", "")),
        str(variable.get("name", "")),
        _optional_str(component.get("instance")),
        _optional_int(evse.get("id")),
        _optional_int(_field(evse, "connector_id", "connectorId")),
        _optional_str(variable.get("instance")),
    )


def request_attribute(request: Mapping[str, Any]) -> str:
    """The requested attributeType, Actual when absent (its schema default)."""
    return str(_field(request, "attribute_type", "attributeType") or ACTUAL)


def request_value(request: Mapping[str, Any]) -> object:
    """A SetVariableData's attributeValue (checked by the store, whatever its type)."""
    return _field(request, "attribute_value", "attributeValue")


def get_result(key: VariableKey, attribute: str, result: GetResult) -> dict[str, Any]:
    """A GetVariableResultType for ``result``, echoing the requested component, variable and attribute."""
    entry: dict[str, Any] = {"attributeStatus": result.status.value, "attributeType": attribute}
    if result.value is not None:
        entry["attributeValue"] = result.value[:REPORTING_VALUE_SIZE]
    entry.update(_echo(key))
    if result.reason is not None:
        entry["attributeStatusInfo"] = status_info(result.reason, result.info)
    return entry


def set_result(key: VariableKey, attribute: str, result: SetResult) -> dict[str, Any]:
    """A SetVariableResultType for ``result``, echoing the requested component, variable and attribute."""
    entry: dict[str, Any] = {"attributeType": attribute, "attributeStatus": result.status.value}
    entry.update(_echo(key))
    if result.reason is not None:
        entry["attributeStatusInfo"] = status_info(result.reason, result.info)
    return entry


def status_info(reason: Reason, info: str | None) -> dict[str, str]:
    """A StatusInfoType within its length limits."""
    entry = {"reasonCode": reason.value[:REASON_CODE_MAX]}
    if info:
        entry["additionalInfo"] = info[:ADDITIONAL_INFO_MAX]
    return entry


def _echo(key: VariableKey) -> dict[str, Any]:
    """The component and variable of a result, as the request named them."""
    component: dict[str, Any] = {"name": key.component}
    if key.component_instance is not None:
        component["instance"] = key.component_instance
    if key.evse_id is not None:
        component["evse"] = {"id": key.evse_id}
        if key.connector_id is not None:
            component["evse"]["connectorId"] = key.connector_id
    variable: dict[str, Any] = {"name": key.variable}
    if key.variable_instance is not None:
        variable["instance"] = key.variable_instance
    return {"component": component, "variable": variable}


def _field(mapping: Mapping[str, Any], snake: str, camel: str) -> Any:
    """A field under its snake_case (the ocpp library's) or camelCase (the wire's) name."""
    return mapping.get(snake, mapping.get(camel))


def _mapping(value: object) -> Mapping[str, Any]:
    """``value`` if it is a mapping, else an empty one (a malformed request names nothing known)."""
    return value if isinstance(value, Mapping) else {}


def _optional_str(value: object) -> str | None:
    """A name or instance, None when absent."""
    return None if value is None else str(value)


def _optional_int(value: object) -> int | None:
    """An EVSE or connector id, None when absent or not an integer."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None
