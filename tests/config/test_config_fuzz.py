"""Whatever text or data comes in, parse_config returns a config or raises ConfigError, nothing else."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.config.loader import ChargerConfig, ConfigError, parse_config, parse_config_data

from .config_helpers import base, to_toml

EXAMPLES = [path.read_text(encoding="utf-8")
            for path in sorted((Path(__file__).parents[2] / "examples").glob("*.toml"))]
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

names = st.sampled_from(["id", "type", "pin", "coil_pin", "feedback_pin", "bus", "model", "map", "unit_id", "url",
                         "name", "bind", "access_token", "connectors", "evses", "meter", "lock", "plug", "indicator",
                         "contactor", "rfid", "controller", "api", "meter_buses", "status_colors", "amber",
                         "pull_up", "simulated", "pin_factory", "state_dir"]) | st.text(max_size=8)
scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-300, max_value=300)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20)
           | st.sampled_from(["GPIO17", "BOARD11", "J8:1", "WPI3", "cType2", "sdm630", "bus0", "mock", "0.0.0.0:80",
                              "[::1]:1", "socket://127.0.0.1:0", "tcp://h:502", "/dev/x", "external", "Faulted"]))
json_ish = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(names, inner, max_size=5),
                        max_leaves=25)


def _outcome(run: Any) -> None:
    """Run ``run()``: it returns a ChargerConfig or raises ConfigError with one-line problems."""
    try:
        result = run()
    except ConfigError as exc:
        assert exc.problems, "a ConfigError names at least one problem"
        for line in exc.problems:
            assert line.startswith("fuzz.toml: ") and "\n" not in line and "\r" not in line, line
        return
    assert isinstance(result, ChargerConfig)


def _mutate(data: Any, path: list[int], value: Any) -> Any:
    """Replace the node reached by following ``path`` (indices into keys/items, modulo their count)."""
    if not path or not isinstance(data, dict | list) or not data:
        return value
    keys = list(data) if isinstance(data, dict) else list(range(len(data)))
    key = keys[path[0] % len(keys)]
    data[key] = _mutate(data[key], path[1:], value)
    return data


@FUZZ
@given(st.text(max_size=300))
def test_random_text(text: str) -> None:
    _outcome(lambda: parse_config(text, source="fuzz.toml"))


@FUZZ
@given(st.sampled_from(EXAMPLES), st.integers(min_value=0), st.text(max_size=5))
def test_truncated_and_spliced_examples(example: str, cut: int, splice: str) -> None:
    position = cut % (len(example) + 1)
    _outcome(lambda: parse_config(example[:position], source="fuzz.toml"))
    _outcome(lambda: parse_config(example[:position] + splice + example[position + 1:], source="fuzz.toml"))


@FUZZ
@given(json_ish)
def test_random_structures(data: Any) -> None:
    _outcome(lambda: parse_config_data(data, source="fuzz.toml"))
    if isinstance(data, dict):
        _outcome(lambda: parse_config(to_toml(data), source="fuzz.toml"))


@FUZZ
@given(st.lists(st.integers(min_value=0, max_value=50), min_size=1, max_size=5), json_ish)
def test_one_value_of_a_valid_config_replaced(path: list[int], value: Any) -> None:
    data = _mutate(base(), path, value)
    _outcome(lambda: parse_config_data(data, source="fuzz.toml"))
    if isinstance(data, dict):
        _outcome(lambda: parse_config(to_toml(data), source="fuzz.toml"))


@FUZZ
@given(st.lists(st.integers(min_value=0, max_value=50), min_size=1, max_size=4), names, json_ish)
def test_a_key_added_to_a_valid_config(path: list[int], key: str, value: Any) -> None:
    data = base()
    node: Any = data
    for step in path:
        children = [v for v in (node.values() if isinstance(node, dict) else node) if isinstance(v, dict | list)]
        if not children:
            break
        node = children[step % len(children)]
    if isinstance(node, dict):
        node[key] = value
    else:
        node.append(value)
    _outcome(lambda: parse_config_data(data, source="fuzz.toml"))
