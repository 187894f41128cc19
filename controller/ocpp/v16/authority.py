"""The 1.6 charge point as the port's token authority: Authorize, the cache and local list, and the idTagInfo of the
transaction answers.

Every token presented at an EVSE (RFID reader, ``POST /evses/{id}/token``, a remote start) is decided here before
it may use a reservation or start charging: by the version-neutral rules on the authorization cache and the local
list (controller.ocpp.station.authorization: LocalPreAuthorize, LocalAuthorizeOffline, AllowOfflineTxForUnknownId),
else by an Authorize to the CSMS, whose parentIdTag is the token's group (it may use a reservation made for that
parent). An idTag is at most 20 characters in 1.6: a longer token is refused without asking.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ocpp.v16 import call, call_result

from controller.ocpp.station.auth_types import AuthSettings, Verdict
from controller.ocpp.station.authorization import AuthorizationStore
from controller.ocpp.station.outbox import CallFailed
from controller.ocpp.station.queue import QueuedMessage
from controller.ocpp.station.transactions import StopReason, Trigger
from controller.ocpp.v16 import auth as auth16
from controller.ocpp.v16.transactions import ID_TAG_MAX
from controller.port.charger import Authorization
from drivers.redact import redact_token

if TYPE_CHECKING:
    from controller.ocpp.v16.station import Station16

log = logging.getLogger("controller.ocpp")

AUTHORIZE_TIMEOUT_S = 10.0  # an Authorize without an answer by then falls back to the offline rules


class Authority16:
    """Decides the tokens of one 1.6 charge point; keeps its authorization cache and local list."""

    def __init__(self, station: Station16, db_path: Path) -> None:
        """Decide for ``station``; the cache and the list live in ``db_path`` (ocpp.db)."""
        self._station = station
        self.variables = station.variables
        self.store = AuthorizationStore(
            db_path, on_entries=lambda n: self.variables.set_internal("LocalAuthListCtrlr", "Entries", str(n)))
        # (EVSE, TOKEN) of a remote start accepted without asking the CSMS (AuthorizeRemoteTxRequests false)
        self.remote_authorized: set[tuple[int, str]] = set()

    def close(self) -> None:
        """Close the cache and list's database."""
        self.store.close()

    async def authorize(self, evse_id: int, id_token: str) -> Authorization:
        """The TokenAuthority of the port: the local rules or the CSMS decide (``_authorize``); an accepted token
        is remembered for the transaction it may start."""
        if len(id_token) > ID_TAG_MAX:
            return Authorization(False, reason=f"an OCPP 1.6 idTag has at most {ID_TAG_MAX} characters")
        answer = await self._authorize(evse_id, id_token)
        if answer.accepted:
            self._station.transactions.tracker.token_accepted(evse_id, id_token, answer.group_id_token)
        return answer

    def session_stopped(self, evse_id: int, id_token: str) -> None:
        """The token that stopped the session: StopTransaction's idTag names it."""
        self._station.transactions.tracker.stopped_by(evse_id, id_token)

    async def _authorize(self, evse_id: int, id_token: str) -> Authorization:
        """The local list and cache (LocalPreAuthorize, the offline rules), else an Authorize to the CSMS."""
        if not self.variables.bool_value("AuthCtrlr", "Enabled"):
            return Authorization(True, reason="authorization disabled")
        remote = (evse_id, id_token.upper())
        if remote in self.remote_authorized:
            self.remote_authorized.discard(remote)
            return Authorization(True, None, "remote start (AuthorizeRemoteTxRequests false)")
        clock = self._station.clock
        settings = AuthSettings.from_variables(self.variables)
        decision = self.store.decide(id_token, online=self._station.online, now=clock.now(), settings=settings)
        if decision.verdict is not Verdict.ASK_CSMS:
            return decision.authorization()
        request = self._station.outbox.request(call.Authorize(id_tag=id_token))
        try:
            answer = await asyncio.wait_for(request, AUTHORIZE_TIMEOUT_S)
        except (CallFailed, TimeoutError) as exc:
            log.warning("EVSE %d: Authorize %s got no answer (%s): offline rules apply", evse_id,
                        redact_token(id_token), exc)
            return self.store.decide(id_token, online=False, now=clock.now(), settings=settings).authorization()
        auth16.remember(self.store, id_token, answer.id_tag_info, now=clock.now(), settings=settings)
        return auth16.authorization(answer.id_tag_info, now=clock.now())

    def transaction_answer(self, message: QueuedMessage, payload: dict[str, Any], answer: Any) -> None:
        """A Start/StopTransaction's idTagInfo updates the cache; a StartTransaction whose idTag is not Accepted
        stops its session when StopTransactionOnInvalidId is true (reason DeAuthorized)."""
        info = getattr(answer, "id_tag_info", None)
        token = payload.get("id_tag")
        if not isinstance(info, dict) or not isinstance(token, str):
            return
        auth16.remember(self.store, token, info, now=self._station.clock.now(),
                        settings=AuthSettings.from_variables(self.variables))
        if message.action != "StartTransaction" or info.get("status") == "Accepted":
            return
        transactions = self._station.transactions
        tx = next((t for t in transactions.tracker.open_transactions()
                   if t.transaction_id == message.transaction_ref), None)
        if tx is None or not self.variables.bool_value("TxCtrlr", "StopTxOnInvalidId"):
            return
        log.warning("EVSE %d: the CSMS answered the transaction's idTag %s: stopping it", tx.evse_id,
                    info.get("status"))
        transactions.tracker.stopping(tx.evse_id, Trigger.DEAUTHORIZED, StopReason.DEAUTHORIZED)
        operations = self._station.operations
        operations.spawn(operations.stop_or_end(tx.evse_id, Trigger.DEAUTHORIZED, StopReason.DEAUTHORIZED))

    def clear_cache(self) -> Any:
        """ClearCache: forget the authorization cache (Rejected while it is disabled)."""
        settings = AuthSettings.from_variables(self.variables)
        return call_result.ClearCache(**auth16.clear_cache(self.store, settings=settings))

    def send_local_list(self, payload: dict[str, Any]) -> Any:
        """SendLocalList: a full or differential update of the local authorization list."""
        settings = AuthSettings.from_variables(self.variables)
        return call_result.SendLocalList(**auth16.send_local_list(self.store, payload, settings=settings))

    def get_local_list_version(self) -> Any:
        """GetLocalListVersion: the local list's version (0: none)."""
        settings = AuthSettings.from_variables(self.variables)
        return call_result.GetLocalListVersion(**auth16.get_local_list_version(self.store, settings=settings))
