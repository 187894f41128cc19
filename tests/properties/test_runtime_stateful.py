"""Stateful property: whatever users, cars and faults do to the whole simulated charger, it stays safe.

A hypothesis state machine drives the real runtime of the embedded simulated charger (two EVSEs with
locks and meters, drivers on mock pins, meters over Modbus) on a warp loop: reservations (EVSE-specific
and global, a few tokens and ids, expiries seconds to minutes ahead), cancels, tokens (the reserved
one, the running session's, any), plugs and unplugs, injected faults and their repair, enable and
disable, and time passing (50 ms to 10 min). After every step, with the loop settled:

* hil.interlocks.InterlockMonitor saw no interlock violation, neither at any pin change in between
  nor in its state checks now;
* each reserved LED is lit (steady or blinking) exactly for the EVSEs in ``core.reserved_evses()``;
* the controller and drivers logged no exception (an ERROR record with a traceback).

Size: 150 examples of 50 steps, about a minute; ``max_examples`` is multiplied by the environment
variable CHARGER_TEST_SCALE (default 1; the nightly run uses 10). The defects it found are pinned
in test_known_defects.py. The charger here is the plug-line one; test_runtime_stateful_pilot.py runs this
machine on the charger with control pilots, with the car's own rules and limits.
"""

from __future__ import annotations

import contextlib
import os
from datetime import timedelta

import hypothesis.strategies as st
from hypothesis import HealthCheck, event, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from controller.core.types import ConnectorType, Reservation
from controller.port.charger import SimFaultKind

from .warp_sim import WarpSim

SCALE = max(1, int(os.environ.get("CHARGER_TEST_SCALE", "1") or "1"))
# the warp sim's charger has no control pilot (tests/properties/warp_sim.py), so no car to fault
PLUG_LINE_FAULTS = [k for k in SimFaultKind
                    if k not in (SimFaultKind.DIODE_SHORT, SimFaultKind.CP_SHORT, SimFaultKind.OVERCURRENT_EV)]
EVSES = (1, 2)
TOKENS = ("ALICE", "alice", "BOB", "CAROL", "FLEET")
PARENTS = (None, None, "FLEET")
RESERVATION_IDS = (1, 2, 3, 4)

evse_ids = st.sampled_from(EVSES)
tokens = st.sampled_from(TOKENS)
short = st.floats(min_value=0.05, max_value=1.0)
medium = st.floats(min_value=1.0, max_value=30.0)
long = st.floats(min_value=30.0, max_value=600.0)


class ChargerMachine(RuleBasedStateMachine):
    """The whole runtime of the simulated charger under random users, cars, faults and time."""

    def __init__(self) -> None:
        super().__init__()
        self.sim = self.make_sim()
        self.runtime = self.sim.b.runtime
        self.controls = self.runtime.sim
        assert self.controls is not None

    def make_sim(self) -> WarpSim:
        """The charger under test: the plug-line one (test_runtime_stateful_pilot.py runs the one with pilots)."""
        return WarpSim()

    def teardown(self) -> None:
        self.sim.close()

    # ------------------------------------------------------------ reservations

    @rule(
        evse=st.sampled_from((None, *EVSES)),
        token=tokens,
        parent=st.sampled_from(PARENTS),
        rid=st.sampled_from(RESERVATION_IDS),
        expires_in=st.one_of(st.floats(min_value=1.0, max_value=20.0), st.floats(min_value=20.0, max_value=900.0)),
        connector_type=st.sampled_from((None, None, ConnectorType.sType2, ConnectorType.Unknown, ConnectorType.cCCS2)),
    )
    def reserve(
        self,
        evse: int | None,
        token: str,
        parent: str | None,
        rid: int,
        expires_in: float,
        connector_type: ConnectorType | None,
    ) -> None:
        reservation = Reservation(
            reservation_id=rid,
            id_token=token,
            expiry_time=self.sim.wall() + timedelta(seconds=expires_in),
            parent_id_token=parent,
            evse_id=evse,
            connector_type=connector_type,
        )
        self.sim.run(self.runtime.reserve(reservation))

    @rule(rid=st.sampled_from(RESERVATION_IDS))
    def cancel(self, rid: int) -> None:
        self.sim.run(self.runtime.cancel(rid))

    # ------------------------------------------------------------ tokens

    @rule(evse=evse_ids, token=tokens)
    def present_any_token(self, evse: int, token: str) -> None:
        self.sim.run(self.runtime.present_token(evse, token))

    @rule(evse=evse_ids, pick=st.integers(min_value=0, max_value=7), parent=st.booleans(), fallback=tokens)
    def present_reserved_token(self, evse: int, pick: int, parent: bool, fallback: str) -> None:
        """The token (or parent token) of a live reservation, preferably one for this EVSE (else ``fallback``).

        Everything is drawn up front, whatever the runtime's state: a draw that depends on it would make
        hypothesis's data generation differ between runs of one example (a run is not exactly reproducible:
        the Modbus driver's quiet gaps follow the real clock).
        """
        live = self.runtime.reservations()
        mine = [r for r in live if r.evse_id == evse] or live
        token = fallback
        if mine:
            r = mine[pick % len(mine)]
            token = r.parent_id_token if parent and r.parent_id_token is not None else r.id_token
        self.sim.run(self.runtime.present_token(evse, token))

    @rule(evse=evse_ids, fallback=tokens)
    def present_session_token_again(self, evse: int, fallback: str) -> None:
        """The token of the session at this EVSE again (it stops a running session), else ``fallback``."""
        token = self.runtime._evses[evse].session.view.token or fallback
        self.sim.run(self.runtime.present_token(evse, token))

    @rule(evse=evse_ids, token=tokens, use_reserved=st.booleans(), after=st.floats(min_value=0.0, max_value=2.0))
    def car_arrives(self, evse: int, token: str, use_reserved: bool, after: float) -> None:
        """A driver shows a token (a reservation's for this EVSE, if asked and there is one), then plugs in."""
        if use_reserved:
            mine = [r for r in self.runtime.reservations() if r.evse_id in (evse, None)]
            token = mine[0].id_token if mine else token
        self.sim.run(self.runtime.present_token(evse, token))
        self.sim.advance(after)
        self.sim.run(self.controls.plug(evse))

    # ------------------------------------------------------------ cars

    @rule(evse=evse_ids)
    def plug(self, evse: int) -> None:
        self.sim.run(self.controls.plug(evse))

    @rule(evse=evse_ids)
    def unplug(self, evse: int) -> None:
        with contextlib.suppress(PermissionError):  # the plug is locked in: the car cannot leave yet
            self.sim.run(self.controls.unplug(evse))

    # ------------------------------------------------------------ operator and faults

    @rule(evse=evse_ids, kind=st.sampled_from([*PLUG_LINE_FAULTS, SimFaultKind.CLEAR]))  # repairs twice as likely
    def fault(self, evse: int, kind: SimFaultKind) -> None:
        self.sim.run(self.controls.fault(evse, kind))

    @rule(evse=evse_ids, enabled=st.booleans())
    def set_enabled(self, evse: int, enabled: bool) -> None:
        self.sim.run(self.runtime.set_enabled(evse, enabled))

    # ------------------------------------------------------------ time

    @rule(seconds=st.one_of(short, medium, long))
    def wait(self, seconds: float) -> None:
        self.sim.advance(seconds)

    @rule(seconds=st.floats(min_value=0.05, max_value=3.0))
    def wait_a_little(self, seconds: float) -> None:
        """Short waits twice as often: most of what happens (locks, contactors, debounce) takes well under 3 s."""
        self.sim.advance(seconds)

    # ------------------------------------------------------------ the properties

    @invariant()
    def safe_and_consistent(self) -> None:
        problems = self.sim.problems()
        assert not problems, "\n".join(problems) + "\n" + self._describe()
        for e in self.runtime._evses.values():  # coverage, in --hypothesis-show-statistics
            event(f"reached phase {e.session.view.phase.value}")
            if self.sim.b.plant.evses[e.evse_id].contactor.contacts_closed:
                event("contacts closed")

    def _describe(self) -> str:
        evses = self.runtime._evses.items()
        lines = [f"EVSE {i}: phase={e.session.view.phase.value} state={e.state}" for i, e in evses]
        lines.append(f"reservations: {self.runtime.reservations()}")
        return "\n".join(lines)


# About a minute in CI (an example of 50 steps takes ~0.3 s on the warp loop); the nightly run scales it up.
ChargerMachine.TestCase.settings = settings(
    max_examples=150 * SCALE,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestChargerMachine = ChargerMachine.TestCase
