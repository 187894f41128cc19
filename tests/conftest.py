"""Shared fixtures: a fresh gpiozero MockFactory per test, handed to drivers explicitly."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin


@pytest.fixture
def mock_factory() -> Iterator[MockFactory]:
    """A MockFactory whose pins are all PWM-capable (RGBLED/PWMLED need that); reset afterwards."""
    factory = MockFactory(pin_class=MockPWMPin)
    yield factory
    factory.reset()
    factory.close()
