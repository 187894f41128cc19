"""The lines of one EVSE as a scenario checks them: ``EvseView`` with a ``LineView`` per line and a ``StatusView``.

Unless told otherwise a check counts from the last action: "the LED turns on within 0.3 s" means
0.3 s after the reserve. Every check is recorded through the bench's ``CheckRecorder`` (hil.checks).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from hil.checks import CheckFailed, CheckRecorder
from hil.pilot_views import CURRENT_TOL_A, CpView, CurrentView, DutyView
from hil.recorded_line import RecordedLine
from hil.timeline import CheckRecord

WORDS = {
    "coil": ("energized", "released"),
    "contactor_aux": ("closed", "open"),
    "lock_feedback": ("locked", "unlocked"),
    "plug": ("plugged", "unplugged"),
    "meter_current": ("flowing", "zero"),
}
"""How "on" and "off" read for lines where the words would be odd."""


class LineView(RecordedLine):
    """One recorded line of one EVSE, with the checks a scenario makes on it."""

    def __init__(self, bench: CheckRecorder, evse_id: int, role: str) -> None:
        """The line, and how its "on" and "off" read."""
        super().__init__(bench, evse_id, role)
        self.words = WORDS.get(role, ("on", "off"))

    def _is(self, value: float | None, on: bool) -> bool:
        return value is not None and (value >= 0.5) == on

    def _reached(self, on: bool, since: float, deadline: float) -> float | None:
        """When the line reached the wanted state in time, judged now; None if it has not (yet).

        The state it is in now counts from the start of its current stretch (``since`` at the
        earliest); failing that, any change to the wanted state inside the window counts (a
        blinking LED that turned on in time may be off at the moment of looking).
        """
        trace = self.trace
        if self._is(trace.last, on):
            stretch = trace.times[-1] if trace.times else since
            started = max(stretch, since)
            if started <= deadline:
                return started
        for t, value in trace.changes(since, deadline):
            if self._is(value, on):
                return float(t)
        return None

    async def turns_on(self, within: float, after: float | None = None) -> float:
        """The line is on no later than ``within`` seconds after ``after`` (default: the last action)."""
        return await self._becomes(True, within, after)

    async def turns_off(self, within: float, after: float | None = None) -> float:
        """The line is off no later than ``within`` seconds after ``after``."""
        return await self._becomes(False, within, after)

    async def _becomes(self, on: bool, within: float, after: float | None) -> float:
        bench = self.bench
        since = bench.last_action if after is None else after
        word = self.words[0] if on else self.words[1]
        return await bench._check_within(
            f"{self.name} {word}", (self.key,), since, within,
            lambda: self._reached(on, since, since + within),
            lambda: f"still {self._word(self.at(since + within))} at t={since + within:.2f} s",
        )

    def _word(self, value: float | None) -> str:
        return "unknown" if value is None else (self.words[0] if value >= 0.5 else self.words[1])

    async def stays(self, on: bool, for_s: float, after: float | None = None) -> None:
        """The line stays on (or off) for ``for_s`` seconds from ``after`` (default: now), without a single change."""
        bench = self.bench
        since = bench.now() if after is None else after
        until = since + for_s
        await bench._settle(until)
        bad = [t for t, v in self.trace.changes(since, until) if not self._is(v, on)]
        if not self._is(self.at(since), on):
            bad.insert(0, since)
        word = self.words[0] if on else self.words[1]
        bench._record(
            CheckRecord(
                f"{self.name} stays {word} for {for_s:.2f} s",
                not bad,
                since,
                until,
                (self.key,),
                None,
                "" if not bad else f"it was {self.words[1] if on else self.words[0]} at t={bad[0]:.3f} s",
            )
        )

    def pulses(self, since: float, until: float) -> list[tuple[float, float]]:
        """(start, end) of every on-pulse starting in the window (end = inf if still on)."""
        out: list[tuple[float, float]] = []
        start: float | None = since if self._is(self.at(since), True) else None
        for t, value in self.trace.changes(since, math.inf):
            if self._is(value, True) and start is None:
                if t > until:
                    break
                start = t
            elif not self._is(value, True) and start is not None:
                out.append((start, t))
                start = None
        if start is not None and start <= until:
            out.append((start, math.inf))
        return out

    async def pulses_exactly(
        self, count: int, *, width: float | None = None, within: float, after: float | None = None
    ) -> list[tuple[float, float]]:
        """Exactly ``count`` on-pulses start within the window, each ``width`` long (± the bench's pulse tolerance)."""
        bench = self.bench
        since = bench.last_action if after is None else after
        until = since + within
        tol = bench.tol.pulse_s
        await bench._settle(until + (width + tol if width else 0.0))
        found = self.pulses(since, until)
        problems = []
        if len(found) != count:
            problems.append(f"{len(found)} pulse(s)")
        if width is not None:
            for start, end in found:
                if abs((end - start) - width) > tol:
                    problems.append(f"pulse at t={start:.3f} s lasted {end - start:.3f} s")
        widths = ", ".join(f"{end - start:.3f}" for start, end in found)
        text = f"{self.name}: {count} pulse(s)" + (f" of {width:.2f} s" if width else "") + f" within {within:.2f} s"
        bench._record(
            CheckRecord(
                f"{text} (seen: {widths or 'none'})",
                not problems,
                since,
                until,
                (self.key,),
                found[0][0] if found else None,
                "; ".join(problems),
            )
        )
        return found

    async def never_on(self, for_s: float, after: float | None = None) -> None:
        """The line is not switched on at all for ``for_s`` seconds from ``after`` (default: now)."""
        await self.stays(False, for_s, after)


class StatusView:
    """The RGB status LED of one EVSE, read as colour names (green, amber, blue, red, off)."""

    def __init__(self, bench: CheckRecorder, evse_id: int) -> None:
        self.bench = bench
        self.evse_id = evse_id
        self.name = f"EVSE {evse_id} status LED"
        self.keys = tuple(f"evse{evse_id}.status_{c}" for c in ("red", "green", "blue"))

    def _reached(self, colour: str, since: float, deadline: float) -> float | None:
        """When the LED reached ``colour`` in time (as LineView._reached: its current stretch, else any change)."""
        changes = self.bench.timeline.status_changes(self.evse_id, since)
        if changes and changes[-1][1] == colour and max(changes[-1][0], since) <= deadline:
            return max(changes[-1][0], since)
        for t, name in changes:
            if name == colour and since < t <= deadline:
                return t
        return None

    def at(self, t: float) -> str | None:
        """Colour name at scenario time ``t``."""
        return self.bench.timeline.status_at(self.evse_id, t)

    async def shows(self, colour: str, within: float, after: float | None = None) -> float:
        """The LED shows ``colour`` (steady, blinking or pulsing) no later than ``within`` after ``after``."""
        bench = self.bench
        if bench.timeline.status_keys(self.evse_id) is None:
            raise CheckFailed(f"{self.name}: the bench does not watch the status LED")
        since = bench.last_action if after is None else after
        return await bench._check_within(
            f"{self.name} {colour}", self.keys, since, within,
            lambda: self._reached(colour, since, since + within),
            lambda: f"it showed {self.at(since + within)}",
        )

    async def only(self, colours: Iterable[str], for_s: float, after: float | None = None) -> None:
        """Only these colours ({"red", "off"}: red blinking) for ``for_s`` seconds from ``after`` (default: now)."""
        bench = self.bench
        allowed = set(colours)
        since = bench.now() if after is None else after
        until = since + for_s
        await bench._settle(until)
        bad = [(t, c) for t, c in bench.timeline.status_changes(self.evse_id, since, until) if c not in allowed]
        bench._record(
            CheckRecord(
                f"{self.name} only {'/'.join(sorted(allowed))} for {for_s:.2f} s",
                not bad,
                since,
                until,
                self.keys,
                None,
                "" if not bad else f"it showed {bad[0][1]} at t={max(bad[0][0], since):.3f} s",
            )
        )


class EvseView:
    """The lines of one EVSE by name."""

    def __init__(self, bench: CheckRecorder, evse_id: int) -> None:
        self.evse_id = evse_id
        self.reserved_led = LineView(bench, evse_id, "reserved_led")
        self.status = StatusView(bench, evse_id)
        self.coil = LineView(bench, evse_id, "coil")
        self.lock_motor_lock = LineView(bench, evse_id, "lock_motor_lock")
        self.lock_motor_unlock = LineView(bench, evse_id, "lock_motor_unlock")
        self.plug = LineView(bench, evse_id, "plug")
        self.aux = LineView(bench, evse_id, "contactor_aux")
        self.lock_switch = LineView(bench, evse_id, "lock_feedback")
        self.current = LineView(bench, evse_id, "meter_current")
        # the control pilot (hil.pilot_views): the DUT's PWM, the car's state on CP, what the car draws
        self.duty = DutyView(bench, evse_id, "pilot_duty", bench.tol.duty_pct)
        self.cp = CpView(bench, evse_id, "pilot_state", 0.0)
        self.amps = CurrentView(bench, evse_id, "meter_current", CURRENT_TOL_A)
