"""End to end: the reserving token charges and the same token stops, over the HTTP API, with the event stream.

The order of the physical steps is read from the mock pins' own histories (each change is time-stamped by
gpiozero), so "the lock confirmed before the coil closed" and "the coil opened before the lock moved" are
checked edge by edge, not by sampling.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from .sim_charger import PINS, SimCharger, first_change, run_sim, until, until_async

LAG_S = 0.05
LOCK_S = 0.6  # lock pulse 0.2 s + travel + confirmation, with margin
PLUG_TO_COIL_S = 1.0  # plug debounce 0.05 s + lock pulse 0.2 s + confirmation + aux 0.03 s, with margin
METER_POLL_S = 2.0
PLUG_DEBOUNCE_S = 0.05
HIGH, LOW = 1.0, 0.0


def _dedup(items: list[str]) -> list[str]:
    return [x for i, x in enumerate(items) if i == 0 or items[i - 1] != x]


def test_the_reserving_token_charges_and_the_same_token_stops(tmp_path: Path) -> None:
    """ALICE's token at her reserved EVSE 1: the reservation ends as Used, the LED goes off and the socket opens
    for the plug. Plug in: the lock confirms, then the coil (GPIO17) closes, status "charging" with power. ALICE
    again: the coil opens, then (once the meter shows no current) the lock releases, then the car unplugs."""

    async def scenario(c: SimCharger) -> None:
        pins = PINS[1]
        coil, aux = c.pin(pins.coil), c.pin(pins.aux)
        lock_motor, unlock_motor = c.pin(pins.lock_motor), c.pin(pins.unlock_motor)
        lock_switch = c.pin(pins.lock_switch)
        events = await c.events()
        try:
            assert await c.reserve(1, "ALICE", c.expiry(3600), evse_id=1) == "Accepted"
            await until(lambda: c.reserved_led(1) and c.locked(1), "EVSE 1 reserved and locked", LOCK_S)
            await events.wait("reservation_update", reservation_id=1, reservation_status="Placed")

            # the right token (tokens compare case-insensitively) uses the reservation
            used = await c.token(1, "alice")
            assert used == {"evse_id": 1, "may_charge": True, "verdict": "reservation_used",
                            "reason": "reserved for this token", "reservation_id": 1}
            assert await c.reservations() == []
            await events.wait("reservation_update", reservation_id=1, reservation_status="Used")
            await events.wait("reservation_end", reservation_id=1, reason="UsedToStartCharging", evse_id=1)
            await events.wait("evse_reserved", evse_id=1, reserved=False, reason="UsedToStartCharging")
            await until(lambda: not c.reserved_led(1), "reserved LED off", LAG_S)
            await until(lambda: not c.locked(1), "socket opens for the plug", LOCK_S)
            assert not c.coil(1)
            assert (await c.status(1))["phase"] == "authorized"

            # plug in: lock, then contactor
            await asyncio.sleep(LOCK_S)  # let the unlock command finish before the plug arrives
            mark = time.monotonic()  # the clock of the pins' histories
            await c.plug(1)
            await until(lambda: c.coil(1), "coil GPIO17 energized", PLUG_TO_COIL_S)
            locked_at = first_change(lock_switch, LOW, mark)  # the lock switch reads locked (low)
            coil_on_at = first_change(coil, HIGH, mark)
            assert locked_at < coil_on_at, "the contactor closed before the lock confirmed"
            assert first_change(lock_motor, HIGH, mark) < locked_at

            async def charging() -> bool:
                s = await c.status(1)
                return (s["state"], s["phase"], s["charging"], s["contactor"], s["lock"]) == (
                    "Occupied", "charging", True, "closed", "locked")

            await until_async(charging, "status: Occupied, charging, contactor closed, locked", LAG_S + 0.1)

            async def power_flows() -> bool:
                s = await c.status(1)
                return (s["power_w"] or 0.0) > 1000.0 and s["status_led"] == {"color": "blue", "pattern": "pulse"}

            await until_async(power_flows, "power in status and the status LED pulsing blue", METER_POLL_S + 1.0)
            energy = (await c.status(1))["energy_kwh"]
            await asyncio.sleep(2 * METER_POLL_S)
            assert (await c.status(1))["energy_kwh"] > energy

            # the same token stops: contactor open first, lock kept until no current flows, then released
            mark = time.monotonic()  # the clock of the pins' histories
            stopped = await c.token(1, "ALICE")
            assert (stopped["verdict"], stopped["may_charge"]) == ("stopped", False)
            assert not c.coil(1) and c.locked(1)
            refused = await c.unplug(1, expect=409)  # the plug is still locked in
            assert "locked" in refused["error"]
            await until(lambda: not c.locked(1), "lock released after the stop", METER_POLL_S + LOCK_S + 0.5)
            coil_off_at = first_change(coil, LOW, mark)
            aux_open_at = first_change(aux, HIGH, mark)  # aux contact reads open (high)
            unlock_at = first_change(unlock_motor, HIGH, mark)
            released_at = first_change(lock_switch, HIGH, mark)
            assert coil_off_at < aux_open_at < unlock_at < released_at, (coil_off_at, aux_open_at, unlock_at,
                                                                          released_at)
            assert first_change(coil, HIGH, mark) == float("inf"), "the coil was energized again"

            async def handed_back() -> bool:
                s = await c.status(1)
                return (s["lock"], s["phase"]) == ("unlocked", "idle")

            await until_async(handed_back, "status: lock unlocked, session over", LOCK_S)
            await c.unplug(1)

            async def free() -> bool:
                s = await c.status(1)
                return (s["state"], s["plugged_in"], s["phase"], s["contactor"]) == ("Available", False, "idle", "open")

            await until_async(free, "status: Available, unplugged", PLUG_DEBOUNCE_S + 0.1)

            # the event stream told the whole session, phase by phase
            phases = _dedup([e.doc["phase"] for e in events.of("evse_state", id=1)])
            start = phases.index("authorized")
            assert phases[start:] == ["authorized", "locking", "charging", "stopping", "unlocking", "idle"]
            unlocking = events.of("evse_state", id=1, phase="unlocking")[0].doc
            assert (unlocking["contactor"], unlocking["power_w"]) == ("open", 0.0), "released before the meter read 0"
            verdicts = [e.doc["verdict"] for e in events.of("token", evse_id=1)]
            assert verdicts == ["reservation_used", "stopped"]
        finally:
            await events.close()

    run_sim(tmp_path, scenario)

