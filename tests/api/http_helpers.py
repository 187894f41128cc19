"""A real HTTP client for the API tests (http.client, run in a worker thread) and a raw SSE reader."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
from dataclasses import dataclass, field
from typing import Any

_NO_BODY = object()


@dataclass
class Reply:
    """One HTTP answer: status, headers (lower-case names) and the body, parsed when JSON."""

    status: int
    headers: dict[str, str]
    text: str
    json: Any = None

    def error_body(self) -> dict[str, Any]:
        """The API's error shape, checked."""
        assert isinstance(self.json, dict), self.text
        assert set(self.json) == {"error", "field"}, self.json
        assert isinstance(self.json["error"], str) and self.json["error"]
        return self.json


def call_sync(
    port: int,
    method: str,
    path: str,
    body: Any = _NO_BODY,
    *,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """One request over a fresh connection; ``body`` is sent as JSON, ``raw`` as is.

    A POST gets ``Content-Type: application/json`` unless it sends ``raw`` bytes or names its own.
    """
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        sent = dict(headers or {})
        data: bytes | None = raw
        if body is not _NO_BODY:
            data = json.dumps(body).encode()
            sent.setdefault("Content-Type", "application/json")
        elif method == "POST" and raw is None:  # the API refuses any POST without it (415), body or not
            sent.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=data, headers=sent)
        response = conn.getresponse()
        text = response.read().decode()
        reply = Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, text)
        if reply.headers.get("content-type", "").startswith("application/json"):
            reply.json = json.loads(text)
        return reply
    finally:
        conn.close()


@dataclass
class Api:
    """A served app: its port and the charger behind it."""

    port: int
    charger: Any
    token: str | None = None
    url: str = field(init=False)

    def __post_init__(self) -> None:
        self.url = f"http://127.0.0.1:{self.port}"

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def call(self, method: str, path: str, body: Any = _NO_BODY, **kw: Any) -> Reply:
        """A request from a worker thread, so the server keeps running in this loop."""
        headers = {**self.auth(), **kw.pop("headers", {})}
        return await asyncio.to_thread(call_sync, self.port, method, path, body, headers=headers, **kw)


class SseReader:
    """A raw HTTP/1.1 ``GET /events`` on an asyncio connection, read frame by frame."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.status = 0
        self._pending = ""

    @classmethod
    async def open(cls, port: int, headers: dict[str, str] | None = None, path: str = "/events") -> SseReader:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Accept: text/event-stream"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        sse = cls(reader, writer)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        sse.status = int(head.split(b" ", 2)[1])
        assert sse.status != 200 or b"transfer-encoding: chunked" in head.lower()
        return sse

    async def frame(self, timeout: float = 5) -> str:
        """The next SSE frame (event or comment), without the chunked framing."""
        return await asyncio.wait_for(self._frame(), timeout)

    async def _frame(self) -> str:
        """One frame: a chunk may carry several (a burst is sent at once), or a frame span chunks."""
        while "\n\n" not in self._pending:
            size_line = await self.reader.readuntil(b"\r\n")
            size = int(size_line.strip(), 16)
            if size == 0:
                raise EOFError("stream ended")
            self._pending += (await self.reader.readexactly(size + 2))[:-2].decode()
        frame, self._pending = self._pending.split("\n\n", 1)
        return frame + "\n\n"

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


def parse_frame(frame: str) -> tuple[str, dict[str, Any]]:
    """``id: n`` / ``event: x`` / ``data: {...}`` -> (x, document without its ``seq``, checked equal to the id)."""
    fields = dict(line.split(": ", 1) for line in frame.strip().split("\n"))
    doc = json.loads(fields["data"])
    seq = doc.pop("seq", None)
    if fields["event"] == "overflow":  # a note of the stream itself, not a controller event
        assert seq is None and "id" not in fields, frame
    else:
        assert seq is not None and fields.get("id") == str(seq), frame
    return fields["event"], doc


def frame_seq(frame: str) -> int:
    """The ``id`` (event seq) of an SSE frame."""
    fields = dict(line.split(": ", 1) for line in frame.strip().split("\n"))
    return int(fields["id"])
