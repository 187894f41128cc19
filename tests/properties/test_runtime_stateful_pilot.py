"""Stateful property, pilot rows: the simulated charger WITH control pilots stays safe whatever users, cars, faults,
limits and time do.

``PilotChargerMachine`` is test_runtime_stateful.py's ``ChargerMachine`` (reservations, tokens, plugs, plant faults,
enable/disable, time) on the embedded sim charger with a pilot on both EVSEs, plus the car's own moves: it asks for
energy or stops asking, its battery is full or takes energy again, the three pilot faults (``diode_short``,
``cp_short``, ``overcurrent_ev``) and their repair, local current limits (0 pauses, 6..32 A, none) and the energy
manager's pause. The invariants are the same (no interlock violation, now with the monitor's pilot and limit rules;
reserved LEDs match the core; no logged exception) plus hil.interlocks.pilot_offer_mismatches: a PWM offers a current
only to an authorized, locked, fault-free, unpaused session, and exactly the limit in effect.

Speed: a pilot is sampled every 20 ms of loop time, about 100 loop wake-ups per simulated second for the two EVSEs
where the plug-line charger idles through whole minutes, so time steps are capped at 30 s (the machine's waits and
the authorization and reservation timers stay within reach) and 200 examples of 50 steps are run, about 20 s;
``max_examples`` is multiplied by CHARGER_TEST_SCALE like the plug-line machine's.
"""

from __future__ import annotations

import hypothesis.strategies as st
from hypothesis import HealthCheck, event, settings
from hypothesis.stateful import invariant, rule

from controller.config.loader import load_sim_default
from controller.port.charger import SimFaultKind

from .test_runtime_stateful import SCALE, ChargerMachine, evse_ids, medium, short
from .warp_sim import WarpSim

PILOT_FAULTS = (SimFaultKind.DIODE_SHORT, SimFaultKind.CP_SHORT, SimFaultKind.OVERCURRENT_EV)
limits = st.one_of(st.sampled_from((None, 0.0, 6.0, 16.0, 32.0)), st.floats(min_value=6.0, max_value=32.0))


class PilotChargerMachine(ChargerMachine):
    """ChargerMachine on the charger with pilots, with the car's rules and limits; time steps of at most 30 s."""

    def make_sim(self) -> WarpSim:
        """The embedded sim charger with a control pilot on both EVSEs."""
        return WarpSim(load_sim_default())

    # ------------------------------------------------------------ faults, pilot ones included

    @rule(evse=evse_ids, kind=st.sampled_from([*SimFaultKind, *PILOT_FAULTS, SimFaultKind.CLEAR]))
    def fault(self, evse: int, kind: SimFaultKind) -> None:
        """Any plant fault; pilot faults and repairs twice as likely (the plug-line machine covers the others)."""
        self.sim.run(self.controls.fault(evse, kind))

    @rule(evse=evse_ids, seconds=st.floats(min_value=8.0, max_value=20.0))
    def car_overdraws(self, evse: int, seconds: float) -> None:
        """The car draws more than offered for long enough to be stopped (7 s): rare by chance, so a rule of its own."""
        self.sim.run(self.controls.fault(evse, SimFaultKind.OVERCURRENT_EV))
        self.sim.advance(seconds)

    # ------------------------------------------------------------ the car

    @rule(evse=evse_ids, wants=st.booleans())
    def car_wants_charge(self, evse: int, wants: bool) -> None:
        """The driver (or the car's timer) asks for energy, or stops asking (C <-> B under a PWM)."""
        self.sim.b.plant.evses[evse].pilot.car.want_charge(wants)

    @rule(evse=evse_ids, full=st.booleans())
    def battery_full(self, evse: int, full: bool) -> None:
        """The battery is full (the car opens S2) or takes energy again."""
        self.sim.b.plant.evses[evse].pilot.car.set_full(full)

    # ------------------------------------------------------------ limits

    @rule(evse=evse_ids, amps=limits)
    def set_local_limit(self, evse: int, amps: float | None) -> None:
        """A local limit as the API, CLI or MQTT set it: 0 pauses, 6..32 A lowers the offer, None removes it."""
        self.sim.run(self.runtime.set_current_limit(evse, amps))

    @rule(evse=evse_ids, allowed=st.booleans())
    def energy_manager(self, evse: int, allowed: bool) -> None:
        """evcc's enable: a pause keeps the session and the lock, the contactor opens, the PWM stops offering."""
        self.sim.run(self.runtime.set_charging_allowed(evse, allowed))

    # ------------------------------------------------------------ time, capped at 30 s

    @rule(seconds=st.one_of(short, medium))
    def wait(self, seconds: float) -> None:
        self.sim.advance(seconds)

    # ------------------------------------------------------------ coverage

    @invariant()
    def pilot_coverage(self) -> None:
        """Events only (--hypothesis-show-statistics): which CP states and offers the examples reached."""
        for evse_id, e in self.runtime._evses.items():
            pilot = e.hw.pilot
            assert pilot is not None
            status = pilot.status()
            if status["state"] is not None:
                event(f"pilot {status['state']}")
            if status["advertised_a"] > 0 and self.sim.b.plant.evses[evse_id].contactor.coil_energized:
                event("charging on a pilot offer")
            for fault in e.state.faults if e.state is not None else ():
                if str(fault).startswith(("pilot_", "ev_")):
                    event(f"fault {fault}")


PilotChargerMachine.TestCase.settings = settings(
    max_examples=200 * SCALE,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestPilotChargerMachine = PilotChargerMachine.TestCase
