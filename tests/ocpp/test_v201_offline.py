"""OCPP 2.0.1 offline behaviour against the sim charger: a CSMS outage during a transaction loses nothing and sends
nothing twice (E04, E11/E12: the durable queue, in order, ``offline = true``), a reservation that expired meanwhile
is reported after the reconnect, every connector's status is sent again on reconnect, and the station reconnects
with back-off (not in a hot loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from .csms import Csms, Message
from .station_harness import OcppStation, booted, ocpp_config, ocpp_time, set_variables, status_of, until


@pytest.fixture
async def station(tmp_path: Path, csms_201: Csms) -> AsyncIterator[OcppStation]:
    """The sim charger connected and booted at ``csms_201``, every connector reported."""
    async with OcppStation(tmp_path, ocpp_config(csms_201.url)) as s:
        await booted(csms_201)
        yield s


def tx_messages(csms: Csms, tx_id: str) -> list[Message]:
    """Every TransactionEvent CALL of one transaction, in arrival order (retransmissions included)."""
    return [m for m in csms.received_messages("TransactionEvent")
            if m.payload["transactionInfo"]["transactionId"] == tx_id]


def assert_exactly_once_in_order(messages: list[Message]) -> None:
    """seqNo 0..n each taken once, in order; a copy is allowed only of a CALL the CSMS never got to answer (the
    connection went down with it in flight: the station must send it again, with the same message id)."""
    answered: dict[int, Message] = {}
    for message in messages:
        seq_no = message.payload["seqNo"]
        if seq_no in answered:
            raise AssertionError(f"seqNo {seq_no} delivered twice: {answered[seq_no].payload} / {message.payload}")
        if message.response is not None:
            answered[seq_no] = message
        elif any(m.unique_id == message.unique_id and m is not message for m in messages):
            continue  # unanswered, sent again (same unique id) on the next connection
    assert sorted(answered) == list(range(len(answered))), sorted(answered)
    firsts = [m.payload["seqNo"] for m in messages if m.response is not None]
    assert firsts == sorted(firsts), firsts


async def test_events_made_during_an_outage_arrive_after_it_in_order_and_once(
        station: OcppStation, csms_201: Csms) -> None:
    await set_variables(csms_201, ("SampledDataCtrlr", "TxUpdatedInterval", "1"))
    outcome = await station.runtime.present_token(1, "ALICE")
    assert outcome.may_charge
    await station.plug(1)
    started = await csms_201.expect("TransactionEvent", lambda p: p["eventType"] == "Started", timeout=20)
    tx_id = started["transactionInfo"]["transactionId"]
    assert "offline" not in started
    await csms_201.expect("TransactionEvent", lambda p: p["triggerReason"] == "MeterValuePeriodic", timeout=10)

    await csms_201.stop()  # the CSMS goes away
    flow = station.station.transactions
    await until(lambda: not station.station.online, "the station to notice the outage")
    await until(lambda: flow.queue.pending_count(tx_id) >= 2, "two events queued during the outage")
    await station.runtime.present_token(1, "ALICE")  # the driver stops while the CSMS is away
    await until(lambda: flow.tracker.open(1) is None, "the transaction ended")
    await flow.flushed(5)
    made_offline = flow.queue.pending_count(tx_id)
    assert made_offline >= 3

    await csms_201.start()
    await csms_201.wait_connected(count=2)
    ended = await csms_201.expect("TransactionEvent", lambda p: p["eventType"] == "Ended", timeout=30)
    assert ended["offline"] is True
    assert ended["transactionInfo"]["stoppedReason"] == "Local"
    messages = tx_messages(csms_201, tx_id)
    assert_exactly_once_in_order(messages)
    assert messages[-1].payload["eventType"] == "Ended"
    after = [m for m in messages if m.connection == 2]
    assert len(after) >= made_offline
    new = [m for m in after if not any(n.unique_id == m.unique_id for n in messages if n.connection == 1)]
    assert new and all(m.payload.get("offline") is True for m in new), [m.payload for m in new]
    assert len(csms_201.received("BootNotification")) == 1  # a reconnect is no reboot
    await until(lambda: flow.queue.pending_count() == 0, "the queue drained")


async def test_a_reservation_that_expires_during_an_outage_is_reported_after_it(
        station: OcppStation, csms_201: Csms) -> None:
    answer = await csms_201.call("ReserveNow", {"id": 21, "expiryDateTime": ocpp_time(1.5), "evseId": 2,
                                                "idToken": {"idToken": "BOB", "type": "ISO14443"}})
    assert answer["status"] == "Accepted"
    await csms_201.expect("StatusNotification", status_of(2, "Reserved"))
    await csms_201.disconnect(abrupt=True)
    await csms_201.stop()
    await until(lambda: not station.evse(2)["reserved"], "the reservation expired", timeout=15)
    assert csms_201.received("ReservationStatusUpdate") == []

    await csms_201.start()
    await csms_201.wait_connected(count=2)
    update = await csms_201.expect_message("ReservationStatusUpdate", timeout=20)
    assert update.payload == {"reservationId": 21, "reservationUpdateStatus": "Expired"}
    assert update.connection == 2
    assert len(csms_201.received("ReservationStatusUpdate")) == 1


async def test_every_connector_status_is_sent_again_after_a_reconnect(
        station: OcppStation, csms_201: Csms) -> None:
    await csms_201.call("ReserveNow", {"id": 2, "expiryDateTime": ocpp_time(600), "evseId": 2,
                                       "idToken": {"idToken": "BOB", "type": "ISO14443"}})
    await csms_201.expect("StatusNotification", status_of(2, "Reserved"))
    await csms_201.disconnect()
    await csms_201.wait_connected(count=2)

    def on_second() -> list[tuple[int, int, str]] | None:
        found = [(m.payload["evseId"], m.payload["connectorId"], m.payload["connectorStatus"])
                 for m in csms_201.received_messages("StatusNotification") if m.connection == 2]
        return found if len(found) >= 2 else None

    await until(lambda: on_second() is not None, "the statuses on the new connection")
    assert sorted(on_second() or []) == [(1, 1, "Available"), (2, 1, "Reserved")]
    assert len(csms_201.received("BootNotification")) == 1


class Knocks:
    """A bare TCP listener on the CSMS's port that counts connection attempts and drops each at once."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._server: asyncio.Server | None = None

    async def start(self, port: int) -> None:
        async def refuse(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.times.append(asyncio.get_running_loop().time())
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

        self._server = await asyncio.start_server(refuse, "127.0.0.1", port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


async def test_the_station_reconnects_with_back_off_not_in_a_hot_loop(tmp_path: Path, csms_201: Csms) -> None:
    config = ocpp_config(csms_201.url, reconnect_min_s=0.2, reconnect_max_s=0.8)
    async with OcppStation(tmp_path, config) as station:
        await booted(csms_201)
        port = csms_201.port
        await csms_201.stop()
        knocks = Knocks()
        await knocks.start(port)
        try:
            await until(lambda: len(knocks.times) >= 5, "five reconnection attempts", timeout=20)
            window_start = asyncio.get_running_loop().time()
            count_before = len(knocks.times)
            await until(lambda: asyncio.get_running_loop().time() - window_start >= 2.0, "a 2 s window")
            in_window = len(knocks.times) - count_before
        finally:
            await knocks.stop()
        gaps = [b - a for a, b in itertools.pairwise(knocks.times)]
        assert all(gap >= 0.18 for gap in gaps), gaps  # at least the minimum wait every time
        assert 1 <= in_window <= 2.0 / 0.4 + 1, (in_window, gaps)  # the wait has grown to 0.4..0.8 s (+ jitter)
        assert not station.station._task.done()

        await csms_201.start()
        await csms_201.wait_connected(count=2, timeout=10)
        await csms_201.expect("StatusNotification", status_of(1, "Available"))

