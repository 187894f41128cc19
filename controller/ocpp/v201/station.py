"""The OCPP 2.0.1 charging station: provisioning, status, reservations, authorization and availability.

One ``Station201`` lives as long as the controller; connections to the CSMS come and go under it
(controller.ocpp.station.connection). It speaks to the controller only through the port (controller.port):
it reads ``status()`` and the event hub, reserves and cancels, enables and disables EVSEs, and is the token
authority that every presented token is asked about. What it says on its own leaves through one ordered
outbox; nothing is awaited inside a handler of a CSMS CALL.

Functional blocks covered here: B01-B04 (boot with retry on Pending/Rejected, heartbeat, the CSMS's clock
when ours is not synchronized), B05-B07 (device model), B11/B12 (reset), C01/C11 (authorize, clear cache),
G01-G04 (status notifications, availability), H01-H04 (reservations), F06 (trigger message), K01/K05/K08-K10 (smart
charging: controller.ocpp.v201.smart_charging), P01.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ocpp.v201 import call, call_result

from controller.config.ocpp_model import OcppConfig
from controller.ocpp.station.auth_types import AuthSettings, Verdict
from controller.ocpp.station.authorization import AuthorizationStore
from controller.ocpp.station.clock import StationClock
from controller.ocpp.station.outbox import CallFailed
from controller.ocpp.station.session import StationSession, firmware_version
from controller.ocpp.station.status import StatusTracker, all_statuses
from controller.ocpp.station.transactions import StopReason, Trigger
from controller.ocpp.station.variables import VariableStore
from controller.ocpp.v201 import auth as auth201
from controller.ocpp.v201.charge_point import ChargePoint201
from controller.ocpp.v201.operations import Operations
from controller.ocpp.v201.smart_charging import SmartCharging201
from controller.ocpp.v201.tx_flow import TransactionFlow
from controller.ocpp.wire import OCPPError
from controller.port.charger import Authorization, Charger
from drivers.redact import redact_token

log = logging.getLogger("controller.ocpp")

SUBPROTOCOL = "ocpp2.0.1"
TOKEN_TYPE = "ISO14443"  # a token presented at an EVSE is an RFID card's UID (the interface)
AUTHORIZE_TIMEOUT_S = 10.0  # an Authorize without an answer by then falls back to the offline rules
MAX_HEARTBEAT_S = 86_400  # OCPPCommCtrlr.HeartbeatInterval's limit; a larger interval from the CSMS is ignored
UPDATE_STATUSES = frozenset({"Expired", "Removed"})  # the core's updates that ReservationStatusUpdate carries


class Station201(StationSession[ChargePoint201, TransactionFlow, StatusTracker]):
    """An OCPP 2.0.1 charging station in front of the controller's port."""

    call_error = OCPPError
    queue_prevalidated = True  # the transaction flow's writer checks each message against its schema

    def __init__(self, charger: Charger, config: OcppConfig, variables: VariableStore, db_path: Path,
                 clock: StationClock | None = None, *, on_reset: Callable[[str], None] | None = None) -> None:
        """Speak for ``charger`` to the CSMS of ``config``; ``variables`` is the persisted device model, ``db_path``
        the SQLite file of the transaction queue.

        ``on_reset`` is called (after the answer and once EVSEs are idle for OnIdle) with the reset type; the
        daemon restarts the process then. Without it a Reset is Rejected.
        """
        super().__init__(charger, config, variables, clock, SUBPROTOCOL, peer=ChargePoint201, statuses=StatusTracker(),
                         transactions=lambda c: TransactionFlow(charger, variables, c, db_path,
                                                                online=lambda: self.online))
        self.auth = AuthorizationStore(
            db_path, on_entries=lambda n: variables.set_internal("LocalAuthListCtrlr", "Entries", str(n)))
        # (EVSE, TOKEN) -> group of a remote start accepted without asking the CSMS (AuthorizeRemoteStart off)
        self.remote_authorized: dict[tuple[int, str], str | None] = {}
        self._history_until = 0
        self.boot_reason = "PowerUp"  # RemoteReset after a CSMS-ordered reset (controller.ocpp.front)
        self._heartbeat_s = float(config.heartbeat_interval_s)
        self.operations = Operations(self, db_path, on_reset)
        self.smart_charging = SmartCharging201(self, db_path)

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Become the token authority, follow the controller's events, and connect in the background."""
        await self.operations.availability.restore()
        await self.transactions.start(self._call_with_id, self._transaction_answer)
        # the EVSEs as they are now; of the events before now only the reservation ends still matter (those
        # published at the controller's start: expired while it was down), so the history is replayed for them
        self._history_until = self.charger.events.last_seq
        for evse in self.charger.status()["evses"]:
            self.transactions.observe(evse)
        await self.smart_charging.core.start()
        self._connect(self.charger.events.subscribe(self._on_event, since=0), self)

    async def stop(self) -> None:
        """Close the connection and stop asking the CSMS about tokens."""
        await self._stop_connection()
        await self.smart_charging.core.stop()
        await self.operations.stop()
        await self.transactions.stop()
        self.auth.close()

    # ------------------------------------------------------------ one connection

    def boot_request(self) -> Any:
        """B01-B03: the BootNotification, with the reason of this boot."""
        info: dict[str, str] = {"model": self.config.model, "vendor_name": self.config.vendor,
                                "firmware_version": firmware_version()}
        if self.config.serial_number:
            info["serial_number"] = self.config.serial_number
        return call.BootNotification(charging_station=info, reason=self.boot_reason)

    def boot_answer(self, answer: Any) -> bool:
        """Take a BootNotification's answer (the time; the heartbeat interval when Accepted); True if Accepted."""
        self.learn_time(answer.current_time)
        if answer.status != "Accepted":
            return False
        interval = int(answer.interval)
        if 0 < interval <= MAX_HEARTBEAT_S:
            self._set_heartbeat(interval)
        self.accepted = True
        log.info("BootNotification accepted by the CSMS (heartbeat every %d s)", int(self._heartbeat_s))
        return True

    def _set_heartbeat(self, seconds: int) -> None:
        """The CSMS's heartbeat interval, kept in OCPPCommCtrlr.HeartbeatInterval."""
        self._heartbeat_s = float(seconds)
        self.variables.set_internal("OCPPCommCtrlr", "HeartbeatInterval", str(seconds))

    async def _heartbeats(self) -> None:
        """B01: Heartbeat every interval (the CSMS's answer keeps our clock offset fresh)."""
        while True:
            await asyncio.sleep(self._heartbeat_s)
            self.outbox.put(call.Heartbeat(), on_result=lambda answer: self.learn_time(answer.current_time))

    # ------------------------------------------------------------ status (G01)

    def _on_event(self, event: dict[str, Any]) -> None:
        """A controller event: status changes are reported; automatic reservation ends are reported too."""
        kind = event.get("type")
        if kind != "reservation_update" and int(event.get("seq", 0)) <= self._history_until:
            return
        if kind in ("evse_state", "evse_reserved"):
            self.status_soon()
            if kind == "evse_state":
                self.transactions.observe(event)
                self.smart_charging.core.follow(event)
                self.operations.availability.on_evse_state(event)
        elif kind == "reservation_update":
            self.operations.reservation_update(event)
        elif kind == "token":
            self._token_outcome(event)

    def _update_statuses(self) -> None:
        """Send a StatusNotification for every connector whose status changed (all of them after a reconnect)."""
        self._status_pending = False
        if not self.online:
            return
        current = all_statuses(self.charger.status()["evses"])
        for evse_id, connector_id, status in self._tracker.changes(current):
            self._tracker.sent(evse_id, connector_id, status)
            self.send_status(evse_id, connector_id, status.value)

    def send_status(self, evse_id: int, connector_id: int, status: str) -> None:
        """Queue one StatusNotification."""
        self.outbox.put(call.StatusNotification(timestamp=self.clock.timestamp(), connector_status=status,
                                                evse_id=evse_id, connector_id=connector_id))

    # ------------------------------------------------------------ authorization (C01)

    async def authorize(self, evse_id: int, id_token: str) -> Authorization:
        """The TokenAuthority of the port: the local rules or the CSMS decide (``_authorize``); an accepted token
        is remembered for the transaction it may start."""
        answer = await self._authorize(evse_id, id_token)
        if answer.accepted:
            self.transactions.tracker.token_accepted(evse_id, id_token, answer.group_id_token)
        return answer

    def session_stopped(self, evse_id: int, id_token: str) -> None:
        """The token that stopped the session: the Ended event's idToken names it (the driver ended authorization)."""
        self.transactions.tracker.stopped_by(evse_id, id_token)

    async def _authorize(self, evse_id: int, id_token: str) -> Authorization:
        """C01/C10-C15: the local list and cache (LocalPreAuthorize, offline rules), else an Authorize to the CSMS."""
        if not self.variables.bool_value("AuthCtrlr", "Enabled"):
            return Authorization(True, reason="authorization disabled (AuthCtrlr.Enabled = false)")
        remote = (evse_id, id_token.upper())
        if remote in self.remote_authorized:
            return Authorization(True, self.remote_authorized.pop(remote), "remote start (AuthorizeRemoteStart off)")
        settings = AuthSettings.from_variables(self.variables)
        decision = self.auth.decide(id_token, online=self.online, now=self.clock.now(), settings=settings)
        if decision.verdict is not Verdict.ASK_CSMS:
            return decision.authorization()
        token = {"id_token": id_token, "type": TOKEN_TYPE}
        try:
            answer = await asyncio.wait_for(self.outbox.request(call.Authorize(id_token=token)), AUTHORIZE_TIMEOUT_S)
        except (CallFailed, TimeoutError) as exc:
            log.warning("EVSE %d: Authorize %s got no answer (%s): offline rules apply", evse_id,
                        redact_token(id_token), exc)
            return self.auth.decide(id_token, online=False, now=self.clock.now(), settings=settings).authorization()
        auth201.remember(self.auth, token, answer.id_token_info, now=self.clock.now(), settings=settings)
        return auth201.authorization(answer.id_token_info)

    def _transaction_answer(self, payload: dict[str, Any], answer: Any) -> None:
        """C10.FR.05: an idTokenInfo in a TransactionEvent's answer updates the cache; E05: a token the CSMS no
        longer accepts stops its transaction when TxCtrlr.StopTxOnInvalidId is true."""
        info = getattr(answer, "id_token_info", None)
        token = payload.get("id_token")
        if not isinstance(info, dict) or not isinstance(token, dict):
            return
        auth201.remember(self.auth, token, info, now=self.clock.now(), settings=AuthSettings.from_variables(
            self.variables))
        evse = payload.get("evse") or {}
        evse_id = evse.get("id") if isinstance(evse, dict) else None
        if (info.get("status") != "Accepted" and payload.get("event_type") != "Ended" and isinstance(evse_id, int)
                and self.variables.bool_value("TxCtrlr", "StopTxOnInvalidId")):
            log.warning("EVSE %d: the CSMS answered the transaction's token %s: stopping it", evse_id,
                        info.get("status"))
            self.transactions.tracker.stopping(evse_id, Trigger.DEAUTHORIZED, StopReason.DEAUTHORIZED)
            self.operations.spawn(self.charger.stop_session(evse_id))

    def clear_cache(self) -> Any:
        """C11: forget the authorization cache (Rejected while it is disabled)."""
        settings = AuthSettings.from_variables(self.variables)
        return call_result.ClearCache(**auth201.clear_cache(self.auth, settings=settings))

    def send_local_list(self, payload: dict[str, Any]) -> Any:
        """D01: a full or differential update of the local authorization list."""
        settings = AuthSettings.from_variables(self.variables)
        return call_result.SendLocalList(**auth201.send_local_list(self.auth, payload, settings=settings))

    def get_local_list_version(self) -> Any:
        """D02: the local list's version (0: none)."""
        settings = AuthSettings.from_variables(self.variables)
        return call_result.GetLocalListVersion(**auth201.get_local_list_version(self.auth, settings=settings))
