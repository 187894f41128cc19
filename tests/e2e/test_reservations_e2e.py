"""End to end: reservations over the real HTTP API of the sim charger light the reserved LEDs and lock the sockets.

Each test runs ``run --sim`` in-process on a warp loop (tests/e2e/sim_charger.py) and reads the gpiozero
pins the real drivers set: reserved LED GPIO24 (EVSE 1) / GPIO18 (EVSE 2), the RGB status LED, and the
simulated lock's bolt, which only moves when the controller pulses the lock motor.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from controller.core.parsing import parse_rfc3339

from .sim_charger import SimCharger, run_sim, until, until_async

LAG_S = 0.05  # an output follows its cause within this loop time (it is one evaluation, no I/O)
LOCK_S = 0.6  # lock pulse 0.2 s + bolt travel + feedback confirmation, with margin
AMBER = (1.0, 0.5, 0.0)
GREEN = (0.0, 1.0, 0.0)


async def _lock_reads(c: SimCharger, evse_id: int, position: str) -> None:
    """GET /status reports the lock at ``position`` within the lock's travel time."""

    async def reads() -> bool:
        return (await c.status(evse_id))["lock"] == position

    await until_async(reads, f"EVSE {evse_id} lock reads {position}", LOCK_S)


@pytest.mark.parametrize("evse_id", [1, 2])
def test_an_evse_reservation_lights_its_led_and_locks_its_socket_until_cancelled(tmp_path: Path, evse_id: int) -> None:
    """POST /reservations for one EVSE: its reserved LED on, status amber, socket locked; the other EVSE is
    untouched. DELETE turns the LED off and unlocks again."""
    other = 3 - evse_id

    async def scenario(c: SimCharger) -> None:
        assert not c.reserved_led(evse_id) and not c.locked(evse_id)
        expiry = c.expiry(3600)
        assert await c.reserve(7, "ALICE", expiry, evse_id=evse_id) == "Accepted"
        await until(lambda: c.reserved_led(evse_id), f"EVSE {evse_id} reserved LED on", LAG_S)
        await until(lambda: c.locked(evse_id), f"EVSE {evse_id} socket locked", LOCK_S)
        await _lock_reads(c, evse_id, "locked")
        assert c.rgb(evse_id) == AMBER
        status = await c.status(evse_id)
        assert (status["reserved"], status["reserved_led"], status["status_led"]) == (
            True, "on", {"color": "amber", "pattern": "steady"})
        assert await c.reservations() == [
            {"reservation_id": 7, "id_token": "ALICE", "expiry_time": expiry, "evse_id": evse_id}]
        assert not c.reserved_led(other) and not c.locked(other) and c.rgb(other) == GREEN

        assert await c.cancel(7) is True
        await until(lambda: not c.reserved_led(evse_id), f"EVSE {evse_id} reserved LED off", LAG_S)
        await until(lambda: not c.locked(evse_id), f"EVSE {evse_id} socket unlocked", LOCK_S)
        await _lock_reads(c, evse_id, "unlocked")
        assert c.rgb(evse_id) == GREEN
        assert await c.reservations() == []
        assert await c.cancel(7) is False  # nothing left to cancel

    run_sim(tmp_path, scenario)


def test_global_reservations_light_and_lock_every_evse_they_need(tmp_path: Path) -> None:
    """One global reservation on two free EVSEs needs neither (LEDs off, sockets open); a second one needs both:
    both LEDs on and both sockets locked, and a walk-in is refused. Cancelling one releases both
    (GlobalReservationRequirementDropped on the event stream)."""

    async def scenario(c: SimCharger) -> None:
        events = await c.events()
        try:
            assert await c.reserve(1, "ALICE", c.expiry(3600)) == "Accepted"
            await asyncio.sleep(1.0)
            assert not c.reserved_led(1) and not c.reserved_led(2)
            assert not c.locked(1) and not c.locked(2)

            assert await c.reserve(2, "BOB", c.expiry(3600)) == "Accepted"
            await until(lambda: c.reserved_led(1) and c.reserved_led(2), "both reserved LEDs on", LAG_S)
            await until(lambda: c.locked(1) and c.locked(2), "both sockets locked", LOCK_S)
            assert c.rgb(1) == AMBER and c.rgb(2) == AMBER
            assert [r.get("evse_id") for r in await c.reservations()] == [None, None]

            walk_in = await c.token(1, "CAROL")
            assert (walk_in["verdict"], walk_in["may_charge"]) == ("refused_global_reservations", False)
            assert "reserved car" in walk_in["reason"]
            assert c.reserved_led(1) and c.locked(1)

            assert await c.cancel(1) is True
            await until(lambda: not c.reserved_led(1) and not c.reserved_led(2), "both reserved LEDs off", LAG_S)
            await until(lambda: not c.locked(1) and not c.locked(2), "both sockets unlocked", LOCK_S)
            for evse_id in (1, 2):
                await events.wait("evse_reserved", evse_id=evse_id, reserved=False,
                                  reason="GlobalReservationRequirementDropped")
            await events.wait("reservation_update", reservation_id=1, reservation_status="Cancelled")
            await events.wait("reservation_end", reservation_id=1, reason="Cancelled")
            assert await c.reservation_ids() == [2]
        finally:
            await events.close()

    run_sim(tmp_path, scenario)


def test_expiry_clears_led_and_lock_at_the_expiry_time_not_before(tmp_path: Path) -> None:
    """With the wall clock running on the loop: just before expiry_time the reservation, its LED and lock are
    still there; just after, the LED is off, the reservation gone (Expired on the event stream) and the
    socket unlocks."""

    async def scenario(c: SimCharger) -> None:
        events = await c.events()
        try:
            expiry = c.expiry(120)
            due = c.loop_time_of(parse_rfc3339("expiry_time", expiry))
            assert await c.reserve(3, "ALICE", expiry, evse_id=2) == "Accepted"
            await until(lambda: c.reserved_led(2) and c.locked(2), "EVSE 2 reserved and locked", LOCK_S)

            await asyncio.sleep(due - 0.05 - c.now())
            assert c.reserved_led(2) and c.locked(2)
            assert await c.reservation_ids() == [3]
            assert not events.of("reservation_end")

            await asyncio.sleep(due + 0.05 - c.now())
            assert not c.reserved_led(2)
            assert await c.reservations() == []
            end = await events.wait("reservation_end", reservation_id=3)
            assert end.doc["reason"] == "Expired" and end.doc["evse_id"] == 2 and end.at >= due
            await events.wait("reservation_update", reservation_id=3, reservation_status="Expired")
            await events.wait("evse_reserved", evse_id=2, reserved=False, reason="Expired")
            await until(lambda: not c.locked(2), "EVSE 2 socket unlocked", LOCK_S)
            assert c.rgb(2) == GREEN
        finally:
            await events.close()

    run_sim(tmp_path, scenario)


def test_another_token_is_refused_and_the_reservation_stays(tmp_path: Path) -> None:
    """BOB at the EVSE reserved for ALICE: refused with the reason, LED still on, socket still locked,
    reservation still listed and still usable by ALICE. BOB may charge at the unreserved EVSE 2."""

    async def scenario(c: SimCharger) -> None:
        assert await c.reserve(5, "ALICE", c.expiry(3600), evse_id=1) == "Accepted"
        await until(lambda: c.reserved_led(1) and c.locked(1), "EVSE 1 reserved and locked", LOCK_S)
        before = await c.reservations()

        refused = await c.token(1, "BOB")
        assert refused == {"evse_id": 1, "may_charge": False, "verdict": "refused_reserved_for_other",
                           "reason": "reserved for another token; reservation kept", "reservation_id": None}
        await asyncio.sleep(2.5)  # a meter poll later: nothing has moved
        assert c.reserved_led(1) and c.locked(1) and not c.coil(1)
        assert await c.reservations() == before
        status = await c.status(1)
        assert (status["reserved"], status["phase"], status["lock"]) == (True, "idle", "locked")

        assert (await c.token(2, "BOB"))["verdict"] == "allowed"
        used = await c.token(1, "ALICE")
        assert (used["verdict"], used["reservation_id"]) == ("reservation_used", 5)

    run_sim(tmp_path, scenario)
