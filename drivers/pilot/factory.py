"""Build an EVSE's pilot output and input from its ``PilotConfig`` (the one place that chooses).

Kept apart from the drivers so each driver module imports only its own library, and the
controller (or the sim) has a single call: ``build_pilot(config, pin_factory=...)``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from drivers.pilot.adc import AdcPilotInput
from drivers.pilot.comparator import ComparatorPilotInput
from drivers.pilot.config import PilotConfig
from drivers.pilot.output import Clock, GpioZeroPwmOutput, PwmPilotOutput
from drivers.pilot.states import PilotDecoder
from drivers.pilot.sysfs import SysfsPwmOutput

PilotInputDriver = AdcPilotInput | ComparatorPilotInput


def build_output(
    config: PilotConfig, *, pin_factory: Any = None, sysfs_root: Path | str | None = None, clock: Clock = time.monotonic
) -> PwmPilotOutput:
    """The configured CP output, resting at ``off``. ``sysfs_root`` overrides the config's (tests)."""
    if config.output == "gpio":
        assert config.gpio is not None  # PilotConfig checked it
        return GpioZeroPwmOutput(
            config.gpio.pin,
            pin_factory=pin_factory,
            frequency_hz=config.frequency_hz,
            invert=config.invert_output,
            clock=clock,
        )
    assert config.sysfs is not None
    return SysfsPwmOutput(
        config.sysfs.chip,
        config.sysfs.channel,
        sysfs_root=sysfs_root if sysfs_root is not None else config.sysfs.sysfs_root,
        frequency_hz=config.frequency_hz,
        invert=config.invert_output,
        unexport_on_close=config.sysfs.unexport_on_close,
        clock=clock,
    )


def build_decoder(config: PilotConfig) -> PilotDecoder:
    """A fresh decoder with the configured bands and debounce."""
    return PilotDecoder(config.thresholds, confirm_samples=config.confirm_samples, hold_s=config.hold_s)


def build_input(config: PilotConfig, *, pin_factory: Any) -> PilotInputDriver:
    """The configured CP/PP input with its own decoder."""
    decoder = build_decoder(config)
    if config.input == "comparator":
        assert config.comparator is not None
        return ComparatorPilotInput(config.comparator, decoder, pin_factory=pin_factory)
    assert config.adc is not None
    return AdcPilotInput(config.adc, decoder, pin_factory=pin_factory)
