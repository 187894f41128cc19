"""EVSE state model: what the drivers read becomes connector states, faults and a plugged flag.

Pure and clocked from outside: ``update(readings, now)`` with ``now`` in monotonic seconds.
A fault shows at once and clears only once its reading has been healthy for the hold time,
so a flickering reading cannot toggle a connector (and its reservations) back and forth.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from controller.core.types import Connector, ConnectorState
from drivers.interfaces import ContactorReport, Fault, FaultKind, LockReport

_METER_FAULT_STATES = (ConnectorState.FAULTED, ConnectorState.UNAVAILABLE)
_METER_KINDS = frozenset(
    {
        FaultKind.METER_NO_RESPONSE,
        FaultKind.METER_EXCEPTION_RESPONSE,
        FaultKind.METER_DISCONNECTED,
        FaultKind.METER_BAD_DATA,
        FaultKind.METER_STALE,
    }
)


@dataclass(frozen=True, slots=True)
class EvseReadings:
    """Everything the model needs from one EVSE's drivers and operator, read at one moment."""

    plugged: bool
    contactor: ContactorReport | None  # None: no contactor driver (should not happen in practice)
    lock: LockReport | None  # None: no lock fitted (tethered cable)
    meter_fault: Fault | None  # the meter's fault(now); None if healthy or no meter
    enabled: bool  # operator enable/disable
    session_active: bool  # a charging session runs (from the session machine)
    extra_faults: tuple[Fault, ...] = ()  # faults seen by the runtime itself: the control pilot, EV over-current


@dataclass(frozen=True, slots=True)
class EvseState:
    """The EVSE as the reservation core, the session and the output policy see it."""

    plugged: bool
    faults: tuple[FaultKind, ...]  # active faults after hold logic, sorted
    faulted: bool
    unavailable: bool
    occupied: bool
    connector_states: Mapping[int, ConnectorState]  # every connector of the EVSE
    deadline: float | None  # earliest `now` at which a held fault may clear with unchanged readings


def combine_state(*, faulted: bool, unavailable: bool, occupied: bool) -> ConnectorState:
    """One connector's state from its three conditions (DESIGN.md, "From hardware to state")."""
    if faulted and occupied:
        return ConnectorState.FAULTED_OCCUPIED
    if faulted:
        return ConnectorState.UNAVAILABLE_FAULTED if unavailable else ConnectorState.FAULTED
    if occupied:
        return ConnectorState.OCCUPIED  # unavailable + occupied: the running session wins
    return ConnectorState.UNAVAILABLE if unavailable else ConnectorState.AVAILABLE


def reported_faults(readings: EvseReadings) -> frozenset[FaultKind]:
    """The fault kinds the drivers report right now, before any hold logic."""
    faults = (
        readings.contactor.fault if readings.contactor is not None else None,
        readings.lock.fault if readings.lock is not None else None,
        readings.meter_fault,
    )
    return frozenset(f.kind for f in (*faults, *readings.extra_faults) if f is not None)


class EvseModel:
    """Turns driver readings of one EVSE into its state, holding faults for ``fault_hold_s``."""

    def __init__(
        self,
        evse_id: int,
        connectors: Sequence[Connector],
        *,
        fault_hold_s: float = 5.0,
        meter_fault_state: ConnectorState = ConnectorState.FAULTED,
        session_connector_id: int | None = None,
    ) -> None:
        if isinstance(evse_id, bool) or not isinstance(evse_id, int) or evse_id < 1:
            raise ValueError(f"evse_id must be a positive integer, got {evse_id!r}")
        connectors = tuple(connectors)
        if not connectors:
            raise ValueError(f"evse {evse_id}: connectors must not be empty")
        if not all(isinstance(c, Connector) for c in connectors):
            raise ValueError(f"evse {evse_id}: connectors must be Connector values, got {connectors!r}")
        ids = [c.id for c in connectors]
        if len(set(ids)) != len(ids):
            raise ValueError(f"evse {evse_id}: connector ids are not unique: {ids}")
        if isinstance(fault_hold_s, bool) or not isinstance(fault_hold_s, int | float):
            raise ValueError(f"evse {evse_id}: fault_hold_s must be a number of seconds, got {fault_hold_s!r}")
        if not math.isfinite(fault_hold_s) or fault_hold_s < 0:
            raise ValueError(f"evse {evse_id}: fault_hold_s must be finite and >= 0, got {fault_hold_s!r}")
        if meter_fault_state not in _METER_FAULT_STATES:
            raise ValueError(
                f"evse {evse_id}: meter_fault_state must be Faulted or Unavailable, got {meter_fault_state!r}"
            )
        if session_connector_id is None:
            session_connector_id = ids[0]
        elif session_connector_id not in ids:
            raise ValueError(f"evse {evse_id}: session_connector_id {session_connector_id!r} is not one of {ids}")
        self.evse_id = evse_id
        self.connectors = connectors
        self.fault_hold_s = float(fault_hold_s)
        self.meter_fault_state = meter_fault_state
        self.session_connector_id = session_connector_id
        # kind -> when its reading turned healthy (None while the driver still reports it)
        self._held: dict[FaultKind, float | None] = {}

    def update(self, readings: EvseReadings, now: float) -> EvseState:
        """The state for these readings at ``now``; remembers faults so they clear only after the hold."""
        self._track(reported_faults(readings), now)
        faults = tuple(sorted(self._held))
        meter_fault = any(k in _METER_KINDS for k in faults)
        meter_unavailable = meter_fault and self.meter_fault_state is ConnectorState.UNAVAILABLE
        faulted = any(k not in _METER_KINDS for k in faults) or (meter_fault and not meter_unavailable)
        unavailable = not readings.enabled or meter_unavailable
        occupied = readings.session_active
        states = {
            c.id: combine_state(
                faulted=faulted, unavailable=unavailable, occupied=occupied and c.id == self.session_connector_id
            )
            for c in self.connectors
        }
        return EvseState(
            plugged=readings.plugged,
            faults=faults,
            faulted=faulted,
            unavailable=unavailable,
            occupied=occupied,
            connector_states=MappingProxyType(states),
            deadline=self._deadline(),
        )

    def _track(self, reported: frozenset[FaultKind], now: float) -> None:
        for kind in reported:
            self._held[kind] = None
        for kind, healthy_since in list(self._held.items()):
            if kind in reported:
                continue
            if healthy_since is None:
                healthy_since = self._held[kind] = now
            if now >= healthy_since + self.fault_hold_s:
                del self._held[kind]

    def _deadline(self) -> float | None:
        due = [since + self.fault_hold_s for since in self._held.values() if since is not None]
        return min(due) if due else None
