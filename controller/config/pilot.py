"""The ``[evses.pilot]`` tables and the ``[site]`` table: their schema, their checks, and the pins a pilot uses.

Kept apart from build.py so the control pilot's settings are read in one place. The pilot's own options are
the driver's dataclasses (``drivers.pilot.config``): strict pydantic models are derived from them here, as
schema.py derives the GPIO sections', so a value of the wrong type or an unknown key is reported in the
file's wording (every one at once) and an option added to the driver is accepted without an edit here. The
dataclasses' own checks (ranges, the table an output or input needs) run afterwards; their errors are
reported at the key's path (``evses[id=1].pilot.adc.cp_high_channel``), not under the class's name.

Pins: a pilot's GPIO output pin and its comparator lines are pins like any other (one use in the whole
file). An ADC input uses the Pi's SPI0 pins, which several ADC inputs may share (one chip select per chip,
one channel per input); in a simulated charger (``controller.simulated = true``) the CP input is the
simulated car's, so the ADC's pins and channels are not claimed there. A ``sysfs`` output's pin is set by
the kernel's PWM overlay, not by this file, so it is not checked.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Callable, Iterator, Mapping
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, Field, create_model
from pydantic_core import PydanticCustomError

from controller.config.model import EvsePilotConfig, SiteConfig
from controller.config.schema import STRICT, Pin, describe_value, is_pin_field
from drivers.pilot.config import (
    ADC_CHIPS,
    ADC_MODES,
    INPUTS,
    OUTPUTS,
    AdcInputConfig,
    ComparatorInputConfig,
    GpioPwmConfig,
    PilotConfig,
    SysfsPwmConfig,
)
from drivers.pilot.states import CpThresholds

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
Problem = Callable[[str, str], None]
Validate = Callable[[type[M], object, str], tuple[M | None, bool]]

MIN_SITE_CURRENT_A = 6.0  # the least a single car may be offered: a smaller site limit could never charge one
MAX_SITE_CURRENT_A = 1000.0
PHASES = (1, 3)
VOLTAGE_V = (100.0, 480.0)  # nominal phase voltages from 100 V (Japan) to 480 V (North American three-phase)
# gpiozero drives an MCP3xxx on SPI0 only (gpiozero.pins.data.SPI_HARDWARE_PINS): clock, MOSI, MISO, chip selects
SPI0_BUS = {"SCLK": "GPIO11", "MOSI": "GPIO10", "MISO": "GPIO9"}
SPI0_SELECT = ("GPIO8", "GPIO7")  # CE0, CE1: spi_device 0 and 1

_NESTED: dict[str, type[Any]] = {  # PilotConfig's sub-tables
    "sysfs": SysfsPwmConfig,
    "gpio": GpioPwmConfig,
    "adc": AdcInputConfig,
    "comparator": ComparatorInputConfig,
    "thresholds": CpThresholds,
}
_CHOICES: dict[tuple[type[Any], str], tuple[str, ...]] = {
    (PilotConfig, "output"): OUTPUTS,
    (PilotConfig, "input"): INPUTS,
    (AdcInputConfig, "chip"): tuple(ADC_CHIPS),
    (AdcInputConfig, "mode"): ADC_MODES,
}


class SiteSection(BaseModel):
    """``[site]``: what the EVSEs share; ``max_current_a`` (A per phase) is divided among the charging EVSEs."""

    model_config = STRICT
    max_current_a: float | None = Field(default=None, ge=MIN_SITE_CURRENT_A, le=MAX_SITE_CURRENT_A)


def _phases(value: int) -> int:
    """1 or 3 (an integer: strict, so ``true`` is refused before this)."""
    if value not in PHASES:
        raise PydanticCustomError("phases", f"expected 1 or 3, got {describe_value(value)}")
    return value


def _field_type(cls: type[Any], name: str, hint: Any) -> Any:
    """The strict pydantic type of one driver option (a TOML array for a tuple, a pin name normalized)."""
    if (cls, name) in _CHOICES:
        return Literal[_CHOICES[cls, name]]
    optional = type(None) in typing.get_args(hint)
    base = next((a for a in typing.get_args(hint) if a is not type(None)), hint) if optional else hint
    if cls is PilotConfig and name in _NESTED:
        nested = section_model(_NESTED[name])
        return nested | None if optional else nested
    if name == "pins" and typing.get_origin(hint) is tuple:
        return list[Pin]
    if is_pin_field(name):
        return Pin | None if optional else Pin
    if base in (bool, int, float, str):
        return base | None if optional else base
    raise TypeError(f"no config schema for pilot option {cls.__name__}.{name}: {hint!r}")  # a new kind of option


_MODELS: dict[type[Any], type[BaseModel]] = {}


def section_model(cls: type[Any]) -> type[BaseModel]:
    """A strict pydantic model with the options and defaults of a pilot dataclass (made once)."""
    if cls in _MODELS:
        return _MODELS[cls]
    hints = typing.get_type_hints(cls)
    fields: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        default: Any = ... if field.default is dataclasses.MISSING else field.default
        if field.default_factory is not dataclasses.MISSING:
            default = None  # a nested table: absent means the driver's default
        fields[field.name] = (_field_type(cls, field.name, hints[field.name]), default)
    if cls is PilotConfig:  # what the EVSE adds to its pilot
        fields["phases"] = (Annotated[int, AfterValidator(_phases)], 3)
        fields["voltage_v"] = (float, Field(default=230.0, ge=VOLTAGE_V[0], le=VOLTAGE_V[1]))
        fields["ventilation"] = (bool, False)
    name = "EvsePilotSection" if cls is PilotConfig else f"{cls.__name__}Section"
    model = _MODELS[cls] = create_model(name, __config__=STRICT, **fields)
    return model


def _values(section: BaseModel) -> dict[str, Any]:
    """The options a table sets (arrays as the tuples the dataclasses take); absent ones keep the driver's default."""
    return {name: tuple(value) if isinstance(value, list) else value
            for name in section.model_fields_set if (value := getattr(section, name)) is not None}


def _dataclass(cls: type[T], values: Mapping[str, Any], path: str, problem: Problem) -> T | None:
    """``cls(**values)``; its own check's error reported at the path of the option it names."""
    try:
        return cls(**values)
    except ValueError as exc:
        message = str(exc)
        match = re.match(rf"{cls.__name__}\.([\w\[\]]+): ", message)
        problem(f"{path}.{match.group(1)}" if match else path, message[match.end():] if match else message)
        return None


def build_evse_pilot(raw: object, path: str, problem: Problem, validate: Validate[Any], *,
                     pins_ok: bool = True) -> EvsePilotConfig | None:
    """``[evses.pilot]`` (at ``path``) as an EvsePilotConfig, or None with every problem reported.

    ``pins_ok`` False: a pin of it is used twice (reported already), so the driver's own checks are not run,
    which would report a pin used twice inside the table once more.
    """
    section, ok = validate(section_model(PilotConfig), raw, path)
    if section is None or not ok or not pins_ok:
        return None
    values = _values(section)
    extra = {key: values.pop(key) for key in ("phases", "voltage_v", "ventilation") if key in values}
    for name, cls in _NESTED.items():
        if name in values:
            values[name] = _dataclass(cls, _values(values[name]), f"{path}.{name}", problem)
            ok = ok and values[name] is not None
    if not ok:
        return None
    pilot = _dataclass(PilotConfig, values, path, problem)
    if pilot is None:
        return None
    if pilot.input == "adc" and pilot.adc is not None and not (
            pilot.adc.spi_port == 0 and pilot.adc.spi_device < len(SPI0_SELECT)):
        key = "spi_port" if pilot.adc.spi_port != 0 else "spi_device"
        problem(f"{path}.adc.{key}", f"the ADC is driven on SPI0 only: spi_port = 0 and spi_device = 0 (CE0, "
                f"GPIO8) or 1 (CE1, GPIO7), got spi_port = {pilot.adc.spi_port}, spi_device = "
                f"{pilot.adc.spi_device}")
        return None
    return EvsePilotConfig(pilot, **extra)


def build_site(raw: object, validate: Validate[Any]) -> SiteConfig | None:
    """``[site]`` as a SiteConfig, or None with its problems reported."""
    section, ok = validate(SiteSection, raw, "site")
    if section is None or not ok:
        return None
    return SiteConfig(section.max_current_a)


# ---------------------------------------------------------------- pins and ADC channels


@dataclasses.dataclass(frozen=True, slots=True)
class PinClaim:
    """A pin a pilot uses: the key (or table) that names it, and who may share it (same ``share``: no conflict)."""

    value: object  # as written (a pin name or number)
    path: str
    share: str | None = None  # e.g. "SPI0": every ADC input on SPI0 uses its clock and data lines
    role: str | None = None  # what the pin is for when the path does not say it (e.g. "SPI0 MISO")

    @property
    def where(self) -> str:
        """The path, with the pin's role when there is one: ``evses[id=1].pilot.adc (SPI0 MISO)``."""
        return self.path if self.role is None else f"{self.path} ({self.role})"


def _table(raw: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """The sub-table ``name`` of a raw table, or an empty one when it is absent or no table."""
    table = raw.get(name)
    return table if isinstance(table, Mapping) else {}


def pilot_pins(raw: object, path: str, *, simulated: bool) -> Iterator[PinClaim]:
    """The pins an ``[evses.pilot]`` table (raw TOML at ``path``) uses, read as the pilot would use them.

    Read from the raw values (as the other pin checks), so a problem elsewhere in the table hides no conflict;
    a value that is no pin is left to the table's own validation.
    """
    if not isinstance(raw, Mapping):
        return
    if raw.get("output") == "gpio":
        gpio = _table(raw, "gpio")
        if "pin" in gpio:
            yield PinClaim(gpio["pin"], f"{path}.gpio.pin")
    if raw.get("input") == "comparator":
        comparator = _table(raw, "comparator")
        pins = comparator.get("pins")
        for index, pin in enumerate(pins if isinstance(pins, list) else []):
            yield PinClaim(pin, f"{path}.comparator.pins[{index}]")
        if "low_ok_pin" in comparator:
            yield PinClaim(comparator["low_ok_pin"], f"{path}.comparator.low_ok_pin")
    if raw.get("input", "adc") == "adc" and not simulated:
        device = _table(raw, "adc").get("spi_device", 0)
        for line, pin in SPI0_BUS.items():
            yield PinClaim(pin, f"{path}.adc", "SPI0", f"SPI0 {line}")
        if isinstance(device, int) and not isinstance(device, bool) and 0 <= device < len(SPI0_SELECT):
            yield PinClaim(SPI0_SELECT[device], f"{path}.adc", f"SPI0 CE{device}", f"SPI0 CE{device}")


def adc_channel_problems(pilots: list[tuple[str, EvsePilotConfig]]) -> Iterator[tuple[str, str]]:
    """(path, message) for an ADC channel two EVSEs read on the same chip; ``pilots``: (EVSE label, pilot)."""
    seen: dict[tuple[int, int, int], str] = {}
    for label, evse_pilot in pilots:
        adc = evse_pilot.pilot.adc
        if evse_pilot.pilot.input != "adc" or adc is None:
            continue
        for key in ("cp_high_channel", "cp_low_channel", "pp_channel"):
            channel = getattr(adc, key)
            if channel is None or (key == "cp_low_channel" and channel == adc.cp_high_channel):
                continue
            where = (adc.spi_port, adc.spi_device, channel)
            if where in seen and not seen[where].startswith(f"{label}."):
                yield (f"{label}.pilot.adc.{key}", f"channel {channel} of the ADC on SPI{adc.spi_port} "
                       f"CE{adc.spi_device} is already read by {seen[where]}")
            seen.setdefault(where, f"{label}.pilot.adc.{key}")
