"""The harness's side of the DUT's HTTP API: JSON requests and the server-sent event stream.

A small asyncio HTTP/1.1 client (one connection per request, ``Connection: close``), so the
sim bench, whose DUT serves its API in the same loop, needs no threads, and the real bench no
extra dependency. Tokens in marker texts are shortened; the DUT redacts its own logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_S = 10.0


class DutUnreachable(ConnectionError):
    """The DUT's API did not answer (down, restarting, wrong address)."""


class DutRefused(RuntimeError):
    """The DUT's API answered with an HTTP error."""

    def __init__(self, status: int, body: object) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


@dataclass
class DutApi:
    """JSON over HTTP to the DUT at ``base_url`` (``http://host:port``), with an optional bearer token."""

    base_url: str
    access_token: str | None = None

    @property
    def _address(self) -> tuple[str, int]:
        parts = urlsplit(self.base_url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"the DUT API must be http://host:port, got {self.base_url!r}")
        return parts.hostname, parts.port or 80

    async def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One request; returns the decoded JSON body. DutUnreachable / DutRefused on failure."""
        host, port = self._address
        payload = b"" if body is None else json.dumps(body).encode()
        head = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close", "Accept: application/json"]
        if body is not None or method == "POST":  # the API refuses a POST without it (415), body or not
            head += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
        if self.access_token:
            head.append(f"Authorization: Bearer {self.access_token}")
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), REQUEST_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            raise DutUnreachable(f"DUT API {self.base_url} does not answer: {exc}") from exc
        try:
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
            await writer.drain()
            status, headers = await asyncio.wait_for(_read_head(reader), REQUEST_TIMEOUT_S)
            raw = await asyncio.wait_for(_read_body(reader, headers), REQUEST_TIMEOUT_S)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
            raise DutUnreachable(f"DUT API {self.base_url}: {method} {path} failed: {exc!r}") from exc
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        doc = json.loads(raw) if raw else None
        if status >= 400:
            raise DutRefused(status, doc)
        return doc

    # ------------------------------------------------------------ the calls scenarios use

    async def reserve(self, reservation: dict[str, Any]) -> str:
        """POST /reservations; the ReservationResult (Accepted, Occupied, ...)."""
        return str((await self.request("POST", "/reservations", reservation))["result"])

    async def cancel(self, reservation_id: int) -> bool:
        """DELETE /reservations/{id}; whether a live reservation was cancelled."""
        return bool((await self.request("DELETE", f"/reservations/{reservation_id}"))["cancelled"])

    async def present_token(self, evse_id: int, id_token: str) -> dict[str, Any]:
        """POST /evses/{id}/token; the TokenOutcome document."""
        doc: dict[str, Any] = await self.request("POST", f"/evses/{evse_id}/token", {"id_token": id_token})
        return doc

    async def set_limit(self, evse_id: int, amps: float | None) -> dict[str, Any]:
        """POST /evses/{id}/limit: the EVSE's local current limit (0 pauses, None removes it); the DUT's answer."""
        doc: dict[str, Any] = await self.request("POST", f"/evses/{evse_id}/limit", {"amps": amps})
        return doc

    async def status(self) -> dict[str, Any]:
        """GET /status."""
        doc: dict[str, Any] = await self.request("GET", "/status")
        return doc

    async def reservations(self) -> list[dict[str, Any]]:
        """GET /reservations."""
        return list((await self.request("GET", "/reservations"))["reservations"])

    async def wait_ready(self, timeout_s: float) -> None:
        """Poll /status until the DUT answers, at most ``timeout_s``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            try:
                await self.status()
                return
            except DutUnreachable:
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.1)

    # ------------------------------------------------------------ events

    def follow_events(self, on_event: Callable[[dict[str, Any]], None]) -> EventFollower:
        """Start reading GET /events; ``on_event(doc)`` gets each event document in the loop."""
        follower = EventFollower(self, on_event)
        follower.start()
        return follower


class EventFollower:
    """Reads the DUT's server-sent events until stopped; reconnects while the DUT restarts."""

    def __init__(self, api: DutApi, on_event: Callable[[dict[str, Any]], None]) -> None:
        self._api = api
        self._on_event = on_event
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            try:
                await self._stream()
            except (OSError, asyncio.IncompleteReadError, ValueError, DutUnreachable) as exc:
                log.debug("event stream ended: %r", exc)
            self.connected.clear()
            await asyncio.sleep(0.1)

    async def _stream(self) -> None:
        host, port = self._api._address
        reader, writer = await asyncio.open_connection(host, port)
        try:
            head = ["GET /events HTTP/1.1", f"Host: {host}:{port}", "Accept: text/event-stream"]
            if self._api.access_token:
                head.append(f"Authorization: Bearer {self._api.access_token}")
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
            await writer.drain()
            status, headers = await _read_head(reader)
            if status != 200:
                raise ValueError(f"GET /events answered {status}")
            chunked = headers.get("transfer-encoding", "").lower() == "chunked"
            buffer = b""
            while True:
                data = await _read_chunk(reader) if chunked else await reader.read(4096)
                if not data:
                    return
                buffer += data
                while b"\n\n" in buffer:
                    frame, buffer = buffer.split(b"\n\n", 1)
                    self._frame(frame.decode("utf-8", "replace"))
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    def _frame(self, frame: str) -> None:
        if frame.startswith(": connected"):
            self.connected.set()
        data = [line[5:].strip() for line in frame.splitlines() if line.startswith("data:")]
        if not data:
            return
        try:
            doc = json.loads("\n".join(data))
        except ValueError:
            return
        if isinstance(doc, dict):
            self._on_event(doc)


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    raw = await reader.readuntil(b"\r\n\r\n")
    lines = raw.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise ValueError(f"not an HTTP response: {lines[0]!r}")
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while chunk := await _read_chunk(reader):
            body += chunk
        return body
    if "content-length" in headers:
        return await reader.readexactly(int(headers["content-length"]))
    return await reader.read()


async def _read_chunk(reader: asyncio.StreamReader) -> bytes:
    size_line = await reader.readuntil(b"\r\n")
    size = int(size_line.split(b";")[0].strip() or b"0", 16)
    if size == 0:
        await reader.readuntil(b"\r\n")
        return b""
    data = await reader.readexactly(size)
    await reader.readexactly(2)
    return data
