"""Two EVSEs, more cars than EVSEs: global reservations decide who may charge where."""

from __future__ import annotations

from hil.harness import Bench
from hil.scenario import scenario


@scenario(needs={"lock", "meter", "two_evses"})
async def two_globals_two_evses(bench: Bench) -> None:
    """With two global reservations on two EVSEs, a walk-in car is refused everywhere; the reserving cars charge
    wherever they plug in, and the LEDs follow who is still owed an EVSE."""
    e1, e2 = bench.evse(1), bench.evse(2)
    lag, timing = bench.tol.latency_s, bench.timing(1)
    quiet = bench.tol.quiet_s
    start_charge = timing.plug_debounce_s + 2 * timing.lock_pulse_s + timing.lock_confirm_s + lag

    bench.step("Global reservations for TOKEN-A and TOKEN-B: both EVSEs are needed, both LEDs light")
    t = await bench.reserve(1, "TOKEN-A")
    await bench.reserve(2, "TOKEN-B")
    await e1.reserved_led.turns_on(within=lag, after=t)
    await e2.reserved_led.turns_on(within=lag, after=t)

    bench.step("A walk-in driver (TOKEN-C) tries EVSE 1: refused, nothing moves")
    t = await bench.present_token(1, "TOKEN-C", expect="refused_global_reservations")
    await e1.coil.never_on(for_s=quiet, after=t)
    await e1.lock_motor_unlock.never_on(for_s=quiet, after=t)
    await e1.reserved_led.stays(True, for_s=quiet, after=t)

    bench.step("TOKEN-A arrives at EVSE 2 and plugs in; one global is left for the one free EVSE")
    t = await bench.present_token(2, "TOKEN-A", expect="reservation_used")
    await e2.reserved_led.turns_off(within=lag, after=t)
    t = await bench.plug(2)
    await e2.coil.turns_on(within=start_charge, after=t)
    await e1.reserved_led.turns_on(within=start_charge, after=t)
    await e1.reserved_led.stays(True, for_s=quiet)

    bench.step("TOKEN-C tries EVSE 1 again: refused, EVSE 1 is TOKEN-B's")
    t = await bench.present_token(1, "TOKEN-C", expect="refused_global_reservations")
    await e1.coil.never_on(for_s=quiet, after=t)

    bench.step("TOKEN-B takes EVSE 1: both cars charge, no LED left on")
    t = await bench.present_token(1, "TOKEN-B", expect="reservation_used")
    await e1.reserved_led.turns_off(within=lag, after=t)
    t = await bench.plug(1)
    await e1.coil.turns_on(within=start_charge, after=t)
    await e2.coil.stays(True, for_s=quiet, after=t)


@scenario(needs={"lock", "two_evses"})
async def specific_and_global(bench: Bench) -> None:
    """A specific reservation on EVSE 1 and a global one leave EVSE 2 to the global car: both LEDs light, a walk-in
    is refused at EVSE 2, and cancelling the specific one frees the choice again."""
    e1, e2 = bench.evse(1), bench.evse(2)
    lag = bench.tol.latency_s
    quiet = bench.tol.quiet_s

    bench.step("EVSE 1 reserved for TOKEN-A, plus a global reservation for TOKEN-B")
    t = await bench.reserve(1, "TOKEN-A", evse=1)
    await bench.reserve(2, "TOKEN-B")
    await e1.reserved_led.turns_on(within=lag, after=t)
    await e2.reserved_led.turns_on(within=lag, after=t)

    bench.step("A walk-in driver (TOKEN-C) at EVSE 2: refused")
    t = await bench.present_token(2, "TOKEN-C", expect="refused_global_reservations")
    await e2.coil.never_on(for_s=quiet, after=t)
    await e2.reserved_led.stays(True, for_s=quiet, after=t)

    bench.step("A second global reservation cannot be honoured: the DUT refuses it, nothing changes")
    t = await bench.reserve(3, "TOKEN-D", expect="Occupied")
    await e1.reserved_led.stays(True, for_s=quiet, after=t)

    bench.step("Cancel the specific reservation: the global car can choose again, both LEDs go off")
    t = await bench.cancel(1)
    await e1.reserved_led.turns_off(within=lag, after=t)
    await e2.reserved_led.turns_off(within=lag, after=t)


@scenario(needs={"lock", "two_evses"})
async def walk_in_while_reserving_car_plugs(bench: Bench) -> None:
    """While a reserving car is still plugging in at EVSE 2, a walk-in at EVSE 1 must not take the EVSE the other
    global reservation needs."""
    e1, e2 = bench.evse(1), bench.evse(2)
    lag = bench.tol.latency_s

    bench.step("Global reservations for TOKEN-A and TOKEN-B: both LEDs light")
    t = await bench.reserve(1, "TOKEN-A")
    await bench.reserve(2, "TOKEN-B")
    await e1.reserved_led.turns_on(within=lag, after=t)
    await e2.reserved_led.turns_on(within=lag, after=t)

    bench.step("TOKEN-A at EVSE 2 (the socket is locked, so the token comes before the plug)")
    await bench.present_token(2, "TOKEN-A", expect="reservation_used")
    bench.step("EVSE 1 stays TOKEN-B's: a walk-in (TOKEN-C) is refused there and its LED stays on")
    t = await bench.present_token(1, "TOKEN-C", expect="refused_global_reservations")
    await e1.reserved_led.stays(True, for_s=lag, after=t)
