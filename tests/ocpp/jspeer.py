"""The independent CSMS peer: tests/ocpp/js/csms.js (npm ``ocpp-rpc`` in strict mode) driven from Python.

``JsCsms`` starts ``node csms.js PORT`` as a subprocess and talks to it with one JSON object per line (see the
header of csms.js). Its API mirrors ``Csms`` (tests/ocpp/csms.py): ``wait_connected``, ``expect``, ``received``,
``call``, ``call_raw``, ``disconnect``, ``set_boot_status``, ``authorize``, ``assert_valid``, ``stop``/``start`` on
the same port (1.6 transactionIds go on counting across a restart). What differs: validation is ocpp-rpc's (its own
copies of the schemas, ajv), plus a date-time that must carry a UTC offset; an invalid station CALL never reaches
``expect`` (ocpp-rpc answers it with a CALLERROR and reports a ``validation_error``); and ocpp-rpc refuses to send
an invalid CSMS CALL at all (``call_raw`` then returns its error without anything on the wire).

Needs Node 18+ and ``npm ci --prefix tests/ocpp/js``; the ``js_csms`` fixture skips, and says so, without them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .csms import DEFAULT_TIMEOUT, CallErrorReceived, CallOutcome, station_url

JS_DIR = Path(__file__).resolve().parent / "js"
SCRIPT = JS_DIR / "csms.js"
MIN_NODE_MAJOR = 18


def js_peer_unavailable() -> str | None:
    """Why the JS peer cannot run here (for pytest.skip), or None when it can."""
    node = shutil.which("node")
    if node is None:
        return "node is not installed (the OCPP JS peer needs Node 18+; .ci/run installs it with apt)"
    try:
        version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError) as error:
        return f"node --version failed: {error}"
    match = re.match(r"v(\d+)\.", version)
    if match is None or int(match.group(1)) < MIN_NODE_MAJOR:
        return f"node {version or '?'} is too old: the OCPP JS peer (ocpp-rpc) needs Node {MIN_NODE_MAJOR}+"
    if not (JS_DIR / "node_modules" / "ocpp-rpc").is_dir():
        return "tests/ocpp/js/node_modules is missing: run `npm ci --prefix tests/ocpp/js`"
    return None


class JsCsms:
    """The ocpp-rpc strict CSMS as a subprocess. Use as ``async with JsCsms() as peer:``.

    Records: ``events`` (every JSON line, in order), ``calls`` (the valid CALLs stations sent: dicts with
    identity, protocol, messageId, action, params, response, error, and ``consumed``), ``validation_errors`` (ocpp-rpc's
    strictValidationFailure events: ``outbound`` false = the station's frame broke the schema), ``rejections``
    (refused handshakes: status 400/401/404), ``connections`` (connected events).
    """

    def __init__(self, *, port: int = 0, password: str | None = None, node: str = "node") -> None:
        """Configure; nothing runs before ``start()`` (or ``async with``)."""
        self.port = port
        self.password = password
        self.node = node
        self.events: list[dict[str, Any]] = []
        self.calls: list[dict[str, Any]] = []
        self.validation_errors: list[dict[str, Any]] = []
        self.rejections: list[dict[str, Any]] = []
        self.connections: list[dict[str, Any]] = []
        self.strict_datetime: bool | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._stderr_task: asyncio.Task[None] | None = None
        self._stderr: list[str] = []
        self._ids = itertools.count(1)
        self._replies: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._live: dict[str, dict[str, Any]] = {}  # identity -> connected event
        self._changed = asyncio.Event()

    # -- lifecycle

    async def start(self, timeout: float = 20.0) -> JsCsms:
        """Start node and wait for it to listen (on a free port the first time, on the same port after ``stop()``)."""
        if self._process is not None:
            return self
        args = [str(SCRIPT), str(self.port), "--next-transaction-id", str(self.next_transaction_id())]
        if self.password is not None:
            args += ["--password", self.password]
        self._process = await asyncio.create_subprocess_exec(
            self.node,
            *args,
            cwd=JS_DIR,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=2**24,
        )
        first = len(self.events)
        self._reader = asyncio.create_task(self._read(self._process))
        self._stderr_task = asyncio.create_task(self._read_stderr(self._process))
        listening = await self._wait_for(
            lambda: next((e for e in self.events[first:] if e.get("event") in ("listening", "fatal")), None),
            timeout,
            lambda: "the JS peer did not start listening",
        )
        if listening["event"] == "fatal":
            raise RuntimeError(f"the JS peer failed: {listening['message']}\n{self.stderr}")
        self.port = listening["port"]
        self.strict_datetime = listening.get("strictDatetime")
        return self

    def next_transaction_id(self) -> int:
        """The 1.6 transactionId the next StartTransaction gets: one more than any given so far (a restarted peer
        goes on counting, as a CSMS with a database does), 1 at first."""
        given = [call["response"]["transactionId"] for call in self.calls
                 if call["action"] == "StartTransaction" and isinstance(call.get("response"), dict)
                 and isinstance(call["response"].get("transactionId"), int)]
        return max(given, default=0) + 1

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop node (it closes every station connection) and wait for it to exit; kill it if it does not."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None and not process.stdin.is_closing():
            with contextlib.suppress(OSError, RuntimeError):
                process.stdin.write(b'{"cmd":"stop"}\n')
                process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), timeout)
        except TimeoutError:
            process.kill()
            await process.wait()
        for task in (self._reader, self._stderr_task):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for future in self._replies.values():
            if not future.done():
                future.set_exception(ConnectionError("the JS peer stopped"))
        self._replies.clear()
        for identity in list(self._live):
            self._record({"event": "disconnected", "identity": identity, "code": None, "reason": "peer stopped"})

    async def __aenter__(self) -> JsCsms:
        """Start."""
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        """Stop."""
        await self.stop()

    @property
    def running(self) -> bool:
        """True while the node process runs."""
        return self._process is not None and self._process.returncode is None

    @property
    def url(self) -> str:
        """The CSMS URL to give the station (``--ocpp-url``)."""
        return f"ws://127.0.0.1:{self.port}/ocpp"

    def station_url(self, station_id: str) -> str:
        """The URL the station with this id connects to."""
        return station_url(self.url, station_id)

    @property
    def stderr(self) -> str:
        """What node wrote to stderr."""
        return "".join(self._stderr)

    # -- configuration (each acknowledged by the peer before returning)

    async def set_boot_status(self, status: str, interval: int | None = None) -> None:
        """Answer the next BootNotifications with this status (and interval)."""
        command: dict[str, Any] = {"cmd": "boot_status", "status": status}
        if interval is not None:
            command["interval"] = interval
        await self._command(command)

    async def authorize(self, id_token: str, status: str = "Accepted", group_id_token: str | None = None) -> None:
        """Answer Authorize (and the idTokenInfo/idTagInfo of transactions) for this token so (1.6: group = parent)."""
        command: dict[str, Any] = {"cmd": "authorize", "idToken": id_token, "status": status}
        if group_id_token is not None:
            command["groupIdToken"] = group_id_token
        await self._command(command)

    async def respond(
        self, action: str, result: dict[str, Any] | None = None, error: tuple[str, str] | None = None
    ) -> None:
        """Answer ``action`` with this result, or this CALLERROR (code, message); neither: back to the default."""
        command: dict[str, Any] = {"cmd": "respond", "action": action}
        if result is not None:
            command["result"] = result
        if error is not None:
            command["error"] = {"code": error[0], "message": error[1]}
        await self._command(command)

    # -- waiting and reading

    async def wait_connected(
        self, timeout: float = DEFAULT_TIMEOUT, *, station_id: str | None = None, count: int | None = None
    ) -> dict[str, Any]:
        """Wait until a station (this one) is connected; return its connected event ({identity, protocol}).

        ``count``: also wait until that many connections (of that station) have been made in all.
        """

        def check() -> dict[str, Any] | None:
            made = [c for c in self.connections if station_id is None or c["identity"] == station_id]
            if count is not None and len(made) < count:
                return None
            live = [c for c in self._live.values() if station_id is None or c["identity"] == station_id]
            return live[-1] if live else None

        return await self._wait_for(check, timeout, lambda: f"no station connected to the JS peer: {self.events}")

    async def wait_disconnected(self, timeout: float = DEFAULT_TIMEOUT, *, station_id: str | None = None) -> None:
        """Wait until no connection (of this station) is open."""
        await self._wait_for(
            lambda: None if any(station_id in (None, i) for i in self._live) else True,
            timeout,
            lambda: f"still connected to the JS peer: {list(self._live)}",
        )

    def received(self, action: str | None = None, *, station_id: str | None = None) -> list[dict[str, Any]]:
        """The params of every valid CALL the station sent (of this action), in arrival order."""
        return [call["params"] for call in self._matching(action, station_id)]

    async def expect(
        self,
        action: str,
        predicate: Callable[[dict[str, Any]], bool] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        *,
        station_id: str | None = None,
    ) -> dict[str, Any]:
        """Return the params of the next not-yet-consumed valid CALL ``action`` matching ``predicate``; consume it.

        Same semantics as ``Csms.expect``. A station CALL of this action that failed strict validation makes it
        fail at once with ocpp-rpc's message.
        """

        def check() -> dict[str, Any] | None:
            for failure in self.validation_errors:
                station_call = not failure["outbound"] and failure["isCall"] and failure["action"] == action
                if station_call and station_id in (None, failure["identity"]) and not failure.get("consumed"):
                    failure["consumed"] = True
                    raise AssertionError(f"the JS peer rejected the station's {action}: {failure}")
            for call in self._matching(action, station_id):
                if call.get("consumed") or not _matches(predicate, call["params"]):
                    continue
                call["consumed"] = True
                return call["params"]
            return None

        def describe() -> str:
            seen = [(c["params"], "consumed" if c.get("consumed") else "") for c in self._matching(action, station_id)]
            return f"no {action} matching the predicate within {timeout} s at the JS peer; received: {seen}"

        return await self._wait_for(check, timeout, describe)

    async def expect_validation_error(
        self, action: str | None = None, timeout: float = DEFAULT_TIMEOUT, *, outbound: bool = False
    ) -> dict[str, Any]:
        """Wait for a strict-validation failure (of the station's frames by default) and return it (consumed)."""

        def check() -> dict[str, Any] | None:
            for failure in self.validation_errors:
                if failure["outbound"] == outbound and action in (None, failure["action"]) and not failure.get("taken"):
                    failure["taken"] = True
                    return failure
            return None

        return await self._wait_for(check, timeout, lambda: f"no validation error: {self.validation_errors}")

    def _matching(self, action: str | None, station_id: str | None) -> list[dict[str, Any]]:
        """The recorded valid CALLs of this action and station."""
        return [
            call for call in self.calls if action in (None, call["action"]) and station_id in (None, call["identity"])
        ]

    # -- acting

    async def call_raw(
        self,
        action: str,
        params: dict[str, Any],
        *,
        timeout: float = DEFAULT_TIMEOUT,
        station_id: str | None = None,
    ) -> CallOutcome:
        """Send a CSMS CALL through ocpp-rpc; return ("result", payload) or ("error", code, message).

        ocpp-rpc validates ``params`` before sending (an invalid one is never sent: an error comes back, and an
        outbound ``validation_error`` is recorded) and the station's answer after receiving it.
        """
        command: dict[str, Any] = {"cmd": "call", "action": action, "params": params, "timeoutMs": int(timeout * 1000)}
        if station_id is not None:
            command["identity"] = station_id
        reply = await self._command(command, timeout=timeout + 5)
        if reply["event"] == "result":
            return ("result", reply["result"])
        return ("error", str(reply.get("code")), str(reply.get("message")))

    async def call(
        self,
        action: str,
        params: dict[str, Any] | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        station_id: str | None = None,
    ) -> dict[str, Any]:
        """Send a CSMS CALL; return the station's CALLRESULT payload or raise CallErrorReceived."""
        outcome = await self.call_raw(action, params or {}, timeout=timeout, station_id=station_id)
        if outcome[0] == "error":
            raise CallErrorReceived(action, outcome[1], outcome[2])  # type: ignore[misc]
        return outcome[1]  # type: ignore[return-value]

    async def disconnect(
        self, station_id: str | None = None, *, code: int = 1001, force: bool = False, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        """Close the station's connection from the CSMS side (``force``: terminate without a close handshake)."""
        if not self._live:
            raise AssertionError("no station connected to the JS peer")
        command: dict[str, Any] = {"cmd": "disconnect", "code": code, "force": force}
        if station_id is not None:
            command["identity"] = station_id
        await self._command(command, timeout=timeout)
        await self.wait_disconnected(timeout, station_id=station_id)

    # -- assertions

    def station_validation_errors(self) -> list[dict[str, Any]]:
        """The strict-validation failures of frames the station sent (CALLs and CALLRESULTs)."""
        return [failure for failure in self.validation_errors if not failure["outbound"]]

    def assert_valid(self) -> None:
        """Fail with every strict-validation failure (the station's, or this peer's own) and every bad message."""
        bad = [event for event in self.events if event.get("event") == "bad_message"]
        problems = [json.dumps(event) for event in [*self.validation_errors, *bad] if not event.get("taken")]
        if problems:
            raise AssertionError(f"{len(problems)} problem(s) seen by the JS peer:\n" + "\n".join(problems))

    def take_validation_errors(self) -> list[dict[str, Any]]:
        """Return the validation failures so far and forget them (for tests that provoke them on purpose)."""
        failures, self.validation_errors = self.validation_errors, []
        return failures

    @property
    def auth_failures(self) -> int:
        """How many handshakes were refused with 401."""
        return sum(1 for rejection in self.rejections if rejection["status"] == 401)

    # -- internals

    async def _command(self, command: dict[str, Any], timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        """Send a command and wait for its ack/result/error line."""
        process = self._process
        if process is None or process.stdin is None or process.returncode is not None:
            raise ConnectionError(f"the JS peer is not running\n{self.stderr}")
        command_id = f"c{next(self._ids)}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[command_id] = future
        try:
            process.stdin.write((json.dumps({**command, "id": command_id}) + "\n").encode())
            await process.stdin.drain()
            return await asyncio.wait_for(future, timeout)
        finally:
            self._replies.pop(command_id, None)

    async def _read(self, process: asyncio.subprocess.Process) -> None:
        """Read the peer's JSON lines until it exits."""
        assert process.stdout is not None
        while line := await process.stdout.readline():
            try:
                event = json.loads(line)
            except ValueError:
                event = {"event": "garbage", "line": line.decode("utf-8", "replace")}
            self._record(event)

    async def _read_stderr(self, process: asyncio.subprocess.Process) -> None:
        """Keep the peer's stderr for error messages."""
        assert process.stderr is not None
        while line := await process.stderr.readline():
            self._stderr.append(line.decode("utf-8", "replace"))

    def _record(self, event: dict[str, Any]) -> None:
        """File one event and wake the waiters."""
        self.events.append(event)
        kind = event.get("event")
        if kind == "call":
            self.calls.append(event)
        elif kind == "validation_error":
            self.validation_errors.append(event)
        elif kind == "rejected":
            self.rejections.append(event)
        elif kind == "connected":
            self.connections.append(event)
            self._live[event["identity"]] = event
        elif kind == "disconnected":
            self._live.pop(event["identity"], None)
        elif kind in ("ack", "result", "error") and event.get("id") in self._replies:
            future = self._replies[event["id"]]
            if not future.done():
                future.set_result(event)
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait_for(self, check: Callable[[], Any], timeout: float, describe: Callable[[], str]) -> Any:
        """Re-run ``check`` on every event until it returns non-None; AssertionError on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            result = check()
            if result is not None:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(describe() + (f"\nnode stderr:\n{self.stderr}" if self.stderr else ""))
            exited = self._process is None or self._process.returncode is not None
            if exited and (self._reader is None or self._reader.done()):
                raise AssertionError(describe() + f"\nthe JS peer is not running\n{self.stderr}")
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), min(remaining, 1.0))


def _matches(predicate: Callable[[dict[str, Any]], bool] | None, params: dict[str, Any]) -> bool:
    """Apply a predicate; a lookup error in it means "no match"."""
    if predicate is None:
        return True
    try:
        return bool(predicate(params))
    except (KeyError, IndexError, TypeError):
        return False
