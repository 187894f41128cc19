"""The real daemon (``run --sim`` as a subprocess) under a fake systemd: READY, WATCHDOG, STATUS and STOPPING.

The test binds the notification socket itself (a real AF_UNIX datagram socket, by path or in the abstract
namespace) and hands it over in ``$NOTIFY_SOCKET``, with ``$WATCHDOG_USEC`` as systemd would. Every
datagram is recorded with the monotonic time it arrived. Time bounds are generous and the assertions
are about presence, absence and order, never about speed.
"""

from __future__ import annotations

import itertools
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from security.daemon import EXIT_GUARD_S, READY, REPO, START_GUARD_S, free_port

from controller.daemon import BLOCK_HOOK_ENV

Message = tuple[float, str]  # (time.monotonic() on arrival, the datagram's text)


class FakeSystemd:
    """The notification socket's receiving end: a thread records every datagram with its arrival time."""

    def __init__(self, address: str) -> None:
        """Bind ``address`` (a path, or ``@name`` for the abstract namespace) and start receiving."""
        self.address = address  # as NOTIFY_SOCKET spells it
        bind_to = "\0" + address[1:] if address.startswith("@") else address
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.bind(bind_to)
        self._socket.settimeout(0.2)
        self._lock = threading.Lock()
        self._messages: list[Message] = []
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        """The thread: record datagrams until closed."""
        while not self._closed.is_set():
            try:
                data = self._socket.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self._messages.append((time.monotonic(), data.decode()))

    def messages(self) -> list[Message]:
        """Everything received so far, in order."""
        with self._lock:
            return list(self._messages)

    def with_line(self, line: str) -> list[Message]:
        """The messages holding ``line`` (``WATCHDOG=1``) or an assignment starting so (``STATUS=``)."""
        return [(t, text) for t, text in self.messages() if any(part.startswith(line) for part in text.split("\n"))]

    def wait_for(self, what: str, check: Callable[[], bool], within_s: float, proc: subprocess.Popen[bytes]) -> None:
        """Poll ``check`` until it holds; fail (with what was received) if the time runs out or the daemon exits."""
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            if check():
                return
            if proc.poll() is not None:
                pytest.fail(f"the daemon exited ({proc.returncode}) before {what}; received {self.messages()}")
            time.sleep(0.01)
        pytest.fail(f"no {what} within {within_s} s; received {self.messages()}")

    def close(self) -> None:
        """Stop the thread and close the socket."""
        self._closed.set()
        self._thread.join(timeout=5)
        self._socket.close()


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    """A short directory for the socket path (sun_path holds 108 bytes; pytest's tmp_path can be longer)."""
    with tempfile.TemporaryDirectory(prefix="sdn-") as name:
        yield Path(name)


class SimDaemon:
    """``charger-controller run --sim`` on a free loopback port, notifying ``systemd``; logs in ``log_dir``."""

    def __init__(self, systemd: FakeSystemd, log_dir: Path, port: int | None = None, **environ: str) -> None:
        """Spawn it with ``$NOTIFY_SOCKET`` pointing at ``systemd`` and ``environ`` added to its environment."""
        self.port = port or free_port("127.0.0.1")
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / "daemon.log"
        env = {k: v for k, v in os.environ.items()
               if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "CHARGER_API_TOKEN", BLOCK_HOOK_ENV)}
        env |= {"PYTHONPATH": os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p),
                "PYTHONUNBUFFERED": "1", "NOTIFY_SOCKET": systemd.address, **environ}
        args = ["run", "--sim", "--state-dir", str(log_dir / "state"), "--api", f"127.0.0.1:{self.port}"]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "controller.cli", *args], cwd=log_dir, env=env,
                                         stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def logs(self) -> str:
        """Everything the daemon wrote so far (stdout and stderr)."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def status(self) -> requests.Response:
        """GET /status, answered within a generous bound."""
        return requests.get(f"{self.url}/status", timeout=10)

    def stop(self) -> int:
        """SIGTERM, the orderly stop; the exit status (killed, and the test failed, if it hangs)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=EXIT_GUARD_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=EXIT_GUARD_S)
            pytest.fail(f"the daemon did not stop on SIGTERM:\n{self.logs()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL if still running (the fixture's clean-up after a failed test)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=EXIT_GUARD_S)


@pytest.fixture
def running() -> Iterator[list[SimDaemon]]:
    """Daemons a test starts; any still running at the end are killed."""
    daemons: list[SimDaemon] = []
    yield daemons
    for daemon in daemons:
        daemon.kill()


def gaps(times: list[float]) -> list[float]:
    """The intervals between successive arrival times."""
    return [b - a for a, b in itertools.pairwise(times)]


def test_ready_comes_after_the_api_answers_then_status_keep_alives_and_stopping(
    socket_dir: Path, tmp_path: Path, running: list[SimDaemon]
) -> None:
    systemd = FakeSystemd(str(socket_dir / "notify"))
    try:
        daemon = SimDaemon(systemd, tmp_path, WATCHDOG_USEC="3000000")  # WatchdogSec=3: a keep-alive every 1.5 s
        running.append(daemon)
        systemd.wait_for("READY=1", lambda: bool(systemd.with_line("READY=1")), START_GUARD_S, daemon.proc)

        # At the moment READY=1 arrived, the API was already accepting: it had said so, and it answers now.
        logs_at_ready = daemon.logs()
        answer = daemon.status()
        assert "HTTP API listening on" in logs_at_ready
        assert READY in logs_at_ready
        assert "controller running with 2 EVSEs" in logs_at_ready  # drivers and store were up before the API
        assert answer.status_code == 200 and len(answer.json()["evses"]) == 2
        first = systemd.messages()[0][1]
        assert first.split("\n") == ["READY=1", "STATUS=2 EVSEs: 2 available; store ok"]

        # STATUS= follows a change (a welded contactor makes EVSE 2 Faulted), at most every few seconds.
        injected = requests.post(f"{daemon.url}/sim/faults", json={"evse_id": 2, "kind": "weld"}, timeout=10)
        assert injected.status_code == 200, injected.text
        systemd.wait_for("a STATUS= with the fault", lambda: any(
            "STATUS=2 EVSEs: 1 available, 1 faulted; store ok" in text for _, text in systemd.with_line("STATUS=")
        ), 20, daemon.proc)
        status_times = [t for t, _ in systemd.with_line("STATUS=")]
        assert all(gap >= 1.0 for gap in gaps(status_times)), gaps(status_times)

        # WATCHDOG=1 keep-alives at about half of WatchdogSec, never a gap as long as WatchdogSec itself.
        systemd.wait_for("5 keep-alives", lambda: len(systemd.with_line("WATCHDOG=1")) >= 5, 30, daemon.proc)
        ready_at = systemd.with_line("READY=1")[0][0]
        pings = [t for t, _ in systemd.with_line("WATCHDOG=1")]
        assert pings[0] > ready_at  # never before READY=1
        assert 0.75 <= statistics.median(gaps(pings)) <= 2.25, gaps(pings)
        assert max(gaps(pings)) < 3.0, gaps(pings)

        assert daemon.stop() == 0
        time.sleep(0.3)  # the last datagram was sent before the daemon exited; leave the thread a moment
        last_at, last = systemd.messages()[-1]
        assert last.split("\n")[0] == "STOPPING=1"
        assert not [t for t, _ in systemd.with_line("WATCHDOG=1") if t > last_at]
    finally:
        systemd.close()


def test_keep_alives_stop_while_the_loop_is_blocked_and_resume_after(tmp_path: Path, running: list[SimDaemon]) -> None:
    """SIGUSR2 (the test hook) blocks the event loop for 4 s: no WATCHDOG=1 meanwhile, then they come back."""
    systemd = FakeSystemd(f"@charger-test-{secrets.token_hex(8)}")  # the abstract namespace, as NOTIFY_SOCKET=@...
    try:
        daemon = SimDaemon(systemd, tmp_path, WATCHDOG_USEC="2000000", **{BLOCK_HOOK_ENV: "4"})
        running.append(daemon)
        systemd.wait_for("READY=1", lambda: bool(systemd.with_line("READY=1")), START_GUARD_S, daemon.proc)
        systemd.wait_for("3 keep-alives", lambda: len(systemd.with_line("WATCHDOG=1")) >= 3, 30, daemon.proc)

        signalled = time.monotonic()
        daemon.proc.send_signal(signal.SIGUSR2)
        systemd.wait_for("keep-alives after the block", lambda: len(
            [t for t, _ in systemd.with_line("WATCHDOG=1") if t > signalled + 4.0]) >= 2, 30, daemon.proc)

        pings = [t for t, _ in systemd.with_line("WATCHDOG=1")]
        before = [t for t in pings if signalled - 2.5 < t <= signalled]
        during = [t for t in pings if signalled + 0.5 < t < signalled + 3.5]
        assert len(before) >= 2, pings  # they were coming at their cadence (every 1 s) until the block
        assert during == [], [t - signalled for t in pings]
        logs = daemon.logs()
        assert "test hook: blocking the event loop for 4.0 s" in logs
        # the first check after the block found its evidence stale: no keep-alive on waking, only after a new round
        assert "watchdog keep-alive withheld: the event loop did not turn for" in logs
        assert "watchdog keep-alive resumed" in logs
        assert daemon.status().status_code == 200  # alive all along: only the keep-alives stopped
        assert daemon.stop() == 0
    finally:
        systemd.close()


def test_no_ready_when_the_api_cannot_start(socket_dir: Path, tmp_path: Path, running: list[SimDaemon]) -> None:
    """The API's port is taken: the start fails and systemd never hears READY=1 (only STOPPING=1)."""
    systemd = FakeSystemd(str(socket_dir / "notify"))
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            daemon = SimDaemon(systemd, tmp_path, port=taken.getsockname()[1], WATCHDOG_USEC="2000000")
            running.append(daemon)
            assert daemon.proc.wait(timeout=START_GUARD_S) == 1, daemon.logs()
        time.sleep(0.3)
        texts = [text for _, text in systemd.messages()]
        assert not any("READY=1" in text or "WATCHDOG=1" in text for text in texts), texts
        assert "cannot run" in daemon.logs()
    finally:
        systemd.close()


def test_no_keep_alives_without_a_watchdog(socket_dir: Path, tmp_path: Path, running: list[SimDaemon]) -> None:
    """NOTIFY_SOCKET without WATCHDOG_USEC (no WatchdogSec=): READY=1 and STOPPING=1, never WATCHDOG=1."""
    systemd = FakeSystemd(str(socket_dir / "notify"))
    try:
        daemon = SimDaemon(systemd, tmp_path)
        running.append(daemon)
        systemd.wait_for("READY=1", lambda: bool(systemd.with_line("READY=1")), START_GUARD_S, daemon.proc)
        time.sleep(2.5)
        assert daemon.stop() == 0
        time.sleep(0.3)
        texts = [text for _, text in systemd.messages()]
        assert texts[0].startswith("READY=1\n") and texts[-1].startswith("STOPPING=1\n"), texts
        assert not any("WATCHDOG=1" in text for text in texts), texts
    finally:
        systemd.close()
