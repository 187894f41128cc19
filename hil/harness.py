"""What a scenario holds: ``Bench`` (actions on the DUT and the plant) and views of the lines with checks.

Every action is timed and marked on the timeline; every check waits on the recorded lines (never
on sleeps alone), records its window and outcome for the report, prints one progress line, and
raises CheckFailed when the DUT did not do what was expected in time. Unless told otherwise a
check counts from the last action: "the LED turns on within 0.3 s" means 0.3 s after the reserve.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from controller.types import format_rfc3339
from hil.bench import BenchDriver, PlantFault
from hil.dut_api import EventFollower
from hil.profile import ROLE_LABELS, DutTiming, Tolerances
from hil.timeline import CheckRecord, Timeline, Trace

WORDS = {
    "coil": ("energized", "released"),
    "contactor_aux": ("closed", "open"),
    "lock_feedback": ("locked", "unlocked"),
    "plug": ("plugged", "unplugged"),
    "meter_current": ("flowing", "zero"),
}
"""How "on" and "off" read for lines where the words would be odd."""


class CheckFailed(AssertionError):
    """The DUT's lines (or answers) were not what the scenario expects."""


class Progress(Protocol):
    """Where live progress goes (the CLI prints it; tests may collect it)."""

    def step(self, t: float, text: str) -> None: ...

    def check(self, record: CheckRecord) -> None: ...

    def note(self, t: float, text: str) -> None: ...


class QuietProgress:
    """Progress that goes nowhere."""

    def step(self, t: float, text: str) -> None:
        pass

    def check(self, record: CheckRecord) -> None:
        pass

    def note(self, t: float, text: str) -> None:
        pass


def _short(token: str) -> str:
    """A token as shown on the timeline: short enough to read, not the whole secret."""
    return token if len(token) <= 8 else token[:6] + "…"


class Bench:
    """The scenario's handle on the bench: DUT actions, plant actions, line views, checks."""

    def __init__(self, driver: BenchDriver, timeline: Timeline, progress: Progress | None = None) -> None:
        self.driver = driver
        self.profile = driver.profile
        self.tol: Tolerances = driver.profile.tolerance
        self.timeline = timeline
        self.progress = progress or QuietProgress()
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.steps: list[tuple[float, str]] = []
        self.last_action = 0.0
        self._follower: EventFollower | None = None

    # ------------------------------------------------------------ lifecycle (the runner calls these)

    async def start(self) -> None:
        """Open the bench and follow the DUT's events."""
        await self.driver.open(self.timeline)
        self._follower = self.driver.api.follow_events(self._on_event)
        try:
            await asyncio.wait_for(self._follower.connected.wait(), 5.0)
        except TimeoutError:
            self.progress.note(self.now(), "warning: the DUT's event stream did not connect; no DUT event markers")
        self.last_action = self.now()

    async def stop(self) -> None:
        """Stop following events and close the bench (the recording ends now)."""
        self.timeline.ended = self.now()
        if self._follower is not None:
            await self._follower.stop()
        await self.driver.close()

    def _on_event(self, doc: dict[str, Any]) -> None:
        t = self.now()
        self.events.append((t, doc))
        kind = doc.get("type")
        if kind == "reservation_update" and doc.get("reservation_status") != "Placed":
            self.timeline.mark(f"#{doc.get('reservation_id')} {doc.get('reservation_status')}", "reservation", t=t)

    # ------------------------------------------------------------ time and narration

    def now(self) -> float:
        """Seconds since the scenario started."""
        return self.timeline.now()

    def step(self, text: str) -> None:
        """Say what the scenario does next (live progress and the report)."""
        t = self.now()
        self.steps.append((t, text))
        self.progress.step(t, text)

    async def wait(self, seconds: float) -> None:
        """Let time pass (the lines keep being recorded)."""
        await asyncio.sleep(seconds)

    def _action(self, text: str, kind: str, evse_id: int | None = None) -> float:
        marker = self.timeline.mark(text, kind, evse_id)
        self.last_action = marker.t
        return marker.t

    def timing(self, evse_id: int) -> DutTiming:
        """The DUT's configured timings for one EVSE."""
        return self.profile.timing(evse_id)

    def evse(self, evse_id: int) -> EvseView:
        """The lines of one EVSE."""
        return EvseView(self, evse_id)

    # ------------------------------------------------------------ DUT actions (its HTTP API)

    async def reserve(
        self,
        reservation_id: int,
        token: str,
        *,
        evse: int | None = None,
        expires_in: float = 300.0,
        expect: str = "Accepted",
    ) -> float:
        """ReserveNow through the DUT's API; checks the answer. Returns the time of the request."""
        expiry = self.timeline.wall(self.now() + expires_in)
        body: dict[str, Any] = {
            "reservation_id": reservation_id,
            "id_token": token,
            "expiry_time": format_rfc3339(expiry),
        }
        if evse is not None:
            body["evse_id"] = evse
        where = f"@{evse}" if evse is not None else "global"
        t = self.now()
        result = await self.driver.api.reserve(body)
        self.last_action = t
        self.timeline.mark(f"reserve #{reservation_id} {where} {_short(token)} → {result}", "reservation", evse, t=t)
        if result == "Accepted" and expires_in <= 60:  # an expiry the scenario may live to see
            self.timeline.mark(f"#{reservation_id} expiry time", "expiry", evse, t=t + expires_in)
        self._answer(f"reserve #{reservation_id} ({where} for {_short(token)}) answered {expect}", result == expect, t,
                     f"the DUT answered {result}")
        return t

    async def cancel(self, reservation_id: int, *, expect: bool = True) -> float:
        """CancelReservation through the DUT's API; checks whether it cancelled."""
        t = self.now()
        cancelled = await self.driver.api.cancel(reservation_id)
        self.last_action = t
        self.timeline.mark(f"cancel #{reservation_id} → {'cancelled' if cancelled else 'none'}", "reservation", t=t)
        self._answer(f"cancel #{reservation_id} answered {'cancelled' if expect else 'not cancelled'}",
                     cancelled == expect, t, f"cancelled={cancelled}")
        return t

    async def present_token(self, evse_id: int, token: str, *, expect: str | Iterable[str]) -> float:
        """Present a token at an EVSE (as its RFID reader would); checks the DUT's verdict."""
        wanted = {expect} if isinstance(expect, str) else set(expect)
        t = self.now()
        outcome = await self.driver.api.present_token(evse_id, token)
        self.last_action = t
        verdict = str(outcome.get("verdict"))
        self.timeline.mark(f"token {_short(token)} @{evse_id} → {verdict}", "token", evse_id, t=t)
        self._answer(f"token {_short(token)} at EVSE {evse_id} answered {' or '.join(sorted(wanted))}",
                     verdict in wanted, t, f"the DUT answered {verdict}: {outcome.get('reason')}")
        return t

    async def restart_dut(self, down_s: float = 0.5) -> tuple[float, float]:
        """Power-cycle the DUT; returns (power off, API answering again)."""
        t_off = self._action("DUT power off", "action")
        await self.driver.restart_dut(down_s)
        t_on = self._action("DUT up again", "action")
        within = self.tol.restart_s + down_s
        self._answer(f"DUT answers again within {within:.1f} s", t_on - t_off <= within, t_off,
                     f"it took {t_on - t_off:.2f} s")
        return t_off, t_on

    async def reservations_are(self, ids: Iterable[int]) -> None:
        """The DUT's live reservations (GET /reservations) are exactly these ids."""
        t = self.now()
        live = sorted(int(r["reservation_id"]) for r in await self.driver.api.reservations())
        wanted = sorted(ids)
        self._answer(f"DUT holds reservations {wanted or 'none'}", live == wanted, t, f"it holds {live or 'none'}")

    async def dut_event(self, *, within: float, after: float | None = None, **fields: Any) -> float:
        """Wait for a DUT event document whose fields match (e.g. type="reservation_update", ...)."""
        since = self.last_action if after is None else after
        text = "DUT reports " + ", ".join(f"{k}={v}" for k, v in fields.items())

        def found() -> float | None:
            for t, doc in self.events:
                if t >= since - 0.05 and all(doc.get(k) == v for k, v in fields.items()):
                    return t
            return None

        seen = await self._until(found, since + within)
        self._record(CheckRecord(f"{text} within {within:.2f} s", seen is not None, since, since + within, (), seen,
                                 "" if seen is not None else "no such event"))
        return seen if seen is not None else math.nan

    # ------------------------------------------------------------ plant actions

    async def plug(self, evse_id: int) -> float:
        """The EV plugs in."""
        t = self._action(f"plug in @{evse_id}", "action", evse_id)
        await self.driver.plug(evse_id)
        return t

    async def unplug(self, evse_id: int) -> float:
        """The EV unplugs."""
        t = self._action(f"unplug @{evse_id}", "action", evse_id)
        await self.driver.unplug(evse_id)
        return t

    async def bounce_plug(self, evse_id: int, *, plugged: bool, edges: int = 6, interval_s: float = 0.01) -> float:
        """The plug contact chatters, then settles; returns when it settled."""
        self._action(f"plug chatters ×{edges} @{evse_id}", "fault", evse_id)
        settled = await self.driver.bounce_plug(evse_id, plugged, edges, interval_s)
        self.last_action = self.timeline.rel(settled)
        return self.last_action

    async def inject(self, evse_id: int, fault: PlantFault, *, delay_s: float = 0.0) -> float:
        """Play a plant fault."""
        t = self._action(f"FAULT {fault.value} @{evse_id}", "fault", evse_id)
        await self.driver.fault(evse_id, fault, delay_s=delay_s)
        return t

    def demand(self, evse_id: int, current_a: float) -> float:
        """The EV draws ``current_a`` while the contacts are closed."""
        t = self._action(f"EV demand {current_a:g} A @{evse_id}", "action", evse_id)
        self.driver.set_demand(evse_id, current_a)
        return t

    # ------------------------------------------------------------ checks

    def _record(self, record: CheckRecord) -> None:
        record = dataclasses.replace(record, decided=self.now())
        self.timeline.add_check(record)
        self.progress.check(record)
        if not record.ok:
            self.timeline.mark(f"FAIL: {record.text}", "fail", t=min(self.now(), record.t_to))
            raise CheckFailed(f"{record.text}: {record.detail}" if record.detail else record.text)

    def _answer(self, text: str, ok: bool, t: float, detail: str) -> None:
        self._record(CheckRecord(text, ok, t, t, (), t if ok else None, "" if ok else detail))

    async def _check_within(
        self,
        what: str,
        keys: tuple[str, ...],
        since: float,
        within: float,
        reached: Callable[[], float | None],
        why_not: Callable[[], str],
    ) -> float:
        """Record whether ``reached()`` gave a time within ``within`` s of ``since``; that time, or NaN."""
        seen = await self._until(reached, since + within)
        ok = seen is not None
        latency = f"{seen - since:.3f} s" if seen is not None else "never"
        self._record(
            CheckRecord(f"{what} within {within:.2f} s ({latency})", ok, since, since + within, keys, seen,
                        "" if ok else why_not())
        )
        return seen if seen is not None else math.nan

    async def _until(self, probe: Callable[[], float | None], deadline: float) -> float | None:
        """Wait until ``probe()`` gives a time, or until ``deadline`` (scenario time) has passed."""
        while True:
            seen = probe()
            if seen is not None:
                return seen
            remaining = deadline - self.now()
            if remaining < 0:
                return probe()
            await self.timeline.changed(min(remaining + 0.01, 0.05))

    async def _settle(self, until: float) -> None:
        """Wait until scenario time ``until`` (plus a little, so late probes have reported)."""
        while self.now() < until + 0.01:
            await asyncio.sleep(max(0.0, until + 0.01 - self.now()))


class LineView:
    """One recorded line of one EVSE, with the checks a scenario makes on it."""

    def __init__(self, bench: Bench, evse_id: int, role: str) -> None:
        self.bench = bench
        self.evse_id = evse_id
        self.role = role
        self.key = f"evse{evse_id}.{role}"
        self.name = f"EVSE {evse_id} {ROLE_LABELS.get(role, role)}"
        self.words = WORDS.get(role, ("on", "off"))

    @property
    def trace(self) -> Trace:
        """The recorded line (CheckFailed if the bench does not watch it)."""
        trace = self.bench.timeline.traces.get(self.key)
        if trace is None:
            raise CheckFailed(f"{self.name}: the bench does not watch this line")
        return trace

    def at(self, t: float) -> float | None:
        """The line's value at scenario time ``t``."""
        return self.trace.at(t)

    @property
    def value(self) -> float | None:
        """The line's latest value."""
        return self.trace.last

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

    def __init__(self, bench: Bench, evse_id: int) -> None:
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

    def __init__(self, bench: Bench, evse_id: int) -> None:
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
