"""The storm's fault episodes: inject a fault from the catalogue, hold it, clear it, prove the recovery.

Faults come at random and are each held for a random time, then cleared: meter silence, broken
CRCs and late answers on the meter wire, the USB adapter vanishing and returning, plug input
chatter, lock jams and a welded contactor (cleared by the repair plus the operator reset); where
the EVSEs have a control pilot, also the car's faults: a CP shorted to PE, a shorted diode, a car
drawing more than offered (cleared when the car is repaired; the latched ones when it has left).
After every clear, within ``BenchLimits.recovery_bound_s`` each affected EVSE must be Available or
Occupied with no fault and, where the bay is free and nothing is reserved, a probe session must
be accepted and charge.

A car's own fault (a shorted diode, an over-current) stays latched until the car has left: its session
must hand the car back (the lock released through the unlock interlock) so that its driver can take it
away; a car left locked in shows as unrecovered or stuck.
"""

from __future__ import annotations

import asyncio
import contextlib
import random

from controller.port.charger import SimFaultKind, TokenVerdict
from hil.storm.catalogue import CAR_KINDS, LATCHED_FAULTS, PILOT_KINDS, WIRE_KINDS, hold_time, resources
from hil.storm.site import POLL_S, Site, brief
from hil.storm.traffic import Traffic

OK_STATES = ("Available", "Occupied")
"""EVSE states that count as recovered (with no fault listed)."""


class FaultEpisodes:
    """Starts fault episodes at random on one ``Site`` and proves each recovery (probes use the ``Traffic``)."""

    def __init__(self, site: Site, traffic: Traffic) -> None:
        self.site = site
        self.traffic = traffic
        self.episodes: set[asyncio.Task[None]] = set()

    async def injector(self) -> None:
        """Start a fault episode now and then; kinds and EVSEs at random, resources permitting."""
        site = self.site
        rng = site.rng("faults")
        kinds = list(site.s.kinds)
        if not kinds:
            return
        turn = 0
        while not await site.sleep(rng.expovariate(1.0 / site.s.fault_interval_mean_s)):
            kind = kinds[turn % len(kinds)] if rng.random() < 0.5 else rng.choice(kinds)  # every kind, often
            candidates = self.candidates(kind)
            if not candidates:
                continue  # a car's fault without a car: the rotation tries this kind again next time
            turn += 1
            evse_id = rng.choice(candidates)
            hold = hold_time(kind, rng)
            episode_rng = random.Random(rng.random())
            episode = self.episode(kind, evse_id, hold, episode_rng)
            task = asyncio.ensure_future(site.guarded(f"{kind} episode", episode))
            self.episodes.add(task)
            task.add_done_callback(self.episodes.discard)

    def candidates(self, kind: str) -> list[int]:
        """The EVSEs a fault of ``kind`` may hit now: any; a car's fault (the pilot kinds) a car that charges, else
        (but an over-current, which shows only while it charges) one that is plugged, else none: the injector tries
        again later."""
        site = self.site
        if kind not in CAR_KINDS:
            return site.evse_ids
        evses = site.plant.evses
        charging = [i for i in site.pilot_ids if evses[i].contactor.coil_energized]
        if charging or kind == "overcurrent_ev":
            return charging
        return [i for i in site.pilot_ids if evses[i].plugged]

    async def episode(self, kind: str, evse_id: int, hold: float, rng: random.Random) -> None:
        """Inject one fault, hold it, clear it and prove the affected EVSEs recover."""
        site = self.site
        names, affected = resources(kind, evse_id, site.evse_ids)
        if kind in WIRE_KINDS and evse_id not in site.unit_of:
            return
        if not site.take(names):
            return  # something else is going on there; the injector tries again later
        try:
            for i in affected:
                site.active[i] += 1
            started = site.now()
            site.report.count("faults_injected", kind)
            seen = await self.inject_and_hold(kind, evse_id, hold, affected, rng)
            if seen:
                site.report.count("faults_seen", kind)
            cleared_at = site.now()
            for i in affected:
                site.active[i] -= 1
                site.quiet_since[i] = cleared_at
            recovered = [i for i in affected if await self.verify_recovery(kind, i, started, cleared_at)]
            for i in recovered:
                if not site.ending.is_set():
                    await self.probe(kind, i, rng)
        finally:
            site.busy -= names

    async def inject_and_hold(self, kind: str, evse_id: int, hold: float, affected: list[int],
                              rng: random.Random) -> bool:
        """Inject, hold (watching whether the controller notices), clear. Returns whether it noticed."""
        site = self.site
        server = site.plant.server
        sim = site.plant.evses[evse_id]
        unit = [site.unit_of[evse_id]] if evse_id in site.unit_of else []
        if kind == "plug_bounce":
            return await self.spurious_chatter(evse_id, rng)
        if kind == "meter_silent":
            server.go_silent(unit)
        elif kind == "meter_crc":
            server.corrupt_crc(unit)
        elif kind == "meter_late":
            server.answer_late(rng.uniform(0.2, 3.0), unit)  # sometimes still within the client timeout
        elif kind == "adapter_vanish":
            await server.vanish()
        elif kind == "lock_jam":
            if sim.lock is None:
                return False
            sim.lock.jam()
        elif kind == "weld":
            sim.contactor.weld()
        elif kind in PILOT_KINDS:
            sim.pilot.car.fault(kind)
            site.plant.tick()
        seen = False
        end = site.now() + hold
        while site.now() < end and not site.ending.is_set():
            seen = seen or any(site.status(i)["faults"] for i in affected)
            await site.sleep(min(1.0, end - site.now()))
        seen = seen or any(site.status(i)["faults"] for i in affected)
        if kind in WIRE_KINDS:
            server.clear_wire_fault()
        elif kind == "adapter_vanish":
            await server.reappear()
        elif kind in ("lock_jam", "weld"):
            await self.repair(kind, evse_id)
        elif kind in PILOT_KINDS:
            await self.clear_pilot(kind, evse_id)
        return seen

    async def clear_pilot(self, kind: str, evse_id: int) -> None:
        """The car is repaired. Its own faults stay latched until it leaves (state A): its driver takes it away, but
        when the storm is ending no driver comes back for it, so the car is taken away here once the socket lets
        it go (the fault's session hands the car back through the unlock interlock)."""
        site = self.site
        sim = site.plant.evses[evse_id]
        sim.pilot.car.fault("clear")
        site.plant.tick()
        fault = LATCHED_FAULTS.get(kind)
        if fault is None or not site.ending.is_set():
            return
        end = site.now() + site.limits.recovery_bound_s
        while site.now() < end:
            st = site.status(evse_id)
            if fault not in st["faults"] or not sim.plugged:
                return
            if st["phase"] == "idle" and not (sim.lock is not None and sim.lock.locked):
                async with site.plug_busy[evse_id]:
                    with contextlib.suppress(PermissionError):
                        await site.plant.unplug(evse_id)
                site.report.count("pilot_events", "car_taken_at_end")
                return
            await asyncio.sleep(POLL_S)

    async def repair(self, kind: str, evse_id: int) -> None:
        """The technician repairs the mechanism and the operator resets the EVSE's faults.

        The sim's "clear" does both, but also clears every wire fault of the shared meter bus; while
        another EVSE's wire fault is in force the same two steps are taken one by one instead.
        """
        site = self.site
        sim = site.plant.evses[evse_id]
        if "wire" not in site.busy and site.runtime.sim is not None:
            await site.runtime.sim.fault(evse_id, SimFaultKind.CLEAR)
            if kind == "weld":
                site.report.count("weld_clears", "sim_clear")
            return
        sim.contactor.repair()
        if sim.lock is not None:
            sim.lock.unjam()
        site.plant.tick()
        await site.runtime.reset_faults(evse_id)
        if kind == "weld":
            site.report.count("weld_clears", "repair_and_reset")

    async def spurious_chatter(self, evse_id: int, rng: random.Random) -> bool:
        """The plug contact chatters without the plug moving: no plug change may get through the debounce.

        Needs the runtime's evse_state events (plugged_in flips), which the storm's run subscribes to.
        """
        site = self.site
        async with site.plug_busy[evse_id]:
            before = site.plug_changes[evse_id]
            plugged = site.plant.evses[evse_id].plugged
            await self.traffic.chatter(evse_id, plugged, rng)
            await asyncio.sleep(3 * site.limits.plug_debounce_s + 0.05)
            leaked = site.plug_changes[evse_id] != before
        if leaked:
            site.report.add("unrecovered", f"t={site.now():.1f}s EVSE {evse_id}: plug chatter shorter than the "
                            f"debounce changed the plugged state")
        return False  # chatter must never show: a leak is a failure (above), not a detection

    async def verify_recovery(self, kind: str, evse_id: int, started: float, cleared_at: float) -> bool:
        """Within the bound after the clear the EVSE is fault-free (Available or Occupied, no fault)."""
        site = self.site
        bound = site.limits.recovery_bound_s
        while True:
            st = site.status(evse_id)
            if st["state"] in OK_STATES and not st["faults"]:
                break
            if site.now() - cleared_at > bound:
                site.report.add("unrecovered", f"{kind} on EVSE {evse_id} (t={started:.1f}s..{cleared_at:.1f}s): "
                                f"still {brief(st)} {site.now() - cleared_at:.1f}s after the clear "
                                f"(bound {bound:.1f}s)")
                return False
            await asyncio.sleep(0.25)  # not cut short by the end: the last clears are proven too
        took = site.now() - cleared_at
        site.report.count("recoveries_verified", kind)
        site.report.recovery_max_s[kind] = round(max(site.report.recovery_max_s.get(kind, 0.0), took), 3)
        return True

    async def probe(self, kind: str, evse_id: int, rng: random.Random) -> None:
        """A short session right after recovery: the EVSE must accept a token and charge."""
        site, traffic = self.site, self.traffic
        bay = site.bays[evse_id]
        st = site.status(evse_id)
        if bay.locked() or st["plugged_in"] or st["reserved"] or st["phase"] != "idle" or site.runtime.reservations():
            site.report.probes_skipped += 1  # reservations could legitimately refuse a walk-in
            return
        async with bay:
            token = site.new_token("PROBE")
            outcome = await site.present(evse_id, token)
            if outcome.verdict is not TokenVerdict.ALLOWED:
                if outcome.verdict is TokenVerdict.REFUSED_EVSE_NOT_READY:
                    site.report.add("unrecovered", f"after {kind}: EVSE {evse_id} refused a session "
                                    f"({outcome.reason}) at t={site.now():.1f}s")
                else:
                    site.report.probes_skipped += 1
                return
            await traffic.plug(evse_id, True, rng, bounce=False)
            ok = await site.wait_for(evse_id, lambda st: bool(st["charging"]), f"probe after {kind}: charging")
            if ok:
                site.report.probes_charged += 1
                await site.sleep(rng.uniform(5.0, 60.0))
            if site.status(evse_id)["phase"] in ("locking", "charging"):
                await site.present(evse_id, token)
            await traffic.leave(evse_id, rng)
