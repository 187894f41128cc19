"""The version-neutral scaffolding of a station's life with its CSMS: connection, session, boot retry, clock, statuses.

Both protocol layers (controller.ocpp.v201.station, controller.ocpp.v16.station) are a ``StationSession``: one
connection to the CSMS (controller.ocpp.station.connection) whose sessions boot until Accepted (retrying after the
CSMS's interval), then drain the ordered outbox, beat and answer until the connection closes; the Basic auth password
and the ping interval come from the stored variables; the CSMS's time keeps the clock offset; statuses are looked at
once a burst of events is over. The layer brings what is its own: its charge point class, transaction flow and
status tracker (given to the constructor), its
BootNotification and what its answer means (``boot_request``, ``boot_answer``), its heartbeat loop, its status
reports (``_update_statuses``) and the CALLERROR exception of its wire module (``call_error``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from controller.config.ocpp_model import OcppConfig
from controller.core.parsing import FormatError, parse_rfc3339
from controller.ocpp.station.clock import StationClock
from controller.ocpp.station.connection import Backoff, CsmsConnection
from controller.ocpp.station.outbox import CallFailed, Outbox
from controller.ocpp.station.transactions import StopReason, Trigger
from controller.ocpp.station.tx_flow import DurableTransactionFlow
from controller.ocpp.station.variables import VariableStore
from controller.port.charger import Charger, ReservationUse, TokenAuthority, TokenVerdict

log = logging.getLogger("controller.ocpp")

BOOT_RETRY_DEFAULT_S = 30  # BootNotification retry when the CSMS gives interval 0 with Pending/Rejected
FIRMWARE_MAX = 50  # BootNotification's firmwareVersion length, in both versions


class Peer(Protocol):
    """What a session needs of the layer's charge point (the library's ChargePoint with the layer's handlers)."""

    async def start(self) -> None:
        """Read and answer the CSMS's messages until the connection closes."""

    async def call(self, payload: Any, suppress: bool = ..., unique_id: str | None = ...,
                   skip_schema_validation: bool = ...) -> Any:
        """Send one CALL and return its answer."""


class Forgetful(Protocol):
    """A status tracker: it forgets what was reported at a reconnect (everything is reported again)."""

    def forget(self) -> None:
        """Nothing told yet."""


CP = TypeVar("CP", bound=Peer)
TF = TypeVar("TF", bound=DurableTransactionFlow[Any])
ST = TypeVar("ST", bound=Forgetful)


class StationSession(Generic[CP, TF, ST]):
    """A station in front of the controller's port, speaking to its CSMS over connections that come and go."""

    call_error: ClassVar[type[Exception]] = Exception  # the layer's CALLERROR exception (its wire module's)
    cp_during_boot: ClassVar[bool] = False  # the charge point is the current one while booting (else once Accepted)
    queue_prevalidated: ClassVar[bool] = False  # queued messages were validated against the schema when written
    reservation_use: ClassVar[ReservationUse] = ReservationUse.AT_AUTHORIZATION  # when a token's reservation ends

    def __init__(self, charger: Charger, config: OcppConfig, variables: VariableStore, clock: StationClock | None,
                 subprotocol: str, *, peer: Callable[[Any, ClientConnection, float], CP],
                 transactions: Callable[[StationClock], TF], statuses: ST) -> None:
        """Speak for ``charger`` to the CSMS of ``config`` with ``subprotocol``; ``variables`` are the stored
        variables (password, ping interval, message timeout). The layer's own parts: ``peer(station, websocket,
        timeout_s)`` its charge point on a new connection, ``transactions(clock)`` its transaction flow (its sender
        delivers while connected and accepted), ``statuses`` its status tracker."""
        self.charger = charger
        self.config = config
        self.station_id = config.station_id
        self.variables = variables
        self.clock = clock or StationClock()
        self.outbox = Outbox()
        self.transactions = transactions(self.clock)
        self._tracker = statuses
        self._peer = peer
        self.accepted = False
        self._cp: CP | None = None
        self._status_pending = False
        self._unsubscribe: Callable[[], None] | None = None
        self._task: asyncio.Task[None] | None = None
        self.connection = CsmsConnection(
            config.endpoint, subprotocol, station_id=config.station_id, password=self._password,
            ca_file=config.ca_file, backoff=Backoff(config.reconnect_min_s, config.reconnect_max_s),
            ping_interval_s=self._ping_interval,
        )

    # ------------------------------------------------------------ what the layer brings

    def boot_request(self) -> Any:
        """The layer's BootNotification."""
        raise NotImplementedError

    def boot_answer(self, answer: Any) -> bool:
        """Take a BootNotification's answer; True if Accepted."""
        raise NotImplementedError

    async def _heartbeats(self) -> None:
        """The layer's heartbeat loop."""
        raise NotImplementedError

    def _update_statuses(self) -> None:
        """Report the statuses that changed (all of them after a reconnect)."""
        raise NotImplementedError

    # ------------------------------------------------------------ lifecycle

    def _connect(self, unsubscribe: Callable[[], None], authority: TokenAuthority) -> None:
        """Following the controller's events (``unsubscribe`` ends it), become the token authority and connect in
        the background."""
        self._unsubscribe = unsubscribe
        self.charger.set_token_authority(authority, self.reservation_use)
        self._task = asyncio.ensure_future(self.connection.run(self._session))

    async def _stop_connection(self) -> None:
        """Stop asking the CSMS about tokens, stop following the controller's events and close the connection."""
        self.charger.set_token_authority(None)
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    @property
    def online(self) -> bool:
        """Connected and accepted by the CSMS: messages may be sent."""
        return self.connection.online.is_set() and self.accepted and self._cp is not None

    def _password(self) -> str | None:
        """The Basic auth password: SecurityCtrlr.BasicAuthPassword (1.6: AuthorizationKey) once the CSMS set one,
        else the configured one."""
        if self.config.security_profile == 0:
            return None
        stored = self.variables.str_value("SecurityCtrlr", "BasicAuthPassword")
        return stored or self.config.password

    def _ping_interval(self) -> float | None:
        """WebSocket ping interval from OCPPCommCtrlr.WebSocketPingInterval (0: no pings)."""
        seconds = self.variables.int_value("OCPPCommCtrlr", "WebSocketPingInterval")
        return float(seconds) if seconds > 0 else None

    # ------------------------------------------------------------ one connection

    async def _session(self, websocket: ClientConnection) -> None:
        """Boot if not yet accepted, report every connector, then send, beat and answer until it closes."""
        timeout = float(self.variables.int_value("OCPPCommCtrlr", "MessageTimeout", variable_instance="Default"))
        cp = self._peer(self, websocket, timeout)
        reader = asyncio.ensure_future(cp.start())
        tasks: list[asyncio.Task[Any]] = []
        try:
            if self.cp_during_boot:
                self._cp = cp
            if not self.accepted:
                await self._boot(cp, reader)
            self._cp = cp
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
        except self.call_error as exc:
            raise CallFailed(f"CALLERROR {type(exc).__name__}: {exc}") from None
        except TimeoutError:
            raise CallFailed("no answer in time") from None

    async def _call_with_id(self, payload: Any, unique_id: str) -> Any:
        """A queued message on the current connection, with its stable unique id, after any answer being sent."""
        await self.outbox.unheld()
        cp = self._cp
        if cp is None or not self.accepted:
            raise ConnectionClosed(None, None)
        if self.queue_prevalidated:
            # validated once already, against the OCA schema, when it was written to the queue (off the loop)
            return await cp.call(payload, suppress=False, unique_id=unique_id, skip_schema_validation=True)
        return await cp.call(payload, suppress=False, unique_id=unique_id)

    async def _boot(self, cp: CP, reader: asyncio.Task[None]) -> None:
        """BootNotification until Accepted, waiting the CSMS's interval after Pending or Rejected."""
        while True:
            try:
                answer = await cp.call(self.boot_request(), suppress=False)
            except (self.call_error, TimeoutError) as exc:
                log.warning("BootNotification failed (%s); retrying in %d s", type(exc).__name__,
                            BOOT_RETRY_DEFAULT_S)
                await wait_or_closed(reader, BOOT_RETRY_DEFAULT_S)
                continue
            if self.boot_answer(answer):
                return
            wait = int(answer.interval) if int(answer.interval) > 0 else BOOT_RETRY_DEFAULT_S
            log.warning("BootNotification %s by the CSMS; retrying in %d s", answer.status, wait)
            await wait_or_closed(reader, wait)

    def learn_time(self, text: str) -> None:
        """Keep the CSMS's time as the clock offset (only used while the system clock is unsynchronized)."""
        try:
            self.clock.learn(parse_rfc3339("currentTime", text))
        except FormatError as exc:
            log.warning("the CSMS sent a time we cannot read: %s", exc)

    # ------------------------------------------------------------ tokens and statuses

    def _token_outcome(self, event: dict[str, Any]) -> None:
        """What a presented token led to, for the transaction it starts or stops."""
        evse_id, verdict = event.get("evse_id"), event.get("verdict")
        if not isinstance(evse_id, int):
            return
        if verdict == TokenVerdict.RESERVATION_USED and isinstance(event.get("reservation_id"), int):
            self.transactions.tracker.reservation_used(evse_id, event["reservation_id"])
        elif verdict == TokenVerdict.STOPPED:
            self.transactions.tracker.stopping(evse_id, Trigger.STOP_AUTHORIZED, StopReason.LOCAL)

    def status_soon(self) -> None:
        """Look at the statuses once the current burst of events is over."""
        if self._status_pending:
            return
        self._status_pending = True
        asyncio.get_running_loop().call_soon(self._update_statuses)


async def wait_or_closed(reader: asyncio.Task[None], seconds: float) -> None:
    """Sleep ``seconds``, but end at once (raising ConnectionClosed) when the connection's reader ends."""
    done, _ = await asyncio.wait({reader}, timeout=seconds)
    if done:
        reader.result()  # raises what ended it
        raise ConnectionClosed(None, None)


def firmware_version() -> str:
    """The installed charger-controller version (the station's firmware), at most 50 characters."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("charger-controller")[:FIRMWARE_MAX]
    except PackageNotFoundError:
        return "unknown"
