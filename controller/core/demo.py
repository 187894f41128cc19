"""A short, printed walk through the reservation core on a simulated 3-EVSE site."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from controller.core.reservation import ReservationCore
from controller.core.types import (
    Connector,
    ConnectorState,
    ConnectorType,
    CoreEvent,
    EvseReservedChanged,
    Reservation,
    ReservationCheck,
    ReservationEnd,
    ReservationUpdateStatus,
)

T2, CCS = ConnectorType.cType2, ConnectorType.cCCS2


class _DemoClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def _describe(event: CoreEvent) -> str:
    if isinstance(event, ReservationUpdateStatus):
        return f"  event: reservation {event.reservation_id} {event.reservation_status.value}"
    if isinstance(event, ReservationEnd):
        where = f" on EVSE {event.evse_id}" if event.evse_id is not None else ""
        return f"  event: reservation {event.reservation_id} ended{where}: {event.reason.value}"
    assert isinstance(event, EvseReservedChanged)
    why = f" ({event.reason.value})" if event.reason else ""
    return f"  event: EVSE {event.evse_id} reserved LED {'on' if event.reserved else 'off'}{why}"


def run_demo(out: Callable[[str], object] = print) -> ReservationCore:
    """Print each decision and event; returns the core for inspection."""
    clock = _DemoClock()
    site = {1: [Connector(1, T2)], 2: [Connector(1, T2), Connector(2, CCS)], 3: [Connector(1, CCS)]}
    core = ReservationCore(site, clock=clock)

    def show(event: CoreEvent) -> None:
        out(_describe(event))

    core.subscribe(show)
    out("Site: EVSE 1 Type 2 | EVSE 2 Type 2 + CCS | EVSE 3 CCS")

    def reserve(
        rid: int, token: str, minutes: int, evse: int | None = None, ctype: ConnectorType | None = None
    ) -> None:
        r = Reservation(rid, token, clock.now + timedelta(minutes=minutes), None, evse, ctype)
        what = f"EVSE {evse}" if evse is not None else f"any EVSE ({(ctype or ConnectorType.Unknown).value})"
        out(f"reserve_now #{rid} for {token} on {what}: {core.reserve_now(r).value}")

    reserve(1, "ALICE", 30, evse=1)
    reserve(2, "BOB", 15, ctype=CCS)
    reserve(3, "CAROL", 20, ctype=CCS)
    reserve(4, "DAVE", 20, ctype=T2)
    out("  (DAVE's Type 2 car could take EVSE 2 and strand a CCS car, so it is refused)")
    out(f"reserved LEDs now: {sorted(core.reserved_evses())}")
    out(f"may a walk-in driver charge at EVSE 2? {core.is_charging_possible(2)}")
    out(f"check alice at EVSE 1: {core.exists_reservation(ReservationCheck('alice', 1)).value}")
    out(f"check bob at EVSE 1: {core.exists_reservation(ReservationCheck('bob', 1)).value}")
    out("EVSE 3's connector faults:")
    core.set_connector_state(3, 1, ConnectorState.FAULTED)
    out("16 minutes pass:")
    clock.now += timedelta(minutes=16)
    core.expire_due()
    out("ALICE presents her card at EVSE 1:")
    rid = core.matches_reserved_identifier("Alice", 1)
    if rid is not None:
        core.use_reservation(rid)
    out(f"reserved LEDs now: {sorted(core.reserved_evses())}")
    return core
