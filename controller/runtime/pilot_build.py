"""Making an EVSE's control pilot from its ``[evses.pilot]`` configuration, on real hardware or in the simulation.

Real: the configured PWM output (the kernel's hardware PWM, or gpiozero) and CP/PP input (an MCP3x08 ADC or
comparator lines). Simulated (``run --sim``): the same output class on the mock pin factory, and a simulated CP line
with a car (drivers.sim.pilot) that the real decoder reads; the plant steps the car, which draws what it is offered
(at most its own 32 A) through the simulated meter.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from controller.config.model import EvseConfig
from controller.runtime.pilot import PilotHardware, PilotPlug
from drivers.pilot.factory import build_decoder, build_input, build_output
from drivers.pilot.interfaces import PilotInput

SIM_CAR_MAX_A = 32.0  # the simulated car's own maximum: the EVSE's limits decide what it draws


def build_pilot(evse: EvseConfig, factory: Any, plant: Any, closers: list[Callable[[], Awaitable[None]]],
                clock: Callable[[], float]) -> PilotHardware | None:
    """The EVSE's pilot drivers (None without ``[evses.pilot]``); their ``close`` joins ``closers``."""
    if evse.pilot is None:
        return None
    config = evse.pilot.pilot
    output = build_output(config, pin_factory=factory, clock=clock)

    async def close_output() -> None:
        output.close()  # back to the resting level, -12 V: a car sees "EVSE not available"

    closers.append(close_output)
    pilot_input: PilotInput
    if plant is not None:
        from drivers.sim.pilot import CarProfile, SimCar, SimPilot, SimPilotInput

        car = SimCar(CarProfile(max_current_a=SIM_CAR_MAX_A, phases=evse.pilot.phases, voltage_v=evse.pilot.voltage_v))
        line = SimPilot(lambda: output.report().duty_percent, car)
        pilot_input = SimPilotInput(line, build_decoder(config))
        plant.add_pilot(evse.id, line)
    else:
        pilot_input = build_input(config, pin_factory=factory)

    async def close_input() -> None:
        pilot_input.close()

    closers.append(close_input)
    return PilotHardware(output, pilot_input, PilotPlug(pilot_input), config.max_current_a,
                         ventilation=evse.pilot.ventilation, phases=evse.pilot.phases,
                         voltage_v=evse.pilot.voltage_v)
