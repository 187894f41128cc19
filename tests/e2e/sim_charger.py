"""The simulated charger of ``charger-controller run --sim``, in-process on a warp loop, driven over its HTTP API.

Everything runs in one ``hil.timewarp.WarpLoop``: the controller, its uvicorn server, and the small HTTP
and server-sent-event clients below (a client in another thread would see the warped clock race ahead).
Waiting is ``await asyncio.sleep(s)`` or ``until(...)``, both in loop (virtual) time, so a test that
waits minutes of controller time takes a fraction of a second. Outputs are read from the gpiozero mock
pins the real drivers set, and from the simulated plant (``drivers.sim.plant.SimPlant``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from controller.api.app import create_app
from controller.api.server import ApiServer
from controller.config.loader import load_sim_default
from controller.core.parsing import format_rfc3339
from controller.runtime.build import Built, build
from drivers.sim.pin_history import read_changes
from drivers.sim.plant import SimEvse, SimPlant
from hil.timewarp import WarpClock, WarpLoop, run_warped

START = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
"""Wall time at which every test's controller starts."""

HTTP_TIMEOUT_S = 30.0  # loop time; nothing in the API waits anywhere near this long


@dataclass(frozen=True, slots=True)
class Pins:
    """The pins of one EVSE in controller/config/sim_default.toml: the controller's outputs (reserved LED, RGB status
    LED, contactor coil, lock motor lines; high = on) and two inputs the plant drives (aux contact and lock
    switch, both low = closed / locked)."""

    reserved: str
    red: str
    green: str
    blue: str
    coil: str
    aux: str
    lock_motor: str
    unlock_motor: str
    lock_switch: str


PINS = {
    1: Pins("GPIO24", "GPIO12", "GPIO13", "GPIO19", "GPIO17", "GPIO27", "GPIO5", "GPIO6", "GPIO22"),
    2: Pins("GPIO18", "GPIO9", "GPIO10", "GPIO11", "GPIO16", "GPIO20", "GPIO21", "GPIO26", "GPIO25"),
}

# ---------------------------------------------------------------- HTTP over asyncio streams


@dataclass
class Reply:
    """One HTTP answer: status, lower-case headers, body text and its JSON (when JSON)."""

    status: int
    headers: dict[str, str]
    text: str
    json: Any = None


def _dechunk(body: bytes) -> bytes:
    out, rest = b"", body
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            break
        out += rest[:size]
        rest = rest[size + 2 :]
    return out


async def http(port: int, method: str, path: str, body: Any = None) -> Reply:
    """One HTTP/1.1 request on a fresh connection (``Connection: close``); ``body`` is sent as JSON."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        data = b"" if body is None else json.dumps(body).encode()
        head = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close",
                f"Content-Length: {len(data)}"]
        if body is not None or method == "POST":  # the API refuses a POST without it (415), body or not
            head.append("Content-Type: application/json")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), HTTP_TIMEOUT_S)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    head_bytes, _, payload = raw.partition(b"\r\n\r\n")
    lines = head_bytes.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    if headers.get("transfer-encoding", "").lower() == "chunked":
        payload = _dechunk(payload)
    text = payload.decode()
    reply = Reply(status, headers, text)
    if headers.get("content-type", "").startswith("application/json"):
        reply.json = json.loads(text)
    return reply


@dataclass(frozen=True, slots=True)
class Event:
    """One event of ``GET /events``: its type, document and the loop time it was read at."""

    type: str
    doc: dict[str, Any]
    at: float


class EventLog:
    """A ``GET /events`` subscription read in the background into ``events``."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.comments: list[str] = []
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    @classmethod
    async def open(cls, port: int, path: str = "/events") -> EventLog:
        """Connect, check the 200 answer and start reading (after the ``: connected`` comment)."""
        log = cls()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n".encode())
        await writer.drain()
        head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HTTP_TIMEOUT_S)).decode("latin-1").lower()
        assert head.startswith("http/1.1 200"), head
        assert "content-type: text/event-stream" in head, head
        log._reader, log._writer = reader, writer
        first = await asyncio.wait_for(log._frame(), HTTP_TIMEOUT_S)
        assert first.strip() == ": connected", first
        log._task = asyncio.ensure_future(log._run())
        return log

    async def _frame(self) -> str:
        """The next SSE frame (event or comment), without the chunked transfer framing."""
        assert self._reader is not None
        text = ""
        while "\n\n" not in text:
            size = int((await self._reader.readuntil(b"\r\n")).strip(), 16)
            if size == 0:
                raise EOFError("event stream ended")
            text += (await self._reader.readexactly(size + 2))[:-2].decode()
        return text

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(EOFError, ConnectionError, asyncio.IncompleteReadError):
            while True:
                frame = await self._frame()
                for block in frame.split("\n\n"):
                    if not block.strip():
                        continue
                    if block.startswith(":"):
                        self.comments.append(block)
                        continue
                    fields = dict(line.split(": ", 1) for line in block.strip().split("\n"))
                    doc = json.loads(fields["data"])
                    assert doc.get("type") == fields["event"], block
                    self.events.append(Event(fields["event"], doc, loop.time()))
                self._changed.set()

    def of(self, kind: str, **match: Any) -> list[Event]:
        """The events of type ``kind`` whose document has every ``match`` item."""
        return [e for e in self.events if e.type == kind and all(e.doc.get(k) == v for k, v in match.items())]

    async def wait(self, kind: str, within_s: float = 5.0, **match: Any) -> Event:
        """The first event of type ``kind`` matching ``match``, waiting up to ``within_s`` (loop time)."""

        async def first() -> Event:
            while True:
                found = self.of(kind, **match)
                if found:
                    return found[0]
                self._changed.clear()
                await self._changed.wait()

        try:
            return await asyncio.wait_for(first(), within_s)
        except TimeoutError:
            seen = [(e.type, e.doc) for e in self.events[-10:]]
            raise AssertionError(f"no {kind} event with {match} within {within_s} s; last seen: {seen}") from None

    async def close(self) -> None:
        """Stop reading and close the connection."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError):
                await self._writer.wait_closed()


# ---------------------------------------------------------------- the charger


async def until(check: Callable[[], bool], what: str, within_s: float = 5.0, step_s: float = 0.01) -> float:
    """Poll ``check`` every ``step_s`` of loop time until it holds; returns the loop time it first held at."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while True:
        if check():
            return loop.time()
        if loop.time() > deadline:
            raise AssertionError(f"not within {within_s} s (loop time): {what}")
        await asyncio.sleep(step_s)


async def until_async(check: Callable[[], Awaitable[bool]], what: str, within_s: float = 5.0,
                      step_s: float = 0.05) -> float:
    """``until`` for a check that needs the API (each poll is one request)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while True:
        if await check():
            return loop.time()
        if loop.time() > deadline:
            raise AssertionError(f"not within {within_s} s (loop time): {what}")
        await asyncio.sleep(step_s)


def changes(pin: Any) -> list[tuple[float, float]]:
    """Every state a mock pin still keeps as (real monotonic time, level), oldest first.

    The sim's pins keep their last HISTORY_CAP changes with their times (drivers.sim.pins.read_changes,
    as hil/sim_bench.py reads them). The times are real, not warped: good for ordering edges of different
    pins, not for durations.
    """
    return [(change.time, float(change.state)) for change in read_changes(pin).changes]


def first_change(pin: Any, level: float, after: float) -> float:
    """Real monotonic time of the first change of ``pin`` to ``level`` after ``after``; inf if none."""
    return min((t for t, v in changes(pin) if t > after and abs(v - level) < 1e-6), default=float("inf"))


def blinks(pin: Any, since: int, *, real_wait_s: float = 3.0) -> bool:
    """Whether ``pin`` went off and then on again in its states numbered ``since`` or later.

    ``since`` is a sequence number: ``drivers.sim.pins.change_count(pin)`` taken before the change of interest
    (it equals ``len(pin.states)`` until the pin's bounded history first fills up).

    Blinking LEDs are driven by gpiozero threads in real time (0.5 s on, 0.5 s off), so this blocks the loop
    for about one blink period; ``real_wait_s`` only bounds how long a broken controller is waited for.
    """
    give_up = time.monotonic() + real_wait_s
    while True:
        levels = [float(change.state) for change in read_changes(pin, since).changes]
        off = next((i for i, v in enumerate(levels) if v < 1e-6), None)
        if off is not None and any(v > 1.0 - 1e-6 for v in levels[off:]):
            return True
        if time.monotonic() > give_up:
            return False
        time.sleep(0.005)


class SimCharger:
    """``run --sim`` in this loop: the controller built on the sim default config and its API on a free port."""

    def __init__(self, state_dir: Path, loop: WarpLoop) -> None:
        self.state_dir = state_dir
        self.loop = loop
        self.wall = loop.clock.wall(START)  # one wall clock for the whole test, across restarts
        self._built: Built | None = None
        self._server: ApiServer | None = None
        self._serving: asyncio.Task[None] | None = None

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Build and start the controller on ``state_dir``, then serve its API on 127.0.0.1."""
        built = await build(load_sim_default(), state_dir=self.state_dir, wall_clock=self.wall,
                            mono_clock=self.loop.time)
        await built.start()
        self._built = built
        server = ApiServer(create_app(built.runtime), "127.0.0.1", 0)
        self._server = server
        self._serving = await server.start()

    async def stop(self) -> None:
        """Stop the API, then the controller (contactors open first); idempotent."""
        if self._server is not None:
            self._server.stop()
            if self._serving is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await self._serving
            self._server = self._serving = None
        if self._built is not None:
            await self._built.stop()
            self._built = None

    async def restart(self, down_s: float = 0.0) -> None:
        """Power cycle: stop everything, stay off ``down_s`` (the wall clock runs on), then build anew on the
        same state directory. Pins and plant are new too: the sockets start unlocked, nothing plugged."""
        await self.stop()
        await asyncio.sleep(down_s)
        await self.start()

    # ------------------------------------------------------------ views

    @property
    def built(self) -> Built:
        assert self._built is not None, "the controller is not running"
        return self._built

    @property
    def port(self) -> int:
        assert self._server is not None, "the API is not served"
        return self._server.port

    @property
    def plant(self) -> SimPlant:
        plant = self.built.plant
        assert isinstance(plant, SimPlant)
        return plant

    def sim(self, evse_id: int) -> SimEvse:
        """The simulated hardware of one EVSE."""
        return self.plant.evses[evse_id]

    def pin(self, name: str) -> Any:
        """A mock pin of the running controller."""
        return self.built.pin_factory.pin(name)

    def level(self, name: str) -> float:
        """A pin's electrical state now (0.0 .. 1.0)."""
        return float(self.pin(name).state)

    def reserved_led(self, evse_id: int) -> bool:
        """The reserved LED pin of ``evse_id`` is high."""
        return self.level(PINS[evse_id].reserved) >= 0.5

    def coil(self, evse_id: int) -> bool:
        """The contactor coil pin of ``evse_id`` is high (energized)."""
        return self.level(PINS[evse_id].coil) >= 0.5

    def rgb(self, evse_id: int) -> tuple[float, float, float]:
        """The status LED's red, green and blue pin levels now (PWM duty)."""
        pins = PINS[evse_id]
        return (self.level(pins.red), self.level(pins.green), self.level(pins.blue))

    def locked(self, evse_id: int) -> bool:
        """The simulated lock bolt of ``evse_id`` is in the locked position."""
        lock = self.sim(evse_id).lock
        assert lock is not None
        return lock.locked

    def now(self) -> float:
        """Loop (monotonic) time."""
        return self.loop.time()

    def loop_time_of(self, wall: datetime) -> float:
        """The loop time at which the controller's wall clock reads ``wall``."""
        return self.now() + (wall - self.wall()).total_seconds()

    def expiry(self, seconds: float) -> str:
        """An RFC 3339 expiry ``seconds`` of wall time from now, rounded to the whole second."""
        at = (self.wall() + timedelta(seconds=seconds)).replace(microsecond=0)
        return format_rfc3339(at)

    # ------------------------------------------------------------ API

    async def call(self, method: str, path: str, body: Any = None, *, expect: int = 200) -> Any:
        """One API request; checks the status and returns the JSON body."""
        reply = await http(self.port, method, path, body)
        assert reply.status == expect, f"{method} {path}: {reply.status} {reply.text}"
        return reply.json

    async def reserve(self, reservation_id: int, token: str, expiry_time: str, evse_id: int | None = None,
                      **extra: Any) -> str:
        """POST /reservations; returns the result (Accepted, Occupied, ...)."""
        body: dict[str, Any] = {"reservation_id": reservation_id, "id_token": token, "expiry_time": expiry_time}
        if evse_id is not None:
            body["evse_id"] = evse_id
        body.update(extra)
        result = (await self.call("POST", "/reservations", body))["result"]
        assert isinstance(result, str)
        return result

    async def cancel(self, reservation_id: int) -> bool:
        """DELETE /reservations/{id}; returns ``cancelled``."""
        return bool((await self.call("DELETE", f"/reservations/{reservation_id}"))["cancelled"])

    async def reservations(self) -> list[dict[str, Any]]:
        """GET /reservations."""
        found = (await self.call("GET", "/reservations"))["reservations"]
        assert isinstance(found, list)
        return found

    async def reservation_ids(self) -> list[int]:
        """The ids of GET /reservations, in arrival order."""
        return [r["reservation_id"] for r in await self.reservations()]

    async def status(self, evse_id: int) -> dict[str, Any]:
        """This EVSE's entry of GET /status."""
        doc = await self.call("GET", "/status")
        (entry,) = [e for e in doc["evses"] if e["id"] == evse_id]
        assert isinstance(entry, dict)
        return entry

    async def token(self, evse_id: int, token: str) -> dict[str, Any]:
        """POST /evses/{id}/token; returns the outcome document."""
        outcome = await self.call("POST", f"/evses/{evse_id}/token", {"id_token": token})
        assert isinstance(outcome, dict)
        return outcome

    async def plug(self, evse_id: int) -> None:
        """POST /sim/evses/{id}/plug."""
        assert await self.call("POST", f"/sim/evses/{evse_id}/plug") == {"evse_id": evse_id, "action": "plug",
                                                                          "kind": None}

    async def unplug(self, evse_id: int, *, expect: int = 200) -> Any:
        """POST /sim/evses/{id}/unplug (409 while the plug is locked in)."""
        return await self.call("POST", f"/sim/evses/{evse_id}/unplug", expect=expect)

    async def fault(self, evse_id: int, kind: str) -> None:
        """POST /sim/faults."""
        body = {"evse_id": evse_id, "kind": kind}
        assert await self.call("POST", "/sim/faults", body) == {**body, "action": "fault"}

    async def events(self, path: str = "/events") -> EventLog:
        """A GET /events subscription from now on (``/events?since=0``: with the kept history); close it after."""
        return await EventLog.open(self.port, path)


def run_sim(state_dir: Path, scenario: Callable[[SimCharger], Awaitable[None]]) -> None:
    """Run ``scenario`` against a started sim charger on a fresh warp loop; stop everything afterwards."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, WarpLoop)
        charger = SimCharger(state_dir, loop)
        await charger.start()
        try:
            await scenario(charger)
        finally:
            await charger.stop()

    run_warped(main(), clock=WarpClock())
