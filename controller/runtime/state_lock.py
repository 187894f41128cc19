"""One controller per state directory: an exclusive ``fcntl`` lock on ``controller.lock`` inside it.

Two daemons on one reservation database would both accept reservations for the same EVSE. The lock
is taken before anything is built and held for the process's life; the kernel drops it when the
process dies, however it dies, so a SIGKILL leaves no stale lock. The holder's PID is written into
the file so that a second daemon can name it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

LOCK_NAME = "controller.lock"


class StateDirBusy(RuntimeError):
    """Another process holds the state directory; the message names the directory and its PID."""


class StateDirLock:
    """The exclusive lock of one state directory (``acquire`` once, ``release`` when done)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.path = self.directory / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock now or raise StateDirBusy (OSError when the directory cannot be made or opened)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise StateDirBusy(
                f"{self.directory}: another charger-controller (PID {holder or 'unknown'}) is running on this "
                "state directory; stop it first, or give this one another --state-dir"
            ) from None
        except OSError:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Drop the lock (idempotent); the file stays, its PID is cleared."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # closing the descriptor releases the flock


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
