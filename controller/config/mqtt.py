"""The optional ``[mqtt]`` section: its schema, the broker URL, defaults from the host name, and the password.

Kept apart from build.py so the MQTT settings are read in one place, for a file (``[mqtt]``) as for
``run --mqtt-url`` (which creates the section with its defaults when the file has none). Imports no MQTT
library: ``check-config`` stays light.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field
from pydantic_core import PydanticCustomError

from controller.config.model import ChargerConfig, ConfigError, MqttConfig, parse_bind
from controller.config.schema import STRICT, describe_value

PASSWORD_ENV = "CHARGER_MQTT_PASSWORD"
DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
DEFAULT_PUBLISH_INTERVAL_S = 10.0
DEFAULT_DISCOVERY_PREFIX = "homeassistant"


def _topic_prefix(value: str) -> str:
    """A topic prefix: levels separated by "/", none empty, no wildcard (+ #) and no NUL character."""
    if not value:
        raise PydanticCustomError("topic", "must not be empty")
    bad = next((c for c in ("+", "#", "\0") if c in value), None)
    if bad is not None:
        raise PydanticCustomError("topic", f"must not contain {bad!r} (an MQTT wildcard or NUL), got "
                                           f"{describe_value(value)}")
    if "" in value.split("/"):
        raise PydanticCustomError("topic", f"no empty level: no leading, trailing or double \"/\", got "
                                           f"{describe_value(value)}")
    return value


def _client_id(value: str) -> str:
    """An MQTT client id: 1 to 128 printable ASCII characters, no spaces (brokers differ on anything else)."""
    if not 1 <= len(value) <= 128 or not all("!" <= c <= "~" for c in value):
        raise PydanticCustomError("client_id", f"expected 1 to 128 printable ASCII characters without spaces, got "
                                               f"{describe_value(value)}")
    return value


TopicPrefix = Annotated[str, AfterValidator(_topic_prefix)]
ClientId = Annotated[str, AfterValidator(_client_id)]


class MqttSection(BaseModel):
    """``[mqtt]``: the broker by URL, credentials, topic prefixes and the power/energy publish period."""

    model_config = STRICT
    url: str = Field(min_length=1)
    ca_file: str | None = Field(default=None, min_length=1)
    client_id: ClientId | None = None
    username: str | None = Field(default=None, min_length=1)
    password_file: str | None = Field(default=None, min_length=1)
    topic_prefix: TopicPrefix | None = None
    discovery_prefix: TopicPrefix = DEFAULT_DISCOVERY_PREFIX
    publish_interval_s: float = Field(default=DEFAULT_PUBLISH_INTERVAL_S, gt=0, le=3600)


def parse_mqtt_url(url: str) -> tuple[str, int, bool]:
    """``mqtt://host[:1883]`` or ``mqtts://host[:8883]`` -> (host, port, tls); ValueError saying what is wrong."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in DEFAULT_PORTS:
        raise ValueError(f"expected mqtt://host[:port] or mqtts://host[:port], got {describe_value(url)}")
    if "@" in rest:
        raise ValueError("no user or password in the URL: use username and password_file (or "
                         f"${PASSWORD_ENV})")
    if "/" in rest or "?" in rest:
        raise ValueError(f"expected no path after the host and port, got {describe_value(url)}")
    has_port = rest.rpartition(":")[2].isdigit() and not rest.endswith("]")
    host, port = parse_bind(rest if has_port else f"{rest}:{DEFAULT_PORTS[scheme]}")
    return host, port, scheme == "mqtts"


def default_client_id() -> str:
    """``charger-controller-<hostname>``: one client per controller on a shared broker."""
    return f"charger-controller-{_hostname()}"


def default_topic_prefix() -> str:
    """``charger-controller/<hostname>``: the topics of several controllers on one broker stay apart."""
    return f"charger-controller/{_hostname()}"


def _hostname() -> str:
    """This machine's name as a topic level (no wildcard, slash or space), "localhost" if it has none."""
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in socket.gethostname().split(".")[0])
    return name or "localhost"


Validate = Callable[[type[MqttSection], object, str], tuple[MqttSection | None, bool]]


def build_mqtt(raw: object, base_dir: Path, problem: Callable[[str, str], None],
               validate: Validate) -> MqttConfig | None:
    """The ``[mqtt]`` table as an MqttConfig; each problem is reported through ``problem(path, message)``.

    Relative ``ca_file`` and ``password_file`` paths are taken from ``base_dir`` (the config file's folder).
    """
    section, ok = validate(MqttSection, raw, "mqtt")
    if section is None:  # not a table, or no usable url: reported already
        return None
    host, port, tls = "", 0, False
    try:
        host, port, tls = parse_mqtt_url(section.url)
    except ValueError as exc:
        problem("mqtt.url", str(exc))
        ok = False
    ca_file = None
    if section.ca_file is not None:
        ca_file = (base_dir / section.ca_file).absolute()
        if not section.url.startswith("mqtts://"):
            problem("mqtt.ca_file", "only used with an mqtts:// url (TLS); use mqtts:// or remove ca_file")
            ok = False
        elif not ca_file.is_file():
            problem("mqtt.ca_file", f"no CA file at {ca_file}")
            ok = False
    password = None
    if section.password_file is not None:
        if section.username is None:
            problem("mqtt.password_file", "needs mqtt.username: a broker takes a password only with a user name")
            ok = False
        try:
            password = read_password_file(base_dir / section.password_file)
        except ValueError as exc:
            problem("mqtt.password_file", str(exc))
            ok = False
    elif section.username is not None:
        password = os.environ.get(PASSWORD_ENV) or None
    if not ok:
        return None
    return MqttConfig(
        url=section.url, host=host, port=port, tls=tls, ca_file=ca_file,
        client_id=section.client_id or default_client_id(), username=section.username, password=password,
        topic_prefix=section.topic_prefix or default_topic_prefix(), discovery_prefix=section.discovery_prefix,
        publish_interval_s=section.publish_interval_s,
    )


def read_password_file(path: Path) -> str:
    """The broker password in a file, surrounding whitespace stripped; ValueError never quoting the content."""
    try:
        text = path.read_bytes().decode("utf-8").strip()
    except FileNotFoundError:
        raise ValueError(f"no password file at {path}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc.strerror or type(exc).__name__}") from None
    if not text:
        raise ValueError(f"{path}: the password file is empty")
    return text


def with_mqtt_url(config: ChargerConfig, url: str) -> ChargerConfig:
    """``run --mqtt-url URL``: the file's ``[mqtt].url`` replaced, or a new ``[mqtt]`` with its defaults.

    Raises ConfigError naming the option when the URL is not usable (or a ca_file of the file needs TLS).
    """
    try:
        host, port, tls = parse_mqtt_url(url)
    except ValueError as exc:
        raise ConfigError([f"--mqtt-url: {exc}"]) from None
    current = config.mqtt
    if current is None:
        mqtt = MqttConfig(url=url, host=host, port=port, tls=tls, ca_file=None, client_id=default_client_id(),
                          username=None, password=None, topic_prefix=default_topic_prefix(),
                          discovery_prefix=DEFAULT_DISCOVERY_PREFIX, publish_interval_s=DEFAULT_PUBLISH_INTERVAL_S)
    else:
        if current.ca_file is not None and not tls:
            raise ConfigError([f"--mqtt-url: {config.source} sets mqtt.ca_file, which needs an mqtts:// url"])
        mqtt = dataclasses.replace(current, url=url, host=host, port=port, tls=tls)
    return dataclasses.replace(config, mqtt=mqtt)
