"""The reconnect delays (1 s doubling to 60 s, each drawn from its upper half) and the throttled log lines."""

from __future__ import annotations

import logging

import pytest

from controller.mqtt.backoff import Backoff, ThrottledLog


@pytest.mark.parametrize("draw", [0.0, 0.5, 0.999])
def test_delays_double_to_the_cap_within_their_jitter(draw: float) -> None:
    backoff = Backoff(rand=lambda: draw)
    delays = [backoff.next_delay() for _ in range(10)]
    ceilings = [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling / 2 <= delay <= ceiling
        assert delay == pytest.approx(ceiling / 2 + draw * ceiling / 2)
    backoff.reset()
    assert backoff.next_delay() <= 1.0


def test_many_failures_never_overflow() -> None:
    backoff = Backoff(rand=lambda: 1.0)
    backoff.failures = 10_000
    assert backoff.next_delay() == 60.0


def test_a_repeated_failure_is_logged_once_per_period_with_a_count(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    throttle = ThrottledLog(logging.getLogger("test.throttle"), period_s=60.0, clock=lambda: now[0])
    caplog.set_level(logging.INFO, logger="test.throttle")
    assert throttle.log(logging.WARNING, "connect", "broker %s down", "b1")
    for step in range(5):
        now[0] += 10.0
        assert not throttle.log(logging.WARNING, "connect", "broker %s down", "b1"), step
    assert throttle.log(logging.WARNING, "other", "something else")  # another key is not held back
    now[0] += 15.0
    assert throttle.log(logging.WARNING, "connect", "broker %s down", "b1")
    assert [r.getMessage() for r in caplog.records] == [
        "broker b1 down", "something else", "broker b1 down (5 more like this in the last 65 s)"]
    throttle.forget("connect")  # the condition ended: its next occurrence is logged at once
    assert throttle.log(logging.WARNING, "connect", "broker %s down", "b1")
