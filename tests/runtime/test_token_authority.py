"""A token authority (the OCPP front's CSMS) decides whether a presented token may be used at all.

The real runtime of ``run --sim`` (built in-process on a temporary state directory) with an authority that
answers as a test tells it: refused tokens use no reservation and start nothing, the group token it answers
with may use a reservation made for the group, a failing authority refuses, the running session's own token
stops it without asking, and the verdict is decided again after the (awaited) answer.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from controller.core.types import Reservation
from controller.port.charger import Authorization, TokenVerdict
from controller.runtime.build import Built


class Authority:
    """Answers from a table (token -> Authorization); records every question; can hold an answer back."""

    def __init__(self, answers: dict[str, Authorization]) -> None:
        self.answers = answers
        self.asked: list[tuple[int, str]] = []
        self.gate: asyncio.Event | None = None
        self.fail = False

    def session_stopped(self, evse_id: int, id_token: str) -> None:
        """Nothing to note here."""

    async def authorize(self, evse_id: int, id_token: str) -> Authorization:
        """The table's answer (unknown tokens refused), after ``gate`` opens when one is set."""
        self.asked.append((evse_id, id_token))
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise ConnectionError("CSMS unreachable")
        return self.answers.get(id_token, Authorization(False, reason="Invalid"))


def _reservation(rid: int, token: str, evse_id: int | None, parent: str | None = None) -> Reservation:
    expiry = datetime.now(UTC) + timedelta(hours=1)
    return Reservation(reservation_id=rid, id_token=token, expiry_time=expiry, evse_id=evse_id,
                       parent_id_token=parent)


async def test_a_refused_token_uses_no_reservation_and_starts_nothing(built: Built) -> None:
    runtime = built.runtime
    authority = Authority({})
    runtime.set_token_authority(authority)
    assert (await runtime.reserve(_reservation(1, "ALICE", 1))).value == "Accepted"

    outcome = await runtime.present_token(1, "alice")

    assert outcome.verdict is TokenVerdict.REFUSED_NOT_AUTHORIZED and not outcome.may_charge
    assert outcome.reason == "Invalid"
    assert authority.asked == [(1, "alice")]
    assert [r.reservation_id for r in runtime.reservations()] == [1]
    assert runtime.evse_status(1)["phase"] == "idle"


async def test_the_group_token_from_the_authority_uses_a_reservation_made_for_the_group(built: Built) -> None:
    runtime = built.runtime
    runtime.set_token_authority(Authority({"BOB": Authorization(True, group_id_token="FLEET-7")}))
    assert (await runtime.reserve(_reservation(2, "ALICE", 1, parent="fleet-7"))).value == "Accepted"

    outcome = await runtime.present_token(1, "BOB")

    assert outcome.verdict is TokenVerdict.RESERVATION_USED and outcome.reservation_id == 2
    assert runtime.reservations() == []
    assert runtime.evse_status(1)["phase"] == "authorized"


async def test_without_a_group_another_accepted_token_is_refused_and_the_reservation_kept(built: Built) -> None:
    runtime = built.runtime
    runtime.set_token_authority(Authority({"BOB": Authorization(True)}))
    assert (await runtime.reserve(_reservation(3, "ALICE", 1, parent="FLEET-7"))).value == "Accepted"

    outcome = await runtime.present_token(1, "BOB")

    assert outcome.verdict is TokenVerdict.REFUSED_RESERVED_FOR_OTHER
    assert [r.reservation_id for r in runtime.reservations()] == [3]


async def test_a_failing_authority_refuses(built: Built) -> None:
    runtime = built.runtime
    authority = Authority({"ALICE": Authorization(True)})
    authority.fail = True
    runtime.set_token_authority(authority)

    outcome = await runtime.present_token(2, "ALICE")

    assert outcome.verdict is TokenVerdict.REFUSED_NOT_AUTHORIZED
    assert "ConnectionError" in outcome.reason
    assert runtime.evse_status(2)["phase"] == "idle"


async def test_the_running_sessions_token_stops_it_without_asking(built: Built) -> None:
    runtime = built.runtime
    authority = Authority({"ALICE": Authorization(True)})
    runtime.set_token_authority(authority)
    assert (await runtime.present_token(1, "ALICE")).verdict is TokenVerdict.ALLOWED
    assert runtime.sim is not None
    await runtime.sim.plug(1)
    for _ in range(200):
        if runtime.evse_status(1)["phase"] in ("locking", "charging"):
            break
        await asyncio.sleep(0.01)
    assert runtime.evse_status(1)["phase"] in ("locking", "charging")

    outcome = await runtime.present_token(1, "alice")

    assert outcome.verdict is TokenVerdict.STOPPED
    assert authority.asked == [(1, "ALICE")]


async def test_the_verdict_is_decided_again_after_the_answer(built: Built) -> None:
    """The reservation is cancelled while the CSMS thinks: the accepted token is then simply allowed."""
    runtime = built.runtime
    authority = Authority({"ALICE": Authorization(True)})
    authority.gate = asyncio.Event()
    runtime.set_token_authority(authority)
    assert (await runtime.reserve(_reservation(4, "ALICE", 1))).value == "Accepted"

    pending = asyncio.ensure_future(runtime.present_token(1, "ALICE"))
    await asyncio.sleep(0.01)
    assert await runtime.cancel(4) is True
    authority.gate.set()
    outcome = await pending

    assert outcome.verdict is TokenVerdict.ALLOWED and outcome.reservation_id is None


async def test_without_an_authority_tokens_are_decided_locally_again(built: Built) -> None:
    runtime = built.runtime
    runtime.set_token_authority(Authority({}))
    runtime.set_token_authority(None)

    assert (await runtime.present_token(1, "ANYONE")).verdict is TokenVerdict.ALLOWED
