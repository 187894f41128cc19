"""The optional ``[mqtt]`` section: defaults from the host name, every problem named by file and key, the password
from a file or the environment (never shown), and ``run --mqtt-url`` over a file or with ``--sim``."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from controller.config.loader import ConfigError, load_sim_default, parse_config
from controller.config.mqtt import PASSWORD_ENV, parse_mqtt_url, with_mqtt_url

from .config_helpers import SOURCE, base, load, only_problem, problems, to_toml

HOST = socket.gethostname().split(".")[0]


def with_mqtt(**section: Any) -> dict[str, Any]:
    """The valid base configuration with this ``[mqtt]`` table."""
    data = base()
    data["mqtt"] = section
    return data


def test_no_section_no_bridge() -> None:
    assert load(base()).mqtt is None


def test_only_the_url_is_needed_and_the_rest_has_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "ignored-without-a-user")
    mqtt = load(with_mqtt(url="mqtt://broker.lan")).mqtt
    assert mqtt is not None
    assert (mqtt.host, mqtt.port, mqtt.tls, mqtt.ca_file) == ("broker.lan", 1883, False, None)
    assert (mqtt.username, mqtt.password) == (None, None)
    assert mqtt.client_id == f"charger-controller-{HOST}"
    assert mqtt.topic_prefix == f"charger-controller/{HOST}"
    assert (mqtt.discovery_prefix, mqtt.publish_interval_s) == ("homeassistant", 10.0)
    assert load(with_mqtt(url="mqtt://broker.lan")).summary().endswith(", MQTT to mqtt://broker.lan")


@pytest.mark.parametrize(("url", "expected"), [
    ("mqtt://10.0.0.5", ("10.0.0.5", 1883, False)),
    ("mqtts://broker.lan", ("broker.lan", 8883, True)),
    ("mqtt://broker.lan:1884", ("broker.lan", 1884, False)),
    ("mqtts://[::1]:8884", ("::1", 8884, True)),
    ("mqtts://[fd00::5]", ("fd00::5", 8883, True)),
])
def test_broker_urls(url: str, expected: tuple[str, int, bool]) -> None:
    assert parse_mqtt_url(url) == expected


@pytest.mark.parametrize(("url", "wording"), [
    ("tcp://broker:1883", "expected mqtt://host[:port] or mqtts://host[:port]"),
    ("broker.lan", "expected mqtt://host[:port]"),
    ("mqtt://user:pw@broker", "no user or password in the URL"),
    ("mqtt://broker/path", "no path"),
    ("mqtt://broker:0", "port must be 1..65535"),
    ("mqtt://broker:99999", "port must be 1..65535"),
    ("mqtt://::1", "IPv6 address in brackets"),
    ("mqtt://bad_host!", "is not a host name"),
])
def test_a_bad_url_names_the_key(url: str, wording: str) -> None:
    problem = only_problem(with_mqtt(url=url))
    assert problem.startswith(f"{SOURCE}: mqtt.url: ") and wording in problem, problem
    assert "pw" not in problem.removeprefix(f"{SOURCE}: mqtt.url: ").replace("password", "")


def test_every_problem_of_the_section_at_once() -> None:
    found = problems(with_mqtt(url="mqtp://x", publish_interval_s=0, topic_prefix="a/+/b", discovery_prefix="ha/",
                               client_id="has space", colour="red", username=""))
    assert {p.split(": ")[1] for p in found} == {"mqtt.url", "mqtt.publish_interval_s", "mqtt.topic_prefix",
                                                 "mqtt.discovery_prefix", "mqtt.client_id", "mqtt.colour",
                                                 "mqtt.username"}, found
    assert any("mqtt.publish_interval_s: must be > 0" in p for p in found)
    assert any("mqtt.topic_prefix: must not contain '+'" in p for p in found)
    assert any('mqtt.discovery_prefix: no empty level' in p for p in found)
    assert any("mqtt.colour: unknown key; allowed keys: ca_file, client_id, discovery_prefix, password_file, "
               "publish_interval_s, topic_prefix, url, username" in p for p in found)


def test_the_url_is_required_and_the_section_is_a_table() -> None:
    assert only_problem(with_mqtt()) == f"{SOURCE}: mqtt.url: required, but missing"
    data = base()
    data["mqtt"] = "mqtt://broker"
    assert only_problem(data).startswith(f"{SOURCE}: mqtt: expected a table")


def test_ca_file_is_for_mqtts_and_must_exist(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n", encoding="utf-8")

    def parse(**section: Any) -> Any:
        """The configuration with this ``[mqtt]``, read from a file in tmp_path."""
        return parse_config(to_toml(with_mqtt(**section)), source=SOURCE, base_dir=tmp_path)

    assert parse(url="mqtts://broker", ca_file="ca.pem").mqtt.ca_file == tmp_path / "ca.pem"
    with pytest.raises(ConfigError) as caught:
        parse(url="mqtt://broker", ca_file="ca.pem")
    assert caught.value.problems == [f"{SOURCE}: mqtt.ca_file: only used with an mqtts:// url (TLS); use mqtts:// "
                                     "or remove ca_file"]
    with pytest.raises(ConfigError) as caught:
        parse(url="mqtts://broker", ca_file="missing.pem")
    assert caught.value.problems == [f"{SOURCE}: mqtt.ca_file: no CA file at {tmp_path / 'missing.pem'}"]


def test_the_password_comes_from_its_file_or_the_environment_and_is_never_shown(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "s3cr3t-Broker-Pw"
    (tmp_path / "pw").write_text(f"  {secret}\n", encoding="utf-8")

    def parse(**section: Any) -> Any:
        """The ``[mqtt]`` settings with this table, read from a file in tmp_path."""
        return parse_config(to_toml(with_mqtt(url="mqtt://b", **section)), source=SOURCE, base_dir=tmp_path).mqtt

    from_file = parse(username="charger", password_file="pw")
    assert (from_file.username, from_file.password) == ("charger", secret)
    assert secret not in repr(from_file) and secret not in str(from_file)
    monkeypatch.setenv(PASSWORD_ENV, "from-the-environment")
    assert parse(username="charger").password == "from-the-environment"
    assert parse(username="charger", password_file="pw").password == secret  # the file wins

    monkeypatch.delenv(PASSWORD_ENV)
    assert parse(username="charger").password is None
    for section, wording in [({"password_file": "pw"}, "mqtt.password_file: needs mqtt.username"),
                             ({"username": "u", "password_file": "nope"}, "mqtt.password_file: no password file"),
                             ({"username": "u", "password_file": "."}, "mqtt.password_file: ")]:
        with pytest.raises(ConfigError) as caught:
            parse(**section)
        assert len(caught.value.problems) == 1 and wording in caught.value.problems[0], caught.value.problems
    (tmp_path / "empty").write_text("\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        parse(username="u", password_file="empty")
    assert "the password file is empty" in str(caught.value)
    (tmp_path / "binary").write_bytes(b"\xff" + secret.encode())
    with pytest.raises(ConfigError) as caught:
        parse(username="u", password_file="binary")
    assert "not UTF-8" in str(caught.value) and secret not in str(caught.value)


def test_mqtt_url_option_over_the_sim_and_over_a_file() -> None:
    sim = with_mqtt_url(load_sim_default(), "mqtts://broker.lan:8884").mqtt
    assert sim is not None and (sim.host, sim.port, sim.tls, sim.url) == ("broker.lan", 8884, True,
                                                                        "mqtts://broker.lan:8884")
    assert sim.topic_prefix == f"charger-controller/{HOST}"

    filed = load(with_mqtt(url="mqtt://old", topic_prefix="site/pi", publish_interval_s=2.5))
    mqtt = with_mqtt_url(filed, "mqtt://new:1999").mqtt
    assert mqtt is not None and (mqtt.host, mqtt.port, mqtt.topic_prefix, mqtt.publish_interval_s) == (
        "new", 1999, "site/pi", 2.5)
    with pytest.raises(ConfigError) as caught:
        with_mqtt_url(filed, "http://new")
    assert caught.value.problems[0].startswith("--mqtt-url: expected mqtt://host[:port]")
