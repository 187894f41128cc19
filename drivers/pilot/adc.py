"""CP/PP input through an MCP3008/MCP3208 ADC on SPI (gpiozero), decoded by ``PilotDecoder``.

Why gpiozero's MCP3xxx classes: they are maintained, use the kernel's spidev on the Pi's
hardware SPI pins (GPIO8-11) and fall back to bit-banging elsewhere, and gpiozero's MockFactory
can run them against a mock SPI slave (``gpiozero.pins.mock.MockSPIDevice``), so the same class
is tested in CI (``drivers.sim.pilot_adc`` is such a slave, fed by the simulated CP line).

gpiozero 2.0.1 quirk: its software SPI bus (``SPISoftwareBus.__init__``) calls
``Device.__init__()`` without the pin factory, so it falls back to the global
``Device.pin_factory``. On a Pi with spidev the hardware interface is used and this does not
matter; under MockFactory the global factory must be the same mock (the tests set it).

The front end is expected to deliver the CP high phase (and low phase) as steady voltages, e.g.
from two peak detectors as on chargebyte's Tarragon (``CbTarragonCP::get_values`` reads a positive
and a negative peak channel), or raw CP sampled in bursts (``mode = "burst"``). Sampling the raw
1 kHz signal needs a burst long enough to catch the high phase (at 10 % duty it lasts 100 us);
peak detectors are the robust choice.
"""

from __future__ import annotations

import statistics
from typing import Any

from gpiozero import MCP3008, MCP3208

from drivers.pilot.config import AdcInputConfig
from drivers.pilot.proximity import PpReading, cable_rating, resistance_from_divider
from drivers.pilot.states import PilotDecoder, PilotReading

_CLASSES: dict[str, Any] = {"mcp3008": MCP3008, "mcp3208": MCP3208}


class AdcPilotInput:
    """Implements ``PilotInput`` on MCP3xxx channels; readings never raise (a failure is a fault)."""

    def __init__(self, config: AdcInputConfig, decoder: PilotDecoder, *, pin_factory: Any) -> None:
        """Open one MCP3xxx device per used channel on the configured SPI port/device."""
        if pin_factory is None:
            raise ValueError("pin_factory: required (no global gpiozero Device.pin_factory is used)")
        self._config = config
        self._decoder = decoder
        self._closed = False
        cls = _CLASSES[config.chip]
        spi = {"port": config.spi_port, "device": config.spi_device}
        channels = [config.cp_high_channel]
        if config.cp_low_channel is not None and config.cp_low_channel != config.cp_high_channel:
            channels.append(config.cp_low_channel)
        if config.pp_channel is not None:
            channels.append(config.pp_channel)
        self._devices: dict[int, Any] = {}
        try:
            for channel in channels:
                self._devices[channel] = cls(channel=channel, max_voltage=config.vref_v, pin_factory=pin_factory, **spi)
        except Exception:
            self.close()
            raise

    def _volts(self, channel: int) -> float:
        """The voltage at an ADC pin now (0..vref)."""
        return float(self._devices[channel].value) * self._config.vref_v

    def _cp_volts(self, adc_v: float) -> float:
        """ADC volts -> CP volts through the front end."""
        return adc_v * self._config.cp_scale + self._config.cp_offset_v

    def read_cp(self) -> tuple[float, float | None]:
        """One CP measurement: (high-phase V, low-phase V or None), front-end scaling applied."""
        cfg = self._config
        if cfg.mode == "burst":
            burst = [self._cp_volts(self._volts(cfg.cp_high_channel)) for _ in range(cfg.samples)]
            return max(burst), (min(burst) if cfg.cp_low_channel is not None else None)
        high = statistics.median(self._cp_volts(self._volts(cfg.cp_high_channel)) for _ in range(cfg.samples))
        if cfg.cp_low_channel is None:
            return high, None
        low = statistics.median(self._cp_volts(self._volts(cfg.cp_low_channel)) for _ in range(cfg.samples))
        return high, low

    def sample(self, now: float, *, pwm_on: bool) -> PilotReading:
        """Read the CP line once and feed the decoder; an SPI failure reads as an out-of-band value."""
        try:
            high, low = self.read_cp()
        except Exception:  # a broken bus must not crash the loop: the decoder makes it a fault
            high, low = float("nan"), None
        self._decoder.update(high, low, pwm_on, now)
        return self._decoder.reading

    def reading(self) -> PilotReading:
        """The last debounced reading."""
        return self._decoder.reading

    def cable(self) -> PpReading | None:
        """Read Rc on the PP channel now; None without a PP channel."""
        cfg = self._config
        if cfg.pp_channel is None:
            return None
        try:
            volts = statistics.median(self._volts(cfg.pp_channel) for _ in range(cfg.samples))
        except Exception:
            return cable_rating(float("nan"))
        return cable_rating(resistance_from_divider(volts, cfg.pp_supply_v, cfg.pp_pullup_ohm))

    def close(self) -> None:
        """Release the SPI devices; idempotent."""
        if self._closed:
            return
        self._closed = True
        for device in self._devices.values():
            device.close()
        self._devices.clear()
