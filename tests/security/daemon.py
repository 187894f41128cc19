"""Running the real daemon (``python -m controller.cli run``) as a subprocess for the security tests.

Its stdout and stderr go to files, so a test can read every log line the process wrote (a pipe could
fill up and stall it). Configuration files are copies of the embedded ``controller/config/sim_default.toml``
with the ``[api]`` section changed.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parents[2]
SIM_DEFAULT = REPO / "controller" / "config" / "sim_default.toml"
START_GUARD_S = 60.0  # generous bound for a slow CI machine; never an assertion on speed
EXIT_GUARD_S = 30.0
READY = "charger-controller ready: API on "


def new_token(prefix: str) -> str:
    """A distinctive random token (ASCII, no spaces, 16+ characters) to search for in logs."""
    return f"{prefix}-{secrets.token_hex(12).upper()}"


def free_port(host: str = "0.0.0.0") -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def write_config(directory: Path, *, bind: str, access_token: str) -> Path:
    """``sim_default.toml`` with ``api.bind`` and ``api.access_token`` replaced."""
    text = SIM_DEFAULT.read_text(encoding="utf-8")
    text, binds = re.subn(r'(?m)^bind = "[^"]*"', f'bind = "{bind}"', text)
    text, tokens = re.subn(r'(?m)^access_token = "[^"]*"', f'access_token = "{access_token}"', text)
    assert binds == 1 and tokens == 1, "controller/config/sim_default.toml no longer has bind/access_token lines"
    path = directory / "charger.toml"
    path.write_text(text, encoding="utf-8")
    return path


def non_loopback_ipv4() -> str | None:
    """An IPv4 address of this machine that is not loopback (the one routes go out from), or None."""
    candidates: list[str] = []
    for target in ("192.0.2.1", "10.255.255.255", "198.51.100.1"):  # no packet is sent by connect()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe, contextlib.suppress(OSError):
            probe.connect((target, 9))
            candidates.append(probe.getsockname()[0])
    with contextlib.suppress(OSError):
        candidates += [str(info[4][0]) for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)]
    for address in candidates:
        if not address.startswith("127.") and address != "0.0.0.0":
            return address
    return None


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("CHARGER_API_TOKEN", None)
    return env


def run_to_exit(args: list[str], log_dir: Path) -> tuple[int, str]:
    """Run ``charger-controller <args>`` expecting it to end by itself; (exit status, stdout + stderr)."""
    out = log_dir / "refused.out"
    with out.open("wb") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "controller.cli", *args], cwd=log_dir, env=_environment(),
                                stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            code = proc.wait(timeout=START_GUARD_S)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=EXIT_GUARD_S)
            raise AssertionError(f"charger-controller {' '.join(args)} kept running:\n{out.read_text()}") from None
    return code, out.read_text(encoding="utf-8", errors="replace")


class Daemon:
    """One ``charger-controller run`` process; its logs stay in ``log_dir``."""

    def __init__(self, args: list[str], log_dir: Path, *, preexec_fn: Callable[[], None] | None = None) -> None:
        """``preexec_fn`` runs in the child before exec (e.g. to set its resource limits)."""
        self.args = args
        self.preexec_fn = preexec_fn
        self.stdout_path = log_dir / "daemon.stdout"
        self.stderr_path = log_dir / "daemon.stderr"
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> Daemon:
        """Spawn and wait (bounded) for the ready line; raises with the log tail if it does not come."""
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "controller.cli", *self.args],
                                         cwd=self.stdout_path.parent, env=_environment(),
                                         stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                         preexec_fn=self.preexec_fn)
        deadline = time.monotonic() + START_GUARD_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the daemon exited with {self.proc.returncode}:\n{self.logs()[-3000:]}")
            for line in self.stdout_path.read_text(errors="replace").splitlines():
                if line.startswith(READY):
                    self.url = line[len(READY):].split()[0]
                    return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the daemon was not ready within {START_GUARD_S} s:\n{self.logs()[-3000:]}")

    @property
    def port(self) -> int:
        """The API port from the ready line."""
        return int(self.url.rsplit(":", 1)[1])

    def stop(self) -> int:
        """SIGTERM (the orderly stop, which flushes the logs) and the exit status; kills it if it hangs."""
        proc = self.proc
        if proc is None:
            return 0
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                return proc.wait(timeout=EXIT_GUARD_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=EXIT_GUARD_S)
                raise
        return proc.returncode

    def logs(self) -> str:
        """Everything the process wrote to stdout and stderr so far."""
        return "".join(path.read_text(encoding="utf-8", errors="replace")
                       for path in (self.stdout_path, self.stderr_path) if path.exists())


def call(base_url: str, method: str, path: str, *, authorization: str | None = None, json: Any = None,
         data: bytes | None = None, headers: dict[str, str] | None = None) -> requests.Response:
    """One request, its body read; ``authorization`` is sent verbatim as the Authorization header.

    A POST without a body or headers of its own still says ``Content-Type: application/json``, as the API
    requires of every POST.
    """
    sent = dict(headers or {})
    if method == "POST" and json is None and data is None and headers is None:
        sent["Content-Type"] = "application/json"
    if authorization is not None:
        sent["Authorization"] = authorization
    return requests.request(method, f"{base_url}{path}", headers=sent, json=json, data=data, timeout=10)


def bearer(token: str) -> str:
    """The Authorization header value for ``token``."""
    return f"Bearer {token}"
