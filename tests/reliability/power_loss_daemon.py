"""The daemon under test as a real process: ``run --sim`` started, talked to over HTTP and SIGKILLed.

Used by test_power_loss.py. Every start gets a fresh loopback port and its own stdout/stderr files,
so the logs of all runs can be scanned afterwards (tracebacks, store errors). A request reports
exactly what the client knows about its fate: answered, never sent (connection refused), or sent
without an answer (outcome unknown) - the distinction the power-loss ledger is built on.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
HOOKED_CLI = Path(__file__).resolve().with_name("power_loss_hooked_cli.py")
HOST = "127.0.0.1"
# Hang guards only (the test asserts no durations): a start takes ~1 s, a request a few ms.
START_GUARD_S = 60.0
REQUEST_GUARD_S = 20.0
EXIT_GUARD_S = 30.0

# Log lines that must never appear in any run: a traceback, anything logged at ERROR or above, and the
# store's complaints (a StoreError at start is printed as "cannot run: ..."; unreadable rows are quarantined).
_BAD_LOG = re.compile(r"Traceback \(most recent call last\)| (ERROR|CRITICAL) |StoreError|quarantin|cannot run")


class DaemonGone(RuntimeError):
    """The daemon exited (or never answered) when it should have been serving; the message says how."""


class NotSent(Exception):
    """The request never reached the daemon (connection refused): it certainly had no effect."""


class Unanswered(Exception):
    """The request was (possibly) sent but no complete answer came back: its outcome is unknown."""


def free_port() -> int:
    """A loopback TCP port that was free a moment ago (the daemon's --api needs a number, not 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


@dataclass
class Answer:
    """A complete HTTP answer."""

    status: int
    body: Any


def call(
    port: int,
    method: str,
    path: str,
    body: object = None,
    *,
    after_send: Callable[[], None] | None = None,
) -> Answer:
    """One request on a fresh connection (no keep-alive: a stale pooled connection would blur the ledger).

    Raises NotSent when the connection is refused, Unanswered when it broke after connecting;
    ``after_send`` runs between sending the request and reading the answer (the kill point).
    """
    conn = http.client.HTTPConnection(HOST, port, timeout=REQUEST_GUARD_S)
    try:
        try:
            conn.connect()
        except ConnectionRefusedError as exc:
            raise NotSent(str(exc)) from exc
        try:
            data = None if body is None else json.dumps(body).encode()
            headers = {"Content-Type": "application/json"} if data is not None else {}
            conn.request(method, path, body=data, headers=headers)
            if after_send is not None:
                after_send()
            response = conn.getresponse()
            raw = response.read()
        except TimeoutError:
            raise  # a daemon that hangs is a failure, not an unknown outcome
        except (OSError, http.client.HTTPException) as exc:
            raise Unanswered(f"{type(exc).__name__}: {exc}") from exc
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode(errors="replace")
        return Answer(response.status, parsed)
    finally:
        conn.close()


class SimDaemon:
    """One ``charger-controller run --sim`` process on a state directory, with its logs in ``log_dir``.

    ``hook`` runs it through power_loss_hooked_cli.py with that fault hook (harness self-tests, reproductions).
    """

    def __init__(self, state_dir: Path, log_dir: Path, index: int, hook: str | None = None) -> None:
        self.state_dir = state_dir
        self.index = index
        self.hook = hook
        self.stdout_path = log_dir / f"run-{index:04d}.stdout"
        self.stderr_path = log_dir / f"run-{index:04d}.stderr"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.kill_issued = False  # set before the SIGKILL is sent, so a failing request can see it

    def spawn(self) -> None:
        """Start the process on a fresh port (without waiting for it)."""
        self.port = free_port()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
        env["PYTHONUNBUFFERED"] = "1"
        entry = ["-m", "controller.cli"] if self.hook is None else [str(HOOKED_CLI), self.hook]
        cmd = [
            sys.executable, *entry, "run", "--sim",
            "--api", f"{HOST}:{self.port}", "--state-dir", str(self.state_dir),
        ]  # fmt: skip
        with self.stdout_path.open("ab") as out, self.stderr_path.open("ab") as err:
            self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)

    def start(self, attempts: int = 5) -> float:
        """Spawn and wait until ``GET /status`` answers 200; returns seconds from spawn to ready.

        A port taken between probing and binding is retried on another port; any other early exit
        is a DaemonGone with the log tail.
        """
        for _ in range(attempts):
            began = time.monotonic()
            self.spawn()
            if self.wait_ready():
                return time.monotonic() - began
        raise DaemonGone(f"run {self.index}: no free API port after {attempts} attempts\n{self.log_tail()}")

    def wait_ready(self) -> bool:
        """True once it printed its ready line for our port and /status answers; False if its port was taken.

        The ready line comes first because other processes on this machine also serve on loopback ports:
        a /status answer alone could come from a stranger that took the port between probe and bind.
        """
        proc = self._proc()
        ready_line = f"ready: API on http://{HOST}:{self.port} "
        deadline = time.monotonic() + START_GUARD_S
        while time.monotonic() < deadline:
            code = proc.poll()
            if code is not None:
                if code == 1 and "cannot serve the HTTP API" in self.stderr():
                    return False
                raise DaemonGone(f"run {self.index}: exited with {code} while starting\n{self.log_tail()}")
            if ready_line in self.stdout_path.read_text(errors="replace"):
                try:
                    if call(self.port, "GET", "/status").status == 200:
                        return True
                except (NotSent, Unanswered):
                    pass
            time.sleep(0.02)
        raise DaemonGone(f"run {self.index}: not ready within {START_GUARD_S} s\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is flushed or closed - as close to pulling the plug as a process gets."""
        proc = self._proc()
        self.kill_issued = True
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)

    def reap_killed(self) -> None:
        """Wait for the process and check that our SIGKILL is what ended it."""
        code = self._proc().wait(timeout=EXIT_GUARD_S)
        if code != -signal.SIGKILL:
            raise DaemonGone(f"run {self.index}: ended with {code}, not by our SIGKILL\n{self.log_tail()}")

    def terminate(self) -> int:
        """SIGTERM (the orderly stop) and the exit status."""
        proc = self._proc()
        proc.send_signal(signal.SIGTERM)
        return proc.wait(timeout=EXIT_GUARD_S)

    def ensure_dead(self) -> None:
        """Cleanup after a failure: never leave a daemon running."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=EXIT_GUARD_S)

    def alive(self) -> bool:
        """Is the process still running?"""
        return self._proc().poll() is None

    def stderr(self) -> str:
        """Everything the process logged so far."""
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def bad_log_lines(self) -> list[str]:
        """Tracebacks, ERROR/CRITICAL lines and store complaints in this run's stderr.

        A start that found its port taken (retried on another port by ``start``) is not a complaint.
        """
        lines = self.stderr().splitlines()
        return [line for line in lines if _BAD_LOG.search(line) and "cannot serve the HTTP API" not in line]

    def log_tail(self, lines: int = 25) -> str:
        """The end of stderr, for failure messages."""
        tail = self.stderr().splitlines()[-lines:]
        return f"--- {self.stderr_path} (last {len(tail)} lines) ---\n" + "\n".join(tail)

    def _proc(self) -> subprocess.Popen[bytes]:
        if self.proc is None:
            raise RuntimeError("daemon not spawned")
        return self.proc
