"""Transactions from the controller's EVSE status: when one starts, what changes during it, when and why it ends.

Version-neutral (2.0.1 TransactionEvent, 1.6 Start/StopTransaction are built from the same ``TxEvent``s). The
station feeds each EVSE's entry of ``Charger.status()`` (and what it knows about tokens and remote commands) to
``TransactionTracker.observe``; the tracker compares the EVSE's conditions with the configured start and stop
points (OCPP 2.0.1 E01/E06, TxCtrlr.TxStartPoint / TxStopPoint):

- EVConnected: the cable is plugged in (``plugged_in``);
- Authorized: a session holds an authorization (phase ``authorized``, ``locking`` or ``charging``);
- PowerPathClosed: the contactor is closed (confirmed by its auxiliary contact).

A transaction starts when any start point's condition becomes true, and ends when any stop point's condition
becomes false. Its end reason is what caused that: the session's token again (Local), a remote stop (Remote),
the cable pulled (EVDisconnected), a fault (Other, with the fault named), the EVSE made Inoperative or a reset.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

AUTHORIZED_PHASES = frozenset({"authorized", "locking", "charging"})
DRAWING_W = 10.0  # below this power a closed contactor delivers nothing: the EV is suspended (SuspendedEV)


class TxPoint(StrEnum):
    """A transaction start or stop point this station can detect (2.0.1 TxStartStopPointEnumType)."""

    EV_CONNECTED = "EVConnected"
    AUTHORIZED = "Authorized"
    POWER_PATH_CLOSED = "PowerPathClosed"


class ChargingState(StrEnum):
    """Where the energy transfer is (2.0.1 ChargingStateEnumType)."""

    CHARGING = "Charging"
    EV_CONNECTED = "EVConnected"
    SUSPENDED_EV = "SuspendedEV"
    SUSPENDED_EVSE = "SuspendedEVSE"
    IDLE = "Idle"


class TxEventKind(StrEnum):
    """What a transaction event reports."""

    STARTED = "Started"
    UPDATED = "Updated"
    ENDED = "Ended"


class Trigger(StrEnum):
    """Why an event was sent (2.0.1 TriggerReasonEnumType, the subset this station produces)."""

    AUTHORIZED = "Authorized"
    CABLE_PLUGGED_IN = "CablePluggedIn"
    CHARGING_STATE_CHANGED = "ChargingStateChanged"
    DEAUTHORIZED = "Deauthorized"
    EV_COMMUNICATION_LOST = "EVCommunicationLost"
    EV_CONNECT_TIMEOUT = "EVConnectTimeout"
    METER_VALUE_PERIODIC = "MeterValuePeriodic"
    STOP_AUTHORIZED = "StopAuthorized"
    REMOTE_START = "RemoteStart"
    REMOTE_STOP = "RemoteStop"
    ABNORMAL_CONDITION = "AbnormalCondition"
    RESET_COMMAND = "ResetCommand"
    TRIGGER = "Trigger"


class StopReason(StrEnum):
    """Why a transaction ended (2.0.1 ReasonEnumType, the subset this station produces)."""

    LOCAL = "Local"
    REMOTE = "Remote"
    EV_DISCONNECTED = "EVDisconnected"
    DEAUTHORIZED = "DeAuthorized"
    OTHER = "Other"
    POWER_LOSS = "PowerLoss"
    IMMEDIATE_RESET = "ImmediateReset"
    REBOOT = "Reboot"
    TIMEOUT = "Timeout"


@dataclass(frozen=True, slots=True)
class Conditions:
    """An EVSE's start/stop point conditions and charging state, read from its status entry."""

    ev_connected: bool
    authorized: bool
    power_path_closed: bool
    charging_state: ChargingState
    faults: tuple[str, ...] = ()
    enabled: bool = True

    def holds(self, point: TxPoint) -> bool:
        """Whether ``point``'s condition is true now."""
        return {TxPoint.EV_CONNECTED: self.ev_connected, TxPoint.AUTHORIZED: self.authorized,
                TxPoint.POWER_PATH_CLOSED: self.power_path_closed}[point]


def conditions(evse: Mapping[str, Any]) -> Conditions:
    """The conditions of one EVSE entry of ``Charger.status()``; the charging state is SuspendedEVSE while the
    station offers nothing to a session that holds the car (``limit_a`` 0: a 0 A charging profile or local limit,
    or ``charging_allowed`` false), whether or not the contactor has opened yet."""
    plugged = bool(evse.get("plugged_in"))
    closed = evse.get("contactor") == "closed"
    power = evse.get("power_w")
    paused = not evse.get("charging_allowed", True) or evse.get("limit_a") == 0 or evse.get("current_limit_a") == 0
    if closed and paused and evse.get("phase") in ("locking", "charging"):
        state = ChargingState.SUSPENDED_EVSE  # offered nothing (a 0 A limit, a pause): the contactor is opening
    elif closed:
        drawing = power is not None and abs(float(power)) >= DRAWING_W
        state = ChargingState.CHARGING if drawing else ChargingState.SUSPENDED_EV
    elif plugged:
        phase = evse.get("phase")
        state = ChargingState.SUSPENDED_EVSE if phase in ("locking", "charging") else ChargingState.EV_CONNECTED
    else:
        state = ChargingState.IDLE
    return Conditions(plugged, evse.get("phase") in AUTHORIZED_PHASES, closed, state,
                      tuple(str(f) for f in evse.get("faults") or ()), bool(evse.get("enabled", True)))


@dataclass(frozen=True, slots=True)
class Transaction:
    """An open transaction: its id, EVSE, the token that authorized it and how it started."""

    transaction_id: str
    evse_id: int
    connector_id: int
    id_token: str | None = None
    group_id_token: str | None = None
    reservation_id: int | None = None
    remote_start_id: int | None = None
    charging_state: ChargingState = ChargingState.IDLE
    ev_connected: bool = False  # the cable was plugged in during the transaction
    token_sent: bool = False  # authorized: the idToken went out in an event already (it is sent once, E03.FR.01)
    power_path_closed: bool = False  # the contactor closed during the transaction
    stop_token: str | None = None  # the token that stopped it (its own or one of its group), on its end only

    def to_dict(self) -> dict[str, Any]:
        """JSON shape for the open-transaction store."""
        return {"transaction_id": self.transaction_id, "evse_id": self.evse_id, "connector_id": self.connector_id,
                "id_token": self.id_token, "group_id_token": self.group_id_token,
                "reservation_id": self.reservation_id, "remote_start_id": self.remote_start_id,
                "charging_state": self.charging_state.value, "ev_connected": self.ev_connected,
                "token_sent": self.token_sent, "power_path_closed": self.power_path_closed}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Transaction:
        """Read back ``to_dict``'s shape; KeyError/ValueError/TypeError for a damaged record."""
        return cls(str(data["transaction_id"]), int(data["evse_id"]), int(data["connector_id"]),
                   _opt_str(data.get("id_token")), _opt_str(data.get("group_id_token")),
                   _opt_int(data.get("reservation_id")), _opt_int(data.get("remote_start_id")),
                   ChargingState(data.get("charging_state", "Idle")), bool(data.get("ev_connected")),
                   bool(data.get("token_sent")), bool(data.get("power_path_closed")))


@dataclass(frozen=True, slots=True)
class TxEvent:
    """One event of a transaction to report: the version layer turns it into its protocol's message."""

    kind: TxEventKind
    transaction: Transaction
    trigger: Trigger
    stop_reason: StopReason | None = None
    include_token: bool = False  # the transaction's idToken goes with this event
    meter_context: str = "Sample.Periodic"  # Transaction.Begin, Sample.Periodic, Transaction.End, Trigger
    detail: str = ""  # e.g. the fault that ended it


@dataclass(slots=True)
class _Pending:
    """What the station learned about an EVSE that the status entry cannot say."""

    token: str | None = None
    group: str | None = None
    reservation_id: int | None = None
    remote_start_id: int | None = None
    stop: tuple[Trigger, StopReason] | None = None
    stopped_by: str | None = None  # the token that stopped the session (with a StopAuthorized stop)


@dataclass(slots=True)
class _Evse:
    """The tracker's view of one EVSE."""

    last: Conditions | None = None
    open: Transaction | None = None
    pending: _Pending = field(default_factory=_Pending)


class TransactionTracker:
    """Decides the transaction events of every EVSE from successive status entries."""

    def __init__(self, start_points: Callable[[], Iterable[TxPoint]], stop_points: Callable[[], Iterable[TxPoint]],
                 *, new_id: Callable[[], str] = lambda: str(uuid.uuid4()), all_start_points: bool = False) -> None:
        """``start_points``/``stop_points`` are read at each observation (TxCtrlr variables may change).

        ``all_start_points``: a transaction starts once EVERY start point holds (OCPP 1.6: the cable plugged in
        and the token authorized, in either order), instead of when any one of them becomes true (2.0.1).
        """
        self._start_points = start_points
        self._stop_points = stop_points
        self._new_id = new_id
        self._all_start_points = all_start_points
        self._evses: dict[int, _Evse] = {}

    # ------------------------------------------------------------ what the station tells the tracker

    def restore(self, transactions: Iterable[Transaction]) -> None:
        """Transactions left open by the previous run (the store kept them); ``end_restored`` ends them."""
        for tx in transactions:
            self._evse(tx.evse_id).open = tx

    def end_restored(self, reason: StopReason) -> list[TxEvent]:
        """End every open transaction before any observation (the station restarted: no session survives)."""
        events = []
        for evse in self._evses.values():
            if evse.open is not None and evse.last is None:
                events.append(TxEvent(TxEventKind.ENDED, replace(evse.open, charging_state=ChargingState.IDLE),
                                      Trigger.ABNORMAL_CONDITION, reason, meter_context="Transaction.End",
                                      detail="the station restarted"))
                evse.open = None
        return events

    def token_accepted(self, evse_id: int, token: str, group: str | None) -> None:
        """The station's authority accepted ``token`` at this EVSE (it may start a session)."""
        pending = self._evse(evse_id).pending
        pending.token, pending.group = token, group

    def reservation_used(self, evse_id: int, reservation_id: int) -> None:
        """The session at this EVSE used a reservation (its Started event carries the reservation id)."""
        self._evse(evse_id).pending.reservation_id = reservation_id

    def remote_start(self, evse_id: int, remote_start_id: int) -> None:
        """A remote start (RequestStartTransaction) is under way at this EVSE."""
        self._evse(evse_id).pending.remote_start_id = remote_start_id

    def remote_start_refused(self, evse_id: int) -> None:
        """The remote start's token may not charge here: the next session at this EVSE is not a remote start."""
        self._evse(evse_id).pending.remote_start_id = None

    def stopping(self, evse_id: int, trigger: Trigger, reason: StopReason) -> None:
        """The session at this EVSE is being stopped for this reason (token again, remote stop, reset)."""
        self._evse(evse_id).pending.stop = (trigger, reason)

    def stopped_by(self, evse_id: int, token: str) -> None:
        """``token`` stopped the session at this EVSE: the transaction's end names it."""
        self._evse(evse_id).pending.stopped_by = token

    def open(self, evse_id: int) -> Transaction | None:
        """The EVSE's open transaction, if any."""
        return self._evse(evse_id).open

    def open_transactions(self) -> list[Transaction]:
        """Every open transaction, in EVSE order."""
        return [e.open for _, e in sorted(self._evses.items()) if e.open is not None]

    def find(self, transaction_id: str) -> Transaction | None:
        """The open transaction with this id."""
        return next((tx for tx in self.open_transactions() if tx.transaction_id == transaction_id), None)

    # ------------------------------------------------------------ deciding

    def observe(self, evse_id: int, connector_id: int, now: Conditions) -> list[TxEvent]:
        """The events that the change from the last observation of this EVSE to ``now`` makes."""
        evse = self._evse(evse_id)
        before = evse.last
        evse.last = now
        pending = evse.pending
        if evse.open is None:
            # what was learned for a session being set up goes when that session is gone (its authorization or
            # its cable was there and no longer is), not on any change of an idle EVSE: a remote start's id must
            # wait for its token's authorization (F01/F02), and an idle EVSE's LED or meter changes meanwhile
            engaged_before = before is not None and (before.authorized or before.ev_connected)
            if engaged_before and not now.authorized and not now.ev_connected:
                pending.token = pending.group = pending.reservation_id = pending.remote_start_id = None
            pending.stop = None if not now.authorized else pending.stop
            points = list(self._start_points())
            started = [p for p in points if now.holds(p) and (before is None or not before.holds(p))]
            if self._all_start_points and not all(now.holds(p) for p in points):
                return []  # 1.6: the last of the points to become true starts it (it is the one named)
            return [self._start(evse, evse_id, connector_id, now, started[-1 if self._all_start_points else 0])
                    ] if started else []
        return self._follow(evse, now)

    def _start(self, evse: _Evse, evse_id: int, connector_id: int, now: Conditions, point: TxPoint) -> TxEvent:
        """Open a transaction because ``point`` became true."""
        pending = evse.pending
        authorized = now.authorized and pending.token is not None
        tx = Transaction(self._new_id(), evse_id, connector_id, pending.token if authorized else None,
                         pending.group if authorized else None, pending.reservation_id, pending.remote_start_id,
                         now.charging_state, now.ev_connected, token_sent=authorized,
                         power_path_closed=now.power_path_closed)
        evse.open = tx
        pending.reservation_id = pending.remote_start_id = None
        if tx.remote_start_id is not None:
            trigger = Trigger.REMOTE_START
        else:
            trigger = {TxPoint.EV_CONNECTED: Trigger.CABLE_PLUGGED_IN, TxPoint.AUTHORIZED: Trigger.AUTHORIZED,
                       TxPoint.POWER_PATH_CLOSED: Trigger.CHARGING_STATE_CHANGED}[point]
        return TxEvent(TxEventKind.STARTED, tx, trigger, include_token=authorized, meter_context="Transaction.Begin")

    def _follow(self, evse: _Evse, now: Conditions) -> list[TxEvent]:
        """Updates of an open transaction, and its end when a stop point's condition fell."""
        tx = evse.open
        assert tx is not None
        pending = evse.pending
        events: list[TxEvent] = []
        if now.authorized and not tx.token_sent and pending.token is not None:
            # a remote start on a transaction the cable started (F01): this event names it, with its id (F01.FR.25)
            remote = pending.remote_start_id
            tx = replace(tx, id_token=pending.token, group_id_token=pending.group, token_sent=True,
                         remote_start_id=tx.remote_start_id if remote is None else remote)
            pending.remote_start_id = None
            trigger = Trigger.AUTHORIZED if remote is None else Trigger.REMOTE_START
            events.append(TxEvent(TxEventKind.UPDATED, tx, trigger, include_token=True))
        if now.ev_connected and not tx.ev_connected:
            tx = replace(tx, ev_connected=True)
            events.append(TxEvent(TxEventKind.UPDATED, tx, Trigger.CABLE_PLUGGED_IN))
        if now.power_path_closed and not tx.power_path_closed:
            tx = replace(tx, power_path_closed=True)
        held = {TxPoint.EV_CONNECTED: tx.ev_connected, TxPoint.AUTHORIZED: tx.token_sent,
                TxPoint.POWER_PATH_CLOSED: tx.power_path_closed}
        # a stop point ends the transaction when its condition, true at some time during it, is false now;
        # and nothing outlives the EVSE going back to rest (no authorization, no cable, contactor open)
        fallen = [p for p in self._stop_points() if held[p] and not now.holds(p)]
        at_rest = not (now.authorized or now.ev_connected or now.power_path_closed)
        if fallen or at_rest:
            trigger, reason, detail = self._why_ended(pending, now, tx, fallen[0] if fallen else TxPoint.EV_CONNECTED)
            evse.open = None
            pending.stop = None
            pending.token = pending.group = None
            by_token = trigger is Trigger.STOP_AUTHORIZED
            stop_token = (pending.stopped_by or tx.id_token) if by_token else None
            pending.stopped_by = None
            ended = replace(tx, charging_state=now.charging_state, stop_token=stop_token)
            # the driver ended the authorization: the Ended event carries the token that did (2.0.1 idToken)
            events.append(TxEvent(TxEventKind.ENDED, ended, trigger, reason, include_token=by_token,
                                  meter_context="Transaction.End", detail=detail))
            return events
        if now.charging_state is not tx.charging_state:
            tx = replace(tx, charging_state=now.charging_state)
            events.append(TxEvent(TxEventKind.UPDATED, tx, Trigger.CHARGING_STATE_CHANGED))
        evse.open = tx
        return events

    @staticmethod
    def _why_ended(pending: _Pending, now: Conditions, tx: Transaction,
                   point: TxPoint) -> tuple[Trigger, StopReason, str]:
        """The trigger and stop reason of an end caused by ``point`` falling."""
        if now.faults:
            return Trigger.ABNORMAL_CONDITION, StopReason.OTHER, ", ".join(now.faults)
        if pending.stop is not None:
            return pending.stop[0], pending.stop[1], ""
        if not tx.ev_connected and not now.ev_connected:
            return Trigger.EV_CONNECT_TIMEOUT, StopReason.TIMEOUT, "no cable was plugged in in time"
        if point is TxPoint.EV_CONNECTED or not now.ev_connected:
            return Trigger.EV_COMMUNICATION_LOST, StopReason.EV_DISCONNECTED, ""
        if not now.enabled:
            return Trigger.ABNORMAL_CONDITION, StopReason.OTHER, "the EVSE was made unavailable"
        if point is TxPoint.AUTHORIZED:
            return Trigger.DEAUTHORIZED, StopReason.DEAUTHORIZED, ""
        return Trigger.CHARGING_STATE_CHANGED, StopReason.OTHER, ""

    def force_end(self, evse_id: int, trigger: Trigger, reason: StopReason) -> list[TxEvent]:
        """End the EVSE's open transaction now, whatever its conditions (a remote stop with no session to stop)."""
        evse = self._evse(evse_id)
        tx = evse.open
        if tx is None:
            return []
        evse.open = None
        evse.pending.stop = None
        return [TxEvent(TxEventKind.ENDED, tx, trigger, reason, meter_context="Transaction.End")]

    def periodic(self) -> list[TxEvent]:
        """A MeterValuePeriodic update of every open transaction."""
        return [TxEvent(TxEventKind.UPDATED, tx, Trigger.METER_VALUE_PERIODIC) for tx in self.open_transactions()]

    def _evse(self, evse_id: int) -> _Evse:
        return self._evses.setdefault(evse_id, _Evse())


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


def _opt_int(value: object) -> int | None:
    return None if value is None else int(str(value))
