"""The OCPP 1.6J charge point: the connection, boot, heartbeat, the CSMS's clock and the connector statuses.

One ``Station16`` lives as long as the controller; connections to the CSMS come and go under it
(controller.ocpp.station.connection, subprotocol ``ocpp1.6``). It speaks to the controller only through the port
(controller.port): it reads ``status()`` and the event hub, reserves and cancels, enables and disables EVSEs, and its
authority (controller.ocpp.v16.authority) is asked about every presented token. What it says on its own
(statuses, heartbeats, Authorize) leaves through one ordered outbox; Start/StopTransaction and MeterValues through
the durable queue (controller.ocpp.v16.tx_flow); nothing is awaited inside a handler of a CSMS CALL.

connectorId N is the N-th connector of the station in EVSE order; 0 is the station. Feature profiles: Core,
LocalAuthListManagement, Reservation (``[ocpp] reservations``), SmartCharging (controller.ocpp.v16.smart_charging)
and RemoteTrigger; the CSMS's other orders are answered by controller.ocpp.v16.operations.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ocpp.v16 import call

from controller.config.ocpp_model import OcppConfig
from controller.ocpp.station.clock import StationClock
from controller.ocpp.station.session import FIRMWARE_MAX, StationSession, firmware_version
from controller.ocpp.station.transactions import TxEventKind
from controller.ocpp.station.variable_types import VariableDef, VariableKey
from controller.ocpp.station.variables import VariableStore
from controller.ocpp.v16.authority import Authority16
from controller.ocpp.v16.charge_point import ChargePoint16
from controller.ocpp.v16.operations import Operations16
from controller.ocpp.v16.smart_charging import SmartCharging16
from controller.ocpp.v16.status import Report, StatusTracker16, connector_numbers, connector_report, station_report
from controller.ocpp.v16.tx_flow import TransactionFlow16
from controller.ocpp.wire import OCPPError
from controller.port.charger import Charger, ReservationUse

log = logging.getLogger("controller.ocpp")

SUBPROTOCOL = "ocpp1.6"
MAX_HEARTBEAT_S = 86_400  # HeartbeatInterval's limit; a larger interval from the CSMS is ignored
VENDOR_MAX, MODEL_MAX, SERIAL_MAX = 20, 20, 25  # BootNotification field lengths
_HEARTBEAT = VariableKey("OCPPCommCtrlr", "HeartbeatInterval").folded()


class Station16(StationSession[ChargePoint16, TransactionFlow16, StatusTracker16]):
    """An OCPP 1.6J charge point in front of the controller's port."""

    call_error = OCPPError
    cp_during_boot = True  # a CALL from the CSMS while booting is answered by this connection's charge point
    reservation_use = ReservationUse.AT_TRANSACTION_START  # 1.6 (5.13): a reservation is consumed when its
    # transaction starts, so a reserved token whose session ends before the plug still has its reservation

    def __init__(self, charger: Charger, config: OcppConfig, variables: VariableStore, db_path: Path,
                 clock: StationClock | None = None, *, on_reset: Callable[[str], None] | None = None) -> None:
        """Speak for ``charger`` to the CSMS of ``config``; ``variables`` holds the configuration keys, ``db_path``
        is the SQLite file of the queue, the open transactions and the authorization cache and list.

        ``on_reset`` is called (after the answer, transactions ended) with the reset type, Hard or Soft; the daemon
        restarts the process then. Without it a Reset is Rejected.
        """
        self.connectors = connector_numbers(charger.status()["evses"])  # connectorId -> (EVSE id, connector id)
        self.connector_ids = {pair: number for number, pair in self.connectors.items()}
        super().__init__(charger, config, variables, clock, SUBPROTOCOL, peer=ChargePoint16, statuses=StatusTracker16(),
                         transactions=lambda c: TransactionFlow16(charger, variables, c, db_path,
                                                                  connector_of=lambda e, n: self.connector_ids[(e, n)]))
        self._finished: set[int] = set()  # EVSEs whose transaction ended with the plug still in (Finishing)
        self.boot_reason = "PowerUp"  # 1.6 BootNotification has no reason; kept for the front's interface
        self._heartbeat_changed = asyncio.Event()
        self._unwatch: Callable[[], None] | None = None
        self.operations = Operations16(self, db_path, on_reset)
        self.smart_charging = SmartCharging16(self, db_path)
        self.authority = Authority16(self, db_path)

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Become the token authority, follow the controller's events, and connect in the background."""
        await self.operations.availability.restore()
        await self.transactions.start(self._call_with_id, self.authority.transaction_answer)
        for evse in self.charger.status()["evses"]:
            self.transactions.observe(evse)
        await self.smart_charging.core.start()
        loop = asyncio.get_running_loop()

        def changed(definition: VariableDef, _: str) -> None:
            """HeartbeatInterval was set (by the CSMS or a boot answer): the heartbeat loop waits anew."""
            if definition.key.folded() == _HEARTBEAT:
                loop.call_soon_threadsafe(self._heartbeat_changed.set)

        self._unwatch = self.variables.on_change(changed)
        self._connect(self.charger.events.subscribe(self._on_event), self.authority)

    async def stop(self) -> None:
        """Close the connection and stop asking the CSMS about tokens."""
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None
        await self._stop_connection()
        await self.smart_charging.core.stop()
        await self.operations.stop()
        await self.transactions.stop()
        self.authority.close()

    # ------------------------------------------------------------ one connection

    def boot_request(self) -> Any:
        """The BootNotification: vendor, model, serial number and firmware version (within their lengths)."""
        info: dict[str, str] = {"charge_point_vendor": self.config.vendor[:VENDOR_MAX],
                                "charge_point_model": self.config.model[:MODEL_MAX],
                                "firmware_version": firmware_version()[:FIRMWARE_MAX]}
        if self.config.serial_number:
            info["charge_point_serial_number"] = self.config.serial_number[:SERIAL_MAX]
        return call.BootNotification(**info)

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
            self.smart_charging.core.follow(event)
            self.operations.availability.on_evse_state(event)
            self.status_soon()
        elif kind == "evse_reserved":
            self.status_soon()
        elif kind == "token":
            self._token_outcome(event)

    def transaction_ended_here(self, evse_id: int) -> None:
        """A transaction was ended by the station (no session to stop): Finishing while the plug is in."""
        if any(e["id"] == evse_id and e.get("plugged_in") for e in self.charger.status()["evses"]):
            self._finished.add(evse_id)
        self.status_soon()

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
