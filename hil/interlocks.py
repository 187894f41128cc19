"""A watchdog for DESIGN.md's safety interlocks on a running simulated charger.

``InterlockMonitor(built)`` hooks the output pins the simulated mechanisms observe (each contactor
coil and both H-bridge lines of each lock: drivers/sim/pins.py ObservedPin) by chaining onto their
``listener``. The hook runs synchronously inside the pin change, before the mechanism reacts, so a
violation is recorded at the instant the controller drives the line, not at the next poll:

* ``coil-closed``: the coil is energized only while the EVSE's session is authorized (LOCKING or
  CHARGING with a token), the plug is in (plant), the lock is physically locked, no unlock command is
  outstanding and the motor is not driving towards UNLOCK, no fault is active (runtime EvseState and
  the faults the drivers have latched) and the EVSE is enabled;
* ``unlock-under-load``: the lock motor never starts towards UNLOCK while the coil is energized, the
  main contacts are closed (physical) or the simulated meter's current exceeds the configured
  ``current_threshold_a``;
* ``lock-shoot-through``: both H-bridge lines are never on together.

``check_now()`` adds the state-level checks at a poll point (call it with the loop settled; it does not
repeat what was already reported for the same closing of the coil or the same motor pulse):
``coil-held`` (an energized coil still has its interlock, as above), a running unlock motor still has
its interlock, and ``weld-not-faulted``: a welded contactor keeps the EVSE Faulted (a weld the
contactor driver latched must show in the EVSE state, and contacts that stay closed with the coil off
for longer than the supervision timeout must have been noticed).

What the controller cannot know yet is not held against it. A jammed lock is invisible until a lock
command fails, so instead of the jam the monitor asks that no unlock command is outstanding when the
coil closes (what a jam leaves behind). A plug pulled an instant ago is excused while the controller's
debounced plug reading still says plugged and the pull is younger than the plug's debounce plus
``observe_grace_s``; main contacts that close by themselves (a weld with the coil off) after the runtime
decided an unlock are excused for that unlock's first pulse, which its task starts a loop iteration
after the decision, on what the controller knew then (a retry is not excused). To know when the plant
changed and when the runtime decided, the monitor also wraps, on the instances only, the contactor's
and the plug's setters and the runtime's ``_move_lock``.

Each ``Violation`` carries ``tags`` naming its causes (``"unplugged"``, ``"contacts-closed"``,
``"meter-current"``, ``"reading-before-open"``, ``"unlock-command-outstanding"``, ``"retry"``,
``"retry-after-close"``, ...), so a test can tolerate exactly the signature of a known defect and nothing else.

The monitor reads the runtime's private per-EVSE records (``runtime._evses``) and the sim mechanisms'
private pins on purpose: it is a test instrument and must see what the runtime holds at the moment
of the change, not a published copy. All hooks run in the thread that changes the pin or plant (the
loop thread for everything the controller drives).
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from controller.session import Phase
from drivers.interfaces import FaultKind, LockPosition

log = logging.getLogger(__name__)

_AUTHORIZED_PHASES = (Phase.LOCKING, Phase.CHARGING)
_WELD_MARGIN_S = 0.05  # on top of the supervision timeout: a timer due "now" may not have run yet
OBSERVE_GRACE_S = 0.25  # on top of an input's debounce: how long the controller may not yet know a plant change


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken interlock: which EVSE, which rule, when (runtime monotonic s) and what was read."""

    evse_id: int
    rule: str
    at: float
    why: str
    readings: str
    tags: frozenset[str] = frozenset()  # machine-readable causes, e.g. {"meter-current", "reading-before-open"}

    def __str__(self) -> str:
        return f"EVSE {self.evse_id}: {self.rule} at t={self.at:.3f}: {self.why} [{self.readings}]"


class _Hook:
    """A listener chained in front of an ObservedPin's own; a pass-through once ``active`` is False."""

    def __init__(self, pin: Any, handler: Callable[[bool], None], on_error: Callable[[BaseException], None]) -> None:
        self.pin = pin
        self.handler = handler
        self.on_error = on_error
        self.original: Callable[[bool], None] | None = pin.listener
        self.active = True
        pin.listener = self

    def __call__(self, level: bool) -> None:
        if self.active:
            try:
                self.handler(level)
            except Exception as exc:  # the monitor must never break the mechanism it watches
                self.on_error(exc)
        if self.original is not None:
            self.original(level)

    def remove(self) -> None:
        self.active = False
        if self.pin.listener is self:
            self.pin.listener = self.original


class _Spy:
    """Wraps one method on one instance to note each call after it ran; removed by deleting the attribute."""

    def __init__(self, owner: Any, name: str, after: Callable[..., None]) -> None:
        self.owner = owner
        self.name = name
        self.method = getattr(owner, name)
        self.after = after
        self.active = True
        setattr(owner, name, self)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        result = self.method(*args, **kwargs)
        if self.active:
            self.after(*args, **kwargs)
        return result

    def remove(self) -> None:
        self.active = False
        if self.owner.__dict__.get(self.name) is self:
            delattr(self.owner, self.name)


@dataclass
class _Track:
    """What the monitor noted about one EVSE's plant: when things last changed (runtime monotonic s)."""

    coil_changed_at: float
    contacts_changed_at: float
    plug_changed_at: float
    contacts_closed: bool
    plugged: bool
    coil_opened_at: float | None = None
    unlocking: bool = False
    outstanding_command: int | None = None  # the lock driver's command that was outstanding when the coil closed
    weld_reset_at: float | None = None  # the plant repaired or the driver's fault reset by an operator
    contacts_seq: int = 0  # order of the last contacts change among the noted events
    decision_seq: int = -1  # order of the runtime's last lock decision (a _move_lock call)
    decision_target: Any = None
    unlock_starts_since_decision: int = 0
    coil_reported: set[str] = field(default_factory=set)  # tags reported since the coil last closed
    unlock_reported: set[str] = field(default_factory=set)  # tags reported since the motor last started unlocking


class InterlockMonitor:
    """Records every interlock violation of a simulated ``controller.app.Built`` (see the module doc)."""

    def __init__(self, built: Any, *, observe_grace_s: float = OBSERVE_GRACE_S) -> None:
        if built.plant is None:
            raise ValueError("InterlockMonitor needs a simulated build (built.plant is None)")
        self.built = built
        self.runtime = built.runtime
        self.plant = built.plant
        self.observe_grace_s = observe_grace_s
        self.records: list[Violation] = []
        self._lock = threading.Lock()
        self._hooks: list[_Hook | _Spy] = []
        self._track: dict[int, _Track] = {}
        self._seq = itertools.count(1)

    # ------------------------------------------------------------ lifecycle

    def start(self) -> InterlockMonitor:
        """Hook every EVSE's coil and lock-motor pins (and note plant changes); idempotent. Returns self."""
        if self._hooks:
            return self
        now = self._now()
        for evse_id, sim in self.plant.evses.items():
            track = self._track[evse_id] = _Track(now, now, now, sim.contactor.contacts_closed, sim.plugged)
            failed = self._hook_failed(evse_id)
            self._hooks.append(_Hook(sim.contactor._coil, self._coil_handler(evse_id), failed))
            self._hooks.append(_Spy(sim.contactor, "_set_contacts", self._contacts_noter(track, sim.contactor)))
            self._hooks.append(_Spy(sim.plug, "set", self._plug_noter(track)))
            self._hooks.append(_Spy(sim.contactor, "repair", self._noter(track, "weld_reset_at")))
            contactor = self.runtime._evses[evse_id].hw.contactor
            if callable(getattr(contactor, "reset_fault", None)):
                self._hooks.append(_Spy(contactor, "reset_fault", self._noter(track, "weld_reset_at")))
            if sim.lock is not None:
                track.unlocking = self._driving_unlock(sim)
                handler = self._motor_handler(evse_id)
                self._hooks.append(_Hook(sim.lock._lock_line, handler, failed))
                self._hooks.append(_Hook(sim.lock._unlock_line, handler, failed))
        if callable(getattr(self.runtime, "_move_lock", None)):
            self._hooks.append(_Spy(self.runtime, "_move_lock", self._note_lock_decision))
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

    # ------------------------------------------------------------ hooks

    def _hook_failed(self, evse_id: int) -> Callable[[BaseException], None]:
        def failed(exc: BaseException) -> None:
            self._record(evse_id, "monitor-error", self._now(), f"the check itself failed: {exc!r}", "")

        return failed

    def _noter(self, track: _Track, field: str) -> Callable[..., None]:
        def note(*_args: Any, **_kwargs: Any) -> None:
            setattr(track, field, self._now())

        return note

    def _plug_noter(self, track: _Track) -> Callable[..., None]:
        def note(plugged: bool, *_args: Any, **_kwargs: Any) -> None:
            if plugged != track.plugged:
                track.plugged = plugged
                track.plug_changed_at = self._now()

        return note

    def _contacts_noter(self, track: _Track, contactor: Any) -> Callable[..., None]:
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
            track.coil_changed_at = now
            track.coil_reported = set()
            if self.plant.evses[evse_id].contactor.coil_energized:
                self._check_coil(evse_id, now, rule="coil-closed", edge=True)
            else:
                track.coil_opened_at = now

        return on_coil

    def _motor_handler(self, evse_id: int) -> Callable[[bool], None]:
        def on_motor(_level: bool) -> None:
            sim = self.plant.evses[evse_id]
            track = self._track[evse_id]
            now = self._now()
            lock_on, unlock_on = self._lines(sim)
            if lock_on and unlock_on:
                self._record(evse_id, "lock-shoot-through", now, "both H-bridge lines on", self._readings(evse_id))
            unlocking = unlock_on and not lock_on
            started, track.unlocking = unlocking and not track.unlocking, unlocking
            if started:
                track.unlock_starts_since_decision += 1
                track.unlock_reported = set()
                self._check_unlock(evse_id, now)

        return on_motor

    # ------------------------------------------------------------ state checks (at poll points)

    def check_now(self) -> list[str]:
        """Run the state-level checks now (loop settled); returns the violations this call found."""
        with self._lock:
            before = len(self.records)
        now = self._now()
        for evse_id, sim in self.plant.evses.items():
            if sim.contactor.coil_energized:
                self._check_coil(evse_id, now, rule="coil-held", edge=False)
            if sim.lock is not None and self._driving_unlock(sim):
                self._check_unlock(evse_id, now)
            self._check_weld(evse_id, now)
        with self._lock:
            return [str(v) for v in self.records[before:]]

    # ------------------------------------------------------------ the rules

    def _check_coil(self, evse_id: int, now: float, *, rule: str, edge: bool) -> None:
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
            if self._driving_unlock(sim):
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
            latched = self._driver_faults(e, now)
            if latched:
                problems["driver-fault"] = f"driver fault(s) {', '.join(latched)}"
        if set(problems) - track.coil_reported:  # a poll repeats nothing already reported for this closing
            track.coil_reported |= set(problems)
            why = "coil energized while " + "; ".join(problems.values())
            self._record(evse_id, rule, now, why, self._readings(evse_id), set(problems))

    def _check_unlock(self, evse_id: int, now: float) -> None:
        sim = self.plant.evses[evse_id]
        e = self.runtime._evses[evse_id]
        track = self._track[evse_id]
        threshold = self.runtime.settings.current_threshold_a
        current = self._meter_current(sim)
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
        timeout = _config_value(e.hw.contactor, "supervision_timeout_s", 5.0)
        if now - since > timeout + _WELD_MARGIN_S and not held and not e.pending:
            why = f"contacts closed with the coil off for {now - since:.3f} s but the EVSE is not Faulted(welded)"
            self._record(evse_id, "weld-not-faulted", now, why, self._readings(evse_id))

    def _young(self, now: float, changed_at: float, driver: Any, debounce_key: str) -> bool:
        """The plant change at ``changed_at`` is younger than the input's debounce plus the grace."""
        return now - changed_at <= _config_value(driver, debounce_key, 0.0) + self.observe_grace_s

    # ------------------------------------------------------------ readings

    def _now(self) -> float:
        return float(self.runtime._mono())

    @staticmethod
    def _lines(sim: Any) -> tuple[bool, bool]:
        lock = sim.lock
        return bool(lock._line_on(lock._lock_line)), bool(lock._line_on(lock._unlock_line))

    def _driving_unlock(self, sim: Any) -> bool:
        lock_on, unlock_on = self._lines(sim)
        return unlock_on and not lock_on

    @staticmethod
    def _meter_current(sim: Any) -> float | None:
        if sim.meter is None:
            return None
        currents = [abs(v) for k, v in sim.meter.values().items() if k.startswith("current_")]
        return max(currents, default=0.0)

    @staticmethod
    def _driver_faults(e: Any, now: float) -> list[str]:
        hw = e.hw
        # Inside the coil's pin change the contactor driver has not yet noted the new command, so its
        # report would compute a mismatch fault "due now" (since == now): only a fault latched before counts.
        contactor = hw.contactor.report(now).fault
        faults = [contactor if contactor is not None and contactor.since < now else None]
        if hw.lock is not None:
            faults.append(hw.lock.report().fault)
        if hw.meter is not None:
            faults.append(hw.meter.fault(now))
        return [str(f.kind) for f in faults if f is not None]

    def _readings(self, evse_id: int) -> str:
        sim = self.plant.evses[evse_id]
        e = self.runtime._evses[evse_id]
        view = e.session.view
        state = e.state
        now = self._now()
        report = e.hw.contactor.report(now)
        parts = [
            f"phase={view.phase.value}",
            f"token={'yes' if view.token else 'no'}",
            f"plugged={sim.plugged}",
            f"coil={sim.contactor.coil_energized}",
            f"contacts={'closed' if sim.contactor.contacts_closed else 'open'}",
            f"ctrl_contactor=cmd:{'closed' if report.commanded_closed else 'open'}/aux:{report.feedback_closed}",
        ]
        if sim.lock is not None:
            lock_on, unlock_on = self._lines(sim)
            motor = {(False, False): "off", (True, False): "lock", (False, True): "unlock", (True, True): "both"}
            parts += [
                f"lock={'locked' if sim.lock.locked else 'unlocked'}",
                f"jammed={sim.lock.jammed}",
                f"motor={motor[lock_on, unlock_on]}",
            ]
        if e.hw.lock is not None:
            lock = e.hw.lock.report()
            parts.append(f"ctrl_lock=cmd:{lock.commanded}/pos:{lock.position}/fault:{lock.fault and lock.fault.kind}")
        current = self._meter_current(sim)
        if current is not None:
            parts.append(f"meter={current:.2f}A")
        if e.snapshot is not None:
            parts.append(f"ctrl_current={e.snapshot.max_current_a():.2f}A({now - e.snapshot.timestamp:.2f}s_old)")
        if state is None:
            parts.append("state=none")
        else:
            parts += [
                f"faults=[{','.join(state.faults)}]",
                f"faulted={state.faulted}",
                f"unavailable={state.unavailable}",
                f"ctrl_plugged={state.plugged}",
            ]
        parts.append(f"enabled={e.enabled}")
        return " ".join(parts)

    def _record(
        self, evse_id: int, rule: str, at: float, why: str, readings: str, tags: set[str] | None = None
    ) -> None:
        violation = Violation(evse_id, rule, at, why, readings, frozenset(tags or ()))
        with self._lock:
            self.records.append(violation)
        log.error("interlock violation: %s", violation)


def _config_value(driver: Any, key: str, default: float) -> float:
    """A timing from a driver's configuration (``default`` if the driver hides it)."""
    return float(getattr(getattr(driver, "_config", None), key, default))


def reserved_led_matches_core(built: Any, config: Any = None) -> list[str]:
    """Mismatches between each EVSE's reserved-LED pin (blinking counts as lit) and ``core.reserved_evses()``.

    Pins and polarity come from ``config`` (a ChargerConfig) when given, else from each indicator
    driver's configuration. Read it with the loop settled: the LED follows on the next evaluation.
    """
    runtime = built.runtime
    factory = built.pin_factory
    reserved = runtime.core.reserved_evses()
    configs = {evse.id: evse.indicator for evse in config.evses} if config is not None else {}
    out: list[str] = []
    for evse_id, e in runtime._evses.items():
        indicator = configs.get(evse_id) or e.hw.indicator._config
        pin = factory.pin(indicator.reserved_pin)
        steady = bool(pin.state >= 0.5) == bool(indicator.reserved_active_high)
        blinking = _blinking(factory, pin)
        want = evse_id in reserved
        if (steady or blinking) != want:
            shown = "blinking" if blinking else "on" if steady else "off"
            out.append(
                f"EVSE {evse_id}: reserved LED {indicator.reserved_pin} is {shown} but the EVSE is "
                f"{'' if want else 'not '}in core.reserved_evses() {sorted(reserved)}"
            )
    return out


def _blinking(factory: Any, pin: Any) -> bool:
    """True while a gpiozero device holding ``pin`` runs its background blink thread."""
    for ref in factory._reservations.get(pin.info, ()):
        device = ref()
        if device is not None and getattr(device, "_blink_thread", None) is not None:
            return True
    return False
