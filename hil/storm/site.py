"""The stormed charging site: the bookkeeping every storm actor shares, and waiting with a fault-aware bound.

``Site`` holds the controller under test, its simulated plant, the report, who uses which bay,
which fault resources are taken and which EVSEs have a fault in force; the actors (``hil.storm.traffic``,
``hil.storm.faults``, ``hil.storm.memory``) act through it on one simulated clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import traceback
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from controller.port.charger import TokenOutcome
from hil.storm.catalogue import KNOWN_KINDS, PILOT_KINDS
from hil.storm.report import StormReport
from hil.storm.settings import BenchLimits, StormSettings

POLL_S = 0.5  # how often a waiting car or check looks at the EVSE (simulated s)


class Site:
    """The controller and plant of one storm and the bookkeeping its actors share."""

    def __init__(
        self,
        built: Any,
        *,
        seed: int,
        settings: StormSettings,
        limits: BenchLimits,
        wall_clock: Callable[[], datetime],
    ) -> None:
        unknown = set(settings.kinds) - set(KNOWN_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)} (known: {', '.join(KNOWN_KINDS)})")
        self.built = built
        self.runtime = built.runtime
        self.plant = built.plant
        if self.plant is None or self.plant.server is None:
            raise ValueError("a fault storm needs the simulated plant with its meter server (simulated = true)")
        self.pilot_ids = [i for i, sim in self.plant.evses.items() if sim.pilot is not None]  # EVSEs with a CP line
        if set(settings.kinds) & set(PILOT_KINDS) and not self.pilot_ids:
            raise ValueError(f"the fault kinds {', '.join(PILOT_KINDS)} need a charger with control pilots")
        self.seed = seed
        self.s = settings
        self.limits = limits
        self.wall = wall_clock
        self.loop = asyncio.get_running_loop()
        self.report = StormReport(seed=seed, kinds=list(settings.kinds), recovery_bound_s=limits.recovery_bound_s)
        self.evse_ids: list[int] = list(self.runtime.evse_ids())
        self.unit_of = {i: sim.meter.unit_id for i, sim in self.plant.evses.items() if sim.meter is not None}
        self.bays = {i: asyncio.Lock() for i in self.evse_ids}  # held by the car (or probe) using the EVSE
        self.plug_busy = {i: asyncio.Lock() for i in self.evse_ids}  # plug moves (cars, chatter) one at a time
        self.busy: set[str] = set()  # fault resources taken: "wire", "evse<N>"
        self.active = dict.fromkeys(self.evse_ids, 0)  # faults in force per EVSE
        self.quiet_since = dict.fromkeys(self.evse_ids, 0.0)  # when the last fault on it was cleared
        self.plug_changes = dict.fromkeys(self.evse_ids, 0)  # plugged_in flips seen in the event stream
        self.last_plugged: dict[int, Any] = {}
        self.ending = asyncio.Event()
        self.counter = 0
        self.next_rid = 1
        self.t0 = self.loop.time()

    # ------------------------------------------------------------ small helpers

    def now(self) -> float:
        """Simulated seconds since the storm started."""
        return self.loop.time() - self.t0

    def rng(self, actor: str) -> random.Random:
        """An independent random stream per actor, so one actor's draws do not shift another's."""
        return random.Random(f"{self.seed}:{actor}")

    def status(self, evse_id: int) -> dict[str, Any]:
        """The runtime's status document of one EVSE."""
        return self.runtime.evse_status(evse_id)  # type: ignore[no-any-return]

    async def sleep(self, seconds: float) -> bool:
        """Sleep simulated ``seconds``; returns early (True) when the storm is ending."""
        if self.ending.is_set():
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.ending.wait(), timeout=max(0.0, seconds))
            return True
        return False

    def new_token(self, prefix: str) -> str:
        """A token nobody has shown yet."""
        self.counter += 1
        return f"{prefix}-{self.counter}"

    def reservation_id(self) -> int:
        """A reservation id not used yet."""
        rid, self.next_rid = self.next_rid, self.next_rid + 1
        return rid

    def take(self, names: set[str]) -> bool:
        """Take fault resources, all or none."""
        if names & self.busy:
            return False
        self.busy |= names
        return True

    async def present(self, evse_id: int, token: str) -> TokenOutcome:
        """Show a token at an EVSE (as its RFID reader would) and count the verdict."""
        outcome: TokenOutcome = await self.runtime.present_token(evse_id, token)
        self.report.count("token_verdicts", outcome.verdict.value)
        return outcome

    def on_event(self, event: dict[str, Any]) -> None:
        """Runtime events: reservation ends and plug flips."""
        kind = event.get("type")
        if kind == "reservation_end":
            self.report.count("reservation_ends", str(event.get("reason")))
        elif kind == "evse_state" and event.get("id") in self.plug_changes:
            evse_id, plugged = event["id"], event.get("plugged_in")
            if self.last_plugged.get(evse_id, plugged) != plugged:
                self.plug_changes[evse_id] += 1
            self.last_plugged[evse_id] = plugged

    async def guarded(self, name: str, coro: Awaitable[None]) -> None:
        """Run an actor; an exception escaping it is a finding (the controller's or the storm's)."""
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            tb = "".join(traceback.format_exception(exc)).strip().replace("\n", " | ")[-1500:]
            self.report.add("unhandled", f"t={self.now():.1f}s {name} raised: {tb}")

    # ------------------------------------------------------------ waiting with a fault-aware bound

    async def wait_for(self, evse_id: int, pred: Callable[[dict[str, Any]], bool], what: str) -> bool:
        """Wait until ``pred(status)``; reports the EVSE stuck once the bound has passed with no fault in force.

        The bound counts from the later of now and the last clear on this EVSE (twice the bound then:
        recovery first, the transition after). Keeps waiting after reporting, until the storm ends.
        """
        start = self.now()
        reported = False
        while True:
            if pred(self.status(evse_id)):
                return True
            if self.ending.is_set():
                return False
            if not reported and self.active[evse_id] == 0:
                bound = self.limits.recovery_bound_s
                deadline = max(start + bound, self.quiet_since[evse_id] + 2 * bound)
                if self.now() > deadline:
                    reported = True
                    st = self.status(evse_id)
                    self.report.add("stuck", f"t={self.now():.1f}s EVSE {evse_id}: {what} not within "
                                    f"{self.now() - start:.1f}s (no fault in force): {brief(st)}")
            await self.sleep(POLL_S)


async def settle() -> None:
    """Let callbacks already due (evaluations requested by the last changes) run first."""
    for _ in range(3):
        await asyncio.sleep(0)


def brief(st: dict[str, Any]) -> str:
    """One line of an EVSE status for a finding."""
    keys = ("state", "phase", "faults", "plugged_in", "lock", "contactor", "reserved")
    return ", ".join(f"{k}={st.get(k)}" for k in keys)
