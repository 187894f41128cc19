"""The DUT as an OCPP 2.0.1 charging station: the harness plays its CSMS (hil.csms, where the profile's [ocpp] says).

Reservations come from the CSMS (ReserveNow, CancelReservation) and are checked on the lines as in the
reservations theme, and on what the DUT tells the CSMS (StatusNotification, ReservationStatusUpdate). Tokens are
presented over the DUT's HTTP API, as its RFID reader would hand them over; the DUT asks the CSMS about them
(Authorize, answered Accepted). Transactions are checked against the plant: the meter values the DUT reports
follow the register of the meter the harness plays (hil.ocpp_energy says within what, and why), and a CSMS
outage during a charge loses no TransactionEvent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from hil.harness import Bench
from hil.ocpp_energy import PlantEnergy, power_matches_plant, readings_follow_plant, sampled
from hil.ocpp_view import CsmsView
from hil.scenario import scenario
from hil.timeline import CheckRecord

UPDATE_S = 1  # SampledDataCtrlr.TxUpdatedInterval during the charges: an Updated event every second
CHARGE_S = 5.0
OUTAGE_S = 3.0


def _tx(payload: dict[str, Any]) -> str:
    """The transaction id of a TransactionEvent."""
    return str(payload["transactionInfo"]["transactionId"])


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
                    for_s=bench.tol.quiet_s, after=t)
    csms.all_valid()


@scenario(needs={"ocpp", "lock"})
async def reservation_expires(bench: Bench) -> None:
    """A reservation from the CSMS ends at its expiry time: LED off and socket unlocked, and the DUT reports it
    Expired (ReservationStatusUpdate) and the EVSE Available, not before."""
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
    await csms.none("ReservationStatusUpdate", "ReservationStatusUpdate before the expiry time",
                    for_s=expiry - 0.05 - t, after=t)

    bench.step("At the expiry time: Expired is reported, the LED goes off, the socket unlocks, Available")
    await csms.message("ReservationStatusUpdate", "ReservationStatusUpdate #7 Expired", within=lag,
                       after=expiry - 0.05, mark="DUT: #7 Expired",
                       where=lambda p: p["reservationId"] == 7 and p["reservationUpdateStatus"] == "Expired")
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
    await csms.message("Authorize", f"Authorize {token}", within=lag, after=authorized,
                       where=lambda p: p["idToken"]["idToken"] == token)

    bench.step("The car plugs in: lock, contactor, current; the DUT reports the transaction Started")
    t = await bench.plug(1)
    locked = await e1.lock_switch.turns_on(within=timing.plug_debounce_s + pulse + lag, after=t)
    closed = await e1.coil.turns_on(within=timing.lock_confirm_s + pulse + lag, after=locked)
    await e1.current.turns_on(within=lag, after=closed)
    # by the time the contactor closed: TxStartPoint PowerPathClosed (the default), or earlier on a DUT that starts
    # transactions at the token or the plug
    started = await csms.message("TransactionEvent", "TransactionEvent Started on EVSE 1",
                                 within=closed - authorized + lag, after=authorized, mark="DUT: transaction Started",
                                 where=lambda p: p["eventType"] == "Started" and p["evse"]["id"] == 1)
    return closed, _tx(started.payload)


async def _stop_charge(bench: Bench, csms: CsmsView, token: str, tx: str) -> float:
    """The same token again: the contactor opens and the DUT reports the transaction Ended (Local)."""
    bench.step(f"{token} again: the contactor opens, the transaction ends")
    t = await bench.present_token(1, token, expect="stopped")
    await bench.evse(1).coil.turns_off(within=bench.tol.latency_s)
    ended = await csms.message("TransactionEvent", "TransactionEvent Ended (stoppedReason Local)",
                               within=bench.tol.latency_s, after=t, mark="DUT: transaction Ended",
                               where=lambda p: p["eventType"] == "Ended" and _tx(p) == tx
                               and p["transactionInfo"].get("stoppedReason") == "Local")
    return csms.t(ended)


@scenario(needs={"ocpp", "lock", "meter"}, timeout_s=60.0)
async def charge_meter_values(bench: Bench) -> None:
    """A charge is reported in TransactionEvents whose meter values follow the plant's meter: every energy reading
    within the DUT's polling of the register, power and currents those of the EV, and a fresh reading afterwards
    equal to the register."""
    csms, e1 = CsmsView(bench), bench.evse(1)
    lag, timing = bench.tol.latency_s, bench.timing(1)
    window = timing.meter_poll_s + 2 * lag  # how old a reported reading may be when it arrives (hil.ocpp_energy)
    await csms.connected()

    bench.step(f"The CSMS asks for meter values every {UPDATE_S} s (SampledDataCtrlr.TxUpdatedInterval)")
    async with csms.variable("SampledDataCtrlr", "TxUpdatedInterval", str(UPDATE_S)), PlantEnergy(bench, 1) as plant:
        closed, tx = await _start_charge(bench, csms, "TOKEN-C")

        bench.step(f"Charging for {CHARGE_S:g} s: an Updated event (MeterValuePeriodic) every {UPDATE_S} s")
        await e1.coil.stays(True, for_s=CHARGE_S, after=closed)
        ended = await _stop_charge(bench, csms, "TOKEN-C", tx)

        bench.step("The socket opens once the DUT read the meter again (no current): that reading is the last")
        await e1.lock_motor_unlock.pulses_exactly(1, width=timing.lock_pulse_s, within=timing.meter_poll_s + lag,
                                                  after=ended)
        t = await csms.trigger("MeterValues", evse=1)
        after = await csms.message("MeterValues", "MeterValues of EVSE 1 (triggered)", within=lag, after=t,
                                   where=lambda p: p["evseId"] == 1)

    bench.step("The transaction's readings against the plant's meter")
    events = [(csms.t(m), m) for m in csms.sent("TransactionEvent", lambda p: _tx(p) == tx)]
    updates = [(t, m) for t, m in events if m.payload["triggerReason"] == "MeterValuePeriodic"]
    least = int(CHARGE_S / UPDATE_S) - 1
    bench._answer(f"at least {least} periodic updates during the {CHARGE_S:g} s charge", len(updates) >= least,
                  bench.now(), f"{len(updates)} arrived")
    # Started, Ended and the periodic updates carry readings (Tx*Measurands); a state change (e.g. SuspendedEV ->
    # Charging) carries none
    metered = [(t, m) for t, m in events if (t, m) in updates or m.payload["eventType"] != "Updated"]
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
    """A CSMS outage during a charge loses nothing: the charge goes on, the events made meanwhile arrive once the
    CSMS is back, marked offline, and the transaction's seqNo run 0, 1, 2, ... without a gap or a repeat."""
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

        bench.step("The CSMS is back: the DUT reconnects and delivers what it kept, marked offline")
        up = await csms.back()
        again = await csms.reconnects(after=up)
        await csms.message("TransactionEvent", "a TransactionEvent marked offline", within=lag, after=again,
                           where=lambda p: _tx(p) == tx and p.get("offline") is True)
        await _stop_charge(bench, csms, "TOKEN-D", tx)

    bench.step("Every event of the transaction arrived once, in seqNo order; those made offline say so")
    events = csms.sent("TransactionEvent", lambda p: _tx(p) == tx)
    unique = list({m.unique_id: m for m in events}.values())  # a resend keeps its message id (OCPP-J)
    seq = [int(m.payload["seqNo"]) for m in unique]
    bench._answer(f"seqNo 0..{len(seq) - 1} each once, in order ({len(events) - len(unique)} resent)",
                  seq == list(range(len(seq))) and unique[-1].payload["eventType"] == "Ended", bench.now(),
                  f"seqNo in arrival order: {seq}")
    offline = [m for m in unique if m.payload.get("offline") is True]
    made_offline = [m for m in unique if down + lag <= bench.timeline.at_wall(_stamp(m.payload)) <= up]
    least = int(OUTAGE_S / UPDATE_S) - 1
    early = [csms.t(m) for m in offline if csms.t(m) < up]
    ok = len(offline) >= least and not early and all(m.payload.get("offline") is True for m in made_offline)
    detail = (f"seqNo marked offline: {[m.payload['seqNo'] for m in offline]}; stamped inside (seqNo, offline): "
              f"{[(m.payload['seqNo'], m.payload.get('offline')) for m in made_offline]}; delivered early: {early}")
    text = (f"{len(offline)} events marked offline (at least {least}), all delivered after the outage; every event "
            f"stamped inside it ({len(made_offline)}) is one of them")
    bench._record(CheckRecord(text, ok, down, bench.now(), (), None, "" if ok else detail))
    csms.all_valid()


def _stamp(payload: dict[str, Any]) -> datetime:
    """The event's timestamp (the DUT's clock) as a datetime."""
    return datetime.fromisoformat(str(payload["timestamp"]).replace("Z", "+00:00"))
