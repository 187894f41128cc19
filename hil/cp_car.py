"""The car on a control pilot as both benches play it: the simulation's ``SimCar`` (drivers.sim.pilot), and the
state its CP line presents to the DUT.

The sim bench drives the DUT's own simulated car; a real bench steps a ``SimCar`` of its own with the duty it
measures (hil.harness_car) and shows its state through a front end. Either way the state recorded on the timeline
is the one here: the band of the line's high-phase voltage with this car and the DUT's duty (so E while CP is
shorted, F while the DUT holds -12 V), as the thermometer rank hil.profile.CP_RANK.
"""

from __future__ import annotations

from drivers.pilot.states import NOMINAL_V, classify, low_phase_ok
from drivers.sim.pilot import CarProfile, SimCar
from hil.profile import CP_RANK

CP_LETTERS = {rank: letter for letter, rank in CP_RANK.items()}


def presented_state(car: SimCar, duty_percent: float) -> str:
    """The CP state (A..F) the line shows with ``car`` on it and the DUT's PWM at ``duty_percent``."""
    high, _low = car.voltages(duty_percent)
    state = classify(high, None)
    if state is None:  # between two bands (the car's voltages sit at their centres): the nearest state
        state = min(NOMINAL_V, key=lambda s: abs(NOMINAL_V[s] - high))
    return str(state)


def low_phase_blocked(car: SimCar) -> bool:
    """A PWM's low phase would sit at -12 V with this car (its diode blocks it): what a front end's ``low_ok`` line
    reports. Independent of the DUT's duty now, as the line must be right the instant the DUT starts its PWM (the
    DUT checks the low phase only while its PWM runs)."""
    return low_phase_ok(car.voltages(50.0)[1])


def bench_car(max_current_a: float) -> SimCar:
    """A car as the benches play it: it wants energy, draws at most ``max_current_a``, tethered (no PP)."""
    return SimCar(CarProfile(max_current_a=max_current_a, cable_ohm=None))
