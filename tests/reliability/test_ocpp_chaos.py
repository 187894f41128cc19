"""OCPP chaos: 50 CSMS disconnects and 20 station SIGKILLs during charging sessions; no TransactionEvent is lost,
sent twice or out of order, and every acknowledged reservation survives.

The station is the real daemon (``charger-controller run --config chaos.toml``: the embedded sim configuration,
``simulated = true``, so it is ``run --sim``, plus an ``[ocpp]`` section whose only change from the defaults is a
short reconnect back-off, 0.2-1 s instead of 2-120 s, so 70 outages fit in CI) on ONE state directory for all its
lives, talking to the schema-checking Python CSMS of tests/ocpp/csms.py. Two drivers run charging sessions through
the HTTP API, one per EVSE: a unique token, plug in, charge 1.5-3 s (SampledDataCtrlr.TxUpdatedInterval = 1), the
token again, unplug. EVSE 2's sessions start from a reservation: ReserveNow from the CSMS, held 0.5-1.5 s, then
used by its token. Meanwhile a chaos task works through a shuffled plan of 50 CSMS-side disconnects (half of them
abrupt: a TCP abort without a close handshake) and 20 SIGKILLs of the station, each restarted on the same state
directory; half of the kills land while EVSE 2's reservation is held (acknowledged by ReserveNow Accepted, not yet
used), the others while a car charges.

Then, from everything the CSMS recorded:

- every TransactionEvent arrives once per (transactionId, seqNo); a second arrival counts as a resend (reported,
  allowed) only when it carries the same OCPP-J message id and payload as the first, as the station's resend of an
  unanswered message does (a CSMS de-duplicates by that id); with another id it is a duplicate (a failure);
- per transaction the seqNos are 0..n without gaps, first arrivals in seqNo order, one Started first, one Ended
  last; every transaction that Started has Ended; every transaction belongs to one session;
- a session cut by a kill ends after the restart with stoppedReason PowerLoss; the others end Local;
- a reservation acknowledged before a kill is there after the restart (GET /status, EVSE 2 reserved, and a
  StatusNotification Reserved on the new connection) and is then used by its token;
- at the end the station's queue, dead letters and open transactions are empty, and no life logged a traceback.

Figures (one JSON line, also written to ``$CHARGER_RELIABILITY_OUT/ocpp_chaos.json``): sessions, disconnects, kills,
events, duplicates by message id, lost, max delivery delay after a reconnect, wall time. Size: 50 disconnects and 20
kills times ``CHARGER_TEST_SCALE`` (default 1, about 2 minutes). ``CHARGER_OCPP_CHAOS_SEED`` replays a seed's
choices (timing is real, so not its exact moments).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from security.daemon import READY, REPO, SIM_DEFAULT, Daemon, call, free_port

from ..ocpp.csms import Csms, Message

DISCONNECTS_PER_SCALE = 50
KILLS_PER_SCALE = 20
STATION_ID = "CHAOS01"
RECONNECT_MIN_S, RECONNECT_MAX_S = 0.2, 1.0
CHARGE_S = (1.5, 3.0)  # how long each session charges
HOLD_S = (0.5, 1.5)  # how long EVSE 2's reservation is held before its token comes
GAP_S = (0.3, 1.2)  # between chaos actions, once the station is online again
STATE_S = 20.0  # bound for the sim charger to reach a state (generous: CI machines are slow)
ONLINE_S = 30.0  # bound for the station to be connected and booted again
DRAIN_S = 60.0  # bound for the last events to arrive after the chaos
RESERVATION_EXPIRY_S = 3600

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")


def _scale() -> int:
    """CHARGER_TEST_SCALE (a whole number >= 1)."""
    text = os.environ.get("CHARGER_TEST_SCALE", "1").strip() or "1"
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"CHARGER_TEST_SCALE must be a whole number >= 1, got {text!r}")
    return int(text)


def _seed() -> int:
    """CHARGER_OCPP_CHAOS_SEED, or a fresh random seed."""
    text = os.environ.get("CHARGER_OCPP_CHAOS_SEED", "").strip()
    return int(text) if text else random.SystemRandom().randrange(2**32)


def _iso(seconds_from_now: float) -> str:
    """An OCPP date-time, UTC with a Z."""
    moment = datetime.now(UTC) + timedelta(seconds=seconds_from_now)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _config(directory: Path, csms_url: str) -> Path:
    """The embedded sim configuration plus an [ocpp] section with a short reconnect back-off."""
    text = SIM_DEFAULT.read_text(encoding="utf-8")
    assert "[ocpp]" not in text, "sim_default.toml has an [ocpp] section now: merge the chaos settings into it"
    text += (f'\n[ocpp]\nurl = "{csms_url}"\nstation_id = "{STATION_ID}"\n'
             f"reconnect_min_s = {RECONNECT_MIN_S}\nreconnect_max_s = {RECONNECT_MAX_S}\n")
    path = directory / "chaos.toml"
    path.write_text(text, encoding="utf-8")
    return path


def online_serial(csms: Csms, after: int = 0) -> int | None:
    """The serial of the open connection (above ``after``) on which the booted station reported its statuses."""
    live = [c.serial for c in csms.connections if c.open and c.serial > after]
    if not live:
        return None
    serial = live[-1]
    booted = any(m.connection == serial and m.action == "StatusNotification" for m in csms.messages)
    return serial if booted else None


async def wait_online(csms: Csms, daemon: Daemon | None, after: int = 0, timeout: float = ONLINE_S) -> int:
    """Wait until the station is connected (on a connection above ``after``) and has reported its statuses."""
    deadline = time.monotonic() + timeout
    while (serial := online_serial(csms, after)) is None:
        if time.monotonic() > deadline:
            logs = daemon.logs()[-3000:] if daemon is not None else ""
            raise AssertionError(f"the station was not back online within {timeout} s; connections: "
                                 f"{csms.connections[-3:]}\n{logs}")
        await asyncio.sleep(0.05)
    return serial


def _idle(evse: dict[str, Any]) -> bool:
    """A GET /status EVSE entry that is free for the next session: no car, no session, unlocked, open, no fault."""
    return (not evse["plugged_in"] and evse["phase"] == "idle" and evse["lock"] == "unlocked"
            and evse["contactor"] == "open" and not evse["faults"])


class LifeEnded(Exception):
    """The station process the request went to was killed."""


@dataclass
class Session:
    """One charging session a driver ran."""

    token: str
    evse_id: int
    life: int
    reservation_id: int | None = None
    verdict: str | None = None
    charging_at: float | None = None  # monotonic time the driver saw the car charge
    stop_sent: bool = False  # the token went again (the answer may have been cut off)
    stopped: bool = False  # ... and the answer said "stopped"
    done: bool = False
    cut_at_kill: int | None = None  # the kill (index) that cut it, after its token was accepted


@dataclass
class Kill:
    """One SIGKILL of the station."""

    index: int
    at: float
    kind: str  # "reservation" (while EVSE 2's reservation was held) or "charging"
    connection_floor: int  # connections with a serial above this one are the restarted station's
    held_reservation: int | None = None
    reservation_found: bool | None = None
    reserved_status_sent: bool | None = None
    restart_s: float = 0.0


@dataclass
class Chaos:
    """The run: the station's lives, the drivers, the chaos plan, and what happened."""

    root: Path
    csms: Csms
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
        evse2 = next(e for e in status["evses"] if e["id"] == 2)
        kill.reservation_found = evse2["reserved"] and any(
            r["reservation_id"] == rid and r.get("evse_id") == 2 for r in status["reservations"])
        if not kill.reservation_found:
            self.problems.append(f"kill {kill.index}: reservation {rid} (ReserveNow Accepted before the kill) is "
                                 f"gone after the restart: GET /status {status['reservations']}, EVSE 2 {evse2}")
        deadline = time.monotonic() + STATE_S
        while time.monotonic() < deadline:
            if any(m.action == "StatusNotification" and m.connection > kill.connection_floor
                   and m.payload["evseId"] == 2 and m.payload["connectorStatus"] == "Reserved"
                   for m in self.csms.messages):
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
                pass
            finally:
                self.current[evse_id] = None

    async def run_session(self, session: Session) -> None:
        """Reserve (EVSE 2), token, plug, charge, token again, unplug."""
        await self.until(session, _idle, "idle and free")
        expected = "allowed"
        if session.evse_id == 2:
            await self.reserve(session)
            await asyncio.sleep(self.rng.uniform(*HOLD_S))
            await self.wait_ready()  # a kill meanwhile: the reservation must still be there (checked by kill())
            session.life = self.life
            expected = "reservation_used"
            self.reservation_uncertain = True
        try:
            response = await self.api(session, "POST", f"/evses/{session.evse_id}/token",
                                      {"id_token": session.token})
        except LifeEnded:
            if session.reservation_id is not None:  # used or not: cancel it, so EVSE 2 is free for the next one
                await self.wait_ready()
                await self.wait_online()
                await self.csms.call("CancelReservation", {"reservationId": session.reservation_id})
            raise
        assert response.status_code == 200, response.text
        answer = response.json()
        session.verdict = answer["verdict"]
        if session.evse_id == 2:
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
        request = {"id": rid, "expiryDateTime": _iso(RESERVATION_EXPIRY_S), "evseId": 2,
                   "idToken": {"idToken": session.token, "type": "ISO14443"}}
        deadline = time.monotonic() + 4 * ONLINE_S
        while True:
            await self.wait_ready()
            await self.wait_online()
            try:
                answer = await self.csms.call("ReserveNow", request, timeout=10)
                break
            except (ConnectionError, TimeoutError, AssertionError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)  # the connection dropped meanwhile: the same id again replaces it
        assert answer["status"] == "Accepted", f"ReserveNow {rid} on a free EVSE 2: {answer}"
        self.reservations_accepted += 1
        self.held_reservation = rid
        session.life = self.life

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
# analysis


@dataclass
class Analysis:
    """What the CSMS's records say about the TransactionEvents."""

    transactions: dict[str, list[Message]]  # transactionId -> first arrivals, in arrival order
    events: int = 0
    resends: int = 0  # same (tx, seqNo) again, same message id and payload
    duplicates: list[str] = field(default_factory=list)  # same (tx, seqNo) again with another id or payload
    failures: list[str] = field(default_factory=list)
    seq_gaps: int = 0
    out_of_order: int = 0
    missing_started: int = 0
    missing_ended: int = 0
    offline_events: int = 0


def analyse(messages: list[Message]) -> Analysis:
    """Check exactly-once, contiguous seqNos, order, Started first and Ended last, per transaction."""
    first: dict[tuple[str, int], Message] = {}
    result = Analysis({})
    for message in messages:
        if message.action != "TransactionEvent":
            continue
        result.events += 1
        tx_id = message.payload["transactionInfo"]["transactionId"]
        key = (tx_id, message.payload["seqNo"])
        if key in first:
            earlier = first[key]
            if earlier.unique_id == message.unique_id and earlier.payload == message.payload:
                result.resends += 1
            else:
                result.duplicates.append(f"{key}: message {earlier.unique_id} on connection {earlier.connection}, "
                                         f"then {message.unique_id} on connection {message.connection}:\n"
                                         f"  {earlier.frame}\n  {message.frame}")
            continue
        first[key] = message
        result.offline_events += bool(message.payload.get("offline"))
        result.transactions.setdefault(tx_id, []).append(message)
    for tx_id, arrivals in result.transactions.items():
        seq_nos = [m.payload["seqNo"] for m in arrivals]
        if seq_nos != sorted(seq_nos):
            result.out_of_order += 1
            result.failures.append(f"transaction {tx_id}: seqNos arrived in the order {seq_nos}")
        present = sorted(seq_nos)
        gaps = sorted(set(range(present[-1] + 1)) - set(present))
        if gaps:
            result.seq_gaps += len(gaps)
            result.failures.append(f"transaction {tx_id}: seqNos {gaps} never arrived (got {present})")
        ordered = sorted(arrivals, key=lambda m: m.payload["seqNo"])
        kinds = [m.payload["eventType"] for m in ordered]
        if kinds[0] != "Started" or kinds.count("Started") != 1:
            result.missing_started += kinds[0] != "Started"
            result.failures.append(f"transaction {tx_id}: event types by seqNo {kinds}")
        if kinds.count("Ended") != 1 or kinds[-1] != "Ended":
            result.missing_ended += "Ended" not in kinds
            result.failures.append(f"transaction {tx_id}: event types by seqNo {kinds} (one Ended, last, wanted)")
    return result


def _timestamp(text: str) -> float:
    """An OCPP date-time as POSIX seconds."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def delivery_delays(csms: Csms, analysis: Analysis) -> tuple[float, int]:
    """The longest time from a reconnect to the arrival of the last TransactionEvent made before it (the backlog),
    in seconds, and the largest such backlog."""
    wall_minus_mono = time.time() - time.monotonic()
    opened = {c.serial: c.opened_at for c in csms.connections}
    backlog: dict[int, list[float]] = {}
    for arrivals in analysis.transactions.values():
        for message in arrivals:
            if message.connection < 2:
                continue
            opened_wall = opened[message.connection] + wall_minus_mono
            if _timestamp(message.payload["timestamp"]) < opened_wall:
                backlog.setdefault(message.connection, []).append(message.at - opened[message.connection])
    if not backlog:
        return 0.0, 0
    return max(max(delays) for delays in backlog.values()), max(len(delays) for delays in backlog.values())


def station_leftovers(db: Path) -> dict[str, int]:
    """Rows left in the station's queue, dead letters and open transactions (all must be 0 after the drain)."""
    with sqlite3.connect(db) as connection:
        return {table: connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                for table in ("ocpp_queue", "ocpp_queue_dead", "ocpp_open_transactions")}


# ---------------------------------------------------------------------------------------------------------------------
# the test


async def _settle(chaos: Chaos, analysis_of: Callable[[], Analysis]) -> None:
    """After the chaos: wait (bounded) until every transaction that Started has Ended at the CSMS."""
    deadline = time.monotonic() + DRAIN_S
    while time.monotonic() < deadline:
        analysis = analysis_of()
        open_tx = [tx for tx, arrivals in analysis.transactions.items()
                   if not any(m.payload["eventType"] == "Ended" for m in arrivals)]
        if not open_tx and all(s is None for s in chaos.current.values()):
            return
        await asyncio.sleep(0.2)


async def test_ocpp_chaos_loses_and_repeats_nothing(tmp_path: Path) -> None:
    """50 CSMS disconnects and 20 station SIGKILLs (x CHARGER_TEST_SCALE) during charging sessions: every
    TransactionEvent exactly once per seqNo, in order, none lost; every acknowledged reservation kept."""
    scale = _scale()
    seed = _seed()
    print(f"ocpp chaos: seed {seed}, scale {scale} (replay: CHARGER_OCPP_CHAOS_SEED={seed})")
    began = time.monotonic()
    async with Csms(versions=("2.0.1",)) as csms:
        chaos = Chaos(tmp_path, csms, random.Random(seed), DISCONNECTS_PER_SCALE * scale, KILLS_PER_SCALE * scale)
        chaos.config = _config(tmp_path, csms.url)
        await chaos.start_station()
        await chaos.wait_online()
        answer = await csms.call("SetVariables", {"setVariableData": [
            {"component": {"name": component}, "variable": {"name": variable}, "attributeValue": value}
            for component, variable, value in (("SampledDataCtrlr", "TxUpdatedInterval", "1"),
                                               ("AuthCtrlr", "OfflineTxForUnknownIdEnabled", "true"))]})
        assert all(r["attributeStatus"] == "Accepted" for r in answer["setVariableResult"]), answer
        chaos.ready.set()
        drivers = [asyncio.create_task(chaos.drive(evse_id)) for evse_id in (1, 2)]
        try:
            await chaos.run_plan()
            chaos.finished = True
            await asyncio.wait_for(asyncio.gather(*drivers), 4 * STATE_S)
            await _settle(chaos, lambda: analyse(csms.messages))
            await asyncio.sleep(1.0)  # the last acknowledgements reach the disk
        except BaseException as exc:
            for task in drivers:
                task.cancel()
            chaos.collect_logs()
            if chaos.daemon is not None:
                await asyncio.to_thread(chaos.daemon.stop)
            raise AssertionError(f"[ocpp chaos seed {seed}; replay with CHARGER_OCPP_CHAOS_SEED={seed}; logs in "
                                 f"{tmp_path / 'logs'}]\n{exc!r}") from exc
        assert chaos.daemon is not None
        code = await asyncio.to_thread(chaos.daemon.stop)
        chaos.collect_logs()
        schema_failures = [str(failure) for failure in csms.schema_failures]
    leftovers = station_leftovers(chaos.state_dir / "ocpp.db")
    analysis = analyse(csms.messages)
    max_delay_s, max_backlog = delivery_delays(csms, analysis)

    # sessions <-> transactions
    by_token: dict[str, list[str]] = {}
    ended: dict[str, dict[str, Any]] = {}
    for tx_id, arrivals in analysis.transactions.items():
        events = sorted(arrivals, key=lambda m: m.payload["seqNo"])
        token = next((m.payload["idToken"]["idToken"] for m in events if "idToken" in m.payload), None)
        by_token.setdefault(str(token), []).append(tx_id)
        if events[-1].payload["eventType"] == "Ended":
            ended[tx_id] = events[-1].payload
    problems = list(chaos.problems)
    reasons: Counter[str] = Counter()
    for session in chaos.sessions:
        tx_ids = by_token.pop(session.token, [])
        if len(tx_ids) > 1:
            problems.append(f"{session.token}: {len(tx_ids)} transactions {tx_ids}")
        if not tx_ids:
            cut_early = session.cut_at_kill is not None and (
                session.charging_at is None or chaos.kills[session.cut_at_kill].at - session.charging_at < 1.0)
            if session.charging_at is not None and not cut_early:
                problems.append(f"{session.token}: charged (seen at {session.charging_at - began:.1f} s) but no "
                                "transaction reached the CSMS")
            continue
        final = ended.get(tx_ids[0])
        if final is None:
            continue  # reported by the analysis (no Ended)
        reason = final["transactionInfo"].get("stoppedReason", "Local")
        reasons[reason] += 1
        if session.cut_at_kill is None:
            wanted = {"Local"}
        elif session.stopped:
            wanted = {"Local", "PowerLoss"}  # stopped just before the kill: the Ended may not have been on disk yet
        elif session.stop_sent:
            wanted = {"Local", "PowerLoss"}
        else:
            wanted = {"PowerLoss"}
        if reason not in wanted:
            problems.append(f"{session.token}: transaction {tx_ids[0]} ended {reason} (wanted one of {sorted(wanted)}; "
                            f"cut by kill {session.cut_at_kill}, stop sent {session.stop_sent})")
        if reason == "PowerLoss" and session.cut_at_kill is not None:
            floor = chaos.kills[session.cut_at_kill].connection_floor
            arrival = next(m for m in analysis.transactions[tx_ids[0]] if m.payload["eventType"] == "Ended")
            if arrival.connection <= floor:
                problems.append(f"{session.token}: its PowerLoss end arrived before the restart")
    for token, tx_ids in by_token.items():
        problems.append(f"transactions {tx_ids} (token {token}) belong to no session")
    updates = [m.payload for m in csms.messages if m.action == "ReservationStatusUpdate"]
    if updates:
        problems.append(f"ReservationStatusUpdate without an expiry or removal: {updates}")
    logs = "\n".join(chaos.logs)
    tracebacks = logs.count("Traceback")
    error_lines = [line for line in logs.splitlines() if re.search(r"\b(ERROR|CRITICAL)\b", line)]

    kills_with_reservation = [k for k in chaos.kills if k.held_reservation is not None]
    summary = {
        "sessions": len(chaos.sessions),
        "sessions_charged": sum(1 for s in chaos.sessions if s.charging_at is not None),
        "sessions_completed": sum(1 for s in chaos.sessions if s.done),
        "sessions_cut_by_kill": sum(1 for s in chaos.sessions if s.cut_at_kill is not None),
        "disconnects": len(chaos.disconnects),
        "disconnects_abrupt": sum(1 for _, abrupt in chaos.disconnects if abrupt),
        "kills": len(chaos.kills),
        "kills_with_reservation_held": len(kills_with_reservation),
        "reservations_accepted": chaos.reservations_accepted,
        "reservations_kept_across_kills": sum(1 for k in kills_with_reservation if k.reservation_found),
        "reservations_lost": sum(1 for k in kills_with_reservation if k.reservation_found is False),
        "connections": len(csms.connections),
        "transactions": len(analysis.transactions),
        "stopped_reasons": dict(reasons),
        "events": analysis.events,
        "events_unique": sum(len(a) for a in analysis.transactions.values()),
        "events_made_offline": analysis.offline_events,
        "duplicates_same_message_id": analysis.resends,
        "duplicates_new_message_id": len(analysis.duplicates),
        "lost": analysis.seq_gaps + analysis.missing_started + analysis.missing_ended + leftovers["ocpp_queue_dead"],
        "seq_gaps": analysis.seq_gaps,
        "out_of_order": analysis.out_of_order,
        "missing_ended": analysis.missing_ended,
        "left_in_station": leftovers,
        "max_delivery_delay_after_reconnect_ms": round(1000 * max_delay_s, 1),
        "max_backlog_after_reconnect": max_backlog,
        "restart_median_s": round(sorted(k.restart_s for k in chaos.kills)[len(chaos.kills) // 2], 2)
        if chaos.kills else None,
        "station_tracebacks": tracebacks,
        "station_error_lines": len(error_lines),
        "schema_failures": len(schema_failures),
        "wall_s": round(time.monotonic() - began, 1),
        "scale": scale,
        "seed": seed,
    }
    line = json.dumps(summary)
    print(line)
    out = os.environ.get("CHARGER_RELIABILITY_OUT", "").strip()
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "ocpp_chaos.json").write_text(line + "\n", encoding="utf-8")

    context = f"[ocpp chaos seed {seed}; replay with CHARGER_OCPP_CHAOS_SEED={seed}; logs in {tmp_path / 'logs'}]"
    assert code == 0, f"{context} exit status {code} after SIGTERM"
    assert not analysis.duplicates, f"{context} {len(analysis.duplicates)} duplicate(s):\n" + "\n".join(
        analysis.duplicates[:10])
    assert not analysis.failures, f"{context} {len(analysis.failures)} failure(s):\n" + "\n".join(
        analysis.failures[:20])
    assert not problems, f"{context} {len(problems)} problem(s):\n" + "\n".join(problems[:20])
    assert leftovers == {"ocpp_queue": 0, "ocpp_queue_dead": 0, "ocpp_open_transactions": 0}, (context, leftovers)
    assert not schema_failures, f"{context}\n" + "\n".join(schema_failures[:10])
    assert tracebacks == 0 and not error_lines, f"{context} station errors:\n" + "\n".join(error_lines[:20])
    # the run really did what it claims, or the checks above proved little
    assert summary["disconnects"] == DISCONNECTS_PER_SCALE * scale and summary["kills"] == KILLS_PER_SCALE * scale
    assert summary["kills_with_reservation_held"] >= KILLS_PER_SCALE * scale // 4, summary
    assert reasons["PowerLoss"] >= KILLS_PER_SCALE * scale // 4, summary
    assert summary["events_made_offline"] >= 1 and summary["duplicates_same_message_id"] >= 0, summary
    assert summary["sessions_completed"] >= 10 * scale, summary


# ---------------------------------------------------------------------------------------------------------------------
# kill points the random chaos rarely hits: the station SIGKILLs itself at an exact instant

# ``python -c HOOK POINT run ...``: the daemon whose first commit of a TransactionEvent of type POINT (Started or
# Ended) is followed at once by a SIGKILL of the process: it dies right after the event and the open-transaction row
# were committed (TransactionFlow._write writes both in one SQLite transaction), before anything was sent.
HOOK = """
import os, signal, sys
from controller import cli
from controller.ocpp.station.queue import MessageQueue
original = MessageQueue.enqueue_transaction_event
def enqueue_then_die(self, ref, build, **kwargs):
    message = original(self, ref, build, **kwargs)
    if message.payload.get("event_type") == sys.argv[1]:
        os.kill(os.getpid(), signal.SIGKILL)
    return message
MessageQueue.enqueue_transaction_event = enqueue_then_die
sys.exit(cli.main(sys.argv[2:]))
"""


class HookedDaemon(Daemon):
    """A life of the station that kills itself right after the first TransactionEvent of type ``point`` is committed."""

    def __init__(self, point: str, args: list[str], log_dir: Path) -> None:
        """``point``: ``Started`` or ``Ended``."""
        super().__init__(args, log_dir)
        self.point = point

    def start(self) -> HookedDaemon:
        """Spawn ``python -c HOOK`` and wait (bounded) for the ready line, as ``Daemon.start`` does."""
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen([sys.executable, "-c", HOOK, self.point, *self.args],
                                         cwd=self.stdout_path.parent, env=env, stdout=out, stderr=err,
                                         stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + ONLINE_S
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"the hooked daemon exited early:\n{self.logs()[-3000:]}"
            for line in self.stdout_path.read_text(errors="replace").splitlines():
                if line.startswith(READY):
                    self.url = line[len(READY):].split()[0]
                    return self
            time.sleep(0.05)
        self.stop()
        raise AssertionError(f"the hooked daemon was not ready within {ONLINE_S} s:\n{self.logs()[-3000:]}")


async def _kill_point_run(tmp_path: Path, point: str, stop_by_token: bool) -> tuple[Csms, str]:
    """One session on a station that SIGKILLs itself at ``point``, a restart on the same state directory, and the
    CSMS's records once the transaction has Ended (or a bounded wait is over); (csms, the session's token)."""
    token = f"KILLPOINT-{point.upper()}"
    async with Csms(versions=("2.0.1",)) as csms:
        config = _config(tmp_path, csms.url)
        args = ["run", "--config", str(config), "--state-dir", str(tmp_path / "state")]
        (tmp_path / "life-0").mkdir()
        (tmp_path / "life-1").mkdir()
        first = HookedDaemon(point, [*args, "--api", f"127.0.0.1:{free_port('127.0.0.1')}"], tmp_path / "life-0")
        await asyncio.to_thread(first.start)
        assert first.proc is not None
        second: Daemon | None = None
        try:
            await wait_online(csms, first)
            for method, path, body in (("POST", "/evses/1/token", {"id_token": token}),
                                       ("POST", "/sim/evses/1/plug", None)):
                response = await asyncio.to_thread(call, first.url, method, path, json=body)
                assert response.status_code == 200, response.text
            if stop_by_token:
                await csms.expect("TransactionEvent", lambda p: p["eventType"] == "Started", timeout=STATE_S)
                await asyncio.sleep(1.0)
                with contextlib.suppress(requests.RequestException):  # it dies while answering, or just after
                    await asyncio.to_thread(call, first.url, "POST", "/evses/1/token", json={"id_token": token})
            code = await asyncio.to_thread(first.proc.wait, STATE_S)
            assert code == -signal.SIGKILL, f"the hook did not fire (exit status {code}):\n{first.logs()[-3000:]}"
            floor = max(c.serial for c in csms.connections)
            second = Daemon([*args, "--api", f"127.0.0.1:{free_port('127.0.0.1')}"], tmp_path / "life-1")
            await asyncio.to_thread(second.start)
            await wait_online(csms, second, after=floor)
            deadline = time.monotonic() + STATE_S
            while time.monotonic() < deadline and not any(
                    m.action == "TransactionEvent" and m.payload["eventType"] == "Ended" for m in csms.messages):
                await asyncio.sleep(0.1)
            await asyncio.sleep(2.0)  # time for anything that should not come (a second Ended)
        finally:
            for daemon in (first, second):
                if daemon is not None and daemon.proc is not None and daemon.proc.poll() is None:
                    await asyncio.to_thread(daemon.stop)
    csms.assert_valid()
    return csms, token


def _trace(csms: Csms) -> str:
    """The TransactionEvents the CSMS received: connection, message id, seqNo, type, trigger, stoppedReason."""
    return "\n".join(
        f"  connection {m.connection} id {m.unique_id[:8]} seqNo {m.payload['seqNo']} {m.payload['eventType']} "
        f"{m.payload['triggerReason']} {m.payload['transactionInfo'].get('stoppedReason', '')} "
        f"offline={m.payload.get('offline', False)}"
        for m in csms.messages if m.action == "TransactionEvent")


async def test_a_kill_right_after_the_started_event_is_queued_still_ends_the_transaction(tmp_path: Path) -> None:
    """SIGKILL right after the Started event's commit, before it was sent: the Started is delivered after the
    restart, so the transaction must also end there (PowerLoss) - a Started without an Ended never closes at the
    CSMS. (Fails if the open-transaction row is not committed with the event.)"""
    csms, token = await _kill_point_run(tmp_path, "Started", stop_by_token=False)
    analysis = analyse(csms.messages)
    trace = _trace(csms)
    assert len(analysis.transactions) == 1, f"the Started event was not delivered after the restart:\n{trace}"
    assert not analysis.duplicates, analysis.duplicates
    assert not analysis.failures, "\n".join(analysis.failures) + f"\nTransactionEvents:\n{trace}"
    (arrivals,) = analysis.transactions.values()
    assert arrivals[0].payload["idToken"]["idToken"] == token
    assert arrivals[-1].payload["transactionInfo"]["stoppedReason"] == "PowerLoss", trace


async def test_a_kill_right_after_the_ended_event_is_queued_ends_the_transaction_once(tmp_path: Path) -> None:
    """SIGKILL right after the Ended event's commit, before it was sent: after the restart the queued Ended (Local)
    is delivered, and the transaction must not be ended a second time (PowerLoss). (Fails if the open-transaction
    row is not removed in the same commit.)"""
    csms, token = await _kill_point_run(tmp_path, "Ended", stop_by_token=True)
    analysis = analyse(csms.messages)
    trace = _trace(csms)
    assert len(analysis.transactions) == 1, trace
    assert not analysis.duplicates, analysis.duplicates
    assert not analysis.failures, "\n".join(analysis.failures) + f"\nTransactionEvents:\n{trace}"
    (arrivals,) = analysis.transactions.values()
    assert arrivals[0].payload["idToken"]["idToken"] == token
    assert arrivals[-1].payload["transactionInfo"]["stoppedReason"] == "Local", trace


def test_the_analysis_catches_duplicates_gaps_disorder_and_missing_ends() -> None:
    """Self-test of ``analyse``: a resend with the same message id is counted, not failed; the same seqNo under
    another id, a gap, seqNos out of order, a second Ended and a missing Ended are each reported."""

    def event(tx: str, seq_no: int, kind: str, unique_id: str, connection: int = 1) -> Message:
        """A recorded TransactionEvent CALL."""
        payload = {"eventType": kind, "timestamp": "2026-12-06T10:00:00.000Z", "triggerReason": "Trigger",
                   "seqNo": seq_no, "transactionInfo": {"transactionId": tx}}
        return Message(seq=0, station_id=STATION_ID, connection=connection, version="2.0.1", unique_id=unique_id,
                       action="TransactionEvent", payload=payload, at=0.0, frame=json.dumps(payload), errors=[])

    clean = analyse([event("A", 0, "Started", "a0"), event("A", 1, "Updated", "a1"),
                     event("A", 1, "Updated", "a1", connection=2), event("A", 2, "Ended", "a2", connection=2)])
    assert (clean.resends, clean.duplicates, clean.failures) == (1, [], [])
    broken = analyse([
        event("B", 0, "Started", "b0"), event("B", 1, "Updated", "b1"), event("B", 1, "Updated", "b1-again"),
        event("C", 0, "Started", "c0"), event("C", 2, "Ended", "c2"),  # seqNo 1 lost
        event("D", 1, "Updated", "d1"), event("D", 0, "Started", "d0"), event("D", 2, "Ended", "d2"),  # disorder
        event("E", 0, "Started", "e0"), event("E", 1, "Ended", "e1"), event("E", 2, "Ended", "e2"),  # ended twice
    ])
    assert len(broken.duplicates) == 1 and "b1-again" in broken.duplicates[0]
    assert (broken.seq_gaps, broken.out_of_order, broken.missing_ended) == (1, 1, 1)  # B never ended
    assert any("'Ended', 'Ended'" in failure for failure in broken.failures)
