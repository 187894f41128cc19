"""The pilot's options as frozen dataclasses, checked when built; errors name the field.

One ``PilotConfig`` per EVSE: an output backend (``sysfs``: the Pi's hardware PWM, the default;
``gpio``: gpiozero's software-timed PWM), an input front end (``adc``: an MCP3008/MCP3208 on SPI;
``comparator``: one GPIO line per threshold), the CP bands, the debounce and the EVSE's maximum
current. ``pilot_config_from_mapping`` builds it from parsed TOML, nested tables included.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from drivers.pilot.duty import MAX_CURRENT_A, MIN_CURRENT_A
from drivers.pilot.states import CpThresholds

_PIN_NAME = re.compile(r"^(?:(?:GPIO|BCM|BOARD|WPI)\d{1,2}|J8:\d{1,2})$")
ADC_CHIPS = {"mcp3008": (8, 10), "mcp3208": (8, 12)}  # channels, bits
OUTPUTS = ("sysfs", "gpio")
INPUTS = ("adc", "comparator")
ADC_MODES = ("peak", "burst")


def _fail(obj: object, name: str, message: str) -> ValueError:
    """A ValueError naming the class and the field."""
    return ValueError(f"{type(obj).__name__}.{name}: {message}")


def _number(obj: object, name: str, low: float, high: float, *, low_open: bool = False) -> None:
    """Check a finite number within bounds."""
    value = getattr(obj, name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail(obj, name, f"must be a number, got {value!r}")
    if (value <= low if low_open else value < low) or value > high:
        raise _fail(obj, name, f"{value!r} is outside {'(' if low_open else '['}{low}, {high}]")


def _whole(obj: object, name: str, low: int, high: int, *, optional: bool = False) -> None:
    """Check a whole number within bounds (None allowed if optional)."""
    value = getattr(obj, name)
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _fail(obj, name, f"must be a whole number in [{low}, {high}], got {value!r}")


def _pin(obj: object, name: str, value: object) -> None:
    """Check a gpiozero pin name."""
    if not isinstance(value, str) or not _PIN_NAME.match(value):
        raise _fail(obj, name, f"{value!r} is not a gpiozero pin name like 'GPIO17'")


def _choice(obj: object, name: str, choices: tuple[str, ...] | Mapping[str, object]) -> None:
    """Check a value is one of the choices."""
    value = getattr(obj, name)
    if value not in choices:
        raise _fail(obj, name, f"{value!r} is not one of {', '.join(sorted(choices))}")


@dataclass(frozen=True, slots=True)
class SysfsPwmConfig:
    """A kernel PWM channel: Pi 1-4 chip 0 (ch 0 = GPIO18, 1 = GPIO19); Pi 5 chip 2 (0..3)."""

    chip: int = 0
    channel: int = 0
    sysfs_root: str = "/sys/class/pwm"
    unexport_on_close: bool = False

    def __post_init__(self) -> None:
        """Validate every field; errors name the field."""
        _whole(self, "chip", 0, 63)
        _whole(self, "channel", 0, 15)
        if not isinstance(self.sysfs_root, str) or not self.sysfs_root:
            raise _fail(self, "sysfs_root", f"must be a directory path, got {self.sysfs_root!r}")


@dataclass(frozen=True, slots=True)
class GpioPwmConfig:
    """gpiozero PWMOutputDevice on one pin (software-timed on lgpio: benches only)."""

    pin: str

    def __post_init__(self) -> None:
        """Validate every field; errors name the field."""
        _pin(self, "pin", self.pin)


@dataclass(frozen=True, slots=True)
class AdcInputConfig:
    """An MCP3008/MCP3208 reading the CP front end (and optionally PP) over SPI.

    CP volts = ADC volts * ``cp_scale`` + ``cp_offset_v``; the default maps 0..3.3 V to
    -15..+15 V (a divider/level shifter that puts +-12 V well inside the ADC's range).
    ``mode``: ``peak``: ``cp_high_channel``/``cp_low_channel`` are peak detectors of the high and
    low phase (median of ``samples`` readings each); ``burst``: raw CP on one channel, high = max
    and low = min of ``samples`` readings (give the same channel for both).
    PP: Rc is read through a pull-up ``pp_pullup_ohm`` to ``pp_supply_v``.
    """

    chip: str = "mcp3008"
    spi_port: int = 0
    spi_device: int = 0
    cp_high_channel: int = 0
    cp_low_channel: int | None = 1  # None: no low-phase input, no diode check
    pp_channel: int | None = None  # None: no PP (tethered cable)
    vref_v: float = 3.3
    cp_scale: float = 30.0 / 3.3
    cp_offset_v: float = -15.0
    mode: str = "peak"
    samples: int = 3
    pp_supply_v: float = 3.3
    pp_pullup_ohm: float = 1000.0

    def __post_init__(self) -> None:
        """Validate every field; errors name the field."""
        _choice(self, "chip", ADC_CHIPS)
        channels = ADC_CHIPS.get(self.chip, (8, 10))[0]
        _whole(self, "spi_port", 0, 6)
        _whole(self, "spi_device", 0, 3)
        _whole(self, "cp_high_channel", 0, channels - 1)
        _whole(self, "cp_low_channel", 0, channels - 1, optional=True)
        _whole(self, "pp_channel", 0, channels - 1, optional=True)
        _number(self, "vref_v", 0.5, 5.5)
        _number(self, "cp_scale", 0.0, 100.0, low_open=True)
        _number(self, "cp_offset_v", -50.0, 50.0)
        _choice(self, "mode", ADC_MODES)
        _whole(self, "samples", 1, 1000)
        _number(self, "pp_supply_v", 0.5, 5.5)
        _number(self, "pp_pullup_ohm", 1.0, 1e6)
        if self.mode == "burst" and self.cp_low_channel not in (None, self.cp_high_channel):
            raise _fail(self, "cp_low_channel", "in burst mode the low phase is read on cp_high_channel")
        if self.pp_channel is not None and self.pp_channel in (self.cp_high_channel, self.cp_low_channel):
            raise _fail(self, "pp_channel", f"{self.pp_channel} is already a CP channel")
        if self.mode == "peak" and self.cp_low_channel == self.cp_high_channel:
            raise _fail(self, "cp_low_channel", "peak mode needs a separate low-phase peak detector channel")


@dataclass(frozen=True, slots=True)
class ComparatorInputConfig:
    """One GPIO line per CP threshold, from the A/B threshold down to the E/F one.

    Each line is active while the CP high phase is above its threshold (a comparator with its own
    hysteresis, after a peak detector): 5 lines give A (all active), B, C, D, E, F (none).
    ``low_ok_pin`` (optional) is active while the low phase is below about -11 V (diode check).
    """

    pins: tuple[str, ...]
    active_high: bool = True
    pull_up: bool | None = None  # the comparators drive the lines
    low_ok_pin: str | None = None

    def __post_init__(self) -> None:
        """Validate every field; errors name the field."""
        if not isinstance(self.pins, tuple) or len(self.pins) != 5:
            raise _fail(self, "pins", f"give 5 pins (A/B, B/C, C/D, D/E, E/F thresholds), got {self.pins!r}")
        for index, pin in enumerate(self.pins):
            _pin(self, f"pins[{index}]", pin)
        if self.low_ok_pin is not None:
            _pin(self, "low_ok_pin", self.low_ok_pin)
        if not isinstance(self.active_high, bool):
            raise _fail(self, "active_high", f"must be true or false, got {self.active_high!r}")
        if self.pull_up is not None and not isinstance(self.pull_up, bool):
            raise _fail(self, "pull_up", f"must be true, false or absent, got {self.pull_up!r}")
        used = [*self.pins, *([self.low_ok_pin] if self.low_ok_pin else [])]
        for pin in used:
            if used.count(pin) > 1:
                raise _fail(self, "pins", f"{pin!r} is used twice")


@dataclass(frozen=True, slots=True)
class PilotConfig:
    """The control pilot of one EVSE: output, input, bands, debounce and current limits."""

    output: str = "sysfs"
    input: str = "adc"
    sysfs: SysfsPwmConfig | None = None
    gpio: GpioPwmConfig | None = None
    adc: AdcInputConfig | None = None
    comparator: ComparatorInputConfig | None = None
    frequency_hz: float = 1000.0
    invert_output: bool = False
    thresholds: CpThresholds = field(default_factory=CpThresholds)
    confirm_samples: int = 3
    hold_s: float = 0.0
    max_current_a: float = 16.0

    def __post_init__(self) -> None:
        """Validate every field; errors name the field."""
        _choice(self, "output", OUTPUTS)
        _choice(self, "input", INPUTS)
        if self.output == "sysfs" and self.sysfs is None:
            object.__setattr__(self, "sysfs", SysfsPwmConfig())
        if self.output == "gpio" and self.gpio is None:
            raise _fail(self, "gpio", "output = 'gpio' needs a [pilot.gpio] table with its pin")
        if self.input == "adc" and self.adc is None:
            object.__setattr__(self, "adc", AdcInputConfig())
        if self.input == "comparator" and self.comparator is None:
            raise _fail(self, "comparator", "input = 'comparator' needs a [pilot.comparator] table with its pins")
        _number(self, "frequency_hz", 990.0, 1010.0)
        if not isinstance(self.invert_output, bool):
            raise _fail(self, "invert_output", f"must be true or false, got {self.invert_output!r}")
        _whole(self, "confirm_samples", 1, 100)
        _number(self, "hold_s", 0.0, 1.0)
        _number(self, "max_current_a", MIN_CURRENT_A, MAX_CURRENT_A)


C = TypeVar("C")
_NESTED: dict[str, type[Any]] = {
    "sysfs": SysfsPwmConfig,
    "gpio": GpioPwmConfig,
    "adc": AdcInputConfig,
    "comparator": ComparatorInputConfig,
    "thresholds": CpThresholds,
}


def _build(cls: type[C], data: Mapping[str, Any], where: str) -> C:
    """Build a config dataclass from a mapping, nested tables first; unknown keys are errors."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: must be a table, got {data!r}")
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key in data:
        if key not in known:
            raise ValueError(f"{where}.{key}: unknown option (known: {', '.join(sorted(known))})")
    values = dict(data)
    for key, value in values.items():
        if key in _NESTED and cls is PilotConfig and value is not None:
            values[key] = _build(_NESTED[key], value, f"{where}.{key}")
        elif isinstance(value, list):
            values[key] = tuple(value)  # TOML arrays -> the tuples the dataclasses expect
    try:
        return cls(**values)
    except TypeError as exc:  # a missing required field
        raise ValueError(f"{where}: {exc}") from exc


def pilot_config_from_mapping(data: Mapping[str, Any]) -> PilotConfig:
    """Build a ``PilotConfig`` from parsed TOML/JSON; unknown keys are errors naming them."""
    return _build(PilotConfig, data, "PilotConfig")
