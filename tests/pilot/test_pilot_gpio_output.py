"""GpioZeroPwmOutput (the fallback) on MockFactory's MockPWMPin, and what the mock can measure.

A MockPWMPin holds a duty (a float) and a frequency; it produces no waveform, so the jitter of
the real signal (lgpio's software-timed edges) cannot be measured here. What is real on the mock
and measured below: the exact duty and the 1 kHz frequency reach the pin, and our command path
(``set_current`` -> pin state) takes microseconds. On a Pi the edges' jitter must be measured
with a scope; that is why the hardware PWM (sysfs) is the default backend.
"""

from __future__ import annotations

import statistics
import time

import pytest
from gpiozero.pins.mock import MockFactory

from drivers.pilot.duty import duty_for_current
from drivers.pilot.interfaces import OutputMode, PilotOutput
from drivers.pilot.output import GpioZeroPwmOutput

PIN = "GPIO18"


def test_starts_at_off_at_1_khz(mock_factory: MockFactory) -> None:
    out = GpioZeroPwmOutput(PIN, pin_factory=mock_factory)
    pin = mock_factory.pin(PIN)
    assert pin.frequency == 1000
    assert pin.state == 0.0  # -12 V: state F
    assert out.report().mode is OutputMode.OFF
    assert isinstance(out, PilotOutput)
    out.close()


def test_duties_reach_the_pin_exactly(mock_factory: MockFactory) -> None:
    out = GpioZeroPwmOutput(PIN, pin_factory=mock_factory)
    pin = mock_factory.pin(PIN)
    for amps in (6.0, 10.0, 16.0, 32.0, 51.0, 63.0, 80.0):
        report = out.set_current(amps)
        assert pin.state == pytest.approx(duty_for_current(amps) / 100, abs=1e-12)
        assert report.advertised_a == pytest.approx(amps)
    assert out.state_b().duty_percent == 100.0 and pin.state == 1.0
    assert out.set_duty(5.0).mode is OutputMode.DIGITAL and pin.state == pytest.approx(0.05)
    assert out.pwm_on
    out.close()
    assert pin.state == 0.0  # closed at off


def test_an_inverting_front_end(mock_factory: MockFactory) -> None:
    out = GpioZeroPwmOutput(PIN, pin_factory=mock_factory, invert=True)
    pin = mock_factory.pin(PIN)
    assert pin.state == 1.0  # off: the pin high puts -12 V on CP
    out.set_current(6.0)
    assert pin.state == pytest.approx(0.9)
    assert out.report().duty_percent == pytest.approx(10.0)
    out.close()


def test_the_factory_is_required() -> None:
    with pytest.raises(ValueError, match="pin_factory"):
        GpioZeroPwmOutput(PIN, pin_factory=None)


def test_command_latency_on_the_mock(mock_factory: MockFactory) -> None:
    """What the mock can measure: set_current -> pin state, our Python path only (no waveform)."""
    out = GpioZeroPwmOutput(PIN, pin_factory=mock_factory)
    pin = mock_factory.pin(PIN)
    latencies = []
    for index in range(400):
        amps = 6.0 + (index % 40)
        start = time.perf_counter()
        out.set_current(amps)
        latencies.append(time.perf_counter() - start)
        assert pin.state == pytest.approx(duty_for_current(amps) / 100)
    latencies.sort()
    median, p99 = statistics.median(latencies), latencies[int(len(latencies) * 0.99)]
    print(f"mock command path: median {median * 1e6:.1f} us, p99 {p99 * 1e6:.1f} us (no waveform on a mock)")
    assert median < 0.005  # generous: shared CI machines; typically a few tens of us
    assert pin.frequency == 1000  # the frequency never drifts on a duty change
    out.close()
