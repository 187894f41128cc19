"""GpioContactor on MockFactory pins against a simulated contactor: supervision timing, weld latch."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from drivers.bridge import LoopBridge
from drivers.gpio import ContactorConfig, GpioContactor
from drivers.interfaces import Contactor, ContactorReport, FaultKind
from drivers.sim.pins import SimContactor

COIL, AUX = "GPIO17", "GPIO27"
TIMEOUT = 0.05


def fault_kind(report: ContactorReport) -> FaultKind | None:
    return None if report.fault is None else report.fault.kind


@pytest.fixture
def make(mock_factory: MockFactory, bridge: LoopBridge) -> Iterator[Any]:
    """Build a simulated contactor (first, it owns the pins) and the driver on the same pins."""
    made: list[tuple[SimContactor, GpioContactor]] = []

    def build(delay_s: float = 0.0, **options: Any) -> tuple[SimContactor, GpioContactor]:
        sim_kw = {k: options.pop(k) for k in ("aux_closed_level",) if k in options}
        sim = SimContactor(mock_factory, COIL, AUX, delay_s=delay_s, **sim_kw)
        config = ContactorConfig(coil_pin=COIL, feedback_pin=AUX, supervision_timeout_s=TIMEOUT, **options)
        contactor = GpioContactor(config, bridge=bridge, pin_factory=mock_factory)
        made.append((sim, contactor))
        return sim, contactor

    yield build
    for sim, contactor in made:
        contactor.release()
        sim.close()


async def test_is_a_contactor_and_follows_commands_in_the_pin_timeline(
    make: Any, mock_factory: MockFactory, recorder: Callable[[], Any]
) -> None:
    _sim, contactor = make(delay_s=0.01)  # aux follows from a timer thread
    assert isinstance(contactor, Contactor)
    seen = recorder()
    contactor.subscribe(seen)
    contactor.close()
    closed = await seen.wait_for(lambda r: r.feedback_closed is True)
    assert closed.value.commanded_closed and closed.value.fault is None
    contactor.open()
    opened = await seen.wait_for(lambda r: r.feedback_closed is False and not r.commanded_closed)
    assert opened.value.fault is None
    assert [bool(s.state) for s in mock_factory.pin(COIL).states] == [False, True, False]
    assert [(r.commanded_closed, r.feedback_closed) for r in seen.values] == [
        (True, False),
        (True, True),
        (False, True),
        (False, False),
    ]


@pytest.mark.parametrize(
    ("options", "closed_level"),
    [
        ({"feedback_pull_up": True, "feedback_active_high": False}, False),  # NO aux to GND, pull-up
        ({"feedback_pull_up": False, "feedback_active_high": True}, True),  # NO aux to 3V3, pull-down
        ({"feedback_pull_up": True, "feedback_active_high": True}, True),  # NC aux to GND, pull-up
        ({"feedback_pull_up": None, "feedback_active_high": True}, True),  # external pull
    ],
)
async def test_aux_polarity_options(
    make: Any, recorder: Callable[[], Any], options: dict[str, Any], closed_level: bool
) -> None:
    sim, contactor = make(aux_closed_level=closed_level, **options)
    assert contactor.feedback_closed is False
    seen = recorder()
    contactor.subscribe(seen)
    contactor.close()
    await seen.wait_for(lambda r: r.feedback_closed is True)
    assert sim.contacts_closed
    assert contactor.report(time.monotonic() + 1.0).fault is None


async def test_weld_is_reported_after_and_not_before_the_timeout(
    make: Any, recorder: Callable[[], Any]
) -> None:
    sim, contactor = make()
    seen = recorder()
    contactor.subscribe(seen)
    contactor.close()
    await seen.wait_for(lambda r: r.feedback_closed is True)
    sim.weld()
    contactor.open()
    since = contactor.report(time.monotonic()).since
    assert fault_kind(contactor.report(since + TIMEOUT * 0.99)) is None
    assert fault_kind(contactor.report(since + TIMEOUT)) is FaultKind.CONTACTOR_WELDED
    welded = await seen.wait_for(lambda r: r.fault is not None)
    assert welded.value.fault.kind is FaultKind.CONTACTOR_WELDED
    assert welded.value.fault.since >= since + TIMEOUT
    assert welded.at >= since + TIMEOUT
    assert all(r.fault is None for r in seen.values[: seen.values.index(welded.value)])
    assert (welded.value.commanded_closed, welded.value.feedback_closed) == (False, True)


async def test_weld_latches_until_reset(make: Any, recorder: Callable[[], Any], until: Any) -> None:
    sim, contactor = make()
    seen = recorder()
    contactor.subscribe(seen)
    sim.weld()  # welded while idle: the aux closes on its own
    await seen.wait_for(lambda r: fault_kind(r) is FaultKind.CONTACTOR_WELDED)
    sim.repair()  # the weld lets go: healthy readings do not clear a weld
    healthy = await seen.wait_for(lambda r: r.feedback_closed is False)
    assert fault_kind(healthy.value) is FaultKind.CONTACTOR_WELDED
    assert fault_kind(contactor.report(time.monotonic() + 3600)) is FaultKind.CONTACTOR_WELDED
    contactor.reset_fault()
    assert seen.values[-1].fault is None
    assert contactor.report(time.monotonic() + 3600).fault is None


async def test_reset_while_still_welded_faults_again(make: Any, recorder: Callable[[], Any]) -> None:
    sim, contactor = make()
    seen = recorder()
    contactor.subscribe(seen)
    sim.weld()
    await seen.wait_for(lambda r: r.fault is not None)
    contactor.reset_fault()
    reset_at = contactor.report(time.monotonic()).since
    again = await seen.wait_for(lambda r: r.since == reset_at and r.fault is not None)
    assert again.value.fault.kind is FaultKind.CONTACTOR_WELDED
    assert again.value.fault.since >= reset_at + TIMEOUT


async def test_welded_at_start_up(mock_factory: MockFactory, bridge: LoopBridge, recorder: Any) -> None:
    sim = SimContactor(mock_factory, COIL, AUX)
    sim.weld()
    config = ContactorConfig(coil_pin=COIL, feedback_pin=AUX, supervision_timeout_s=TIMEOUT)
    async with GpioContactor(config, bridge=bridge, pin_factory=mock_factory) as contactor:
        seen = recorder()
        contactor.subscribe(seen)
        assert contactor.feedback_closed is True
        welded = await seen.wait_for(lambda r: r.fault is not None)
        assert welded.value.fault.kind is FaultKind.CONTACTOR_WELDED
    sim.close()


async def test_failed_to_close_opens_the_coil_after_the_timeout(
    make: Any, mock_factory: MockFactory, recorder: Callable[[], Any]
) -> None:
    sim, contactor = make(delay_s=0.005)
    sim.stick_open()
    seen = recorder()
    contactor.subscribe(seen)
    contactor.close()
    since = seen.values[0].since
    assert fault_kind(contactor.report(since + TIMEOUT * 0.99)) is None
    failed = await seen.wait_for(lambda r: r.fault is not None)
    assert failed.value.fault.kind is FaultKind.CONTACTOR_FAILED_TO_CLOSE
    assert failed.value.fault.since >= since + TIMEOUT
    assert failed.value.commanded_closed is False  # the driver released the coil itself
    assert [bool(s.state) for s in mock_factory.pin(COIL).states] == [False, True, False]
    assert not sim.coil_energized


async def test_drop_out_while_closed_is_a_failure_to_close(make: Any, recorder: Callable[[], Any]) -> None:
    sim, contactor = make()
    seen = recorder()
    contactor.subscribe(seen)
    contactor.close()
    await seen.wait_for(lambda r: r.feedback_closed is True)
    sim.stick_open()
    dropped = await seen.wait_for(lambda r: r.fault is not None)
    assert dropped.value.fault.kind is FaultKind.CONTACTOR_FAILED_TO_CLOSE
    assert not sim.coil_energized


async def test_failed_to_close_clears_once_healthy_for_the_hold(
    make: Any, recorder: Callable[[], Any]
) -> None:
    sim, contactor = make(fault_clear_s=0.03)
    sim.stick_open()
    seen = recorder()
    contactor.subscribe(seen)
    contactor.close()
    failed = await seen.wait_for(lambda r: r.fault is not None)
    cleared = await seen.wait_for(lambda r: r.fault is None and r.since == failed.value.since)
    assert cleared.at >= failed.value.since + 0.03


async def test_min_reclose_interval_defers_a_close_and_open_cancels_it(
    make: Any, mock_factory: MockFactory, recorder: Callable[[], Any]
) -> None:
    _sim, contactor = make(min_reclose_s=0.05)
    seen = recorder()
    contactor.subscribe(seen)
    contactor.close()
    contactor.open()
    opened_at = seen.values[-1].since
    contactor.close()
    assert contactor.close_pending and not contactor.commanded_closed
    contactor.open()  # open wins over the waiting close
    assert not contactor.close_pending
    contactor.close()
    reclosed = await seen.wait_for(lambda r: r.commanded_closed and r.since > opened_at)
    assert reclosed.value.since >= opened_at + 0.05
    assert [bool(s.state) for s in mock_factory.pin(COIL).states] == [False, True, False, True]


async def test_without_aux_there_is_no_supervision(
    mock_factory: MockFactory, bridge: LoopBridge, recorder: Callable[[], Any]
) -> None:
    config = ContactorConfig(coil_pin=COIL, supervision_timeout_s=TIMEOUT)
    async with GpioContactor(config, bridge=bridge, pin_factory=mock_factory) as contactor:
        contactor.close()
        report = contactor.report(time.monotonic() + 60)
        assert (report.commanded_closed, report.feedback_closed, report.fault) == (True, None, None)
        assert mock_factory.pin(COIL).state == 1


async def test_release_opens_the_coil_and_is_idempotent(
    mock_factory: MockFactory, bridge: LoopBridge
) -> None:
    config = ContactorConfig(coil_pin=COIL, coil_active_high=False)
    contactor = GpioContactor(config, bridge=bridge, pin_factory=mock_factory)
    assert mock_factory.pin(COIL).state == 1  # active low: released coil is a high pin
    contactor.close()
    assert mock_factory.pin(COIL).state == 0
    await contactor.aclose()
    contactor.release()
    contactor.open()  # harmless after release
    with pytest.raises(RuntimeError):
        contactor.close()


async def test_pin_factory_is_required(bridge: LoopBridge) -> None:
    with pytest.raises(ValueError, match="pin_factory"):
        GpioContactor(ContactorConfig(coil_pin=COIL), bridge=bridge, pin_factory=None)
