"""The shipped files load into the shapes the runtime expects; check-config and file errors."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from controller.config.loader import (
    ChargerConfig,
    ConfigError,
    PinFactory,
    check_config_main,
    is_sim_meter_url,
    load_config,
    load_sim_default,
)
from controller.core.types import Connector, ConnectorState, ConnectorType
from drivers.gpio.config import ContactorConfig, IndicatorConfig, LockConfig, PlugConfig
from drivers.meter_map import BUILTIN_DIR
from drivers.modbus_bus import BusConfig, Transport

from .config_helpers import base, put, to_toml

ROOT = Path(__file__).resolve().parents[2]
PI_EXAMPLE = ROOT / "examples" / "pi-2evse.toml"
SIM_EXAMPLE = ROOT / "examples" / "sim.toml"
SIM_DEFAULT = ROOT / "controller" / "config" / "sim_default.toml"


def _all_pins(config: ChargerConfig) -> list[str]:
    pins = []
    for evse in config.evses:
        for part in (evse.contactor, evse.lock, evse.plug, evse.indicator):
            if part is not None:
                pins += [v for f in dataclasses.fields(part) if f.name.endswith("pin") and (v := getattr(part, f.name))]
    return pins


def test_pi_example_loads_into_driver_configs() -> None:
    config = load_config(PI_EXAMPLE)
    assert config.controller.pin_factory is PinFactory.LGPIO and not config.controller.simulated
    assert config.controller.state_dir == Path("/var/lib/charger-controller")
    assert (config.api.host, config.api.port, config.api.loopback, config.api.access_token) == \
        ("127.0.0.1", 8080, True, None)
    (bus,) = config.meter_buses
    assert isinstance(bus, BusConfig)
    assert (bus.name, bus.transport, bus.target) == ("bus0", Transport.RTU, "/dev/charger-meter-bus0")
    assert [e.id for e in config.evses] == [1, 2]
    for evse, unit_id, rfid in zip(config.evses, (1, 2), ("/dev/charger-rfid0", "/dev/charger-rfid1"), strict=True):
        assert evse.connectors == (Connector(1, ConnectorType.sType2),)
        assert isinstance(evse.contactor, ContactorConfig) and evse.contactor.feedback_pin is not None
        assert isinstance(evse.lock, LockConfig) and evse.lock.feedback_pin is not None
        assert isinstance(evse.plug, PlugConfig)
        assert isinstance(evse.indicator, IndicatorConfig) and evse.indicator.has_status
        assert evse.lock_when_reserved
        assert evse.meter is not None and evse.rfid is not None
        assert (evse.meter.bus, evse.meter.unit_id, evse.meter.meter_map.key) == ("bus0", unit_id, "sdm630")
        assert evse.meter.fault_state is ConnectorState.FAULTED
        assert evse.rfid.port == rfid
    pins = _all_pins(config)
    assert len(pins) == len(set(pins)) == 20
    reserved = {"GPIO0", "GPIO1", "GPIO2", "GPIO3", "GPIO14", "GPIO15"}  # HAT EEPROM, I2C, UART
    assert not reserved & set(pins)


def test_sim_default_is_a_simulated_two_evse_charger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_sim_default()
    assert config.controller.simulated and config.controller.pin_factory is PinFactory.MOCK
    assert config.controller.state_dir == tmp_path / "state"
    assert config.controller.fault_hold_s == 2.0
    (bus,) = config.meter_buses
    assert bus.name == "sim" and is_sim_meter_url(bus.target) and bus.timing.retries == 1
    assert [(e.meter.unit_id, e.meter.meter_map.key) for e in config.evses if e.meter] == [(1, "sdm630"), (2, "sdm630")]
    for evse in config.evses:
        assert evse.connectors == (Connector(1, ConnectorType.sType2),)
        assert evse.contactor.feedback_pin is not None
        assert evse.lock is not None and evse.lock.feedback_pin is not None
        assert (evse.lock.pulse_s, evse.lock.retries, evse.lock.retry_backoff_s) == (0.2, 1, 0.5)
        assert evse.indicator.has_status and evse.lock_when_reserved


def test_sim_example_is_the_embedded_default() -> None:
    assert SIM_EXAMPLE.read_text(encoding="utf-8") == SIM_DEFAULT.read_text(encoding="utf-8")
    assert load_config(SIM_EXAMPLE).evses == load_sim_default().evses


def test_config_is_frozen_and_looks_things_up() -> None:
    config = load_config(PI_EXAMPLE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.evses = ()  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.evses[0].meter.unit_id = 3  # type: ignore[misc, union-attr]
    assert config.evse(2).rfid is not None and config.bus("bus0").serial.baudrate == 9600
    with pytest.raises(KeyError):
        config.evse(3)


def test_map_files_are_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "maps").mkdir()
    shutil.copy(BUILTIN_DIR / "sdm120.toml", tmp_path / "maps" / "my-meter.toml")
    data = put(base(), "evses[0].meter", {"bus": "bus0", "map": "maps/my-meter.toml", "unit_id": 1})
    (tmp_path / "pi.toml").write_text(to_toml(data), encoding="utf-8")
    meter = load_config(tmp_path / "pi.toml").evses[0].meter
    assert meter is not None and meter.meter_map.phases == 1


def test_a_broken_map_file_is_one_problem(tmp_path: Path) -> None:
    (tmp_path / "bad-map.toml").write_text("[model]\nname = 1\n", encoding="utf-8")
    data = put(base(), "evses[0].meter", {"bus": "bus0", "map": "bad-map.toml", "unit_id": 1})
    (tmp_path / "pi.toml").write_text(to_toml(data), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "pi.toml")
    (line,) = caught.value.problems
    assert line.startswith(f"{tmp_path / 'pi.toml'}: evses[id=1].meter.map: cannot load map: ")
    missing = put(base(), "evses[0].meter", {"bus": "bus0", "map": "nope.toml", "unit_id": 1})
    (tmp_path / "pi.toml").write_text(to_toml(missing), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"evses\[id=1\]\.meter\.map: no map file at .*nope\.toml$"):
        load_config(tmp_path / "pi.toml")


def test_unreadable_files_are_one_clear_problem(tmp_path: Path) -> None:
    cases = {
        tmp_path / "missing.toml": "cannot read config file: no such file",
        tmp_path: "cannot read config file: it is a directory",
    }
    (tmp_path / "latin1.toml").write_bytes(b"# caf\xe9\n")
    cases[tmp_path / "latin1.toml"] = "cannot read config file: not UTF-8 text (byte 5)"
    for path, wording in cases.items():
        with pytest.raises(ConfigError) as caught:
            load_config(path)
        assert caught.value.problems == [f"{path}: {wording}"]


def test_check_config_ok(capsys: pytest.CaptureFixture[str]) -> None:
    assert check_config_main(str(PI_EXAMPLE)) == 0
    out, err = capsys.readouterr()
    assert out == (f"{PI_EXAMPLE}: OK (2 EVSEs, 2 connectors, 1 meter bus, 2 meters, 2 RFID readers, "
                   "pins via lgpio, API on 127.0.0.1:8080)\n")
    assert err == ""


def test_check_config_lists_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "pi.toml"
    data = put(put(base(), "evses[1].contactor.coil_pin", "GPIO17"), "api.bind", "0.0.0.0:8080")
    path.write_text(to_toml(data), encoding="utf-8")
    assert check_config_main(str(path)) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"{path}: api.access_token: required when api.bind is not a loopback address (0.0.0.0:8080); "
        "use at least 16 random characters (or a file of them given to run --api-token-file)",
        f"{path}: evses[id=2].contactor.coil_pin: pin GPIO17 is already used by evses[id=1].contactor.coil_pin",
    ]
    assert check_config_main(str(tmp_path / "none.toml")) == 1
    assert capsys.readouterr().err == f"{tmp_path / 'none.toml'}: cannot read config file: no such file\n"
