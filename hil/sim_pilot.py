"""The control pilot on the sim bench: recording the DUT's PWM duty, the car's state and its current, and driving the
car (the DUT's own simulated car, drivers.sim.pilot).

The duty comes from the PWM pin's mock state history (exact change times, as the LED lines); the car's state and
current are recorded at the instant the car moves (``SimPilot.on_step``, called by the plant's tick) and, for a
state that follows the DUT's duty alone (F while it holds -12 V), at every poll of the bench.
"""

from __future__ import annotations

import logging
from typing import Any

from drivers.sim.pilot import SimPilot
from drivers.sim.pin_history import change_count, read_changes
from hil.cp_car import presented_state
from hil.profile import CP_RANK, ROLE_LABELS, PilotWiring
from hil.timeline import Timeline

log = logging.getLogger(__name__)


class SimPilotProbe:
    """Records one EVSE's CP on the sim bench: ``pilot_duty`` (%), ``pilot_state`` (rank) and ``meter_current``."""

    def __init__(self, timeline: Timeline, evse_id: int, wiring: PilotWiring, pin: Any, line: SimPilot) -> None:
        """Make the traces and start recording ``line``'s car and the duty on the DUT's PWM ``pin``."""
        self.timeline = timeline
        self.line = line
        self._pin = pin
        self._invert = wiring.invert
        self.duty_key = f"evse{evse_id}.pilot_duty"
        self.state_key = f"evse{evse_id}.pilot_state"
        self.current_key = f"evse{evse_id}.meter_current"
        timeline.trace(self.duty_key, evse_id=evse_id, role="pilot_duty", label=ROLE_LABELS["pilot_duty"],
                       kind="observed", unit="%")
        timeline.trace(self.state_key, evse_id=evse_id, role="pilot_state", label=ROLE_LABELS["pilot_state"],
                       kind="driven", unit="state")
        attached = read_changes(pin, change_count(pin) - 1)
        self._next = attached.next_seq
        self.duty = self._percent(attached.changes[-1].state)
        timeline.record(self.duty_key, timeline.now(), self.duty)
        self._record_car(timeline.now())
        line.on_step = self._stepped

    def _percent(self, raw: Any) -> float:
        """The pin's PWM value (0..1) as the duty on CP (%), undoing an inverting front end."""
        fraction = float(raw)
        return round(100.0 * (1.0 - fraction if self._invert else fraction), 6)

    def _record_car(self, t: float) -> None:
        """The state the car presents and the current it draws, at scenario time ``t``."""
        car = self.line.car
        self.timeline.record(self.state_key, t, float(CP_RANK[presented_state(car, self.duty)]))
        self.timeline.record(self.current_key, t, car.current_a)

    def _stepped(self, now: float) -> None:
        """The plant stepped the car at monotonic ``now`` (in the loop thread)."""
        self.poll_duty()
        self._record_car(self.timeline.rel(now))

    def poll_duty(self) -> None:
        """Record the duty changes the pin made since the last read."""
        read = read_changes(self._pin, self._next)
        self._next = read.next_seq
        if read.lost:
            log.warning("%s: %d PWM changes dropped from the pin's history before they were read", self.duty_key,
                        read.lost)
        for change in read.changes:
            self.duty = self._percent(change.state)
            self.timeline.record(self.duty_key, self.timeline.rel(change.time), self.duty)

    def poll(self) -> None:
        """The bench's poll: new duty changes, and the car as it stands now."""
        self.poll_duty()
        self._record_car(self.timeline.now())

    def dark(self, t: float) -> None:
        """The DUT lost power at ``t``: its output drives nothing (0 %, -12 V on a real front end)."""
        self.duty = 0.0
        self.timeline.record(self.duty_key, t, 0.0)
        self._record_car(t)

    def detach(self) -> None:
        """Stop hearing the car's steps."""
        if self.line.on_step == self._stepped:
            self.line.on_step = None


def set_car(line: SimPilot, *, wants_charge: bool | None, full: bool | None, max_current_a: float | None) -> None:
    """Drive the simulated car (None: leave that as it is)."""
    car = line.car
    if wants_charge is not None:
        car.want_charge(wants_charge)
    if full is not None:
        car.set_full(full)
    if max_current_a is not None:
        if max_current_a < 0:
            raise ValueError(f"max_current_a must be >= 0, got {max_current_a!r}")
        car.profile.max_current_a = float(max_current_a)
