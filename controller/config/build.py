"""Turns parsed TOML into a ChargerConfig section by section, collecting every problem, then cross-checks.

A section that fails validation is left out of the result but the rest is still checked, so one
run reports everything: unknown keys, wrong types, pins used twice, meters on unknown buses...
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeGuard, TypeVar

from pydantic import BaseModel, ValidationError

from controller.addresses import is_loopback
from controller.config.model import (
    MIN_TOKEN_LENGTH,
    ApiConfig,
    ChargerConfig,
    ConfigError,
    ControllerConfig,
    EvseConfig,
    MeterConfig,
    PinFactory,
    RfidConfig,
    SiteConfig,
    access_token_problem,
    is_sim_meter_url,
    parse_bind,
)
from controller.config.mqtt import build_mqtt
from controller.config.ocpp import build_ocpp
from controller.config.pilot import adc_channel_problems, build_evse_pilot, build_site
from controller.config.pins import check_pins
from controller.config.schema import (
    DRIVER_SECTIONS,
    EVSE_IDS,
    ROOT_KEYS,
    ApiSection,
    BusSection,
    ControllerSection,
    EvseSection,
    MeterSection,
    RfidSection,
    describe_errors,
    describe_key,
    describe_value,
    driver_section_model,
    join_path,
)
from controller.core.types import Connector, ConnectorState
from drivers.gpio.config import config_from_mapping
from drivers.meter_map import MeterMap, builtin_models, load_builtin, load_map
from drivers.modbus_bus import BusConfig, BusConfigError, BusTiming, SerialSettings, Transport

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

_SERIAL_SCHEMES = ("socket://", "rfc2217://", "loop://", "spy://", "alt://", "hwgrep://")


def quoted(text: str) -> str:
    """A name as TOML writes a string: in double quotes."""
    return json.dumps(text)


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (newlines too) as one space."""
    return " ".join(text.split())


class Builder:
    """Validates section by section, collecting every problem, then runs the cross-checks.

    A section with problems still yields a partial model (its bad keys left out) for the
    cross-checks, so e.g. a typo in one key does not hide a pin used twice in the same table.
    An EVSE is named by its id in problems (``evses[id=2].plug.pin``), by its position only when
    its id cannot name it (``evses[1]``: missing, invalid or used twice).
    ``access_token`` (already checked, e.g. ``run --api-token-file``) replaces ``api.access_token``.
    """

    def __init__(self, source: str, base_dir: Path, access_token: str | None = None) -> None:
        self.source = source
        self.base_dir = base_dir
        self.access_token = access_token
        self.evse_labels: list[str] = []  # each EVSE's name in problems, by position
        self.problems: list[str] = []
        self.simulated = False
        self.bus_names: list[str] = []
        self.pins_in_conflict: set[str] = set()  # section paths with a pin used elsewhere too
        self.evse_ids: list[tuple[int, int]] = []  # (index, id)
        self.meters: list[tuple[int, MeterSection]] = []  # (EVSE index, meter)

    def problem(self, path: str, message: str) -> None:
        self.problems.append(f"{self.source}: {path}: {one_line(message)}")

    def validate(self, model: type[M], raw: object, path: str) -> tuple[M | None, bool]:
        """(model, True) when valid; else its problems recorded and (partial model or None, False)."""
        try:
            return model.model_validate(raw), True
        except ValidationError as exc:
            errors = describe_errors(exc, model)
        for loc, message in errors:
            self.problem(join_path(path, loc), message)
        if not isinstance(raw, Mapping):
            return None, False
        bad = {loc[0] for loc, _ in errors if loc}
        try:
            return model.model_validate({k: v for k, v in raw.items() if k not in bad}), False
        except ValidationError:
            return None, False

    def array(self, raw: object, path: str) -> list[Any]:
        if isinstance(raw, list):
            return raw
        self.problem(path, f"expected an array of tables, got {describe_value(raw)}")
        return []

    def build(self, data: object) -> ChargerConfig:
        if not isinstance(data, Mapping):
            raise ConfigError([f"{self.source}: expected a table at the top, got {describe_value(data)}"])
        for key in data:
            if key not in ROOT_KEYS:
                self.problem(describe_key(key), f"unknown key; allowed keys: {', '.join(sorted(ROOT_KEYS))}")
        controller = self.controller(data.get("controller", {}))
        api = self.api(data.get("api", {}))
        raw_buses = self.array(data.get("meter_buses", []), "meter_buses")
        buses = [self.bus(index, raw) for index, raw in enumerate(raw_buses)]
        self.check_bus_targets(buses)
        if "evses" not in data:
            self.problem("evses", "required, but missing: describe at least one [[evses]]")
        elif data["evses"] == []:
            self.problem("evses", "needs at least 1 entry")
        raw_evses = self.array(data.get("evses", []), "evses")
        self.evse_labels = evse_labels(raw_evses)
        self.pins_in_conflict = check_pins(raw_evses, self.evse_labels, self.simulated, self.problem)
        evses = [self.evse(index, raw) for index, raw in enumerate(raw_evses)]
        self.check_evse_ids()
        self.check_meters()
        if not self.simulated:  # simulated, the CP input is the simulated car's: no ADC channel is read
            pilots = [(self.evse_labels[i], e.pilot) for i, e in enumerate(evses) if e is not None and e.pilot]
            for path, message in adc_channel_problems(pilots):
                self.problem(path, message)
        site = build_site(data["site"], self.validate) if "site" in data else SiteConfig()
        mqtt = build_mqtt(data["mqtt"], self.base_dir, self.problem, self.validate) if "mqtt" in data else None
        ocpp = build_ocpp(data["ocpp"], self.base_dir, self.problem, self.validate) if "ocpp" in data else None
        if self.problems:
            raise ConfigError(self.problems)
        return ChargerConfig(self.source, _present(controller), _present(api),
                             tuple(_present(bus) for bus in buses), tuple(_present(evse) for evse in evses), mqtt,
                             ocpp, _present(site))

    # ---------------------------------------------------------- sections

    def controller(self, raw: object) -> ControllerConfig | None:
        section, ok = self.validate(ControllerSection, raw, "controller")
        if section is None:
            return None
        self.simulated = section.simulated
        if section.pin_factory == "mock" and not section.simulated:
            self.problem("controller.pin_factory", '"mock" drives no hardware: only allowed with '
                         "controller.simulated = true")
            ok = False
        if "\0" in section.state_dir:
            self.problem("controller.state_dir", "must not contain a NUL character")
            return None
        try:
            state_dir = Path(section.state_dir).expanduser().absolute()
        except RuntimeError as exc:  # "~" with no home directory known
            self.problem("controller.state_dir", str(exc))
            return None
        if not ok:
            return None
        return ControllerConfig(state_dir, PinFactory(section.pin_factory),
                                section.simulated, section.current_threshold_a, section.fault_hold_s,
                                section.authorize_timeout_s)

    def api(self, raw: object) -> ApiConfig | None:
        section, ok = self.validate(ApiSection, raw, "api")
        if section is None:
            return None
        try:
            host, port = parse_bind(section.bind)
        except ValueError as exc:
            self.problem("api.bind", str(exc))
            return None
        problem = access_token_problem(section.access_token) if section.access_token else None
        token = self.access_token or section.access_token
        if problem is not None:
            self.problem("api.access_token", problem)
        elif not token and not is_loopback(host):
            self.problem("api.access_token", f"required when api.bind is not a loopback address ({section.bind}); "
                         f"use at least {MIN_TOKEN_LENGTH} random characters (or a file of them given to "
                         "run --api-token-file)")
        else:
            return ApiConfig(host, port, token or None) if ok else None
        return None

    def bus(self, index: int, raw: object) -> BusConfig | None:
        path = f"meter_buses[{index}]"
        section, ok = self.validate(BusSection, raw, path)
        if section is None:
            if isinstance(raw, Mapping) and isinstance(raw.get("name"), str):
                self.bus_names.append(raw["name"])  # known by name, so its meters are not reported too
            return None
        if section.name in self.bus_names:
            self.problem(f"{path}.name", f"bus name {quoted(section.name)} is already used by "
                         f"meter_buses[{self.bus_names.index(section.name)}]")
        self.bus_names.append(section.name)
        if section.reconnect_min_s > section.reconnect_max_s:
            self.problem(f"{path}.reconnect_min_s", f"must not exceed reconnect_max_s ({section.reconnect_max_s})")
            ok = False
        try:
            transport, target, port = self.bus_target(section.url)
        except ValueError as exc:
            self.problem(f"{path}.url", str(exc))
            return None
        if not ok:
            return None
        serial = SerialSettings(section.baudrate, section.bytesize, section.parity, section.stopbits)
        timing = BusTiming(section.timeout_s, section.retries, section.quiet_s, section.reconnect_min_s,
                           section.reconnect_max_s)
        try:
            return BusConfig(section.name, transport, target, port, serial, timing)
        except BusConfigError as exc:  # our checks above should have caught it first
            self.problem(path, str(exc))
            return None

    def bus_target(self, url: str) -> tuple[Transport, str, int]:
        """(transport, device or host, TCP port) of a bus URL, read as ``BusConfig.from_url`` reads it."""
        for scheme, transport in (("tcp://", Transport.TCP), ("rtu-tcp://", Transport.RTU_OVER_TCP)):
            if url.startswith(scheme):
                rest = url[len(scheme):]
                has_port = rest.rpartition(":")[2].isdigit() and not rest.endswith("]")
                host, port = parse_bind(rest if has_port else f"{rest}:502")
                return transport, host, port
        if is_sim_meter_url(url):
            if not self.simulated:
                raise ValueError(f"{url} (a simulated meter server on a free port) needs controller.simulated = true")
        elif url.startswith("socket://"):
            parse_bind(url.removeprefix("socket://"))
        elif "://" in url and not url.startswith(_SERIAL_SCHEMES):
            raise ValueError(f"unknown scheme in {describe_value(url)}; use a device path (/dev/...), tcp://host:port,"
                             f" rtu-tcp://host:port or a pyserial URL ({', '.join(_SERIAL_SCHEMES)})")
        elif "://" not in url and not url.startswith("/"):
            raise ValueError(f"a serial device is an absolute path like /dev/charger-meter-bus0, "
                             f"got {describe_value(url)}")
        return Transport.RTU, url, 502

    def check_bus_targets(self, buses: list[BusConfig | None]) -> None:
        seen: dict[tuple[str, int], int] = {}
        for index, bus in enumerate(buses):
            if bus is None or is_sim_meter_url(bus.target):
                continue
            key = (bus.target, bus.port if bus.transport is not Transport.RTU else 0)
            if key in seen:
                self.problem(f"meter_buses[{index}].url", f"{bus.target} is already used by meter_buses[{seen[key]}]")
            seen.setdefault(key, index)

    def evse(self, index: int, raw: object) -> EvseConfig | None:
        path = self.evse_labels[index]
        problems_before = len(self.problems)
        head, ok = self.validate(EvseSection, raw, path)
        if not isinstance(raw, Mapping):
            return None
        self.check_evse_head(index, raw)
        drivers = {name: self.driver(cls, raw[name], f"{path}.{name}")
                   for name, cls in DRIVER_SECTIONS.items() if name in raw}
        meter = self.meter(index, raw["meter"]) if "meter" in raw else None
        rfid = self.rfid(raw["rfid"], f"{path}.rfid") if "rfid" in raw else None
        pilot = build_evse_pilot(raw["pilot"], f"{path}.pilot", self.problem, self.validate,
                                 pins_ok=f"{path}.pilot" not in self.pins_in_conflict) if "pilot" in raw else None
        if head is None:
            return None
        contactor, plug, indicator, lock = (drivers.get(name) for name in ("contactor", "plug", "indicator", "lock"))
        if not ok or len(self.problems) > problems_before or contactor is None or plug is None or indicator is None \
                or ("lock" in raw and lock is None) or ("meter" in raw and meter is None) \
                or ("rfid" in raw and rfid is None) or ("pilot" in raw and pilot is None):
            return None
        lock_when_reserved = lock is not None if head.lock_when_reserved is None else head.lock_when_reserved
        connectors = tuple(Connector(c.id, c.type) for c in head.connectors)
        return EvseConfig(head.id, connectors, contactor, plug, indicator, lock, meter, rfid, lock_when_reserved,
                          pilot)

    def check_evse_head(self, index: int, raw: Mapping[str, Any]) -> None:
        """Cross-checks of an EVSE's own keys, on the raw values so a bad neighbour key hides none."""
        path = self.evse_labels[index]
        if _is_int(raw.get("id")):
            self.evse_ids.append((index, raw["id"]))
        if raw.get("lock_when_reserved") is True and "lock" not in raw:
            self.problem(f"{path}.lock_when_reserved", "true, but this EVSE has no [evses.lock] "
                         "(a tethered cable has none: set false or remove)")
        seen: dict[int, int] = {}
        connectors = raw.get("connectors")
        for position, connector in enumerate(connectors if isinstance(connectors, list) else []):
            connector_id = connector.get("id") if isinstance(connector, Mapping) else None
            if not _is_int(connector_id):
                continue
            if connector_id in seen:
                self.problem(f"{path}.connectors[{position}].id", f"connector id {connector_id} is already used "
                             f"by {path}.connectors[{seen[connector_id]}]")
            seen.setdefault(connector_id, position)

    def driver(self, cls: type[T], raw: object, path: str) -> T | None:
        """A GPIO driver section as the driver's own dataclass (its own checks run too)."""
        section, ok = self.validate(driver_section_model(cls), raw, path)
        if section is None or not ok or path in self.pins_in_conflict:
            return None
        values = {name: getattr(section, name) for name in section.model_fields_set}
        try:
            return config_from_mapping(cls, values)
        except ValueError as exc:
            message = str(exc)
            match = re.match(rf"{cls.__name__}\.(\w+): ", message)
            self.problem(f"{path}.{match.group(1)}" if match else path, message[match.end():] if match else message)
            return None

    def rfid(self, raw: object, path: str) -> RfidConfig | None:
        section, ok = self.validate(RfidSection, raw, path)
        if section is None or not ok:
            return None
        return RfidConfig(section.port, section.baudrate, section.repeat_suppress_s)

    def meter(self, evse_index: int, raw: object) -> MeterConfig | None:
        path = f"{self.evse_labels[evse_index]}.meter"
        section, ok = self.validate(MeterSection, raw, path)
        if section is None:
            return None
        self.meters.append((evse_index, section))
        if section.bus not in self.bus_names:
            defined = ", ".join(self.bus_names) or "none (add a [[meter_buses]] table)"
            self.problem(f"{path}.bus", f"no meter bus named {quoted(section.bus)}; defined: {defined}")
            ok = False
        if section.stale_after_s <= section.poll_interval_s:
            self.problem(f"{path}.stale_after_s", f"{section.stale_after_s} s must be longer than poll_interval_s "
                         f"({section.poll_interval_s} s), or every reading would go stale")
            ok = False
        meter_map = self.meter_map(section, path)
        if meter_map is None or not ok:
            return None
        return MeterConfig(section.bus, section.unit_id, meter_map, section.poll_interval_s, section.stale_after_s,
                           ConnectorState(section.fault_state))

    def meter_map(self, section: MeterSection, path: str) -> MeterMap | None:
        models = ", ".join(builtin_models())
        if (section.model is None) == (section.map is None):
            self.problem(path, f"give either model (a built-in: {models}) or map (a map file), "
                         f"{'not both' if section.model is not None else 'neither is set'}")
            return None
        try:
            if section.model is not None:
                if section.model not in builtin_models():
                    self.problem(f"{path}.model", f"unknown meter model {quoted(section.model)}; "
                                 f"built-in models: {models}")
                    return None
                return load_builtin(section.model)
            file = self.base_dir / section.map if section.map else self.base_dir
            if not file.is_file():
                self.problem(f"{path}.map", f"no map file at {file}")
                return None
            return load_map(file)
        except (ValueError, OSError) as exc:  # MapError is a ValueError
            self.problem(f"{path}.map" if section.map is not None else f"{path}.model", f"cannot load map: {exc}")
            return None

    # ---------------------------------------------------------- cross-checks

    def check_evse_ids(self) -> None:
        seen: dict[int, int] = {}
        for index, evse_id in self.evse_ids:
            if evse_id in seen:
                self.problem(f"{self.evse_labels[index]}.id",
                             f"EVSE id {evse_id} is already used by {self.evse_labels[seen[evse_id]]}")
            seen.setdefault(evse_id, index)

    def check_meters(self) -> None:
        """Unit ids unique per bus; one poll interval per bus (its poller reads the meters in turn)."""
        units: dict[tuple[str, int], int] = {}
        intervals: dict[str, tuple[float, int]] = {}
        for index, meter in self.meters:
            key = (meter.bus, meter.unit_id)
            label = self.evse_labels[index]
            if key in units:
                self.problem(f"{label}.meter.unit_id", f"unit id {meter.unit_id} on bus {quoted(meter.bus)} "
                             f"is already used by {self.evse_labels[units[key]]}.meter")
            units.setdefault(key, index)
            interval, first = intervals.setdefault(meter.bus, (meter.poll_interval_s, index))
            if interval != meter.poll_interval_s:
                self.problem(f"{label}.meter.poll_interval_s", f"{meter.poll_interval_s} s differs from "
                             f"{self.evse_labels[first]}.meter on the same bus ({interval} s): one poller reads a bus "
                             "in turn")


def evse_labels(raw_evses: list[Any]) -> list[str]:
    """Each EVSE's name in problems: ``evses[id=N]`` when its id is valid and its own, else ``evses[i]`` (0-based)."""
    ids = [raw.get("id") if isinstance(raw, Mapping) else None for raw in raw_evses]
    valid = [evse_id if _is_int(evse_id) and evse_id in EVSE_IDS else None for evse_id in ids]
    uses = Counter(evse_id for evse_id in valid if evse_id is not None)
    return [f"evses[id={evse_id}]" if evse_id is not None and uses[evse_id] == 1 else f"evses[{index}]"
            for index, evse_id in enumerate(valid)]


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _present(value: T | None) -> T:
    """A part the builder made; None only ever comes with a recorded problem."""
    if value is None:
        raise AssertionError("a config part is missing without a problem recorded")
    return value
