"""A real MQTT broker for the tests: Debian's mosquitto on 127.0.0.1, a free port, a generated config in tmp_path.

``stop()`` and ``start()`` again keep the port, so a test can restart the broker under a connected bridge.
Persistence is off: a restarted broker has lost every retained message, as after a crash without a disk.
Tests skip (with the reason) only where mosquitto is not installed; ``.ci/run`` installs it.
"""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import time
from pathlib import Path

START_GUARD_S = 15.0
CANDIDATES = ("mosquitto", "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")


def find_mosquitto() -> str | None:
    """The mosquitto binary: on PATH, or in sbin (not on a non-root PATH on Debian)."""
    for candidate in CANDIDATES:
        found = shutil.which(candidate) if "/" not in candidate else (candidate if Path(candidate).is_file() else None)
        if found:
            return found
    return None


def find_mosquitto_passwd() -> str | None:
    """mosquitto_passwd, which writes a hashed password file."""
    return shutil.which("mosquitto_passwd") or next(
        (p for p in ("/usr/bin/mosquitto_passwd", "/usr/sbin/mosquitto_passwd") if Path(p).is_file()), None)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Broker:
    """One mosquitto process; anonymous, or with one user when ``users`` is given."""

    def __init__(self, binary: str, directory: Path, *, users: dict[str, str] | None = None) -> None:
        """A broker whose config, password file and log live in ``directory``."""
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.users = users or {}
        self.log_path = directory / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.config_path = self._write_config()

    @property
    def url(self) -> str:
        """The bridge's ``[mqtt] url`` for this broker."""
        return f"mqtt://127.0.0.1:{self.port}"

    def _write_config(self) -> Path:
        """mosquitto.conf: a loopback listener, no persistence, and the password file when there are users."""
        lines = [f"listener {self.port} 127.0.0.1", "persistence false", f"user {getpass.getuser()}",
                 "log_type error", "log_type warning", "log_type notice", "log_type information"]
        if self.users:
            passwd = find_mosquitto_passwd()
            assert passwd is not None, "mosquitto_passwd is missing (Debian package mosquitto)"
            password_file = self.directory / "passwords"
            for number, (user, password) in enumerate(self.users.items()):
                flags = ["-b", "-c"] if number == 0 else ["-b"]
                subprocess.run([passwd, *flags, str(password_file), user, password], check=True, timeout=30,
                               capture_output=True)
            password_file.chmod(0o600)
            lines += ["allow_anonymous false", f"password_file {password_file}"]
        else:
            lines.append("allow_anonymous true")
        path = self.directory / "mosquitto.conf"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    def start(self) -> Broker:
        """Start mosquitto and wait (bounded) until it accepts TCP connections."""
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen([self.binary, "-c", str(self.config_path)], stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL, cwd=self.directory)
        log.close()
        deadline = time.monotonic() + START_GUARD_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on {self.port} within {START_GUARD_S} s:\n{self.logs()}")

    def stop(self) -> None:
        """Stop mosquitto (SIGTERM, then SIGKILL if it hangs) and wait until its port is closed."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def logs(self) -> str:
        """What mosquitto logged so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""
