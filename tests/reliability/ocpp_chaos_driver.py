"""The chaos driver of the OCPP chaos runs: the station's lives, two charging drivers and the plan of outages.

The station is the real daemon (``charger-controller run --config chaos.toml``, see ocpp_chaos_base.write_config) on
ONE state directory for all its lives, talking to the schema-checking Python CSMS of tests/ocpp/csms.py. Two drivers
run charging sessions through the HTTP API, one per EVSE: a unique token, plug in, charge 1.5-3 s, the token again,
unplug. EVSE 2's sessions start from a reservation: ReserveNow from the CSMS, held 0.5-1.5 s, then used by its
token. Meanwhile a chaos task works through a shuffled plan of CSMS-side disconnects (half of them abrupt: a TCP
abort without a close handshake) and SIGKILLs of the station, each restarted on the same state directory; half of
the kills land while EVSE 2's reservation is held (acknowledged by ReserveNow Accepted, not yet used), the others
while a car charges. After each kill the acknowledged reservation must still be there (GET /status, and a
StatusNotification Reserved on the new connection).

Version-neutral: what differs between 2.0.1 and 1.6 (the ReserveNow payload, the Reserved status, the setup
calls) comes from the run's ``Flavour``; ``run_chaos`` runs the whole thing and hands back what happened.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from security.daemon import Daemon, call, free_port
from websockets.exceptions import ConnectionClosed

from ..ocpp.csms import Csms, SchemaFailure
from .ocpp_chaos_base import (
    CHARGE_S,
    DISCONNECTS_PER_SCALE,
    DRAIN_S,
    GAP_S,
    HOLD_S,
    KILLS_PER_SCALE,
    ONLINE_S,
    RESERVATION_EXPIRY_S,
    RESERVED_EVSE,
    STATE_S,
    STATION_ID,
    Flavour,
    Kill,
    LifeEnded,
    Session,
    idle,
    iso,
    wait_online,
    write_config,
)


@dataclass
class Chaos:
    """The run: the station's lives, the drivers, the chaos plan, and what happened."""

    root: Path
    csms: Csms
    flavour: Flavour
    rng: random.Random
    disconnects_planned: int
    kills_planned: int
    config: Path | None = None
    daemon: Daemon | None = None
    life: int = 0
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    finished: bool = False
    sessions: list[Session] = field(default_factory=list)
    current: dict[int, Session | None] = field(default_factory=dict)
    kills: list[Kill] = field(default_factory=list)
    disconnects: list[tuple[float, bool]] = field(default_factory=list)
    held_reservation: int | None = None  # EVSE 2's reservation: acknowledged (Accepted), not yet used
    reservation_uncertain: bool = False  # its token was being presented when the station was killed
    reservations_accepted: int = 0
    next_reservation_id: int = 0
    problems: list[str] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    # ------------------------------------------------------------ the station's lives

    @property
    def state_dir(self) -> Path:
        """The one state directory every life runs on."""
        return self.root / "state"

    async def start_station(self) -> float:
        """Start a life of the station on the state directory; the seconds it took to be ready."""
        assert self.config is not None
        log_dir = self.root / "logs" / f"life-{self.life:02d}"
        log_dir.mkdir(parents=True)
        daemon = Daemon(["run", "--config", str(self.config), "--state-dir", str(self.state_dir),
                         "--api", f"127.0.0.1:{free_port('127.0.0.1')}"], log_dir)
        began = time.monotonic()
        await asyncio.to_thread(daemon.start)
        self.daemon = daemon
        return time.monotonic() - began

    def collect_logs(self) -> None:
        """Keep the current life's logs."""
        if self.daemon is not None:
            self.logs.append(self.daemon.logs())

    async def kill(self, kind: str) -> None:
        """SIGKILL the station, restart it on the same state directory, and check the acknowledged reservation."""
        daemon = self.daemon
        assert daemon is not None and daemon.proc is not None
        self.ready.clear()
        kill = Kill(len(self.kills), time.monotonic(), kind, max((c.serial for c in self.csms.connections), default=0),
                    held_reservation=None if self.reservation_uncertain else self.held_reservation)
        for session in self.current.values():
            # the first kill that cuts a session ends its transaction (PowerLoss after that restart); a later kill
            # while the test still drives the same session must not move the blame (its end arrived before it)
            if session is not None and session.verdict is not None and not session.done \
                    and session.cut_at_kill is None:
                session.cut_at_kill = kill.index
        daemon.proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(daemon.proc.wait, 30)
        self.kills.append(kill)
        self.collect_logs()
        self.life += 1
        kill.restart_s = await self.start_station()
        await self.wait_online(after=kill.connection_floor)
        if kill.held_reservation is not None:
            await self._check_reservation(kill)
        if self.reservation_uncertain:  # its token was cut off: the driver cancels it (kept or used, unknown)
            self.held_reservation = None
            self.reservation_uncertain = False
        self.ready.set()

    async def _check_reservation(self, kill: Kill) -> None:
        """The reservation acknowledged before the kill is there: in GET /status and reported Reserved again."""
        rid = kill.held_reservation
        status = await self._status()
        evse2 = next(e for e in status["evses"] if e["id"] == RESERVED_EVSE)
        kill.reservation_found = evse2["reserved"] and any(
            r["reservation_id"] == rid and r.get("evse_id") == RESERVED_EVSE for r in status["reservations"])
        if not kill.reservation_found:
            self.problems.append(f"kill {kill.index}: reservation {rid} (ReserveNow Accepted before the kill) is "
                                 f"gone after the restart: GET /status {status['reservations']}, EVSE 2 {evse2}")
        deadline = time.monotonic() + STATE_S
        while time.monotonic() < deadline:
            if any(m.action == "StatusNotification" and m.connection > kill.connection_floor
                   and self.flavour.reserved(m.payload) for m in self.csms.messages):
                kill.reserved_status_sent = True
                return
            await asyncio.sleep(0.05)
        kill.reserved_status_sent = False
        self.problems.append(f"kill {kill.index}: no StatusNotification Reserved for EVSE 2 after the restart "
                             f"(reservation {rid} held)")

    async def _status(self) -> dict[str, Any]:
        """GET /status of the current life (the chaos task's own view; it never races a kill)."""
        assert self.daemon is not None
        response = await asyncio.to_thread(call, self.daemon.url, "GET", "/status")
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    async def wait_online(self, after: int = 0) -> int:
        """Wait until the station is connected and has reported its statuses; the connection's serial."""
        return await wait_online(self.csms, self.daemon, after)

    # ------------------------------------------------------------ the drivers

    async def api(self, session: Session, method: str, path: str, body: Any = None) -> requests.Response:
        """A request to the session's life of the station; LifeEnded when that life was killed."""
        if self.life != session.life or self.daemon is None:
            raise LifeEnded
        try:
            return await asyncio.to_thread(call, self.daemon.url, method, path, json=body)
        except requests.RequestException:
            deadline = time.monotonic() + ONLINE_S
            while self.life == session.life:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)
            raise LifeEnded from None

    async def evse(self, session: Session) -> dict[str, Any]:
        """The session's EVSE in GET /status."""
        response = await self.api(session, "GET", "/status")
        assert response.status_code == 200, response.text
        return next(e for e in response.json()["evses"] if e["id"] == session.evse_id)  # type: ignore[no-any-return]

    async def until(self, session: Session, check: Callable[[dict[str, Any]], bool], what: str) -> None:
        """Poll the session's EVSE until ``check`` holds."""
        deadline = time.monotonic() + STATE_S
        while not check(entry := await self.evse(session)):
            if time.monotonic() > deadline:
                raise AssertionError(f"{session.token}: EVSE {session.evse_id} not {what} within {STATE_S} s: {entry}")
            await asyncio.sleep(0.1)

    async def wait_ready(self) -> None:
        """Wait until the current life is up and checked."""
        await asyncio.wait_for(self.ready.wait(), ONLINE_S + 60)

    async def drive(self, evse_id: int) -> None:
        """Run sessions on this EVSE until the chaos is over."""
        count = 0
        while not self.finished:
            await self.wait_ready()
            count += 1
            session = Session(f"CHAOS-E{evse_id}-{count:03d}", evse_id, self.life)
            self.sessions.append(session)
            self.current[evse_id] = session
            try:
                await self.run_session(session)
            except LifeEnded:
                if session.reservation_id is not None:
                    # used or not (2.0.1 uses it when the token is accepted, 1.6 when its transaction starts, so a
                    # kill before the plug leaves it in place): cancel it, so EVSE 2 is free for the next one
                    await self.cancel_reservation(session.reservation_id)
            finally:
                self.current[evse_id] = None

    async def run_session(self, session: Session) -> None:
        """Reserve (EVSE 2), token, plug, charge, token again, unplug."""
        await self.until(session, idle, "idle and free")
        expected = "allowed"
        if session.evse_id == RESERVED_EVSE:
            await self.reserve(session)
            await asyncio.sleep(self.rng.uniform(*HOLD_S))
            await self.wait_ready()  # a kill meanwhile: the reservation must still be there (checked by kill())
            session.life = self.life
            expected = "reservation_used"
            self.reservation_uncertain = True
        response = await self.api(session, "POST", f"/evses/{session.evse_id}/token", {"id_token": session.token})
        assert response.status_code == 200, response.text
        answer = response.json()
        session.verdict = answer["verdict"]
        if session.evse_id == RESERVED_EVSE:
            self.held_reservation = None
            self.reservation_uncertain = False
        if answer["verdict"] != expected:
            self.problems.append(f"{session.token}: token at EVSE {session.evse_id} -> {answer} (wanted {expected})")
            return
        response = await self.api(session, "POST", f"/sim/evses/{session.evse_id}/plug")
        assert response.status_code == 200, response.text
        await self.until(session, lambda e: e["charging"] and e["contactor"] == "closed", "charging")
        session.charging_at = time.monotonic()
        await asyncio.sleep(self.rng.uniform(*CHARGE_S))
        session.stop_sent = True
        response = await self.api(session, "POST", f"/evses/{session.evse_id}/token", {"id_token": session.token})
        assert response.status_code == 200 and response.json()["verdict"] == "stopped", response.text
        session.stopped = True
        await self.until(session, lambda e: e["lock"] == "unlocked" and e["contactor"] == "open", "unlocked")
        response = await self.api(session, "POST", f"/sim/evses/{session.evse_id}/unplug")
        assert response.status_code == 200, response.text
        session.done = True

    async def reserve(self, session: Session) -> None:
        """ReserveNow on EVSE 2 for the session's token, until answered (the same id again after an outage)."""
        rid = self.next_reservation_id
        self.next_reservation_id += 1
        session.reservation_id = rid
        request = self.flavour.reserve(rid, session.token, iso(RESERVATION_EXPIRY_S))
        deadline = time.monotonic() + 4 * ONLINE_S
        while True:
            await self.wait_ready()
            await self.wait_online()
            try:
                answer = await self.csms.call("ReserveNow", request, timeout=10)
                break
            except (ConnectionError, ConnectionClosed, TimeoutError, AssertionError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)  # the connection dropped meanwhile: the same id again replaces it
        assert answer["status"] == "Accepted", f"ReserveNow {rid} on a free EVSE 2: {answer}"
        self.reservations_accepted += 1
        self.held_reservation = rid
        session.life = self.life

    async def cancel_reservation(self, rid: int) -> None:
        """CancelReservation until answered (Accepted, or Rejected when it was used or is gone)."""
        deadline = time.monotonic() + 4 * ONLINE_S
        while True:
            await self.wait_ready()
            await self.wait_online()
            try:
                await self.csms.call("CancelReservation", {"reservationId": rid}, timeout=10)
                return
            except (ConnectionError, ConnectionClosed, TimeoutError, AssertionError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)

    # ------------------------------------------------------------ the chaos

    async def any_charging(self, timeout: float = STATE_S) -> None:
        """Wait (bounded) until a driver's car charges."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(s is not None and s.charging_at is not None and not s.stop_sent for s in self.current.values()):
                return
            await asyncio.sleep(0.05)

    async def run_plan(self) -> None:
        """The disconnects and kills, shuffled, one after the other once the station is online again."""
        plan = ["disconnect"] * self.disconnects_planned + ["kill"] * self.kills_planned
        self.rng.shuffle(plan)
        kills = 0
        for action in plan:
            await self.wait_ready()
            await self.wait_online()
            await asyncio.sleep(self.rng.uniform(*GAP_S))
            if action == "kill":
                kind = "reservation" if kills % 2 == 0 else "charging"
                kills += 1
                if kind == "reservation":
                    deadline = time.monotonic() + 3 * STATE_S
                    while self.held_reservation is None and time.monotonic() < deadline:
                        await asyncio.sleep(0.02)
                    await asyncio.sleep(self.rng.uniform(0.0, 0.3))
                else:
                    await self.any_charging()
                    await asyncio.sleep(self.rng.uniform(0.0, 0.5))
                await self.kill(kind)
                continue
            await self.any_charging()
            abrupt = self.rng.random() < 0.5
            while True:
                await self.wait_online()
                try:
                    await self.csms.disconnect(STATION_ID, abrupt=abrupt)
                    break
                except AssertionError:  # it dropped by itself just now
                    await asyncio.sleep(0.05)
            self.disconnects.append((time.monotonic(), abrupt))




# ---------------------------------------------------------------------------------------------------------------------
# a whole run


@dataclass
class ChaosRun:
    """What a chaos run left: the driver's records, the last life's exit status, the CSMS's schema failures."""

    chaos: Chaos
    exit_code: int
    schema_failures: list[SchemaFailure]
    seed: int
    scale: int
    began: float

    @property
    def context(self) -> str:
        """The line a failure starts with: the seed to replay and where the logs are."""
        return (f"[ocpp {self.chaos.flavour.version} chaos seed {self.seed}; replay with "
                f"CHARGER_OCPP_CHAOS_SEED={self.seed}; logs in {self.chaos.root / 'logs'}]")


async def _settle(chaos: Chaos, all_ended: Callable[[Csms], bool]) -> None:
    """After the chaos: wait (bounded) until every transaction that started has ended at the CSMS."""
    deadline = time.monotonic() + DRAIN_S
    while time.monotonic() < deadline:
        if all_ended(chaos.csms) and all(s is None for s in chaos.current.values()):
            return
        await asyncio.sleep(0.2)


async def run_chaos(root: Path, flavour: Flavour, *, seed: int, scale: int,
                    all_ended: Callable[[Csms], bool]) -> ChaosRun:
    """The station's first life, the flavour's setup, the drivers and the plan; then the drain (``all_ended``
    says when every transaction the CSMS saw start has ended there) and an orderly stop (SIGTERM)."""
    print(f"ocpp {flavour.version} chaos: seed {seed}, scale {scale} (replay: CHARGER_OCPP_CHAOS_SEED={seed})")
    began = time.monotonic()
    async with Csms(versions=(flavour.version,)) as csms:
        chaos = Chaos(root, csms, flavour, random.Random(seed), DISCONNECTS_PER_SCALE * scale, KILLS_PER_SCALE * scale)
        flavour.prepare(csms)
        chaos.config = write_config(root, csms.url, flavour.version)
        await chaos.start_station()
        await chaos.wait_online()
        await flavour.setup(csms)
        chaos.ready.set()
        drivers = [asyncio.create_task(chaos.drive(evse_id)) for evse_id in (1, RESERVED_EVSE)]
        try:
            await chaos.run_plan()
            chaos.finished = True
            await asyncio.wait_for(asyncio.gather(*drivers), 4 * STATE_S)
            await _settle(chaos, all_ended)
            await asyncio.sleep(1.0)  # the last acknowledgements reach the disk
        except BaseException as exc:
            for task in drivers:
                task.cancel()
            chaos.collect_logs()
            if chaos.daemon is not None:
                await asyncio.to_thread(chaos.daemon.stop)
            raise AssertionError(f"[ocpp {flavour.version} chaos seed {seed}; replay with "
                                 f"CHARGER_OCPP_CHAOS_SEED={seed}; logs in {root / 'logs'}]\n{exc!r}") from exc
        assert chaos.daemon is not None
        code = await asyncio.to_thread(chaos.daemon.stop)
        chaos.collect_logs()
        schema_failures = list(csms.schema_failures)
    return ChaosRun(chaos, code, schema_failures, seed, scale, began)
