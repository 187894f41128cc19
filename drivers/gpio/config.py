"""Options of each GPIO driver as frozen dataclasses, checked when built.

Pins are gpiozero names ("GPIO17"). Inputs take ``pull_up`` as gpiozero does (True: internal
pull-up, False: pull-down, None: floating) and ``active_high``: the level that means the
named condition (contacts closed, locked, plugged), whatever the pull, so NO and NC contacts
and either wiring are one setting. Bad values raise ValueError naming the field.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from drivers.interfaces import StatusColor

RGB = tuple[float, float, float]

_PIN_NAME = re.compile(r"^(?:(?:GPIO|BCM|BOARD|WPI)\d{1,2}|J8:\d{1,2})$")

DEFAULT_STATUS_COLORS: Mapping[StatusColor, RGB] = {
    StatusColor.OFF: (0.0, 0.0, 0.0),
    StatusColor.GREEN: (0.0, 1.0, 0.0),
    StatusColor.AMBER: (1.0, 0.5, 0.0),
    StatusColor.BLUE: (0.0, 0.0, 1.0),
    StatusColor.RED: (1.0, 0.0, 0.0),
}


def _name(obj: object, field_name: str) -> str:
    return f"{type(obj).__name__}.{field_name}"


def _check_pin(obj: object, field_name: str, optional: bool = False) -> None:
    value = getattr(obj, field_name)
    if value is None and optional:
        return
    if not isinstance(value, str) or not _PIN_NAME.match(value):
        raise ValueError(f"{_name(obj, field_name)}: {value!r} is not a gpiozero pin name like 'GPIO17'")


def _check_bool(obj: object, field_name: str, optional: bool = False) -> None:
    value = getattr(obj, field_name)
    if value is None and optional:
        return
    if not isinstance(value, bool):
        raise ValueError(f"{_name(obj, field_name)}: must be true or false, got {value!r}")


def _check_range(obj: object, field_name: str, low: float, high: float, *, low_open: bool = False) -> None:
    value = getattr(obj, field_name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{_name(obj, field_name)}: must be a number, got {value!r}")
    too_low = value <= low if low_open else value < low
    if too_low or value > high:
        opening = "(" if low_open else "["
        raise ValueError(f"{_name(obj, field_name)}: {value!r} is outside {opening}{low}, {high}]")


def _check_int(obj: object, field_name: str, low: int, high: int) -> None:
    value = getattr(obj, field_name)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(
            f"{_name(obj, field_name)}: must be a whole number in [{low}, {high}], got {value!r}"
        )


def _check_distinct(obj: object, *field_names: str) -> None:
    seen: dict[str, str] = {}
    for field_name in field_names:
        pin = getattr(obj, field_name)
        if pin is None:
            continue
        if pin in seen:
            raise ValueError(f"{_name(obj, field_name)}: {pin!r} is already used by {seen[pin]}")
        seen[pin] = field_name


@dataclass(frozen=True, slots=True)
class ContactorConfig:
    """Coil output, optional aux (mirror) contact input and supervision timing of one contactor."""

    coil_pin: str
    coil_active_high: bool = True
    feedback_pin: str | None = None  # None: no aux contact fitted, no supervision
    feedback_pull_up: bool | None = True  # dry aux contact to GND with the Pi's pull-up
    feedback_active_high: bool = False  # level meaning "main contacts closed"
    feedback_debounce_s: float = 0.0
    supervision_timeout_s: float = 0.2  # aux must follow the coil within this time
    fault_clear_s: float = 5.0  # a failed-to-close clears after healthy this long (welded: never)
    min_reclose_s: float = 0.0  # 0: no minimum interval between an open and the next close

    def __post_init__(self) -> None:
        _check_pin(self, "coil_pin")
        _check_bool(self, "coil_active_high")
        _check_pin(self, "feedback_pin", optional=True)
        _check_bool(self, "feedback_pull_up", optional=True)
        _check_bool(self, "feedback_active_high")
        _check_range(self, "supervision_timeout_s", 0.0, 5.0, low_open=True)
        _check_range(self, "feedback_debounce_s", 0.0, 1.0)
        if self.feedback_debounce_s >= self.supervision_timeout_s:
            raise ValueError(
                f"ContactorConfig.feedback_debounce_s: {self.feedback_debounce_s!r} must be shorter than "
                f"supervision_timeout_s ({self.supervision_timeout_s!r})"
            )
        _check_range(self, "fault_clear_s", 0.0, 3600.0)
        _check_range(self, "min_reclose_s", 0.0, 600.0)
        _check_distinct(self, "coil_pin", "feedback_pin")


@dataclass(frozen=True, slots=True)
class LockConfig:
    """H-bridge lock/unlock motor lines, optional "locked" feedback switch and pulse timing."""

    lock_pin: str
    unlock_pin: str
    motor_active_high: bool = True
    feedback_pin: str | None = None  # None: time-based lock, position assumed after the pulse
    feedback_pull_up: bool | None = True
    feedback_active_high: bool = False  # level meaning "locked"
    feedback_debounce_s: float = 0.05
    pulse_s: float = 0.6
    retries: int = 3  # pulses after the first one; retries + 1 in all
    retry_backoff_s: float = 5.0

    def __post_init__(self) -> None:
        _check_pin(self, "lock_pin")
        _check_pin(self, "unlock_pin")
        _check_bool(self, "motor_active_high")
        _check_pin(self, "feedback_pin", optional=True)
        _check_bool(self, "feedback_pull_up", optional=True)
        _check_bool(self, "feedback_active_high")
        _check_range(self, "feedback_debounce_s", 0.0, 1.0)
        _check_range(self, "pulse_s", 0.1, 4.0)
        _check_int(self, "retries", 0, 10)
        _check_range(self, "retry_backoff_s", 0.0, 60.0)
        _check_distinct(self, "lock_pin", "unlock_pin", "feedback_pin")


@dataclass(frozen=True, slots=True)
class PlugConfig:
    """Plug-present input (socket microswitch or CP/PP front-end) and its debounce time."""

    pin: str
    pull_up: bool | None = True
    active_high: bool = False  # level meaning "plugged"
    debounce_s: float = 0.1

    def __post_init__(self) -> None:
        _check_pin(self, "pin")
        _check_bool(self, "pull_up", optional=True)
        _check_bool(self, "active_high")
        _check_range(self, "debounce_s", 0.0, 5.0)


@dataclass(frozen=True, slots=True)
class IndicatorConfig:
    """The reserved LED, and an optional RGB status LED with its colours and blink timing."""

    reserved_pin: str
    reserved_active_high: bool = True
    blink_on_s: float = 0.5
    blink_off_s: float = 0.5
    status_red_pin: str | None = None  # all three status pins, or none
    status_green_pin: str | None = None
    status_blue_pin: str | None = None
    status_active_high: bool = True  # False for a common-anode RGB LED
    status_pwm: bool = True  # False: components round to 0/1 and PULSE shows as BLINK
    pulse_fade_s: float = 1.0
    status_colors: Mapping[StatusColor, RGB] = field(default_factory=lambda: dict(DEFAULT_STATUS_COLORS))

    def __post_init__(self) -> None:
        _check_pin(self, "reserved_pin")
        _check_bool(self, "reserved_active_high")
        _check_range(self, "blink_on_s", 0.0, 10.0, low_open=True)
        _check_range(self, "blink_off_s", 0.0, 10.0, low_open=True)
        status = ("status_red_pin", "status_green_pin", "status_blue_pin")
        for name in status:
            _check_pin(self, name, optional=True)
        given = [getattr(self, name) is not None for name in status]
        if any(given) and not all(given):
            missing = next(name for name, is_given in zip(status, given, strict=True) if not is_given)
            raise ValueError(f"IndicatorConfig.{missing}: give all three status LED pins or none")
        _check_bool(self, "status_active_high")
        _check_bool(self, "status_pwm")
        _check_range(self, "pulse_fade_s", 0.0, 10.0, low_open=True)
        _check_distinct(self, "reserved_pin", *status)
        self._check_colors()

    @property
    def has_status(self) -> bool:
        """True when an RGB status LED is fitted."""
        return self.status_red_pin is not None

    def _check_colors(self) -> None:
        colors = self.status_colors
        if not isinstance(colors, Mapping):
            raise ValueError(
                f"IndicatorConfig.status_colors: must map colour names to (r, g, b), got {colors!r}"
            )
        for color in StatusColor:
            if color not in colors:
                raise ValueError(f"IndicatorConfig.status_colors: no (r, g, b) for {color.value!r}")
        for color, rgb in colors.items():
            ok = (
                isinstance(rgb, tuple)
                and len(rgb) == 3
                and all(isinstance(c, int | float) and not isinstance(c, bool) and 0 <= c <= 1 for c in rgb)
            )
            if not ok:
                raise ValueError(
                    f"IndicatorConfig.status_colors: {color!r} must be (r, g, b), each in [0, 1], got {rgb!r}"
                )


C = TypeVar("C")


def config_from_mapping(cls: type[C], data: Mapping[str, Any]) -> C:
    """Build a config dataclass from parsed TOML/JSON; an unknown key is a ValueError naming it."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a config dataclass")
    known = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in known:
            raise ValueError(f"{cls.__name__}.{key}: unknown option (known: {', '.join(sorted(known))})")
    values = dict(data)
    if "status_colors" in values and isinstance(values["status_colors"], Mapping):
        values["status_colors"] = _parse_colors(values["status_colors"])
    try:
        return cls(**values)
    except TypeError as exc:  # a missing required field
        raise ValueError(f"{cls.__name__}: {exc}") from exc


def _parse_colors(raw: Mapping[str, Any]) -> dict[StatusColor, RGB]:
    colors = dict(DEFAULT_STATUS_COLORS)
    for name, rgb in raw.items():
        try:
            color = StatusColor(name)
        except ValueError as exc:
            raise ValueError(f"IndicatorConfig.status_colors: unknown colour {name!r}") from exc
        colors[color] = tuple(rgb) if isinstance(rgb, list | tuple) else rgb
    return colors
