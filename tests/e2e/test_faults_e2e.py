"""End to end: faults injected through POST /sim/faults make the EVSE Faulted, end its reservation, show red,
and ``clear`` brings it back once the hold time has passed.

DESIGN: a connector going Faulted cancels an EVSE-specific reservation on that EVSE; a faulted EVSE shows
its status LED red (blinking) and its reserved LED off; a welded contactor keeps the socket locked.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from drivers.sim.pin_history import change_count

from .sim_charger import PINS, SimCharger, blinks, first_change, run_sim, until, until_async

LAG_S = 0.05
LOCK_S = 0.6
METER_POLL_S = 2.0
FAULT_HOLD_S = 2.0
# how long after the injection the EVSE must be Faulted: supervision 0.2 s (weld); 2 pulses of 0.2 s,
# confirmations and a 0.5 s back-off (lock jam); a poll's timeouts, at worst the 6 s stale limit (meter)
DETECT_S = {"weld": 0.2 + LAG_S + 0.1, "lock_jam": 2.0, "meter_silent": 6.0 + METER_POLL_S + 0.5}
FAULT_OF = {"weld": "contactor_welded", "lock_jam": "lock_failed_lock", "meter_silent": "meter_"}
GREEN = (0.0, 1.0, 0.0)


async def _faulted(c: SimCharger, evse_id: int, kind: str) -> dict[str, object]:
    """Wait until GET /status shows the EVSE Faulted with ``kind``'s fault; returns that status."""
    seen: dict[str, object] = {}

    async def check() -> bool:
        seen.update(await c.status(evse_id))
        faults = seen["faults"]
        assert isinstance(faults, list)
        return seen["state"] == "Faulted" and any(f.startswith(FAULT_OF[kind]) for f in faults)

    await until_async(check, f"EVSE {evse_id} Faulted by {kind}", DETECT_S[kind])
    return seen


async def _reserved_then_faulted(c: SimCharger, kind: str) -> dict[str, object]:
    """Reserve EVSE 1 and inject ``kind`` so that it shows (a jammed lock shows only when it has to move, so it
    jams before the reservation asks for the lock); returns the faulted status."""
    if kind == "lock_jam":
        await c.fault(1, kind)
    assert await c.reserve(1, "ALICE", c.expiry(3600), evse_id=1) == "Accepted"
    await until(lambda: c.reserved_led(1), "EVSE 1 reserved LED on", LAG_S)
    if kind != "lock_jam":
        await until(lambda: c.locked(1), "EVSE 1 socket locked", LOCK_S)
        await c.fault(1, kind)
    return await _faulted(c, 1, kind)


@pytest.mark.parametrize("kind", ["weld", "lock_jam", "meter_silent"])
def test_a_fault_on_a_reserved_evse_cancels_its_reservation_and_shows_red(tmp_path: Path, kind: str) -> None:
    """The fault makes EVSE 1 Faulted (status and faults), its EVSE-specific reservation ends as Cancelled
    (Removed), the reserved LED GPIO24 goes off and the status LED blinks red (GPIO12 on and off, green and
    blue off). Tokens and new reservations are refused there; EVSE 2 is untouched."""

    async def scenario(c: SimCharger) -> None:
        red = c.pin(PINS[1].red)
        events = await c.events()
        try:
            mark = change_count(red)
            status = await _reserved_then_faulted(c, kind)
            assert status["reserved"] is False and status["reserved_led"] == "off"
            assert status["status_led"] == {"color": "red", "pattern": "blink"}
            await until(lambda: not c.reserved_led(1), "reserved LED GPIO24 off", LAG_S)
            assert await c.reservations() == []
            await events.wait("reservation_end", reservation_id=1, reason="Cancelled", evse_id=1)
            await events.wait("reservation_update", reservation_id=1, reservation_status="Removed")
            await events.wait("evse_reserved", evse_id=1, reserved=False, reason="Cancelled")
            faulted = await events.wait("evse_state", id=1, state="Faulted")
            assert any(f.startswith(FAULT_OF[kind]) for f in faulted.doc["faults"])

            assert blinks(red, mark), "status LED red pin GPIO12 is not blinking"
            assert c.rgb(1)[1:] == (0.0, 0.0), "green or blue lit on a faulted EVSE"

            refused = await c.token(1, "ALICE")
            assert refused["verdict"] == "refused_evse_not_ready" and FAULT_OF[kind] in refused["reason"]
            assert await c.reserve(2, "ALICE", c.expiry(3600), evse_id=1) == "Faulted"
            assert not c.reserved_led(1)

            await asyncio.sleep(METER_POLL_S + 1.0)  # the fault holds; the socket stays where it was
            lock = (await c.status(1))["lock"]
            if kind == "lock_jam":
                assert lock == "fault" and not c.locked(1)
            else:  # welded: kept locked; meter silent: faulted keeps the lock unchanged (no proof of no current)
                assert lock == "locked" and c.locked(1)
            assert not c.coil(1)
            other = await c.status(2)
            assert (other["state"], other["reserved_led"], other["faults"]) == ("Available", "off", [])
            assert c.rgb(2) == GREEN
        finally:
            await events.close()

    run_sim(tmp_path, scenario)


@pytest.mark.parametrize(
    "kind",
    ["weld", "lock_jam", "meter_silent"],
)
def test_clear_recovers_the_evse_after_the_hold_time(tmp_path: Path, kind: str) -> None:
    """``clear`` (repair plus the operator reset a weld needs): the EVSE stays Faulted for the fault hold time
    (2 s), then is Available again, green, unlocked (its reservation was cancelled) and takes a new reservation
    with LED and lock."""

    async def scenario(c: SimCharger) -> None:
        await _reserved_then_faulted(c, kind)
        cleared = c.now()  # before the request: the repair happens while it is answered
        await c.fault(1, "clear")
        await asyncio.sleep(FAULT_HOLD_S - 0.2)
        assert (await c.status(1))["state"] == "Faulted", "the fault cleared before its hold time"

        async def available() -> bool:
            s = await c.status(1)
            return (s["state"], s["faults"], s["status_led"]) == (
                "Available", [], {"color": "green", "pattern": "steady"})

        back = await until_async(available, f"EVSE 1 Available again after clearing {kind}",
                                 FAULT_HOLD_S + METER_POLL_S + 1.0)
        assert back - cleared >= FAULT_HOLD_S
        await until(lambda: not c.locked(1), "socket unlocked (no reservation left)", METER_POLL_S + LOCK_S)
        assert c.rgb(1) == GREEN and not c.reserved_led(1)

        assert await c.reserve(3, "ALICE", c.expiry(3600), evse_id=1) == "Accepted"
        await until(lambda: c.reserved_led(1) and c.locked(1), "reserved and locked again", LOCK_S)

    run_sim(tmp_path, scenario)


def test_a_weld_while_charging_keeps_the_plug_locked_until_cleared(tmp_path: Path) -> None:
    """Charging at EVSE 1, the main contacts weld; the stop releases the coil but the aux contact stays closed:
    within the supervision time the EVSE is Faulted (contactor_welded), red, the coil is never energized again,
    the lock never opens and the car cannot be unplugged. ``clear`` then lets the session end: the lock releases
    and the car unplugs."""

    async def scenario(c: SimCharger) -> None:
        pins = PINS[1]
        coil, unlock_motor = c.pin(pins.coil), c.pin(pins.unlock_motor)
        assert (await c.token(1, "WALK-IN"))["verdict"] == "allowed"
        await c.plug(1)
        await until(lambda: c.coil(1), "coil GPIO17 energized", 1.0)

        async def power() -> bool:
            s = await c.status(1)
            return bool(s["phase"] == "charging" and s["contactor"] == "closed" and (s["power_w"] or 0.0) > 1000.0)

        await until_async(power, "charging with power", METER_POLL_S + 1.0)

        await c.fault(1, "weld")
        await asyncio.sleep(0.5)
        status = await c.status(1)  # nothing shows yet: coil and contacts agree
        assert (status["state"], status["faults"], status["phase"]) == ("Occupied", [], "charging")

        mark = time.monotonic()  # the clock of the pins' histories
        stopped = await c.token(1, "WALK-IN")
        assert stopped["verdict"] == "stopped" and not c.coil(1)
        seen: dict[str, object] = {}

        async def welded() -> bool:
            seen.update(await c.status(1))
            return "contactor_welded" in seen["faults"]  # type: ignore[operator]

        await until_async(welded, "contactor_welded", DETECT_S["weld"])
        assert seen["state"] == "FaultedOccupied"  # faulted with the car still plugged in
        assert seen["contactor"] == "closed" and seen["lock"] == "locked"
        assert seen["status_led"] == {"color": "red", "pattern": "blink"}
        assert c.sim(1).contactor.contacts_closed

        await asyncio.sleep(2 * METER_POLL_S + 1.0)
        assert c.locked(1) and (await c.status(1))["lock"] == "locked"
        assert first_change(unlock_motor, 1.0, mark) == float("inf"), "the unlock motor ran on a welded contactor"
        assert first_change(coil, 1.0, mark) == float("inf"), "the coil was energized again"
        await c.unplug(1, expect=409)
        again = await c.token(1, "WALK-IN")  # the stopping session holds the EVSE: no new start
        assert (again["verdict"], again["may_charge"]) == ("refused_evse_not_ready", False)

        await c.fault(1, "clear")
        await until(lambda: not c.locked(1), "lock released once repaired and no current flows",
                    FAULT_HOLD_S + METER_POLL_S + LOCK_S + 0.5)
        await c.unplug(1)

        async def available() -> bool:
            s = await c.status(1)
            return (s["state"], s["phase"], s["plugged_in"], s["faults"]) == ("Available", "idle", False, [])

        await until_async(available, "EVSE 1 Available", FAULT_HOLD_S + 1.0)
        assert first_change(coil, 1.0, mark) == float("inf")

    run_sim(tmp_path, scenario)
