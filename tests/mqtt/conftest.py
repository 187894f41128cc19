"""Fixtures: a real mosquitto broker per test (anonymous, or with a password file), stopped afterwards."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .broker import Broker, find_mosquitto, find_mosquitto_passwd

MakeBroker = Callable[..., Broker]


@pytest.fixture
def make_broker(tmp_path: Path) -> Iterator[MakeBroker]:
    """Start brokers (``users={"name": "password"}`` for one that wants a login); all are stopped afterwards."""
    binary = find_mosquitto()
    if binary is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto; .ci/run does it)")
    started: list[Broker] = []

    def make(*, users: dict[str, str] | None = None) -> Broker:
        if users and find_mosquitto_passwd() is None:
            pytest.skip("mosquitto_passwd is not installed (Debian package mosquitto)")
        directory = tmp_path / f"broker{len(started)}"
        directory.mkdir()
        broker = Broker(binary, directory, users=users)
        started.append(broker)
        return broker.start()

    yield make
    for broker in started:
        broker.stop()


@pytest.fixture
def broker(make_broker: MakeBroker) -> Broker:
    """An anonymous mosquitto on 127.0.0.1 and a free port."""
    return make_broker()
