"""The validated configuration as the runtime consumes it: frozen dataclasses, and ConfigError.

GPIO sections are the drivers' own dataclasses, meter buses ``BusConfig``s and connectors
``controller.core.types.Connector``; nothing here reads a file (see ``controller.config.loader``).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from controller.addresses import is_loopback
from controller.config.ocpp_model import OcppConfig
from controller.config.schema import describe_value
from controller.core.types import Connector, ConnectorState
from drivers.gpio.config import ContactorConfig, IndicatorConfig, LockConfig, PlugConfig
from drivers.meter_map import MeterMap
from drivers.modbus_bus import BusConfig
from drivers.pilot.config import PilotConfig

MIN_TOKEN_LENGTH = 16  # token rules of the API (controller.api.app.create_app): 16..512 printable ASCII, no spaces
MAX_TOKEN_LENGTH = 512
_SIM_METER_URL = re.compile(r"socket://[^/]+:0")
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*")


class ConfigError(ValueError):
    """The configuration cannot be used; ``problems`` holds one line per problem found."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class PinFactory(StrEnum):
    """gpiozero pin backends we accept; no silent fallback between them (fail closed)."""

    LGPIO = "lgpio"
    RPIGPIO = "rpigpio"
    NATIVE = "native"
    MOCK = "mock"  # simulated pins: only with ``simulated = true``


@dataclass(frozen=True, slots=True)
class ControllerConfig:
    """Site-wide settings: state directory (absolute), pin backend, thresholds (A) and times (s)."""

    state_dir: Path
    pin_factory: PinFactory
    simulated: bool
    current_threshold_a: float
    fault_hold_s: float
    authorize_timeout_s: float


@dataclass(frozen=True, slots=True)
class SiteConfig:
    """``[site]``: what the EVSEs share; ``max_current_a`` (A per phase) is divided among the charging EVSEs."""

    max_current_a: float | None = None  # None: no site limit


@dataclass(frozen=True, slots=True)
class EvsePilotConfig:
    """``[evses.pilot]``: the EVSE's control pilot (drivers.pilot.config.PilotConfig: output, input, bands,
    debounce, ``max_current_a``) and what converts watts to amperes and may ask for ventilation."""

    pilot: PilotConfig
    phases: int = 3  # 1 or 3: the phases wired to the EVSE
    voltage_v: float = 230.0  # nominal phase voltage
    ventilation: bool = False  # the site is ventilated: a car asking for D may charge


@dataclass(frozen=True, slots=True)
class ApiConfig:
    """Where the HTTP API listens; ``access_token`` None means no token (loopback only)."""

    host: str  # IPv6 without brackets
    port: int
    access_token: str | None

    @property
    def loopback(self) -> bool:
        """Whether only this machine can reach the API."""
        return is_loopback(self.host)

    @property
    def bind(self) -> str:
        """``host:port`` as written in the file (IPv6 in brackets)."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class MeterConfig:
    """An EVSE's energy meter: bus name, unit id, loaded register map, polling and stale limit (s)."""

    bus: str
    unit_id: int
    meter_map: MeterMap
    poll_interval_s: float
    stale_after_s: float
    fault_state: ConnectorState  # FAULTED or UNAVAILABLE when readings go stale


@dataclass(frozen=True, slots=True)
class RfidConfig:
    """An EVSE's RFID reader: serial port or pyserial URL and SerialTokenReader options."""

    port: str
    baudrate: int
    repeat_suppress_s: float


@dataclass(frozen=True, slots=True)
class EvseConfig:
    """One EVSE: connectors, driver options of its hardware, and whether a reservation locks it."""

    id: int
    connectors: tuple[Connector, ...]
    contactor: ContactorConfig
    plug: PlugConfig
    indicator: IndicatorConfig
    lock: LockConfig | None  # None: tethered cable, no lock
    meter: MeterConfig | None
    rfid: RfidConfig | None
    lock_when_reserved: bool  # always False without a lock
    pilot: EvsePilotConfig | None = None  # None: no control pilot (the plug line says plugged; no current offered)


@dataclass(frozen=True, slots=True)
class MqttConfig:
    """The MQTT bridge (controller.mqtt): broker, credentials, topics and the measurement period (s).

    ``password`` comes from ``password_file`` or ``$CHARGER_MQTT_PASSWORD``; it is left out of ``repr``, so
    it never reaches a log line through a printed configuration.
    """

    url: str  # as written: mqtt://host[:port] or mqtts://host[:port]
    host: str  # IPv6 without brackets
    port: int
    tls: bool
    ca_file: Path | None  # mqtts: the CA that signed the broker's certificate; None: the system CAs
    client_id: str
    username: str | None
    password: str | None = field(repr=False)
    topic_prefix: str
    discovery_prefix: str
    publish_interval_s: float


@dataclass(frozen=True, slots=True)
class ChargerConfig:
    """The whole validated configuration, as the runtime consumes it."""

    source: str
    controller: ControllerConfig
    api: ApiConfig
    meter_buses: tuple[BusConfig, ...]
    evses: tuple[EvseConfig, ...]
    mqtt: MqttConfig | None = None  # None: no [mqtt] section, no bridge
    ocpp: OcppConfig | None = None  # None: no [ocpp] section, no CSMS connection
    site: SiteConfig = field(default_factory=SiteConfig)

    def evse(self, evse_id: int) -> EvseConfig:
        """The EVSE with this id (KeyError if none)."""
        for evse in self.evses:
            if evse.id == evse_id:
                return evse
        raise KeyError(evse_id)

    def bus(self, name: str) -> BusConfig:
        """The meter bus with this name (KeyError if none)."""
        for bus in self.meter_buses:
            if bus.name == name:
                return bus
        raise KeyError(name)

    def summary(self) -> str:
        """What the file sets up, for ``check-config``."""
        counts = [
            _plural(len(self.evses), "EVSE"),
            _plural(sum(len(e.connectors) for e in self.evses), "connector"),
            _plural(len(self.meter_buses), "meter bus", "meter buses"),
            _plural(sum(e.meter is not None for e in self.evses), "meter"),
            _plural(sum(e.rfid is not None for e in self.evses), "RFID reader"),
        ]
        mode = ", simulated" if self.controller.simulated else ""
        mqtt = f", MQTT to {self.mqtt.url}" if self.mqtt is not None else ""
        return f"{', '.join(counts)}, pins via {self.controller.pin_factory}{mode}, API on {self.api.bind}{mqtt}"


def access_token_problem(token: str) -> str | None:
    """What is wrong with an API access token (never quoting it), or None: 16..512 printable ASCII, no spaces."""
    if len(token) < MIN_TOKEN_LENGTH:
        return f"too short: {len(token)} characters, at least {MIN_TOKEN_LENGTH} needed"
    if len(token) > MAX_TOKEN_LENGTH:
        return f"too long: {len(token)} characters, at most {MAX_TOKEN_LENGTH}"
    if not all(c.isascii() and c.isprintable() and c != " " for c in token):
        return "only printable ASCII characters, no spaces"
    return None


def _plural(count: int, one: str, many: str | None = None) -> str:
    return f"{count} {one if count == 1 else many or one + 's'}"


def is_sim_meter_url(url: str) -> bool:
    """``socket://host:0``: the runtime starts a simulated meter server on a free port for this bus."""
    return _SIM_METER_URL.fullmatch(url) is not None


def parse_bind(text: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` -> (host, port); ValueError saying what is wrong."""
    if text.startswith("["):
        host, sep, port_text = text[1:].partition("]:")
        if not sep:
            raise ValueError(f"expected [address]:port for IPv6, got {describe_value(text)}")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{describe_value(host)} is not an IPv6 address") from None
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or not host:
            raise ValueError(f'expected host:port (e.g. "127.0.0.1:8080"), got {describe_value(text)}')
        if ":" in host:
            raise ValueError(f'put an IPv6 address in brackets (e.g. "[::1]:8080"), got {describe_value(text)}')
        if re.fullmatch(r"[\d.]+", host):
            try:
                ipaddress.IPv4Address(host)
            except ValueError:
                raise ValueError(f"{describe_value(host)} is not an IPv4 address") from None
        elif not _HOSTNAME.fullmatch(host):
            raise ValueError(f"{describe_value(host)} is not a host name or address")
    if not port_text.isascii() or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"port must be 1..65535, got {describe_value(port_text)}")
    return host, int(port_text)
