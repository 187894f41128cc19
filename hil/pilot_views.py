"""The control pilot's lines as a scenario checks them: the DUT's PWM duty, the CP state the car presents, the car's
current. Each is a value over time, so its checks are "reaches this value within" and "holds this value for".

The duty a current must give is computed here from IEC 61851-1 Annex A (``iec_duty``), independently of the DUT's
own table (drivers.pilot.duty), so a wrong formula in the DUT shows as a wrong duty on the bench.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from hil.checks import CheckRecorder
from hil.profile import CP_RANK
from hil.recorded_line import RecordedLine
from hil.timeline import CheckRecord

CP_LETTER = {rank: letter for letter, rank in CP_RANK.items()}
CURRENT_TOL_A = 0.5
"""How far the car's current may be from what it should draw (the offer it reads, or its own maximum)."""


def iec_duty(amps: float) -> float:
    """The PWM duty (%) that offers ``amps`` (6 to 80 A): A / 0.6 up to 51 A, A / 2.5 + 64 above (IEC 61851-1
    Annex A, the duty cycle provided by the EVSE)."""
    if not 6.0 <= amps <= 80.0:
        raise ValueError(f"{amps!r} A cannot be offered on the pilot (6 to 80 A)")
    return amps / 0.6 if amps <= 51.0 else amps / 2.5 + 64.0


class ValueView(RecordedLine):
    """One recorded line whose value is checked against a wanted value (within a tolerance)."""

    missing = "the bench does not record this line (no control pilot wired)"

    def __init__(self, bench: CheckRecorder, evse_id: int, role: str, tol: float) -> None:
        """The line ``evse{evse_id}.{role}``; values within ``tol`` of the wanted one count as it."""
        super().__init__(bench, evse_id, role)
        self.tol = tol

    def show(self, value: float | None) -> str:
        """A value as the check texts say it."""
        return "nothing" if value is None else f"{value:g}"

    def _near(self, wanted: float) -> Callable[[float | None], bool]:
        """A test of a value: within ``tol`` of ``wanted``."""
        return lambda v: v is not None and abs(v - wanted) <= self.tol + 1e-9

    def _reached(self, ok: Callable[[float | None], bool], since: float, deadline: float) -> float | None:
        """When the line reached a wanted value in time: its current stretch (from ``since`` at the earliest), else
        any change to it inside the window; None if it has not (yet)."""
        trace = self.trace
        if ok(trace.last):
            started = max(trace.times[-1] if trace.times else since, since)
            if started <= deadline:
                return started
        for t, value in trace.changes(since, deadline):
            if ok(value):
                return float(t)
        return None

    async def becomes(self, wanted: float, what: str, within: float, after: float | None = None) -> float:
        """The line is at ``wanted`` (± tol) no later than ``within`` after ``after`` (default: the last action);
        returns when it got there (the latency is in the check's text)."""
        bench = self.bench
        since = bench.last_action if after is None else after
        ok = self._near(wanted)
        return await bench._check_within(
            f"{self.name} {what}", (self.key,), since, within,
            lambda: self._reached(ok, since, since + within),
            lambda: f"it was {self.show(self.at(since + within))} at t={since + within:.2f} s",
        )

    async def holds(self, wanted: float, what: str, for_s: float, after: float | None = None) -> None:
        """The line stays at ``wanted`` (± tol) for ``for_s`` seconds from ``after`` (default: now)."""
        bench = self.bench
        since = bench.now() if after is None else after
        until = since + for_s
        await bench._settle(until)
        ok = self._near(wanted)
        bad = [(t, v) for t, v in self.trace.changes(since, until) if not ok(v)]
        start = self.at(since)
        if not ok(start):
            bad.insert(0, (since, start if start is not None else math.nan))
        bench._record(CheckRecord(
            f"{self.name} stays {what} for {for_s:.2f} s", not bad, since, until, (self.key,), None,
            "" if not bad else f"it was {self.show(bad[0][1])} at t={bad[0][0]:.3f} s"))


class DutyView(ValueView):
    """The DUT's PWM duty on CP (%): 100 % is a steady +12 V (no PWM, nothing offered)."""

    def show(self, value: float | None) -> str:
        """A duty in percent."""
        return "unknown" if value is None else f"{value:.2f} %"

    async def offers(self, amps: float, within: float, after: float | None = None) -> float:
        """The PWM offers ``amps``: its duty is IEC 61851-1's for that current (± the bench's duty tolerance)."""
        duty = iec_duty(amps)
        return await self.becomes(duty, f"offers {amps:g} A ({duty:.2f} %)", within, after)

    async def steady(self, within: float, after: float | None = None) -> float:
        """No PWM: a steady +12 V (100 %), nothing offered."""
        return await self.becomes(100.0, "steady +12 V (no PWM)", within, after)

    async def stays_offering(self, amps: float, for_s: float, after: float | None = None) -> None:
        """The PWM keeps offering ``amps``."""
        duty = iec_duty(amps)
        await self.holds(duty, f"offering {amps:g} A ({duty:.2f} %)", for_s, after)

    async def stays_steady(self, for_s: float, after: float | None = None) -> None:
        """No PWM for ``for_s`` seconds."""
        await self.holds(100.0, "steady +12 V (no PWM)", for_s, after)


class CpView(ValueView):
    """The CP state the car presents to the DUT (A..F), recorded as its rank (hil.profile.CP_RANK)."""

    def show(self, value: float | None) -> str:
        """A rank as its state's letter."""
        return "unknown" if value is None else CP_LETTER.get(round(value), "?")

    async def shows(self, state: str, within: float, after: float | None = None) -> float:
        """The line shows ``state`` (A..F) no later than ``within`` after ``after``."""
        return await self.becomes(float(CP_RANK[state]), f"shows {state}", within, after)

    async def stays(self, state: str, for_s: float, after: float | None = None) -> None:
        """The line keeps showing ``state``."""
        await self.holds(float(CP_RANK[state]), state, for_s, after)


class CurrentView(ValueView):
    """The current the car draws (A per phase), as the plant's meter sees it."""

    def show(self, value: float | None) -> str:
        """A current in amperes."""
        return "unknown" if value is None else f"{value:.2f} A"

    async def reaches(self, amps: float, within: float, after: float | None = None) -> float:
        """The car draws ``amps`` (± CURRENT_TOL_A) no later than ``within`` after ``after``."""
        return await self.becomes(amps, f"at {amps:g} A", within, after)

    async def stays_at(self, amps: float, for_s: float, after: float | None = None) -> None:
        """The car keeps drawing ``amps`` (± CURRENT_TOL_A)."""
        await self.holds(amps, f"at {amps:g} A", for_s, after)
