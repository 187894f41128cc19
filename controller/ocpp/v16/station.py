"""The OCPP 1.6J charge point: the connection, boot, heartbeat, the CSMS's clock and the connector statuses.

One ``Station16`` lives as long as the controller; connections to the CSMS come and go under it
(controller.ocpp.station.connection, subprotocol ``ocpp1.6``). It speaks to the controller only through the port
(controller.port): it reads ``status()`` and the event hub, reserves and cancels, enables and disables EVSEs, and its
authority (controller.ocpp.v16.authority) is asked about every presented token. What it says on its own
(statuses, heartbeats, Authorize) leaves through one ordered outbox; Start/StopTransaction and MeterValues through
the durable queue (controller.ocpp.v16.tx_flow); nothing is awaited inside a handler of a CSMS CALL.

connectorId N is the N-th connector of the station in EVSE order; 0 is the station. Feature profiles: Core,
LocalAuthListManagement, Reservation (``[ocpp] reservations``) and RemoteTrigger; the CSMS's orders are answered by
controller.ocpp.v16.operations.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ocpp.v16 import call
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from controller.config.ocpp_model import OcppConfig
from controller.core.parsing import FormatError, parse_rfc3339
from controller.ocpp.station.clock import StationClock
from controller.ocpp.station.connection import Backoff, CsmsConnection
from controller.ocpp.station.outbox import CallFailed, Outbox
from controller.ocpp.station.transactions import StopReason, Trigger, TxEventKind
from controller.ocpp.station.variable_types import VariableDef, VariableKey
from controller.ocpp.station.variables import VariableStore
from controller.ocpp.v16.authority import Authority16
from controller.ocpp.v16.charge_point import ChargePoint16
from controller.ocpp.v16.operations import Operations16
from controller.ocpp.v16.status import Report, StatusTracker16, connector_numbers, connector_report, station_report
from controller.ocpp.v16.tx_flow import TransactionFlow16
from controller.ocpp.wire import OCPPError
from controller.port.charger import Charger, TokenVerdict

log = logging.getLogger("controller.ocpp")

SUBPROTOCOL = "ocpp1.6"
BOOT_RETRY_DEFAULT_S = 30  # BootNotification retry when the CSMS gives interval 0 with Pending/Rejected
MAX_HEARTBEAT_S = 86_400  # HeartbeatInterval's limit; a larger interval from the CSMS is ignored
VENDOR_MAX, MODEL_MAX, SERIAL_MAX, FIRMWARE_MAX = 20, 20, 25, 50  # BootNotification field lengths
_HEARTBEAT = VariableKey("OCPPCommCtrlr", "HeartbeatInterval").folded()


class Station16:
    """An OCPP 1.6J charge point in front of the controller's port."""

    def __init__(self, charger: Charger, config: OcppConfig, variables: VariableStore, db_path: Path,
                 clock: StationClock | None = None, *, on_reset: Callable[[str], None] | None = None) -> None:
        """Speak for ``charger`` to the CSMS of ``config``; ``variables`` holds the configuration keys, ``db_path``
        is the SQLite file of the queue, the open transactions and the authorization cache and list.

        ``on_reset`` is called (after the answer, transactions ended) with the reset type, Hard or Soft; the daemon
        restarts the process then. Without it a Reset is Rejected.
        """
        self.charger = charger
        self.config = config
        self.station_id = config.station_id
        self.variables = variables
        self.clock = clock or StationClock()
        self.outbox = Outbox()
        self.connectors = connector_numbers(charger.status()["evses"])  # connectorId -> (EVSE id, connector id)
        self.connector_ids = {pair: number for number, pair in self.connectors.items()}
        self.transactions = TransactionFlow16(charger, variables, self.clock, db_path,
                                              connector_of=lambda e, c: self.connector_ids[(e, c)])
        self._tracker = StatusTracker16()
        self._finished: set[int] = set()  # EVSEs whose transaction ended with the plug still in (Finishing)
        self.accepted = False
        self.boot_reason = "PowerUp"  # 1.6 BootNotification has no reason; kept for the front's interface
        self._cp: ChargePoint16 | None = None
        self._status_pending = False
        self._heartbeat_changed = asyncio.Event()
        self._unsubscribe: Callable[[], None] | None = None
        self._unwatch: Callable[[], None] | None = None
        self._task: asyncio.Task[None] | None = None
        self.connection = CsmsConnection(
            config.endpoint, SUBPROTOCOL, station_id=config.station_id, password=self._password,
            ca_file=config.ca_file, backoff=Backoff(config.reconnect_min_s, config.reconnect_max_s),
            ping_interval_s=self._ping_interval,
        )
        self.operations = Operations16(self, on_reset)
        self.authority = Authority16(self, db_path)

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Become the token authority, follow the controller's events, and connect in the background."""
        await self.transactions.start(self._call_with_id, self.authority.transaction_answer)
        for evse in self.charger.status()["evses"]:
            self.transactions.observe(evse)
        self._unsubscribe = self.charger.events.subscribe(self._on_event)
        loop = asyncio.get_running_loop()

        def changed(definition: VariableDef, _: str) -> None:
            """HeartbeatInterval was set (by the CSMS or a boot answer): the heartbeat loop waits anew."""
            if definition.key.folded() == _HEARTBEAT:
                loop.call_soon_threadsafe(self._heartbeat_changed.set)

        self._unwatch = self.variables.on_change(changed)
        self.charger.set_token_authority(self.authority)
        self._task = asyncio.ensure_future(self.connection.run(self._session))

    async def stop(self) -> None:
        """Close the connection and stop asking the CSMS about tokens."""
        self.charger.set_token_authority(None)
        for undo in (self._unsubscribe, self._unwatch):
            if undo is not None:
                undo()
        self._unsubscribe = self._unwatch = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        await self.operations.stop()
        await self.transactions.stop()
        self.authority.close()

    @property
    def online(self) -> bool:
        """Connected and accepted by the CSMS: messages may be sent."""
        return self.connection.online.is_set() and self.accepted and self._cp is not None

    def _password(self) -> str | None:
        """The Basic auth password: AuthorizationKey once the CSMS set one, else the configured one."""
        if self.config.security_profile == 0:
            return None
        stored = self.variables.str_value("SecurityCtrlr", "BasicAuthPassword")
        return stored or self.config.password

    def _ping_interval(self) -> float | None:
        """WebSocket ping interval from WebSocketPingInterval (0: no pings)."""
        seconds = self.variables.int_value("OCPPCommCtrlr", "WebSocketPingInterval")
        return float(seconds) if seconds > 0 else None

    # ------------------------------------------------------------ one connection

    async def _session(self, websocket: ClientConnection) -> None:
        """Boot if not yet accepted, report every connector, then send, beat and answer until it closes."""
        timeout = float(self.variables.int_value("OCPPCommCtrlr", "MessageTimeout", variable_instance="Default"))
        cp = ChargePoint16(self, websocket, timeout)
        reader = asyncio.ensure_future(cp.start())
        tasks: list[asyncio.Task[Any]] = []
        try:
            self._cp = cp
            if not self.accepted:
                await self._boot(cp, reader)
            self.transactions.ready.set()
            self.connection.backoff.reset()
            self._tracker.forget()
            self._update_statuses()
            tasks = [asyncio.ensure_future(self.outbox.drain(self._send)),
                     asyncio.ensure_future(self._heartbeats())]
            await reader
        except ConnectionClosed:
            pass
        finally:
            self._cp = None
            self.transactions.ready.clear()
            for task in [*tasks, reader]:
                task.cancel()
            for task in [*tasks, reader]:
                with contextlib.suppress(asyncio.CancelledError, ConnectionClosed, Exception):
                    await task
            self.outbox.connection_lost()

    async def _send(self, payload: Any) -> Any:
        """One CALL on the current connection; CallFailed for a CALLERROR or a timeout."""
        cp = self._cp
        if cp is None:
            raise ConnectionClosed(None, None)
        try:
            return await cp.call(payload, suppress=False)
        except OCPPError as exc:
            raise CallFailed(f"CALLERROR {type(exc).__name__}: {exc}") from None
        except TimeoutError:
            raise CallFailed("no answer in time") from None

    async def _call_with_id(self, payload: Any, unique_id: str) -> Any:
        """A queued message on the current connection, with its stable unique id, after any answer being sent."""
        await self.outbox.unheld()
        cp = self._cp
        if cp is None or not self.accepted:
            raise ConnectionClosed(None, None)
        return await cp.call(payload, suppress=False, unique_id=unique_id)

    def boot_request(self) -> Any:
        """The BootNotification: vendor, model, serial number and firmware version (within their lengths)."""
        info: dict[str, str] = {"charge_point_vendor": self.config.vendor[:VENDOR_MAX],
                                "charge_point_model": self.config.model[:MODEL_MAX],
                                "firmware_version": firmware_version()[:FIRMWARE_MAX]}
        if self.config.serial_number:
            info["charge_point_serial_number"] = self.config.serial_number[:SERIAL_MAX]
        return call.BootNotification(**info)

    async def _boot(self, cp: ChargePoint16, reader: asyncio.Task[None]) -> None:
        """BootNotification until Accepted, waiting the CSMS's interval after Pending or Rejected."""
        while True:
            try:
                answer = await cp.call(self.boot_request(), suppress=False)
            except (OCPPError, TimeoutError) as exc:
                log.warning("BootNotification failed (%s); retrying in %d s", type(exc).__name__,
                            BOOT_RETRY_DEFAULT_S)
                await _wait_or_closed(reader, BOOT_RETRY_DEFAULT_S)
                continue
            if self.boot_answer(answer):
                return
            wait = int(answer.interval) if int(answer.interval) > 0 else BOOT_RETRY_DEFAULT_S
            log.warning("BootNotification %s by the CSMS; retrying in %d s", answer.status, wait)
            await _wait_or_closed(reader, wait)

    def boot_answer(self, answer: Any) -> bool:
        """Take a BootNotification's answer (the time; the heartbeat interval when Accepted); True if Accepted."""
        self.learn_time(answer.current_time)
        if answer.status != "Accepted":
            return False
        interval = int(answer.interval)
        if 0 < interval <= MAX_HEARTBEAT_S:
            self.variables.set_internal("OCPPCommCtrlr", "HeartbeatInterval", str(interval))
        if not self.accepted:
            log.info("BootNotification accepted by the CSMS (heartbeat every %d s)",
                     self.variables.int_value("OCPPCommCtrlr", "HeartbeatInterval"))
        self.accepted = True
        return True

    async def _heartbeats(self) -> None:
        """Heartbeat every HeartbeatInterval (a new interval counts from when it is set); the answer keeps our clock
        offset fresh."""
        while True:
            self._heartbeat_changed.clear()
            interval = self.variables.int_value("OCPPCommCtrlr", "HeartbeatInterval")
            try:
                await asyncio.wait_for(self._heartbeat_changed.wait(), max(1, interval))
            except TimeoutError:
                self.send_heartbeat()

    def send_heartbeat(self) -> None:
        """Queue a Heartbeat."""
        self.outbox.put(call.Heartbeat(), on_result=lambda answer: self.learn_time(answer.current_time))

    def learn_time(self, text: str) -> None:
        """Keep the CSMS's time as the clock offset (only used while the system clock is unsynchronized)."""
        try:
            self.clock.learn(parse_rfc3339("currentTime", text))
        except FormatError as exc:
            log.warning("the CSMS sent a time we cannot read: %s", exc)

    # ------------------------------------------------------------ statuses

    def _on_event(self, event: dict[str, Any]) -> None:
        """A controller event: transactions follow the EVSE's state, statuses are reported when they change."""
        kind = event.get("type")
        if kind == "evse_state":
            evse_id = int(event["id"])
            for tx_event in self.transactions.observe(event):
                if tx_event.kind is TxEventKind.ENDED and event.get("plugged_in"):
                    self._finished.add(evse_id)
            if not event.get("plugged_in") or event.get("phase") == "authorized":
                self._finished.discard(evse_id)
            self.operations.apply_scheduled_availability(event)
            self.status_soon()
        elif kind == "evse_reserved":
            self.status_soon()
        elif kind == "token":
            self._token_outcome(event)

    def _token_outcome(self, event: dict[str, Any]) -> None:
        """What a presented token led to, for the transaction it starts or stops."""
        evse_id, verdict = event.get("evse_id"), event.get("verdict")
        if not isinstance(evse_id, int):
            return
        if verdict == TokenVerdict.RESERVATION_USED and isinstance(event.get("reservation_id"), int):
            self.transactions.tracker.reservation_used(evse_id, event["reservation_id"])
        elif verdict == TokenVerdict.STOPPED:
            self.transactions.tracker.stopping(evse_id, Trigger.STOP_AUTHORIZED, StopReason.LOCAL)

    def transaction_ended_here(self, evse_id: int) -> None:
        """A transaction was ended by the station (no session to stop): Finishing while the plug is in."""
        if any(e["id"] == evse_id and e.get("plugged_in") for e in self.charger.status()["evses"]):
            self._finished.add(evse_id)
        self.status_soon()

    def status_soon(self) -> None:
        """Look at the statuses once the current burst of events is over."""
        if self._status_pending:
            return
        self._status_pending = True
        asyncio.get_running_loop().call_soon(self._update_statuses)

    def reports(self) -> dict[int, Report]:
        """Every connectorId's status now (0: the station)."""
        evses = {int(e["id"]): e for e in self.charger.status()["evses"]}
        found = {0: station_report(evses.values())}
        for number, (evse_id, connector_id) in self.connectors.items():
            entry = evses[evse_id]
            connector = next(c for c in entry["connectors"] if int(c["id"]) == connector_id)
            tx = self.transactions.open_transaction(evse_id)
            found[number] = connector_report(entry, connector, finished=evse_id in self._finished,
                                             transaction=tx is not None and tx.connector_id == connector_id)
        return found

    def _update_statuses(self) -> None:
        """Send a StatusNotification for every connector whose status changed (all of them after a reconnect)."""
        self._status_pending = False
        if not self.online:
            return
        for number, report in self._tracker.changes(self.reports()):
            self._tracker.sent(number, report)
            self.send_status(number, report)

    def send_status(self, connector_id: int, report: Report) -> None:
        """Queue one StatusNotification."""
        self.outbox.put(call.StatusNotification(**report.payload(connector_id, self.clock.timestamp())))

async def _wait_or_closed(reader: asyncio.Task[None], seconds: float) -> None:
    """Sleep ``seconds``, but end at once (raising ConnectionClosed) when the connection's reader ends."""
    done, _ = await asyncio.wait({reader}, timeout=seconds)
    if done:
        reader.result()  # raises what ended it
        raise ConnectionClosed(None, None)


def firmware_version() -> str:
    """The installed charger-controller version (the station's firmware)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("charger-controller")
    except PackageNotFoundError:
        return "unknown"
