"""The DUT loses power with reservations pending: what it shows again once it is back."""

from __future__ import annotations

from hil.harness import Bench
from hil.scenario import scenario


@scenario(needs={"lock", "two_evses", "restart"}, timeout_s=300.0)
async def reservations_survive(bench: Bench) -> None:
    """A specific and a global reservation survive a power cut: both LEDs light again, the socket locks again, and
    the reserving driver's token still works."""
    e1, e2 = bench.evse(1), bench.evse(2)
    lag, timing = bench.tol.latency_s, bench.timing(1)

    bench.step("Reserve EVSE 1 for TOKEN-A and one global reservation for TOKEN-B (EVSE 2 is the only choice)")
    t = await bench.reserve(1, "TOKEN-A", evse=1)
    await bench.reserve(2, "TOKEN-B")
    await e1.reserved_led.turns_on(within=lag, after=t)
    await e2.reserved_led.turns_on(within=lag, after=t)
    await e1.lock_switch.turns_on(within=timing.lock_pulse_s + lag, after=t)

    bench.step("Power cut: the DUT goes dark")
    _, up = await bench.restart_dut(down_s=0.5)

    bench.step("Back up: both reservations are shown again, no reservation ended")
    await e1.reserved_led.turns_on(within=lag, after=up)
    await e2.reserved_led.turns_on(within=lag, after=up)
    await e1.status.shows("amber", within=lag, after=up)
    await e1.lock_switch.stays(True, for_s=bench.tol.quiet_s, after=up)
    await e2.reserved_led.stays(True, for_s=bench.tol.quiet_s, after=up)

    bench.step("TOKEN-B uses the global reservation at EVSE 2; TOKEN-A still holds EVSE 1")
    await bench.present_token(2, "TOKEN-B", expect="reservation_used")
    await e2.reserved_led.turns_off(within=lag)
    await e1.reserved_led.stays(True, for_s=bench.tol.quiet_s)


@scenario(needs={"lock", "restart"}, timeout_s=300.0)
async def expired_while_down(bench: Bench) -> None:
    """A reservation that expires while the DUT is off ends when it is back: the LED stays dark and the socket
    unlocks."""
    e1 = bench.evse(1)
    lag, timing = bench.tol.latency_s, bench.timing(1)

    bench.step("Reserve EVSE 1 for TOKEN-A, expiring in 1 s")
    t = await bench.reserve(1, "TOKEN-A", evse=1, expires_in=1.0)
    await e1.reserved_led.turns_on(within=lag, after=t)
    await e1.lock_switch.turns_on(within=timing.lock_pulse_s + lag, after=t)

    bench.step("Power cut for longer than the reservation has left")
    _, up = await bench.restart_dut(down_s=1.0)
    await bench.reservations_are([])  # it ended while the DUT started, before any event stream could listen

    bench.step("Back up: the LED stays off, the socket unlocks once a reading shows no current")
    await e1.reserved_led.stays(False, for_s=bench.tol.quiet_s, after=up)
    await e1.lock_switch.turns_off(within=timing.meter_poll_s + timing.lock_pulse_s + lag, after=up)
