"""Is the controller alive? The loop-health probe behind the systemd watchdog, and the one-line status summary.

The probe asks, it does not assume. Each check first judges the question the previous check asked, then
asks it again: "evaluate every EVSE", through ``Runtime.request_evaluations``, the very path a driver
callback takes (the coalescing request flag, then a callback scheduled in the loop). The answer counts
only if the previous check ran at most ``max_age_s`` ago (the loop kept turning on time) and every EVSE's
requested evaluation has run since (``Runtime.evaluations_done`` moved on). So a keep-alive always
rests on an evaluation of every EVSE that ran at most ``max_age_s`` before it was sent.

Why the probe requests the evaluation instead of trusting the runtime's own: the runtime evaluates on
events and timers only, and nothing polls, so a quiet charger (no car, no meter poll, no reservation
due) may go minutes without one; "the last evaluation was recent" would then fail on a healthy loop, or
need a tolerance that proves nothing. A periodic re-evaluation inside the runtime would change the
runtime's timing for every user (the tests, the HIL timewarp); the probe changes nothing unless the
daemon runs under a systemd watchdog. What it catches: a blocked or starved loop (the check comes
late, or not at all, and then systemd hears nothing), a request flag stuck on (the EVSE's evaluation
never runs again), and an evaluation that never returns. What it does not judge: an evaluation that
raised still ran; the evaluator logs it and holds the outputs, and a watchdog abort (no orderly
shutdown) would not make the outputs safer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol


class Evaluations(Protocol):
    """What the probe needs of the runtime (controller.runtime.runtime.Runtime has both)."""

    def request_evaluations(self) -> None: ...

    def evaluations_done(self) -> dict[int, int]: ...


@dataclass(frozen=True, slots=True)
class Verdict:
    """One check's answer: ``healthy``, or why not (``reason``, empty when there is nothing to judge yet)."""

    healthy: bool
    reason: str = ""


class LoopHealth:
    """The watchdog's probe: the loop turns and every EVSE's requested interlock evaluation runs (see the module)."""

    def __init__(
        self, runtime: Evaluations, *, max_age_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """Probe ``runtime``; a check more than ``max_age_s`` after the previous one is late (the loop stalled)."""
        if not max_age_s > 0:
            raise ValueError("max_age_s must be > 0")
        self._runtime = runtime
        self._max_age_s = max_age_s
        self._clock = clock
        self._asked_at: float | None = None
        self._baseline: dict[int, int] = {}

    def check(self) -> Verdict:
        """Judge the evaluations the previous check requested, then request new ones; call it in the loop."""
        now = self._clock()
        verdict = self._judge(now, self._runtime.evaluations_done())
        self._ask(now)
        return verdict

    def _ask(self, now: float) -> None:
        """Note the counts and the time, then request an evaluation of every EVSE."""
        self._baseline = self._runtime.evaluations_done()
        self._asked_at = now
        self._runtime.request_evaluations()

    def _judge(self, now: float, done: Mapping[int, int]) -> Verdict:
        """Healthy if the previous check was on time and each EVSE's evaluation count moved on since it."""
        if self._asked_at is None:
            return Verdict(False)  # the first check only asks
        late = now - self._asked_at
        if late > self._max_age_s:
            return Verdict(False, f"the event loop did not turn for {late:.1f} s (limit {self._max_age_s:.1f} s)")
        stuck = sorted(evse_id for evse_id, count in self._baseline.items() if done.get(evse_id, 0) <= count)
        if stuck:
            ids = ", ".join(str(evse_id) for evse_id in stuck)
            return Verdict(False, f"EVSE {ids}: the requested interlock evaluation did not run within {late:.1f} s")
        return Verdict(True)


def summary_line(status: Mapping[str, Any]) -> str:
    """One line for systemd's STATUS=: EVSEs by what they are doing, then the store (``systemctl status`` shows it).

    Each EVSE counts once, by the first that applies: faulted, unavailable (disabled), charging, occupied
    (plugged in or a session holds it), reserved, available. E.g. ``2 EVSEs: 1 charging, 1 reserved; store ok``.
    """
    counts: dict[str, int] = {}
    evses = list(status.get("evses") or [])
    for evse in evses:
        kind = _activity(evse)
        counts[kind] = counts.get(kind, 0) + 1
    order = ("charging", "occupied", "reserved", "available", "unavailable", "faulted")
    parts = ", ".join(f"{counts[kind]} {kind}" for kind in order if kind in counts)
    noun = "EVSE" if len(evses) == 1 else "EVSEs"
    store = status.get("store") or {}
    if store.get("ok", True):
        store_text = "store ok"
    else:
        store_text = f"store failing ({store.get('unsynced_ends', 0)} ends unsynced): {store.get('error')}"
    line = f"{len(evses)} {noun}: {parts or 'none'}; {store_text}"
    return " ".join(line.split())[:200]  # one line, bounded


def _activity(evse: Mapping[str, Any]) -> str:
    """What one EVSE of the status document is doing, as the summary counts it."""
    state = str(evse.get("state", ""))
    if evse.get("faults") or state.startswith("Faulted") or state.endswith("Faulted"):
        return "faulted"
    if not evse.get("enabled", True) or state.startswith("Unavailable"):
        return "unavailable"
    if evse.get("charging"):
        return "charging"
    if evse.get("plugged_in") or state == "Occupied":
        return "occupied"
    if evse.get("reserved"):
        return "reserved"
    return "available"
