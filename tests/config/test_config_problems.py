"""Each kind of problem is one line naming the file, the key path and what is wrong; all are reported."""

from __future__ import annotations

from typing import Any

import pytest

from controller.config.loader import ConfigError, parse_config
from drivers.meter_map import builtin_models

from .config_helpers import base, drop, load, named, only_problem, problems, put

CONNECTOR_TYPES = (
    "cCCS1, cCCS2, cG105, cMCS, cTesla, cType1, cType2, s309_1P_16A, s309_1P_32A, s309_3P_16A, s309_3P_32A, "
    "sBS1361, sCEE-7_7, sType2, sType3, Other1PhMax16A, Other1PhOver16A, Other3Ph, Pan, wInductive, wResonant, "
    "Undetermined, Unknown"
)

# ---------------------------------------------------------------- EVSEs and connectors


def test_evse_ids_are_unique() -> None:
    data = put(base(), "evses[1].id", 1)
    assert only_problem(data) == "pi.toml: evses[1].id: EVSE id 1 is already used by evses[0]"


@pytest.mark.parametrize(("value", "wording"), [(0, "must be >= 1, got integer 0"),
                                                (-3, "must be >= 1, got integer -3"),
                                                ("1", 'expected an integer, got string "1"'),
                                                (1.0, "expected an integer, got float 1.0"),
                                                (True, "expected an integer, got boolean true")])
def test_evse_ids_are_positive_integers(value: Any, wording: str) -> None:
    assert only_problem(put(base(), "evses[0].id", value)) == f"pi.toml: evses[0].id: {wording}"


def test_an_evse_is_named_by_its_id_not_its_position() -> None:
    data = put(put(base(), "evses[0].id", 7), "evses[1].id", 3)
    put(data, "evses[1].plug.pin", "GPIO17")
    put(data, "evses[0].lock.pulse_s", 5)
    assert sorted(problems(data)) == [
        "pi.toml: evses[id=3].plug.pin: pin GPIO17 is already used by evses[id=7].contactor.coil_pin",
        "pi.toml: evses[id=7].lock.pulse_s: 5.0 is outside [0.1, 4.0]",
    ]


@pytest.mark.parametrize(("evse_id", "why"), [(None, "missing"), (0, "out of range"), ("1", "a string"),
                                              (True, "a boolean"), (2, "used by the other EVSE too")])
def test_an_evse_without_an_id_of_its_own_is_named_by_its_position(evse_id: Any, why: str) -> None:
    data = drop(base(), "evses[0].id") if evse_id is None else put(base(), "evses[0].id", evse_id)
    put(data, "evses[0].lock.pulse_s", 5)
    put(data, "evses[1].meter.unit_id", 1)
    found = problems(data)
    assert "pi.toml: evses[0].lock.pulse_s: 5.0 is outside [0.1, 4.0]" in found, why
    second = "evses[1]" if evse_id == 2 else "evses[id=2]"  # a shared id names neither EVSE
    assert f'pi.toml: {second}.meter.unit_id: unit id 1 on bus "bus0" is already used by evses[0].meter' in found, why
    assert not any("evses[id=1]" in line for line in found), found


def test_connector_ids_are_unique_per_evse_but_not_across_evses() -> None:
    data = put(base(), "evses[0].connectors", [{"id": 1, "type": "sType2"}, {"id": 1, "type": "cType2"}])
    assert only_problem(data) == \
        "pi.toml: evses[id=1].connectors[1].id: connector id 1 is already used by evses[id=1].connectors[0]"
    assert [e.connectors[0].id for e in load(base()).evses] == [1, 1]


def test_an_evse_needs_a_connector() -> None:
    assert only_problem(put(base(), "evses[0].connectors", [])) == \
        "pi.toml: evses[id=1].connectors: needs at least 1 entry"
    assert only_problem(drop(base(), "evses[0].connectors")) == "pi.toml: evses[id=1].connectors: required, but missing"


def test_unknown_connector_type_lists_the_valid_ones() -> None:
    line = only_problem(put(base(), "evses[1].connectors[0].type", "Type2"))
    assert line == (f'pi.toml: evses[id=2].connectors[0].type: unknown connector type string "Type2" '
                    f'(did you mean "cType2"?); valid: {CONNECTOR_TYPES}')


def test_a_connector_type_must_be_given() -> None:
    assert only_problem(drop(base(), "evses[0].connectors[0].type")) == \
        "pi.toml: evses[id=1].connectors[0].type: required, but missing"


def test_at_least_one_evse() -> None:
    assert only_problem(put(base(), "evses", [])) == "pi.toml: evses: needs at least 1 entry"
    assert only_problem(drop(base(), "evses")) == \
        "pi.toml: evses: required, but missing: describe at least one [[evses]]"


@pytest.mark.parametrize("section", ["contactor", "plug", "indicator"])
def test_required_driver_sections(section: str) -> None:
    assert only_problem(drop(base(), f"evses[0].{section}")) == f"pi.toml: evses[id=1].{section}: required, but missing"


def test_a_lock_is_optional_and_lock_when_reserved_follows_it() -> None:
    config = load(drop(base(), "evses[0].lock"))
    assert config.evses[0].lock is None and config.evses[0].lock_when_reserved is False
    assert config.evses[1].lock is not None and config.evses[1].lock_when_reserved is True
    assert load(put(base(), "evses[1].lock_when_reserved", False)).evses[1].lock_when_reserved is False


def test_lock_when_reserved_needs_a_lock() -> None:
    data = put(drop(base(), "evses[0].lock"), "evses[0].lock_when_reserved", True)
    assert only_problem(data) == ("pi.toml: evses[id=1].lock_when_reserved: true, but this EVSE has no [evses.lock] "
                                  "(a tethered cable has none: set false or remove)")


# ---------------------------------------------------------------- GPIO pins


def test_a_pin_is_used_once_in_the_whole_file() -> None:
    data = put(base(), "evses[1].contactor.coil_pin", "GPIO17")
    assert only_problem(data) == \
        "pi.toml: evses[id=2].contactor.coil_pin: pin GPIO17 is already used by evses[id=1].contactor.coil_pin"


@pytest.mark.parametrize(("written", "shown"), [(17, "integer 17"), ("17", 'string "17"'), ("BCM17", 'string "BCM17"'),
                                                ("BOARD11", 'string "BOARD11"'), ("J8:11", 'string "J8:11"'),
                                                ("gpio17", 'string "gpio17"')])
def test_every_name_of_a_pin_is_the_same_pin(written: Any, shown: str) -> None:
    data = put(base(), "evses[1].indicator.status_red_pin", written)
    put(data, "evses[1].indicator.status_green_pin", "GPIO2")
    put(data, "evses[1].indicator.status_blue_pin", "GPIO3")
    assert only_problem(data) == (f"pi.toml: evses[id=2].indicator.status_red_pin: pin GPIO17 (written {shown}) "
                                  "is already used by evses[id=1].contactor.coil_pin")


def test_pins_are_given_to_the_drivers_by_their_gpio_name() -> None:
    data = put(base(), "evses[0].contactor.coil_pin", 12)
    put(data, "evses[0].plug.pin", "BOARD7")  # GPIO4, so EVSE 2's plug moves away from it
    put(data, "evses[1].plug.pin", "J8:26")  # GPIO7
    config = load(data)
    assert config.evses[0].contactor.coil_pin == "GPIO12"
    assert (config.evses[0].plug.pin, config.evses[1].plug.pin) == ("GPIO4", "GPIO7")


def test_a_pin_used_twice_in_one_section_is_reported_once() -> None:
    data = put(base(), "evses[0].lock.unlock_pin", "GPIO5")
    assert only_problem(data) == \
        "pi.toml: evses[id=1].lock.unlock_pin: pin GPIO5 is already used by evses[id=1].lock.lock_pin"


@pytest.mark.parametrize(("written", "wording"), [
    ("BOARD1", 'BOARD1 is a 3V3 power pin, not a GPIO; use GPIOnn (BCM numbering, e.g. "GPIO17")'),
    ("J8:6", 'J8:6 is a ground pin, not a GPIO; use GPIOnn (BCM numbering, e.g. "GPIO17")'),
    ("BOARD41", 'BOARD41 is not a pin of the 40-pin header (1..40); use GPIOnn (BCM numbering, e.g. "GPIO17")'),
    ("WPI0", 'wiringPi numbers like "WPI0" are not accepted; use GPIOnn (BCM numbering, e.g. "GPIO17")'),
    ("GPIO28", "GPIO28 does not exist on the 40-pin header (GPIO0..GPIO27)"),
    (40, "GPIO40 does not exist on the 40-pin header (GPIO0..GPIO27)"),
    ("pin 17", '"pin 17" is not a GPIO pin name; use GPIOnn (BCM numbering, e.g. "GPIO17")'),
    (True, 'expected a GPIO pin ("GPIO17" or 17), got boolean true'),
    (17.0, 'expected a GPIO pin ("GPIO17" or 17), got float 17.0'),
])
def test_bad_pin_names_say_what_to_write(written: Any, wording: str) -> None:
    assert only_problem(put(base(), "evses[0].plug.pin", written)) == f"pi.toml: evses[id=1].plug.pin: {wording}"


# ---------------------------------------------------------------- driver options (the drivers' own checks too)


def test_driver_dataclass_checks_name_the_key() -> None:
    data = put(base(), "evses[0].contactor.feedback_debounce_s", 0.3)
    assert only_problem(data) == ("pi.toml: evses[id=1].contactor.feedback_debounce_s: 0.3 must be shorter than "
                                  "supervision_timeout_s (0.2)")
    data = put(base(), "evses[1].indicator.status_red_pin", "GPIO9")
    assert only_problem(data) == \
        "pi.toml: evses[id=2].indicator.status_green_pin: give all three status LED pins or none"
    data = put(base(), "evses[0].lock.pulse_s", 5)
    assert only_problem(data) == "pi.toml: evses[id=1].lock.pulse_s: 5.0 is outside [0.1, 4.0]"


def test_pull_up_takes_true_false_or_external() -> None:
    config = load(put(base(), "evses[0].plug.pull_up", "external"))
    assert config.evses[0].plug.pull_up is None
    assert only_problem(put(base(), "evses[0].plug.pull_up", "none")) == (
        'pi.toml: evses[id=1].plug.pull_up: expected true (internal pull-up), false (internal pull-down) or "external" '
        '(an external resistor), got string "none"')


def test_status_colours_override_the_defaults() -> None:
    data = put(base(), "evses[0].indicator.status_colors", {"amber": [1.0, 0.75, 0]})
    colors = load(data).evses[0].indicator.status_colors
    assert {color.value: rgb for color, rgb in colors.items()}["amber"] == (1.0, 0.75, 0.0)
    assert len(colors) == 5
    bad = put(base(), "evses[0].indicator.status_colors", {"purple": [1, 0, 0]})
    assert only_problem(bad) == \
        "pi.toml: evses[id=1].indicator.status_colors: unknown colour purple; colours: off, green, amber, blue, red"
    bad = put(base(), "evses[0].indicator.status_colors", {"red": [2, 0, 0]})
    assert only_problem(bad) == \
        "pi.toml: evses[id=1].indicator.status_colors: red: expected [r, g, b] with each in [0, 1], " \
        "got array of 3 items"


# ---------------------------------------------------------------- meters and buses


def test_meter_bus_must_exist() -> None:
    assert only_problem(put(base(), "evses[0].meter.bus", "bus1")) == \
        'pi.toml: evses[id=1].meter.bus: no meter bus named "bus1"; defined: bus0'
    assert problems(drop(base(), "meter_buses"))[0] == \
        'pi.toml: evses[id=1].meter.bus: no meter bus named "bus0"; defined: none (add a [[meter_buses]] table)'


def test_meter_model_must_be_built_in() -> None:
    assert only_problem(put(base(), "evses[0].meter.model", "sdm999")) == \
        f'pi.toml: evses[id=1].meter.model: unknown meter model "sdm999"; ' \
        f'built-in models: {", ".join(builtin_models())}'


def test_meter_needs_exactly_one_of_model_and_map() -> None:
    models = ", ".join(builtin_models())
    assert only_problem(put(base(), "evses[0].meter.map", "x.toml")) == \
        f"pi.toml: evses[id=1].meter: give either model (a built-in: {models}) or map (a map file), not both"
    assert only_problem(drop(base(), "evses[0].meter.model")) == \
        f"pi.toml: evses[id=1].meter: give either model (a built-in: {models}) or map (a map file), neither is set"


def test_unit_ids_are_unique_per_bus() -> None:
    data = put(base(), "evses[1].meter.unit_id", 1)
    assert only_problem(data) == \
        'pi.toml: evses[id=2].meter.unit_id: unit id 1 on bus "bus0" is already used by evses[id=1].meter'
    data["meter_buses"].append({"name": "bus1", "url": "/dev/charger-meter-bus1"})
    put(data, "evses[1].meter.bus", "bus1")
    assert [e.meter.unit_id for e in load(data).evses if e.meter] == [1, 1]


def test_unit_id_range() -> None:
    assert only_problem(put(base(), "evses[0].meter.unit_id", 248)) == \
        "pi.toml: evses[id=1].meter.unit_id: must be <= 247, got integer 248"


def test_meter_timing_fits_the_poller() -> None:
    data = put(base(), "evses[0].meter.stale_after_s", 1.0)
    assert only_problem(data) == ("pi.toml: evses[id=1].meter.stale_after_s: 1.0 s must be longer than poll_interval_s "
                                  "(1.0 s), or every reading would go stale")
    data = put(base(), "evses[1].meter.poll_interval_s", 2.0)
    assert only_problem(data) == ("pi.toml: evses[id=2].meter.poll_interval_s: 2.0 s differs from evses[id=1].meter "
                                  "on the same bus (1.0 s): one poller reads a bus in turn")


def test_bus_names_and_devices_are_unique() -> None:
    data = base()
    data["meter_buses"].append({"name": "bus0", "url": "/dev/charger-meter-bus0"})
    assert problems(data) == ['pi.toml: meter_buses[1].name: bus name "bus0" is already used by meter_buses[0]',
                              "pi.toml: meter_buses[1].url: /dev/charger-meter-bus0 is already used by meter_buses[0]"]


@pytest.mark.parametrize(("url", "wording"), [
    ("ttyUSB0", 'a serial device is an absolute path like /dev/charger-meter-bus0, got string "ttyUSB0"'),
    ("modbus://x", 'unknown scheme in string "modbus://x"; use a device path (/dev/...), tcp://host:port, '
                   "rtu-tcp://host:port or a pyserial URL (socket://, rfc2217://, loop://, spy://, alt://, hwgrep://)"),
    ("tcp://gw:99999", 'port must be 1..65535, got string "99999"'),
    ("socket://127.0.0.1:0", "socket://127.0.0.1:0 (a simulated meter server on a free port) needs "
                             "controller.simulated = true"),
])
def test_bad_bus_urls(url: str, wording: str) -> None:
    assert only_problem(put(base(), "meter_buses[0].url", url)) == f"pi.toml: meter_buses[0].url: {wording}"


@pytest.mark.parametrize(("url", "transport", "target", "port"), [
    ("tcp://192.168.1.50", "tcp", "192.168.1.50", 502),
    ("tcp://gw.local:1502", "tcp", "gw.local", 1502),
    ("rtu-tcp://[fd00::5]:4196", "rtu_over_tcp", "fd00::5", 4196),
    ("socket://10.0.0.7:4001", "rtu", "socket://10.0.0.7:4001", 502),
    ("/dev/serial/by-id/usb-FTDI-if00-port0", "rtu", "/dev/serial/by-id/usb-FTDI-if00-port0", 502),
])
def test_bus_urls_become_bus_configs(url: str, transport: str, target: str, port: int) -> None:
    bus = load(put(base(), "meter_buses[0].url", url)).bus("bus0")
    assert (bus.transport.value, bus.target, bus.port) == (transport, target, port)


def test_bus_line_settings_are_checked() -> None:
    data = put(base(), "meter_buses[0].parity", "X")
    put(data, "meter_buses[0].stopbits", 3)
    put(data, "meter_buses[0].baudrate", 9600.0)
    assert problems(data) == ['pi.toml: meter_buses[0].baudrate: expected an integer, got float 9600.0',
                              'pi.toml: meter_buses[0].parity: expected "N", "E" or "O", got string "X"',
                              "pi.toml: meter_buses[0].stopbits: expected 1 or 2, got integer 3"]


# ---------------------------------------------------------------- controller and API


def test_mock_pins_only_when_simulated() -> None:
    assert only_problem(put(base(), "controller.pin_factory", "mock")) == \
        'pi.toml: controller.pin_factory: "mock" drives no hardware: only allowed with controller.simulated = true'
    assert load(put(put(base(), "controller.pin_factory", "mock"), "controller.simulated", True)).controller.simulated


def test_pin_factory_names() -> None:
    assert only_problem(put(base(), "controller.pin_factory", "pigpio")) == \
        'pi.toml: controller.pin_factory: expected "lgpio", "rpigpio", "native" or "mock", got string "pigpio"'


@pytest.mark.parametrize(("bind", "wording"), [
    ("8080", 'expected host:port (e.g. "127.0.0.1:8080"), got string "8080"'),
    ("127.0.0.1:80800", 'port must be 1..65535, got string "80800"'),
    ("127.0.0.1:0", 'port must be 1..65535, got string "0"'),
    ("::1:8080", 'put an IPv6 address in brackets (e.g. "[::1]:8080"), got string "::1:8080"'),
    ("[::g]:8080", 'string "::g" is not an IPv6 address'),
    ("300.1.1.1:8080", 'string "300.1.1.1" is not an IPv4 address'),
    ("bad_host:8080", 'string "bad_host" is not a host name or address'),
])
def test_bind_must_parse(bind: str, wording: str) -> None:
    assert only_problem(put(base(), "api.bind", bind)) == f"pi.toml: api.bind: {wording}"


def test_bind_forms() -> None:
    api = load(put(base(), "api.bind", "[::1]:9000")).api
    assert (api.host, api.port, api.loopback, api.bind, api.access_token) == ("::1", 9000, True, "[::1]:9000", None)
    assert load(put(base(), "api.bind", "localhost:8080")).api.loopback
    assert load(put(base(), "api.bind", "[::ffff:127.0.0.1]:8080")).api.loopback


def test_access_token_required_off_loopback() -> None:
    assert only_problem(put(base(), "api.bind", "0.0.0.0:8080")) == (
        "pi.toml: api.access_token: required when api.bind is not a loopback address (0.0.0.0:8080); "
        "use at least 16 random characters (or a file of them given to run --api-token-file)")
    data = put(put(base(), "api.bind", "0.0.0.0:8080"), "api.access_token", "k3x9-Qp7v-2mWz-8rTa")
    assert load(data).api.access_token == "k3x9-Qp7v-2mWz-8rTa"


def test_access_token_rules_and_no_echo() -> None:
    line = only_problem(put(base(), "api.access_token", "secret"))
    assert line == "pi.toml: api.access_token: too short: 6 characters, at least 16 needed"
    line = only_problem(put(base(), "api.access_token", "a long secret with spaces"))
    assert line == "pi.toml: api.access_token: only printable ASCII characters, no spaces"
    line = only_problem(put(base(), "api.access_token", "geheimes-schlüssel-wort"))
    assert line == "pi.toml: api.access_token: only printable ASCII characters, no spaces"
    line = only_problem(put(base(), "api.access_token", "x" * 513))
    assert line == "pi.toml: api.access_token: too long: 513 characters, at most 512"
    line = only_problem(put(base(), "api.access_token", 1234567890123456789))
    assert line == "pi.toml: api.access_token: expected a string, got a value"


def test_state_dir_is_made_absolute_against_the_current_directory(tmp_path: Any, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    assert load(put(base(), "controller.state_dir", "./state")).controller.state_dir == tmp_path / "state"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert load(put(base(), "controller.state_dir", "~/state")).controller.state_dir == tmp_path / "home" / "state"


# ---------------------------------------------------------------- unknown keys and wrong types


@pytest.mark.parametrize(("path", "allowed"), [
    ("colour", "api, controller, evses, meter_buses, mqtt, ocpp, site"),
    ("controller.pinfactory", "authorize_timeout_s, current_threshold_a, fault_hold_s, pin_factory, simulated, "
                              "state_dir"),
    ("api.token", "access_token, bind"),
    ("evses[0].contactor.coil", "coil_active_high, coil_pin, fault_clear_s, feedback_active_high, "
                                "feedback_debounce_s, feedback_pin, feedback_pull_up, min_reclose_s, "
                                "supervision_timeout_s"),
    ("evses[0].connectors[0].kind", "id, type"),
    ("evses[1].meter.address", "bus, fault_state, map, model, poll_interval_s, stale_after_s, unit_id"),
    ("evses[1].rfid.baud", "baudrate, port, repeat_suppress_s"),
    ("evses[1].lamp", "connectors, contactor, id, indicator, lock, lock_when_reserved, meter, pilot, plug, rfid"),
    ("evses[1].pilot.pwm", "adc, comparator, confirm_samples, frequency_hz, gpio, hold_s, input, invert_output, "
                           "max_current_a, output, phases, sysfs, thresholds, ventilation, voltage_v"),
    ("evses[1].pilot.sysfs.pin", "channel, chip, sysfs_root, unexport_on_close"),
    ("site.max_current", "max_current_a"),
    ("meter_buses[0].speed", "baudrate, bytesize, name, parity, quiet_s, reconnect_max_s, reconnect_min_s, retries, "
                             "stopbits, timeout_s, url"),
])
def test_unknown_keys_say_which_are_allowed(path: str, allowed: str) -> None:
    assert only_problem(put(base(), path, 1)) == f"pi.toml: {named(path)}: unknown key; allowed keys: {allowed}"


@pytest.mark.parametrize(("path", "value", "wording"), [
    ("controller.fault_hold_s", "5", 'expected a number, got string "5"'),
    ("controller.simulated", "yes", 'expected true or false, got string "yes"'),
    ("controller.current_threshold_a", float("nan"), "expected a finite number, got float nan"),
    ("controller", [1], "expected a table, got array of 1 item"),
    ("evses[0].contactor.coil_active_high", 1, "expected true or false, got integer 1"),
    ("evses[0].contactor", "GPIO17", 'expected a table, got string "GPIO17"'),
    ("evses[0].meter.unit_id", "1", 'expected an integer, got string "1"'),
    ("evses[0].lock.retries", 1.5, "expected an integer, got float 1.5"),
    ("evses[0].connectors", {"id": 1}, "expected an array, got table with keys id"),
    ("meter_buses", {"name": "bus0"}, "expected an array of tables, got table with keys name"),
])
def test_wrong_types_say_expected_and_got(path: str, value: Any, wording: str) -> None:
    found = problems(put(base(), path, value))
    assert f"pi.toml: {named(path)}: {wording}" in found


# ---------------------------------------------------------------- TOML text, and all problems at once


def test_invalid_toml_names_the_line() -> None:
    text = 'a = 1\n[controller]\nstate_dir = "/x\n'
    assert only_problem(text) == "pi.toml: line 3: invalid TOML: Illegal character '\\n' (column 16)"
    assert only_problem('[controller]\nx = [1,\n') == \
        "pi.toml: line 2: invalid TOML: Invalid value (at the end of the file)"


def test_all_problems_are_reported_in_one_run() -> None:
    data = put(base(), "controller.pin_factory", "mock")
    put(data, "controller.fault_hold_s", -1)
    put(data, "api.bind", "0.0.0.0:8080")
    put(data, "meter_buses[0].url", "ttyUSB0")
    put(data, "evses[1].id", 1)
    put(data, "evses[1].contactor.coil_pin", "BOARD11")
    put(data, "evses[1].contactor.wat", 2)
    put(data, "evses[0].connectors[0].type", "Type2")
    put(data, "evses[0].meter.model", "sdm999")
    put(data, "evses[1].meter.unit_id", 1)
    put(data, "evses[1].rfid.port", "")
    found = problems(data)
    expected_paths = ["controller.fault_hold_s", "controller.pin_factory", "api.access_token", "meter_buses[0].url",
                      "evses[0].connectors[0].type", "evses[0].meter.model", "evses[1].contactor.coil_pin",
                      "evses[1].contactor.wat", "evses[1].rfid.port", "evses[1].id", "evses[1].meter.unit_id"]
    assert sorted(line.split(": ")[1] for line in found) == sorted(expected_paths), found
    assert all(line.startswith("pi.toml: ") and "\n" not in line for line in found)


def test_config_error_is_a_value_error_with_one_line_per_problem() -> None:
    with pytest.raises(ValueError, match="evses") as caught:
        parse_config("", source="empty.toml")
    assert isinstance(caught.value, ConfigError)
    assert caught.value.problems == ["empty.toml: evses: required, but missing: describe at least one [[evses]]"]
