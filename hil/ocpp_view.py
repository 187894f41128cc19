"""The harness's CSMS as a scenario uses it: ``CsmsView``, the CSMS's requests to the DUT and checks on what it sent.

Version-neutral: how a request is said and how a message of the DUT is recognised in the OCPP version the bench's
DUT speaks (2.0.1 or 1.6) is its dialect's business (hil.ocpp_dialect). Requests (ReserveNow, CancelReservation,
reading and changing a setting, TriggerMessage) are marked on the timeline with the DUT's answer and become the
last action, as ``Bench.reserve`` does over the HTTP API. A check on a message the DUT sent counts from the last
action (or ``after=``) and judges the message by its arrival time at the CSMS, so "StatusNotification Reserved
within 0.3 s" is measured from the ReserveNow to the frame's arrival. An outage (``outage``/``back``) stops the
CSMS and starts it again on the same address. The transaction checks (started, ended, the messages of a
transaction) are said once for both versions at the end.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import AsyncIterator, Callable
from typing import Any

from hil.checks import CheckFailed
from hil.csms import CsmsCallError, HarnessCsms, Received, ocpp_time
from hil.harness import Bench
from hil.ocpp_dialect import Dialect, connector_numbers, dialect
from hil.timeline import CheckRecord

Where = Callable[[dict[str, Any]], bool]


def _matches(where: Where | None, payload: dict[str, Any]) -> bool:
    """Apply a predicate; a missing key means no match."""
    if where is None:
        return True
    try:
        return bool(where(payload))
    except (KeyError, IndexError, TypeError):
        return False


def _holds(match: Callable[[Received], bool], message: Received) -> bool:
    """Apply a predicate on a whole record; a missing key means no match."""
    try:
        return bool(match(message))
    except (KeyError, IndexError, TypeError):
        return False


class CsmsView:
    """A scenario's handle on the harness's CSMS (the bench must have opened with ``needs={"ocpp"}``)."""

    def __init__(self, bench: Bench) -> None:
        """The bench's CSMS and its ``[ocpp]`` settings; CheckFailed when the bench has none."""
        csms, link = bench.driver.csms, bench.profile.ocpp
        if csms is None or link is None:
            raise CheckFailed("the bench has no CSMS: the scenario needs {'ocpp'} and the profile an [ocpp] table")
        self.bench = bench
        self.csms: HarnessCsms = csms
        self.link = link
        self.d: Dialect = dialect(link.version, connector_numbers(bench.profile.dut_config))

    def t(self, message: Received) -> float:
        """A message's arrival as scenario time."""
        return self.bench.timeline.rel(message.at)

    # ------------------------------------------------------------ the connection

    async def connected(self) -> float:
        """Check that the DUT is connected and has reported the status of every EVSE the bench watches."""
        bench, csms = self.bench, self.csms
        since = bench.now()
        evses = [e.evse_id for e in bench.profile.evses]

        def ready() -> float | None:
            """Now, once connected with every watched EVSE's status known."""
            known = {evse for evse, _ in csms.statuses}
            return bench.now() if csms.connected.is_set() and set(evses) <= known else None

        return await bench._check_within(
            f"DUT connected to the CSMS as {csms.station_id or '?'}, status of EVSE {evses} known", (), since,
            self.link.connect_timeout_s, ready,
            lambda: f"connected={csms.connected.is_set()}, statuses {csms.statuses}")

    async def outage(self) -> float:
        """The CSMS goes down: nothing listens, the DUT's connection is dropped without a closing handshake."""
        t = self.bench._action("CSMS down", "fault")
        await self.csms.stop()
        return t

    async def back(self) -> float:
        """The CSMS listens again on the same address."""
        t = self.bench._action("CSMS up again", "action")
        await self.csms.start()
        return t

    async def reconnects(self, *, after: float) -> float:
        """Check that the DUT connects again within its longest reconnect back-off (and the latency)."""
        bench, csms = self.bench, self.csms
        count = csms.connections
        within = self.link.reconnect_max_s + bench.tol.latency_s
        seen = await bench._check_within(
            "DUT reconnected to the CSMS", (), after, within,
            lambda: bench.timeline.rel(csms.connected_at[count]) if csms.connections > count else None,
            lambda: "no new connection")
        bench.timeline.mark("DUT reconnected", "ocpp", t=seen)
        return seen

    # ------------------------------------------------------------ the CSMS's requests

    async def _call(self, action: str, payload: dict[str, Any], label: str) -> tuple[float, dict[str, Any]]:
        """Send a CALL; (time it was sent, the CALLRESULT payload). A CALLERROR or no answer fails the scenario."""
        bench = self.bench
        t = bench.now()
        try:
            answer = await self.csms.call(action, payload)
        except CsmsCallError as exc:
            bench.timeline.mark(f"{label} → error", "ocpp", t=t)
            bench._answer(f"{label} answered", False, t, str(exc))
            raise  # not reached: the failed check raised CheckFailed
        bench.last_action = t
        return t, answer.payload

    async def reserve_now(self, reservation_id: int, token: str, *, evse: int | None = None,
                          expires_in: float = 300.0, expect: str = "Accepted") -> float:
        """ReserveNow from the CSMS; checks the DUT's status. Returns the time it was sent."""
        bench = self.bench
        payload = self.d.reserve_now(reservation_id, token, evse,
                                     ocpp_time(bench.timeline.wall(bench.now() + expires_in)))
        where = f"@{evse}" if evse is not None else "global"
        label = f"ReserveNow #{reservation_id} {where} {token}"
        t, answer = await self._call("ReserveNow", payload, label)
        status = answer.get("status")
        bench.timeline.mark(f"{label} → {status}", "reservation", evse, t=t)
        if status == "Accepted" and expires_in <= 60:
            bench.timeline.mark(f"#{reservation_id} expiry time", "expiry", evse, t=t + expires_in)
        bench._answer(f"{label} answered {expect}", status == expect, t, f"the DUT answered {status}")
        return t

    async def cancel(self, reservation_id: int, *, expect: str = "Accepted") -> float:
        """CancelReservation from the CSMS; checks the DUT's status."""
        label = f"CancelReservation #{reservation_id}"
        t, answer = await self._call("CancelReservation", {"reservationId": reservation_id}, label)
        status = answer.get("status")
        self.bench.timeline.mark(f"{label} → {status}", "reservation", t=t)
        self.bench._answer(f"{label} answered {expect}", status == expect, t, f"the DUT answered {status}")
        return t

    async def get_variable(self, component: str, variable: str) -> str | None:
        """GetVariables of one variable (Actual; 1.6: GetConfiguration of its key); its value, or None when the DUT
        does not give one."""
        action, payload = self.d.get_setting(component, variable)
        t, answer = await self._call(action, payload, f"{action} {variable}")
        ok, value = self.d.setting(answer)
        self.bench._answer(f"{action} {component}.{variable} answered", ok, t, f"the DUT answered {answer}")
        return value

    async def set_variable(self, component: str, variable: str, value: str) -> float:
        """SetVariables of one variable (1.6: ChangeConfiguration of its key); checks that the DUT accepted it."""
        action, payload = self.d.set_setting(component, variable, value)
        label = f"{action} {component}.{variable} = {value}"
        t, answer = await self._call(action, payload, label)
        status = self.d.set_status(answer)
        self.bench.timeline.mark(f"{label} → {status}", "ocpp", t=t)
        self.bench._answer(f"{label} answered Accepted", status == "Accepted", t, f"the DUT answered {status}")
        return t

    @contextlib.asynccontextmanager
    async def variable(self, component: str, variable: str, value: str) -> AsyncIterator[None]:
        """Set a variable for the block and give it its old value back afterwards (a real DUT keeps its settings)."""
        old = await self.get_variable(component, variable)
        await self.set_variable(component, variable, value)
        try:
            yield
        finally:
            if old is not None and old != value and self.csms.connected.is_set():
                with contextlib.suppress(CsmsCallError, CheckFailed):
                    await self.csms.call(*self.d.set_setting(component, variable, old))

    async def trigger(self, message: str, *, evse: int | None = None) -> float:
        """TriggerMessage; checks that the DUT accepted it."""
        payload = self.d.trigger(message, evse)
        label = f"TriggerMessage {message}" + (f" @{evse}" if evse is not None else "")
        t, answer = await self._call("TriggerMessage", payload, label)
        status = answer.get("status")
        self.bench.timeline.mark(f"{label} → {status}", "ocpp", evse, t=t)
        self.bench._answer(f"{label} answered Accepted", status == "Accepted", t, f"the DUT answered {status}")
        return t

    # ------------------------------------------------------------ what the DUT sent

    def sent(self, action: str, where: Where | None = None, *, since: float = -math.inf,
             until: float = math.inf) -> list[Received]:
        """The DUT's CALLs of ``action`` matching ``where`` that arrived in the scenario-time window."""
        return [m for m in self.csms.messages(action) if since <= self.t(m) <= until and _matches(where, m.payload)]

    async def message(self, action: str, what: str, *, within: float, after: float | None = None,
                      where: Where | None = None, mark: str | None = None,
                      match: Callable[[Received], bool] | None = None) -> Received:
        """Check that the DUT sends ``action`` (matching ``where``, and ``match`` on the whole record) within
        ``within`` s of ``after``; the first one."""
        bench = self.bench
        since = bench.last_action if after is None else after

        def first() -> Received | None:
            """The first matching message since ``since``."""
            found = [m for m in self.sent(action, where, since=since) if match is None or _holds(match, m)]
            return found[0] if found else None

        def seen() -> float | None:
            """When it arrived."""
            message = first()
            return None if message is None else self.t(message)

        await bench._check_within(f"DUT sends {what}", (), since, within, seen,
                                  lambda: f"none arrived (the last {action}s: {self._brief(action)})")
        message = first()
        assert message is not None
        if mark:
            bench.timeline.mark(mark, "ocpp", t=self.t(message))
        return message

    def _brief(self, action: str) -> str:
        """The last few messages of ``action``, shortened for a failure message."""
        return "; ".join(f"t={self.t(m):.2f} {json.dumps(m.payload)[:160]}" for m in self.sent(action)[-3:]) or "none"

    async def status_is(self, evse_id: int, status: str, *, within: float, after: float | None = None) -> float:
        """Check that the DUT reports ``status`` for the EVSE's connector (a StatusNotification) in time."""
        message = await self.message(
            "StatusNotification", f"StatusNotification EVSE {evse_id} {status}", within=within, after=after,
            where=lambda p: self.d.status(p, evse_id) == status)
        return self.t(message)

    async def none(self, action: str, what: str, *, for_s: float, after: float | None = None,
                   where: Where | None = None) -> None:
        """Check that the DUT sends no ``action`` matching ``where`` for ``for_s`` s from ``after`` (default: now)."""
        bench = self.bench
        since = bench.now() if after is None else after
        await bench._settle(since + for_s)
        bad = self.sent(action, where, since=since, until=since + for_s)
        bench._record(CheckRecord(f"DUT sends no {what} for {for_s:.2f} s", not bad, since, since + for_s, (),
                                  None, "" if not bad else f"it sent {bad[0].payload} at t={self.t(bad[0]):.3f} s"))

    def all_valid(self) -> None:
        """Check that every message the DUT sent in this scenario matched its schema (of the DUT's version)."""
        bench, problems = self.bench, self.csms.problems
        count = len(self.csms.received)
        bench._answer(f"all {count} messages from the DUT match their OCPP {self.d.version} schemas", not problems,
                      bench.now(), "; ".join(problems[:3]))

    # ------------------------------------------------------------ tokens and transactions, in either version

    async def authorized(self, token: str, *, within: float, after: float) -> Received:
        """Check that the DUT asks the CSMS about ``token`` (Authorize) in time."""
        return await self.message("Authorize", f"Authorize {token}", within=within, after=after,
                                  where=lambda p: self.d.authorize_token(p) == token)

    async def tx_started(self, evse: int, *, within: float, after: float, mark: str) -> tuple[Received, str]:
        """Check that the DUT reports a transaction started on the EVSE in time; (the message, its id)."""
        what = "TransactionEvent Started" if self.d.version == "2.0.1" else "StartTransaction"
        started = await self.message(self.d.start_action, f"{what} on EVSE {evse}", within=within, after=after,
                                     mark=mark, match=lambda m: self.d.started(m, evse))
        tx = self.d.tx_id(started)
        self.bench._answer("the CSMS knows the transaction's id", tx is not None, self.t(started),
                           f"no transaction id in {started.payload} (answered {started.answer})")
        assert tx is not None
        return started, tx

    async def tx_ended(self, tx: str, reason: str, *, within: float, after: float, mark: str) -> Received:
        """Check that the DUT reports the transaction ended for ``reason`` in time."""
        what = f"TransactionEvent Ended (stoppedReason {reason})" if self.d.version == "2.0.1" \
            else f"StopTransaction (reason {reason})"
        return await self.message(self.d.end_action, what, within=within, after=after, mark=mark,
                                  match=lambda m: self.d.ended(m, tx, reason))

    def tx_messages(self, tx: str) -> list[tuple[float, Received]]:
        """Every message of the transaction, in arrival order, with its arrival in scenario time."""
        return [(self.t(m), m) for m in self.csms.received if m.action in self.d.tx_actions
                and _holds(lambda r: self.d.tx_id(r) == tx, m)]

    async def meter_values(self, evse: int, *, within: float, after: float) -> Received:
        """Check that the DUT sends MeterValues of the EVSE in time (e.g. after a TriggerMessage)."""
        return await self.message("MeterValues", f"MeterValues of EVSE {evse} (triggered)", within=within,
                                  after=after, where=lambda p: self.d.meter_values_of(p, evse))

    async def reservation_quiet(self, evse: int, what: str, *, for_s: float, after: float) -> None:
        """Check that the DUT reports no end of the EVSE's reservation for ``for_s`` s: no ReservationStatusUpdate
        (2.0.1); no status of its connector other than Reserved (1.6, which reports an end only so)."""
        if self.d.version == "2.0.1":
            await self.none("ReservationStatusUpdate", f"ReservationStatusUpdate {what}", for_s=for_s, after=after)
            return
        await self.none("StatusNotification", f"StatusNotification of EVSE {evse} other than Reserved {what}",
                        for_s=for_s, after=after, where=lambda p: self.d.status(p, evse) not in (None, "Reserved"))

    async def reservation_expired(self, reservation_id: int, evse: int, *, within: float, after: float) -> float:
        """Check that the DUT reports the reservation Expired in time (2.0.1: ReservationStatusUpdate; 1.6, which has
        no such message: its connector Available again); when it was reported."""
        if self.d.version == "2.0.1":
            message = await self.message(
                "ReservationStatusUpdate", f"ReservationStatusUpdate #{reservation_id} Expired", within=within,
                after=after, mark=f"DUT: #{reservation_id} Expired",
                where=lambda p: p["reservationId"] == reservation_id and p["reservationUpdateStatus"] == "Expired")
            return self.t(message)
        t = await self.status_is(evse, "Available", within=within, after=after)
        self.bench.timeline.mark(f"DUT: #{reservation_id} over (Available)", "ocpp", t=t)
        return t
