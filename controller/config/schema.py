"""The shape of the configuration file: pydantic models of its sections and one-line error wording.

Every table forbids unknown keys and takes TOML values strictly (no "1" for 1, no 1 for true).
The GPIO driver sections are not written out here: their models are derived from the driver
dataclasses (``drivers.gpio.config``), so a field added there is accepted here without an edit.
"""

from __future__ import annotations

import dataclasses
import json
import re
import types
import typing
from collections.abc import Mapping
from datetime import date, datetime, time
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainValidator, ValidationError, create_model
from pydantic_core import PydanticCustomError

from controller.core.types import ConnectorType
from drivers.gpio.config import DEFAULT_STATUS_COLORS, RGB, ContactorConfig, IndicatorConfig, LockConfig, PlugConfig
from drivers.interfaces import StatusColor

EVSE_IDS = range(1, 10_001)  # valid EVSE ids (OCPP: from 1)
STRICT = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=True)
DRIVER_SECTIONS: Mapping[str, type[Any]] = {
    "contactor": ContactorConfig,
    "lock": LockConfig,
    "plug": PlugConfig,
    "indicator": IndicatorConfig,
}

# ---------------------------------------------------------------- GPIO pin names

BCM_PINS = range(28)  # GPIO0..GPIO27 on the 40-pin header
# Physical pin of the 40-pin header (BOARDnn, J8:nn) -> BCM number, or what the pin is instead.
HEADER_40: Mapping[int, int | str] = {
    1: "3V3 power", 2: "5V power", 3: 2, 4: "5V power", 5: 3, 6: "ground", 7: 4, 8: 14, 9: "ground", 10: 15,
    11: 17, 12: 18, 13: 27, 14: "ground", 15: 22, 16: 23, 17: "3V3 power", 18: 24, 19: 10, 20: "ground",
    21: 9, 22: 25, 23: 11, 24: 8, 25: "ground", 26: 7, 27: 0, 28: 1, 29: 5, 30: "ground",
    31: 6, 32: 12, 33: 13, 34: "ground", 35: 19, 36: 16, 37: 26, 38: 20, 39: "ground", 40: 21,
}
_BCM_NAME = re.compile(r"(?:GPIO|BCM)?(\d{1,2})", re.IGNORECASE)
_PHYSICAL_NAME = re.compile(r"(?:BOARD|J8:)(\d{1,2})", re.IGNORECASE)
_USE_BCM = 'use GPIOnn (BCM numbering, e.g. "GPIO17")'


def is_pin_field(name: str) -> bool:
    """Whether a driver option names a GPIO pin (``pin``, ``coil_pin``, ...)."""
    return name == "pin" or name.endswith("_pin")


def normalize_pin(value: object) -> str:
    """The canonical gpiozero name ("GPIO17") of 17, "17", "GPIO17", "BCM17", "BOARD11" or "J8:11".

    Physical (BOARD/J8) numbers are those of the 40-pin header of every Pi since the B+.
    Raises ValueError saying what is wrong; wiringPi numbers are refused, they differ by board.
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f'expected a GPIO pin ("GPIO17" or 17), got {describe_value(value)}')
    text = str(value)
    if match := _BCM_NAME.fullmatch(text):
        number = int(match.group(1))
        if number not in BCM_PINS:
            raise ValueError(f"GPIO{number} does not exist on the 40-pin header (GPIO0..GPIO27)")
        return f"GPIO{number}"
    if match := _PHYSICAL_NAME.fullmatch(text):
        where = HEADER_40.get(int(match.group(1)))
        if where is None:
            raise ValueError(f"{text} is not a pin of the 40-pin header (1..40); {_USE_BCM}")
        if isinstance(where, str):
            raise ValueError(f"{text} is a {where} pin, not a GPIO; {_USE_BCM}")
        return f"GPIO{where}"
    if text.upper().startswith("WPI"):
        raise ValueError(f"wiringPi numbers like {json.dumps(text)} are not accepted; {_USE_BCM}")
    raise ValueError(f"{json.dumps(text)} is not a GPIO pin name; {_USE_BCM}")


def _pin(value: Any) -> str:
    try:
        return normalize_pin(value)
    except ValueError as exc:
        raise PydanticCustomError("pin", str(exc)) from None


def _pull_up(value: Any) -> bool | None:
    """Input pull: true internal pull-up, false pull-down, "external" none inside the Pi (None)."""
    if isinstance(value, bool) or value is None:
        return value
    if value == "external":
        return None
    raise PydanticCustomError(
        "pull_up",
        'expected true (internal pull-up), false (internal pull-down) or "external" (an external '
        f"resistor), got {describe_value(value)}",
    )


def _colors(value: Any) -> dict[StatusColor, RGB]:
    """Status colours over the defaults: ``{ amber = [1.0, 0.75, 0.0] }``, components in [0, 1]."""
    if not isinstance(value, dict):
        raise PydanticCustomError("colors", f"expected a table of colours, got {describe_value(value)}")
    colors = dict(DEFAULT_STATUS_COLORS)
    names = ", ".join(color.value for color in StatusColor)
    for name, rgb in value.items():
        if name not in {color.value for color in StatusColor}:
            raise PydanticCustomError("colors", f"unknown colour {describe_key(name)}; colours: {names}")
        ok = isinstance(rgb, list | tuple) and len(rgb) == 3 and all(
            isinstance(c, int | float) and not isinstance(c, bool) and 0 <= c <= 1 for c in rgb)
        if not ok:
            raise PydanticCustomError(
                "colors", f"{name}: expected [r, g, b] with each in [0, 1], got {describe_value(rgb)}")
        colors[StatusColor(name)] = (float(rgb[0]), float(rgb[1]), float(rgb[2]))
    return colors


def _connector_type(value: Any) -> ConnectorType:
    valid = [t.value for t in ConnectorType]
    if isinstance(value, str) and value in valid:
        return ConnectorType(value)
    hint = ""
    if isinstance(value, str):
        close = [t for t in valid if t.lower() == value.lower() or t[1:].lower() == value.lower()]
        hint = f" (did you mean {json.dumps(close[0])}?)" if close else ""
    raise PydanticCustomError(
        "connector_type", f"unknown connector type {describe_value(value)}{hint}; valid: {', '.join(valid)}")


def _one_of(*choices: int) -> AfterValidator:
    def check(value: int) -> int:
        if value not in choices:
            expected = " or ".join(map(str, choices))
            raise PydanticCustomError("choice", f"expected {expected}, got {describe_value(value)}")
        return value

    return AfterValidator(check)


Pin = Annotated[str, PlainValidator(_pin)]
PullUp = Annotated[bool | None, PlainValidator(_pull_up)]
Colors = Annotated[dict[StatusColor, RGB], PlainValidator(_colors)]
ConnectorTypeField = Annotated[ConnectorType, PlainValidator(_connector_type)]
Seconds = Annotated[float, Field(ge=0, le=3600)]
PositiveSeconds = Annotated[float, Field(gt=0, le=3600)]

# ---------------------------------------------------------------- sections


class ControllerSection(BaseModel):
    """``[controller]``: where state lives, which pin backend, site-wide thresholds."""

    model_config = STRICT
    state_dir: str = Field(default="/var/lib/charger-controller", min_length=1)
    pin_factory: Literal["lgpio", "rpigpio", "native", "mock"] = "lgpio"
    simulated: bool = False
    current_threshold_a: float = Field(default=0.5, gt=0, lt=6)  # below the 6 A minimum charging current
    fault_hold_s: Seconds = 5.0
    authorize_timeout_s: PositiveSeconds = 60.0


class ApiSection(BaseModel):
    """``[api]``: where the HTTP API listens and the token that guards it."""

    model_config = STRICT
    bind: str = "127.0.0.1:8080"
    access_token: str = ""


class BusSection(BaseModel):
    """One ``[[meter_buses]]`` entry: a physical bus by URL, its line settings and timing."""

    model_config = STRICT
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,32}$")
    url: str = Field(min_length=1)
    baudrate: int = Field(default=9600, ge=300, le=4_000_000)
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Annotated[int, _one_of(1, 2)] = 1
    bytesize: Annotated[int, _one_of(7, 8)] = 8
    timeout_s: float = Field(default=0.5, gt=0, le=10)
    retries: int = Field(default=1, ge=0, le=10)
    quiet_s: float = Field(default=0.05, ge=0, le=1)
    reconnect_min_s: float = Field(default=0.1, gt=0, le=60)
    reconnect_max_s: float = Field(default=5.0, gt=0, le=600)


class MeterSection(BaseModel):
    """``[evses.meter]``: which bus, which model (built-in name or map file) and unit id."""

    model_config = STRICT
    bus: str = Field(min_length=1)
    model: str | None = None
    map: str | None = None
    unit_id: int = Field(ge=1, le=247)
    poll_interval_s: PositiveSeconds = 1.0
    stale_after_s: PositiveSeconds = 5.0
    fault_state: Literal["Faulted", "Unavailable"] = "Faulted"


class RfidSection(BaseModel):
    """``[evses.rfid]``: the serial port of the EVSE's RFID reader (SerialTokenReader options)."""

    model_config = STRICT
    port: str = Field(min_length=1)
    baudrate: int = Field(default=9600, ge=300, le=4_000_000)
    repeat_suppress_s: float = Field(default=1.0, ge=0, le=60)


class ConnectorSection(BaseModel):
    """One entry of ``connectors``: OCPP connector id (from 1) and type."""

    model_config = STRICT
    id: int = Field(ge=1, le=255)
    type: ConnectorTypeField


class EvseSection(BaseModel):
    """One ``[[evses]]`` entry; sub-tables are checked one by one so each reports its own problems."""

    model_config = STRICT
    id: int = Field(ge=EVSE_IDS.start, le=EVSE_IDS.stop - 1)
    connectors: list[ConnectorSection] = Field(min_length=1)
    lock_when_reserved: bool | None = None  # None: lock when a lock is fitted
    contactor: Any
    plug: Any
    indicator: Any
    lock: Any = None
    meter: Any = None
    rfid: Any = None
    pilot: Any = None


# [mqtt], [ocpp], [site] and [evses.pilot]: their own modules
ROOT_KEYS = ("controller", "api", "meter_buses", "evses", "mqtt", "ocpp", "site")


def _driver_field_type(name: str, hint: Any) -> Any:
    optional = type(None) in typing.get_args(hint)
    if is_pin_field(name):
        return Pin | None if optional else Pin
    if hint == bool | None:
        return PullUp
    if typing.get_origin(hint) is Mapping and name == "status_colors":
        return Colors
    if hint in (bool, int, float):
        return hint
    raise TypeError(f"no config schema for driver option {name}: {hint!r}")  # a new kind of option


_DRIVER_MODELS: dict[type[Any], type[BaseModel]] = {}


def driver_section_model(cls: type[Any]) -> type[BaseModel]:
    """A strict pydantic model with the fields, types and defaults of a GPIO driver dataclass (made once)."""
    if cls in _DRIVER_MODELS:
        return _DRIVER_MODELS[cls]
    hints = typing.get_type_hints(cls)
    fields: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        default: Any = ... if field.default is dataclasses.MISSING else field.default
        if field.default_factory is not dataclasses.MISSING:
            default = Field(default_factory=field.default_factory)
        fields[field.name] = (_driver_field_type(field.name, hints[field.name]), default)
    model = _DRIVER_MODELS[cls] = create_model(f"{cls.__name__}Section", __config__=STRICT, **fields)
    return model


# ---------------------------------------------------------------- error wording

_SECRET_KEYS = ("access_token",)
_EXPECTED = {
    "int_type": "an integer", "int_from_float": "an integer", "float_type": "a number",
    "finite_number": "a finite number", "bool_type": "true or false", "string_type": "a string",
    "list_type": "an array", "dict_type": "a table", "model_type": "a table",
    "model_attributes_type": "a table",
}
_BOUNDS = {"greater_than": ("gt", ">"), "greater_than_equal": ("ge", ">="), "less_than": ("lt", "<"),
           "less_than_equal": ("le", "<=")}
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def toml_type(value: object) -> str:
    """The TOML name of a parsed value's type, for "expected ..., got ..." messages."""
    kinds: list[tuple[type | tuple[type, ...], str]] = [
        (bool, "boolean"), (int, "integer"), (float, "float"), (str, "string"), ((list, tuple), "array"),
        (dict, "table"), (datetime, "datetime"), (date, "date"), (time, "time"), (type(None), "null")]
    return next((name for kind, name in kinds if isinstance(value, kind)), type(value).__name__)


def describe_value(value: object) -> str:
    """A short, one-line description of a parsed value: ``string "x"``, ``integer 5``, ``array``."""
    kind = toml_type(value)
    if isinstance(value, bool):
        return f"{kind} {str(value).lower()}"
    if isinstance(value, int):
        digits = len(str(abs(value))) if value.bit_length() < 10_000 else 3000  # str() of huge ints raises
        return f"{kind} {value}" if digits <= 30 else f"{kind} with {digits}+ digits"
    if isinstance(value, str):
        text = json.dumps(value)
        return f"{kind} {text}" if len(text) <= 60 else f"{kind} {text[:56]}...\""
    if isinstance(value, float | datetime | date | time):
        return f"{kind} {value}"
    if isinstance(value, list | tuple):
        return f"{kind} of {len(value)} item{'s' if len(value) != 1 else ''}"
    if isinstance(value, dict):
        keys = ", ".join(describe_key(key) for key in list(value)[:5])
        return f"{kind} with keys {keys}{', ...' if len(value) > 5 else ''}" if value else f"empty {kind}"
    return kind


def describe_key(key: object) -> str:
    """A key as written in a path: bare when TOML allows it bare, else quoted on one line."""
    text = str(key)
    return text if _BARE_KEY.fullmatch(text) else json.dumps(text)[:60]


def join_path(prefix: str, loc: tuple[int | str, ...]) -> str:
    """``evses[0].contactor`` + ("coil_pin",) -> ``evses[0].contactor.coil_pin``."""
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part != "[key]":
            path += f".{describe_key(part)}" if path else describe_key(part)
    return path


def _allowed_keys(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """Keys of the table at ``loc`` inside ``model`` (following nested models and lists)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)) or part not in current.model_fields:
            return []
        current = current.model_fields[part].annotation
        while typing.get_origin(current) in (list, typing.Union, types.UnionType):
            current = next(arg for arg in typing.get_args(current) if arg is not type(None))
    return sorted(current.model_fields) if isinstance(current, type) and issubclass(current, BaseModel) else []


def describe_errors(exc: ValidationError, model: type[BaseModel]) -> list[tuple[tuple[int | str, ...], str]]:
    """Each pydantic error as (location, one-line message in our wording)."""
    out = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        kind, ctx, value = error["type"], error.get("ctx", {}), error["input"]
        got = "a value" if any(part in _SECRET_KEYS for part in loc) else describe_value(value)
        if kind == "missing":
            message = "required, but missing"
        elif kind == "extra_forbidden":
            message = f"unknown key; allowed keys: {', '.join(_allowed_keys(model, loc[:-1]))}"
        elif kind in _EXPECTED:
            message = f"expected {_EXPECTED[kind]}, got {got}"
        elif kind == "literal_error":
            message = f"expected {str(ctx['expected']).replace(chr(39), chr(34))}, got {got}"
        elif kind in _BOUNDS:
            key, sign = _BOUNDS[kind]
            message = f"must be {sign} {ctx[key]}, got {got}"
        elif kind == "string_too_short":
            message = "must not be empty"
        elif kind == "too_short":
            message = f"needs at least {ctx['min_length']} entry"
        elif kind == "string_pattern_mismatch":
            message = f"expected 1 to 32 letters, digits or _ . -, got {got}"
        elif kind == "value_error":
            message = str(error["msg"]).removeprefix("Value error, ")
        else:
            message = str(error["msg"])
        out.append((loc, message))
    return out
