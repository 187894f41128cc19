"""The sender loop over a real queue file: order, one CALL at a time, E13 back-off, dead letters, offline, cancel.

Waits are recorded by an injected ``sleep`` (it records the delay and yields), so the back-off schedule is checked
exactly without timing anything; the only real waiting is polling for a condition with a generous deadline.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from controller.ocpp.station import delivery
from controller.ocpp.station.delivery import Outcome, SendOutcome, drain
from controller.ocpp.station.queue import MessageQueue, QueuedMessage


class FakeSleep:
    """Records every requested delay and returns at once (after yielding to the loop)."""

    def __init__(self) -> None:
        """No delay requested yet."""
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        """Record ``delay`` and yield once instead of waiting."""
        self.delays.append(delay)
        await asyncio.sleep(0)


class Csms:
    """A scripted peer: answers per message_id from a list of outcomes (DELIVERED once the script runs out)."""

    def __init__(self) -> None:
        """No message seen yet, no script."""
        self.sent: list[tuple[str, str, dict[str, object]]] = []  # (message_id, action, payload as sent)
        self.script: dict[str, list[SendOutcome]] = {}
        self.in_flight = 0
        self.max_in_flight = 0

    async def send(self, message: QueuedMessage) -> SendOutcome:
        """Take one CALL (counting how many are outstanding at once) and answer per the script."""
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0)
            self.sent.append((message.message_id, message.action, message.payload_to_send()))
            script = self.script.get(message.message_id, [])
            if not script:
                return SendOutcome.delivered()
            result = script.pop(0)
            if isinstance(result, BaseException):
                raise result
            return result
        finally:
            self.in_flight -= 1


async def until(condition: Callable[[], bool], what: str, deadline_s: float = 10.0) -> None:
    """Poll ``condition`` until true; fail naming ``what`` after a generous deadline (never a timing assertion)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while not condition():
        assert loop.time() < end, f"timed out waiting for {what}"
        await asyncio.sleep(0.002)


def start(queue: MessageQueue, send: Callable[[QueuedMessage], Awaitable[SendOutcome]], online: asyncio.Event,
          sleep: FakeSleep, *, attempts: int = 3, interval: float = 10.0) -> asyncio.Task[None]:
    """Run drain() as a task with the given MessageAttempts and MessageAttemptInterval."""
    return asyncio.create_task(drain(queue, send, max_attempts=lambda: attempts, retry_interval_s=lambda: interval,
                                     online=online, sleep=sleep))


async def stop(task: asyncio.Task[None]) -> None:
    """Cancel the sender and wait for it to finish."""
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def online_event() -> asyncio.Event:
    """A set ``online`` event."""
    event = asyncio.Event()
    event.set()
    return event


async def test_sends_in_order_one_at_a_time_including_later_arrivals(tmp_path: Path) -> None:
    queue = MessageQueue(tmp_path / "ocpp.db")
    csms, sleep = Csms(), FakeSleep()
    made = [queue.enqueue_transaction_event("tx", lambda s: {"seqNo": s}) for _ in range(20)]
    task = start(queue, csms.send, online_event(), sleep)
    await until(lambda: len(csms.sent) == 20, "the first 20")
    made += [queue.enqueue_transaction_event("tx", lambda s: {"seqNo": s}) for _ in range(5)]  # wakes the idle loop
    await until(lambda: queue.pending_count() == 0, "an empty queue")
    await stop(task)
    assert [m for m, _, _ in csms.sent] == [m.message_id for m in made]
    assert [p["seqNo"] for _, _, p in csms.sent] == list(range(25))
    assert csms.max_in_flight == 1
    assert sleep.delays == []
    queue.close()


async def test_failures_back_off_by_interval_times_attempts_then_succeed(tmp_path: Path) -> None:
    path = tmp_path / "ocpp.db"
    queue = MessageQueue(path)
    csms, sleep = Csms(), FakeSleep()
    a, b = queue.enqueue("TransactionEvent", {"n": "a"}), queue.enqueue("TransactionEvent", {"n": "b"})
    csms.script[a.message_id] = [SendOutcome.failed("CALLERROR InternalError"), SendOutcome.failed("timeout")]
    task = start(queue, csms.send, online_event(), sleep, attempts=3, interval=10.0)
    await until(lambda: queue.pending_count() == 0, "an empty queue")
    await stop(task)
    assert [m for m, _, _ in csms.sent] == [a.message_id] * 3 + [b.message_id]  # b waits until a is settled
    assert sleep.delays == [10.0, 20.0]  # E13.FR.03: interval x preceding transmissions
    assert queue.dead_letters() == []
    queue.close()


async def test_gives_up_after_max_attempts_into_the_dead_letters_and_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    queue = MessageQueue(tmp_path / "ocpp.db")
    csms, sleep = Csms(), FakeSleep()
    a, b = queue.enqueue("TransactionEvent", {"n": "a"}), queue.enqueue("TransactionEvent", {"n": "b"})
    csms.script[a.message_id] = [SendOutcome.failed("CALLERROR FormatViolation")] * 5
    with caplog.at_level(logging.WARNING):
        task = start(queue, csms.send, online_event(), sleep, attempts=3, interval=2.5)
        await until(lambda: queue.pending_count() == 0, "an empty queue")
        await stop(task)
    assert [m for m, _, _ in csms.sent] == [a.message_id] * 3 + [b.message_id]
    assert sleep.delays == [2.5, 5.0]  # no wait after the last attempt
    dead = queue.dead_letters()
    assert [d.message_id for d in dead] == [a.message_id]
    assert "3 attempt(s)" in dead[0].reason and "FormatViolation" in dead[0].reason
    assert f"gave up on TransactionEvent {a.message_id}" in caplog.text
    queue.close()


async def test_attempts_survive_a_restart_of_the_sender(tmp_path: Path) -> None:
    path = tmp_path / "ocpp.db"
    queue = MessageQueue(path)
    a = queue.enqueue("TransactionEvent", {})
    queue.failed_attempt(a.message_id, "before the restart")
    queue.failed_attempt(a.message_id, "before the restart")
    queue.close()
    queue = MessageQueue(path)
    csms, sleep = Csms(), FakeSleep()
    csms.script[a.message_id] = [SendOutcome.failed("still failing")] * 5
    task = start(queue, csms.send, online_event(), sleep, attempts=3)
    await until(lambda: queue.pending_count() == 0, "the message given up on")
    await stop(task)
    assert len(csms.sent) == 1  # attempts 1 and 2 happened in the previous life
    assert [d.message_id for d in queue.dead_letters()] == [a.message_id]
    queue.close()


async def test_pauses_while_offline_and_an_offline_outcome_is_not_an_attempt(tmp_path: Path) -> None:
    queue = MessageQueue(tmp_path / "ocpp.db")
    sleep = FakeSleep()
    online = asyncio.Event()  # starts offline
    a = queue.enqueue("TransactionEvent", {"offline": True}, offline=True)
    calls: list[str] = []

    async def first_drops_the_connection(message: QueuedMessage) -> SendOutcome:
        calls.append(message.message_id)
        if len(calls) == 1:
            online.clear()  # the connection manager notices the loss
            return SendOutcome.offline("connection closed before the answer")
        return SendOutcome.delivered()

    task = start(queue, first_drops_the_connection, online, sleep)
    for _ in range(50):
        await asyncio.sleep(0.001)
    assert calls == []  # nothing is sent while offline
    online.set()
    await until(lambda: not online.is_set(), "the connection loss")
    for _ in range(50):
        await asyncio.sleep(0.001)
    assert calls == [a.message_id]  # paused again
    pending = queue.peek()
    assert pending is not None and pending.attempts == 0 and pending.offline  # not an attempt; offline flag kept
    online.set()
    await until(lambda: queue.pending_count() == 0, "delivery after reconnect")
    await stop(task)
    assert calls == [a.message_id, a.message_id]  # the same message_id on the resend
    assert sleep.delays == []
    queue.close()


async def test_an_offline_outcome_while_still_online_does_not_spin(tmp_path: Path) -> None:
    queue = MessageQueue(tmp_path / "ocpp.db")
    csms, sleep = Csms(), FakeSleep()
    a = queue.enqueue("TransactionEvent", {})
    csms.script[a.message_id] = [SendOutcome.offline("not connected yet")] * 2
    task = start(queue, csms.send, online_event(), sleep)
    await until(lambda: queue.pending_count() == 0, "delivery")
    await stop(task)
    assert sleep.delays == [delivery.OFFLINE_RECHECK_S] * 2
    assert len(csms.sent) == 3
    queue.close()


async def test_cancel_mid_send_keeps_the_message_pending_with_its_message_id(tmp_path: Path) -> None:
    path = tmp_path / "ocpp.db"
    queue = MessageQueue(path)
    a = queue.enqueue_transaction_event("tx", lambda s: {"seqNo": s})
    entered = asyncio.Event()

    async def hangs(message: QueuedMessage) -> SendOutcome:
        entered.set()
        await asyncio.Event().wait()  # the CSMS never answers
        raise AssertionError("unreachable")

    task = start(queue, hangs, online_event(), FakeSleep())
    await entered.wait()
    await stop(task)
    queue.close()
    queue = MessageQueue(path)
    kept = queue.peek()
    assert kept is not None and kept.message_id == a.message_id and kept.attempts == 0 and kept.seq_no == 0
    csms = Csms()
    task = start(queue, csms.send, online_event(), FakeSleep())
    await until(lambda: queue.pending_count() == 0, "the resend")
    await stop(task)
    assert [m for m, _, _ in csms.sent] == [a.message_id]
    queue.close()


async def test_a_send_that_raises_counts_as_a_failed_attempt(tmp_path: Path) -> None:
    queue = MessageQueue(tmp_path / "ocpp.db")
    csms, sleep = Csms(), FakeSleep()
    a = queue.enqueue("TransactionEvent", {})
    csms.script[a.message_id] = [RuntimeError("bug in the transport")]  # type: ignore[list-item]
    task = start(queue, csms.send, online_event(), sleep, interval=1.0)
    await until(lambda: queue.pending_count() == 0, "delivery")
    await stop(task)
    assert len(csms.sent) == 2 and sleep.delays == [1.0]
    queue.close()


async def test_1_6_stop_gets_the_transaction_id_from_the_start_result(tmp_path: Path) -> None:
    queue = MessageQueue(tmp_path / "ocpp.db")
    csms, sleep = Csms(), FakeSleep()
    start_tx = queue.enqueue("StartTransaction", {"connectorId": 1}, transaction_ref="L1")
    queue.enqueue("MeterValues", {"connectorId": 1}, transaction_ref="L1", reference_field="transactionId",
                  droppable=True)
    queue.enqueue("StopTransaction", {"meterStop": 5}, transaction_ref="L1", reference_field="transactionId")
    csms.script[start_tx.message_id] = [SendOutcome.delivered(reference_value=77)]
    task = start(queue, csms.send, online_event(), sleep)
    await until(lambda: queue.pending_count() == 0, "delivery")
    await stop(task)
    assert [(action, payload.get("transactionId")) for _, action, payload in csms.sent] == [
        ("StartTransaction", None), ("MeterValues", 77), ("StopTransaction", 77)
    ]
    queue.close()


async def test_a_stop_whose_start_was_given_up_goes_to_the_dead_letters(tmp_path: Path) -> None:
    queue = MessageQueue(tmp_path / "ocpp.db")
    csms, sleep = Csms(), FakeSleep()
    start_tx = queue.enqueue("StartTransaction", {}, transaction_ref="L2")
    stop_tx = queue.enqueue("StopTransaction", {}, transaction_ref="L2", reference_field="transactionId")
    after = queue.enqueue("StartTransaction", {}, transaction_ref="L3")
    csms.script[start_tx.message_id] = [SendOutcome.failed("CALLERROR")] * 3
    task = start(queue, csms.send, online_event(), sleep, attempts=3)
    await until(lambda: queue.pending_count() == 0, "the queue to settle")
    await stop(task)
    assert [m for m, _, _ in csms.sent] == [start_tx.message_id] * 3 + [after.message_id]  # stop never sent
    dead = queue.dead_letters()
    assert [d.message_id for d in dead] == [start_tx.message_id, stop_tx.message_id]
    assert "never got its transactionId" in dead[1].reason
    queue.close()


async def test_a_delivery_the_disk_refuses_is_retried_without_resending(tmp_path: Path) -> None:
    queue = MessageQueue(tmp_path / "ocpp.db")
    sleep = FakeSleep()
    a = queue.enqueue("TransactionEvent", {})
    b = queue.enqueue("TransactionEvent", {})
    sent: list[str] = []

    async def disk_fails_while_answering(message: QueuedMessage) -> SendOutcome:
        sent.append(message.message_id)
        if len(sent) == 1:
            assert queue._db is not None
            queue._db.execute("PRAGMA query_only=ON")  # the disk goes read-only while the CALL is out
        return SendOutcome.delivered()

    task = start(queue, disk_fails_while_answering, online_event(), sleep)
    await until(lambda: len(sleep.delays) >= 3, "a few retries of the write")
    assert sent == [a.message_id]  # held in memory, not resent
    assert queue.peek() == queue.pending()[0] and queue.pending_count() == 2  # not removed on disk, still pending
    assert queue._db is not None
    queue._db.execute("PRAGMA query_only=OFF")
    await until(lambda: queue.pending_count() == 0, "delivery once the disk is back")
    await stop(task)
    assert sent == [a.message_id, b.message_id]
    assert sleep.delays[:3] == [delivery.IO_RETRY_MIN_S, delivery.IO_RETRY_MIN_S * 2, delivery.IO_RETRY_MIN_S * 4]
    queue.close()


async def test_the_event_loop_stays_responsive_while_draining(tmp_path: Path) -> None:
    queue = MessageQueue(tmp_path / "ocpp.db")
    for i in range(100):
        queue.enqueue("TransactionEvent", {"i": i})
    timeline: list[str] = []

    async def send(message: QueuedMessage) -> SendOutcome:
        timeline.append("send")
        return SendOutcome.delivered()

    async def ticker() -> None:
        while True:
            timeline.append("tick")
            await asyncio.sleep(0)

    ticks = asyncio.create_task(ticker())
    task = start(queue, send, online_event(), FakeSleep())
    await until(lambda: queue.pending_count() == 0, "delivery")
    await stop(task)
    ticks.cancel()
    sends = [i for i, what in enumerate(timeline) if what == "send"]
    between = timeline[sends[0]:sends[-1]]
    assert between.count("tick") >= 99  # the other coroutine ran between every two sends
    assert Outcome.DELIVERED.value == "delivered"
    queue.close()
