"""The storm's traffic: cars that come, reserve, charge and leave at every bay, and an operator's reservations.

A walk-in shows its token and plugs in, or a driver reserves (EVSE-specific or global), travels
(sometimes too long: the reservation expires; sometimes the plans change and it is cancelled) and
then shows the token; the car charges for minutes to an hour and a half, is stopped with the same
token and unplugs once the socket lets the plug go; plugs sometimes bounce on the way in and out;
some plug in after their authorization timed out. The operator places reservations nobody comes
for, and cancels some. On a control pilot a car may also get full (it stops asking for energy for
good) or pause (stops asking for a while), and an energy manager sets local limits now and then.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Callable
from datetime import timedelta

from controller.core.types import Reservation, ReservationResult
from hil.storm.site import Site


class Traffic:
    """Cars at each bay and the operator's reservations, acting on one ``Site``."""

    def __init__(self, site: Site) -> None:
        self.site = site

    # ------------------------------------------------------------ cars

    async def car_actor(self, evse_id: int) -> None:
        """Cars arrive at one bay, one after the other."""
        site = self.site
        rng = site.rng(f"car{evse_id}")
        while not site.ending.is_set():
            if await site.sleep(rng.expovariate(1.0 / site.s.car_idle_mean_s)):
                return
            async with site.bays[evse_id]:
                await site.guarded(f"car at EVSE {evse_id}", self.visit(evse_id, rng))

    async def visit(self, evse_id: int, rng: random.Random) -> None:
        """One car: maybe reserve and travel, show the token, plug in, charge, stop, unplug, go."""
        site, report = self.site, self.site.report
        report.cars += 1
        token = site.new_token(f"CAR{evse_id}")
        if rng.random() < site.s.reservation_share:
            is_global = rng.random() < site.s.global_share
            rid = await self.reserve(token, None if is_global else evse_id, rng.uniform(900.0, 3600.0))
            if rid is not None:
                if rng.random() < 0.1:  # plans change: the driver cancels
                    await site.sleep(rng.uniform(60.0, 1200.0))
                    if await site.runtime.cancel(rid):
                        report.reservations_cancelled += 1
                    return
                if await site.sleep(rng.uniform(60.0, 1800.0)):  # travel; beyond the expiry sometimes
                    return
        outcome = await site.present(evse_id, token)
        if not outcome.may_charge:
            return  # the driver goes elsewhere; a reservation left behind expires
        late = rng.random() < site.s.late_plug_share
        delay = site.limits.authorize_timeout_s + rng.uniform(1.0, 60.0) if late else rng.uniform(2.0, 40.0)
        if await site.sleep(delay):
            return
        energy0 = self.energy(evse_id)
        await self.plug(evse_id, True, rng)
        await site.wait_for(
            evse_id,
            lambda st: st["charging"] or st["phase"] in ("idle", "stopping", "unlocking"),
            "charging did not start (nor the session end)",
        )
        charged = bool(site.status(evse_id)["charging"])
        interrupted = False
        if charged:
            report.sessions_started += 1
            duration = math.exp(rng.uniform(math.log(site.s.charge_min_s), math.log(site.s.charge_max_s)))
            plan = self.car_plan(evse_id, rng, duration)
            elapsed = 0.0
            while duration - elapsed > 1e-6 and not interrupted:
                chunk = min(duration - elapsed, site.s.charge_poll_s, *(at - elapsed for at, _ in plan[:1]))
                if await site.sleep(chunk):
                    return
                elapsed += chunk
                while plan and plan[0][0] <= elapsed + 1e-6:
                    plan.pop(0)[1]()
                interrupted = site.status(evse_id)["phase"] not in ("charging", "locking")
        if site.status(evse_id)["phase"] in ("locking", "charging"):
            await site.present(evse_id, token)  # the same token stops the session
        await self.leave(evse_id, rng)
        if charged and not site.ending.is_set():
            report.energy_kwh += max(0.0, self.energy(evse_id) - energy0)
            if interrupted:
                report.sessions_interrupted += 1
            else:
                report.sessions_completed += 1

    async def leave(self, evse_id: int, rng: random.Random) -> None:
        """Wait for the socket to let the plug go, then unplug."""
        site = self.site
        sim = site.plant.evses[evse_id]
        await site.wait_for(
            evse_id,
            lambda st: st["phase"] == "idle" and (sim.lock is None or not sim.lock.locked),
            "the plug was not released after the session",
        )
        if not site.ending.is_set():
            await self.plug(evse_id, False, rng)

    def car_plan(self, evse_id: int, rng: random.Random, duration: float) -> list[tuple[float, Callable[[], None]]]:
        """What a car on a control pilot does by itself while it charges: get full, pause for a while (sorted
        (seconds after the start, action)); nothing (and no draw) without a pilot or with both shares 0."""
        site = self.site
        line = site.plant.evses[evse_id].pilot
        if line is None or not (site.s.car_full_share or site.s.car_pause_share):
            return []
        car = line.car
        plan: list[tuple[float, Callable[[], None]]] = []
        if rng.random() < site.s.car_full_share:
            plan.append((rng.uniform(0.0, duration), self._move("car_full", car.set_full, True)))
        if rng.random() < site.s.car_pause_share:
            start = rng.uniform(0.0, duration)
            plan.append((start, self._move("car_pause", car.want_charge, False)))
            plan.append((start + rng.uniform(30.0, 600.0), self._move(None, car.want_charge, True)))
        return sorted(plan, key=lambda item: item[0])

    def _move(self, name: str | None, act: Callable[[bool], None], value: bool) -> Callable[[], None]:
        """An action of the car's plan: ``act(value)``, counted as ``name`` in the report's pilot events."""

        def move() -> None:
            act(value)
            self.site.plant.tick()
            if name is not None:
                self.site.report.count("pilot_events", name)

        return move

    async def limits(self) -> None:
        """An energy manager sets a local limit on a pilot EVSE now and then (6..16 A, or removes it; never 0, which
        would keep the cars from charging: the stateful property test covers the pause)."""
        site = self.site
        rng = site.rng("limits")
        mean = site.s.limit_interval_mean_s
        if mean <= 0 or not site.pilot_ids:
            return
        while not await site.sleep(rng.expovariate(1.0 / mean)):
            amps = None if rng.random() < 0.4 else round(rng.uniform(6.0, 16.0), 1)
            await site.runtime.set_current_limit(rng.choice(site.pilot_ids), amps)
            site.report.count("pilot_events", "local_limit")

    def energy(self, evse_id: int) -> float:
        """The energy register of the EVSE's simulated meter (kWh; 0 without a meter)."""
        meter = self.site.plant.evses[evse_id].meter
        return 0.0 if meter is None else float(meter.energy_kwh)

    async def plug(self, evse_id: int, plugged: bool, rng: random.Random, *, bounce: bool | None = None) -> None:
        """Plug in or out, bouncing on the way sometimes; the plant then settles the plug for good."""
        site = self.site
        async with site.plug_busy[evse_id]:
            if bounce if bounce is not None else rng.random() < site.s.plug_bounce_share:
                site.report.plug_bounces += 1
                await self.chatter(evse_id, plugged, rng)
            line = site.plant.evses[evse_id].pilot
            if plugged and line is not None:  # a new car: hungry, not full
                line.car.set_full(False)
                line.car.want_charge(True)
            if plugged:
                await site.plant.plug(evse_id)
            else:
                await site.plant.unplug(evse_id)

    async def chatter(self, evse_id: int, final: bool, rng: random.Random) -> None:
        """The plug contact bounces: edges closer together than the debounce time, ending at ``final``."""
        pin = self.site.plant.evses[evse_id].plug
        edges = rng.randint(2, 12)
        for i in range(edges):
            pin.set(final if (edges - i) % 2 == 0 else not final)
            await asyncio.sleep(rng.uniform(0.1, 0.8) * self.site.limits.plug_debounce_s)
        pin.set(final)

    # ------------------------------------------------------------ reservations

    async def reserve(self, token: str, evse_id: int | None, expires_in_s: float) -> int | None:
        """Place a reservation; its id when accepted."""
        site = self.site
        rid = site.reservation_id()
        reservation = Reservation(rid, token, site.wall() + timedelta(seconds=expires_in_s), evse_id=evse_id)
        site.report.reservations_requested += 1
        result: ReservationResult = await site.runtime.reserve(reservation)
        site.report.count("reservation_results", result.value)
        return rid if result is ReservationResult.ACCEPTED else None

    async def operator(self) -> None:
        """Reservations nobody comes for (they expire, or are cancelled), and cancellations."""
        site = self.site
        rng = site.rng("operator")
        while not await site.sleep(rng.expovariate(1.0 / site.s.operator_interval_mean_s)):
            live = site.runtime.reservations()
            if live and rng.random() < 0.35:
                if await site.runtime.cancel(rng.choice(live).reservation_id):
                    site.report.reservations_cancelled += 1
                continue
            evse = None if rng.random() < 0.4 else rng.choice(site.evse_ids)
            await self.reserve(site.new_token("NOSHOW"), evse, rng.uniform(120.0, 5400.0))
