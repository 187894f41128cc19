"""Running ``charger-controller`` (``python -m controller.cli``) and ``charger-hil`` as real subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GUARD_S = 60.0  # generous bound for a slow CI machine; never an assertion on speed


def environment(*, unbuffered: bool | None = None) -> dict[str, str]:
    """This environment with the checkout first on the import path and no API token of the caller's.

    ``unbuffered`` True or False sets or removes PYTHONUNBUFFERED (None: as inherited): with it, each print
    meets the closed pipe at once; without it, the final flush does.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.pop("CHARGER_API_TOKEN", None)
    if unbuffered is not None:
        env.pop("PYTHONUNBUFFERED", None)
        if unbuffered:
            env["PYTHONUNBUFFERED"] = "1"
    return env


def python(code: str, *args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """``python -c code args...``: its exit status, stdout and stderr."""
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=environment(), capture_output=True,
                          text=True, timeout=GUARD_S, stdin=subprocess.DEVNULL, check=False)


def into_closed_pipe(*args: str, unbuffered: bool) -> tuple[int, str]:
    """``charger-controller args...`` with stdout a pipe whose reader has already gone: (exit status, stderr).

    The read end is closed before the process starts, so its first write to stdout fails with EPIPE for
    certain, as the write after ``head -1`` has exited does in a shell pipeline.
    """
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run([sys.executable, "-m", "controller.cli", *args], cwd=REPO,
                              env=environment(unbuffered=unbuffered), stdout=write_end, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, text=True, timeout=GUARD_S, check=False)
    finally:
        os.close(write_end)
    return done.returncode, done.stderr


def through_head(*args: str) -> tuple[int, str, str]:
    """``charger-controller args... | head -1`` in sh: (exit status of charger-controller, head's output, stderr)."""
    command = '{ "$0" -m controller.cli "$@"; echo "status=$?" >&2; } | head -1'
    done = subprocess.run(["sh", "-c", command, sys.executable, *args], cwd=REPO, env=environment(),
                          capture_output=True, text=True, timeout=GUARD_S, stdin=subprocess.DEVNULL, check=False)
    *errors, status = done.stderr.splitlines()
    assert status.startswith("status="), done.stderr
    return int(status.removeprefix("status=")), done.stdout, "\n".join(errors)
