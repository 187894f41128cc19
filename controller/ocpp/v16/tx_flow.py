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
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from ocpp.v16 import call

from controller.ocpp.station.clock import StationClock
from controller.ocpp.station.delivery import SendOutcome
from controller.ocpp.station.open_transactions import OpenTransactionStore
from controller.ocpp.station.queue import QueuedMessage
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
from controller.ocpp.station.tx_flow import DurableTransactionFlow
from controller.ocpp.station.variable_types import VariableKey
from controller.ocpp.station.variables import VariableStore
from controller.ocpp.v16 import transactions as tx16
from controller.ocpp.wire import OCPPError
from controller.port.charger import Charger

log = logging.getLogger("controller.ocpp")

RESTORED_READING_WAIT_S = 10.0  # a transaction left open ends with the meter's first reading after the restart
READING_POLL_S = 0.1
POINTS = (TxPoint.EV_CONNECTED, TxPoint.AUTHORIZED)  # 1.6: plugged in and authorized, both start and stop it
_WATCHED = (VariableKey("SampledDataCtrlr", "TxUpdatedInterval"), VariableKey("AlignedDataCtrlr", "Interval"))

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
    settle: bool = False  # ``later`` waits for the session to let go of the power path (a live stop)


class TransactionFlow16(DurableTransactionFlow[_Write]):
    """Transactions of every connector: tracked, stored durably, delivered in order with their transactionIds."""

    def __init__(self, charger: Charger, variables: VariableStore, clock: StationClock, db_path: Path,
                 *, connector_of: Callable[[int, int], int]) -> None:
        """Queue and open transactions live in ``db_path`` (ocpp.db); ``connector_of(evse, connector)`` is the
        1.6 connectorId of a connector."""
        super().__init__(charger, variables, clock, db_path,
                         TransactionTracker(lambda: POINTS, lambda: POINTS, all_start_points=True),
                         calls=call, call_error=OCPPError)
        self._connector_of = connector_of
        self._on_answer: Answer | None = None
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
        for event in await self._restore():
            # its meterStop is the meter's first reading after the restart: built when the writer gets to it
            # (waiting for that reading, a few seconds at most), still ahead of everything recorded after it
            self._writes.put_nowait(_Write("StopTransaction", {}, event.transaction.transaction_id, referenced=True,
                                           event=event, later=partial(self._stop_payload, event)))
        self._start_tasks(_WATCHED, self._aligned)

    # ------------------------------------------------------------ what happens at the EVSEs

    def observe(self, evse: dict[str, Any]) -> list[TxEvent]:
        """An EVSE's status entry changed: record the messages of the transaction events it makes; those events."""
        connectors = evse.get("connectors") or [{"id": 1}]
        events = self.tracker.observe(int(evse["id"]), int(connectors[0]["id"]), conditions(evse))
        for event in events:
            self._record(event, evse)
        return events

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
            # meterStop from the reading taken after the contactor opened (built when the writer gets to it)
            self._writes.put_nowait(_Write("StopTransaction", {}, tx.transaction_id, referenced=True, event=event,
                                           later=partial(self._stop_payload, event), settle=True))
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

    # ------------------------------------------------------------ durable writes, in order, off the loop

    async def _prepare(self, item: _Write) -> _Write:
        """A StopTransaction is built now: a restored transaction's with the meter's first reading (if it comes), a
        live one's once its session has let go of the power path (its reading after the contactor opened)."""
        if item.later is not None and item.event is not None:
            evse_id = item.event.transaction.evse_id
            if item.settle:
                await self._settled(evse_id)
            else:
                await self._reading(evse_id, RESTORED_READING_WAIT_S)
            item = replace(item, payload=item.later(), later=None)
        return item

    def _describe(self, item: _Write) -> str:
        """The item's action, for the log."""
        return item.action

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

    # ------------------------------------------------------------ delivery

    def _answered(self, message: QueuedMessage, payload: dict[str, Any], answer: Any) -> SendOutcome:
        """A delivered Start/StopTransaction's answer goes to ``on_answer``; a StartTransaction's answer gives the
        transactionId that is stored with its delivery."""
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

def _until_aligned(now: datetime, interval_s: int) -> float:
    """Seconds from ``now`` to the next multiple of ``interval_s`` after midnight (UTC), at least a millisecond."""
    midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    elapsed = (now - midnight).total_seconds()
    following = midnight + timedelta(seconds=(int(elapsed // interval_s) + 1) * interval_s)
    return max(0.001, (following - now).total_seconds())
