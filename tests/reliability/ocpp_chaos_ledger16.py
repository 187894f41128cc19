"""The OCPP 1.6 ledger of a chaos run: StartTransaction, MeterValues and StopTransaction as the CSMS recorded them.

1.6 has no seqNo: a transaction is named by the transactionId the CSMS gave in its answer to the StartTransaction,
and every MeterValues and StopTransaction of it must carry that id, also those the station queued before the answer
came (it writes the id in at send time). So ``analyse16`` checks, per transaction:

- each message arrives once: a second arrival with the same OCPP-J message id and payload is a resend (counted,
  allowed: a CSMS de-duplicates by that id); the same content under another message id is a duplicate (a failure):
  a StartTransaction of the same connector, idTag and timestamp, a second StopTransaction of a transaction, a
  MeterValues of the same transaction, timestamp and context;
- every MeterValues and StopTransaction carries a transactionId the CSMS gave (never an unknown one, or none for a
  transaction's periodic values), and arrives after that transaction's StartTransaction;
- one StartTransaction first, one StopTransaction last (no MeterValues of it after its stop), MeterValues in their
  timestamp order; every started transaction stopped;
- no periodic MeterValues is missing in the middle: with MeterValueSampleInterval 1 s consecutive values of a
  transaction (and its start and a Local stop) are never more than ``GAP_S`` apart; only the values right before
  a kill may be lost (they were never committed), so the gap to a PowerLoss stop is not judged.
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from ..ocpp.csms import Csms, Message
from .ocpp_chaos_base import timestamp

TX_ACTIONS = ("StartTransaction", "MeterValues", "StopTransaction")
GAP_S = 2.5  # MeterValueSampleInterval is 1 s: a gap this long means at least two values are missing


def start_handler(csms: Csms) -> Any:
    """The CSMS's StartTransaction answer, de-duplicating like a real CSMS: the same StartTransaction (a resend
    whose answer was lost) gets the same transactionId again; a new one the next id."""
    given: dict[str, int] = {}

    def answer(payload: dict[str, Any]) -> dict[str, Any]:
        """{transactionId, idTagInfo} for a StartTransaction payload."""
        key = json.dumps(payload, sort_keys=True)
        if key not in given:
            given[key] = csms.next_transaction_id()
        return {"transactionId": given[key], "idTagInfo": csms.id_tag_info_16(payload["idTag"])}

    return answer


def made_at(message: Message) -> float:
    """When the station made a transaction message (POSIX s): its timestamp, or its first meter value's."""
    if message.action == "MeterValues":
        return timestamp(message.payload["meterValue"][0]["timestamp"])
    return timestamp(message.payload["timestamp"])


def _content_key(message: Message) -> tuple[Any, ...]:
    """What makes a transaction message the same message, whatever its message id."""
    p = message.payload
    if message.action == "StartTransaction":
        return ("start", p["connectorId"], p["idTag"], p["timestamp"])
    if message.action == "StopTransaction":
        return ("stop", p["transactionId"])
    contexts = tuple(v.get("context") for mv in p["meterValue"] for v in mv["sampledValue"])
    return ("values", p.get("transactionId"), p["connectorId"], p["meterValue"][0]["timestamp"], contexts)


@dataclass
class Tx16:
    """One transaction as the CSMS saw it: its StartTransaction, MeterValues and StopTransaction(s)."""

    tx_id: int
    start: Message
    values: list[Message] = field(default_factory=list)
    stops: list[Message] = field(default_factory=list)

    @property
    def token(self) -> str:
        """The idTag that started it."""
        return str(self.start.payload["idTag"])

    @property
    def reason(self) -> str | None:
        """The stop reason (Local when the StopTransaction names none), None while not stopped."""
        return str(self.stops[0].payload.get("reason", "Local")) if self.stops else None


@dataclass
class Analysis16:
    """What the CSMS's records say about the 1.6 transaction messages."""

    transactions: dict[int, Tx16] = field(default_factory=dict)
    messages: int = 0
    unique: int = 0
    resends: int = 0
    duplicates: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    unknown_ids: int = 0  # MeterValues/StopTransaction with a transactionId the CSMS never gave
    missing_stop: int = 0
    out_of_order: int = 0
    gaps: int = 0
    max_gap_s: float = 0.0
    values_without_tx: int = 0
    resolved_late: int = 0  # MeterValues/StopTransaction made before their StartTransaction was answered

    def first_arrivals(self) -> list[Message]:
        """Every transaction message's first arrival."""
        return [m for tx in self.transactions.values() for m in (tx.start, *tx.values, *tx.stops)]


def analyse16(messages: list[Message]) -> Analysis16:
    """Exactly-once, transactionIds resolved, start first and stop last, no missing periodic values; per
    transaction (see the module docstring)."""
    result = Analysis16()
    by_id: dict[str, Message] = {}
    by_content: dict[tuple[Any, ...], Message] = {}
    wall_minus_mono = time.time() - time.monotonic()
    for message in messages:
        if message.action not in TX_ACTIONS:
            continue
        result.messages += 1
        earlier = by_id.get(message.unique_id)
        if earlier is not None:
            if earlier.payload == message.payload and earlier.action == message.action:
                result.resends += 1
            else:
                result.failures.append(f"message id {message.unique_id} reused for another payload:\n"
                                       f"  {earlier.frame}\n  {message.frame}")
            continue
        by_id[message.unique_id] = message
        key = _content_key(message)
        if key in by_content:
            first = by_content[key]
            result.duplicates.append(f"{key}: message {first.unique_id} on connection {first.connection}, then "
                                     f"{message.unique_id} on connection {message.connection}:\n"
                                     f"  {first.frame}\n  {message.frame}")
            continue
        by_content[key] = message
        result.unique += 1
        if message.action == "StartTransaction":
            answer = message.response or {}
            tx_id = answer.get("transactionId")
            if not isinstance(tx_id, int):
                result.failures.append(f"StartTransaction {message.unique_id} got no transactionId: {answer}")
                continue
            result.transactions[tx_id] = Tx16(tx_id, message)
            continue
        tx_id = message.payload.get("transactionId")
        if tx_id is None:
            result.values_without_tx += 1
            continue
        tx = result.transactions.get(tx_id)
        if tx is None:
            result.unknown_ids += 1
            result.failures.append(f"{message.action} {message.unique_id} carries transactionId {tx_id}, which the "
                                   f"CSMS had not given (yet): {message.frame}")
            continue
        if tx.stops:
            result.out_of_order += 1
            result.failures.append(f"transaction {tx_id}: {message.action} after its StopTransaction")
        (tx.stops if message.action == "StopTransaction" else tx.values).append(message)
        answered = tx.start.at + wall_minus_mono
        result.resolved_late += made_at(message) < answered
    for tx in result.transactions.values():
        _judge(result, tx)
    return result


def _judge(result: Analysis16, tx: Tx16) -> None:
    """One transaction's stop, the order of its meter values and the gaps between them."""
    if not tx.stops:
        result.missing_stop += 1
        result.failures.append(f"transaction {tx.tx_id} ({tx.token}) started and never stopped")
    made = [made_at(m) for m in tx.values]
    if made != sorted(made):
        result.out_of_order += 1
        result.failures.append(f"transaction {tx.tx_id}: MeterValues arrived out of their timestamp order")
    points = [made_at(tx.start), *made]
    if tx.reason not in (None, "PowerLoss"):
        points.append(made_at(tx.stops[0]))
    steps = [b - a for a, b in itertools.pairwise(points)]
    result.max_gap_s = max([result.max_gap_s, *steps])
    long = [round(step, 2) for step in steps if step > GAP_S]
    if long:
        result.gaps += len(long)
        result.failures.append(f"transaction {tx.tx_id}: meter values missing: gaps of {long} s between them")
