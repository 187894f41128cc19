"""What happened on the bench, and when: one trace per line, labelled markers and check windows.

Times are seconds of ``time.monotonic()`` relative to the start of the scenario. A trace keeps
only changes (a new sample with the same value is dropped), so it reads as a step function.
Waiters are woken on every recorded change; recording happens in the loop thread only.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from drivers.interfaces import StatusColor

RGB = tuple[float, float, float]

STATUS_GLITCH_S = 0.003
"""Channel changes of the RGB status LED closer than this are one colour change (the driver sets r, g, b in turn)."""


@dataclass
class Trace:
    """One line's values over time: (t, value) pairs, t ascending, consecutive values different."""

    key: str  # "evse1.reserved_led"
    evse_id: int
    role: str
    label: str
    kind: str  # "observed" (DUT output), "driven" (DUT input, harness output) or "plant" (e.g. current)
    unit: str = ""  # "" for a logic line (0/1, or PWM duty 0..1), else e.g. "A"
    times: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)

    def add(self, t: float, value: float) -> bool:
        """Append a change; False if the value is unchanged (nothing recorded)."""
        if self.values and self.values[-1] == value:
            return False
        if self.times and t < self.times[-1]:
            t = self.times[-1]  # probes on other threads may report a hair out of order
        self.times.append(t)
        self.values.append(value)
        return True

    def at(self, t: float) -> float | None:
        """The value at ``t`` (the last change at or before it); None before the first sample."""
        i = bisect.bisect_right(self.times, t)
        return self.values[i - 1] if i else None

    def changes(self, since: float, until: float = math.inf) -> list[tuple[float, float]]:
        """Changes with ``since < t <= until``."""
        i = bisect.bisect_right(self.times, since)
        j = bisect.bisect_right(self.times, until)
        return list(zip(self.times[i:j], self.values[i:j], strict=True))

    @property
    def last(self) -> float | None:
        """The newest value."""
        return self.values[-1] if self.values else None


@dataclass(frozen=True, slots=True)
class Marker:
    """A labelled moment: an action of the harness, an event of the DUT, a failure."""

    t: float
    text: str
    kind: str  # "action", "reservation", "token", "fault", "dut", "fail"
    evse_id: int | None = None


@dataclass(frozen=True, slots=True)
class CheckRecord:
    """One assertion on the lines: what was expected, over which window, and whether it held."""

    text: str
    ok: bool
    t_from: float
    t_to: float
    keys: tuple[str, ...]
    seen: float | None = None  # when the expected change happened, if it did
    detail: str = ""
    decided: float = 0.0  # when the check was made (the window may lie in the past)


class Timeline:
    """Traces, markers and checks of one scenario, on one clock."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.t0 = clock()
        self.wall0 = datetime.now(UTC)
        self.traces: dict[str, Trace] = {}
        self.markers: list[Marker] = []
        self.checks: list[CheckRecord] = []
        self.palettes: dict[int, Mapping[StatusColor, RGB]] = {}
        self.ended: float | None = None  # when recording stopped
        self._changed: asyncio.Event | None = None

    # ------------------------------------------------------------ time

    def now(self) -> float:
        """Seconds since the scenario started."""
        return self._clock() - self.t0

    def rel(self, monotonic_s: float) -> float:
        """A ``time.monotonic()`` value as scenario time."""
        return monotonic_s - self.t0

    def wall(self, t: float) -> datetime:
        """The wall-clock time (UTC) of scenario time ``t``."""
        return self.wall0 + timedelta(seconds=t)

    def at_wall(self, when: datetime) -> float:
        """Scenario time of a wall-clock time."""
        return (when - self.wall0).total_seconds()

    # ------------------------------------------------------------ recording

    def trace(self, key: str, *, evse_id: int, role: str, label: str, kind: str, unit: str = "") -> Trace:
        """The trace ``key``, made on first use."""
        existing = self.traces.get(key)
        if existing is None:
            existing = self.traces[key] = Trace(key, evse_id, role, label, kind, unit)
        return existing

    def record(self, key: str, t: float, value: float) -> None:
        """A line took ``value`` at scenario time ``t``."""
        if self.traces[key].add(t, value):
            self._wake()

    def mark(self, text: str, kind: str = "action", evse_id: int | None = None, t: float | None = None) -> Marker:
        """Add a labelled marker (now, unless ``t`` is given)."""
        marker = Marker(self.now() if t is None else t, text, kind, evse_id)
        self.markers.append(marker)
        self._wake()
        return marker

    def add_check(self, record: CheckRecord) -> None:
        """Keep the outcome of a check for the report."""
        self.checks.append(record)

    def _wake(self) -> None:
        if self._changed is not None:
            self._changed.set()

    async def changed(self, timeout_s: float) -> None:
        """Wait until something is recorded, or at most ``timeout_s``."""
        if self._changed is None:
            self._changed = asyncio.Event()
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), max(timeout_s, 0.0))

    # ------------------------------------------------------------ the RGB status LED

    def status_keys(self, evse_id: int) -> tuple[str, str, str] | None:
        """The three channel traces of an EVSE's status LED, if the bench watches them."""
        keys = tuple(f"evse{evse_id}.status_{c}" for c in ("red", "green", "blue"))
        return keys if all(k in self.traces for k in keys) else None  # type: ignore[return-value]

    def status_changes(
        self, evse_id: int, since: float = -math.inf, until: float = math.inf
    ) -> list[tuple[float, str]]:
        """The status LED's colour names over time: (t, colour) at each change, glitches merged."""
        keys = self.status_keys(evse_id)
        if keys is None:
            return []
        traces = [self.traces[k] for k in keys]
        times = sorted({t for tr in traces for t in tr.times})
        clusters: list[float] = []
        for t in times:  # keep the last instant of each burst of channel changes
            if clusters and t - clusters[-1] < STATUS_GLITCH_S:
                clusters[-1] = t
            else:
                clusters.append(t)
        palette = self.palettes.get(evse_id, {})
        out: list[tuple[float, str]] = []
        for t in clusters:
            rgb = tuple(tr.at(t) or 0.0 for tr in traces)
            name = classify(rgb, palette)  # type: ignore[arg-type]
            if not out or out[-1][1] != name:
                out.append((t, name))
        before = [c for c in out if c[0] <= since]
        inside = [c for c in out if since < c[0] <= until]
        return ([before[-1]] if before else []) + inside

    def status_at(self, evse_id: int, t: float) -> str | None:
        """The status LED's colour name at ``t``."""
        changes = [c for c in self.status_changes(evse_id, until=t)]
        return changes[-1][1] if changes else None

    def rgb_spans(self, evse_id: int, until: float) -> list[tuple[float, float, RGB]]:
        """(start, end, rgb) spans of the status LED, for drawing it in its own colours."""
        keys = self.status_keys(evse_id)
        if keys is None:
            return []
        traces = [self.traces[k] for k in keys]
        times = sorted({t for tr in traces for t in tr.times if t <= until})
        spans = []
        for start, end in zip(times, [*times[1:], until], strict=True):
            if end > start:
                rgb = tuple(min(1.0, max(0.0, tr.at(start) or 0.0)) for tr in traces)
                spans.append((start, end, rgb))
        return spans  # type: ignore[return-value]


def classify(rgb: RGB, palette: Mapping[StatusColor, RGB]) -> str:
    """The palette colour an LED shows: by hue (normalised channels), so a dimmed pulse is still its colour."""
    peak = max(rgb)
    if peak < 0.05:
        return StatusColor.OFF.value
    norm = tuple(c / peak for c in rgb)
    best, best_d = "other", math.inf
    for color, ref in palette.items():
        if color is StatusColor.OFF or max(ref) <= 0:
            continue
        ref_norm = tuple(c / max(ref) for c in ref)
        d = sum((a - b) ** 2 for a, b in zip(norm, ref_norm, strict=True))
        if d < best_d:
            best, best_d = color.value, d
    return best if best_d < 0.3 else "other"

