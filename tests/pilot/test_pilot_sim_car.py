"""The simulated car and CP line: it follows the pilot, ramps, goes back to B, and fails on demand.

The end-to-end tests put the real output driver (gpiozero on a MockPWMPin) and the real decoder
on both ends of the simulated line, as the sim plant will.
"""

from __future__ import annotations

import pytest
from gpiozero.pins.mock import MockFactory

from drivers.pilot.duty import duty_for_current, duty_for_offer
from drivers.pilot.interfaces import PilotInput
from drivers.pilot.output import GpioZeroPwmOutput
from drivers.pilot.proximity import PpStatus
from drivers.pilot.states import CpState, PilotDecoder, PilotError
from drivers.sim.pilot import CarProfile, SimCar, SimPilot, SimPilotInput

DT = 0.05


def run(car: SimCar, duty: float, seconds: float, *, start: float, contacts: bool = True) -> float:
    """Step the car every 50 ms for ``seconds``; returns the end time."""
    t = start
    for _ in range(round(seconds / DT)):
        t += DT
        car.step(t, duty, contacts)
    return t


def test_b_on_plug_c_on_pwm_then_the_current_ramps() -> None:
    car = SimCar(CarProfile(max_current_a=16.0, ramp_s=1.6, reaction_s=0.1))
    assert car.state is CpState.A
    car.plug()
    t = run(car, 100.0, 0.5, start=0.0)  # x1: no PWM
    assert car.state is CpState.B and car.current_a == 0.0
    t = run(car, duty_for_current(32.0), 0.15, start=t, contacts=False)
    assert car.state is CpState.C  # sees PWM, closes S2 after its reaction time
    assert car.current_a == 0.0  # contactor open: nothing flows
    t = run(car, duty_for_current(32.0), 0.8, start=t)
    assert 7.0 < car.current_a < 9.0  # halfway up a 1.6 s ramp to its own 16 A maximum
    t = run(car, duty_for_current(32.0), 1.0, start=t)
    assert car.current_a == pytest.approx(16.0)  # min(offered 32 A, its own 16 A)


def test_it_follows_a_lower_and_a_higher_offer() -> None:
    car = SimCar(CarProfile(max_current_a=32.0, ramp_s=2.0))
    car.plug()
    t = run(car, duty_for_current(32.0), 3.0, start=0.0)
    assert car.current_a == pytest.approx(32.0)
    t = run(car, duty_for_current(10.0), 0.5, start=t)
    assert 10.0 < car.current_a < 32.0  # ramping down, not a jump
    t = run(car, duty_for_current(10.0), 1.0, start=t)
    assert car.current_a == pytest.approx(10.0)  # well inside 5 s
    run(car, duty_for_current(20.0), 1.0, start=t)
    assert car.current_a == pytest.approx(20.0)


@pytest.mark.parametrize("duty", [100.0, 0.0, 5.0, duty_for_offer(0.0)])
def test_back_to_b_when_the_pwm_stops_offering(duty: float) -> None:
    car = SimCar()
    car.plug()
    t = run(car, duty_for_current(16.0), 2.0, start=0.0)
    assert car.state is CpState.C and car.current_a > 0
    run(car, duty, 0.2, start=t)
    assert car.state is CpState.B
    assert car.current_a == 0.0


def test_back_to_b_when_full() -> None:
    car = SimCar(CarProfile(max_current_a=16.0, ramp_s=0.0, energy_wanted_kwh=0.01))  # 10 Wh at 3.7 kW
    car.plug()
    t = run(car, duty_for_current(16.0), 5.0, start=0.0)
    assert car.state is CpState.C
    run(car, duty_for_current(16.0), 10.0, start=t)
    assert car.full and car.state is CpState.B and car.current_a == 0.0
    assert car.energy_kwh == pytest.approx(0.01, abs=0.002)


def test_a_car_that_does_not_want_charge_stays_in_b() -> None:
    car = SimCar()
    car.want_charge(False)
    car.plug()
    run(car, duty_for_current(16.0), 1.0, start=0.0)
    assert car.state is CpState.B


def test_ventilation_asks_for_d() -> None:
    car = SimCar(CarProfile(ventilation=True))
    car.plug()
    run(car, duty_for_current(16.0), 1.0, start=0.0)
    assert car.state is CpState.D


def test_overcurrent_ev_draws_more_than_offered() -> None:
    car = SimCar(CarProfile(max_current_a=32.0, ramp_s=0.5, overcurrent_extra_a=6.0))
    car.fault("overcurrent_ev")
    car.plug()
    run(car, duty_for_current(10.0), 3.0, start=0.0)
    assert car.current_a == pytest.approx(16.0)
    car.fault("clear")
    run(car, duty_for_current(10.0), 3.0, start=3.0)
    assert car.current_a == pytest.approx(10.0)


def test_unknown_fault_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown pilot fault 'weld'"):
        SimCar().fault("weld")


@pytest.mark.parametrize(("state", "high"), [(CpState.A, 12.0), (CpState.B, 9.0), (CpState.C, 6.0), (CpState.D, 2.93)])
def test_the_line_voltages_of_each_state(state: CpState, high: float) -> None:
    car = SimCar(CarProfile(ventilation=state is CpState.D))
    if state is not CpState.A:
        car.plug()
        car.s2_closed = state in (CpState.C, CpState.D)
    assert car.state is state
    assert car.voltages(50.0) == (pytest.approx(high, abs=0.05), -12.0)
    assert car.voltages(100.0) == (pytest.approx(high, abs=0.05), pytest.approx(high, abs=0.05))
    assert car.voltages(0.0) == (-12.0, -12.0)


def test_line_faults() -> None:
    car = SimCar()
    car.plug()
    car.fault("diode_short")
    high, low = car.voltages(50.0)
    assert low == pytest.approx(-12.0 * 2740 / 3740) and high > 8.0
    car.fault("cp_short")
    assert car.voltages(50.0) == (0.0, 0.0)


# ---------------------------------------------------------------- end to end: output -> line -> decoder


class Bench:
    """The real gpiozero output, the simulated line and car, the real decoder."""

    def __init__(self, factory: MockFactory, car: SimCar, noise_v: float = 0.0) -> None:
        """Wire the output pin, the line and the decoder."""
        self.output = GpioZeroPwmOutput("GPIO18", pin_factory=factory)
        pin = factory.pin("GPIO18")
        self.line = SimPilot(lambda: float(pin.state) * 100.0, car, noise_v=noise_v, seed=3)
        self.input = SimPilotInput(self.line, PilotDecoder(confirm_samples=3))
        self.t = 0.0

    def run(self, seconds: float, contacts: bool = False) -> None:
        """Step the line and sample the input every 10 ms."""
        for _ in range(round(seconds / 0.01)):
            self.t += 0.01
            self.line.step(self.t, contacts)
            self.input.sample(self.t, pwm_on=self.output.pwm_on)


def test_end_to_end_the_decoder_follows_the_car(mock_factory: MockFactory) -> None:
    car = SimCar(CarProfile(max_current_a=16.0, ramp_s=1.0))
    bench = Bench(mock_factory, car, noise_v=0.3)
    assert isinstance(bench.input, PilotInput)
    bench.run(0.1)
    assert bench.input.reading().state is CpState.F  # the output rests at off (-12 V)
    bench.output.state_b()
    bench.run(0.1)
    assert bench.input.reading().state is CpState.A
    car.plug()
    bench.run(0.1)
    assert bench.input.reading().state is CpState.B
    bench.output.set_current(10.0)
    bench.run(0.3)
    assert bench.input.reading().state is CpState.C
    bench.run(2.0, contacts=True)
    assert car.current_a == pytest.approx(10.0)
    bench.output.set_current(0.0)  # a 0 A limit: x1, the car goes back to B
    bench.run(0.3)
    assert bench.input.reading().state is CpState.B
    assert car.current_a == 0.0


def test_end_to_end_faults_reach_the_decoder(mock_factory: MockFactory) -> None:
    car = SimCar()
    bench = Bench(mock_factory, car)
    car.plug()
    bench.output.set_current(16.0)
    bench.run(0.3)
    car.fault("diode_short")
    bench.run(0.1)
    assert (bench.input.reading().state, bench.input.reading().error) == (CpState.F, PilotError.DIODE)
    car.fault("clear")
    car.fault("cp_short")
    bench.run(0.1)
    assert (bench.input.reading().state, bench.input.reading().error) == (CpState.E, PilotError.CP_SHORT)


def test_pp_follows_the_plug() -> None:
    line = SimPilot(lambda: 100.0, SimCar(CarProfile(cable_ohm=680.0)))
    reading = line.cable()
    assert reading is not None and reading.status is PpStatus.NO_CABLE
    line.car.plug()
    reading = line.cable()
    assert reading is not None and (reading.status, reading.amps) == (PpStatus.RATED, 20.0)
    assert SimPilot(lambda: 100.0, SimCar(CarProfile(cable_ohm=None))).cable() is None
