"""The 1.6 transaction flow: StartTransaction, MeterValues and StopTransaction through the durable queue, in order.

The neutral tracker (controller.ocpp.station.transactions) decides when a transaction starts and ends, here with
1.6's rule: it starts once the cable is plugged in AND the token is authorized (``all_start_points``), and ends
when either goes. Each message is built at that moment (time, meter readings) and written to the durable queue
(controller.ocpp.station.queue) by one writer task, in order, off the event loop; a StartTransaction and its
open-transaction row, or a StopTransaction and the row's removal, are ONE commit, so a kill at any instant never
leaves the two disagreeing. A sender task delivers the queue in order whenever the station is connected and
accepted, with TransactionMessageAttempts/TransactionMessageRetryInterval (controller.ocpp.station.delivery).

The CSMS names the transaction in its answer to the StartTransaction: that transactionId is stored in the same
commit that removes the StartTransaction (``SendOutcome.delivered(reference_value=...)``), and every MeterValues
and StopTransaction of the transaction, queued before or after, gets it at send time (queue ``reference_field``).
MeterValues: every MeterValueSampleInterval during a transaction (MeterValuesSampledData), on a TriggerMessage,
and every ClockAlignedDataInterval from midnight (MeterValuesAlignedData, with the transactionId while one runs).
After a restart, transactions left open end with reason PowerLoss before anything else happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from ocpp.v16 import call
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
from controller.ocpp.v16 import transactions as tx16
from controller.ocpp.wire import OCPPError
from controller.port.charger import Charger

log = logging.getLogger("controller.ocpp")

WRITE_RETRY_MIN_S = 0.5  # a queue write the disk refused is tried again after this, doubling
WRITE_RETRY_MAX_S = 30.0
STOP_WRITE_WAIT_S = 5.0  # at a stop, messages recorded but not yet stored get this long to reach the disk
RESTORED_READING_WAIT_S = 10.0  # a transaction left open ends with the meter's first reading after the restart
READING_POLL_S = 0.1
POINTS = (TxPoint.EV_CONNECTED, TxPoint.AUTHORIZED)  # 1.6: plugged in and authorized, both start and stop it
_WATCHED = {VariableKey("SampledDataCtrlr", "TxUpdatedInterval").folded(),
            VariableKey("AlignedDataCtrlr", "Interval").folded()}

Answer = Callable[[QueuedMessage, dict[str, Any], Any], None]


@dataclass(frozen=True, slots=True)
class _Write:
    """One message for the queue: its transaction, whether its transactionId is resolved at send time, and the
    Started/Ended event whose open-transaction row changes in the same commit."""

    action: str
    payload: dict[str, Any]
    transaction_ref: str | None = None
    referenced: bool = False
    droppable: bool = False
    event: TxEvent | None = None
    later: Callable[[], dict[str, Any]] | None = None  # build the payload when the writer gets to it (see start)


class TransactionFlow16:
    """Transactions of every connector: tracked, stored durably, delivered in order with their transactionIds."""

    def __init__(self, charger: Charger, variables: VariableStore, clock: StationClock, db_path: Path,
                 *, connector_of: Callable[[int, int], int]) -> None:
        """Queue and open transactions live in ``db_path`` (ocpp.db); ``connector_of(evse, connector)`` is the
        1.6 connectorId of a connector."""
        self.charger = charger
        self.variables = variables
        self.clock = clock
        self.queue = MessageQueue(db_path)
        self.open_store = OpenTransactionStore(db_path)
        self.tracker = TransactionTracker(lambda: POINTS, lambda: POINTS, all_start_points=True)
        self.ready = asyncio.Event()  # connected and accepted: the sender may deliver
        self._connector_of = connector_of
        self._writes: asyncio.Queue[_Write] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._send: Callable[[Any, str], Any] | None = None
        self._on_answer: Answer | None = None
        self._timing_changed = asyncio.Event()  # MeterValueSampleInterval or ClockAlignedDataInterval was set
        self._unwatch: Callable[[], None] | None = None
        self._reasons: dict[int, str] = {}  # EVSE -> the 1.6 reason of its next StopTransaction (UnlockCommand...)
        self._begin: dict[str, list[dict[str, Any]]] = {}  # transaction -> its Transaction.Begin meter values
        self._last_wh: dict[int, int] = {}

    # ------------------------------------------------------------ lifecycle

    async def start(self, send: Callable[[Any, str], Any], on_answer: Answer | None = None) -> None:
        """End what the previous run left open, then start the writer, the sender and the meter value timers.

        ``send(payload_object, unique_id)`` transmits one CALL on the current connection and returns the answer;
        ``on_answer(message, payload, answer)`` sees each delivered Start/StopTransaction's answer (its idTagInfo).
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
            # its meterStop is the meter's first reading after the restart: built when the writer gets to it
            # (waiting for that reading, a few seconds at most), still ahead of everything recorded after it
            self._writes.put_nowait(_Write("StopTransaction", {}, event.transaction.transaction_id, referenced=True,
                                           event=event, later=partial(self._stop_payload, event)))
        loop = asyncio.get_running_loop()

        def changed(definition: VariableDef, _: str) -> None:
            """A sampling interval was set: the timers wait the new one, counted from now."""
            if definition.key.folded() in _WATCHED:
                loop.call_soon_threadsafe(self._timing_changed.set)

        self._unwatch = self.variables.on_change(changed)
        self._tasks = [asyncio.ensure_future(self._writer()), asyncio.ensure_future(self._sender()),
                       asyncio.ensure_future(self._periodic()), asyncio.ensure_future(self._aligned())]

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

    def observe(self, evse: dict[str, Any]) -> list[TxEvent]:
        """An EVSE's status entry changed: record the messages of the transaction events it makes; those events."""
        connectors = evse.get("connectors") or [{"id": 1}]
        events = self.tracker.observe(int(evse["id"]), int(connectors[0]["id"]), conditions(evse))
        for event in events:
            self._record(event, evse)
        return events

    def trigger(self, evse_id: int) -> bool:
        """TriggerMessage(MeterValues) on a connector with a transaction: its MeterValues (context Trigger)."""
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

    def stop_reason(self, evse_id: int, reason: str) -> None:
        """The EVSE's open transaction, about to end, ends with this 1.6 reason (UnlockCommand, SoftReset...)."""
        if self.tracker.open(evse_id) is not None:
            self._reasons[evse_id] = reason

    def transaction_id(self, tx: Transaction) -> int | None:
        """The CSMS's transactionId of a transaction (None until the StartTransaction is answered)."""
        value = self.queue.reference(tx.transaction_id)
        return value if isinstance(value, int) else None

    def find(self, transaction_id: int) -> Transaction | None:
        """The open transaction the CSMS calls ``transaction_id``."""
        return next((tx for tx in self.tracker.open_transactions() if self.transaction_id(tx) == transaction_id),
                    None)

    def record_meter_values(self, evse: dict[str, Any], measurands: tuple[str, ...], context: str) -> None:
        """MeterValues of one EVSE's connectors now (clock-aligned), with its transaction's transactionId if any."""
        values = tx16.meter_value(evse, measurands, context, self.clock.timestamp())
        if values is None:
            return
        evse_id = int(evse["id"])
        tx = self.tracker.open(evse_id)
        connectors = evse.get("connectors") or [{"id": 1}]
        payload = tx16.meter_values(self._connector_of(evse_id, int(connectors[0]["id"])), values)
        if tx is None:
            self._writes.put_nowait(_Write("MeterValues", payload, droppable=True))
        else:
            self._writes.put_nowait(_Write("MeterValues", payload, tx.transaction_id, referenced=True,
                                           droppable=True))

    def _record(self, event: TxEvent, evse: dict[str, Any]) -> None:
        """Build the event's message now (time and meter readings of this moment) and hand it to the writer."""
        tx = event.transaction
        connector = self._connector_of(tx.evse_id, tx.connector_id)
        now = self.clock.timestamp()
        if event.kind is TxEventKind.STARTED:
            self._begin[tx.transaction_id] = tx16.meter_value(evse, self._measurands("TxEndedMeasurands"),
                                                              "Transaction.Begin", now) or []
            payload = tx16.start_transaction(tx, connector, meter_start=self._meter(tx.evse_id, evse), timestamp=now)
            self._writes.put_nowait(_Write("StartTransaction", payload, tx.transaction_id, event=event))
        elif event.kind is TxEventKind.ENDED:
            self._writes.put_nowait(_Write("StopTransaction", self._stop_payload(event, evse), tx.transaction_id,
                                           referenced=True, event=event))
        elif event.trigger in (Trigger.METER_VALUE_PERIODIC, Trigger.TRIGGER):
            context = "Trigger" if event.trigger is Trigger.TRIGGER else "Sample.Periodic"
            values = tx16.meter_value(evse, self._measurands("TxUpdatedMeasurands"), context, now)
            if values is None:
                return
            self._writes.put_nowait(_Write("MeterValues", tx16.meter_values(connector, values), tx.transaction_id,
                                           referenced=True, droppable=event.trigger is Trigger.METER_VALUE_PERIODIC))
        else:
            return
        action = {TxEventKind.STARTED: "StartTransaction", TxEventKind.ENDED: "StopTransaction"}.get(event.kind,
                                                                                                  "MeterValues")
        log.info("%s of transaction %s on EVSE %d (%s)", action, tx.transaction_id, tx.evse_id, event.trigger.value)

    def _stop_payload(self, event: TxEvent, evse: dict[str, Any] | None = None) -> dict[str, Any]:
        """The StopTransaction of an Ended event, with the meter readings of ``evse`` (default: now)."""
        tx = event.transaction
        entry = self._evse(tx.evse_id) if evse is None else evse
        now = self.clock.timestamp()
        reason = self._reasons.pop(tx.evse_id, None) or tx16.STOP_REASONS[event.stop_reason or StopReason.OTHER]
        end = tx16.meter_value(entry, self._measurands("TxEndedMeasurands"), "Transaction.End", now) or []
        return tx16.stop_transaction(tx, meter_stop=self._meter(tx.evse_id, entry), timestamp=now, reason=reason,
                                     data=self._begin.pop(tx.transaction_id, []) + end)

    def _measurands(self, name: str) -> tuple[str, ...]:
        """SampledDataCtrlr's measurands of this name (MeterValuesSampledData, StopTxnSampledData), if enabled."""
        if not self.variables.bool_value("SampledDataCtrlr", "Enabled"):
            return ()
        return self.variables.list_value("SampledDataCtrlr", name)

    def _meter(self, evse_id: int, evse: dict[str, Any]) -> int:
        """The energy register now (Wh); without a reading the last one seen, else 0 (logged)."""
        wh = tx16.meter_wh(evse)
        if wh is not None:
            self._last_wh[evse_id] = wh
            return wh
        if evse_id not in self._last_wh:
            log.warning("EVSE %d: no meter reading: the transaction's meter value is sent as 0 Wh", evse_id)
        return self._last_wh.get(evse_id, 0)

    def _evse(self, evse_id: int) -> dict[str, Any]:
        """The EVSE's status entry now."""
        return next(e for e in self.charger.status()["evses"] if e["id"] == evse_id)

    # ------------------------------------------------------------ durable writes, in order, off the loop

    async def _writer(self) -> None:
        """Write each message to the queue (with its open-transaction row) in order, retrying a refusing disk."""
        while True:
            item = await self._writes.get()
            if item.later is not None and item.event is not None:
                await self._reading(item.event.transaction.evse_id, RESTORED_READING_WAIT_S)
                item = replace(item, payload=item.later(), later=None)
            wait = WRITE_RETRY_MIN_S
            while True:
                try:
                    await asyncio.to_thread(self._write, item)
                    break
                except (QueueError, OpenTransactionError) as exc:
                    log.error("%s not stored yet (%s); retrying in %.1f s", item.action, exc, wait)
                    await asyncio.sleep(wait)
                    wait = min(WRITE_RETRY_MAX_S, wait * 2)
            self._writes.task_done()

    async def _reading(self, evse_id: int, within_s: float) -> None:
        """Return once the EVSE's meter has a reading, or after ``within_s``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        while tx16.meter_wh(self._evse(evse_id)) is None and loop.time() < deadline:
            await asyncio.sleep(READING_POLL_S)

    def _write(self, item: _Write) -> None:
        """One message into the queue and, for a Start/StopTransaction, the open-transaction row in ONE commit."""
        if item.transaction_ref is None:
            self.queue.enqueue(item.action, item.payload, droppable=item.droppable)
            return
        event = item.event

        def record_open(db: sqlite3.Connection) -> None:
            """The open-transaction row of a Start (kept) or a Stop (removed), in the message's commit."""
            if event is None:
                return
            if event.kind is TxEventKind.ENDED:
                OpenTransactionStore.remove_in(db, event.transaction.evse_id)
            else:
                OpenTransactionStore.save_in(db, event.transaction)

        self.queue.enqueue_transaction_event(item.transaction_ref, lambda _seq_no: item.payload, action=item.action,
                                             droppable=item.droppable, also=record_open,
                                             reference_field=tx16.REFERENCE_FIELD if item.referenced else None)

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

    async def _deliver(self, message: QueuedMessage) -> SendOutcome:
        """One transmission of a queued message, with its stable unique id; a StartTransaction's answer gives the
        transactionId that is stored with its delivery."""
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
        if self._on_answer is not None and message.action in ("StartTransaction", "StopTransaction"):
            try:
                self._on_answer(message, payload, answer)
            except Exception:
                log.exception("handling the answer to a %s failed", message.action)
        if message.action == "StartTransaction":
            reference = getattr(answer, "transaction_id", None)
            if isinstance(reference, int) and not isinstance(reference, bool):
                return SendOutcome.delivered(reference_value=reference)
            log.error("the CSMS answered StartTransaction %s without a transactionId", message.message_id)
        return SendOutcome.delivered()

    async def _wait_timing(self, seconds: float | None) -> bool:
        """Sleep ``seconds`` (None: until a change); True if a sampling interval changed meanwhile."""
        try:
            await asyncio.wait_for(self._timing_changed.wait(), seconds)
        except TimeoutError:
            return False
        self._timing_changed.clear()
        return True

    async def _periodic(self) -> None:
        """MeterValues of open transactions every MeterValueSampleInterval (0: none), counted from when it is set."""
        while True:
            interval = self.variables.int_value("SampledDataCtrlr", "TxUpdatedInterval")
            if await self._wait_timing(interval if interval > 0 else None):
                continue
            for event in self.tracker.periodic():
                self._record(event, self._evse(event.transaction.evse_id))

    async def _aligned(self) -> None:
        """Clock-aligned MeterValues of every connector every ClockAlignedDataInterval from midnight (0: none)."""
        while True:
            interval = self.variables.int_value("AlignedDataCtrlr", "Interval")
            enabled = self.variables.bool_value("AlignedDataCtrlr", "Enabled")
            if await self._wait_timing(_until_aligned(self.clock.now(), interval) if interval > 0 and enabled
                                       else None):
                continue
            measurands = self.variables.list_value("AlignedDataCtrlr", "Measurands")
            for evse in self.charger.status()["evses"]:
                self.record_meter_values(evse, measurands, "Sample.Clock")

    def open_transaction(self, evse_id: int) -> Transaction | None:
        """The EVSE's open transaction."""
        return self.tracker.open(evse_id)


def _until_aligned(now: datetime, interval_s: int) -> float:
    """Seconds from ``now`` to the next multiple of ``interval_s`` after midnight (UTC), at least a millisecond."""
    midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    elapsed = (now - midnight).total_seconds()
    following = midnight + timedelta(seconds=(int(elapsed // interval_s) + 1) * interval_s)
    return max(0.001, (following - now).total_seconds())
