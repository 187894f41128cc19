"""When a token's reservation is used up: at authorization (DESIGN.md, OCPP 2.0.1) or when its transaction starts
at the plug (OCPP 1.6, 5.13), and a token of the running session's group stopping it (parentIdTag/groupIdToken).

The real runtime of ``run --sim`` with an authority that answers from a table, as a front would set it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from waiting import until

from controller.core.types import Reservation, ReservationEnd, ReservationEndReason
from controller.port.charger import Authorization, ReservationUse, TokenVerdict
from controller.runtime.build import Built


class Authority:
    """Answers from a table (token -> Authorization); unknown tokens are refused."""

    def __init__(self, answers: dict[str, Authorization]) -> None:
        self.answers = answers

    def session_stopped(self, evse_id: int, id_token: str) -> None:
        """Nothing to note here."""

    async def authorize(self, evse_id: int, id_token: str) -> Authorization:
        """The table's answer."""
        return self.answers.get(id_token, Authorization(False, reason="Invalid"))


def _reservation(rid: int, token: str, evse_id: int | None) -> Reservation:
    return Reservation(reservation_id=rid, id_token=token, expiry_time=datetime.now(UTC) + timedelta(hours=1),
                       evse_id=evse_id)


async def test_at_transaction_start_the_reservation_outlives_a_session_that_ends_before_the_plug(built: Built) -> None:
    runtime = built.runtime
    runtime.set_token_authority(Authority({"ALICE": Authorization(True)}), ReservationUse.AT_TRANSACTION_START)
    ends: list[ReservationEnd] = []
    built.runtime.core.subscribe(lambda ev: ends.append(ev) if isinstance(ev, ReservationEnd) else None)
    assert (await runtime.reserve(_reservation(4, "ALICE", 1))).value == "Accepted"

    outcome = await runtime.present_token(1, "ALICE")
    assert outcome.verdict is TokenVerdict.RESERVATION_USED and outcome.reservation_id == 4
    assert [r.reservation_id for r in runtime.reservations()] == [4]  # not used yet: no transaction without the plug
    entry = runtime.evse_status(1)
    assert entry["phase"] == "authorized"
    assert entry["reserved_led"] == "off"  # to the driver the EVSE is theirs: no reserved light
    await until(lambda: runtime.evse_status(1)["lock"] == "unlocked", "the lock free for the plug")

    assert await runtime.stop_session(1)  # the session ends before the plug: the reservation is still there
    await until(lambda: runtime.evse_status(1)["reserved_led"] != "off", "the reserved LED back on")
    assert [r.reservation_id for r in runtime.reservations()] == [4] and ends == []

    assert (await runtime.present_token(1, "ALICE")).reservation_id == 4
    await runtime.sim.plug(1)  # the transaction starts: now it is used
    await until(lambda: not runtime.reservations(), "the reservation used")
    assert [(e.reason, e.reservation_id) for e in ends] == [(ReservationEndReason.USED_TO_START_CHARGING, 4)]
    await until(lambda: runtime.evse_status(1)["phase"] == "charging", "charging")


async def test_at_authorization_the_reservation_is_used_when_the_token_is_accepted(built: Built) -> None:
    runtime = built.runtime
    runtime.set_token_authority(Authority({"ALICE": Authorization(True)}))
    assert (await runtime.reserve(_reservation(4, "ALICE", 1))).value == "Accepted"
    assert (await runtime.present_token(1, "ALICE")).reservation_id == 4
    assert runtime.reservations() == []
    assert await runtime.stop_session(1)
    assert runtime.reservations() == []  # gone for good, as DESIGN.md and 2.0.1 say


async def test_a_token_of_the_sessions_group_stops_it_and_another_group_does_not(built: Built) -> None:
    runtime = built.runtime
    runtime.set_token_authority(Authority({
        "DRIVER7": Authorization(True, group_id_token="FLEET"),
        "DRIVER8": Authorization(True, group_id_token="fleet"),
        "STRANGER": Authorization(True, group_id_token="OTHERS"),
        "NOBODY": Authorization(True),
    }), ReservationUse.AT_TRANSACTION_START)
    assert (await runtime.present_token(2, "DRIVER7")).may_charge
    await runtime.sim.plug(2)
    await until(lambda: runtime.evse_status(2)["phase"] == "charging", "charging")

    for other in ("STRANGER", "NOBODY", "UNKNOWN"):
        outcome = await runtime.present_token(2, other)
        assert outcome.verdict is TokenVerdict.REFUSED_EVSE_NOT_READY, (other, outcome)
        assert runtime.evse_status(2)["phase"] == "charging"
    outcome = await runtime.present_token(2, "DRIVER8")
    assert outcome.verdict is TokenVerdict.STOPPED and "group" in outcome.reason
    await until(lambda: runtime.evse_status(2)["phase"] in ("stopping", "unlocking", "idle"), "stopped")
