"""GpioPlugSensor on MockFactory pins: software debounce and the thread boundary into the loop."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from drivers.bridge import LoopBridge
from drivers.gpio import GpioPlugSensor, PlugConfig
from drivers.interfaces import PlugSensor
from drivers.sim.pins import SimPlug

PLUG = "GPIO23"
HOLD = 0.1  # the default plug debounce


class FakeClock:
    """Injected time: the debounce hold only passes when the test says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def make(mock_factory: MockFactory, bridge: LoopBridge) -> Iterator[Any]:
    made: list[GpioPlugSensor] = []

    def build(
        *, plugged: bool = False, plugged_level: bool = False, **options: Any
    ) -> tuple[SimPlug, GpioPlugSensor]:
        sim = SimPlug(mock_factory, PLUG, plugged_level=plugged_level, plugged=plugged)
        clock = options.pop("clock", time.monotonic)
        options.setdefault("debounce_s", 0.03)
        config = PlugConfig(pin=PLUG, **options)
        sensor = GpioPlugSensor(config, bridge=bridge, pin_factory=mock_factory, clock=clock)
        made.append(sensor)
        return sim, sensor

    yield build
    for sensor in made:
        sensor.close()


async def test_bouncing_plug_is_reported_once_after_the_hold(make: Any, recorder: Callable[[], Any]) -> None:
    sim, sensor = make(debounce_s=HOLD)
    assert isinstance(sensor, PlugSensor) and sensor.plugged is False
    seen = recorder()
    sensor.subscribe(seen)
    # chatter for ~12 ms (edges far shorter than the hold) from a worker thread while the loop runs
    final_at = await asyncio.to_thread(sim.bounce, True, 12, 0.001)
    plugged = await seen.wait_for(lambda v: v is True)
    assert plugged.at >= final_at + HOLD  # never before the input was stable for the hold
    await asyncio.sleep(HOLD * 2)
    assert seen.values == [True] and sensor.plugged is True
    assert len(sim.pin.states) > 10  # the pin really bounced


async def test_hold_is_measured_on_the_injected_clock(make: Any, recorder: Callable[[], Any]) -> None:
    """Not before: however long real time runs, the change waits for the clock to pass the hold."""
    clock = FakeClock()
    sim, sensor = make(debounce_s=0.05, clock=clock)
    seen = recorder()
    sensor.subscribe(seen)
    sim.plug()
    await asyncio.sleep(0.12)  # real time well past the hold; the re-check timers have fired
    clock.now = 0.049
    await asyncio.sleep(0.07)
    assert seen.values == [] and sensor.plugged is False
    clock.now = 0.05
    await seen.wait_for(lambda v: v is True)
    assert sensor.plugged is True


async def test_glitch_shorter_than_the_hold_is_ignored(make: Any, recorder: Callable[[], Any]) -> None:
    clock = FakeClock()
    sim, sensor = make(debounce_s=0.05, clock=clock)
    seen = recorder()
    sensor.subscribe(seen)
    sim.plug()
    await asyncio.sleep(0.01)
    clock.now = 0.04
    sim.unplug()
    await asyncio.sleep(0.01)
    clock.now = 10.0
    await asyncio.sleep(0.07)
    assert seen.values == [] and sensor.plugged is False


async def test_plug_and_unplug(make: Any, recorder: Callable[[], Any]) -> None:
    sim, sensor = make(plugged=True)
    assert sensor.plugged is True  # read at start, no hold needed
    seen = recorder()
    sensor.subscribe(seen)
    sim.unplug()
    await seen.wait_for(lambda v: v is False)
    sim.plug()
    await seen.wait_for(lambda v: v is True)
    assert seen.values == [False, True]


@pytest.mark.parametrize(
    ("pull_up", "active_high", "plugged_level"),
    [(True, False, False), (False, True, True), (True, True, True), (None, False, False)],
)
async def test_polarity_options(
    make: Any, recorder: Callable[[], Any], pull_up: bool | None, active_high: bool, plugged_level: bool
) -> None:
    sim, sensor = make(plugged_level=plugged_level, pull_up=pull_up, active_high=active_high, debounce_s=0.0)
    assert sensor.plugged is False
    seen = recorder()
    sensor.subscribe(seen)
    sim.plug()
    await seen.wait_for(lambda v: v is True)


async def test_edge_from_a_worker_thread_arrives_in_the_loop_thread(
    make: Any, recorder: Callable[[], Any]
) -> None:
    """lgpio calls back in its own thread: the driver must hand the edge over via the bridge."""
    sim, sensor = make(debounce_s=0.0)
    seen = recorder()
    sensor.subscribe(seen)
    loop_thread = threading.get_ident()
    worker_ids: list[int] = []

    def hardware() -> None:
        worker_ids.append(threading.get_ident())
        time.sleep(0.005)
        sim.plug()  # gpiozero's callback runs here, in the worker

    worker = threading.Thread(target=hardware, name="fake-lgpio-callback")
    worker.start()
    arrived = await seen.wait_for(lambda v: v is True)
    worker.join(timeout=2)
    assert arrived.thread == loop_thread
    assert worker_ids and worker_ids[0] != loop_thread


async def test_close_is_idempotent_and_stops_reporting(make: Any, recorder: Callable[[], Any]) -> None:
    sim, sensor = make(debounce_s=0.0)
    seen = recorder()
    sensor.subscribe(seen)
    await sensor.aclose()
    sensor.close()
    sim.plug()
    await asyncio.sleep(0.01)
    assert seen.values == []
