"""The commands that set what an EVSE may draw: the local limit, the CSMS's profile limit and the energy manager's
pause, and the supply (voltage, phases, maximum) that turns a power limit into amperes.

Each change is recorded on the EVSE's record and the EVSE re-evaluated, so it reaches the control pilot's PWM (and
the contactor, for 0) at once; controller.runtime.limits computes the limit in effect from these records.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

from controller.port.charger import Supply, check_current_limit
from controller.runtime.evse import EvseRecord, RuntimeContext

log = logging.getLogger("controller.runtime")


class LimitSettings:
    """Sets the runtime's per-EVSE and station limits; ``evaluate`` re-evaluates one EVSE after a change."""

    def __init__(self, ctx: RuntimeContext, evaluate: Callable[[EvseRecord], None]) -> None:
        self._ctx = ctx
        self._evaluate = evaluate

    def set_current_limit(self, evse_id: int, amps: float | None) -> float | None:
        """The operator's (or an energy manager's) limit: 0 pauses, 6..80 A caps the pilot's offer, None removes it.

        An EVSE without a control pilot cannot tell the car to draw less: there only 0 is enforced (the contactor
        opens), other values are recorded. ValueError outside the range (check_current_limit), UnknownEvse.
        """
        e = self._ctx.evse(evse_id)
        e.current_limit_a = check_current_limit(amps)
        if e.current_limit_a == 0:
            log.info("EVSE %d current limit 0 A: charging paused", evse_id)
        elif e.current_limit_a is None:
            log.info("EVSE %d current limit removed", evse_id)
        else:
            log.info("EVSE %d current limit %g A (%s)", evse_id, e.current_limit_a,
                     "offered by the control pilot" if e.hw.pilot is not None
                     else "recorded only: the EVSE has no control pilot")
        self._evaluate(e)
        return e.current_limit_a

    def set_profile_limit(self, evse_id: int | None, amps: float | None) -> None:
        """The CSMS's charging-profile limit (A per phase) for one EVSE, or for the whole station (``evse_id`` None:
        shared between the EVSEs like the site limit); None removes it, 0 pauses. ValueError for a negative or
        non-finite value, UnknownEvse for an unknown id."""
        if amps is not None and (isinstance(amps, bool) or not isinstance(amps, int | float)
                                 or not math.isfinite(amps) or amps < 0):
            raise ValueError(f"a charging-profile limit must be a number of amperes >= 0, got {amps!r}")
        value = None if amps is None else float(amps)
        if evse_id is None:
            self._ctx.station_profile_limit_a = value
        else:
            self._ctx.evse(evse_id).profile_limit_a = value
        log.info("charging profile limit for %s: %s", "the station" if evse_id is None else f"EVSE {evse_id}",
                 "removed" if value is None else f"{value:g} A")
        for e in self._ctx.evses.values():
            self._evaluate(e)

    def set_charging_allowed(self, evse_id: int, allowed: bool) -> None:
        """Pause (False) or resume (True) charging, as an energy manager does (evcc's enable): while paused the
        contactor opens and stays open, but the session, its authorization and the lock are kept, so charging
        resumes without a new token. Unlike disabling the EVSE, which makes it Unavailable and ends sessions."""
        e = self._ctx.evse(evse_id)
        if e.charging_allowed != allowed:
            log.info("EVSE %d: charging %s", evse_id, "allowed" if allowed else "paused")
        e.charging_allowed = allowed
        self._evaluate(e)

    def supply(self, evse_id: int | None) -> Supply:
        """How an EVSE is fed (its pilot's voltage, phases and maximum), or the station (None): the EVSEs' voltage,
        their most phases, and ``[site] max_current_a`` (else the sum of the EVSEs' maxima, if each has one)."""
        if evse_id is not None:
            pilot = self._ctx.evse(evse_id).hw.pilot
            if pilot is None:
                return Supply()
            return Supply(pilot.voltage_v, pilot.phases, pilot.max_current_a)
        each = [self.supply(i) for i in self._ctx.evses]
        piloted = [s for s in each if s.max_current_a is not None]
        voltage = piloted[0].voltage_v if piloted else Supply().voltage_v
        phases = max((s.phases for s in each), default=Supply().phases)
        total = None if not each or len(piloted) < len(each) else sum(s.max_current_a or 0.0 for s in piloted)
        return Supply(voltage, phases, self._ctx.site_max_a if self._ctx.site_max_a is not None else total)
