"""A broker that goes away and comes back, one that refuses the login, TLS with the configured CA, and the
password kept out of every log line."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from controller.config.loader import parse_config
from controller.config.mqtt import PASSWORD_ENV
from controller.mqtt.backoff import Backoff

from .broker import Broker
from .conftest import MakeBroker
from .mqtt_helpers import DISCOVERY, PREFIX, Watcher, evse_topic, mqtt_config, running_sim

SIM_DEFAULT = Path(__file__).resolve().parents[2] / "controller" / "config" / "sim_default.toml"
PASSWORD = "pw-7c1e-Quokka-91"


async def _until(check: Callable[[], bool], what: str, within_s: float = 20.0) -> None:
    """Wait (bounded) for a condition of the bridge that no message announces."""
    async with asyncio.timeout(within_s):
        while not check():
            await asyncio.sleep(0.02)
    assert check(), what


async def test_after_a_broker_restart_everything_is_published_again(tmp_path: Path, broker: Broker) -> None:
    async with running_sim(tmp_path / "state", mqtt_config(broker.url), backoff=Backoff(0.1, 0.5)) as (built, bridge):
        async with Watcher(broker.port) as before:
            await before.value(f"{PREFIX}/availability", "online")
            await before.value(evse_topic(1, "charge_status"), "A")
        broker.stop()  # retained messages are lost with it (no persistence)
        await _until(lambda: not bridge.connected, "the bridge saw the broker go")
        await built.runtime.set_enabled(2, False)  # a change while the broker is away
        broker.start()
        await _until(lambda: bridge.connections == 2, "reconnected")
        async with Watcher(broker.port) as after:  # everything again, from the new broker's retained store
            await after.value(f"{PREFIX}/availability", "online")
            await after.value(evse_topic(1, "charge_status"), "A")
            await after.value(evse_topic(2, "enabled"), "false")
            await after.value(evse_topic(2, "state"), "Unavailable")
            await after.until(lambda: len(after.retained(f"{DISCOVERY}/")) == len(before.retained(f"{DISCOVERY}/")),
                              "every discovery config")
            # and it serves commands on the new connection (it subscribed again)
            answer = await after.request(f"{PREFIX}/evse/2/enabled/set", "ON", f"{PREFIX}/evse/2/result")
            assert answer == {"command": "enabled", "evse_id": 2, "enabled": True}


async def test_a_broker_that_is_down_at_start_delays_nothing(tmp_path: Path, make_broker: MakeBroker,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    """start() returns once the first attempt failed; the bridge connects when the broker comes."""
    broker = make_broker()
    broker.stop()
    caplog.set_level(logging.INFO, logger="controller.mqtt")
    async with asyncio.timeout(10):  # the first attempt is refused at once: start() is quick
        context = running_sim(tmp_path / "state", mqtt_config(broker.url), backoff=Backoff(0.1, 0.5))
        built, bridge = await context.__aenter__()
    try:
        assert not bridge.connected and bridge.connections == 0
        assert "MQTT broker mqtt://127.0.0.1" in caplog.text and "Connection refused" in caplog.text
        assert built.runtime.evse_status(1)["state"] == "Available"  # the controller runs meanwhile
        broker.start()
        await _until(lambda: bridge.connected, "connected once the broker came")
        async with Watcher(broker.port) as watcher:
            await watcher.value(evse_topic(1, "state"), "Available")
        assert "MQTT connected to" in caplog.text and "failed attempt" in caplog.text
    finally:
        await context.__aexit__(None, None, None)


async def test_the_password_is_used_but_never_logged(tmp_path: Path, make_broker: MakeBroker,
                                                      caplog: pytest.LogCaptureFixture,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    broker = make_broker(users={"charger": PASSWORD})
    caplog.set_level(logging.DEBUG)  # paho's packet log too
    (tmp_path / "mqtt-password").write_text(f"{PASSWORD}\n", encoding="utf-8")
    text = SIM_DEFAULT.read_text(encoding="utf-8") + (
        f'\n[mqtt]\nurl = "{broker.url}"\nusername = "charger"\npassword_file = "mqtt-password"\n'
        f'topic_prefix = "{PREFIX}"\n')
    config = parse_config(text, source="charger.toml", base_dir=tmp_path).mqtt
    assert config is not None and config.password == PASSWORD
    assert PASSWORD not in repr(config) and PASSWORD not in str(config)

    wrong = dataclasses.replace(config, password="not-the-password")
    async with running_sim(tmp_path / "state1", wrong, backoff=Backoff(0.1, 0.3)) as (_, bridge):
        assert not bridge.connected
        assert "Not authorized" in caplog.text or "not authori" in caplog.text.lower()

    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)  # the other way to give it: the environment
    from_env = parse_config(text.replace('password_file = "mqtt-password"\n', ""), source="charger.toml").mqtt
    assert from_env is not None and from_env.password == PASSWORD
    for settings in (config, from_env):
        async with running_sim(tmp_path / f"state-{id(settings)}", settings) as (_, bridge), \
                Watcher(broker.port, f"{PREFIX}/#", username="charger", password=PASSWORD) as watcher:
            assert bridge.connected
            await watcher.value(evse_topic(1, "state"), "Available")
            answer = await watcher.request(f"{PREFIX}/evse/1/reset/set", "PRESS", f"{PREFIX}/evse/1/result")
            assert answer["faults"] == []
    assert "Sending CONNECT" in caplog.text  # paho's debug lines were captured, and hold no password
    assert PASSWORD not in caplog.text
    assert "not-the-password" not in caplog.text


def _make_ca(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a certificate for 127.0.0.1 signed by it (openssl): (ca.pem, server.pem, server.key)."""
    ca_key, ca, key, csr, cert = (directory / n for n in ("ca.key", "ca.pem", "server.key", "server.csr",
                                                          "server.pem"))
    ext = directory / "san.cnf"
    ext.write_text("subjectAltName = IP:127.0.0.1\n", encoding="utf-8")

    def run(*args: str) -> None:
        """One openssl command, which must succeed."""
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca), "-days", "2",
        "-subj", "/CN=test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial", "-out", str(cert),
        "-days", "2", "-extfile", str(ext))
    return ca, cert, key


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
async def test_mqtts_verifies_the_broker_against_the_ca_file(tmp_path: Path, make_broker: MakeBroker,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    broker = make_broker()
    broker.stop()
    ca, cert, key = _make_ca(broker.directory)
    config = broker.config_path.read_text(encoding="utf-8")
    broker.config_path.write_text(config + f"cafile {ca}\ncertfile {cert}\nkeyfile {key}\n", encoding="utf-8")
    broker.start()
    url = f"mqtts://127.0.0.1:{broker.port}"

    caplog.set_level(logging.WARNING, logger="controller.mqtt")
    async with running_sim(tmp_path / "state1", mqtt_config(url), backoff=Backoff(0.1, 0.3)) as (_, bridge):
        assert not bridge.connected  # the system CAs do not know the test CA
        assert "CERTIFICATE_VERIFY_FAILED" in caplog.text or "certificate verify failed" in caplog.text

    async with running_sim(tmp_path / "state2", mqtt_config(url, ca_file=ca)) as (_, bridge):
        assert bridge.connected
