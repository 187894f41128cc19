"""Regression tests for the controller defects the stateful property test found (both fixed)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from controller.charging.session import Phase
from controller.core.types import Reservation, ReservationResult
from controller.port.charger import SimFaultKind, TokenVerdict

from .warp_sim import WarpSim


@pytest.fixture
def sim() -> Iterator[WarpSim]:
    s = WarpSim()
    try:
        yield s
    finally:
        s.close()


def test_unlock_waits_for_a_reading_after_the_contactor_opened(sim: WarpSim) -> None:
    """A session stopped before the next meter poll: the unlock must wait for a reading taken after the opening.

    DESIGN.md: the lock is released only once the contactor is confirmed open AND the meter shows no
    current above the threshold. A reading from before the session says nothing about its current; the
    simulated meter here still shows the session's 16 A when the unlock motor starts.
    """
    rt = sim.b.runtime
    e = rt._evses[1]
    unlock_pin = sim.b.plant.evses[1].lock._unlock_line
    sim.advance(3.0)  # start-up unlocks done, meters read

    unlock_starts: list[tuple[float, float | None]] = []  # (when, timestamp of the reading the controller had)
    original = unlock_pin.listener

    def spy(level: bool) -> None:
        if level:
            unlock_starts.append((rt._mono(), e.snapshot.timestamp if e.snapshot is not None else None))
        if original is not None:
            original(level)

    unlock_pin.listener = spy
    first = e.snapshot
    while e.snapshot is first:  # act just after a meter reading: the next one is a poll interval (2 s) away
        sim.advance(0.01)
    assert sim.run(rt.present_token(1, "ALICE")).may_charge
    sim.run(rt.sim.plug(1))
    sim.advance(0.6)
    assert e.session.view.phase is Phase.CHARGING and sim.b.plant.evses[1].contactor.contacts_closed

    stopped_at = rt._mono()
    sim.run(rt.present_token(1, "ALICE"))  # the same token stops: the coil opens now
    sim.advance(3.0)

    assert unlock_starts, "the lock never released"
    when, reading_at = unlock_starts[0]
    assert reading_at is not None and reading_at >= stopped_at, (
        f"unlock started {when - stopped_at:.3f} s after the stop on a meter reading taken "
        f"{stopped_at - (reading_at or 0.0):.3f} s before it"
    )
    problems = sim.problems()
    assert not problems, "\n".join(problems)


def test_contactor_never_closes_while_an_unlock_command_is_retrying(sim: WarpSim) -> None:
    """EVSE 1 reserved (socket locked), lock jams; the token's unlock fails its first pulse; the car plugs in
    during the retry back-off.

    The lock reads LOCKED between the pulses, so the session goes CHARGING and the coil closes; the retry
    pulse then drives the motor towards UNLOCK with the contacts closed and 16 A flowing. With a sticky
    lock whose retry succeeds, the plug would be released under load.
    """
    rt = sim.b.runtime
    sim.advance(3.0)
    expiry = sim.wall() + timedelta(minutes=5)
    assert sim.run(rt.reserve(Reservation(reservation_id=1, id_token="ALICE", expiry_time=expiry, evse_id=1))) is (
        ReservationResult.ACCEPTED
    )
    sim.advance(1.0)
    assert sim.b.plant.evses[1].lock.locked  # lock_when_reserved
    sim.run(rt.sim.fault(1, SimFaultKind.LOCK_JAM))
    assert sim.run(rt.present_token(1, "ALICE")).verdict is TokenVerdict.RESERVATION_USED
    sim.advance(0.3)  # first unlock pulse done, not confirmed: the driver backs off before its retry
    sim.run(rt.sim.plug(1))
    sim.advance(3.0)
    problems = sim.problems()
    assert not problems, "\n".join(problems)
