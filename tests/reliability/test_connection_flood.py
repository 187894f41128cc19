"""Connection flood: 2,000 idle or half-sent connections while a real client charges and reads the status.

``run --sim`` runs as a subprocess under a soft and hard open-file limit of 1024, as a service started with
distribution defaults would. The test opens 2,000 TCP connections to it that send nothing or only part of a
request head (a port scanner, a broken client, a slowloris) and, meanwhile, a well-behaved client keeps
asking ``GET /status`` on fresh connections and charges: a token at an EVSE, then the simulated plug, then
polling ``/status`` until the contactor reads closed.

Before the server bounded its connections, the flood used up the daemon's descriptors: asyncio's accept
then failed and paused for a second at a time (logging a traceback per failed accept, up to 128 a second),
and every client waited for 3 to over 10 s or timed out. Now: every status request is answered, each plug
leads to a closed contactor within a generous functional bound, and the daemon's log stays small.

Size: 2,000 connections and 4 charging rounds times ``CHARGER_TEST_SCALE``. With ``CHARGER_RELIABILITY_OUT``
naming a directory, the one-line JSON summary printed at the end is also written to connection_flood.json.
"""

from __future__ import annotations

import contextlib
import errno
import http.client
import json
import os
import re
import resource
import selectors
import socket
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from security.daemon import Daemon, free_port

HOST = "127.0.0.1"
DAEMON_NOFILE = 1024  # the limit of the original fault (a common default soft limit)
CONNECTIONS_PER_SCALE = 2000
PLUG_ROUNDS_PER_SCALE = 4
CONTACTOR_BOUND_S = 5.0  # functional bound: the fault made this 3 to > 10 s (or a timeout)
REQUEST_TIMEOUT_S = 10.0  # a hang guard per request; a timeout counts as a failed request
STATUS_EVERY_S = 0.1
ACCEPT_NOISE = re.compile(r"accept|out of system resource|Too many open files", re.IGNORECASE)
PARTIAL_HEAD = b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Flood: "  # never finished

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="POSIX limits and a Linux TCP stack")


def _scale() -> int:
    """CHARGER_TEST_SCALE (a whole number >= 1)."""
    text = os.environ.get("CHARGER_TEST_SCALE", "1").strip() or "1"
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"CHARGER_TEST_SCALE must be a whole number >= 1, got {text!r}")
    return int(text)


def _limit_descriptors() -> None:
    """In the child before exec: the daemon gets soft = hard = DAEMON_NOFILE, so it cannot raise it."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (DAEMON_NOFILE, DAEMON_NOFILE))


def _ms(seconds: float) -> float:
    """Seconds as milliseconds for the summary."""
    return round(seconds * 1000.0, 1)


RESETS_RETRIED: list[str] = []  # requests whose fresh connection the server closed before reading them


def request(port: int, method: str, path: str, body: object = None) -> tuple[int, Any]:
    """One request as a well-behaved client sends it (JSON Content-Type on a POST), on a fresh connection.

    At its cap the server may close the longest-idle connection, which can be a client's brand-new one whose
    request it has not read yet (only connections without a request in progress are closed, so nothing was
    done): like any HTTP client, this one then tries again, up to twice, and the retries are counted.
    """
    for attempt in range(3):
        try:
            return _request_once(port, method, path, body)
        except (ConnectionResetError, http.client.RemoteDisconnected) as exc:
            if attempt == 2:
                raise
            RESETS_RETRIED.append(f"{method} {path}: {type(exc).__name__}")
    raise AssertionError("unreachable")


def _request_once(port: int, method: str, path: str, body: object = None) -> tuple[int, Any]:
    """One request on one fresh connection."""
    conn = http.client.HTTPConnection(HOST, port, timeout=REQUEST_TIMEOUT_S)
    try:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if method == "POST" else {}
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        raw = response.read()
        return response.status, json.loads(raw) if raw else None
    finally:
        conn.close()


class Flood:
    """Opens ``count`` non-blocking connections as fast as it can; each sends nothing or a partial head.

    A connection the server closes is closed here too (its descriptor freed); the rest are held until ``close``.
    """

    def __init__(self, port: int, count: int) -> None:
        self.port = port
        self.count = count
        self.stats: Counter[str] = Counter()
        self.opened_s = 0.0
        self._selector = selectors.DefaultSelector()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="flood", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> None:
        """Begin flooding in a background thread."""
        self._thread.start()

    def close(self) -> None:
        """Stop, count what is still open, and close every socket."""
        self._stop.set()
        self._thread.join(30)
        still = len(self._selector.get_map())
        self.stats["still_open_at_end"] = still
        for key in list(self._selector.get_map().values()):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            self._selector.unregister(sock)
            sock.close()
        self._selector.close()

    def _run(self) -> None:
        """Open all connections as fast as possible, then keep watching them until stopped."""
        try:
            started = time.monotonic()
            for index in range(self.count):
                if self._stop.is_set():
                    break
                self._open(index)
                if index % 50 == 49:
                    self._poll(0)
            self.opened_s = time.monotonic() - started
            while not self._stop.is_set():
                self._poll(0.05)
        except BaseException as exc:  # reported by the test
            self.error = exc

    def _open(self, index: int) -> None:
        """Start one non-blocking connect."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        self.stats["attempted"] += 1
        code = sock.connect_ex((HOST, self.port))
        if code not in (0, errno.EINPROGRESS):
            self.stats[f"connect_failed_{errno.errorcode.get(code, code)}"] += 1
            sock.close()
            return
        self._selector.register(sock, selectors.EVENT_WRITE, ("connecting", index))

    def _poll(self, timeout: float) -> None:
        """Finish connects (sending nothing or a partial head) and notice connections the server closed."""
        for key, _ in self._selector.select(timeout):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            phase, index = key.data
            if phase == "connecting":
                code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if code:
                    self.stats[f"connect_failed_{errno.errorcode.get(code, code)}"] += 1
                    self._drop(sock)
                    continue
                self.stats["connected"] += 1
                if index % 2:
                    with contextlib.suppress(OSError):
                        sock.send(PARTIAL_HEAD)
                        self.stats["sent_partial_head"] += 1
                self._selector.modify(sock, selectors.EVENT_READ, ("open", index))
            else:
                try:
                    data = sock.recv(4096)
                except OSError:
                    data = b""
                if not data:
                    self.stats["closed_by_server"] += 1
                    self._drop(sock)
                else:
                    self.stats["answered"] += 1  # not expected: nothing complete was sent

    def _drop(self, sock: socket.socket) -> None:
        """Forget and close one socket."""
        self._selector.unregister(sock)
        sock.close()


@dataclass
class StatusProbe:
    """``GET /status`` on a fresh connection every STATUS_EVERY_S, timing each."""

    port: int
    pid: int = 0
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    max_open_fds: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        """Begin probing in a background thread."""
        self._thread = threading.Thread(target=self._run, name="status-probe", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop probing and wait for the last probe."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(REQUEST_TIMEOUT_S + 5)

    def _run(self) -> None:
        """Probe until stopped; also sample the daemon's open descriptors."""
        while not self._stop.is_set():
            with contextlib.suppress(OSError):  # the daemon's descriptors, as the kernel counts them
                self.max_open_fds = max(self.max_open_fds, len(os.listdir(f"/proc/{self.pid}/fd")))
            started = time.monotonic()
            try:
                status, _ = request(self.port, "GET", "/status")
            except (OSError, http.client.HTTPException) as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")
            else:
                if status == 200:
                    self.latencies.append(time.monotonic() - started)
                else:
                    self.failures.append(f"HTTP {status}")
            self._stop.wait(STATUS_EVERY_S)


def _evse(port: int, evse_id: int) -> dict[str, Any]:
    """One EVSE's entry in GET /status."""
    status, doc = request(port, "GET", "/status")
    assert status == 200, (status, doc)
    evse: dict[str, Any] = next(e for e in doc["evses"] if e["id"] == evse_id)
    return evse


def _wait_for(port: int, evse_id: int, what: str, check: Any, bound_s: float) -> float:
    """Poll /status until ``check(evse)``; the seconds it took (fails after ``bound_s``)."""
    started = time.monotonic()
    last: dict[str, Any] = {}
    while time.monotonic() - started < bound_s:
        last = _evse(port, evse_id)
        if check(last):
            return time.monotonic() - started
        time.sleep(0.02)
    raise AssertionError(f"EVSE {evse_id}: {what} not within {bound_s} s; last status {last}")


def _charge(port: int, evse_id: int) -> float:
    """Token, plug, contactor closed: the seconds from sending the plug to /status showing it closed."""
    status, outcome = request(port, "POST", f"/evses/{evse_id}/token", {"id_token": "ALICE"})
    assert status == 200 and outcome["may_charge"] is True, (status, outcome)
    started = time.monotonic()
    status, doc = request(port, "POST", f"/sim/evses/{evse_id}/plug")
    assert status == 200, (status, doc)
    _wait_for(port, evse_id, "contactor closed", lambda e: e["contactor"] == "closed", CONTACTOR_BOUND_S)
    return time.monotonic() - started


def _end_session(port: int, evse_id: int) -> None:
    """The same token stops; once the lock has released, the car unplugs (generous bounds: meter polls)."""
    status, outcome = request(port, "POST", f"/evses/{evse_id}/token", {"id_token": "ALICE"})
    assert status == 200 and outcome["verdict"] == "stopped", (status, outcome)
    _wait_for(port, evse_id, "lock released", lambda e: e["contactor"] == "open" and e["lock"] == "unlocked", 15.0)
    status, doc = request(port, "POST", f"/sim/evses/{evse_id}/unplug")
    assert status == 200, (status, doc)
    _wait_for(port, evse_id, "idle", lambda e: not e["plugged_in"] and e["phase"] == "idle", 5.0)


@contextlib.contextmanager
def _own_descriptors(needed: int) -> Iterator[int]:
    """Raise this process's soft open-file limit for the flood; the count it allows (and restore after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    try:
        yield target
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_connection_flood_does_not_starve_the_api(tmp_path: Path) -> None:
    scale = _scale()
    wall = time.monotonic()
    with _own_descriptors(CONNECTIONS_PER_SCALE * scale + 512) as allowed:
        count = min(CONNECTIONS_PER_SCALE * scale, allowed - 256)
        assert count >= DAEMON_NOFILE + 200, f"this machine's hard open-file limit ({allowed}) is too low to flood"
        log_dir = tmp_path / "logs"
        log_dir.mkdir()
        args = ["run", "--sim", "--api", f"{HOST}:{free_port(HOST)}", "--state-dir", str(tmp_path / "state")]
        daemon = Daemon(args, log_dir, preexec_fn=_limit_descriptors)
        flood = Flood(0, count)
        probe = StatusProbe(0)
        plug_latencies: list[float] = []
        plug_failures: list[str] = []
        try:
            daemon.start()
            flood.port = probe.port = daemon.port
            assert daemon.proc is not None
            probe.pid = daemon.proc.pid
            flood_started = time.monotonic()
            flood.start()
            probe.start()
            rounds = PLUG_ROUNDS_PER_SCALE * scale
            for done in range(rounds):
                if len(plug_failures) >= 2:  # the figures are clear; do not wait out more timeouts
                    break
                evse_id = 1 + done % 2
                try:
                    plug_latencies.append(_charge(daemon.port, evse_id))
                    if evse_id == 2 or done == rounds - 1:
                        for ending in range(1, evse_id + 1):
                            _end_session(daemon.port, ending)
                except (AssertionError, OSError, http.client.HTTPException) as exc:
                    plug_failures.append(f"round {done}, EVSE {evse_id}: {type(exc).__name__}: {exc}")
            measured_s = time.monotonic() - flood_started
            probe.stop()
        finally:
            probe.stop()
            flood.close()
            code = daemon.stop()
        assert flood.error is None, repr(flood.error)

    log = daemon.logs()
    lines = log.splitlines()
    summary: dict[str, Any] = {
        "test": "connection_flood",
        "scale": scale,
        "daemon_open_file_limit": DAEMON_NOFILE,
        "connections_attempted": flood.stats["attempted"],
        "connections_established": flood.stats["connected"],
        "connections_closed_by_server": flood.stats["closed_by_server"],
        "connections_still_open_at_end": flood.stats["still_open_at_end"],
        "connect_failures": {k.removeprefix("connect_failed_"): v for k, v in sorted(flood.stats.items())
                             if k.startswith("connect_failed_")},
        "flood_opened_in_s": round(flood.opened_s, 2),
        "status_requests_ok": len(probe.latencies),
        "status_requests_failed": len(probe.failures),
        "status_median_ms": _ms(statistics.median(probe.latencies)) if probe.latencies else None,
        "status_max_ms": _ms(max(probe.latencies)) if probe.latencies else None,
        "plug_rounds": len(plug_latencies),
        "plug_rounds_failed": len(plug_failures),
        "client_requests_retried_after_reset": len(RESETS_RETRIED),
        "plug_to_contactor_closed_median_ms": _ms(statistics.median(plug_latencies)) if plug_latencies else None,
        "plug_to_contactor_closed_max_ms": _ms(max(plug_latencies)) if plug_latencies else None,
        "daemon_max_open_descriptors": probe.max_open_fds,
        "daemon_log_lines": len(lines),
        "accept_error_log_lines": sum(1 for line in lines if ACCEPT_NOISE.search(line)),
        "connection_cap_log_lines": sum(1 for line in lines if "cap of open connections" in line),
        "send_warning_log_lines": sum(1 for line in lines if "socket.send() raised exception" in line),
        "measured_s": round(measured_s, 1),
        "wall_s": round(time.monotonic() - wall, 1),
    }
    line = json.dumps(summary, sort_keys=True)
    print(line)
    out = os.environ.get("CHARGER_RELIABILITY_OUT", "").strip()
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "connection_flood.json").write_text(line + "\n", encoding="utf-8")

    assert code == 0, f"exit status {code} after SIGTERM:\n{log[-3000:]}"
    assert summary["connections_established"] >= DAEMON_NOFILE, summary  # the flood exceeded the daemon's limit
    assert 0 < probe.max_open_fds < DAEMON_NOFILE - 100, summary  # bounded well below the limit
    assert plug_failures == [], plug_failures
    assert probe.failures == [], probe.failures[:10]
    assert summary["status_requests_ok"] >= 10, summary
    assert summary["plug_rounds"] == PLUG_ROUNDS_PER_SCALE * scale
    assert summary["accept_error_log_lines"] < 20, "\n".join(line for line in lines if ACCEPT_NOISE.search(line))[:3000]
    assert summary["send_warning_log_lines"] == 0, summary
    assert summary["daemon_log_lines"] < 400, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
