"""One recorded line of an EVSE as a scenario reads it: its trace, its value at a time, its latest value.

The base of hil.line_views.LineView (logic lines) and hil.pilot_views.ValueView (the PWM duty, the CP state, the
car's current), which add the checks of their kind.
"""

from __future__ import annotations

from hil.checks import CheckFailed, CheckRecorder
from hil.profile import ROLE_LABELS
from hil.timeline import Trace


class RecordedLine:
    """The line ``evse{evse_id}.{role}`` of the bench's timeline."""

    missing = "the bench does not watch this line"  # why the trace can be absent, for the failure text

    def __init__(self, bench: CheckRecorder, evse_id: int, role: str) -> None:
        """Read ``role`` of EVSE ``evse_id`` from ``bench``'s timeline."""
        self.bench = bench
        self.evse_id = evse_id
        self.role = role
        self.key = f"evse{evse_id}.{role}"
        self.name = f"EVSE {evse_id} {ROLE_LABELS.get(role, role)}"

    @property
    def trace(self) -> Trace:
        """The recorded line (CheckFailed if the bench does not record it)."""
        trace = self.bench.timeline.traces.get(self.key)
        if trace is None:
            raise CheckFailed(f"{self.name}: {self.missing}")
        return trace

    def at(self, t: float) -> float | None:
        """The value at scenario time ``t``."""
        return self.trace.at(t)

    @property
    def value(self) -> float | None:
        """The latest value."""
        return self.trace.last
