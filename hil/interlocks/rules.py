"""The interlock rules themselves: ``coil-closed``/``coil-held``, ``pilot-open-late``, ``unlock-under-load`` and
``weld-not-faulted``.

``InterlockRules`` judges one EVSE at one instant from the plant, the runtime's private per-EVSE
record and the monitor's notes (``EvseTrack``), and records each newly broken interlock as a
``Violation`` whose ``tags`` name its causes. When to judge (at a pin edge, at a poll point) is the
monitor's business (hil.interlocks.monitor). The control-pilot and limit conditions of the coil's interlock are
hil.interlocks.pilot's (tags ``pilot-not-c``, ``pilot-fault``, ``pwm-off``, ``limit-zero``, ``paused``).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from controller.charging.session import Phase
from drivers.interfaces import FaultKind, LockPosition
from hil.interlocks.pilot import late_opening, limit_problems, pilot_problems
from hil.interlocks.readings import config_value, describe, driver_faults, driving_unlock, meter_current
from hil.interlocks.records import EvseTrack, Violation

log = logging.getLogger(__name__)

_AUTHORIZED_PHASES = (Phase.LOCKING, Phase.CHARGING)
_WELD_MARGIN_S = 0.05  # on top of the supervision timeout: a timer due "now" may not have run yet
OBSERVE_GRACE_S = 0.25  # on top of an input's debounce: how long the controller may not yet know a plant change


class InterlockRules:
    """The interlock checks of a simulated ``controller.runtime.build.Built`` and the violations they recorded."""

    def __init__(self, built: Any, *, observe_grace_s: float = OBSERVE_GRACE_S) -> None:
        if built.plant is None:
            raise ValueError("InterlockMonitor needs a simulated build (built.plant is None)")
        self.built = built
        self.runtime = built.runtime
        self.plant = built.plant
        self.observe_grace_s = observe_grace_s
        self.records: list[Violation] = []
        self._lock = threading.Lock()
        self._track: dict[int, EvseTrack] = {}

    def _check_coil(self, evse_id: int, now: float, *, rule: str, edge: bool) -> None:
        """An energized coil has its interlock: authorized session, plug in, locked, no fault, enabled, a limit above
        0 and, with a pilot, the car in C (or D, ventilated) with the PWM offering a current."""
        sim = self.plant.evses[evse_id]
        e = self.runtime._evses[evse_id]
        track = self._track[evse_id]
        view = e.session.view
        state = e.state
        problems: dict[str, str] = {}  # tag -> text
        if view.phase not in _AUTHORIZED_PHASES or view.token is None:
            problems["session"] = f"session {view.phase.value}{'' if view.token else ' without token'}"
        if not sim.plugged:
            # the controller reads the plug debounced: a plug pulled an instant ago may still read plugged
            unseen = e.hw.plug.plugged and self._young(now, track.plug_changed_at, e.hw.plug, "debounce_s")
            if not unseen:
                problems["unplugged"] = "unplugged"
        if sim.lock is not None:
            if not sim.lock.locked:
                problems["lock-not-locked"] = "lock not locked"
            if driving_unlock(sim):
                problems["motor-unlocking"] = "lock motor driving towards unlock"
        if e.hw.lock is not None:
            commanded = e.hw.lock.report().commanded
            if commanded is not LockPosition.LOCKED:
                jam = " (lock jammed)" if sim.lock is not None and sim.lock.jammed else ""
                busy = " and still busy with it" if getattr(e.hw.lock, "busy", False) else ""
                problems["unlock-command-outstanding"] = f"lock commanded {commanded}{busy}{jam}"
                if edge:
                    track.outstanding_command = getattr(e.hw.lock, "_generation", None)
        if state is None:
            problems["not-evaluated"] = "EVSE never evaluated"
        else:
            if state.faults or state.faulted:
                problems["faulted"] = f"faulted ({', '.join(state.faults) or 'faulted'})"
            if state.unavailable:
                problems["unavailable"] = "unavailable"
        if edge:
            latched = driver_faults(e, now)
            if latched:
                problems["driver-fault"] = f"driver fault(s) {', '.join(latched)}"
        problems.update(limit_problems(self.runtime, e, sim))
        problems.update(pilot_problems(sim, e, track, now, self.observe_grace_s))
        if set(problems) - track.coil_reported:  # a poll repeats nothing already reported for this closing
            track.coil_reported |= set(problems)
            why = "coil energized while " + "; ".join(problems.values())
            self._record(evse_id, rule, now, why, self._readings(evse_id), set(problems))

    def _check_opening(self, evse_id: int, now: float) -> None:
        """At the coil's opening edge: with a pilot, it came within the deadline after the car left C/D (or the CP
        faulted); what this closing already reported is not repeated."""
        sim = self.plant.evses[evse_id]
        track = self._track[evse_id]
        problems = late_opening(sim, self.runtime._evses[evse_id], track, now, self.observe_grace_s)
        if set(problems) - track.coil_reported:
            track.coil_reported |= set(problems)
            why = "; ".join(problems.values())
            self._record(evse_id, "pilot-open-late", now, why, self._readings(evse_id), set(problems))

    def _check_unlock(self, evse_id: int, now: float) -> None:
        """A lock motor running towards UNLOCK has its interlock: coil off, contacts open, no current."""
        sim = self.plant.evses[evse_id]
        e = self.runtime._evses[evse_id]
        track = self._track[evse_id]
        threshold = self.runtime.settings.current_threshold_a
        current = meter_current(sim)
        problems: dict[str, str] = {}  # tag -> text
        if sim.contactor.coil_energized:
            problems["coil-energized"] = "coil energized"
        # Contacts that closed by themselves (welded shut) after the runtime decided this unlock: its task starts
        # the first pulse a loop iteration after the decision, on what the controller knew then. Excused, with
        # the current that then flows.
        report = e.hw.contactor.report(now)
        raced = (
            sim.contactor.contacts_closed
            and not sim.contactor.coil_energized
            and not report.commanded_closed
            and track.decision_target is LockPosition.UNLOCKED
            and track.unlock_starts_since_decision == 1
            and track.contacts_seq > track.decision_seq
        )
        if sim.contactor.contacts_closed and not raced:
            problems["contacts-closed"] = "main contacts closed"
        if current is not None and current > threshold and not raced:
            problems["meter-current"] = f"meter current {current:.2f} A > {threshold} A"
            opened_at, reading = track.coil_opened_at, e.snapshot
            if reading is not None and opened_at is not None and reading.timestamp < opened_at:
                problems["reading-before-open"] = (
                    f"the controller's current reading ({reading.max_current_a():.2f} A) was taken "
                    f"{opened_at - reading.timestamp:.3f} s before the contactor opened"
                )
        if problems and track.decision_seq >= 0 and track.unlock_starts_since_decision > 1:
            problems["retry"] = f"pulse {track.unlock_starts_since_decision} of an unlock the runtime decided earlier"
        if problems and e.hw.lock is not None and getattr(e.hw.lock, "_generation", None) == track.outstanding_command:
            problems["retry-after-close"] = "a retry of the unlock command that was outstanding when the coil closed"
        if set(problems) - track.unlock_reported:  # a poll repeats nothing already reported for this pulse
            track.unlock_reported |= set(problems)
            why = "lock motor driving towards unlock while " + "; ".join(problems.values())
            self._record(evse_id, "unlock-under-load", now, why, self._readings(evse_id), set(problems))

    def _check_weld(self, evse_id: int, now: float) -> None:
        """A welded contactor (latched by its driver, or closed with the coil off too long) keeps the EVSE Faulted."""
        sim = self.plant.evses[evse_id]
        e = self.runtime._evses[evse_id]
        state = e.state
        held = state is not None and state.faulted and FaultKind.CONTACTOR_WELDED in state.faults
        fault = e.hw.contactor.report(now).fault
        # a weld the driver latched before now (one merely due now may still wait for its timer), once the
        # evaluation its report requested has run
        latched = fault is not None and fault.kind is FaultKind.CONTACTOR_WELDED and fault.since < now
        if latched and not held and not e.pending:
            why = "the contactor driver latched a weld but the EVSE is not Faulted(contactor_welded)"
            self._record(evse_id, "weld-not-faulted", now, why, self._readings(evse_id))
            return
        if not (sim.contactor.contacts_closed and not sim.contactor.coil_energized):
            return
        track = self._track[evse_id]
        # timed from the last change, or from an operator reset (the supervision then times the weld afresh)
        since = max(track.coil_changed_at, track.contacts_changed_at, track.weld_reset_at or track.coil_changed_at)
        timeout = config_value(e.hw.contactor, "supervision_timeout_s", 5.0)
        if now - since > timeout + _WELD_MARGIN_S and not held and not e.pending:
            why = f"contacts closed with the coil off for {now - since:.3f} s but the EVSE is not Faulted(welded)"
            self._record(evse_id, "weld-not-faulted", now, why, self._readings(evse_id))

    def _young(self, now: float, changed_at: float, driver: Any, debounce_key: str) -> bool:
        """The plant change at ``changed_at`` is younger than the input's debounce plus the grace."""
        return now - changed_at <= config_value(driver, debounce_key, 0.0) + self.observe_grace_s

    def _now(self) -> float:
        """The runtime's monotonic clock (seconds)."""
        return float(self.runtime._mono())

    def _readings(self, evse_id: int) -> str:
        """The readings of one EVSE now, for a violation."""
        return describe(self.plant.evses[evse_id], self.runtime._evses[evse_id], self._now())

    def _record(
        self, evse_id: int, rule: str, at: float, why: str, readings: str, tags: set[str] | None = None
    ) -> None:
        """Keep one violation and log it as an error."""
        violation = Violation(evse_id, rule, at, why, readings, frozenset(tags or ()))
        with self._lock:
            self.records.append(violation)
        log.error("interlock violation: %s", violation)
