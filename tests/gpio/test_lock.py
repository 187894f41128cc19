"""GpioLock on MockFactory pins against a simulated lock mechanism: pulses, retries, faults."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from drivers.bridge import LoopBridge
from drivers.gpio import GpioLock, LockConfig
from drivers.interfaces import FaultKind, Lock, LockPosition, LockReport
from drivers.sim.pins import SimLockMechanism

LOCK_LINE, UNLOCK_LINE, FEEDBACK = "GPIO5", "GPIO6", "GPIO22"
PULSE = 0.1  # the shortest pulse the config allows
LOCKED, UNLOCKED, MOVING, UNKNOWN = (
    LockPosition.LOCKED,
    LockPosition.UNLOCKED,
    LockPosition.MOVING,
    LockPosition.UNKNOWN,
)


def rises(mock_factory: MockFactory, pin: str) -> int:
    """How many times an output went high: the motor pulses, read from the pin timeline."""
    states = [bool(s.state) for s in mock_factory.pin(pin).states]
    return sum(1 for a, b in itertools.pairwise(states) if b and not a)


def fault_kind(report: LockReport) -> FaultKind | None:
    return None if report.fault is None else report.fault.kind


@pytest.fixture
def make(mock_factory: MockFactory, bridge: LoopBridge) -> Iterator[Any]:
    """Build the simulated mechanism (first: it owns the pins) and the driver."""
    made: list[tuple[SimLockMechanism, GpioLock]] = []

    def build(
        *, locked: bool = False, travel_s: float = 0.02, feedback: bool = True, **options: Any
    ) -> tuple[SimLockMechanism, GpioLock]:
        sim = SimLockMechanism(
            mock_factory,
            LOCK_LINE,
            UNLOCK_LINE,
            FEEDBACK if feedback else None,
            travel_s=travel_s,
            locked=locked,
        )
        options.setdefault("feedback_debounce_s", 0.005)
        options.setdefault("retry_backoff_s", 0.01)
        config = LockConfig(
            lock_pin=LOCK_LINE,
            unlock_pin=UNLOCK_LINE,
            feedback_pin=FEEDBACK if feedback else None,
            pulse_s=PULSE,
            **options,
        )
        lock = GpioLock(config, bridge=bridge, pin_factory=mock_factory)
        made.append((sim, lock))
        return sim, lock

    yield build
    for sim, lock in made:
        lock.close()
        sim.close()


async def test_lock_pulses_once_brakes_and_confirms(
    make: Any, mock_factory: MockFactory, recorder: Callable[[], Any]
) -> None:
    sim, lock = make()
    assert isinstance(lock, Lock)
    assert lock.report() == LockReport(UNKNOWN, UNLOCKED, None)
    seen = recorder()
    lock.subscribe(seen)
    report = await lock.lock()
    assert report == LockReport(LOCKED, LOCKED, None)
    assert sim.locked and not sim.shoot_through
    assert rises(mock_factory, LOCK_LINE) == 1 and rises(mock_factory, UNLOCK_LINE) == 0
    assert mock_factory.pin(LOCK_LINE).state == 0  # braked: both lines off
    assert seen.values[0] == LockReport(LOCKED, UNLOCKED, None)
    assert LockReport(LOCKED, MOVING, None) in seen.values
    assert seen.values[-1] == report
    pulse = mock_factory.pin(LOCK_LINE).states
    assert pulse[-1].timestamp >= PULSE * 0.95  # the motor ran (at least) its pulse


async def test_unlock(make: Any, mock_factory: MockFactory) -> None:
    sim, lock = make(locked=True)
    assert lock.report().position is LOCKED
    report = await lock.unlock()
    assert report == LockReport(UNLOCKED, UNLOCKED, None)
    assert not sim.locked
    assert rises(mock_factory, UNLOCK_LINE) == 1 and rises(mock_factory, LOCK_LINE) == 0


async def test_jammed_lock_retries_then_faults(
    make: Any, mock_factory: MockFactory, recorder: Callable[[], Any]
) -> None:
    sim, lock = make(retries=2)
    sim.jam()
    seen = recorder()
    lock.subscribe(seen)
    report = await lock.lock()
    assert fault_kind(report) is FaultKind.LOCK_FAILED_LOCK
    assert (report.commanded, report.position) == (LOCKED, UNLOCKED)
    assert rises(mock_factory, LOCK_LINE) == 3  # first pulse + 2 retries
    assert len(sim.pulses) == 3
    assert all(r.fault is None for r in seen.values[:-1])  # no fault while retries remain
    assert not lock.busy and mock_factory.pin(LOCK_LINE).state == 0


async def test_jammed_unlock_faults_and_a_later_success_clears_it(make: Any) -> None:
    sim, lock = make(locked=True, retries=0)
    sim.jam()
    report = await lock.unlock()
    assert fault_kind(report) is FaultKind.LOCK_FAILED_UNLOCK and report.position is LOCKED
    sim.unjam()
    report = await lock.unlock()
    assert report == LockReport(UNLOCKED, UNLOCKED, None)


async def test_mechanism_slower_than_the_pulse_never_confirms(make: Any, mock_factory: MockFactory) -> None:
    _sim, lock = make(travel_s=0.5, retries=1)  # needs longer than a pulse: never arrives
    report = await lock.lock()
    assert fault_kind(report) is FaultKind.LOCK_FAILED_LOCK
    assert rises(mock_factory, LOCK_LINE) == 2


async def test_no_feedback_lock_is_time_based(make: Any, mock_factory: MockFactory) -> None:
    sim, lock = make(feedback=False)
    assert lock.report() == LockReport(UNKNOWN, UNKNOWN, None)
    report = await lock.lock()
    assert report == LockReport(LOCKED, LOCKED, None)  # assumed after a full pulse
    sim.jam()  # without feedback a jam cannot be seen: one pulse, no retries
    report = await lock.unlock()
    assert report == LockReport(UNLOCKED, UNLOCKED, None)
    assert rises(mock_factory, LOCK_LINE) == 1 and rises(mock_factory, UNLOCK_LINE) == 1


async def test_unexpected_change_while_idle_is_a_fault_until_back(
    make: Any, recorder: Callable[[], Any]
) -> None:
    sim, lock = make()
    await lock.lock()
    seen = recorder()
    lock.subscribe(seen)
    sim.force(False)  # pried open
    forced = await seen.wait_for(lambda r: r.fault is not None)
    assert forced.value == LockReport(LOCKED, UNLOCKED, forced.value.fault)
    assert fault_kind(forced.value) is FaultKind.LOCK_UNEXPECTED_CHANGE
    sim.force(True)
    back = await seen.wait_for(lambda r: r.fault is None)
    assert back.value == LockReport(LOCKED, LOCKED, None)


async def test_a_newer_command_supersedes_a_running_one(make: Any, mock_factory: MockFactory) -> None:
    sim, lock = make(retries=3, retry_backoff_s=5.0)
    sim.jam()
    locking = asyncio.create_task(lock.lock())
    await asyncio.sleep(0)  # the task starts its first pulse
    assert lock.report().position is MOVING
    sim.unjam()
    unlocked = await asyncio.wait_for(lock.unlock(), timeout=3.0)
    superseded = await asyncio.wait_for(locking, timeout=3.0)  # returns without waiting its back-off
    assert unlocked == LockReport(UNLOCKED, UNLOCKED, None)
    assert superseded.commanded is UNLOCKED
    assert not sim.shoot_through
    assert rises(mock_factory, LOCK_LINE) == 1


async def test_close_brakes_the_motor_and_is_idempotent(make: Any, mock_factory: MockFactory) -> None:
    _sim, lock = make()
    task = asyncio.create_task(lock.lock())
    await asyncio.sleep(0)  # the task starts its first pulse
    assert mock_factory.pin(LOCK_LINE).state == 1
    await lock.aclose()
    lock.close()
    assert mock_factory.pin(LOCK_LINE).state == 0
    await asyncio.wait_for(task, timeout=3.0)
    with pytest.raises(RuntimeError):
        await lock.lock()


async def test_cancelled_command_brakes(make: Any, mock_factory: MockFactory) -> None:
    _sim, lock = make()
    task = asyncio.create_task(lock.lock())
    await asyncio.sleep(0)
    assert mock_factory.pin(LOCK_LINE).state == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert mock_factory.pin(LOCK_LINE).state == 0 and not lock.busy
    assert lock.report().position is not MOVING
