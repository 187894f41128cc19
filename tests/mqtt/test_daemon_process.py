"""``charger-controller run --sim --mqtt-url`` as a process: ready while the broker is still down, attached once it
comes, ``offline`` by its last will after a SIGKILL, and by an orderly ``offline`` after SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import socket
from pathlib import Path

import pytest
from security.daemon import Daemon, free_port

from .broker import Broker
from .conftest import MakeBroker
from .mqtt_helpers import Watcher

WILL_WAIT_S = 30.0


def _prefix() -> str:
    """The default topic prefix of a controller on this machine: ``charger-controller/<hostname>``."""
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in socket.gethostname().split(".")[0])
    return f"charger-controller/{name or 'localhost'}"


def _daemon(tmp_path: Path, broker: Broker) -> Daemon:
    """``run --sim --mqtt-url`` on this broker, with its own state folder and API port."""
    return Daemon(["run", "--sim", "--mqtt-url", broker.url, "--state-dir", str(tmp_path / "state"),
                   "--api", f"127.0.0.1:{free_port('127.0.0.1')}"], tmp_path)


async def test_ready_without_the_broker_then_attached_then_offline_by_the_last_will(
        tmp_path: Path, make_broker: MakeBroker) -> None:
    broker = make_broker()
    broker.stop()  # down when the controller starts
    daemon = _daemon(tmp_path, broker)
    try:
        await asyncio.to_thread(daemon.start)  # returns at the ready line: a broker that is down does not hold it back
        assert "MQTT broker mqtt://127.0.0.1" in daemon.logs()  # the refused first attempt, logged
        broker.start()
        prefix = _prefix()
        async with Watcher(broker.port, f"{prefix}/#") as watcher:
            await watcher.value(f"{prefix}/availability", "online", timeout=WILL_WAIT_S)
            await watcher.value(f"{prefix}/evse/1/charge_status", "A")
            answer = await watcher.request(f"{prefix}/evse/1/enabled/set", "false", f"{prefix}/evse/1/result")
            assert answer == {"command": "enabled", "evse_id": 1, "enabled": False}

            assert daemon.proc is not None
            daemon.proc.send_signal(signal.SIGKILL)  # no orderly stop: only the broker can say it
            await asyncio.to_thread(daemon.proc.wait, 30)
            await watcher.value(f"{prefix}/availability", "offline", timeout=WILL_WAIT_S)
        async with Watcher(broker.port, f"{prefix}/availability") as late:  # the will was retained
            await late.value(f"{prefix}/availability", "offline")
    finally:
        daemon.stop()


async def test_sigterm_says_offline_before_it_goes(tmp_path: Path, broker: Broker) -> None:
    daemon = _daemon(tmp_path, broker)
    try:
        prefix = _prefix()
        async with Watcher(broker.port, f"{prefix}/availability") as watcher:
            await asyncio.to_thread(daemon.start)
            await watcher.value(f"{prefix}/availability", "online", timeout=WILL_WAIT_S)
            assert await asyncio.to_thread(daemon.stop) == 0
            await watcher.value(f"{prefix}/availability", "offline")
        assert "MQTT: offline published" in daemon.logs()
    finally:
        daemon.stop()


@pytest.mark.parametrize("url", ["http://127.0.0.1:1883", "mqtt://user:secret@127.0.0.1", "mqtt://127.0.0.1:0"])
def test_a_bad_mqtt_url_is_refused_before_anything_starts(tmp_path: Path, url: str) -> None:
    from security.daemon import run_to_exit

    code, out = run_to_exit(["run", "--sim", "--mqtt-url", url, "--state-dir", str(tmp_path / "state")], tmp_path)
    assert code == 1
    assert out.startswith("--mqtt-url: "), out
    assert "secret" not in out
