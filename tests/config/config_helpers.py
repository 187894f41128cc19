"""Shared material for the config tests: a valid configuration as data, a tiny TOML writer, problem access."""

from __future__ import annotations

import copy
import json
import math
import re
from typing import Any

import pytest

from controller.config.loader import ChargerConfig, ConfigError, parse_config

SOURCE = "pi.toml"

_BASE: dict[str, Any] = {
    "controller": {"state_dir": "/var/lib/charger-controller", "pin_factory": "lgpio"},
    "api": {"bind": "127.0.0.1:8080"},
    "meter_buses": [{"name": "bus0", "url": "/dev/charger-meter-bus0"}],
    "evses": [
        {
            "id": 1,
            "connectors": [{"id": 1, "type": "sType2"}],
            "contactor": {"coil_pin": "GPIO17", "feedback_pin": "GPIO27"},
            "lock": {"lock_pin": "GPIO5", "unlock_pin": "GPIO6", "feedback_pin": "GPIO22"},
            "plug": {"pin": "GPIO23"},
            "indicator": {"reserved_pin": "GPIO24"},
            "meter": {"bus": "bus0", "model": "sdm630", "unit_id": 1},
            "rfid": {"port": "/dev/charger-rfid0"},
        },
        {
            "id": 2,
            "connectors": [{"id": 1, "type": "sType2"}],
            "contactor": {"coil_pin": "GPIO16", "feedback_pin": "GPIO20"},
            "lock": {"lock_pin": "GPIO21", "unlock_pin": "GPIO26", "feedback_pin": "GPIO25"},
            "plug": {"pin": "GPIO4"},
            "indicator": {"reserved_pin": "GPIO18"},
            "meter": {"bus": "bus0", "model": "sdm630", "unit_id": 2},
            "rfid": {"port": "/dev/charger-rfid1"},
        },
    ],
}


def base() -> dict[str, Any]:
    """A fresh copy of a valid 2-EVSE configuration, to change one thing in."""
    return copy.deepcopy(_BASE)


_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def put(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """Set ``evses[1].contactor.coil_pin``-style ``path`` in ``data`` (made on the way); returns data."""
    steps: list[str | int] = [name if name else int(index) for name, index in _STEP.findall(path)]
    node: Any = data
    for step in steps[:-1]:
        node = node[step] if isinstance(step, int) else node.setdefault(step, {})
    node[steps[-1]] = value
    return data


def named(path: str) -> str:
    """A data path of ``base()`` as problems name it: an EVSE by its id (``evses[1].plug`` -> ``evses[id=2].plug``)."""
    return re.sub(r"^evses\[(\d+)\]", lambda m: f"evses[id={_BASE['evses'][int(m.group(1))]['id']}]", path)


def drop(data: dict[str, Any], path: str) -> dict[str, Any]:
    """Remove the key at ``path``; returns data."""
    steps: list[str | int] = [name if name else int(index) for name, index in _STEP.findall(path)]
    node: Any = data
    for step in steps[:-1]:
        node = node[step]
    del node[steps[-1]]
    return data


def toml_value(value: Any) -> str:
    """``value`` as a TOML value (inline tables and arrays; None has no TOML form)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(item) for item in value if item is not None) + "]"
    if isinstance(value, dict):
        items = [f"{toml_string(str(k))} = {toml_value(v)}" for k, v in value.items() if v is not None]
        return "{ " + ", ".join(items) + " }" if items else "{}"
    raise TypeError(f"no TOML form for {value!r}")


def toml_string(text: str) -> str:
    """A TOML basic string (JSON escapes, minus the surrogate pairs and raw DEL TOML refuses)."""
    out = []
    for char in text:
        code = ord(char)
        if char in '"\\' or code < 0x20 or code == 0x7F:
            out.append(json.dumps(char)[1:-1] if code != 0x7F else "\\u007f")
        elif 0xD800 <= code <= 0xDFFF:
            out.append("\\ufffd")  # lone surrogates cannot be written in TOML
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def to_toml(data: dict[str, Any]) -> str:
    """A top-level table as TOML text, one ``key = value`` line per key."""
    return "".join(f"{toml_string(str(k))} = {toml_value(v)}\n" for k, v in data.items() if v is not None)


def load(data: dict[str, Any]) -> ChargerConfig:
    """Parse ``data`` written out as TOML, as a file named pi.toml."""
    return parse_config(to_toml(data), source=SOURCE)


def problems(data: dict[str, Any] | str) -> list[str]:
    """Every problem reported for ``data`` (or TOML text); fails the test if it loads."""
    text = data if isinstance(data, str) else to_toml(data)
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source=SOURCE)
    assert str(caught.value) == "\n".join(caught.value.problems)
    return caught.value.problems


def only_problem(data: dict[str, Any] | str) -> str:
    """The one problem reported for ``data``."""
    found = problems(data)
    assert len(found) == 1, found
    return found[0]
