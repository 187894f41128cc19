"""Faults the plant plays, and what the DUT must do about them, line by line.

Each scenario here checks the fault's handling, not only the happy path: tests/hil swaps in a
controller with that handling switched off and expects the scenario to fail.
"""

from __future__ import annotations

from hil.bench import PlantFault
from hil.harness import Bench
from hil.scenario import scenario


async def _charging(bench: Bench, evse_id: int, token: str) -> float:
    """Authorize, plug in and wait until current flows; returns when the coil closed."""
    e = bench.evse(evse_id)
    lag, timing = bench.tol.latency_s, bench.timing(evse_id)
    bench.step(f"A car charges at EVSE {evse_id} ({token})")
    await bench.present_token(evse_id, token, expect="allowed")
    t = await bench.plug(evse_id)
    start_charge = timing.plug_debounce_s + 2 * timing.lock_pulse_s + timing.lock_confirm_s + lag
    closed = await e.coil.turns_on(within=start_charge, after=t)
    await e.current.turns_on(within=lag, after=closed)
    return closed


@scenario(needs={"lock", "meter"})
async def weld(bench: Bench) -> None:
    """A welded contactor: after the coil is released the aux contact stays closed; the DUT shows the fault (red),
    keeps the plug locked and never re-energizes the coil."""
    e1 = bench.evse(1)
    lag, timing = bench.tol.latency_s, bench.timing(1)
    closed = await _charging(bench, 1, "TOKEN-A")
    await e1.coil.stays(True, for_s=bench.tol.quiet_s, after=closed)

    bench.step("The main contacts weld (nothing shows yet: coil and contacts agree)")
    t = await bench.inject(1, PlantFault.WELD)
    await e1.status.only({"blue", "off"}, for_s=bench.tol.quiet_s, after=t)  # blue, pulsing

    bench.step("The driver stops charging: the coil is released, but the aux contact stays closed")
    await bench.present_token(1, "TOKEN-A", expect="stopped")
    released = await e1.coil.turns_off(within=lag)
    await e1.aux.stays(True, for_s=timing.contactor_supervision_s, after=released)

    bench.step("The DUT sees the weld: status red (blinking) within the supervision time")
    red = await e1.status.shows("red", within=timing.contactor_supervision_s + lag, after=released)
    await e1.status.only({"red", "off"}, for_s=bench.tol.quiet_s + timing.blink_period_s, after=red)

    bench.step("The plug stays locked and the coil stays off, whatever is asked")
    quiet = bench.tol.quiet_s + timing.meter_poll_s
    await e1.lock_motor_unlock.never_on(for_s=quiet, after=released)
    t = await bench.present_token(1, "TOKEN-A", expect={"refused_evse_not_ready"})
    await e1.coil.never_on(for_s=bench.tol.quiet_s, after=t)

    bench.step("The car stops drawing current: the meter reads 0 A, but the welded contacts keep the plug locked")
    t = bench.demand(1, 0.0)
    await e1.current.turns_off(within=bench.tol.latency_s, after=t)
    await e1.lock_motor_unlock.never_on(for_s=timing.meter_poll_s + bench.tol.quiet_s, after=t)
    await e1.lock_switch.stays(True, for_s=bench.tol.quiet_s, after=t)


@scenario(needs={"lock"}, timeout_s=90.0)
async def lock_jam(bench: Bench) -> None:
    """A jammed lock: the DUT pulses the motor (1 + retries) times, then declares the EVSE faulted (red), ends the
    reservation that wanted the lock and never closes the contactor."""
    e1 = bench.evse(1)
    lag, timing = bench.tol.latency_s, bench.timing(1)

    bench.step("The lock of EVSE 1 jams")
    await bench.inject(1, PlantFault.LOCK_JAM)

    bench.step("Reserve EVSE 1: the DUT tries to lock the socket")
    t = await bench.reserve(1, "TOKEN-A", evse=1)
    await e1.reserved_led.turns_on(within=lag)
    give_up = timing.lock_fail_s + lag
    await e1.lock_motor_lock.pulses_exactly(timing.lock_retries + 1, width=timing.lock_pulse_s, within=give_up,
                                            after=t)
    await e1.lock_switch.stays(False, for_s=give_up, after=t)

    bench.step("The lock never confirmed: EVSE 1 is faulted, its reservation ends")
    await e1.status.shows("red", within=give_up, after=t)
    await e1.reserved_led.turns_off(within=give_up, after=t)
    await bench.dut_event(type="reservation_end", reservation_id=1, reason="Cancelled", within=give_up, after=t)
    await e1.coil.never_on(for_s=bench.tol.quiet_s, after=t)


async def _meter_fault(bench: Bench, fault: PlantFault, **kwargs: float) -> None:
    """While charging the meter misbehaves: the DUT must open the contactor, show red and keep the plug locked
    (it can no longer prove that no current flows)."""
    e1 = bench.evse(1)
    timing = bench.timing(1)
    await _charging(bench, 1, "TOKEN-A")
    await e1.coil.stays(True, for_s=timing.meter_poll_s)

    bench.step(f"The meter of EVSE 1 fails: {fault.value}")
    t = await bench.inject(1, fault, **kwargs)
    detect = timing.meter_fault_s + bench.tol.meter_s
    opened = await e1.coil.turns_off(within=detect, after=t)
    await e1.status.shows("red", within=bench.tol.latency_s, after=opened)

    bench.step("No reading proves the current is gone: the plug stays locked")
    await e1.lock_motor_unlock.never_on(for_s=bench.tol.quiet_s + timing.meter_poll_s, after=t)
    await e1.lock_switch.stays(True, for_s=bench.tol.quiet_s, after=opened)


@scenario(needs={"lock", "meter"})
async def meter_silent(bench: Bench) -> None:
    """The meter stops answering while charging: contactor open, status red, plug kept locked."""
    await _meter_fault(bench, PlantFault.METER_SILENT)


@scenario(needs={"lock", "meter"})
async def meter_late(bench: Bench) -> None:
    """The meter answers later than the DUT waits, while charging: contactor open, status red, plug kept locked."""
    await _meter_fault(bench, PlantFault.METER_LATE, delay_s=2.0)


@scenario(needs={"lock", "meter"})
async def meter_crc(bench: Bench) -> None:
    """The meter's answers arrive with broken CRCs while charging: contactor open, status red, plug kept locked."""
    await _meter_fault(bench, PlantFault.METER_CRC)


@scenario(needs={"lock", "plug_line"})  # with a control pilot the DUT's plug sensor is the pilot, not this line
async def plug_bounce(bench: Bench) -> None:
    """A chattering plug contact is one plug-in: one lock pulse, the contactor closes once and stays closed."""
    e1 = bench.evse(1)
    lag, timing = bench.tol.latency_s, bench.timing(1)
    pulse = timing.lock_pulse_s

    bench.step("TOKEN-A is authorized at EVSE 1")
    await bench.present_token(1, "TOKEN-A", expect="allowed")
    await bench.wait(lag)

    bench.step("The car plugs in; the plug contact chatters before it settles")
    start = bench.now()
    settled = await bench.bounce_plug(1, plugged=True, edges=8, interval_s=timing.plug_debounce_s / 4)
    await e1.lock_motor_lock.pulses_exactly(1, width=pulse, within=settled - start + timing.plug_debounce_s + lag,
                                            after=start)
    closed = await e1.coil.turns_on(within=timing.plug_debounce_s + pulse + timing.lock_confirm_s + lag, after=settled)

    bench.step("Charging runs: no unlock, no second close")
    await e1.lock_motor_unlock.never_on(for_s=closed - start + bench.tol.quiet_s, after=start)
    await e1.coil.stays(True, for_s=bench.tol.quiet_s, after=closed)
