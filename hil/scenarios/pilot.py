"""The control pilot (IEC 61851-1): the harness plays the car on CP and checks the DUT's PWM, contactor and status.

The car (drivers.sim.pilot's, on both benches) shows B when plugged, closes S2 (C) once the PWM offers a current,
draws min(offered, its maximum) with a ramp, and opens S2 (B) when it stops asking, is full or the offer goes. The
duty a current must give is IEC 61851-1's (hil.pilot_views.iec_duty), not the DUT's own table.

The 100 ms from C -> B to the contactor opening is the standard's figure, checked without a bench allowance: on
both benches the car's edge is timed where the harness makes it and the coil's where the harness sees it, so a
measurement can only come out long, never short. Measured times go into the scenario's notes.
"""

from __future__ import annotations

from typing import Any

from drivers.sim.pilot import CarProfile
from hil.bench import PlantFault
from hil.harness import Bench
from hil.pilot_views import iec_duty
from hil.scenario import scenario

IEC_C_TO_B_S = 0.1  # IEC 61851-1 Table A.6 sequence 8.1: the EVSE opens the contactor within 100 ms of C -> B
CAR = CarProfile()  # the car both benches play: its reaction to the PWM and its current ramp
CAR_REACT_S = CAR.reaction_s + 0.1  # it moves S2 this long after it sees a change (the sim plant steps it every 0.1 s)
CAR_RAMP_S = CAR.ramp_s  # its current reaches a new target within this


def _pilot(doc: dict[str, Any]) -> dict[str, Any]:
    """The /status entry's pilot part (empty without one)."""
    pilot = doc.get("pilot")
    return pilot if isinstance(pilot, dict) else {}


def _faulted_with(fault: str) -> Any:
    """A test on the DUT's EVSE entry: Faulted, with ``fault`` among its faults."""
    return lambda doc: doc.get("state") == "Faulted" and fault in doc.get("faults", [])


async def _charging(bench: Bench, token: str = "TOKEN-A") -> tuple[float, float]:
    """Plug in (B), present the token, wait for the offer, C, the contactor and the current; returns (coil closed,
    the amperes offered: the EVSE's pilot maximum)."""
    e1 = bench.evse(1)
    lag, timing = bench.tol.latency_s, bench.timing(1)
    amps = timing.pilot_max_current_a or 0.0
    bench.step(f"A car charges at EVSE 1 ({token}): B, token, PWM {amps:g} A, C, contactor")
    t = await bench.plug(1)
    await e1.cp.shows("B", within=lag, after=t)
    await bench.wait(lag)
    t = await bench.present_token(1, token, expect="allowed")
    offered = await e1.duty.offers(amps, within=timing.lock_pulse_s + timing.lock_confirm_s + lag, after=t)
    asked = await e1.cp.shows("C", within=CAR_REACT_S + lag, after=offered)
    closed = await e1.coil.turns_on(within=lag, after=asked)
    await e1.amps.reaches(amps, within=CAR_RAMP_S + lag, after=closed)
    return closed, amps


@scenario(needs={"pilot", "lock"})
async def offer_and_charge(bench: Bench) -> None:
    """Plugged in the car shows B and the DUT offers nothing (a steady +12 V, contactor open); a token locks the
    socket, then the PWM offers the EVSE's maximum (duty = A / 0.6), the car asks (C), the contactor closes and the
    car draws what is offered."""
    e1 = bench.evse(1)
    lag, quiet, timing = bench.tol.latency_s, bench.tol.quiet_s, bench.timing(1)
    amps = timing.pilot_max_current_a or 0.0

    bench.step("The car plugs in: it shows B; no PWM, the contactor stays open")
    t = await bench.plug(1)
    b = await e1.cp.shows("B", within=lag, after=t)
    await bench.dut_reports(1, "pilot B (a car connected)", lambda doc: _pilot(doc).get("state") == "B",
                            within=lag, after=t)
    await e1.duty.stays_steady(for_s=quiet, after=t)
    await e1.coil.never_on(for_s=quiet, after=t)
    await e1.cp.stays("B", for_s=quiet, after=b)

    bench.step(f"A token: the socket locks, then the PWM offers the EVSE's {amps:g} A")
    t = await bench.present_token(1, "TOKEN-A", expect="allowed")
    locked = await e1.lock_switch.turns_on(within=timing.lock_pulse_s + lag, after=t)
    offered = await e1.duty.offers(amps, within=timing.lock_confirm_s + lag, after=locked)
    await bench.dut_reports(1, f"advertising {amps:g} A at {iec_duty(amps):.2f} %",
                            lambda doc: _pilot(doc).get("advertised_a") == amps
                            and abs(float(_pilot(doc).get("duty_percent", 0.0)) - iec_duty(amps)) <= 0.05,
                            within=lag, after=offered)

    bench.step("The car sees the offer and asks for energy (C): the contactor closes, never before")
    asked = await e1.cp.shows("C", within=CAR_REACT_S + lag, after=offered)
    await e1.coil.stays(False, for_s=asked - t, after=t)
    closed = await e1.coil.turns_on(within=lag, after=asked)

    bench.step(f"The car draws the {amps:g} A offered (it could draw more), steadily")
    await e1.amps.reaches(amps, within=CAR_RAMP_S + lag, after=closed)
    await e1.amps.stays_at(amps, for_s=quiet)
    await e1.duty.stays_offering(amps, for_s=quiet, after=offered)
    bench.note(f"token -> PWM {offered - t:.3f} s (socket locked {locked - t:.3f} s); "
               f"C -> coil energized {1000 * (closed - asked):.0f} ms")


@scenario(needs={"pilot", "lock"})
async def limit_follows(bench: Bench) -> None:
    """A limit set over the DUT's API moves the PWM at once and the car's current follows; a 0 A limit pauses: the
    PWM stops and the contactor opens, the session stays; removing the limit resumes."""
    e1 = bench.evse(1)
    lag, quiet = bench.tol.latency_s, bench.tol.quiet_s
    _, amps = await _charging(bench)

    bench.step("Limit 10 A over the DUT's API: the duty follows at once, then the car's current")
    t = await bench.set_limit(1, 10.0)
    moved = await e1.duty.offers(10.0, within=lag, after=t)
    await e1.amps.reaches(10.0, within=CAR_REACT_S + CAR_RAMP_S + lag, after=moved)
    await e1.coil.stays(True, for_s=quiet, after=t)
    bench.note(f"limit 10 A -> duty {1000 * (moved - t):.0f} ms after the request")

    bench.step("Limit 0 A (a pause): the PWM stops (steady +12 V), the contactor opens, the car goes back to B")
    t = await bench.set_limit(1, 0.0)
    steady = await e1.duty.steady(within=lag, after=t)
    opened = await e1.coil.turns_off(within=lag, after=t)
    await e1.amps.reaches(0.0, within=lag, after=opened)
    await e1.cp.shows("B", within=CAR_REACT_S + lag, after=steady)
    await bench.dut_reports(1, "still in its session (charging, paused)", lambda doc: doc.get("phase") == "charging",
                            within=lag, after=t)
    await e1.coil.never_on(for_s=quiet, after=opened)
    bench.note(f"limit 0 A -> PWM off {1000 * (steady - t):.0f} ms, coil released {1000 * (opened - t):.0f} ms")

    bench.step(f"The limit removed: the PWM offers {amps:g} A again, the car asks, the contactor closes")
    t = await bench.set_limit(1, None)
    offered = await e1.duty.offers(amps, within=lag, after=t)
    asked = await e1.cp.shows("C", within=CAR_REACT_S + lag, after=offered)
    closed = await e1.coil.turns_on(within=lag, after=asked)
    await e1.amps.reaches(amps, within=CAR_RAMP_S + lag, after=closed)


async def _leaves_c(bench: Bench, what: str, t: float, amps: float) -> float:
    """The car went from C to B after the action at ``t``: the coil must be released within IEC's 100 ms of the
    edge, the offer and the session stay; returns the measured time (s)."""
    e1 = bench.evse(1)
    lag, quiet = bench.tol.latency_s, bench.tol.quiet_s
    left = await e1.cp.shows("B", within=CAR_REACT_S + lag, after=t)
    opened = await e1.coil.turns_off(within=IEC_C_TO_B_S, after=left)
    await e1.amps.reaches(0.0, within=lag, after=opened)
    await e1.duty.stays_offering(amps, for_s=quiet, after=t)
    await e1.lock_motor_unlock.never_on(for_s=quiet, after=t)
    bench.note(f"{what}: C -> B to coil released {1000 * (opened - left):.0f} ms (IEC 61851-1: within 100 ms)")
    return opened - left


@scenario(needs={"pilot", "lock"})
async def car_leaves_c(bench: Bench) -> None:
    """The car stops asking for energy, and later its battery is full: each time it goes from C to B and the DUT
    releases the contactor within IEC 61851-1's 100 ms, keeping the offer and the session; it closes again when
    the car asks again."""
    e1 = bench.evse(1)
    lag = bench.tol.latency_s
    _, amps = await _charging(bench)

    bench.step("The car stops asking for energy (S2 opens: C -> B)")
    t = bench.car(1, wants_charge=False)
    await _leaves_c(bench, "stops asking", t, amps)

    bench.step("It asks again: C, the contactor closes, the current flows")
    t = bench.car(1, wants_charge=True)
    asked = await e1.cp.shows("C", within=CAR_REACT_S + lag, after=t)
    closed = await e1.coil.turns_on(within=lag, after=asked)
    await e1.amps.reaches(amps, within=CAR_RAMP_S + lag, after=closed)

    bench.step("Its battery is full (S2 opens: C -> B)")
    t = bench.car(1, full=True)
    await _leaves_c(bench, "battery full", t, amps)
    await bench.dut_reports(1, "still in its session, not faulted",
                            lambda doc: doc.get("phase") == "charging" and not doc.get("faults"), within=lag, after=t)


async def _pilot_fault(bench: Bench, fault: PlantFault, state: str, reported: str) -> float:
    """While charging the CP line fails: the line shows ``state``, the contactor opens, the PWM stops, the EVSE is
    Faulted with ``reported``; returns when both the coil was released and the PWM stopped."""
    e1 = bench.evse(1)
    lag = bench.tol.latency_s
    await _charging(bench)

    bench.step(f"The CP line fails ({fault.value}): the contactor opens, the PWM stops, the EVSE is Faulted")
    t = await bench.inject(1, fault)
    await e1.cp.shows(state, within=lag, after=t)
    opened = await e1.coil.turns_off(within=lag, after=t)
    await e1.amps.reaches(0.0, within=lag, after=opened)
    steady = await e1.duty.steady(within=lag, after=t)
    await e1.status.shows("red", within=lag, after=t)
    await bench.dut_reports(1, f"Faulted ({reported})", _faulted_with(reported), within=lag, after=t)
    bench.note(f"{fault.value}: coil released {1000 * (opened - t):.0f} ms, PWM off {1000 * (steady - t):.0f} ms "
               "after the fault")
    return max(opened, steady)


@scenario(needs={"pilot", "lock"})
async def cp_short(bench: Bench) -> None:
    """CP shorted to PE (state E) while charging: the contactor opens, the PWM stops, the EVSE is Faulted
    (pilot_cp_short); once the short is gone the fault holds for the DUT's fault hold, then the EVSE is Available
    again and the socket opens; the contactor never closes meanwhile."""
    e1 = bench.evse(1)
    lag, timing = bench.tol.latency_s, bench.timing(1)
    stopped = await _pilot_fault(bench, PlantFault.CP_SHORT, "E", "pilot_cp_short")

    bench.step(f"The short is gone (the car's S2 opens: B); the fault holds {timing.fault_hold_s:g} s, then the EVSE "
               "is Available")
    gone = await bench.inject(1, PlantFault.CLEAR)
    await e1.cp.shows("B", within=CAR_REACT_S + lag, after=gone)
    await bench.dut_keeps(1, "Faulted (the fault hold)", _faulted_with("pilot_cp_short"), for_s=timing.fault_hold_s,
                          after=gone)
    available = await bench.dut_reports(1, "Available, no fault",
                                        lambda doc: doc.get("state") == "Available" and not doc.get("faults"),
                                        within=timing.fault_hold_s + lag, after=gone)
    await e1.coil.stays(False, for_s=available - stopped, after=stopped)
    await e1.duty.stays_steady(for_s=available - stopped, after=stopped)
    await e1.lock_switch.turns_off(within=timing.meter_poll_s + timing.lock_pulse_s + lag, after=available)
    bench.note(f"the short gone -> Available {available - gone:.2f} s (fault hold {timing.fault_hold_s:g} s)")


@scenario(needs={"pilot", "lock"})
async def diode_short(bench: Bench) -> None:
    """The car's diode shorted while charging (the PWM's low phase is gone): the contactor opens, the PWM stops, the
    EVSE is Faulted (pilot_diode) and the session hands the car back (the socket opens: a fault reading is no
    unplug). The DUT keeps the fault until the car leaves (state A): Faulted, contactor open and PWM off after the
    diode is fine again; once the car has left the EVSE is Available after the fault hold."""
    e1 = bench.evse(1)
    lag, quiet, timing = bench.tol.latency_s, bench.tol.quiet_s, bench.timing(1)
    stopped = await _pilot_fault(bench, PlantFault.DIODE_SHORT, "C", "pilot_diode")
    released = await e1.lock_switch.turns_off(within=timing.meter_poll_s + timing.lock_pulse_s + lag, after=stopped)

    bench.step("The diode is fine again: the fault stays latched until the car leaves, nothing closes")
    t = await bench.inject(1, PlantFault.CLEAR)
    watch = timing.fault_hold_s + quiet
    await bench.dut_keeps(1, "Faulted (pilot_diode, latched)", _faulted_with("pilot_diode"), for_s=watch, after=t)
    await e1.coil.never_on(for_s=watch, after=t)
    await e1.duty.stays_steady(for_s=watch, after=t)

    bench.step("The car leaves (A): the fault ends after the fault hold")
    gone = await bench.unplug(1)
    await e1.cp.shows("A", within=lag, after=gone)
    available = await bench.dut_reports(1, "Available, no fault", lambda doc: doc.get("state") == "Available"
                                        and not doc.get("faults"), within=timing.fault_hold_s + lag, after=gone)
    bench.note(f"socket released {released - stopped:.2f} s after the contactor opened; the car gone -> Available "
               f"{available - gone:.2f} s")


@scenario(needs={"pilot", "lock", "meter"}, timeout_s=60.0)
async def overcurrent(bench: Bench) -> None:
    """A car drawing more than offered is tolerated for the DUT's over-current time (it may be slow to follow), then
    stopped: contactor open, PWM off, Faulted (ev_overcurrent); the fault ends when the car has left. The DUT sees
    the current in its meter readings: it must stop the car at the reading by which the over-current has lasted
    that long, not a reading later."""
    e1 = bench.evse(1)
    lag, timing = bench.tol.latency_s, bench.timing(1)
    poll, patience = timing.meter_poll_s, timing.overcurrent_s
    _, amps = await _charging(bench)
    reads = bench.watch_meter(1)
    try:
        drawn = amps + CAR.overcurrent_extra_a
        bench.step(f"The car draws {drawn:g} A, {CAR.overcurrent_extra_a:g} A more than offered")
        t = await bench.inject(1, PlantFault.OVERCURRENT_EV)
        over = await e1.amps.reaches(drawn, within=CAR_RAMP_S + lag, after=t)

        bench.step(f"The DUT lets it draw for {patience:g} s from its first reading of it, then stops it")
        await e1.coil.stays(True, for_s=patience, after=over)
        opened = await e1.coil.turns_off(within=patience + 3 * poll + lag, after=over)
        await e1.duty.steady(within=lag, after=opened)
        await bench.dut_reports(1, "Faulted (ev_overcurrent)", _faulted_with("ev_overcurrent"), within=lag,
                                after=opened)
        first = reads.first_after(over)
        due = None if first is None else reads.first_after(first + patience - 0.05)
        seen = "none" if first is None else f"t={first:.2f} s"
        decided = "none" if due is None else f"t={due:.2f} s"
        bench.note(f"over-current from t={over:.2f} s; the DUT's first reading of it {seen}, the reading "
                   f"{patience:g} s on {decided}; coil released t={opened:.2f} s, {opened - over:.2f} s after "
                   f"the over-current (meter read every {poll:g} s)")

        bench.step("The socket opens; the car leaves (A) and the fault ends after the fault hold")
        released = await e1.lock_switch.turns_off(within=poll + timing.lock_pulse_s + lag, after=opened)
        t = await bench.unplug(1)
        await e1.cp.shows("A", within=lag, after=max(t, released))
        await bench.dut_reports(1, "Available, no fault", lambda doc: doc.get("state") == "Available"
                                and not doc.get("faults"), within=timing.fault_hold_s + lag, after=t)

        bench.step(f"On time: the coil was released at the reading that completed the {patience:g} s")
        if first is None or due is None:
            bench.require("the DUT read its meter during the over-current", False, "no reading seen")
            return
        slack = poll if due - first < patience + 0.1 else 0.0  # a reading due right at the limit may count next time
        await e1.coil.turns_off(within=slack + lag, after=due)
    finally:
        await reads.stop()
