"""What a scenario holds: ``Bench``, its actions on the DUT (over its API) and on the plant, and its line views.

Every action is timed and marked on the timeline and becomes the "last action" that checks count
from; the DUT's answers are checked at once. The checks on the lines live in hil.line_views and
are judged and recorded as hil.checks describes.
"""


from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterable
from typing import Any

from controller.core.parsing import format_rfc3339
from hil.bench import BenchDriver, PlantFault
from hil.checks import CheckRecorder, Progress
from hil.dut_api import EventFollower
from hil.line_views import EvseView
from hil.meter_reads import MeterReads
from hil.profile import DutTiming
from hil.timeline import CheckRecord, Timeline


def _short(token: str) -> str:
    """A token as shown on the timeline: short enough to read, not the whole secret."""
    return token if len(token) <= 8 else token[:6] + "…"


class Bench(CheckRecorder):
    """The scenario's handle on the bench: DUT actions, plant actions, line views, checks."""

    def __init__(self, driver: BenchDriver, timeline: Timeline, progress: Progress | None = None) -> None:
        super().__init__(timeline, driver.profile.tolerance, progress)
        self.driver = driver
        self.profile = driver.profile
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.steps: list[tuple[float, str]] = []
        self.notes: list[tuple[float, str]] = []
        self._follower: EventFollower | None = None

    # ------------------------------------------------------------ lifecycle (the runner calls these)

    async def start(self, *, ocpp: bool = False) -> None:
        """Open the bench (``ocpp``: with the DUT connected to the harness's CSMS) and follow the DUT's events."""
        await self.driver.open(self.timeline, ocpp=ocpp)
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
        """Keep a DUT event; mark reservation updates (other than Placed) on the timeline."""
        t = self.now()
        self.events.append((t, doc))
        kind = doc.get("type")
        if kind == "reservation_update" and doc.get("reservation_status") != "Placed":
            self.timeline.mark(f"#{doc.get('reservation_id')} {doc.get('reservation_status')}", "reservation", t=t)

    # ------------------------------------------------------------ time and narration

    def step(self, text: str) -> None:
        """Say what the scenario does next (live progress and the report)."""
        t = self.now()
        self.steps.append((t, text))
        self.progress.step(t, text)

    def note(self, text: str) -> None:
        """Keep a finding for the report (e.g. a measured time), next to the steps and checks."""
        t = self.now()
        self.notes.append((t, text))
        self.progress.note(t, text)

    def require(self, text: str, ok: bool, detail: str = "") -> None:
        """A check the scenario decides itself, now (``detail``: why it failed)."""
        self._answer(text, ok, self.now(), detail)

    async def wait(self, seconds: float) -> None:
        """Let time pass (the lines keep being recorded)."""
        await asyncio.sleep(seconds)

    def _action(self, text: str, kind: str, evse_id: int | None = None) -> float:
        """Mark an action on the timeline; it becomes the last action checks count from."""
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

    # ------------------------------------------------------------ the control pilot

    def car(self, evse_id: int, *, wants_charge: bool | None = None, full: bool | None = None,
            max_current_a: float | None = None) -> float:
        """The car on the EVSE's control pilot: asks for energy or stops asking, its battery is full or takes energy
        again, the most it draws."""
        said = []
        if wants_charge is not None:
            said.append("asks for energy" if wants_charge else "stops asking for energy")
        if full is not None:
            said.append("battery full" if full else "battery takes energy again")
        if max_current_a is not None:
            said.append(f"draws at most {max_current_a:g} A")
        t = self._action(f"car {', '.join(said)} @{evse_id}", "action", evse_id)
        self.driver.set_car(evse_id, wants_charge=wants_charge, full=full, max_current_a=max_current_a)
        return t

    def watch_meter(self, evse_id: int) -> MeterReads:
        """Start noting when the DUT reads the EVSE's meter (``stop()`` it); LookupError without a plant meter."""
        meter = self.driver.plant_meter(evse_id)
        if meter is None:
            raise LookupError(f"the bench plays no meter for EVSE {evse_id}")
        return MeterReads(meter, self.timeline)

    async def set_limit(self, evse_id: int, amps: float | None) -> float:
        """The EVSE's local current limit through the DUT's API (0 pauses charging, None removes it); checks that the
        DUT took it."""
        shown = "none" if amps is None else f"{amps:g} A"
        t = self.now()
        doc = await self.driver.api.set_limit(evse_id, amps)
        self.last_action = t
        self.timeline.mark(f"limit {shown} @{evse_id}", "action", evse_id, t=t)
        self._answer(f"limit {shown} at EVSE {evse_id} taken", doc.get("current_limit_a") == amps, t,
                     f"the DUT answered {doc}")
        return t

    async def dut_evse(self, evse_id: int) -> dict[str, Any]:
        """The DUT's /status entry of one EVSE now."""
        for entry in (await self.driver.api.status())["evses"]:
            if entry.get("id") == evse_id:
                return dict(entry)
        raise LookupError(f"the DUT's /status has no EVSE {evse_id}")

    def _evse_states(self, evse_id: int) -> list[tuple[float, dict[str, Any]]]:
        """The DUT's ``evse_state`` events of one EVSE so far, with their arrival times."""
        return [(t, doc) for t, doc in self.events if doc.get("type") == "evse_state" and doc.get("id") == evse_id]

    async def dut_reports(self, evse_id: int, what: str, test: Callable[[dict[str, Any]], bool], *, within: float,
                          after: float | None = None) -> float:
        """The DUT reports the EVSE as ``test`` wants (its ``evse_state`` events, which carry the /status entry) no
        later than ``within`` after ``after`` (default: the last action); the state in effect then counts."""
        since = self.last_action if after is None else after

        def found() -> float | None:
            states = self._evse_states(evse_id)
            before = [(t, doc) for t, doc in states if t <= since]
            if before and test(before[-1][1]):
                return since
            for t, doc in states:
                if since < t <= since + within and test(doc):
                    return t
            return None

        def why_not() -> str:
            states = [doc for t, doc in self._evse_states(evse_id) if t <= since + within]
            if not states:
                return "no state reported"
            last = states[-1]
            return f"it reported {last.get('state')}, faults {last.get('faults')}, pilot {last.get('pilot')}"

        return await self._check_within(f"DUT reports EVSE {evse_id} {what}", (), since, within, found, why_not)

    async def dut_keeps(self, evse_id: int, what: str, test: Callable[[dict[str, Any]], bool], *, for_s: float,
                        after: float | None = None) -> None:
        """The DUT keeps reporting the EVSE as ``test`` wants for ``for_s`` seconds from ``after`` (default: now)."""
        since = self.now() if after is None else after
        until = since + for_s
        await self._settle(until)
        states = self._evse_states(evse_id)
        before = [doc for t, doc in states if t <= since]
        bad = [(since, before[-1] if before else {})] if not (before and test(before[-1])) else []
        bad += [(t, doc) for t, doc in states if since < t <= until and not test(doc)]
        detail = ""
        if bad:
            t, doc = bad[0]
            detail = f"at t={t:.3f} s it reported {doc.get('state')}, faults {doc.get('faults')}"
        self._record(CheckRecord(f"DUT keeps EVSE {evse_id} {what} for {for_s:.2f} s", not bad, since, until, (),
                                 None, detail))
