"""Reservations as a driver sees them: the reserved LED, the status colour and the socket lock.

Tokens go in through the DUT's HTTP API, as its RFID reader would hand them over. Unless a
check says ``after=``, its time counts from the step just before it.
"""

from __future__ import annotations

from hil.harness import Bench
from hil.scenario import scenario


@scenario(needs={"lock", "two_evses"})
async def specific(bench: Bench) -> None:
    """A reservation for EVSE 1 lights its reserved LED, turns it amber and locks it; EVSE 2 stays as it was."""
    e1, e2 = bench.evse(1), bench.evse(2)
    lag, pulse = bench.tol.latency_s, bench.timing(1).lock_pulse_s

    bench.step("Reserve EVSE 1 for TOKEN-A")
    t = await bench.reserve(1, "TOKEN-A", evse=1)
    await e1.reserved_led.turns_on(within=lag)
    await e1.status.shows("amber", within=lag, after=t)
    await e1.lock_motor_lock.pulses_exactly(1, width=pulse, within=lag, after=t)
    await e1.lock_switch.turns_on(within=pulse + lag, after=t)

    bench.step("EVSE 2 is not reserved: its LED stays off, its lock does not move, it stays green")
    await e2.reserved_led.stays(False, for_s=bench.tol.quiet_s, after=t)
    await e2.lock_motor_lock.never_on(for_s=bench.tol.quiet_s, after=t)
    await e2.status.only({"green"}, for_s=bench.tol.quiet_s, after=t)


@scenario(needs={"lock", "two_evses"})
async def global_reservations(bench: Bench) -> None:
    """Global reservations light no LED while every car still has a choice, all LEDs once they take every EVSE."""
    evses = [bench.evse(e.evse_id) for e in bench.profile.evses]  # the EVSEs the bench watches
    lag = bench.tol.latency_s
    count = len(bench.profile.dut_config.evses)  # every EVSE of the DUT counts for global reservations

    bench.step(f"{count - 1} global reservation(s): one EVSE stays free whatever the cars do")
    first = bench.now()
    for n in range(1, count):
        await bench.reserve(n, f"TOKEN-{n}")
    for e in evses:
        await e.reserved_led.stays(False, for_s=bench.tol.quiet_s, after=first)

    bench.step(f"Global reservation number {count}: now every EVSE is needed, every LED lights")
    t = await bench.reserve(count, f"TOKEN-{count}")
    for e in evses:
        await e.reserved_led.turns_on(within=lag, after=t)
        await e.status.shows("amber", within=lag, after=t)

    bench.step(f"Cancel reservation {count}: the choice is back, every LED goes off")
    t = await bench.cancel(count)
    for e in evses:
        await e.reserved_led.turns_off(within=lag, after=t)
        await e.status.shows("green", within=lag, after=t)


@scenario(needs={"lock"})
async def expiry(bench: Bench) -> None:
    """A reservation ends at its expiry time: LED off and socket unlocked within tolerance, not before."""
    e1 = bench.evse(1)
    lag, timing = bench.tol.latency_s, bench.timing(1)
    expires_in = 2.0

    bench.step(f"Reserve EVSE 1 for TOKEN-A, expiring in {expires_in:.1f} s")
    t = await bench.reserve(1, "TOKEN-A", evse=1, expires_in=expires_in)
    on = await e1.reserved_led.turns_on(within=lag)
    await e1.lock_switch.turns_on(within=timing.lock_pulse_s + lag, after=t)
    expiry = t + expires_in

    bench.step("The LED stays on until the expiry time")
    await e1.reserved_led.stays(True, for_s=expiry - on - 0.05, after=on)

    bench.step("At the expiry time: the reservation ends, the LED goes off, the socket unlocks")
    await bench.dut_event(type="reservation_update", reservation_id=1, reservation_status="Expired",
                          within=lag, after=expiry - 0.05)
    await e1.reserved_led.turns_off(within=lag, after=expiry)
    await e1.status.shows("green", within=lag, after=expiry)
    unlock_by = timing.meter_poll_s + lag  # the lock opens once a fresh reading shows no current
    await e1.lock_motor_unlock.pulses_exactly(1, width=timing.lock_pulse_s, within=unlock_by, after=expiry)


@scenario(needs={"lock"})
async def cancel(bench: Bench) -> None:
    """Cancelling a reservation turns its LED off and unlocks the socket; cancelling it again finds nothing."""
    e1 = bench.evse(1)
    lag, timing = bench.tol.latency_s, bench.timing(1)

    bench.step("Reserve EVSE 1 for TOKEN-A and wait for the socket to lock")
    t = await bench.reserve(1, "TOKEN-A", evse=1)
    await e1.reserved_led.turns_on(within=lag)
    await e1.lock_switch.turns_on(within=timing.lock_pulse_s + lag, after=t)

    bench.step("Cancel it")
    t = await bench.cancel(1)
    await e1.reserved_led.turns_off(within=lag)
    await e1.status.shows("green", within=lag, after=t)
    await e1.lock_motor_unlock.pulses_exactly(1, width=timing.lock_pulse_s, within=timing.meter_poll_s + lag, after=t)
    await e1.lock_switch.turns_off(within=timing.meter_poll_s + timing.lock_pulse_s + lag, after=t)

    bench.step("Cancel it again: the DUT has nothing to cancel, nothing moves")
    t = await bench.cancel(1, expect=False)
    await e1.reserved_led.stays(False, for_s=bench.tol.quiet_s, after=t)
    await e1.lock_motor_lock.never_on(for_s=bench.tol.quiet_s, after=t)


@scenario(needs={"lock"})
async def wrong_token(bench: Bench) -> None:
    """Another driver's token is refused at a reserved EVSE: the LED stays on, the socket stays locked, no power."""
    e1 = bench.evse(1)
    lag, timing = bench.tol.latency_s, bench.timing(1)

    bench.step("Reserve EVSE 1 for TOKEN-A")
    t = await bench.reserve(1, "TOKEN-A", evse=1)
    await e1.reserved_led.turns_on(within=lag)
    await e1.lock_switch.turns_on(within=timing.lock_pulse_s + lag, after=t)

    bench.step("TOKEN-B is presented at EVSE 1")
    t = await bench.present_token(1, "TOKEN-B", expect="refused_reserved_for_other")
    quiet = bench.tol.quiet_s
    await e1.reserved_led.stays(True, for_s=quiet, after=t)
    await e1.lock_motor_unlock.never_on(for_s=quiet, after=t)
    await e1.coil.never_on(for_s=quiet, after=t)
    await e1.status.only({"amber"}, for_s=quiet, after=t)

    bench.step("The reservation is still there: TOKEN-A is accepted afterwards")
    await bench.present_token(1, "TOKEN-A", expect="reservation_used")
    await e1.reserved_led.turns_off(within=lag)


@scenario(needs={"lock", "meter"})
async def right_token_then_charge(bench: Bench) -> None:
    """The reserving driver's token opens the socket; plugging in locks it and closes the contactor; the same token
    stops charging and releases the plug."""
    e1 = bench.evse(1)
    lag, timing = bench.tol.latency_s, bench.timing(1)
    pulse = timing.lock_pulse_s

    bench.step("Reserve EVSE 1 for TOKEN-A; the socket locks")
    t = await bench.reserve(1, "TOKEN-A", evse=1)
    await e1.reserved_led.turns_on(within=lag)
    await e1.lock_switch.turns_on(within=pulse + lag, after=t)

    bench.step("TOKEN-A at EVSE 1: the reservation is used, the LED goes off, the socket opens for the plug")
    t = await bench.present_token(1, "TOKEN-A", expect="reservation_used")
    await e1.reserved_led.turns_off(within=lag)
    await e1.lock_motor_unlock.pulses_exactly(1, width=pulse, within=lag, after=t)
    await e1.lock_switch.turns_off(within=pulse + lag, after=t)

    bench.step("The car plugs in: lock, then contactor, then current")
    t = await bench.plug(1)
    await e1.lock_motor_lock.pulses_exactly(1, width=pulse, within=timing.plug_debounce_s + lag, after=t)
    locked = await e1.lock_switch.turns_on(within=timing.plug_debounce_s + pulse + lag, after=t)
    closed = await e1.coil.turns_on(within=timing.lock_confirm_s + pulse + lag, after=locked)
    await e1.current.turns_on(within=lag, after=closed)
    await e1.status.shows("blue", within=timing.plug_debounce_s + 2 * pulse + lag, after=t)

    bench.step("Charging goes on undisturbed")
    await e1.coil.stays(True, for_s=bench.tol.quiet_s, after=closed)

    bench.step("TOKEN-A again: the contactor opens, then (no current) the plug is released")
    t = await bench.present_token(1, "TOKEN-A", expect="stopped")
    off = await e1.coil.turns_off(within=lag)
    await e1.aux.turns_off(within=lag, after=off)
    await e1.lock_motor_unlock.pulses_exactly(1, width=pulse, within=timing.meter_poll_s + lag, after=off)
    await e1.lock_switch.turns_off(within=timing.meter_poll_s + pulse + lag, after=off)

    bench.step("The car leaves")
    await bench.unplug(1)
    await e1.status.shows("green", within=timing.plug_debounce_s + lag)
