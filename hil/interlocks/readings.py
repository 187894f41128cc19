"""What the interlock rules read: the sim plant's motor lines and meter current, the drivers' latched faults,
and the one-line readings every ``Violation`` carries.

``sim`` is one EVSE of the simulated plant (drivers/sim), ``e`` the runtime's private per-EVSE record.
"""

from __future__ import annotations

from typing import Any

from hil.interlocks.pilot import describe_pilot


def config_value(driver: Any, key: str, default: float) -> float:
    """A timing from a driver's configuration (``default`` if the driver hides it)."""
    return float(getattr(getattr(driver, "_config", None), key, default))


def motor_lines(sim: Any) -> tuple[bool, bool]:
    """Whether the lock motor's (lock, unlock) H-bridge lines are on."""
    lock = sim.lock
    return bool(lock._line_on(lock._lock_line)), bool(lock._line_on(lock._unlock_line))


def driving_unlock(sim: Any) -> bool:
    """The lock motor is driven towards UNLOCK (the unlock line alone is on)."""
    lock_on, unlock_on = motor_lines(sim)
    return unlock_on and not lock_on


def meter_current(sim: Any) -> float | None:
    """The largest phase current the simulated meter reads (None without a meter)."""
    if sim.meter is None:
        return None
    currents = [abs(v) for k, v in sim.meter.values().items() if k.startswith("current_")]
    return max(currents, default=0.0)


def driver_faults(e: Any, now: float) -> list[str]:
    """The fault kinds the EVSE's contactor, lock and meter drivers have latched before ``now``."""
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


def describe(sim: Any, e: Any, now: float) -> str:
    """The plant's and the controller's readings of one EVSE in one line (for a violation)."""
    view = e.session.view
    state = e.state
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
        lock_on, unlock_on = motor_lines(sim)
        motor = {(False, False): "off", (True, False): "lock", (False, True): "unlock", (True, True): "both"}
        parts += [
            f"lock={'locked' if sim.lock.locked else 'unlocked'}",
            f"jammed={sim.lock.jammed}",
            f"motor={motor[lock_on, unlock_on]}",
        ]
    if e.hw.lock is not None:
        lock = e.hw.lock.report()
        parts.append(f"ctrl_lock=cmd:{lock.commanded}/pos:{lock.position}/fault:{lock.fault and lock.fault.kind}")
    current = meter_current(sim)
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
    parts += describe_pilot(sim, e)
    return " ".join(parts)
