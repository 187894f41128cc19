"""``InterlockMonitor``: hooks a simulated charger's coil and lock-motor pins and applies the rules at every edge.

The hooks run synchronously inside the pin change, before the mechanism reacts, so a violation is
recorded at the instant the controller drives the line; ``check_now()`` applies the state-level
rules at a poll point. To know when the plant changed and when the runtime decided a lock move, the
monitor also spies, on the instances only, on the contactor's and the plug's setters and the
runtime's lock driver's ``move_lock``; where the plant has a control pilot, on the car's moves and faults and the
pilot output's duty setter (when the CP state changed). The rules themselves are hil.interlocks.rules.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from hil.interlocks.hooks import MethodSpy, PinHook
from hil.interlocks.pilot import line_state
from hil.interlocks.readings import driving_unlock, motor_lines
from hil.interlocks.records import EvseTrack
from hil.interlocks.rules import OBSERVE_GRACE_S, InterlockRules


class InterlockMonitor(InterlockRules):
    """Records every interlock violation of a simulated ``controller.runtime.build.Built`` (see hil.interlocks)."""

    def __init__(self, built: Any, *, observe_grace_s: float = OBSERVE_GRACE_S) -> None:
        super().__init__(built, observe_grace_s=observe_grace_s)
        self._hooks: list[PinHook | MethodSpy] = []
        self._seq = itertools.count(1)

    # ------------------------------------------------------------ lifecycle

    def start(self) -> InterlockMonitor:
        """Hook every EVSE's coil and lock-motor pins (and note plant changes); idempotent. Returns self."""
        if self._hooks:
            return self
        now = self._now()
        for evse_id, sim in self.plant.evses.items():
            track = self._track[evse_id] = EvseTrack(now, now, now, sim.contactor.contacts_closed, sim.plugged)
            failed = self._hook_failed(evse_id)
            self._hooks.append(PinHook(sim.contactor._coil, self._coil_handler(evse_id), failed))
            self._hooks.append(MethodSpy(sim.contactor, "_set_contacts", self._contacts_noter(track, sim.contactor)))
            self._hooks.append(MethodSpy(sim.plug, "set", self._plug_noter(track)))
            self._hooks.append(MethodSpy(sim.contactor, "repair", self._noter(track, "weld_reset_at")))
            contactor = self.runtime._evses[evse_id].hw.contactor
            if callable(getattr(contactor, "reset_fault", None)):
                self._hooks.append(MethodSpy(contactor, "reset_fault", self._noter(track, "weld_reset_at")))
            if sim.pilot is not None:
                self._hook_pilot(evse_id, track)
            if sim.lock is not None:
                track.unlocking = driving_unlock(sim)
                handler = self._motor_handler(evse_id)
                self._hooks.append(PinHook(sim.lock._lock_line, handler, failed))
                self._hooks.append(PinHook(sim.lock._unlock_line, handler, failed))
        outputs = getattr(self.runtime, "_outputs", None)  # the runtime's OutputDriver decides every lock move
        if callable(getattr(outputs, "move_lock", None)):
            self._hooks.append(MethodSpy(outputs, "move_lock", self._note_lock_decision))
        return self

    def stop(self) -> None:
        """Unhook; the recorded violations stay."""
        for hook in self._hooks:
            hook.remove()
        self._hooks = []

    def __enter__(self) -> InterlockMonitor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ results

    @property
    def violations(self) -> list[str]:
        """Every violation so far, one line each (EVSE, rule, time, why, readings)."""
        with self._lock:
            return [str(v) for v in self.records]

    def clear(self) -> None:
        """Forget the violations recorded so far."""
        with self._lock:
            self.records.clear()

    def assert_clean(self) -> None:
        """Raise AssertionError listing every violation, if there is any."""
        found = self.violations
        if found:
            raise AssertionError(f"{len(found)} interlock violation(s):\n" + "\n".join(found))

    # ------------------------------------------------------------ state checks (at poll points)

    def check_now(self) -> list[str]:
        """Run the state-level checks now (loop settled); returns the violations this call found."""
        with self._lock:
            before = len(self.records)
        now = self._now()
        for evse_id, sim in self.plant.evses.items():
            if sim.contactor.coil_energized:
                self._check_coil(evse_id, now, rule="coil-held", edge=False)
            if sim.lock is not None and driving_unlock(sim):
                self._check_unlock(evse_id, now)
            self._check_weld(evse_id, now)
        with self._lock:
            return [str(v) for v in self.records[before:]]

    # ------------------------------------------------------------ hooks

    def _hook_failed(self, evse_id: int) -> Callable[[BaseException], None]:
        def failed(exc: BaseException) -> None:
            self._record(evse_id, "monitor-error", self._now(), f"the check itself failed: {exc!r}", "")

        return failed

    def _noter(self, track: EvseTrack, field: str) -> Callable[..., None]:
        def note(*_args: Any, **_kwargs: Any) -> None:
            setattr(track, field, self._now())

        return note

    def _hook_pilot(self, evse_id: int, track: EvseTrack) -> None:
        """Note every change of the CP state the plant shows: the car moves (step, plug, unplug), a fault comes or
        goes, the PWM starts or stops (a diode short shows only while it runs)."""
        sim = self.plant.evses[evse_id]
        track.pilot_line, track.pilot_changed_at = line_state(sim), self._now()

        def note(*_args: Any, **_kwargs: Any) -> None:
            state = line_state(sim)
            if state != track.pilot_line:
                track.pilot_line, track.pilot_changed_at = state, self._now()

        car = sim.pilot.car
        for name in ("step", "plug", "unplug", "fault"):
            self._hooks.append(MethodSpy(car, name, note))
        output = getattr(self.runtime._evses[evse_id].hw.pilot, "output", None)
        if callable(getattr(output, "_set", None)):
            self._hooks.append(MethodSpy(output, "_set", note))

    def _plug_noter(self, track: EvseTrack) -> Callable[..., None]:
        def note(plugged: bool, *_args: Any, **_kwargs: Any) -> None:
            if plugged != track.plugged:
                track.plugged = plugged
                track.plug_changed_at = self._now()

        return note

    def _contacts_noter(self, track: EvseTrack, contactor: Any) -> Callable[..., None]:
        def note(*_args: Any, **_kwargs: Any) -> None:
            if contactor.contacts_closed != track.contacts_closed:
                track.contacts_closed = contactor.contacts_closed
                track.contacts_changed_at = self._now()
                track.contacts_seq = next(self._seq)

        return note

    def _note_lock_decision(self, e: Any, target: Any, *_args: Any, **_kwargs: Any) -> None:
        """The runtime decided to move a lock (its task starts the pulse a loop iteration later)."""
        evse_id = getattr(e, "evse_id", None)
        track = self._track.get(evse_id) if isinstance(evse_id, int) else None
        if track is not None:
            track.decision_seq = next(self._seq)
            track.decision_target = target
            track.unlock_starts_since_decision = 0

    def _coil_handler(self, evse_id: int) -> Callable[[bool], None]:
        def on_coil(_level: bool) -> None:
            now = self._now()
            track = self._track[evse_id]
            energized = self.plant.evses[evse_id].contactor.coil_energized
            if not energized:
                self._check_opening(evse_id, now)  # against this closing's notes, before they are reset
            track.coil_changed_at = now
            track.coil_reported = set()
            if energized:
                self._check_coil(evse_id, now, rule="coil-closed", edge=True)
            else:
                track.coil_opened_at = now

        return on_coil

    def _motor_handler(self, evse_id: int) -> Callable[[bool], None]:
        def on_motor(_level: bool) -> None:
            sim = self.plant.evses[evse_id]
            track = self._track[evse_id]
            now = self._now()
            lock_on, unlock_on = motor_lines(sim)
            if lock_on and unlock_on:
                self._record(evse_id, "lock-shoot-through", now, "both H-bridge lines on", self._readings(evse_id))
            unlocking = unlock_on and not lock_on
            started, track.unlocking = unlocking and not track.unlocking, unlocking
            if started:
                track.unlock_starts_since_decision += 1
                track.unlock_reported = set()
                self._check_unlock(evse_id, now)

        return on_motor
