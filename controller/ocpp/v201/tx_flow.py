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

import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ocpp.charge_point import remove_nones, snake_to_camel_case
from ocpp.messages import MessageType, get_validator
from ocpp.v201 import call

from controller.ocpp.station.clock import StationClock
from controller.ocpp.station.delivery import SendOutcome
from controller.ocpp.station.open_transactions import OpenTransactionStore
from controller.ocpp.station.queue import QueuedMessage
from controller.ocpp.station.transactions import (
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
from controller.ocpp.v201.transactions import transaction_event
from controller.ocpp.wire import OCPPError
from controller.port.charger import Charger

log = logging.getLogger("controller.ocpp")

SUPPORTED_POINTS = {p.value: p for p in TxPoint}
_TX_UPDATED_INTERVAL = VariableKey("SampledDataCtrlr", "TxUpdatedInterval")

_Item = tuple[TxEvent | str, dict[str, Any]]


class TransactionFlow(DurableTransactionFlow[_Item]):
    """Transactions of every EVSE: tracked, stored durably, delivered in order."""

    def __init__(self, charger: Charger, variables: VariableStore, clock: StationClock, db_path: Path,
                 *, online: Callable[[], bool]) -> None:
        """Queue and open transactions live in ``db_path`` (ocpp.db); ``online`` says whether the CSMS listens."""
        super().__init__(charger, variables, clock, db_path,
                         TransactionTracker(lambda: self._points("TxStartPoint"), lambda: self._points("TxStopPoint")),
                         calls=call, call_error=OCPPError)
        self._online = online
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
        for event in await self._restore():
            self._record(event, {"id": event.transaction.evse_id})
        self._start_tasks({_TX_UPDATED_INTERVAL})

    # ------------------------------------------------------------ what happens at the EVSEs

    def observe(self, evse: dict[str, Any]) -> None:
        """An EVSE's status entry changed: record the transaction events it makes."""
        connectors = evse.get("connectors") or [{"id": 1}]
        for event in self.tracker.observe(int(evse["id"]), int(connectors[0]["id"]), conditions(evse)):
            self._record(event, evse)

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

    # ------------------------------------------------------------ durable writes, in order, off the loop

    async def _prepare(self, item: _Item) -> _Item:
        """An Ended event is built again once its session has let go of the power path, so its meter values are the
        reading taken after the contactor opened (not the last poll's); its time and offline flag stay."""
        event, payload = item
        if isinstance(event, str) or event.kind is not TxEventKind.ENDED:
            return item
        await self._settled(event.transaction.evse_id)
        fresh = transaction_event(event, self._evse(event.transaction.evse_id), timestamp=payload["timestamp"],
                                  offline=bool(payload.get("offline")), measurands=self._measurands(event))
        return event, fresh

    def _describe(self, item: _Item) -> str:
        """Every item is a transaction event to the log."""
        return "transaction event"

    @staticmethod
    def _check_schema(action: str, payload: dict[str, Any]) -> None:
        """Validate a payload against its OCA schema here, in the writer's thread, once: the sender then skips the
        library's validation of every attempt (a third of a message's cost, on the loop's side of the GIL). A
        payload that does not fit is a bug of ours: logged, and queued anyway (the CSMS will say what it thinks)."""
        validator = get_validator(MessageType.Call, action, "2.0.1")
        for error in validator.iter_errors(snake_to_camel_case(remove_nones(payload))):
            log.error("%s does not fit its schema (%s); queued anyway", action, error.message)
            break

    def _write(self, item: _Item) -> None:
        """One event into the queue with its seqNo and the open-transaction row, in ONE commit (writer's thread):
        a kill can never leave a queued Started without its open row (never ended) or an Ended with one (ended
        twice)."""
        event, payload = item
        if isinstance(event, str):
            self._check_schema(event, payload)
            self.queue.enqueue(event, payload)
            return
        tx = event.transaction
        self._check_schema("TransactionEvent", {**payload, "seq_no": 0})

        def record_open(db: sqlite3.Connection) -> None:
            """The open-transaction row of the event: removed when it ends, kept otherwise."""
            if event.kind is TxEventKind.ENDED:
                OpenTransactionStore.remove_in(db, tx.evse_id)
            else:
                OpenTransactionStore.save_in(db, tx)

        self.queue.enqueue_transaction_event(tx.transaction_id, lambda seq_no: {**payload, "seq_no": seq_no},
                                             offline=bool(payload.get("offline")),
                                             droppable=event.trigger is Trigger.METER_VALUE_PERIODIC,
                                             also=record_open)

    # ------------------------------------------------------------ delivery

    def _answered(self, message: QueuedMessage, payload: dict[str, Any], answer: Any) -> SendOutcome:
        """A delivered TransactionEvent's answer goes to ``on_answer``."""
        if self._on_answer is not None and message.action == "TransactionEvent":
            try:
                self._on_answer(payload, answer)
            except Exception:
                log.exception("handling the answer to a TransactionEvent failed")
        return SendOutcome.delivered()
