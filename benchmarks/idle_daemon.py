"""The idle cost of ``charger-controller run --sim`` as a subprocess: ready time, CPU, RSS (for latency.py)."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def get_status(port: int) -> bool:
    """Does GET /status answer 200 now?"""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=0.5)
    try:
        conn.request("GET", "/status")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a process in seconds (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_memory_mb(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak RSS) of a process in MB (MiB)."""
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = round(int(value.split()[0]) / 1024, 1)
    return out


@contextlib.contextmanager
def daemon(state_dir: str, port: int, *extra: str) -> Iterator[subprocess.Popen[bytes]]:
    """``run --sim`` (with ``extra`` arguments) as a subprocess for the ``with`` block; SIGTERM (then SIGKILL)
    after it."""
    cmd = [sys.executable, "-m", "controller.cli", "run", "--sim", *extra, "--api", f"127.0.0.1:{port}"]
    proc = subprocess.Popen(
        [*cmd, "--state-dir", state_dir],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def idle_daemon(idle_seconds: float) -> dict[str, Any]:
    """ready_s from spawn to the first 200 on GET /status; then CPU and RSS over ``idle_seconds``."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="latency-daemon-") as state:
        started = time.monotonic()
        with daemon(state, port) as proc:
            while not get_status(port):
                if proc.poll() is not None:
                    raise RuntimeError(f"charger-controller run --sim exited with {proc.returncode}")
                if time.monotonic() - started > 30:
                    raise RuntimeError("charger-controller run --sim not ready after 30 s")
                time.sleep(0.005)
            ready_s = time.monotonic() - started
            time.sleep(1.0)  # the first meter polls and lock moves are start-up, not idle
            cpu0, t0 = proc_cpu_s(proc.pid), time.monotonic()
            time.sleep(idle_seconds)
            cpu1, t1 = proc_cpu_s(proc.pid), time.monotonic()
            memory = proc_memory_mb(proc.pid)
            threads = len(os.listdir(f"/proc/{proc.pid}/task"))
            proc.send_signal(signal.SIGTERM)
            stopped = time.monotonic()
            code = proc.wait(10)
            stop_s = time.monotonic() - stopped
    return {
        "ready_s": round(ready_s, 3),
        "idle_cpu_percent": round(100 * (cpu1 - cpu0) / (t1 - t0), 3),
        "idle_seconds": round(t1 - t0, 1),
        "rss_mb": memory.get("VmRSS"),
        "rss_peak_mb": memory.get("VmHWM"),
        "threads": threads,
        "sigterm_exit_code": code,
        "sigterm_stop_s": round(stop_s, 3),
        "command": f"{Path(sys.executable).name} -m controller.cli run --sim --api 127.0.0.1:PORT --state-dir DIR",
    }
