"""GpioIndicator on MockFactory PWM pins: LED modes and RGB colours read back from pin states."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from drivers.bridge import LoopBridge
from drivers.gpio import GpioIndicator, IndicatorConfig
from drivers.interfaces import Indicator, LedMode, StatusColor, StatusPattern

RESERVED, RED, GREEN, BLUE = "GPIO24", "GPIO12", "GPIO13", "GPIO19"
BLINK_S = 0.01


@pytest.fixture
def make(mock_factory: MockFactory, bridge: LoopBridge) -> Iterator[Any]:
    made: list[GpioIndicator] = []

    def build(**options: Any) -> GpioIndicator:
        options.setdefault("status_red_pin", RED)
        options.setdefault("status_green_pin", GREEN)
        options.setdefault("status_blue_pin", BLUE)
        config = IndicatorConfig(
            reserved_pin=RESERVED, blink_on_s=BLINK_S, blink_off_s=BLINK_S, pulse_fade_s=0.2, **options
        )
        indicator = GpioIndicator(config, bridge=bridge, pin_factory=mock_factory)
        made.append(indicator)
        return indicator

    yield build
    for indicator in made:
        indicator.close()


def rgb(mock_factory: MockFactory) -> tuple[float, float, float]:
    r, g, b = (float(mock_factory.pin(p).state) for p in (RED, GREEN, BLUE))
    return (r, g, b)


def changes(mock_factory: MockFactory, pin: str) -> int:
    return len(mock_factory.pin(pin).states) - 1


async def test_reserved_led_on_off(make: Any, mock_factory: MockFactory) -> None:
    indicator = make()
    assert isinstance(indicator, Indicator)
    assert indicator.reserved_mode is LedMode.OFF and mock_factory.pin(RESERVED).state == 0
    indicator.set_reserved(LedMode.ON)
    assert indicator.reserved_mode is LedMode.ON and mock_factory.pin(RESERVED).state == 1
    indicator.set_reserved(LedMode.OFF)
    assert mock_factory.pin(RESERVED).state == 0


async def test_reserved_led_active_low(make: Any, mock_factory: MockFactory) -> None:
    indicator = make(reserved_active_high=False)
    assert mock_factory.pin(RESERVED).state == 1
    indicator.set_reserved(LedMode.ON)
    assert mock_factory.pin(RESERVED).state == 0


async def test_reserved_led_blinks_in_the_background_until_set_off(
    make: Any, mock_factory: MockFactory, until: Any
) -> None:
    indicator = make()
    indicator.set_reserved(LedMode.BLINK)
    assert indicator.reserved_mode is LedMode.BLINK
    await until(lambda: changes(mock_factory, RESERVED) >= 4)  # the loop was free meanwhile
    levels = [bool(s.state) for s in mock_factory.pin(RESERVED).states]
    assert all(a != b for a, b in itertools.pairwise(levels))  # strictly alternating
    indicator.set_reserved(LedMode.OFF)
    settled = changes(mock_factory, RESERVED)
    await asyncio.sleep(BLINK_S * 5)
    assert mock_factory.pin(RESERVED).state == 0 and changes(mock_factory, RESERVED) == settled


@pytest.mark.parametrize(
    ("color", "expected"),
    [
        (StatusColor.GREEN, (0.0, 1.0, 0.0)),
        (StatusColor.AMBER, (1.0, 0.5, 0.0)),
        (StatusColor.BLUE, (0.0, 0.0, 1.0)),
        (StatusColor.RED, (1.0, 0.0, 0.0)),
        (StatusColor.OFF, (0.0, 0.0, 0.0)),
    ],
)
async def test_steady_colours_on_the_pins(
    make: Any, mock_factory: MockFactory, color: StatusColor, expected: tuple[float, float, float]
) -> None:
    indicator = make()
    indicator.set_status(
        StatusColor.RED if color is StatusColor.OFF else StatusColor.OFF, StatusPattern.STEADY
    )
    indicator.set_status(color, StatusPattern.STEADY)
    assert indicator.status == (color, StatusPattern.STEADY)
    assert rgb(mock_factory) == expected


async def test_common_anode_inverts_the_pins(make: Any, mock_factory: MockFactory) -> None:
    indicator = make(status_active_high=False)
    indicator.set_status(StatusColor.AMBER, StatusPattern.STEADY)
    assert rgb(mock_factory) == (0.0, 0.5, 1.0)


async def test_blink_alternates_the_colour_with_off(make: Any, mock_factory: MockFactory, until: Any) -> None:
    indicator = make()
    indicator.set_status(StatusColor.RED, StatusPattern.BLINK)
    await until(lambda: changes(mock_factory, RED) >= 4)
    assert {float(s.state) for s in mock_factory.pin(RED).states} == {0.0, 1.0}
    assert changes(mock_factory, GREEN) == 0 and changes(mock_factory, BLUE) == 0
    indicator.set_status(StatusColor.GREEN, StatusPattern.STEADY)  # stops the blink
    settled = changes(mock_factory, RED)
    await asyncio.sleep(BLINK_S * 5)
    assert rgb(mock_factory) == (0.0, 1.0, 0.0) and changes(mock_factory, RED) == settled


async def test_pulse_fades_through_the_colour(make: Any, mock_factory: MockFactory, until: Any) -> None:
    indicator = make()
    indicator.set_status(StatusColor.AMBER, StatusPattern.PULSE)
    assert indicator.status == (StatusColor.AMBER, StatusPattern.PULSE)
    await until(lambda: changes(mock_factory, RED) >= 6)
    reds = [float(s.state) for s in mock_factory.pin(RED).states]
    greens = [float(s.state) for s in mock_factory.pin(GREEN).states]
    assert any(0.0 < v < 1.0 for v in reds)  # intermediate brightness: a fade, not a blink
    assert max(greens) <= 0.5 + 1e-9 and max(greens) > 0  # amber's green is half its red
    assert changes(mock_factory, BLUE) == 0


async def test_non_pwm_status_rounds_and_pulses_as_blink(
    make: Any, mock_factory: MockFactory, until: Any
) -> None:
    indicator = make(status_pwm=False)
    indicator.set_status(StatusColor.AMBER, StatusPattern.STEADY)
    assert rgb(mock_factory) == (1.0, 1.0, 0.0)
    indicator.set_status(StatusColor.BLUE, StatusPattern.PULSE)
    await until(lambda: changes(mock_factory, BLUE) >= 4)
    assert {float(s.state) for s in mock_factory.pin(BLUE).states} <= {0.0, 1.0}


async def test_without_status_led(mock_factory: MockFactory, bridge: LoopBridge) -> None:
    config = IndicatorConfig(reserved_pin=RESERVED)
    async with GpioIndicator(config, bridge=bridge, pin_factory=mock_factory) as indicator:
        assert indicator.status is None
        indicator.set_status(StatusColor.RED, StatusPattern.BLINK)
        assert indicator.status is None


async def test_close_turns_everything_off_and_is_idempotent(make: Any, mock_factory: MockFactory) -> None:
    indicator = make()
    indicator.set_reserved(LedMode.BLINK)
    indicator.set_status(StatusColor.BLUE, StatusPattern.PULSE)
    await indicator.aclose()
    indicator.close()
    assert mock_factory.pin(RESERVED).state == 0 and rgb(mock_factory) == (0.0, 0.0, 0.0)
    with pytest.raises(RuntimeError):
        indicator.set_reserved(LedMode.ON)
