"""Test-only entry point: ``charger-controller`` with a fault hook patched into its store, in the daemon's own process.

Usage: ``python power_loss_hooked_cli.py HOOK run --sim ...``. A monkeypatch in the test cannot reach a
subprocess, so the hooks are installed here, before ``controller.cli.main`` runs:

- ``ack-before-commit:SECONDS``: a broken store whose writes land SECONDS after the call returns, i.e.
  after the API answered. The power-loss harness must catch it (its self-test), or it proves nothing.
- ``kill-at-put:PREFIX``: SIGKILL the process when a reservation whose id_token starts with PREFIX is about
  to be stored - a power cut at an exact instant, for a deterministic reproduction.

Both patch ``ReservationStore.write_batch``, which every write goes through (the runtime's writer thread
calls it directly; ``write`` calls it too).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from controller import cli
from controller.core.store import ReservationStore
from controller.core.types import Reservation


def _ack_before_commit(delay_s: float) -> None:
    """Writes are done ``delay_s`` later on a timer thread (one at a time, in order) instead of before returning."""
    lock = threading.Lock()

    def deferred(write: Callable[..., None]) -> Callable[..., None]:
        def later(self: ReservationStore, *args: Any) -> None:
            def run() -> None:
                with lock:
                    write(self, *args)

            threading.Timer(delay_s, run).start()

        return later

    ReservationStore.write_batch = deferred(ReservationStore.write_batch)  # type: ignore[method-assign]


def _kill_at_put(prefix: str) -> None:
    """Die by SIGKILL just before storing a reservation whose token starts with ``prefix``."""
    write_batch = ReservationStore.write_batch

    def write_or_die(
        self: ReservationStore, writes: Sequence[tuple[Sequence[tuple[int, Reservation]], Iterable[int]]]
    ) -> None:
        if any(reservation.id_token.startswith(prefix) for puts, _deletes in writes for _seq, reservation in puts):
            os.kill(os.getpid(), signal.SIGKILL)
        write_batch(self, writes)

    ReservationStore.write_batch = write_or_die  # type: ignore[method-assign]


def main(argv: Sequence[str]) -> int:
    """Install the hook named by the first argument, then run the normal command line with the rest."""
    hook, *rest = argv
    name, _, arg = hook.partition(":")
    if name == "ack-before-commit":
        _ack_before_commit(float(arg))
    elif name == "kill-at-put":
        _kill_at_put(arg)
    else:
        raise SystemExit(f"unknown hook {hook!r}")
    return cli.main(rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
