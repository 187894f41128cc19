"""The charging flow of one EVSE as a pure state machine; time comes in as ``now`` (monotonic s).

IDLE -> AUTHORIZED -> LOCKING -> CHARGING -> STOPPING -> UNLOCKING -> IDLE. The machine only
says where the session is; the output policy (controller.charging.outputs) turns that into coil and
lock commands and alone enforces the interlocks. STOPPING never moves on without the unlock
interlock's permission, so a session cannot hand the car back while current may flow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum


class Phase(StrEnum):
    """Where a charging session is."""

    IDLE = "idle"  # no session
    AUTHORIZED = "authorized"  # a token may charge; waiting for the plug
    LOCKING = "locking"  # plugged; waiting for the lock to confirm LOCKED
    CHARGING = "charging"  # lock confirmed; the policy may close the contactor
    STOPPING = "stopping"  # the contactor must open; waits for the unlock interlock
    UNLOCKING = "unlocking"  # the lock releases so the car can be unplugged


RUNNING = frozenset({Phase.LOCKING, Phase.CHARGING, Phase.STOPPING})
"""Phases in which the session holds the car (its connector is Occupied, its lock locked)."""


class SessionError(RuntimeError):
    """A session command that the current phase does not allow (a programming error of the caller)."""


@dataclass(frozen=True, slots=True)
class SessionView:
    """Read-only snapshot for the output policy and status."""

    phase: Phase
    token: str | None  # the authorized token (kept; the runtime redacts it for logs)
    reservation_used: bool  # the session started by using a reservation
    authorized_at: float | None
    group_token: str | None = None  # the token's group (OCPP groupIdToken / parentIdTag): its tokens may stop it


_IDLE = SessionView(Phase.IDLE, None, False, None)


class ChargingSession:
    """One EVSE's session: authorize, lock, charge, stop, unlock."""

    def __init__(self, *, authorize_timeout_s: float = 60.0) -> None:
        if isinstance(authorize_timeout_s, bool) or not isinstance(authorize_timeout_s, int | float):
            raise ValueError(f"authorize_timeout_s must be a number of seconds, got {authorize_timeout_s!r}")
        if not math.isfinite(authorize_timeout_s) or authorize_timeout_s <= 0:
            raise ValueError(f"authorize_timeout_s must be finite and > 0, got {authorize_timeout_s!r}")
        self.authorize_timeout_s = float(authorize_timeout_s)
        self._view = _IDLE

    @property
    def view(self) -> SessionView:
        """The current snapshot."""
        return self._view

    @property
    def phase(self) -> Phase:
        """Shorthand for ``view.phase``."""
        return self._view.phase

    def authorize(self, token: str, now: float, *, reservation_used: bool, group_token: str | None = None) -> None:
        """IDLE -> AUTHORIZED for ``token`` (of group ``group_token``, if known; the runtime decided it may charge);
        the plug moves it on."""
        if self._view.phase is not Phase.IDLE:
            raise SessionError(f"authorize: a session is already {self._view.phase.value}")
        if not isinstance(token, str) or not token.strip():
            raise ValueError("authorize: token must be a non-empty string")
        self._view = SessionView(Phase.AUTHORIZED, token, reservation_used, now, group_token)

    def request_stop(self, now: float) -> None:
        """User/API stop or the same token again: a running session goes STOPPING, an unplugged one ends."""
        phase = self._view.phase
        if phase is Phase.AUTHORIZED:
            self._view = _IDLE  # nothing locked or closed yet
        elif phase in (Phase.LOCKING, Phase.CHARGING):
            self._set(Phase.STOPPING)

    def deadline(self) -> float | None:
        """When the AUTHORIZED timeout expires (the runtime schedules a step then), else None."""
        if self._view.phase is not Phase.AUTHORIZED or self._view.authorized_at is None:
            return None
        return self._view.authorized_at + self.authorize_timeout_s

    def step(
        self,
        *,
        now: float,
        plugged: bool,
        faulted: bool,
        lock_locked: bool,
        lock_unlocked: bool,
        contactor_closed_confirmed: bool,
        contactor_open_confirmed: bool,
        current_a: float | None,
        current_threshold_a: float,
        unlock_permitted: bool,
    ) -> Phase:
        """Advance as far as the inputs allow and return the new phase.

        ``faulted`` means "must not charge" (a fault, or unavailable). With no lock fitted the
        runtime passes ``lock_locked`` and ``lock_unlocked`` as True.
        """
        may_release = (
            unlock_permitted
            and contactor_open_confirmed
            and not contactor_closed_confirmed
            and (current_a is None or abs(current_a) <= current_threshold_a)
        )
        for _ in range(len(Phase)):  # each phase is passed at most once per step
            nxt = self._next(now, plugged, faulted, lock_locked, lock_unlocked, may_release)
            if nxt is self._view.phase:
                break
            self._set(nxt)
        return self._view.phase

    def _next(
        self, now: float, plugged: bool, faulted: bool, lock_locked: bool, lock_unlocked: bool, may_release: bool
    ) -> Phase:
        phase = self._view.phase
        if phase is Phase.AUTHORIZED:
            deadline = self.deadline()
            if deadline is not None and now >= deadline:
                return Phase.IDLE
            # a fault before the plug only pauses the session; the timeout still ends it
            return Phase.LOCKING if plugged and not faulted else phase
        if phase is Phase.LOCKING:
            if faulted or not plugged:
                return Phase.STOPPING  # abort through the interlock, never straight to unlocking
            return Phase.CHARGING if lock_locked else phase
        if phase is Phase.CHARGING:
            return Phase.STOPPING if faulted or not plugged else phase
        if phase is Phase.STOPPING:
            return Phase.UNLOCKING if may_release else phase
        if phase is Phase.UNLOCKING:
            return Phase.IDLE if lock_unlocked or not plugged else phase
        return phase

    def _set(self, phase: Phase) -> None:
        if phase is Phase.IDLE:
            self._view = _IDLE
        else:
            v = self._view
            self._view = SessionView(phase, v.token, v.reservation_used, v.authorized_at, v.group_token)
