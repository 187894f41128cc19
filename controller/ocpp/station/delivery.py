"""The sender loop: delivers a MessageQueue's CALLs in order, one at a time, with OCPP's retry rules.

Transport-agnostic: ``send`` transmits one message (with its ``message_id`` as the OCPP-J unique id and
``payload_to_send()`` as the payload) and says how it went:

- DELIVERED (a CALLRESULT): the message is removed; for a 1.6 StartTransaction the result's transactionId goes in
  ``reference_value`` and is stored for its transaction in the same commit, for the messages queued after it.
- FAILED (a CALLERROR, or no answer within the message timeout while connected): one attempt is counted durably;
  after ``max_attempts()`` attempts the message goes to the dead letters (E13.FR.04), otherwise it is resent after
  ``retry_interval_s() * attempts`` (E13.FR.03, quoted at ``_retry_delay``).
- OFFLINE (never reached the CSMS, or the connection dropped before the answer): not an attempt; the loop waits
  for ``online`` and resends the same message with the same message_id.

OCPP-J allows one outstanding CALL, so nothing else is sent until the message is settled. Queue I/O (an fsync each)
runs in a worker thread, waits are asyncio sleeps and an empty queue is awaited on an event set by ``enqueue``: the
event loop is never blocked and an idle sender costs nothing. Cancelled at any await, the loop stops at once; the
message being sent stays pending (nothing was recorded) and is resent with the same message_id next time. A disk
that refuses the bookkeeping write (QueueError) is retried with a capped back-off while the result is held in
memory; the message is never resent meanwhile (after a restart in between it is, with the same message_id).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from controller.ocpp.station.queue import MessageQueue, QueuedMessage, QueueError, Reference

log = logging.getLogger(__name__)

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]

# How long to wait before looking again when send() said OFFLINE but ``online`` is still set (the connection
# manager has not noticed yet): keeps the loop from spinning.
OFFLINE_RECHECK_S = 1.0
# Retrying a queue write the disk refused: from IO_RETRY_MIN_S, doubled per failure, at most IO_RETRY_MAX_S.
IO_RETRY_MIN_S = 0.5
IO_RETRY_MAX_S = 30.0


class Outcome(enum.Enum):
    """How one transmission of a queued CALL went."""

    DELIVERED = "delivered"
    FAILED = "failed"
    OFFLINE = "offline"


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """The result of ``send``: the outcome, a detail for the log, and a 1.6 transactionId to record."""

    outcome: Outcome
    detail: str = ""
    reference_value: Reference | None = None

    @classmethod
    def delivered(cls, reference_value: Reference | None = None) -> SendOutcome:
        """A CALLRESULT; ``reference_value`` is the CSMS's transactionId of a 1.6 StartTransaction."""
        return cls(Outcome.DELIVERED, "", reference_value)

    @classmethod
    def failed(cls, detail: str) -> SendOutcome:
        """A CALLERROR or a timeout while connected: counts as an attempt."""
        return cls(Outcome.FAILED, detail)

    @classmethod
    def offline(cls, detail: str = "") -> SendOutcome:
        """Not transmitted, or the connection dropped before the answer: not an attempt."""
        return cls(Outcome.OFFLINE, detail)


def _retry_delay(interval_s: float, attempts: int) -> float:
    """The wait before the next transmission after ``attempts`` failed ones.

    OCPP 2.0.1 E13.FR.03: "The Charging Station SHALL wait as many seconds as specified in its
    MessageAttemptIntervalTransactionEvent key, multiplied by the number of preceding transmissions of this same
    message" (OCPPCommCtrlr.MessageAttemptInterval[TransactionEvent]; 1.6 has the same linear rule for
    TransactionMessageRetryInterval). Linear, not exponential: 60 s, 120 s, ... for a 60 s interval.
    """
    return max(0.0, interval_s) * attempts


async def drain(
    queue: MessageQueue,
    send: Callable[[QueuedMessage], Awaitable[SendOutcome]],
    *,
    max_attempts: Callable[[], int],
    retry_interval_s: Callable[[], float],
    online: asyncio.Event,
    sleep: Sleep = asyncio.sleep,
) -> None:
    """Deliver the queue's messages in order until cancelled (see the module docstring for the rules)."""
    loop = asyncio.get_running_loop()
    arrived = asyncio.Event()

    def wake() -> None:
        """Called by enqueue, possibly from another thread: wake the loop if it still runs."""
        with contextlib.suppress(RuntimeError):  # the event loop is closed: nobody is waiting
            loop.call_soon_threadsafe(arrived.set)

    remove = queue.add_listener(wake)
    try:
        while True:
            if not online.is_set():
                await online.wait()
            arrived.clear()
            message = await _settle(sleep, "read the queue", queue.peek)
            if message is None:
                await arrived.wait()
                continue
            await _deliver_one(queue, send, message, max_attempts, retry_interval_s, online, sleep)
    finally:
        remove()


async def _deliver_one(
    queue: MessageQueue,
    send: Callable[[QueuedMessage], Awaitable[SendOutcome]],
    message: QueuedMessage,
    max_attempts: Callable[[], int],
    retry_interval_s: Callable[[], float],
    online: asyncio.Event,
    sleep: Sleep,
) -> None:
    """Transmit ``message`` once and record the outcome durably (waiting out the back-off after a failure)."""
    if message.reference_field is not None and message.reference_value is None:
        # it is the oldest message, so its transaction's start was given up on or never carried a reference
        reason = f"transaction {message.transaction_ref!r} never got its {message.reference_field} from the CSMS"
        await _settle(sleep, "give up", queue.give_up, message.message_id, reason)
        return
    try:
        result = await send(message)
    except Exception as exc:  # a bug in send must not stop deliveries: count it, so a poison message ends up dead
        log.exception("sending %s %s raised", message.action, message.message_id)
        result = SendOutcome.failed(f"send raised {exc!r}")
    if result.outcome is Outcome.DELIVERED:
        await _settle(sleep, "record a delivery", queue.delivered, message.message_id,
                      reference_value=result.reference_value)
    elif result.outcome is Outcome.OFFLINE:
        if online.is_set():
            await sleep(OFFLINE_RECHECK_S)
    else:
        attempts = await _settle(sleep, "count an attempt", queue.failed_attempt, message.message_id, result.detail)
        limit = max(1, max_attempts())
        if attempts >= limit:
            reason = f"not accepted after {attempts} attempt(s) (MessageAttempts {limit}): {result.detail}"
            await _settle(sleep, "give up", queue.give_up, message.message_id, reason)
        elif attempts > 0:
            delay = _retry_delay(retry_interval_s(), attempts)
            log.warning("%s %s (seqNo %s) attempt %d of %d failed: %s; resending in %.1f s", message.action,
                        message.message_id, message.seq_no, attempts, limit, result.detail, delay)
            await sleep(delay)


async def _settle(sleep: Sleep, what: str, operation: Callable[..., T], *args: object, **kwargs: object) -> T:
    """Run a queue operation in a worker thread until the disk takes it (QueueError: wait, retry, capped back-off)."""
    delay = IO_RETRY_MIN_S
    failing = False
    while True:
        try:
            result = await asyncio.to_thread(operation, *args, **kwargs)
        except QueueError as exc:
            if not failing:
                log.error("message sender cannot %s: %s; retrying every %.1f-%.0f s", what, exc, delay, IO_RETRY_MAX_S)
            failing = True
            await sleep(delay)
            delay = min(delay * 2, IO_RETRY_MAX_S)
            continue
        if failing:
            log.warning("message sender could %s again", what)
        return result
