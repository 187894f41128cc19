"""Property: whatever the hardware reads and whatever users do, the interlocks hold on every step.

A small test rig plays the plant (plug, contactor with or without an aux contact, welds, lock
motor and faults, meter current and faults) and the runtime's evaluation loop around the pure
EvseModel, ChargingSession and decide_outputs. Hypothesis drives it with random action lists;
the checks use their own reading of DESIGN.md's interlocks, not the code under test.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import Phase as SearchPhase

import controller.charging.outputs as policy
from controller.charging.evse import EvseModel, EvseReadings
from controller.charging.outputs import OutputInputs, Outputs, decide_outputs
from controller.charging.session import RUNNING, ChargingSession, Phase
from controller.core.types import Connector, ConnectorState
from drivers.interfaces import ContactorReport, Fault, FaultKind, LedMode, LockPosition, LockReport

THRESHOLD_A = 0.5
L, UL = LockPosition.LOCKED, LockPosition.UNLOCKED
Action = tuple[Any, ...]


@dataclass(frozen=True)
class Fitting:
    """What hardware this EVSE has and how it is configured."""

    lock: bool = True
    meter: bool = True
    aux: bool = True
    lock_when_reserved: bool = True
    meter_fault_state: ConnectorState = ConnectorState.FAULTED
    fault_hold_s: float = 5.0


@dataclass
class Rig:
    """The plant and the runtime's evaluation loop, with the property checked after every action."""

    fit: Fitting
    model: EvseModel = field(init=False)
    session: ChargingSession = field(init=False)
    now: float = 0.0
    plugged: bool = False
    enabled: bool = True
    reserved: bool = False
    coil: bool = False
    aux: bool = False
    contactor_fault: FaultKind | None = None
    lock_commanded: LockPosition = UL
    lock_position: LockPosition = UL
    lock_fault: FaultKind | None = None
    current_a: float = 0.0
    meter_fault: FaultKind | None = None
    trace: list[tuple[Action, Phase, Outputs]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.model = EvseModel(
            1,
            [Connector(1), Connector(2)],
            fault_hold_s=self.fit.fault_hold_s,
            meter_fault_state=self.fit.meter_fault_state,
        )
        self.session = ChargingSession(authorize_timeout_s=30.0)

    # ---------------------------------------------------------------- what the drivers report

    def contactor(self) -> ContactorReport:
        fault = None if self.contactor_fault is None else Fault(self.contactor_fault, self.now)
        return ContactorReport(self.coil, self.aux if self.fit.aux else None, self.now, fault)

    def lock(self) -> LockReport | None:
        if not self.fit.lock:
            return None
        fault = None if self.lock_fault is None else Fault(self.lock_fault, self.now)
        return LockReport(self.lock_commanded, self.lock_position, fault)

    def meter(self) -> Fault | None:
        if not self.fit.meter or self.meter_fault is None:
            return None
        return Fault(self.meter_fault, self.now)

    def current(self) -> float | None:
        """What the runtime hands the policy: None without a meter or with a faulted one."""
        return self.current_a if self.fit.meter and self.meter_fault is None else None

    # ---------------------------------------------------------------- actions

    def act(self, action: Action) -> None:
        kind, *args = action
        if kind == "plug":  # even into a socket the lock says is locked: the sensor is what counts
            self.plugged = args[0]
        elif kind == "unplug":
            self.plugged = False
        elif kind == "enable":
            self.enabled = args[0]
        elif kind == "reserve":
            self.reserved = args[0]
        elif kind == "authorize":
            if self.session.view.phase is Phase.IDLE:
                self.session.authorize("tok", self.now, reservation_used=self.reserved)
        elif kind == "stop":
            self.session.request_stop(self.now)
        elif kind == "tick":
            self.now += args[0]
        elif kind == "settle":  # physics catches up with the commands
            if self.contactor_fault is not FaultKind.CONTACTOR_WELDED:
                self.aux = self.coil
            if self.lock_fault is None:
                self.lock_position = self.lock_commanded
            live = self.aux if self.fit.aux else self.coil
            self.current_a = 16.0 if live and self.plugged else 0.0
        elif kind == "aux":
            self.aux = args[0]
        elif kind == "weld":
            self.contactor_fault, self.aux = FaultKind.CONTACTOR_WELDED, True
        elif kind == "contactor_fault":  # None is the operator reset
            self.contactor_fault = args[0]
            if args[0] is FaultKind.CONTACTOR_FAILED_TO_CLOSE:
                self.coil = False  # the driver drops a coil whose contacts did not follow
        elif kind == "lock_pos":
            self.lock_position = args[0]
        elif kind == "lock_fault":
            self.lock_fault = args[0]
        elif kind == "current":
            self.current_a = args[0]
        elif kind == "meter_fault":
            self.meter_fault = args[0]
        else:  # pragma: no cover - a typo in a hand-written action list
            raise ValueError(kind)
        self.evaluate(action)

    # ---------------------------------------------------------------- the runtime's loop

    def readings(self) -> EvseReadings:
        return EvseReadings(
            plugged=self.plugged,
            contactor=self.contactor(),
            lock=self.lock(),
            meter_fault=self.meter(),
            enabled=self.enabled,
            session_active=self.session.view.phase in RUNNING,
        )

    def evaluate(self, action: Action) -> None:
        contactor = self.contactor()
        lock = self.lock()
        current = self.current()
        for _ in range(4):
            state = self.model.update(self.readings(), self.now)
            before = self.session.view.phase
            phase = self.session.step(
                now=self.now,
                plugged=state.plugged,
                faulted=state.faulted or state.unavailable,
                lock_locked=lock is None or lock.position is L,
                lock_unlocked=lock is None or lock.position is UL,
                contactor_closed_confirmed=contactor.feedback_closed is True
                or (contactor.feedback_closed is None and contactor.commanded_closed),
                contactor_open_confirmed=not contactor.commanded_closed and contactor.feedback_closed is not True,
                current_a=current,
                current_threshold_a=THRESHOLD_A,
                unlock_permitted=policy.unlock_permitted(
                    contactor, current, meter_fitted=self.fit.meter, threshold_a=THRESHOLD_A
                ),
            )
            if before is Phase.STOPPING and phase is not Phase.STOPPING:
                assert safe_to_unlock(contactor, current, self.fit.meter), f"left STOPPING unsafely after {action}"
            if phase is before:
                break
        out = decide_outputs(
            OutputInputs(
                state=state,
                session=self.session.view,
                reserved=self.reserved,
                lock_when_reserved=self.fit.lock_when_reserved,
                lock_fitted=self.fit.lock,
                lock=lock,
                contactor=contactor,
                current_a=current,
                meter_fitted=self.fit.meter,
                current_threshold_a=THRESHOLD_A,
            )
        )
        self.trace.append((action, self.session.view.phase, out))
        self.check(out, state.faults, action)
        self.coil = out.contactor_closed
        if out.lock is not None and self.fit.lock and self.lock_fault is None:
            self.lock_commanded = out.lock

    # ---------------------------------------------------------------- the property

    def check(self, out: Outputs, faults: tuple[FaultKind, ...], action: Action) -> None:
        contactor, lock, current = self.contactor(), self.lock(), self.current()
        view = self.session.view
        where = f"after {action} with {self.fit}: {out}"
        raw_faults = {f.kind for f in (contactor.fault, lock.fault if lock else None, self.meter()) if f is not None}
        assert raw_faults <= set(faults), f"a reported fault is missing from the state {where}"
        if out.lock is UL:
            assert safe_to_unlock(contactor, current, self.fit.meter), f"unlock without the interlock {where}"
            assert not out.contactor_closed, f"unlock with the coil wanted closed {where}"
        if out.contactor_closed:
            assert view.phase in (Phase.LOCKING, Phase.CHARGING) and view.token is not None, f"unauthorized {where}"
            assert self.plugged, f"closed while unplugged {where}"
            if self.fit.lock:
                assert lock is not None and lock.position is L and lock.fault is None, f"lock not confirmed {where}"
            assert not faults and not raw_faults and self.enabled, f"closed with a fault or disabled {where}"
        if self.contactor_fault is FaultKind.CONTACTOR_WELDED or FaultKind.CONTACTOR_WELDED in faults:
            assert not out.contactor_closed and out.lock is not UL, f"welded contactor released {where}"
        assert (out.reserved_led in (LedMode.ON, LedMode.BLINK)) == self.reserved, f"reserved LED wrong {where}"


def safe_to_unlock(contactor: ContactorReport, current_a: float | None, meter_fitted: bool) -> bool:
    """DESIGN.md's unlock interlock, written out independently of controller.charging.outputs."""
    if contactor.commanded_closed or contactor.feedback_closed is True:
        return False
    if contactor.fault is not None and contactor.fault.kind is FaultKind.CONTACTOR_WELDED:
        return False
    current_low = current_a is not None and not math.isnan(current_a) and abs(current_a) <= THRESHOLD_A
    if contactor.feedback_closed is None and not (meter_fitted and current_low):
        return False  # no aux contact: only a meter showing no current confirms open
    return not meter_fitted or current_low


def run(fit: Fitting, actions: Sequence[Action]) -> Rig:
    rig = Rig(fit)
    rig.evaluate(("start",))
    for action in actions:
        rig.act(action)
    return rig


# ------------------------------------------------------------------ strategies

fittings = st.builds(
    Fitting,
    lock=st.booleans(),
    meter=st.booleans(),
    aux=st.booleans(),
    lock_when_reserved=st.booleans(),
    meter_fault_state=st.sampled_from([ConnectorState.FAULTED, ConnectorState.UNAVAILABLE]),
    fault_hold_s=st.sampled_from([0.0, 1.0, 5.0]),
)
FTC = FaultKind.CONTACTOR_FAILED_TO_CLOSE
LOCK_FAULTS = [None, FaultKind.LOCK_FAILED_LOCK, FaultKind.LOCK_FAILED_UNLOCK, FaultKind.LOCK_UNEXPECTED_CHANGE]
METER_FAULTS = [None, None, FaultKind.METER_STALE, FaultKind.METER_NO_RESPONSE]
CURRENTS = [0.0, 0.4, 0.5, 0.6, 16.0, -16.0, float("nan")]
# A flat menu, weighted towards the steps a charging session needs, so sessions get far.
MENU: list[Action] = [
    *[("settle",)] * 6,
    *[("authorize",)] * 3,
    *[("plug", True)] * 3,
    ("unplug",),
    ("stop",),
    ("weld",),
    ("enable", True),
    ("enable", False),
    ("reserve", True),
    ("reserve", False),
    *[("tick", dt) for dt in (0.0, 0.5, 1.0, 5.0, 31.0)],
    ("aux", True),
    ("aux", False),
    ("contactor_fault", None),
    ("contactor_fault", FTC),
    *[("lock_pos", p) for p in LockPosition],
    *[("lock_fault", f) for f in LOCK_FAULTS],
    *[("meter_fault", f) for f in METER_FAULTS],
    *[("current", a) for a in CURRENTS],
]
actions = st.one_of(
    st.sampled_from(MENU),
    st.sampled_from(MENU),
    st.sampled_from(MENU),
    st.tuples(st.just("current"), st.floats(min_value=-40.0, max_value=40.0, allow_nan=False)),
)
# Half the scripts start from a charging session (if the fitting lets one start), half from idle.
CHARGE: list[Action] = [("plug", True), ("authorize",), ("settle",), ("settle",)]
scripts = st.builds(
    lambda start, rest: [*start, *rest], st.sampled_from([[], CHARGE]), st.lists(actions, min_size=20, max_size=80)
)
PROPERTY = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(fit=fittings, script=scripts)
def test_interlocks_hold_on_every_step(fit: Fitting, script: list[Action]) -> None:
    run(fit, script)


# ------------------------------------------------------------------ the rig reaches the interesting states


def test_rig_charges_stops_and_releases_the_car() -> None:
    rig = run(Fitting(), [*CHARGE, ("stop",), ("settle",), ("settle",), ("unplug",)])
    phases = [phase for _, phase, _ in rig.trace]
    assert phases == [
        Phase.IDLE,  # start
        Phase.IDLE,  # plug
        Phase.LOCKING,  # authorize while plugged
        Phase.CHARGING,  # lock confirmed; coil closes
        Phase.CHARGING,  # contacts closed, current flows
        Phase.STOPPING,  # stop: coil opens, aux still closed
        Phase.UNLOCKING,  # aux open, no current
        Phase.IDLE,  # lock open
        Phase.IDLE,  # unplugged
    ]
    closed = [out.contactor_closed for _, _, out in rig.trace]
    assert closed == [False, False, False, True, True, False, False, False, False]
    assert rig.trace[4][2].lock is L and rig.trace[6][2].lock is UL


def test_rig_weld_keeps_the_car_locked() -> None:
    rig = run(Fitting(), [*CHARGE, ("weld",), ("stop",), ("settle",), ("tick", 3600.0), ("settle",)])
    assert rig.session.view.phase is Phase.STOPPING
    assert all(out.lock is L and not out.contactor_closed for _, _, out in rig.trace[5:])


# ------------------------------------------------------------------ the property catches broken policies


def forgets_current(contactor: ContactorReport | None, current_a: float | None, **_: Any) -> bool:
    """A broken unlock interlock: looks at the contactor only, never at the meter."""
    return contactor is not None and not contactor.commanded_closed and contactor.feedback_closed is False


def ignores_lock(session: Any, state: Any, lock: Any, *, lock_fitted: bool) -> bool:
    """A broken close interlock: forgets to wait for the lock."""
    return bool(session.phase in (Phase.LOCKING, Phase.CHARGING) and state.plugged and not state.faults)


# Contactor open by its aux contact, yet the meter sees 10 A (a lying aux contact): the car stays locked.
CURRENT_WITH_OPEN_AUX: list[Action] = [("current", 10.0)]
# Authorized and plugged, the lock has not confirmed yet: the coil stays open.
LOCK_NOT_CONFIRMED: list[Action] = [("plug", True), ("authorize",)]

BROKEN: list[tuple[str, Callable[..., bool], list[Action], str]] = [
    ("unlock_permitted", forgets_current, CURRENT_WITH_OPEN_AUX, "unlock without the interlock"),
    ("close_permitted", ignores_lock, LOCK_NOT_CONFIRMED, "lock not confirmed"),
]


@pytest.mark.parametrize(("name", "broken", "counterexample", "message"), BROKEN, ids=[b[0] for b in BROKEN])
def test_counterexample_passes_the_real_policy_and_fails_a_broken_one(
    monkeypatch: pytest.MonkeyPatch, name: str, broken: Callable[..., bool], counterexample: list[Action], message: str
) -> None:
    run(Fitting(), counterexample)
    monkeypatch.setattr(policy, name, broken)
    with pytest.raises(AssertionError, match=message):
        run(Fitting(), counterexample)


@pytest.mark.parametrize(
    ("name", "broken", "message"), [(b[0], b[1], b[3]) for b in BROKEN], ids=[b[0] for b in BROKEN]
)
def test_the_random_search_finds_a_broken_policy(
    monkeypatch: pytest.MonkeyPatch, name: str, broken: Callable[..., bool], message: str
) -> None:
    monkeypatch.setattr(policy, name, broken)

    @settings(
        PROPERTY,
        derandomize=True,
        report_multiple_bugs=False,
        database=None,
        print_blob=False,
        phases=[SearchPhase.generate],  # finding it is the point; shrinking only costs time
    )
    @given(fit=fittings, script=scripts)
    def prop(fit: Fitting, script: list[Action]) -> None:
        run(fit, script)

    with pytest.raises(AssertionError, match=message):
        prop()
