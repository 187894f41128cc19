"""Pin names: our BOARD/J8 table agrees with gpiozero's own for the 40-pin header."""

from __future__ import annotations

import pytest
from gpiozero.pins.mock import MockFactory

from controller.config.loader import normalize_pin


def test_physical_numbers_match_gpiozero() -> None:
    factory = MockFactory()
    try:
        info = factory.board_info
        for physical in range(1, 41):
            try:
                expected: str | None = info.to_gpio(f"BOARD{physical}")
            except Exception:  # gpiozero: PinInvalidPin for power and ground
                expected = None
            for name in (f"BOARD{physical}", f"J8:{physical}"):
                if expected is None:
                    with pytest.raises(ValueError, match="not a GPIO"):
                        normalize_pin(name)
                else:
                    assert normalize_pin(name) == expected
        for number in range(28):
            assert normalize_pin(number) == normalize_pin(str(number)) == info.to_gpio(number) == f"GPIO{number}"
    finally:
        factory.close()


@pytest.mark.parametrize("name", ["GPIO17", "gpio17", "BCM17", "bcm17", "17", 17, "BOARD11", "board11", "J8:11"])
def test_names_of_one_pin(name: str | int) -> None:
    assert normalize_pin(name) == "GPIO17"
