"""A mock MCP3008/MCP3208 on gpiozero's MockFactory SPI pins, fed by simulated voltages.

So the real ``drivers.pilot.adc.AdcPilotInput`` (gpiozero's MCP3xxx classes, the SPI protocol
bit by bit) runs in tests and in the sim. The protocol follows the MCP3004/3008 and MCP3204/3208
data sheets as gpiozero's own test double does (gpiozero tests/test_spi_devices.py
``MockMCP3xxx``): a start bit, single/differential, three channel bits, then a null bit and the
result, most significant bit first. Only single-ended reads are modelled.

Give it a MockFactory whose default pin class is a plain MockPin: MockSPIDevice makes the clock a
(non-PWM) MockSPIClockPin and the SPI bus then asks for that pin with the factory's default class,
which gpiozero refuses if one is a PWM pin and the other not. gpiozero 2.0.1's software SPI bus
also uses the global ``Device.pin_factory`` (``drivers.pilot.adc``): point it at the same factory.

``channels`` maps a channel to a callable returning the voltage at the ADC pin now;
``cp_channels`` wraps a CP line: it undoes the front end's scaling (CP V -> ADC V) the way a real
level shifter does it, clamped to 0..vref.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gpiozero.pins.mock import MockSPIDevice

from drivers.pilot.config import AdcInputConfig
from drivers.pilot.proximity import NO_CABLE_ABOVE_OHM

HW_SPI_PINS = {0: ("GPIO11", "GPIO10", "GPIO9", "GPIO8"), 1: ("GPIO11", "GPIO10", "GPIO9", "GPIO7")}  # SPI0 CE0/CE1


class MockMcp3xxx(MockSPIDevice):  # type: ignore[misc]
    """The slave side of an MCP3008 (10 bit) or MCP3208 (12 bit) on the SPI0 pins."""

    rx_buf: list[int]  # set by MockSPIDevice (bits received since the start bit)
    tx_buf: list[int]  # bits still to shift out

    def __init__(
        self,
        factory: Any,
        channels: dict[int, Callable[[], float]],
        *,
        bits: int = 10,
        vref_v: float = 3.3,
        spi_device: int = 0,
    ) -> None:
        """Attach the slave to the SPI0 pins of ``factory`` for chip select ``spi_device``."""
        clock, mosi, miso, select = HW_SPI_PINS[spi_device]
        super().__init__(clock, mosi, miso, select, pin_factory=factory)
        self.channels = channels
        self.bits = bits
        self.vref_v = vref_v
        self.reads = 0
        self._phase = "idle"

    def on_start(self) -> None:
        """Select went active: a new conversion."""
        super().on_start()
        self._phase = "idle"

    def on_bit(self) -> None:
        """React to each clocked bit: start, mode, channel, then shift the result out."""
        if self._phase == "idle":
            if self.rx_buf[-1]:
                self._phase = "mode"
                self.rx_buf = []
        elif self._phase == "mode":
            self._phase = "channel"
            self.rx_buf = []
        elif self._phase == "channel":
            if len(self.rx_buf) == 3:
                self._result(self.rx_word())
                self._phase = "result"
        elif self._phase == "result" and not self.tx_buf:
            self._phase = "idle"
            self.rx_buf = []

    def _result(self, channel: int) -> None:
        """Queue the conversion result of ``channel`` to be shifted out."""
        source = self.channels.get(channel)
        volts = source() if source is not None else 0.0
        volts = min(max(volts, 0.0), self.vref_v)
        top = 2**self.bits - 1
        self.reads += 1
        self.tx_word(min(top, int(volts / self.vref_v * 2**self.bits)), self.bits + 2)


def cp_channels(
    config: AdcInputConfig,
    voltages: Callable[[], tuple[float, float]],
    pp_ohm: Callable[[], float | None] | None = None,
) -> dict[int, Callable[[], float]]:
    """Channel sources for a CP line (and PP resistor) behind the front end ``config`` describes."""

    def adc(cp_v: float) -> float:
        """CP volts -> the ADC pin voltage behind the front end."""
        return (cp_v - config.cp_offset_v) / config.cp_scale

    sources: dict[int, Callable[[], float]] = {config.cp_high_channel: lambda: adc(voltages()[0])}
    if config.cp_low_channel is not None and config.cp_low_channel != config.cp_high_channel:
        sources[config.cp_low_channel] = lambda: adc(voltages()[1])
    if config.pp_channel is not None and pp_ohm is not None:

        def pp() -> float:
            """The PP divider voltage for the plug now."""
            ohm = pp_ohm()
            if ohm is None or ohm > 10 * NO_CABLE_ABOVE_OHM:
                return config.pp_supply_v  # open: the pull-up wins
            return config.pp_supply_v * ohm / (ohm + config.pp_pullup_ohm)

        sources[config.pp_channel] = pp
    return sources
