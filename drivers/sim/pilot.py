"""A simulated control-pilot line and car: the car follows the CP, the line gives real voltages.

The car behaves as IEC 61851-1 Annex A expects an EV to: plugged in it shows state B (2.74 kOhm
behind a diode), it closes S2 (C: + 1.3 kOhm; D: + 270 Ohm) when it wants energy and sees a PWM
offering a current, draws min(offered, its own maximum) with a ramp, follows a duty change, and
opens S2 (back to B) when it is full or the PWM stops offering (100 %, 0 %, < 8 %). Resistor
values: IEC 61851-1 Annex A (R2 2.74 kOhm, R3 1.3 kOhm / 270 Ohm, the EVSE's 1 kOhm source), as
the Ahlsell EVSE tester manual sect. 8.3.3 and the Siemens TM ECC manual Table 3-2 list them.

The line turns the EVSE's duty and the car's resistors into the voltages the EVSE's front end
measures: high phase = Vd + (12 V - Vd) * R / (R + 1 kOhm) with the diode's Vd = 0.7 V (so B, C, D
read 9.0, 6.0, 2.9 V), low phase -12 V (the diode blocks). Faults: ``diode_short`` (the low
phase mirrors the high one, as EVerest's YetiSimulator models it), ``cp_short`` (0 V on both
phases: state E), ``overcurrent_ev`` (the car draws ``overcurrent_extra_a`` more than offered).
So the real ``PilotDecoder`` runs unchanged in the sim (``SimPilotInput``), and through
``drivers.sim.pilot_adc`` the real MCP3008 driver as well.

The ramp (``ramp_s`` from 0 A to the car's maximum, default 1.5 s) is an assumption: fast enough
to sit well inside the time an EV has to follow a PWM change (5 s is the figure EVerest works
with: its 5 s PWM update interval and its >= 6 s soft-overcurrent timeout, everest-core
EvseManager Charger.hpp / manifest.yaml), slow enough that a test sees the ramp.

Time comes in as a value (``step(now)``), so tests are deterministic and the plant can drive it
from its tick with the loop's (possibly warped) clock.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass

from drivers.pilot.duty import MIN_CURRENT_A, DutyMeaning, current_for_duty, meaning_of_duty
from drivers.pilot.proximity import PpReading, cable_rating
from drivers.pilot.states import CpState, PilotDecoder, PilotReading

PILOT_FAULT_KINDS = ("diode_short", "cp_short", "overcurrent_ev")
SOURCE_OHM = 1000.0  # the EVSE's CP source resistor
R2_OHM = 2740.0  # EV present (state B)
R3_C_OHM = 1300.0  # S2 closed, no ventilation (state C)
R3_D_OHM = 270.0  # S2 closed, ventilation required (state D)
DIODE_V = 0.7
GENERATOR_V = 12.0


@dataclass
class CarProfile:
    """What kind of car: its maximum current, ramp, reaction time, battery and ventilation."""

    max_current_a: float = 16.0
    ramp_s: float = 1.5  # from 0 A to max_current_a
    reaction_s: float = 0.1  # from seeing a PWM change to moving S2
    ventilation: bool = False  # True: asks for D instead of C
    energy_wanted_kwh: float | None = None  # None: never full
    voltage_v: float = 230.0
    phases: int = 1
    overcurrent_extra_a: float = 6.0  # what the ``overcurrent_ev`` fault adds to the offer
    cable_ohm: float | None = 220.0  # the plug's PP resistor (32 A); None: tethered, no PP


def _parallel(a: float, b: float) -> float:
    """Two resistors in parallel."""
    return a * b / (a + b)


class SimCar:
    """The EV side of the pilot: S2, the ramped current draw, the battery and injected faults."""

    def __init__(self, profile: CarProfile | None = None) -> None:
        """An unplugged car that wants charge, no faults."""
        self.profile = profile or CarProfile()
        self._lock = threading.RLock()
        self.plugged = False
        self.wants_charge = True
        self.full = False
        self.s2_closed = False
        self.current_a = 0.0
        self.energy_kwh = 0.0
        self.faults: set[str] = set()
        self._s2_target = False
        self._s2_change_at: float | None = None
        self._last: float | None = None

    # ------------------------------------------------------------ controls

    def plug(self) -> None:
        """The plug goes in: state B (S2 open)."""
        with self._lock:
            self.plugged = True

    def unplug(self) -> None:
        """The plug comes out: state A, no current."""
        with self._lock:
            self.plugged = False
            self.s2_closed = False
            self._s2_target = False
            self._s2_change_at = None
            self.current_a = 0.0

    def want_charge(self, wants: bool = True) -> None:
        """The driver (or the car's timer) asks for energy, or stops asking."""
        with self._lock:
            self.wants_charge = wants

    def set_full(self, full: bool = True) -> None:
        """The battery is full (the car opens S2) or takes energy again."""
        with self._lock:
            self.full = full

    def fault(self, kind: str) -> None:
        """Inject ``diode_short``, ``cp_short`` or ``overcurrent_ev``; ``clear`` removes them all."""
        with self._lock:
            if kind == "clear":
                self.faults.clear()
                return
            if kind not in PILOT_FAULT_KINDS:
                raise ValueError(f"unknown pilot fault {kind!r} (known: {', '.join(PILOT_FAULT_KINDS)}, clear)")
            self.faults.add(kind)

    # ------------------------------------------------------------ physics

    @property
    def state(self) -> CpState:
        """The state the car presents (A/B/C/D; E/F come from the line)."""
        if not self.plugged:
            return CpState.A
        if not self.s2_closed:
            return CpState.B
        return CpState.D if self.profile.ventilation else CpState.C

    def resistance_ohm(self) -> float:
        """The car's load on CP behind its diode (inf when unplugged)."""
        if not self.plugged:
            return math.inf
        if not self.s2_closed:
            return R2_OHM
        return _parallel(R2_OHM, R3_D_OHM if self.profile.ventilation else R3_C_OHM)

    def step(self, now: float, duty_percent: float, contacts_closed: bool) -> None:
        """Advance to ``now`` seeing ``duty_percent`` on CP and mains behind the contactor or not."""
        with self._lock:
            dt = 0.0 if self._last is None else max(0.0, now - self._last)
            self._last = now
            profile = self.profile
            meaning = meaning_of_duty(duty_percent)
            offered = current_for_duty(duty_percent)
            if profile.energy_wanted_kwh is not None and self.energy_kwh >= profile.energy_wanted_kwh:
                self.full = True
            wants = self.plugged and self.wants_charge and not self.full and meaning is DutyMeaning.CURRENT
            if wants != self._s2_target:
                self._s2_target = wants
                self._s2_change_at = now + profile.reaction_s
            if self._s2_change_at is not None and now >= self._s2_change_at:
                self.s2_closed = self._s2_target and self.plugged
                self._s2_change_at = None
            if not (self.s2_closed and contacts_closed and meaning is DutyMeaning.CURRENT):
                self.current_a = 0.0  # no mains (or no offer): nothing flows
                return
            target = min(offered, profile.max_current_a)
            if "overcurrent_ev" in self.faults:
                target = offered + profile.overcurrent_extra_a
            ramp_a = max(profile.max_current_a, MIN_CURRENT_A)  # a car told to draw 0 A still ramps down
            rate = ramp_a / profile.ramp_s if profile.ramp_s > 0 else math.inf
            step = rate * dt
            if self.current_a < target:
                self.current_a = min(target, self.current_a + step)
            else:
                self.current_a = max(target, self.current_a - step)
            self.energy_kwh += self.current_a * profile.voltage_v * profile.phases * dt / 3.6e6

    def voltages(self, duty_percent: float) -> tuple[float, float]:
        """(high-phase V, low-phase V) the EVSE measures on CP for this duty and car."""
        with self._lock:
            if "cp_short" in self.faults and self.plugged:  # the short is in the car: unplugged, it is gone
                return 0.0, 0.0
            if duty_percent <= 0.0:
                return -GENERATOR_V, -GENERATOR_V  # constant -12 V (the diode blocks, R draws nothing)
            r = self.resistance_ohm()
            high = GENERATOR_V if math.isinf(r) else DIODE_V + (GENERATOR_V - DIODE_V) * r / (r + SOURCE_OHM)
            if duty_percent >= 100.0:
                return high, high  # constant +12 V source: no low phase
            if "diode_short" in self.faults and not math.isinf(r):
                return high, -GENERATOR_V * r / (r + SOURCE_OHM)
            return high, -GENERATOR_V


class SimPilot:
    """One EVSE's CP line: the EVSE's duty (from ``duty_source``), the car, noise and PP.

    ``duty_source()`` returns the duty (%) the EVSE's output holds now, e.g. read from the
    output's mock pin or its fake sysfs file. ``noise_v`` adds seeded Gaussian noise to every
    reading (the decoder's debounce must ride it out).
    """

    def __init__(
        self,
        duty_source: Callable[[], float],
        car: SimCar | None = None,
        *,
        noise_v: float = 0.0,
        seed: int = 0,
    ) -> None:
        """A line between ``duty_source`` and ``car``."""
        self.duty_source = duty_source
        self.car = car or SimCar()
        self.noise_v = noise_v
        self._random = random.Random(seed)
        self.on_step: Callable[[float], None] | None = None  # called with ``now`` after each step (a bench's probe)

    def step(self, now: float, contacts_closed: bool) -> float:
        """Advance the car to ``now``; returns the current (A) it draws per phase.

        The car moves (S2, its current) only here, so ``on_step(now)`` sees each move at the instant it happens.
        """
        self.car.step(now, self.duty_source(), contacts_closed)
        if self.on_step is not None:
            self.on_step(now)
        return self.car.current_a

    def voltages(self) -> tuple[float, float]:
        """The CP voltages now, with noise."""
        high, low = self.car.voltages(self.duty_source())
        if self.noise_v > 0:
            high += self._random.gauss(0.0, self.noise_v)
            low += self._random.gauss(0.0, self.noise_v)
        return high, low

    def cable(self) -> PpReading | None:
        """The PP reading the EVSE would get (None: tethered, no PP)."""
        ohm = self.car.profile.cable_ohm
        if ohm is None:
            return None
        return cable_rating(ohm if self.car.plugged else math.inf)


class SimPilotInput:
    """Implements ``PilotInput`` on a ``SimPilot``: the real decoder reads the simulated line."""

    def __init__(self, line: SimPilot, decoder: PilotDecoder) -> None:
        """Read ``line`` through ``decoder``."""
        self._line = line
        self._decoder = decoder

    def sample(self, now: float, *, pwm_on: bool) -> PilotReading:
        """Measure the simulated line once and feed the decoder."""
        high, low = self._line.voltages()
        self._decoder.update(high, low, pwm_on, now)
        return self._decoder.reading

    def reading(self) -> PilotReading:
        """The last debounced reading."""
        return self._decoder.reading

    def cable(self) -> PpReading | None:
        """The simulated PP reading."""
        return self._line.cable()

    def close(self) -> None:
        """Nothing to release."""
