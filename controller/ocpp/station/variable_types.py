"""The configuration store's vocabulary: variable definitions, keys, statuses and results, version neutral.

The names and spellings are OCPP 2.0.1's device model (DataEnumType, MutabilityEnumType, GetVariableStatusEnumType,
SetVariableStatusEnumType, ReportBaseEnumType), written out as our own str enums so that this package never imports
the ``ocpp`` library; the 1.6 layer reaches the same settings through ``VariableDef.aliases16``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

ACTUAL = "Actual"  # the only attribute type the store supports (AttributeEnumType)
NAME_MAX = 50  # ComponentType.name/instance and VariableType.name/instance maxLength
UNIT_MAX = 16  # VariableCharacteristicsType.unit maxLength
VALUES_LIST_MAX = 1000  # VariableCharacteristicsType.valuesList maxLength
CONFIGURATION_VALUE_SIZE = 1000  # SetVariableDataType.attributeValue maxLength: the longest value a set may carry
REPORTING_VALUE_SIZE = 2500  # GetVariableResultType.attributeValue / VariableAttributeType.value maxLength


class DataType(StrEnum):
    """A variable's data type (DataEnumType of OCPP 2.0.1)."""

    STRING = "string"
    DECIMAL = "decimal"
    INTEGER = "integer"
    DATE_TIME = "dateTime"
    BOOLEAN = "boolean"
    OPTION_LIST = "OptionList"
    SEQUENCE_LIST = "SequenceList"
    MEMBER_LIST = "MemberList"


LIST_TYPES = frozenset({DataType.OPTION_LIST, DataType.SEQUENCE_LIST, DataType.MEMBER_LIST})


class Mutability(StrEnum):
    """Who may read and write a variable (MutabilityEnumType of OCPP 2.0.1)."""

    READ_ONLY = "ReadOnly"
    WRITE_ONLY = "WriteOnly"
    READ_WRITE = "ReadWrite"


class GetStatus(StrEnum):
    """The answer to reading one variable (GetVariableStatusEnumType)."""

    ACCEPTED = "Accepted"
    REJECTED = "Rejected"
    UNKNOWN_COMPONENT = "UnknownComponent"
    UNKNOWN_VARIABLE = "UnknownVariable"
    NOT_SUPPORTED_ATTRIBUTE_TYPE = "NotSupportedAttributeType"


class SetStatus(StrEnum):
    """The answer to writing one variable (SetVariableStatusEnumType)."""

    ACCEPTED = "Accepted"
    REJECTED = "Rejected"
    UNKNOWN_COMPONENT = "UnknownComponent"
    UNKNOWN_VARIABLE = "UnknownVariable"
    NOT_SUPPORTED_ATTRIBUTE_TYPE = "NotSupportedAttributeType"
    REBOOT_REQUIRED = "RebootRequired"


class ReportBase(StrEnum):
    """Which variables a base report lists (ReportBaseEnumType); see ``variable_report.in_report``."""

    CONFIGURATION_INVENTORY = "ConfigurationInventory"
    FULL_INVENTORY = "FullInventory"
    SUMMARY_INVENTORY = "SummaryInventory"


class Reason(StrEnum):
    """StatusInfo reason codes the store answers with (OCPP 2.0.1 Part 2, "Reason codes"; at most 20 characters)."""

    INVALID_VALUE = "InvalidValue"  # not of the data type, or not one of the values list
    VALUE_OUT_OF_RANGE = "ValueOutOfRange"  # a number outside minLimit..maxLimit (or outside 32 bits for integer)
    TOO_LARGE_ELEMENT = "TooLargeElement"  # a string or list longer than maxLimit or the configuration value size
    READ_ONLY = "ReadOnly"  # a set of a ReadOnly variable
    WRITE_ONLY = "WriteOnly"  # a get of a WriteOnly or secret variable
    UNSUPPORTED_PARAM = "UnsupportedParam"  # an attribute type other than Actual
    INTERNAL_ERROR = "InternalError"  # the value could not be written to disk


@dataclass(frozen=True, slots=True)
class VariableKey:
    """Where a variable lives: component (instance, EVSE, connector) and variable (instance); None = absent."""

    component: str
    variable: str
    component_instance: str | None = None
    evse_id: int | None = None
    connector_id: int | None = None
    variable_instance: str | None = None

    def folded(self) -> tuple[str, str, int, int, str, str]:
        """The lookup key: OCPP says component and variable names are case-insensitive, so compare them folded."""
        return (
            self.component.casefold(),
            (self.component_instance or "").casefold(),
            self.evse_id or 0,
            self.connector_id or 0,
            self.variable.casefold(),
            (self.variable_instance or "").casefold(),
        )

    def component_folded(self) -> tuple[str, str, int, int]:
        """The component part of ``folded``: tells UnknownComponent from UnknownVariable."""
        folded = self.folded()
        return folded[0], folded[1], folded[2], folded[3]

    def label(self) -> str:
        """A readable name for logs and errors, e.g. ``EVSE@1/1.AvailabilityState`` or ``X(inst).Y[inst]``."""
        component = self.component + (f"({self.component_instance})" if self.component_instance else "")
        if self.evse_id is not None:
            component += f"@{self.evse_id}" + (f"/{self.connector_id}" if self.connector_id is not None else "")
        variable = self.variable + (f"[{self.variable_instance}]" if self.variable_instance else "")
        return f"{component}.{variable}"


@dataclass(frozen=True, slots=True)
class VariableDef:
    """One variable the station implements: where it lives, its characteristics, default and behaviour.

    ``default`` is the OCPP string form; None only for a WriteOnly variable that has no value until one is set
    (e.g. a password that was never configured). For string data ``min_limit``/``max_limit`` bound the length
    (``max_limit`` as VariableCharacteristics says, ``min_limit`` as EVerest does); for the list types
    ``max_limit`` bounds the length of the comma-separated value. ``persistent`` values are stored in SQLite and
    survive restarts; ``constant`` ones never change at runtime (reported as persistent and constant).
    ``reboot_required``: a set is stored and answered RebootRequired, the value takes effect after a restart.
    ``secret`` (always WriteOnly): never returned by get or reports, never logged (no WriteOnly value is logged).
    ``allow_empty``: whether "" is a value (a list with no member, an empty string). ``aliases16``: the OCPP 1.6
    configuration keys of the same setting.
    """

    component: str
    variable: str
    data_type: DataType
    mutability: Mutability
    default: str | None
    description: str
    component_instance: str | None = None
    evse_id: int | None = None
    connector_id: int | None = None
    variable_instance: str | None = None
    unit: str | None = None
    min_limit: float | None = None
    max_limit: float | None = None
    values_list: tuple[str, ...] = ()
    persistent: bool = False
    constant: bool = False
    reboot_required: bool = False
    secret: bool = False
    allow_empty: bool = True
    aliases16: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        """Refuse a definition that could not be reported or validated: a programming error, said at start."""
        key = self.key
        where = key.label()
        for text in (self.component, self.variable, self.component_instance, self.variable_instance):
            if text is not None and not 0 < len(text) <= NAME_MAX:
                raise ValueError(f"{where}: names and instances are 1..{NAME_MAX} characters, got {text!r}")
        if self.connector_id is not None and self.evse_id is None:
            raise ValueError(f"{where}: a connector id needs an EVSE id")
        if any(i is not None and i < 1 for i in (self.evse_id, self.connector_id)):
            raise ValueError(f"{where}: EVSE and connector ids are > 0")
        if self.unit is not None and not 0 < len(self.unit) <= UNIT_MAX:
            raise ValueError(f"{where}: a unit is 1..{UNIT_MAX} characters")
        if (self.data_type in LIST_TYPES) != bool(self.values_list):
            raise ValueError(f"{where}: a values list belongs to, and is needed by, the list data types only")
        if len(",".join(self.values_list)) > VALUES_LIST_MAX or any(
            not v or "," in v for v in self.values_list
        ):
            raise ValueError(f"{where}: values list members are non-empty, without commas, {VALUES_LIST_MAX} in all")
        if self.default is None and self.mutability is not Mutability.WRITE_ONLY:
            raise ValueError(f"{where}: only a WriteOnly variable may start without a value")
        if self.secret and self.mutability is not Mutability.WRITE_ONLY:
            raise ValueError(f"{where}: a secret is WriteOnly (a report may omit only a WriteOnly value)")
        if self.constant and self.mutability is not Mutability.READ_ONLY:
            raise ValueError(f"{where}: a constant is ReadOnly")

    @property
    def key(self) -> VariableKey:
        """This variable's key."""
        return VariableKey(
            self.component, self.variable, self.component_instance, self.evse_id, self.connector_id,
            self.variable_instance,
        )

    @property
    def readable(self) -> bool:
        """Whether get, reports and logs may show the value (not WriteOnly, hence not secret)."""
        return self.mutability is not Mutability.WRITE_ONLY


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a value is refused: an OCPP StatusInfo (reasonCode, additionalInfo); never contains the value."""

    reason: Reason
    info: str


@dataclass(frozen=True, slots=True)
class GetResult:
    """The answer to a get: status, the value when Accepted, and the StatusInfo when not."""

    status: GetStatus
    value: str | None = None
    reason: Reason | None = None
    info: str | None = None


@dataclass(frozen=True, slots=True)
class SetResult:
    """The answer to a set: status, and the StatusInfo when not Accepted (or why a reboot is needed)."""

    status: SetStatus
    reason: Reason | None = None
    info: str | None = None


@dataclass(frozen=True, slots=True)
class KeyValue16:
    """One OCPP 1.6 GetConfiguration entry: key, readonly, value (None for a WriteOnly/secret setting)."""

    key: str
    readonly: bool
    value: str | None
