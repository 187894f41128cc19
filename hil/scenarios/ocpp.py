"""The DUT as an OCPP charging station (2.0.1 or 1.6J, as the profile's [ocpp] version says): the harness plays
its CSMS (hil.csms, where the profile's [ocpp] says), in the DUT's version.

The scenarios are the same for both versions: what is said and looked for differently goes through the CSMS view
(hil.ocpp_view and its dialect, hil.ocpp_dialect). Reservations come from the CSMS (ReserveNow, CancelReservation)
and are checked on the lines as in the reservations theme, and on what the DUT tells the CSMS (StatusNotification;
2.0.1 also ReservationStatusUpdate). Tokens are presented over the DUT's HTTP API, as its RFID reader would hand
them over; the DUT asks the CSMS about them (Authorize, answered Accepted). Transactions (2.0.1 TransactionEvents;
1.6 StartTransaction, MeterValues, StopTransaction) are checked against the plant: the meter values the DUT
reports follow the register of the meter the harness plays (hil.ocpp_energy says within what, and why), and a
CSMS outage during a charge loses none of the transaction's messages.
"""

from __future__ import annotations

from hil.csms import Received
from hil.harness import Bench
from hil.ocpp_energy import PlantEnergy, power_matches_plant, readings_follow_plant, sampled
from hil.ocpp_view import CsmsView
from hil.scenario import scenario
from hil.timeline import CheckRecord

UPDATE_S = 1  # SampledDataCtrlr.TxUpdatedInterval (1.6 MeterValueSampleInterval): a meter report every second
CHARGE_S = 5.0
OUTAGE_S = 3.0


@scenario(needs={"ocpp", "lock"})
async def reserve_now(bench: Bench) -> None:
    """A ReserveNow from the CSMS for EVSE 1 lights its reserved LED, locks it and reports it Reserved; the CSMS's
    CancelReservation undoes all of it, with no ReservationStatusUpdate."""
    csms, e1 = CsmsView(bench), bench.evse(1)
    lag, pulse = bench.tol.latency_s, bench.timing(1).lock_pulse_s
    await csms.connected()

    bench.step("The CSMS reserves EVSE 1 for TOKEN-A (ReserveNow #1)")
    t = await csms.reserve_now(1, "TOKEN-A", evse=1)
    await e1.reserved_led.turns_on(within=lag)
    await e1.status.shows("amber", within=lag, after=t)
    await e1.lock_motor_lock.pulses_exactly(1, width=pulse, within=lag, after=t)
    await e1.lock_switch.turns_on(within=pulse + lag, after=t)
    await csms.status_is(1, "Reserved", within=lag, after=t)

    bench.step("The CSMS cancels it (CancelReservation #1): LED off, socket unlocked, Available again")
    t = await csms.cancel(1)
    await e1.reserved_led.turns_off(within=lag)
    await e1.status.shows("green", within=lag, after=t)
    unlock_by = bench.timing(1).meter_poll_s + lag  # the lock opens once a fresh reading shows no current
    await e1.lock_motor_unlock.pulses_exactly(1, width=pulse, within=unlock_by, after=t)
    await csms.status_is(1, "Available", within=lag, after=t)
    await csms.none("ReservationStatusUpdate", "ReservationStatusUpdate (the CSMS cancelled it itself)",
                    for_s=bench.tol.quiet_s, after=t)  # (1.6 has no such message: a DUT must not send it either)
    csms.all_valid()


@scenario(needs={"ocpp", "lock"})
async def reservation_expires(bench: Bench) -> None:
    """A reservation from the CSMS ends at its expiry time: LED off and socket unlocked, and the DUT reports it
    Expired (2.0.1 ReservationStatusUpdate; 1.6 has none) and the EVSE Available, not before."""
    csms, e1 = CsmsView(bench), bench.evse(1)
    lag, timing = bench.tol.latency_s, bench.timing(1)
    expires_in = 2.0
    await csms.connected()

    bench.step(f"The CSMS reserves EVSE 1 for TOKEN-A, expiring in {expires_in:.1f} s (ReserveNow #7)")
    t = await csms.reserve_now(7, "TOKEN-A", evse=1, expires_in=expires_in)
    on = await e1.reserved_led.turns_on(within=lag)
    await e1.lock_switch.turns_on(within=timing.lock_pulse_s + lag, after=t)
    await csms.status_is(1, "Reserved", within=lag, after=t)
    expiry = t + expires_in

    bench.step("Until the expiry time the LED stays on and the DUT reports nothing")
    await e1.reserved_led.stays(True, for_s=expiry - on - 0.05, after=on)
    await csms.reservation_quiet(1, "before the expiry time", for_s=expiry - 0.05 - t, after=t)

    bench.step("At the expiry time: Expired is reported, the LED goes off, the socket unlocks, Available")
    await csms.reservation_expired(7, 1, within=lag, after=expiry - 0.05)
    await e1.reserved_led.turns_off(within=lag, after=expiry)
    await e1.status.shows("green", within=lag, after=expiry)
    await e1.lock_motor_unlock.pulses_exactly(1, width=timing.lock_pulse_s, within=timing.meter_poll_s + lag,
                                              after=expiry)
    await csms.status_is(1, "Available", within=lag, after=expiry)
    csms.all_valid()


async def _start_charge(bench: Bench, csms: CsmsView, token: str) -> tuple[float, str]:
    """Token, plug, lock, contactor: the transaction starts. (When the contactor closed, the transaction's id.)"""
    e1 = bench.evse(1)
    lag, timing = bench.tol.latency_s, bench.timing(1)
    pulse = timing.lock_pulse_s

    bench.step(f"{token} at EVSE 1: the DUT asks the CSMS (Authorize, Accepted) and lets it charge")
    authorized = await bench.present_token(1, token, expect="allowed")
    await csms.authorized(token, within=lag, after=authorized)

    bench.step("The car plugs in: lock, contactor, current; the DUT reports the transaction Started")
    t = await bench.plug(1)
    locked = await e1.lock_switch.turns_on(within=timing.plug_debounce_s + pulse + lag, after=t)
    closed = await e1.coil.turns_on(within=timing.lock_confirm_s + pulse + lag, after=locked)
    await e1.current.turns_on(within=lag, after=closed)
    # by the time the contactor closed: 2.0.1 TxStartPoint PowerPathClosed (the default), or earlier on a DUT that
    # starts transactions at the token or the plug (1.6: at the plug, the token being authorized)
    _, tx = await csms.tx_started(1, within=closed - authorized + lag, after=authorized,
                                  mark="DUT: transaction Started")
    return closed, tx


async def _stop_charge(bench: Bench, csms: CsmsView, token: str, tx: str) -> float:
    """The same token again: the contactor opens and the DUT reports the transaction ended (Local)."""
    bench.step(f"{token} again: the contactor opens, the transaction ends")
    t = await bench.present_token(1, token, expect="stopped")
    await bench.evse(1).coil.turns_off(within=bench.tol.latency_s)
    ended = await csms.tx_ended(tx, "Local", within=bench.tol.latency_s, after=t, mark="DUT: transaction Ended")
    return csms.t(ended)


@scenario(needs={"ocpp", "lock", "meter"}, timeout_s=60.0)
async def charge_meter_values(bench: Bench) -> None:
    """A charge is reported in transaction messages whose meter values follow the plant's meter: every energy
    reading within the DUT's polling of the register, power and currents those of the EV, and a fresh reading
    afterwards equal to the register."""
    csms, e1 = CsmsView(bench), bench.evse(1)
    lag, timing = bench.tol.latency_s, bench.timing(1)
    window = timing.meter_poll_s + 2 * lag  # how old a reported reading may be when it arrives (hil.ocpp_energy)
    await csms.connected()

    bench.step(f"The CSMS asks for meter values every {UPDATE_S} s (SampledDataCtrlr.TxUpdatedInterval)")
    async with csms.variable("SampledDataCtrlr", "TxUpdatedInterval", str(UPDATE_S)), PlantEnergy(bench, 1) as plant:
        closed, tx = await _start_charge(bench, csms, "TOKEN-C")

        bench.step(f"Charging for {CHARGE_S:g} s: a periodic meter report every {UPDATE_S} s")
        await e1.coil.stays(True, for_s=CHARGE_S, after=closed)
        ended = await _stop_charge(bench, csms, "TOKEN-C", tx)

        bench.step("The socket opens once the DUT read the meter again (no current): that reading is the last")
        await e1.lock_motor_unlock.pulses_exactly(1, width=timing.lock_pulse_s, within=timing.meter_poll_s + lag,
                                                  after=ended)
        t = await csms.trigger("MeterValues", evse=1)
        after = await csms.meter_values(1, within=lag, after=t)

    bench.step("The transaction's readings against the plant's meter")
    events = csms.tx_messages(tx)
    updates = [(t, m) for t, m in events if csms.d.periodic(m)]
    least = int(CHARGE_S / UPDATE_S) - 1
    bench._answer(f"at least {least} periodic updates during the {CHARGE_S:g} s charge", len(updates) >= least,
                  bench.now(), f"{len(updates)} arrived")
    # the start, the end and the periodic updates carry readings; a 2.0.1 state change (e.g. SuspendedEV ->
    # Charging) carries none
    metered = [(t, m) for t, m in events if csms.d.metered(m)]
    readings_follow_plant(bench, plant, metered, window)
    power_matches_plant(bench, plant, updates, window, plant.meter.meter_map.phases)
    final = plant.wh[-1]
    reported = sampled(after.payload, "Energy.Active.Import.Register")
    bench._answer(f"the reading after the charge is the plant's register ({final:.1f} Wh ± 0.05)",
                  len(reported) == 1 and abs(reported[0] - final) <= 0.05 + 1e-6, bench.now(),
                  f"the DUT reported {reported} Wh")
    csms.all_valid()


@scenario(needs={"ocpp", "lock", "meter"}, timeout_s=180.0)  # a real DUT may wait its reconnect_max_s (120 s)
async def outage_loses_nothing(bench: Bench) -> None:
    """A CSMS outage during a charge loses nothing: the charge goes on, the transaction's messages made meanwhile
    arrive once the CSMS is back (2.0.1: marked offline), and they arrive once each, in order (2.0.1: seqNo 0, 1,
    2, ... without a gap or a repeat; 1.6: StartTransaction first, StopTransaction last, MeterValues in order, each
    with the transaction's transactionId)."""
    csms, e1 = CsmsView(bench), bench.evse(1)
    lag = bench.tol.latency_s
    await csms.connected()

    bench.step(f"The CSMS asks for meter values every {UPDATE_S} s (SampledDataCtrlr.TxUpdatedInterval)")
    async with csms.variable("SampledDataCtrlr", "TxUpdatedInterval", str(UPDATE_S)):
        closed, tx = await _start_charge(bench, csms, "TOKEN-D")
        await e1.coil.stays(True, for_s=1.5, after=closed)

        bench.step(f"The CSMS goes down for {OUTAGE_S:g} s; the charge goes on")
        down = await csms.outage()
        await e1.coil.stays(True, for_s=OUTAGE_S, after=down)

        bench.step("The CSMS is back: the DUT reconnects and delivers what it kept" +
                   (", marked offline" if csms.d.has_offline_flag else ""))
        up = await csms.back()
        again = await csms.reconnects(after=up)

        def inside(m: Received) -> bool:
            """Made (the DUT's clock) while the CSMS was down."""
            return down + lag <= bench.timeline.at_wall(csms.d.made(m)) <= up

        kept = "marked offline" if csms.d.has_offline_flag else "made during the outage"
        await csms.message(csms.d.update_action, f"a message of the transaction {kept}", within=lag, after=again,
                           match=lambda m: csms.d.tx_id(m) == tx and (
                               csms.d.marked_offline(m) if csms.d.has_offline_flag
                               else inside(m)))
        await _stop_charge(bench, csms, "TOKEN-D", tx)

    bench.step("Every message of the transaction arrived once, in order; those made offline arrived after it")
    events = [m for _, m in csms.tx_messages(tx)]
    unique = list({m.unique_id: m for m in events}.values())  # a resend keeps its message id (OCPP-J)
    ok, what, seen = csms.d.in_order(unique)
    bench._answer(f"{what} ({len(events) - len(unique)} resent)", ok, bench.now(), seen)
    made_offline = [m for m in unique if inside(m)]
    offline = [m for m in unique if csms.d.marked_offline(m)] if csms.d.has_offline_flag else made_offline
    least = int(OUTAGE_S / UPDATE_S) - 1
    early = [csms.t(m) for m in offline if csms.t(m) < up]
    ok = len(offline) >= least and not early and all(csms.d.marked_offline(m) or not csms.d.has_offline_flag
                                                      for m in made_offline)
    detail = (f"{kept}: {[csms.t(m) for m in offline]}; stamped inside the outage (marked offline): "
              f"{[(csms.t(m), csms.d.marked_offline(m)) for m in made_offline]}; delivered early: {early}")
    text = (f"{len(offline)} messages {kept} (at least {least}), all delivered after the outage"
            + (f"; every message stamped inside it ({len(made_offline)}) is one of them"
               if csms.d.has_offline_flag else ""))
    bench._record(CheckRecord(text, ok, down, bench.now(), (), None, "" if ok else detail))
    csms.all_valid()
