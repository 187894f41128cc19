"""An EVSE's control pilot in the runtime: sampling the CP line, the plug it implies, the offer on the PWM, and the
car's over-current.

The decisions are controller.charging.pilot's; here is what touches the drivers. A sampler task reads the pilot input
every ``period_s`` (20 ms: with 3 equal samples to debounce, a C -> B reaches the contactor in about 60 ms, well
inside IEC 61851-1's 100 ms, Table A.6 sequence 8.1) and asks for an evaluation whenever the debounced state or error
changes. With a pilot the EVSE's plug sensor is the pilot itself (``PilotPlug``: B, C or D), so the charging model
is unchanged. The cable's rating (PP) is read when a car arrives. The offer goes to the PWM at once when it
changes. An EV that keeps drawing more than 110 % + 0.5 A of the offer for ``OVERCURRENT_S`` is an EVSE fault
(``ev_overcurrent``) until it leaves (state A): the contactor opens and the session stops.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from controller.charging.pilot import PilotView, offer_a, overcurrent, pilot_faults, pilot_plugged, still_plugged
from drivers.interfaces import Fault, FaultKind
from drivers.pilot.interfaces import OutputMode, PilotInput, PilotOutput
from drivers.pilot.proximity import PpStatus

log = logging.getLogger("controller.runtime")

OVERCURRENT_S = 7.0  # EVerest's soft over-current timeout default (its minimum is 6 s): the car had time to follow


class PilotPlug:
    """The plug sensor of an EVSE with a pilot: plugged from B, C or D until A (E and F leave it as it was)."""

    def __init__(self, pilot_input: PilotInput) -> None:
        """Read plugged from ``pilot_input``'s debounced reading."""
        self._input = pilot_input
        self._callbacks: list[Callable[[bool], None]] = []
        self._was_plugged = False

    @property
    def plugged(self) -> bool:
        """B, C or D; after a fault reading (E, F) what it was before (controller.charging.pilot.still_plugged)."""
        return still_plugged(self._input.reading().state, self._was_plugged)

    def subscribe(self, callback: Callable[[bool], None]) -> None:
        """Hear of every change of the pilot's reading (the runtime evaluates the EVSE then)."""
        self._callbacks.append(callback)

    def notify(self) -> None:
        """The reading changed: remember whether a car is connected, and tell the subscribers."""
        self._was_plugged = self.plugged
        for callback in list(self._callbacks):
            callback(self.plugged)


@dataclass
class PilotHardware:
    """One EVSE's pilot drivers and settings, and what the runtime tracks of it."""

    output: PilotOutput
    input: PilotInput
    plug: PilotPlug
    max_current_a: float
    ventilation: bool = False
    phases: int = 3  # the phases wired to the EVSE (watts -> amperes)
    voltage_v: float = 230.0  # nominal phase voltage
    period_s: float = 0.02
    cable_a: float | None = None  # the plugged cable's rating (PP); None: tethered or not read
    cable_fault: bool = False
    over_since: float | None = None  # since when the car draws more than offered
    overcurrent: Fault | None = None  # latched until the car leaves
    _task: asyncio.Task[None] | None = field(default=None, repr=False)

    def offering(self) -> bool:
        """The output offers a current now (PWM with a current duty)."""
        return self.output.report().mode is OutputMode.PWM

    def view(self) -> PilotView:
        """The debounced pilot as the charging model sees it."""
        reading = self.input.reading()
        return PilotView(None if reading.state is None else str(reading.state),
                         None if reading.error is None else str(reading.error),
                         self.offering(), self.ventilation, self.cable_fault)

    def faults(self) -> tuple[Fault, ...]:
        """The EVSE faults the pilot and the car's current report now."""
        found = pilot_faults(self.view(), self.input.reading().since)
        return (*found, self.overcurrent) if self.overcurrent is not None else found

    def status(self) -> dict[str, Any]:
        """The status document's ``pilot`` entry (exact: state, duty_percent, advertised_a)."""
        reading, report = self.input.reading(), self.output.report()
        return {"state": None if reading.state is None else str(reading.state),
                "duty_percent": round(float(report.duty_percent), 3), "advertised_a": float(report.advertised_a)}

    # ------------------------------------------------------------ sampling

    def start(self, evse_id: int, mono: Callable[[], float]) -> None:
        """Sample the line in a task until ``stop``."""
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._sample(evse_id, mono))

    async def stop(self) -> None:
        """Stop sampling."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _sample(self, evse_id: int, mono: Callable[[], float]) -> None:
        """Read the CP every ``period_s``; a change of state or error notifies the plug's subscribers."""
        last: tuple[Any, Any] = (None, None)
        while True:
            try:
                reading = self.input.sample(mono(), pwm_on=self.offering())
                now = (reading.state, reading.error)
                if now != last:
                    if last[0] in (None, "A") and pilot_plugged(reading.state):
                        self._read_cable(evse_id)
                    if reading.state == "A":
                        self.cable_a, self.cable_fault, self.overcurrent, self.over_since = None, False, None, None
                    log.info("EVSE %d: pilot %s%s", evse_id, reading.state,
                             f" ({reading.error})" if reading.error is not None else "")
                    last = now
                    self.plug.notify()
            except Exception:
                log.exception("EVSE %d: pilot sampling failed", evse_id)
            await asyncio.sleep(self.period_s)

    def _read_cable(self, evse_id: int) -> None:
        """A car arrived: read its cable's rating (PP); an out-of-range resistance is a fault."""
        try:
            cable = self.input.cable()
        except Exception:
            log.exception("EVSE %d: reading the cable (PP) failed", evse_id)
            return
        if cable is None:
            return
        self.cable_fault = cable.status is PpStatus.FAULT
        # an uncoded cable (no PP resistor) may not be offered anything (IEC 61851-1 Annex B)
        self.cable_a = cable.amps if cable.status is PpStatus.RATED else 0.0
        log.info("EVSE %d: cable %s (%.0f ohm)", evse_id,
                 f"rated {cable.amps:g} A" if cable.status is PpStatus.RATED else cable.status.value, cable.ohms)

    # ------------------------------------------------------------ acting

    def apply(self, evse_id: int, *, may_charge: bool, limit_a: float | None) -> None:
        """Bring the PWM to the offer (a constant +12 V when nothing is offered), only when it changes."""
        amps = offer_a(may_charge=may_charge, limit_a=limit_a, max_current_a=self.max_current_a)
        report = self.output.report()
        if amps > 0:
            if report.mode is not OutputMode.PWM or abs(report.advertised_a - amps) > 0.05:
                report = self.output.set_current(amps)
                log.info("EVSE %d: pilot offers %g A (duty %.1f %%)", evse_id, report.advertised_a,
                         report.duty_percent)
        elif report.mode is not OutputMode.STANDBY:
            self.output.state_b()
            log.info("EVSE %d: pilot offers nothing (+12 V)", evse_id)

    def check_current(self, evse_id: int, current_a: float | None, now: float) -> None:
        """Track a car drawing more than offered; after OVERCURRENT_S it is a latched fault."""
        if self.overcurrent is not None:
            return
        if not overcurrent(current_a, self.output.report().advertised_a):
            self.over_since = None
            return
        if self.over_since is None:
            self.over_since = now
        elif now - self.over_since >= OVERCURRENT_S:
            self.overcurrent = Fault(FaultKind.EV_OVERCURRENT, now,
                                     f"the car draws {current_a:g} A, offered {self.output.report().advertised_a:g} A")
            log.warning("EVSE %d: %s", evse_id, self.overcurrent.detail)
