"""The version-neutral part of a transaction flow: tracked transactions, stored durably, delivered in order.

Both protocol layers (controller.ocpp.v201.tx_flow, controller.ocpp.v16.tx_flow) build their messages their own
way (TransactionEvent or Start/StopTransaction and MeterValues); what they share lives here: the open transactions
left by the previous run, the one writer task that stores each recorded message in order off the event loop
(retrying a refusing disk), the sender that delivers the queue over ``delivery.drain`` while the station is
connected and accepted, the periodic meter values, the flush and the stop. The layer injects what is its own: the
library's module of CALL classes (``calls``), the CALLERROR exception of its wire module (``call_error``), how one
item is written (``_write``) and what an answer means (``_answered``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any, Generic, TypeVar

from websockets.exceptions import ConnectionClosed

from controller.ocpp.station.clock import StationClock
from controller.ocpp.station.delivery import SendOutcome, drain
from controller.ocpp.station.open_transactions import OpenTransactionError, OpenTransactionStore
from controller.ocpp.station.queue import MessageQueue, QueuedMessage, QueueError
from controller.ocpp.station.transactions import (
    StopReason,
    Transaction,
    TransactionTracker,
    Trigger,
    TxEvent,
    TxEventKind,
)
from controller.ocpp.station.variable_types import VariableDef, VariableKey
from controller.ocpp.station.variables import VariableStore
from controller.port.charger import Charger

log = logging.getLogger("controller.ocpp")

SETTLE_WAIT_S = 5.0  # the most a transaction's end waits for the reading taken after the contactor opened
SETTLE_POLL_S = 0.02
_POWER_PATH_PHASES = ("locking", "charging", "stopping")  # a session that may still hold the power path

WRITE_RETRY_MIN_S = 0.5  # a queue write the disk refused is tried again after this, doubling
WRITE_RETRY_MAX_S = 30.0
STOP_WRITE_WAIT_S = 5.0  # at a stop, messages recorded but not yet stored get this long to reach the disk

W = TypeVar("W")


class DurableTransactionFlow(Generic[W]):
    """The shared scaffolding of a layer's transaction flow; ``W`` is the layer's item for the writer."""

    def __init__(self, charger: Charger, variables: VariableStore, clock: StationClock, db_path: Path,
                 tracker: TransactionTracker, *, calls: Any, call_error: type[Exception]) -> None:
        """Queue and open transactions live in ``db_path`` (ocpp.db); ``calls`` is the library's module of CALL
        classes of the layer's version (``ocpp.v201.call``), ``call_error`` the exception a CALLERROR answer raises."""
        self.charger = charger
        self.variables = variables
        self.clock = clock
        self.queue = MessageQueue(db_path)
        self.open_store = OpenTransactionStore(db_path)
        self.tracker = tracker
        self.ready = asyncio.Event()  # connected and accepted: the sender may deliver
        self._calls = calls
        self._call_error = call_error
        self._writes: asyncio.Queue[W] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._send: Callable[[Any, str], Any] | None = None
        self._timing_changed = asyncio.Event()  # a watched sampling interval was set: the timers wait anew
        self._unwatch: Callable[[], None] | None = None

    # ------------------------------------------------------------ lifecycle

    async def _restore(self) -> list[TxEvent]:
        """The Ended events (PowerLoss) of the transactions the previous run left open, logged."""
        try:
            left_open = await asyncio.to_thread(self.open_store.load)
        except OpenTransactionError as exc:
            log.error("%s", exc)
            left_open = []
        self.tracker.restore(left_open)
        events = self.tracker.end_restored(StopReason.POWER_LOSS)
        for event in events:
            log.warning("transaction %s on EVSE %d was open when the station stopped: ended (PowerLoss)",
                        event.transaction.transaction_id, event.transaction.evse_id)
        return events

    def _start_tasks(self, watched: Collection[VariableKey], *extra: Callable[[], Any]) -> None:
        """Watch the sampling intervals ``watched``, then start the writer, the sender, the periodic
        meter values and the layer's ``extra`` coroutines."""
        folded = {key.folded() for key in watched}
        loop = asyncio.get_running_loop()

        def changed(definition: VariableDef, _: str) -> None:
            """A sampling interval was set: the timers wait the new one, counted from now."""
            if definition.key.folded() in folded:
                loop.call_soon_threadsafe(self._timing_changed.set)

        self._unwatch = self.variables.on_change(changed)
        self._tasks = [asyncio.ensure_future(self._writer()), asyncio.ensure_future(self._sender()),
                       asyncio.ensure_future(self._periodic())]
        self._tasks += [asyncio.ensure_future(task()) for task in extra]

    async def stop(self) -> None:
        """Store what was recorded (a few seconds at most), stop the tasks (what is stored stays queued for the next
        run) and close the files."""
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None
        if self._tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._writes.join(), STOP_WRITE_WAIT_S)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        self.queue.close()
        self.open_store.close()

    # ------------------------------------------------------------ what happens at the EVSEs

    def _record(self, event: TxEvent, evse: dict[str, Any]) -> None:
        """Build the event's message(s) now and hand them to the writer (the layer's)."""
        raise NotImplementedError

    def trigger(self, evse_id: int) -> bool:
        """TriggerMessage on an EVSE with a transaction: its meter values now (context Trigger)."""
        tx = self.tracker.open(evse_id)
        if tx is None:
            return False
        self._record(TxEvent(TxEventKind.UPDATED, tx, Trigger.TRIGGER, meter_context="Trigger"), self._evse(evse_id))
        return True

    def end(self, evse_id: int, trigger: Trigger, reason: StopReason) -> bool:
        """End the EVSE's transaction now (a remote stop of a transaction without a session to stop)."""
        events = self.tracker.force_end(evse_id, trigger, reason)
        for event in events:
            self._record(event, self._evse(evse_id))
        return bool(events)

    def open_transaction(self, evse_id: int) -> Transaction | None:
        """The EVSE's open transaction."""
        return self.tracker.open(evse_id)

    def _evse(self, evse_id: int) -> dict[str, Any]:
        """The EVSE's status entry now."""
        return next(e for e in self.charger.status()["evses"] if e["id"] == evse_id)

    async def _settled(self, evse_id: int, within_s: float = SETTLE_WAIT_S) -> None:
        """Return once the EVSE's session has let go of the power path, or after ``within_s`` (a weld).

        A session leaves "stopping" only once the unlock interlock saw a meter reading completed after the contactor
        opened, so a transaction's end built after this carries the energy of that reading: without the wait it had
        the last poll's, up to a poll interval of charging short (which then belonged to no transaction).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        while self._evse(evse_id).get("phase") in _POWER_PATH_PHASES and loop.time() < deadline:
            await asyncio.sleep(SETTLE_POLL_S)

    # ------------------------------------------------------------ durable writes, in order, off the loop

    async def _prepare(self, item: W) -> W:
        """The item as it is to be written (a layer may complete it here first)."""
        return item

    def _describe(self, item: W) -> str:
        """What the item is, for the log."""
        raise NotImplementedError

    def _write(self, item: W) -> None:
        """One item into the queue (with its open-transaction row) in ONE commit, in the writer's thread."""
        raise NotImplementedError

    async def _writer(self) -> None:
        """Write each item to the queue (with its open-transaction row) in order, retrying a refusing disk."""
        while True:
            item = await self._prepare(await self._writes.get())
            wait = WRITE_RETRY_MIN_S
            while True:
                try:
                    await asyncio.to_thread(self._write, item)
                    break
                except (QueueError, OpenTransactionError) as exc:
                    log.error("%s not stored yet (%s); retrying in %.1f s", self._describe(item), exc, wait)
                    await asyncio.sleep(wait)
                    wait = min(WRITE_RETRY_MAX_S, wait * 2)
            self._writes.task_done()

    async def flushed(self, within_s: float) -> None:
        """Return once every recorded message is stored and, while connected, delivered; or after ``within_s``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._writes.join(), within_s)
        while self.ready.is_set() and self.queue.pending_count() > 0 and loop.time() < deadline:
            await asyncio.sleep(0.05)

    # ------------------------------------------------------------ delivery

    async def _sender(self) -> None:
        """Deliver the queue in order while the station is connected and accepted."""
        await drain(self.queue, self._deliver, online=self.ready,
                    max_attempts=lambda: self.variables.int_value(
                        "OCPPCommCtrlr", "MessageAttempts", variable_instance="TransactionEvent"),
                    retry_interval_s=lambda: float(self.variables.int_value(
                        "OCPPCommCtrlr", "MessageAttemptInterval", variable_instance="TransactionEvent")))

    def _answered(self, message: QueuedMessage, payload: dict[str, Any], answer: Any) -> SendOutcome:
        """The outcome of a delivered message, given the CSMS's answer (the layer reads what it needs of it)."""
        return SendOutcome.delivered()

    async def _deliver(self, message: QueuedMessage) -> SendOutcome:
        """One transmission of a queued message, with its stable unique id."""
        send = self._send
        if send is None or not self.ready.is_set():
            return SendOutcome.offline("not connected")
        payload = message.payload_to_send()
        request = getattr(self._calls, message.action)(**payload)
        try:
            answer = await send(request, message.message_id)
        except self._call_error as exc:
            return SendOutcome.failed(f"CALLERROR {type(exc).__name__}: {exc}")
        except TimeoutError:
            return SendOutcome.failed("no answer in time")
        except ConnectionClosed:
            return SendOutcome.offline("connection closed")
        return self._answered(message, payload, answer)

    # ------------------------------------------------------------ meter values on timers

    async def _wait_timing(self, seconds: float | None) -> bool:
        """Sleep ``seconds`` (None: until a change); True if a sampling interval changed meanwhile."""
        try:
            await asyncio.wait_for(self._timing_changed.wait(), seconds)
        except TimeoutError:
            return False
        self._timing_changed.clear()
        return True

    async def _periodic(self) -> None:
        """MeterValuePeriodic updates of open transactions every SampledDataCtrlr.TxUpdatedInterval (0: none).

        A new interval from the CSMS counts from when it is set, not after the old one ran out (which could be a day).
        """
        while True:
            interval = self.variables.int_value("SampledDataCtrlr", "TxUpdatedInterval")
            if await self._wait_timing(interval if interval > 0 else None):
                continue
            for event in self.tracker.periodic():
                self._record(event, self._evse(event.transaction.evse_id))
