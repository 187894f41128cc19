"""AdcPilotInput: gpiozero's real MCP3008/MCP3208 classes against a mock SPI slave on MockFactory.

gpiozero 2.0.1's software SPI bus takes the global ``Device.pin_factory`` (see drivers.pilot.adc),
so these tests point it at their own MockFactory for their duration. That factory makes plain
MockPins by default: gpiozero's MockSPIDevice makes its clock pin a (non-PWM) MockSPIClockPin and
the SPI bus then asks for the same pin with the factory's default class, which must agree.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from drivers.pilot.adc import AdcPilotInput
from drivers.pilot.config import AdcInputConfig
from drivers.pilot.proximity import PpStatus
from drivers.pilot.states import CpState, PilotDecoder, PilotError
from drivers.sim.pilot_adc import MockMcp3xxx, cp_channels

pytestmark = pytest.mark.filterwarnings("ignore::gpiozero.exc.SPISoftwareFallback")


class Line:
    """Settable CP voltages and PP resistance."""

    def __init__(self) -> None:
        """A line at state A, no PP."""
        self.high, self.low = 12.0, -12.0
        self.pp_ohm: float | None = None

    def voltages(self) -> tuple[float, float]:
        """The CP (high, low) voltages now."""
        return self.high, self.low


@pytest.fixture
def factory(monkeypatch: pytest.MonkeyPatch) -> Iterator[MockFactory]:
    """A plain-MockPin factory, also set as gpiozero's global one (the SPI quirk)."""
    spi_factory = MockFactory()
    monkeypatch.setattr(Device, "pin_factory", spi_factory)
    yield spi_factory
    spi_factory.reset()
    spi_factory.close()


def make(factory: MockFactory, config: AdcInputConfig, line: Line) -> tuple[MockMcp3xxx, AdcPilotInput]:
    """A mock MCP slave fed by ``line`` and the real AdcPilotInput on it."""
    bits = 12 if config.chip == "mcp3208" else 10
    slave = MockMcp3xxx(factory, cp_channels(config, line.voltages, lambda: line.pp_ohm), bits=bits)
    return slave, AdcPilotInput(config, PilotDecoder(confirm_samples=2), pin_factory=factory)


@pytest.mark.parametrize("chip", ["mcp3008", "mcp3208"])
def test_front_end_scaling_round_trips_through_the_adc(factory: MockFactory, chip: str) -> None:
    line = Line()
    config = AdcInputConfig(chip=chip, samples=1)
    _, adc = make(factory, config, line)
    resolution = 30.0 / (2**10 if chip == "mcp3008" else 2**12)  # CP volts per ADC step
    for high, low in [(12.0, -12.0), (9.0, -12.0), (6.0, -12.0), (3.0, -12.0), (0.0, 0.0), (-12.0, -12.0)]:
        line.high, line.low = high, low
        read_high, read_low = adc.read_cp()
        assert read_high == pytest.approx(high, abs=resolution)
        assert read_low is not None and read_low == pytest.approx(low, abs=resolution)
    adc.close()


def test_states_and_the_diode_check_through_the_adc(factory: MockFactory) -> None:
    line = Line()
    _, adc = make(factory, AdcInputConfig(samples=1), line)
    t = 0.0

    def settle(pwm_on: bool = True) -> tuple[CpState | None, PilotError | None]:
        """Sample until the debounce settles; the state and error."""
        nonlocal t
        for _ in range(2):
            t += 0.01
            reading = adc.sample(t, pwm_on=pwm_on)
        return reading.state, reading.error

    assert settle() == (CpState.A, None)
    line.high = 9.0
    assert settle() == (CpState.B, None)
    line.high = 6.0
    assert settle() == (CpState.C, None)
    line.low = -6.0  # the car's diode is shorted
    assert settle() == (CpState.F, PilotError.DIODE)
    line.high, line.low = 12.0, -12.0
    assert settle() == (CpState.A, None)
    line.high, line.low = 0.0, 0.0
    assert settle() == (CpState.E, PilotError.CP_SHORT)
    adc.close()


def test_peak_mode_takes_the_median(factory: MockFactory) -> None:
    values = iter([9.0, 25.0, 9.0] * 10)
    slave_config = AdcInputConfig(samples=3)
    slave = MockMcp3xxx(factory, cp_channels(slave_config, lambda: (next(values), -12.0)))
    adc = AdcPilotInput(slave_config, PilotDecoder(), pin_factory=factory)
    high, _ = adc.read_cp()
    assert high == pytest.approx(9.0, abs=0.05)  # one spike of three is voted out
    assert slave.reads == 6
    adc.close()


def test_burst_mode_finds_both_phases_of_the_raw_signal(factory: MockFactory) -> None:
    config = AdcInputConfig(mode="burst", cp_low_channel=0, samples=20)
    square = iter(([6.0, 6.0] + [-12.0] * 8) * 10)  # 20 % duty, sampled
    MockMcp3xxx(factory, cp_channels(config, lambda: (next(square), math.nan)))
    adc = AdcPilotInput(config, PilotDecoder(), pin_factory=factory)
    high, low = adc.read_cp()
    assert high == pytest.approx(6.0, abs=0.05)
    assert low == pytest.approx(-12.0, abs=0.05)
    adc.close()


@pytest.mark.parametrize(
    ("ohm", "status", "amps"),
    [
        (1500.0, PpStatus.RATED, 13.0),
        (680.0, PpStatus.RATED, 20.0),
        (220.0, PpStatus.RATED, 32.0),
        (100.0, PpStatus.RATED, 63.0),
        (None, PpStatus.NO_CABLE, 0.0),
        (10.0, PpStatus.FAULT, 0.0),
    ],
)
def test_pp_through_the_adc(factory: MockFactory, ohm: float | None, status: PpStatus, amps: float) -> None:
    line = Line()
    line.pp_ohm = ohm
    _, adc = make(factory, AdcInputConfig(pp_channel=2), line)
    reading = adc.cable()
    assert reading is not None
    assert (reading.status, reading.amps) == (status, amps)
    adc.close()


def test_no_pp_channel_means_no_cable_reading(factory: MockFactory) -> None:
    _, adc = make(factory, AdcInputConfig(), Line())
    assert adc.cable() is None
    adc.close()
    adc.close()


def test_a_failing_bus_is_a_fault_not_an_exception(factory: MockFactory) -> None:
    line = Line()
    _, adc = make(factory, AdcInputConfig(), line)

    def broken() -> tuple[float, float | None]:
        """A bus that fails."""
        raise OSError("spi gone")

    adc.read_cp = broken  # type: ignore[method-assign]
    adc.sample(0.0, pwm_on=True)
    reading = adc.sample(0.01, pwm_on=True)
    assert reading.state is None and reading.error is PilotError.OUT_OF_RANGE
    adc.close()
