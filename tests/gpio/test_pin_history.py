"""Bounded mock pin histories: a long simulation stays flat, and the readers still see every edge.

gpiozero's MockPin appends every state change to ``pin.states`` forever (~260 MB a day under ``run --sim``
while charging). The sim's pins (drivers.sim.pins.CappedMockPWMPin, its subclasses, and the pin class of
``controller.runtime.build.make_pin_factory``) keep the last HISTORY_CAP changes and number every change, and the
readers (hil.sim_bench.MockLineProbe, tests/e2e/sim_charger.py) read on from a sequence number.
"""

from __future__ import annotations

import gc
import logging
import threading
import tracemalloc
from collections.abc import Iterator
from itertools import pairwise
from typing import Any

import pytest
from gpiozero import DigitalOutputDevice
from gpiozero.pins.mock import MockFactory, MockPWMPin, PinState

from controller.config.loader import PinFactory
from controller.runtime.build import make_pin_factory
from drivers.sim.pin_history import HISTORY_CAP, CappedMockPWMPin, PinHistory, change_count, read_changes
from drivers.sim.pins import DrivenPin, MockConnectedPWMPin, ObservedPin, SimContactor, SimLockMechanism, SimPlug
from hil.profile import LineSpec
from hil.sim_bench import MockLineProbe

DRIVES = 100_000


@pytest.fixture
def capped_factory() -> Iterator[MockFactory]:
    """A MockFactory whose pins are capped, as ``run --sim`` makes them."""
    factory = MockFactory(pin_class=CappedMockPWMPin)
    yield factory
    factory.reset()
    factory.close()


def output_pin(factory: MockFactory, name: str = "GPIO17") -> Any:
    """A capped pin set up as an output, as a driver's LED or coil is."""
    pin = factory.pin(name)
    pin.function = "output"
    return pin


def toggle(pin: Any, times: int, start: int = 0) -> None:
    """Change the pin's state ``times`` times (1, 0, 1, ... from an off pin)."""
    for i in range(start, start + times):
        pin.state = (i + 1) % 2


def test_a_capped_pin_driven_100k_times_keeps_the_cap_and_flat_memory(capped_factory: MockFactory) -> None:
    """Would catch a history that still grows (list, no maxlen, a counter or times list without a cap)."""
    pin = output_pin(capped_factory)
    half = DRIVES // 2
    tracemalloc.start()
    try:
        toggle(pin, half)  # fills the history and turns it over: everything it holds is now traced
        gc.collect()
        before, _ = tracemalloc.get_traced_memory()
        assert len(pin.states) == HISTORY_CAP
        toggle(pin, DRIVES - half, start=half)
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(pin.states) == HISTORY_CAP and len(pin._times) == HISTORY_CAP
    assert pin.change_count == 1 + DRIVES  # the first state, then every change
    assert after - before < 16 * 1024, f"grew {after - before} bytes over {DRIVES - half} changes"  # uncapped: ~7 MB
    kept = read_changes(pin, 0)
    assert kept.lost == pin.change_count - HISTORY_CAP and len(kept.changes) == HISTORY_CAP
    assert kept.changes[-1].seq == pin.change_count - 1 and kept.changes[-1].state == pin.state


def test_an_uncapped_pin_would_grow() -> None:
    """The control for the test above: gpiozero's own MockPWMPin keeps everything."""
    factory = MockFactory(pin_class=MockPWMPin)
    try:
        pin = output_pin(factory)
        toggle(pin, 3 * HISTORY_CAP)
        assert len(pin.states) == 3 * HISTORY_CAP + 1
        assert change_count(pin) == len(pin.states)
    finally:
        factory.reset()
        factory.close()


def test_gpiozero_history_helpers_still_work(capped_factory: MockFactory) -> None:
    """assert_states, assert_states_and_times and clear_states, on a device-driven capped pin."""
    with DigitalOutputDevice("GPIO17", pin_factory=capped_factory) as led:
        pin = capped_factory.pin("GPIO17")
        assert isinstance(pin, CappedMockPWMPin) and isinstance(pin.states, PinHistory)
        led.on()
        led.off()
        led.on()
        pin.assert_states([False, True, False, True])
        pin.assert_states_and_times([(0.0, False), (0.0, True), (0.0, False), (0.0, True)])
        assert pin.states == [PinState(s.timestamp, s.state) for s in pin.states]  # compares like the list it was
        assert [s.state for s in pin.states[1:3]] == [True, False]  # slicing works, as on a list
        assert pin.states[-1].state == 1 and len(pin.states) == pin.change_count == 4
        pin.clear_states()
        assert len(pin.states) == 1 and pin.states[0].state == 1
        assert pin.change_count == 5  # the counter never goes back: readers holding a number keep working
        led.off()
        pin.assert_states([True, False])
        assert [c.seq for c in read_changes(pin, 4).changes] == [4, 5]


def test_polling_reads_every_edge_of_100k_changes(capped_factory: MockFactory) -> None:
    """Would catch a reader that uses len(states) (stuck at the cap) or misses or repeats changes at the wrap."""
    pin = output_pin(capped_factory)
    seen: list[Any] = []
    since = change_count(pin)
    for chunk in range(DRIVES // 700):
        toggle(pin, 700, start=chunk * 700)  # less than the cap between two reads
        read = read_changes(pin, since)
        assert read.lost == 0
        seen.extend(read.changes)
        since = read.next_seq
    assert [c.seq for c in seen] == list(range(1, 1 + len(seen))) and len(seen) == DRIVES // 700 * 700
    assert [c.state for c in seen[:4]] == [1.0, 0.0, 1.0, 0.0]
    assert all(a.time <= b.time for a, b in pairwise(seen))


def test_a_reader_that_falls_behind_is_told_what_it_lost(capped_factory: MockFactory) -> None:
    pin = output_pin(capped_factory)
    since = change_count(pin)
    toggle(pin, HISTORY_CAP + 10)
    read = read_changes(pin, since)
    assert read.lost == 10 and len(read.changes) == HISTORY_CAP
    assert read.changes[0].seq == since + 10 and read.next_seq == since + HISTORY_CAP + 10
    assert read_changes(pin, read.next_seq).changes == []  # nothing new


def test_read_changes_of_a_plain_mock_pin_matches_its_states() -> None:
    """The fallback for gpiozero's own pins (tests' conftest factory): positions and times from _last_change."""
    factory = MockFactory(pin_class=MockPWMPin)
    try:
        pin = output_pin(factory)
        toggle(pin, 5)
        read = read_changes(pin, 2)
        assert [c.seq for c in read.changes] == [2, 3, 4, 5] and read.next_seq == 6 and read.lost == 0
        assert [c.state for c in read.changes] == [s.state for s in pin.states[2:]]
        assert read.changes[-1].time == pin._last_change
    finally:
        factory.reset()
        factory.close()


def test_readers_and_a_writer_thread_do_not_race(capped_factory: MockFactory) -> None:
    """Iterating ``states`` while another thread appends (a plain deque would raise) and reading on by number."""
    pin = output_pin(capped_factory)
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set():
            pin.state = (i + 1) % 2
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        first = since = change_count(pin)
        seen = 0
        for _ in range(300):
            assert len([s.state for s in pin.states]) <= HISTORY_CAP
            read = read_changes(pin, since)
            assert [c.seq for c in read.changes] == list(range(since + read.lost, read.next_seq))
            seen += len(read.changes) + read.lost
            since = read.next_seq
    finally:
        stop.set()
        thread.join()
    assert seen == since - first > 0


def test_every_pin_the_simulation_makes_is_capped() -> None:
    """run --sim's factory, the plant's watched and driven pins, and the connected test pin."""
    factory = make_pin_factory(PinFactory.MOCK)
    try:
        assert factory.pin_class is CappedMockPWMPin
        SimContactor(factory, "GPIO17", "GPIO27").close()
        SimLockMechanism(factory, "GPIO5", "GPIO6", "GPIO13").close()
        SimPlug(factory, "GPIO26")
        mirror = factory.pin("GPIO20")
        connected = factory.pin("GPIO21", pin_class=MockConnectedPWMPin, input_pin=mirror)
        pins = [factory.pin(n) for n in ("GPIO17", "GPIO27", "GPIO5", "GPIO6", "GPIO13", "GPIO26", "GPIO20")]
        assert {type(p) for p in pins} == {ObservedPin, DrivenPin, CappedMockPWMPin}
        assert all(isinstance(p, CappedMockPWMPin) for p in [*pins, connected])
    finally:
        factory.reset()
        factory.close()


def _probe(pin: Any) -> MockLineProbe:
    return MockLineProbe(pin, LineSpec(role="reserved_led", harness="GPIO17", dut="GPIO17", active_high=True))


def test_the_sim_bench_probe_sees_every_edge_past_the_cap(capped_factory: MockFactory) -> None:
    """hil.sim_bench's line probe, polled as its recorder does, over 100k changes: every edge, in order, once."""
    pin = output_pin(capped_factory)
    probe = _probe(pin)
    t0, value = probe.initial()
    assert value == 0.0 and t0 == pin._last_change
    edges: list[tuple[float, float]] = []
    for chunk in range(DRIVES // 500):
        toggle(pin, 500, start=chunk * 500)
        edges.extend(probe.poll())
    assert len(edges) == DRIVES and probe.lost == 0
    assert [v for _, v in edges[:3]] == [1.0, 0.0, 1.0] and edges[-1][1] == float(pin.state)
    assert all(edges[i][1] != edges[i + 1][1] for i in range(len(edges) - 1))
    assert edges[0][0] >= t0 and all(a[0] <= b[0] for a, b in pairwise(edges))


def test_a_probe_attached_after_the_cap_starts_from_the_present_state(capped_factory: MockFactory) -> None:
    pin = output_pin(capped_factory)
    toggle(pin, 3 * HISTORY_CAP + 1)
    probe = _probe(pin)
    assert probe.initial() == (pin._last_change, 1.0)
    assert probe.poll() == []
    pin.state = 0
    assert probe.poll() == [(pin._last_change, 0.0)]


def test_a_probe_that_falls_behind_logs_what_it_lost(
    capped_factory: MockFactory, caplog: pytest.LogCaptureFixture
) -> None:
    pin = output_pin(capped_factory)
    probe = _probe(pin)
    toggle(pin, HISTORY_CAP + 5)
    with caplog.at_level(logging.WARNING, logger="hil.sim_bench"):
        assert len(probe.poll()) == HISTORY_CAP
    assert probe.lost == 5
    assert "5 changes dropped" in caplog.text
