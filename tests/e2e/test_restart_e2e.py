"""End to end: reservations survive a restart of the controller (DESIGN: durable before acknowledged, re-made at
start, ended at start when they expired while the controller was off)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from controller.core.parsing import parse_rfc3339

from .sim_charger import SimCharger, run_sim, until

LAG_S = 0.05
LOCK_S = 0.6
DOWN_S = 60.0


def test_a_restart_keeps_reservations_and_the_outputs_follow_them_again(tmp_path: Path) -> None:
    """Reservation 1 (EVSE 1, 5 min) and 2 (EVSE 2, 30 s) are placed; the controller is stopped for a minute
    and built again on the same state directory, with fresh pins and a fresh plant (sockets unlocked). Reservation
    1 is still listed, its LED is lit and its socket locked again; reservation 2 expired while the controller was
    off, ends at start as Expired (replayed on /events?since=0) and leaves EVSE 2 dark and unlocked. Reservation
    1 still expires at its time after the restart: LED off and socket unlocked then, not before."""

    async def scenario(c: SimCharger) -> None:
        expiry = c.expiry(300)
        due = c.loop_time_of(parse_rfc3339("expiry_time", expiry))
        assert await c.reserve(1, "ALICE", expiry, evse_id=1) == "Accepted"
        assert await c.reserve(2, "BOB", c.expiry(30), evse_id=2) == "Accepted"
        await until(lambda: c.reserved_led(1) and c.reserved_led(2), "both reserved LEDs on", LAG_S)
        await until(lambda: c.locked(1) and c.locked(2), "both sockets locked", LOCK_S)
        kept = (await c.reservations())[0]
        assert kept["reservation_id"] == 1

        await c.restart(down_s=DOWN_S)
        await until(lambda: c.reserved_led(1), "EVSE 1 reserved LED on again after the restart", LAG_S)
        await until(lambda: c.locked(1), "EVSE 1 socket locked again after the restart", LOCK_S)
        lock = c.sim(1).lock
        assert lock is not None and any(locking for _, locking in lock.pulses), "lock never pulsed"
        assert await c.reservations() == [kept]
        assert not c.reserved_led(2) and not c.locked(2)
        assert (await c.status(2))["reserved"] is False

        history = await c.events("/events?since=0")
        try:
            await history.wait("reservation_end", reservation_id=2, reason="Expired", evse_id=2)
            await history.wait("reservation_update", reservation_id=2, reservation_status="Expired")
            assert not history.of("reservation_end", reservation_id=1)
        finally:
            await history.close()

        await asyncio.sleep(due - 0.05 - c.now())  # the restarted controller re-armed the expiry
        assert c.reserved_led(1) and c.locked(1)
        await asyncio.sleep(due + 0.05 - c.now())
        assert not c.reserved_led(1)
        assert await c.reservations() == []
        await until(lambda: not c.locked(1), "EVSE 1 socket unlocked at expiry", LOCK_S)

    run_sim(tmp_path, scenario)
