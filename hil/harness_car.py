"""The car a real bench's harness plays on one EVSE's control pilot, and how it measures the DUT's PWM duty.

The car is the simulation's (hil.cp_car: B when plugged, C once offered a current, draws what it is offered), stepped
every ``CAR_TICK_S`` with the duty the harness measures. The DUT sees it through one of two front ends
(hil.profile.PilotWiring, README "Building a real bench"):

- ``comparator``, for a DUT that reads CP with comparator lines (drivers.pilot.comparator): the harness drives those
  lines itself, the thermometer code of the state the line would show (5 lines for A ... 0 for F) and ``low_ok``
  while the car's diode would hold a PWM's low phase at -12 V (whatever the duty now: the DUT starts its PWM
  before the harness can have measured it); no analogue part;
- ``analog``, for any DUT with a real CP front end: the harness switches the EV side of IEC 61851-1 Annex A on the
  DUT's CP line (``ev_present``: the diode and 2.74 kOhm; ``s2_c``: + 1.3 kOhm; ``s2_d``: + 270 Ohm; ``cp_short``: CP
  to PE; ``diode_bypass``: the diode shorted).

The duty (``DutyReader``): ``AdcDuty`` reads an RC low-pass of the DUT's PWM pin on the harness's MCP3008 (a
measurement: the filtered voltage is duty x the pin's high level); ``StatusDuty`` takes the duty the DUT's /status
reports (no measurement: the DUT's word). gpiozero edge callbacks cannot time a 1 kHz PWM on a Pi (a 10 % pulse is
100 us, the callbacks' latency is of that order), so neither uses them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from drivers.sim.pilot import PILOT_FAULT_KINDS
from hil.cp_car import bench_car, low_phase_blocked, presented_state
from hil.harness_pins import DrivenLine
from hil.profile import COMPARATOR_LINES, CP_RANK, DutyAdc, PilotWiring

CAR_TICK_S = 0.02  # the harness steps its cars this often (the DUT samples CP every 20 ms)
DUTY_STEP_PCT = 0.2  # a measured duty is recorded when it moved this far (ADC noise stays off the timeline)
STEADY_PCT = 0.5  # a measured duty this close to 0 % or 100 % is a steady level (no PWM)

Report = Callable[[str, float, float], None]
"""report(role, monotonic_s, value): a pilot trace (``pilot_state``, ``pilot_duty``) took ``value``."""


class DutyReader(Protocol):
    """Where the harness gets the DUT's PWM duty (%) from; None while it does not know yet."""

    def read(self) -> float | None:
        """The duty (%) now, or None before the first reading."""
        ...

    def close(self) -> None:
        """Release what the reader holds."""
        ...


def steady_ends(duty: float) -> float:
    """A duty near 0 % or 100 % is the steady level (an RC filter never quite reaches its ends)."""
    if duty >= 100.0 - STEADY_PCT:
        return 100.0
    if duty <= STEADY_PCT:
        return 0.0
    return round(duty, 2)


class AdcDuty:
    """The DUT's duty from an RC low-pass on its PWM pin into an MCP3008 channel of the harness."""

    def __init__(self, adc: DutyAdc, *, invert: bool, factory: Any) -> None:
        """Open the channel (hardware SPI0 of the harness, chip select ``adc.spi_device``)."""
        from gpiozero import MCP3008

        self.adc = adc
        self.invert = invert
        self.device = MCP3008(channel=adc.channel, device=adc.spi_device, max_voltage=adc.vref_v, pin_factory=factory)

    def read(self) -> float | None:
        """The duty on CP (%): the filtered pin voltage over the pin's high level (inverted for an inverting stage)."""
        volts = float(self.device.value) * self.adc.vref_v
        fraction = min(max(volts / self.adc.pwm_high_v, 0.0), 1.0)
        return steady_ends(100.0 * (1.0 - fraction if self.invert else fraction))

    def close(self) -> None:
        """Release the SPI device."""
        self.device.close()


class StatusDuty:
    """The duty the DUT's /status reports (``pilot.duty_percent``), handed in by the bench's status poll."""

    def __init__(self) -> None:
        """Nothing known until the first poll."""
        self.value: float | None = None

    def read(self) -> float | None:
        """The last reported duty."""
        return self.value

    def close(self) -> None:
        """Nothing to release."""


class HarnessCar:
    """The EV on one EVSE's CP: a simulated car stepped with the measured duty, shown through the front end."""

    def __init__(self, wiring: PilotWiring, factory: Any, report: Report, *, max_current_a: float) -> None:
        """The car (unplugged), the front end's output lines (all off) and the duty reader the wiring names."""
        self.wiring = wiring
        self.car = bench_car(max_current_a)
        self.max_current_a = max_current_a
        self._report = report
        self.duty_reader: DutyReader = (
            AdcDuty(wiring.adc, invert=wiring.invert, factory=factory) if wiring.adc is not None else StatusDuty()
        )
        self.lines: dict[str, DrivenLine] = {}
        try:
            for role, spec in wiring.lines.items():
                self.lines[role] = DrivenLine(spec, factory, lambda _t, _v: None)
        except Exception:
            self.close()
            raise
        self.duty = 100.0  # until measured: a steady +12 V (what a DUT at rest offers)
        self.state = ""

    # ------------------------------------------------------------ the car

    def plug(self, plugged: bool, now: float) -> None:
        """The car's plug goes in or out."""
        if plugged:
            self.car.plug()
        else:
            self.car.unplug()
        self.present(now)

    def set(self, *, wants_charge: bool | None, full: bool | None, max_current_a: float | None) -> None:
        """Drive the car (None: leave that as it is)."""
        if wants_charge is not None:
            self.car.want_charge(wants_charge)
        if full is not None:
            self.car.set_full(full)
        if max_current_a is not None:
            if max_current_a < 0:
                raise ValueError(f"max_current_a must be >= 0, got {max_current_a!r}")
            self.car.profile.max_current_a = float(max_current_a)

    def fault(self, kind: str, now: float) -> None:
        """Play a pilot fault (``diode_short``, ``cp_short``, ``overcurrent_ev``) or ``clear`` them."""
        if kind != "clear" and kind not in PILOT_FAULT_KINDS:
            raise ValueError(f"unknown pilot fault {kind!r}")
        self.car.fault(kind)
        self.present(now)

    def reset(self, now: float) -> None:
        """A healthy car that wants energy, as a scenario starts."""
        self.car.fault("clear")
        self.set(wants_charge=True, full=False, max_current_a=self.max_current_a)
        self.present(now)

    def step(self, now: float, contacts_closed: bool) -> float:
        """Read the duty, let the car follow it, show its state; returns the current it draws (A per phase)."""
        measured = self.duty_reader.read()
        moved = measured is not None and measured != self.duty
        if moved and measured is not None and (abs(measured - self.duty) >= DUTY_STEP_PCT or measured in (0.0, 100.0)):
            self.duty = measured
            self._report("pilot_duty", now, measured)
        self.car.step(now, self.duty, contacts_closed)
        self.present(now)
        return self.car.current_a

    # ------------------------------------------------------------ the front end

    def present(self, now: float) -> None:
        """Put the car's state on the front end's lines; report the state the line shows when it changes."""
        car, duty = self.car, self.duty
        state = presented_state(car, duty)
        if self.wiring.front_end == "comparator":
            rank = CP_RANK[state]  # the high phase is above the lowest `rank` thresholds (the lines run highest first)
            for index, role in enumerate(COMPARATOR_LINES):
                self.lines[role].set(index >= len(COMPARATOR_LINES) - rank)
            if "low_ok" in self.lines:
                self.lines["low_ok"].set(low_phase_blocked(car))
        else:
            ventilation = car.profile.ventilation and "s2_d" in self.lines
            switches = {
                "ev_present": car.plugged,
                "s2_c": car.s2_closed and not ventilation,
                "s2_d": car.s2_closed and ventilation,
                "cp_short": "cp_short" in car.faults,
                "diode_bypass": "diode_short" in car.faults,
            }
            for role, on in switches.items():
                if role in self.lines:
                    self.lines[role].set(on)
        if state != self.state:
            self.state = state
            self._report("pilot_state", now, float(CP_RANK[state]))

    def close(self) -> None:
        """Release the lines (the car simulator's switches open, the comparator lines go inactive) and the reader."""
        for line in self.lines.values():
            line.close()
        self.lines = {}
        reader = getattr(self, "duty_reader", None)
        if reader is not None:
            reader.close()
