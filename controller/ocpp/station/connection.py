"""The WebSocket to the CSMS (OCPP-J): connect, hold, and reconnect with randomized exponential back-off.

Version-neutral: the protocol layer gives the subprotocol and a ``session`` coroutine that runs for as long as
one connection lives. Security profile 1 and 2 send HTTP Basic auth (user = station id); profile 2 verifies the
CSMS's certificate against the configured CA file (or the system's CAs). The password is read through a
callable each time, so a new one set by the CSMS (SecurityCtrlr.BasicAuthPassword) is used on the next
connection; it is never logged.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake, InvalidStatus, InvalidURI

log = logging.getLogger("controller.ocpp")


class _NoDebug(logging.Filter):
    """websockets logs the handshake's headers (``Authorization: Basic ...``) and the start and end of every frame
    (a password being set) at DEBUG: those never reach a log. The frames are logged by the protocol layer's wire
    logger, with secrets hidden (controller.ocpp.wire)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep INFO and above."""
        return record.levelno > logging.DEBUG


_websocket_log = logging.getLogger("controller.ocpp.websocket")
_websocket_log.addFilter(_NoDebug())

OPEN_TIMEOUT_S = 10.0
CLOSE_TIMEOUT_S = 2.0
MAX_MESSAGE_BYTES = 1 << 20  # OCPP messages are small; a peer sending more is closed, not buffered


class Backoff:
    """Randomized exponential back-off (OCPP 2.0.1 B10/RetryBackOff*): base doubling up to a maximum, jittered."""

    def __init__(self, minimum_s: float, maximum_s: float, *, jitter_s: float | None = None,
                 rng: random.Random | None = None) -> None:
        """First wait about ``minimum_s``, doubling, never more than ``maximum_s``; jitter up to ``jitter_s``."""
        self.minimum_s = minimum_s
        self.maximum_s = maximum_s
        self.jitter_s = minimum_s if jitter_s is None else jitter_s
        self._rng = rng or random.Random()
        self._attempt = 0

    def reset(self) -> None:
        """A connection held: the next failure starts from the minimum again."""
        self._attempt = 0

    def next_wait(self) -> float:
        """The wait before the next attempt (and count this attempt)."""
        base = min(self.maximum_s, self.minimum_s * float(1 << min(self._attempt, 30)))
        self._attempt += 1
        return min(self.maximum_s, base + self._rng.uniform(0, self.jitter_s))


def basic_auth_header(station_id: str, password: str) -> str:
    """The ``Authorization`` header value of HTTP Basic auth for OCPP security profiles 1 and 2."""
    return "Basic " + base64.b64encode(f"{station_id}:{password}".encode()).decode("ascii")


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """A client TLS context that verifies the CSMS's certificate and host name (profile 2), TLS 1.2 or newer."""
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class CsmsConnection:
    """Keeps one WebSocket to the CSMS open while the station runs, and runs ``session`` on each connection."""

    def __init__(
        self,
        endpoint: str,
        subprotocol: str,
        *,
        station_id: str,
        password: Callable[[], str | None],
        ca_file: Path | None,
        backoff: Backoff,
        ping_interval_s: Callable[[], float | None],
    ) -> None:
        """``endpoint`` is the full URL (station id as the last segment); ``password`` is read at each attempt."""
        self.endpoint = endpoint
        self.subprotocol = subprotocol
        self.station_id = station_id
        self._password = password
        self._ssl = tls_context(ca_file) if endpoint.startswith("wss://") else None
        self.backoff = backoff
        self._ping_interval_s = ping_interval_s
        self.online = asyncio.Event()
        self.connections = 0  # connections made so far (tests, status)
        self._failures_logged = 0

    async def run(self, session: Callable[[ClientConnection], Awaitable[None]]) -> None:
        """Connect, run ``session`` until the connection ends, wait, and again, until cancelled."""
        while True:
            websocket = await self._connect()
            if websocket is None:
                await asyncio.sleep(self.backoff.next_wait())
                continue
            self.connections += 1
            self._failures_logged = 0
            self.online.set()
            log.info("connected to the CSMS at %s (%s)", self.endpoint, self.subprotocol)
            try:
                await session(websocket)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("OCPP session failed; reconnecting")
            finally:
                self.online.clear()
                await websocket.close()
            log.warning("connection to the CSMS lost (%s); reconnecting", _close_reason(websocket))
            await asyncio.sleep(self.backoff.next_wait())

    async def _connect(self) -> ClientConnection | None:
        """One connection attempt; None (logged, throttled) when it fails."""
        headers = {}
        password = self._password()
        if password is not None:
            headers["Authorization"] = basic_auth_header(self.station_id, password)
        ping = self._ping_interval_s()
        try:
            websocket = await connect(
                self.endpoint, subprotocols=[self.subprotocol], additional_headers=headers, ssl=self._ssl,  # type: ignore[list-item]
                open_timeout=OPEN_TIMEOUT_S, close_timeout=CLOSE_TIMEOUT_S, ping_interval=ping,
                ping_timeout=ping, max_size=MAX_MESSAGE_BYTES, proxy=None, logger=_websocket_log,
            )
        except asyncio.CancelledError:
            raise
        except InvalidStatus as exc:
            status = exc.response.status_code
            why = "the CSMS refused our credentials" if status in (401, 403) else "the CSMS refused the connection"
            self._log_failure(f"{why} (HTTP {status})")
            return None
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError, ssl.SSLError) as exc:
            self._log_failure(f"{type(exc).__name__}: {exc}")
            return None
        if websocket.subprotocol != self.subprotocol:
            self._log_failure(f"the CSMS did not accept subprotocol {self.subprotocol} "
                              f"(answered {websocket.subprotocol or 'none'})")
            await websocket.close()
            return None
        return websocket

    def _log_failure(self, why: str) -> None:
        """A failed attempt: logged at WARNING for the first few, then every 10th (a CSMS down for hours)."""
        self._failures_logged += 1
        count = self._failures_logged
        if count <= 3 or count % 10 == 0:
            log.warning("cannot connect to the CSMS at %s: %s (attempt %d)", self.endpoint, why, count)


def _close_reason(websocket: ClientConnection) -> str:
    """Why a connection closed, in a few words."""
    code = websocket.close_code
    if code is None:
        return "dropped"
    reason = websocket.close_reason
    return f"code {code}{': ' + reason if reason else ''}"
