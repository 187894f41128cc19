"""The 2.0.1 transaction flow (functional block E): events from the EVSEs' status into the durable queue, and out.

The tracker (controller.ocpp.station.transactions) decides Started/Updated/Ended; each event is built here with
the meter readings of that moment, then written to the durable queue (controller.ocpp.station.queue) by one
writer task, in order, off the event loop (an fsync per message), and the open transaction is kept on disk. A
sender task delivers the queue in order whenever the station is connected and accepted, with the retry rules of
OCPPCommCtrlr.MessageAttempts/MessageAttemptInterval[TransactionEvent] (controller.ocpp.station.delivery).
Messages made while offline carry ``offline = true``. After a restart, transactions left open end with
stoppedReason PowerLoss before anything else happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ocpp.charge_point import remove_nones, snake_to_camel_case
from ocpp.messages import MessageType, get_validator
from ocpp.v201 import call
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
    TxPoint,
    conditions,
)
from controller.ocpp.station.variable_types import VariableDef, VariableKey
from controller.ocpp.station.variables import VariableStore
from controller.ocpp.v201.transactions import transaction_event
from controller.ocpp.wire import OCPPError
from controller.port.charger import Charger

log = logging.getLogger("controller.ocpp")

WRITE_RETRY_MIN_S = 0.5  # a queue write the disk refused is tried again after this, doubling
WRITE_RETRY_MAX_S = 30.0
STOP_WRITE_WAIT_S = 5.0  # at a stop, events recorded but not yet stored get this long to reach the disk
SUPPORTED_POINTS = {p.value: p for p in TxPoint}
_TX_UPDATED_INTERVAL = VariableKey("SampledDataCtrlr", "TxUpdatedInterval").folded()


class TransactionFlow:
    """Transactions of every EVSE: tracked, stored durably, delivered in order."""

    def __init__(self, charger: Charger, variables: VariableStore, clock: StationClock, db_path: Path,
                 *, online: Callable[[], bool]) -> None:
        """Queue and open transactions live in ``db_path`` (ocpp.db); ``online`` says whether the CSMS listens."""
        self.charger = charger
        self.variables = variables
        self.clock = clock
        self.queue = MessageQueue(db_path)
        self.open_store = OpenTransactionStore(db_path)
        self.tracker = TransactionTracker(lambda: self._points("TxStartPoint"), lambda: self._points("TxStopPoint"))
        self.ready = asyncio.Event()  # connected and accepted: the sender may deliver
        self._online = online
        self._writes: asyncio.Queue[tuple[TxEvent | str, dict[str, Any]]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._send: Callable[[Any, str], Any] | None = None
        self._interval_changed = asyncio.Event()  # SampledDataCtrlr.TxUpdatedInterval was set: wait anew
        self._unwatch: Callable[[], None] | None = None
        self._on_answer: Callable[[dict[str, Any], Any], None] | None = None

    # ------------------------------------------------------------ lifecycle

    async def start(self, send: Callable[[Any, str], Any],
                    on_answer: Callable[[dict[str, Any], Any], None] | None = None) -> None:
        """End what the previous run left open, then start the writer, the sender and the periodic meter values.

        ``send(payload_object, unique_id)`` transmits one CALL on the current connection and returns the answer;
        ``on_answer(payload, answer)`` sees each delivered TransactionEvent's answer (its idTokenInfo).
        """
        self._send = send
        self._on_answer = on_answer
        try:
            left_open = await asyncio.to_thread(self.open_store.load)
        except OpenTransactionError as exc:
            log.error("%s", exc)
            left_open = []
        self.tracker.restore(left_open)
        for event in self.tracker.end_restored(StopReason.POWER_LOSS):
            log.warning("transaction %s on EVSE %d was open when the station stopped: ended (PowerLoss)",
                        event.transaction.transaction_id, event.transaction.evse_id)
            self._record(event, {"id": event.transaction.evse_id})
        loop = asyncio.get_running_loop()

        def changed(definition: VariableDef, _: str) -> None:
            if definition.key.folded() == _TX_UPDATED_INTERVAL:
                loop.call_soon_threadsafe(self._interval_changed.set)

        self._unwatch = self.variables.on_change(changed)
        self._tasks = [asyncio.ensure_future(self._writer()), asyncio.ensure_future(self._sender()),
                       asyncio.ensure_future(self._periodic())]

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

    def observe(self, evse: dict[str, Any]) -> None:
        """An EVSE's status entry changed: record the transaction events it makes."""
        connectors = evse.get("connectors") or [{"id": 1}]
        for event in self.tracker.observe(int(evse["id"]), int(connectors[0]["id"]), conditions(evse)):
            self._record(event, evse)

    def trigger(self, evse_id: int) -> bool:
        """TriggerMessage(TransactionEvent): an Updated event (trigger Trigger) of the EVSE's transaction."""
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

    def _record(self, event: TxEvent, evse: dict[str, Any]) -> None:
        """Build the event's payload now (time and meter readings of this moment) and hand it to the writer."""
        measurands = self._measurands(event)
        payload = transaction_event(event, evse, timestamp=self.clock.timestamp(), offline=not self._online(),
                                    measurands=measurands)
        log.info("TransactionEvent %s (%s) of transaction %s on EVSE %d", event.kind.value, event.trigger.value,
                 event.transaction.transaction_id, event.transaction.evse_id)
        self._writes.put_nowait((event, payload))

    def record_message(self, action: str, payload: dict[str, Any]) -> None:
        """Another CALL that must reach the CSMS across outages and restarts, in order with the transactions
        (ReservationStatusUpdate): written to the durable queue by the same writer."""
        self._writes.put_nowait((action, payload))

    def _measurands(self, event: TxEvent) -> tuple[str, ...]:
        """SampledDataCtrlr's measurands for this kind of event (none for a state change)."""
        if event.meter_context == "Transaction.Begin":
            name = "TxStartedMeasurands"
        elif event.meter_context == "Transaction.End":
            name = "TxEndedMeasurands"
        elif event.trigger in (Trigger.METER_VALUE_PERIODIC, Trigger.TRIGGER):
            name = "TxUpdatedMeasurands"
        else:
            return ()
        if not self.variables.bool_value("SampledDataCtrlr", "Enabled"):
            return ()
        return self.variables.list_value("SampledDataCtrlr", name)

    def _points(self, name: str) -> list[TxPoint]:
        """TxCtrlr.TxStartPoint or TxStopPoint as the points this station detects."""
        return [SUPPORTED_POINTS[v] for v in self.variables.list_value("TxCtrlr", name) if v in SUPPORTED_POINTS]

    def _evse(self, evse_id: int) -> dict[str, Any]:
        """The EVSE's status entry now."""
        return next(e for e in self.charger.status()["evses"] if e["id"] == evse_id)

    # ------------------------------------------------------------ durable writes, in order, off the loop

    async def _writer(self) -> None:
        """Write each event to the queue (and the open transaction to its table) in order, retrying a refusing disk."""
        while True:
            event, payload = await self._writes.get()
            wait = WRITE_RETRY_MIN_S
            while True:
                try:
                    await asyncio.to_thread(self._write, event, payload)
                    break
                except (QueueError, OpenTransactionError) as exc:
                    log.error("transaction event not stored yet (%s); retrying in %.1f s", exc, wait)
                    await asyncio.sleep(wait)
                    wait = min(WRITE_RETRY_MAX_S, wait * 2)
            self._writes.task_done()

    async def flushed(self, within_s: float) -> None:
        """Return once every recorded event is stored and, while connected, delivered; or after ``within_s``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._writes.join(), within_s)
        while self.ready.is_set() and self.queue.pending_count() > 0 and loop.time() < deadline:
            await asyncio.sleep(0.05)

    @staticmethod
    def _check_schema(action: str, payload: dict[str, Any]) -> None:
        """Validate a payload against its OCA schema here, in the writer's thread, once: the sender then skips the
        library's validation of every attempt (a third of a message's cost, on the loop's side of the GIL). A
        payload that does not fit is a bug of ours: logged, and queued anyway (the CSMS will say what it thinks)."""
        validator = get_validator(MessageType.Call, action, "2.0.1")
        for error in validator.iter_errors(snake_to_camel_case(remove_nones(payload))):
            log.error("%s does not fit its schema (%s); queued anyway", action, error.message)
            break

    def _write(self, event: TxEvent | str, payload: dict[str, Any]) -> None:
        """One event into the queue with its seqNo and the open-transaction row, in ONE commit (writer's thread):
        a kill can never leave a queued Started without its open row (never ended) or an Ended with one (ended
        twice)."""
        if isinstance(event, str):
            self._check_schema(event, payload)
            self.queue.enqueue(event, payload)
            return
        tx = event.transaction
        self._check_schema("TransactionEvent", {**payload, "seq_no": 0})

        def record_open(db: sqlite3.Connection) -> None:
            if event.kind is TxEventKind.ENDED:
                OpenTransactionStore.remove_in(db, tx.evse_id)
            else:
                OpenTransactionStore.save_in(db, tx)

        self.queue.enqueue_transaction_event(tx.transaction_id, lambda seq_no: {**payload, "seq_no": seq_no},
                                             offline=bool(payload.get("offline")),
                                             droppable=event.trigger is Trigger.METER_VALUE_PERIODIC,
                                             also=record_open)

    # ------------------------------------------------------------ delivery

    async def _sender(self) -> None:
        """Deliver the queue in order while the station is connected and accepted."""
        await drain(self.queue, self._deliver, online=self.ready,
                    max_attempts=lambda: self.variables.int_value(
                        "OCPPCommCtrlr", "MessageAttempts", component_instance=None,
                        variable_instance="TransactionEvent"),
                    retry_interval_s=lambda: float(self.variables.int_value(
                        "OCPPCommCtrlr", "MessageAttemptInterval", variable_instance="TransactionEvent")))

    async def _deliver(self, message: QueuedMessage) -> SendOutcome:
        """One transmission of a queued message, with its stable unique id."""
        send = self._send
        if send is None or not self.ready.is_set():
            return SendOutcome.offline("not connected")
        payload = message.payload_to_send()
        request = getattr(call, message.action)(**payload)
        try:
            answer = await send(request, message.message_id)
        except OCPPError as exc:
            return SendOutcome.failed(f"CALLERROR {type(exc).__name__}: {exc}")
        except TimeoutError:
            return SendOutcome.failed("no answer in time")
        except ConnectionClosed:
            return SendOutcome.offline("connection closed")
        if self._on_answer is not None and message.action == "TransactionEvent":
            try:
                self._on_answer(payload, answer)
            except Exception:
                log.exception("handling the answer to a TransactionEvent failed")
        return SendOutcome.delivered()

    async def _periodic(self) -> None:
        """MeterValuePeriodic updates of open transactions every SampledDataCtrlr.TxUpdatedInterval (0: none).

        A new interval from the CSMS counts from when it is set, not after the old one ran out (which could be a day).
        """
        while True:
            interval = self.variables.int_value("SampledDataCtrlr", "TxUpdatedInterval")
            self._interval_changed.clear()
            try:
                await asyncio.wait_for(self._interval_changed.wait(), interval if interval > 0 else None)
            except TimeoutError:
                pass
            else:
                continue  # the interval changed: wait the new one
            for event in self.tracker.periodic():
                self._record(event, self._evse(event.transaction.evse_id))

    def open_transaction(self, evse_id: int) -> Transaction | None:
        """The EVSE's open transaction."""
        return self.tracker.open(evse_id)
