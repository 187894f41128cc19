"""The version-neutral ground of the OCPP chaos runs (test_ocpp_chaos_v201.py, test_ocpp_chaos_v16.py).

What both versions share: the size and timing of a run, the station's configuration (the embedded sim
configuration plus an ``[ocpp]`` section with a short reconnect back-off, so 70 outages fit in CI), waiting for
the station to be back online, the station's leftovers on disk, the records of a run (``Session``: one charging
session a driver ran; ``Kill``: one SIGKILL and what was found after it), and the per-version ``Flavour`` the
chaos driver (ocpp_chaos_driver.py) and the kill-point runs (ocpp_chaos_killpoint.py) are given: how the CSMS sets
the station up, reserves EVSE 2, recognises a Reserved status and the start and end of a transaction. Also the
reconciliation of the driver's sessions with the transactions the CSMS saw (one per charged session, PowerLoss
exactly for the sessions a kill cut), the delivery delays after a reconnect and the figures file, which both
versions judge alike.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sqlite3
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from security.daemon import SIM_DEFAULT, Daemon

from ..ocpp.csms import Csms, Message

if TYPE_CHECKING:
    from .ocpp_chaos_driver import Chaos

DISCONNECTS_PER_SCALE = 50
KILLS_PER_SCALE = 20
STATION_ID = "CHAOS01"
RECONNECT_MIN_S, RECONNECT_MAX_S = 0.2, 1.0
CHARGE_S = (1.5, 3.0)  # how long each session charges
HOLD_S = (0.5, 1.5)  # how long EVSE 2's reservation is held before its token comes
GAP_S = (0.3, 1.2)  # between chaos actions, once the station is online again
STATE_S = 20.0  # bound for the sim charger to reach a state (generous: CI machines are slow)
ONLINE_S = 30.0  # bound for the station to be connected and booted again
DRAIN_S = 60.0  # bound for the last messages to arrive after the chaos
RESERVATION_EXPIRY_S = 3600
RESERVED_EVSE = 2  # EVSE 2's sessions start from a reservation (its connectorId in 1.6 is 2 as well)


@dataclass(frozen=True)
class Flavour:
    """What differs between the OCPP versions for the chaos driver: a bundle of small functions.

    ``prepare(csms)`` configures the CSMS before the station connects (its answers); ``setup(csms)`` configures
    the connected station (sampling interval, offline authorization); ``reserve(id, token, expiry)`` is the
    ReserveNow payload for EVSE 2; ``reserved(payload)`` says whether a StatusNotification reports EVSE 2
    Reserved; ``started``/``ended`` recognise the CALL that starts or ends a transaction; ``kill_points`` maps
    "Started"/"Ended" to what the kill hook matches in a queued message (its action, or a TransactionEvent's
    event_type); ``figures`` names the JSON file of the run's figures.
    """

    version: str
    prepare: Callable[[Csms], None]
    setup: Callable[[Csms], Awaitable[None]]
    reserve: Callable[[int, str, str], dict[str, Any]]
    reserved: Callable[[dict[str, Any]], bool]
    started: Callable[[Message], bool]
    ended: Callable[[Message], bool]
    kill_points: dict[str, str]
    figures: str


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


def idle(evse: dict[str, Any]) -> bool:
    """A GET /status EVSE entry that is free for the next session: no car, no session, unlocked, open, no fault."""
    return (not evse["plugged_in"] and evse["phase"] == "idle" and evse["lock"] == "unlocked"
            and evse["contactor"] == "open" and not evse["faults"])


def scale() -> int:
    """CHARGER_TEST_SCALE (a whole number >= 1)."""
    text = os.environ.get("CHARGER_TEST_SCALE", "1").strip() or "1"
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"CHARGER_TEST_SCALE must be a whole number >= 1, got {text!r}")
    return int(text)


def seed() -> int:
    """CHARGER_OCPP_CHAOS_SEED, or a fresh random seed."""
    text = os.environ.get("CHARGER_OCPP_CHAOS_SEED", "").strip()
    return int(text) if text else random.SystemRandom().randrange(2**32)


def iso(seconds_from_now: float) -> str:
    """An OCPP date-time, UTC with a Z."""
    moment = datetime.now(UTC) + timedelta(seconds=seconds_from_now)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def timestamp(text: str) -> float:
    """An OCPP date-time as POSIX seconds."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def write_config(directory: Path, csms_url: str, version: str) -> Path:
    """The embedded sim configuration plus an [ocpp] section (this version) with a short reconnect back-off."""
    text = SIM_DEFAULT.read_text(encoding="utf-8")
    assert "[ocpp]" not in text, "sim_default.toml has an [ocpp] section now: merge the chaos settings into it"
    text += (f'\n[ocpp]\nurl = "{csms_url}"\nstation_id = "{STATION_ID}"\nversion = "{version}"\n'
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


def station_leftovers(db: Path) -> dict[str, int]:
    """Rows left in the station's queue, dead letters and open transactions (all must be 0 after the drain)."""
    with sqlite3.connect(db) as connection:
        return {table: connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                for table in ("ocpp_queue", "ocpp_queue_dead", "ocpp_open_transactions")}


@dataclass(frozen=True)
class TxEnd:
    """How a transaction the CSMS saw ended: its id, the stop reason, and the connection its end arrived on."""

    tx_id: str
    reason: str | None  # None: it never ended (reported by the version's own analysis)
    connection: int


def reconcile(chaos: Chaos, by_token: dict[str, list[TxEnd]], began: float) -> tuple[list[str], Counter[str]]:
    """The driver's sessions against the CSMS's transactions, by token: (problems, stop reasons).

    Each session that charged (for long enough before a kill) has exactly one transaction; a session a kill cut
    ends PowerLoss after the restart (or Local when its stop was already under way), the others Local; no
    transaction belongs to no session.
    """
    problems = list(chaos.problems)
    reasons: Counter[str] = Counter()
    left = dict(by_token)
    for session in chaos.sessions:
        ends = left.pop(session.token, [])
        if len(ends) > 1:
            problems.append(f"{session.token}: {len(ends)} transactions {[e.tx_id for e in ends]}")
        if not ends:
            cut_early = session.cut_at_kill is not None and (
                session.charging_at is None or chaos.kills[session.cut_at_kill].at - session.charging_at < 1.0)
            if session.charging_at is not None and not cut_early:
                problems.append(f"{session.token}: charged (seen at {session.charging_at - began:.1f} s) but no "
                                "transaction reached the CSMS")
            continue
        end = ends[0]
        if end.reason is None:
            continue  # reported by the analysis (no end)
        reasons[end.reason] += 1
        if session.cut_at_kill is None:
            wanted = {"Local"}
        elif session.stopped or session.stop_sent:
            wanted = {"Local", "PowerLoss"}  # stopped just before the kill: the end may not have been on disk yet
        else:
            wanted = {"PowerLoss"}
        if end.reason not in wanted:
            problems.append(f"{session.token}: transaction {end.tx_id} ended {end.reason} (wanted one of "
                            f"{sorted(wanted)}; cut by kill {session.cut_at_kill}, stop sent {session.stop_sent})")
        if end.reason == "PowerLoss" and session.cut_at_kill is not None \
                and end.connection <= chaos.kills[session.cut_at_kill].connection_floor:
            problems.append(f"{session.token}: its PowerLoss end arrived before the restart")
    for token, ends in left.items():
        problems.append(f"transactions {[e.tx_id for e in ends]} (token {token}) belong to no session")
    return problems, reasons


def chaos_figures(chaos: Chaos) -> dict[str, Any]:
    """The figures of the run itself: sessions, disconnects, kills, reservations, connections, restarts."""
    kills_with_reservation = [k for k in chaos.kills if k.held_reservation is not None]
    return {
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
        "connections": len(chaos.csms.connections),
        "restart_median_s": round(sorted(k.restart_s for k in chaos.kills)[len(chaos.kills) // 2], 2)
        if chaos.kills else None,
    }


def write_figures(name: str, summary: dict[str, Any]) -> None:
    """Print the figures as one JSON line and write them to ``$CHARGER_RELIABILITY_OUT/<name>`` when that is set."""
    line = json.dumps(summary)
    print(line)
    out = os.environ.get("CHARGER_RELIABILITY_OUT", "").strip()
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / name).write_text(line + "\n", encoding="utf-8")


def delivery_delays(csms: Csms, made: Iterable[tuple[Message, float]]) -> tuple[float, int]:
    """The longest time from a reconnect to the arrival of the last message made before it (the backlog), in
    seconds, and the largest such backlog. ``made``: (first arrival, POSIX time the station made it)."""
    wall_minus_mono = time.time() - time.monotonic()
    opened = {c.serial: c.opened_at for c in csms.connections}
    backlog: dict[int, list[float]] = {}
    for message, made_at in made:
        if message.connection < 2:
            continue
        if made_at < opened[message.connection] + wall_minus_mono:
            backlog.setdefault(message.connection, []).append(message.at - opened[message.connection])
    if not backlog:
        return 0.0, 0
    return max(max(delays) for delays in backlog.values()), max(len(delays) for delays in backlog.values())
