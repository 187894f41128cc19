"""The real runtime of the embedded simulated charger, served over real HTTP from a background thread.

Synchronous HTTP clients (schemathesis uses requests) need a server whose loop keeps running while
the test thread blocks, so the controller gets its own thread and asyncio loop, built exactly as
``controller.daemon.run_daemon`` builds it. Every log record carrying a traceback is kept, so a test
can assert the process never hit an unexpected exception even when the API still answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

import controller.api.app
import controller.config.loader
import controller.runtime.build
from controller.api.server import ApiServer

START_TIMEOUT_S = 30.0


def scale_factor() -> int:
    """``CHARGER_TEST_SCALE`` (integer >= 1, default 1): nightly runs multiply the fuzzing budget by it."""
    text = os.environ.get("CHARGER_TEST_SCALE", "1").strip() or "1"
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"CHARGER_TEST_SCALE must be an integer >= 1, got {text!r}") from None
    if value < 1:
        raise ValueError(f"CHARGER_TEST_SCALE must be an integer >= 1, got {value}")
    return value


def publish_summary(name: str, summary: dict[str, Any]) -> str:
    """Print ``summary`` as one JSON line and, if ``CHARGER_RELIABILITY_OUT`` names a directory, write it there."""
    line = json.dumps(summary, sort_keys=True)
    print(line)
    out = os.environ.get("CHARGER_RELIABILITY_OUT")
    if out:
        directory = Path(out)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(line + "\n", encoding="utf-8")
    return line


class TracebackRecorder(logging.Handler):
    """Keeps every log record that carries exception info (a traceback), from any logger."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or record.exc_text or record.stack_info:
            self.records.append(record)

    def describe(self) -> list[str]:
        """Each kept record as "logger: message (exception)"."""
        out = []
        for record in self.records:
            exc = record.exc_info[1] if record.exc_info else None
            out.append(f"{record.name}: {record.getMessage()} ({exc!r})")
        return out


class CountingSession(requests.Session):
    """A requests session that counts what it sent and the answers' status codes.

    Every request asks for ``Connection: close``: on a kept-alive connection each answer of the API
    currently waits about 40 ms for a delayed ACK (its accepted sockets keep Nagle's algorithm on),
    which would make thousands of requests take minutes.
    """

    def __init__(self) -> None:
        super().__init__()
        self.headers["Connection"] = "close"
        self.sent = 0
        self.statuses: Counter[int] = Counter()
        self.operations: Counter[str] = Counter()

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        """Send one request; the count includes requests that fail at the transport level."""
        self.sent += 1
        response = super().send(request, **kwargs)
        self.statuses[response.status_code] += 1
        return response

    def summary(self) -> dict[str, int]:
        """Requests sent, operations exercised and answers by class."""
        by_class = Counter(f"{code // 100}xx" for code in self.statuses.elements())
        return {
            "requests": self.sent,
            "operations": len(self.operations),
            "2xx": by_class["2xx"],
            "4xx": by_class["4xx"],
            "5xx": by_class["5xx"],
        }


@dataclass
class LiveApi:
    """The simulated charger's real runtime and API, served on 127.0.0.1 from a daemon thread."""

    state_dir: Path
    url: str = ""
    tracebacks: TracebackRecorder = field(default_factory=TracebackRecorder)
    _loop: asyncio.AbstractEventLoop | None = None
    _stop: asyncio.Event | None = None
    _thread: threading.Thread | None = None
    _ready: threading.Event = field(default_factory=threading.Event)
    _error: BaseException | None = None

    def start(self) -> LiveApi:
        """Build, start and serve; returns once the API accepts connections (raises what went wrong)."""
        logging.getLogger().addHandler(self.tracebacks)
        self._thread = threading.Thread(target=self._run, name="live-api", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S) or self._error is not None:
            error = self._error
            self.stop_quietly()
            raise RuntimeError(f"the simulated charger did not start (within {START_TIMEOUT_S} s)") from error
        return self

    def stop_quietly(self) -> None:
        """Stop after a failed start, without raising again."""
        with contextlib.suppress(RuntimeError):
            self.stop()

    def stop(self) -> None:
        """Stop serving, stop the runtime (contactors open first) and join the thread."""
        try:
            if self._loop is not None and self._stop is not None and not self._loop.is_closed():
                self._loop.call_soon_threadsafe(self._stop.set)
            if self._thread is not None:
                self._thread.join(START_TIMEOUT_S)
                if self._thread.is_alive():
                    raise RuntimeError("the simulated charger did not stop")
        finally:
            logging.getLogger().removeHandler(self.tracebacks)
        if self._error is not None:
            raise RuntimeError("the simulated charger failed while running") from self._error

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to the test thread
            self._error = exc
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        config = controller.config.loader.load_sim_default()
        built = await controller.runtime.build.build(config, state_dir=self.state_dir)
        try:
            await built.start()
            app = controller.api.app.create_app(built.runtime)
            server = ApiServer(app, "127.0.0.1", 0)
            self.url = server.url
            serving = await server.start(stop=self._stop)
            self._ready.set()
            await serving
        finally:
            await built.stop()
