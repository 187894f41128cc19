"""What the interlock monitor keeps: each ``Violation`` it found, and its notes on each EVSE's plant."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken interlock: which EVSE, which rule, when (runtime monotonic s) and what was read."""

    evse_id: int
    rule: str
    at: float
    why: str
    readings: str
    tags: frozenset[str] = frozenset()  # machine-readable causes, e.g. {"meter-current", "reading-before-open"}

    def __str__(self) -> str:
        return f"EVSE {self.evse_id}: {self.rule} at t={self.at:.3f}: {self.why} [{self.readings}]"


@dataclass
class EvseTrack:
    """What the monitor noted about one EVSE's plant: when things last changed (runtime monotonic s)."""

    coil_changed_at: float
    contacts_changed_at: float
    plug_changed_at: float
    contacts_closed: bool
    plugged: bool
    coil_opened_at: float | None = None
    unlocking: bool = False
    outstanding_command: int | None = None  # the lock driver's command that was outstanding when the coil closed
    weld_reset_at: float | None = None  # the plant repaired or the driver's fault reset by an operator
    contacts_seq: int = 0  # order of the last contacts change among the noted events
    decision_seq: int = -1  # order of the runtime's last lock decision (a move_lock call)
    decision_target: Any = None
    unlock_starts_since_decision: int = 0
    coil_reported: set[str] = field(default_factory=set)  # tags reported since the coil last closed
    unlock_reported: set[str] = field(default_factory=set)  # tags reported since the motor last started unlocking
    pilot_line: str | None = None  # the CP state the plant shows (hil.interlocks.pilot.line_state); None: no pilot
    pilot_changed_at: float = 0.0  # when it last changed
