"""Driver options: bad values are refused with a ValueError naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from drivers.gpio import ContactorConfig, IndicatorConfig, LockConfig, PlugConfig, config_from_mapping
from drivers.gpio.config import DEFAULT_STATUS_COLORS
from drivers.interfaces import StatusColor


def test_defaults_follow_the_hardware_notes() -> None:
    contactor = ContactorConfig(coil_pin="GPIO17")
    assert contactor.supervision_timeout_s == 0.2 and contactor.feedback_pin is None
    lock = LockConfig(lock_pin="GPIO5", unlock_pin="GPIO6")
    assert (lock.pulse_s, lock.retries, lock.retry_backoff_s) == (0.6, 3, 5.0)
    assert PlugConfig(pin="GPIO23").debounce_s == 0.1
    assert IndicatorConfig(reserved_pin="GPIO24").status_colors[StatusColor.AMBER] == (1.0, 0.5, 0.0)


@pytest.mark.parametrize(
    ("cls", "kwargs", "field"),
    [
        (ContactorConfig, {"coil_pin": "17"}, "coil_pin"),
        (ContactorConfig, {"coil_pin": "GPIO17", "feedback_pin": "GPIO17"}, "feedback_pin"),
        (ContactorConfig, {"coil_pin": "GPIO17", "supervision_timeout_s": 0}, "supervision_timeout_s"),
        (ContactorConfig, {"coil_pin": "GPIO17", "supervision_timeout_s": "0.2"}, "supervision_timeout_s"),
        (ContactorConfig, {"coil_pin": "GPIO17", "feedback_debounce_s": 0.3}, "feedback_debounce_s"),
        (ContactorConfig, {"coil_pin": "GPIO17", "min_reclose_s": -1}, "min_reclose_s"),
        (ContactorConfig, {"coil_pin": "GPIO17", "coil_active_high": "yes"}, "coil_active_high"),
        (LockConfig, {"lock_pin": "GPIO5", "unlock_pin": "GPIO6", "pulse_s": 0.05}, "pulse_s"),
        (LockConfig, {"lock_pin": "GPIO5", "unlock_pin": "GPIO6", "pulse_s": 4.5}, "pulse_s"),
        (LockConfig, {"lock_pin": "GPIO5", "unlock_pin": "GPIO6", "retries": 1.5}, "retries"),
        (LockConfig, {"lock_pin": "GPIO5", "unlock_pin": "GPIO6", "retries": -1}, "retries"),
        (
            LockConfig,
            {"lock_pin": "GPIO5", "unlock_pin": "GPIO6", "retry_backoff_s": -0.1},
            "retry_backoff_s",
        ),
        (LockConfig, {"lock_pin": "GPIO5", "unlock_pin": "GPIO5"}, "unlock_pin"),
        (LockConfig, {"lock_pin": "GPIO5", "unlock_pin": "GPIO6", "feedback_pull_up": 1}, "feedback_pull_up"),
        (PlugConfig, {"pin": "pin23"}, "pin"),
        (PlugConfig, {"pin": "GPIO23", "debounce_s": float("nan")}, "debounce_s"),
        (IndicatorConfig, {"reserved_pin": "GPIO24", "status_red_pin": "GPIO12"}, "status_green_pin"),
        (IndicatorConfig, {"reserved_pin": "GPIO24", "blink_on_s": 0}, "blink_on_s"),
        (
            IndicatorConfig,
            {
                "reserved_pin": "GPIO24",
                "status_colors": {**DEFAULT_STATUS_COLORS, StatusColor.RED: (2, 0, 0)},
            },
            "status_colors",
        ),
    ],
)
def test_bad_values_name_their_field(cls: Any, kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=rf"{cls.__name__}\.{field}\b"):
        cls(**kwargs)


def test_pin_names_gpiozero_understands() -> None:
    for name in ("GPIO4", "BCM27", "BOARD11", "J8:11", "WPI0"):
        ContactorConfig(coil_pin=name)


def test_from_mapping_refuses_unknown_keys_and_builds_colours() -> None:
    with pytest.raises(ValueError, match=r"PlugConfig\.debounce_ms"):
        config_from_mapping(PlugConfig, {"pin": "GPIO23", "debounce_ms": 100})
    with pytest.raises(ValueError, match="PlugConfig"):
        config_from_mapping(PlugConfig, {})
    config = config_from_mapping(
        IndicatorConfig, {"reserved_pin": "GPIO24", "status_colors": {"amber": [1.0, 0.75, 0.0]}}
    )
    assert config.status_colors[StatusColor.AMBER] == (1.0, 0.75, 0.0)
    assert config.status_colors[StatusColor.GREEN] == (0.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="status_colors"):
        config_from_mapping(
            IndicatorConfig, {"reserved_pin": "GPIO24", "status_colors": {"purple": [1, 0, 1]}}
        )
