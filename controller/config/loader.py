"""The controller's configuration: one TOML file read into a frozen, typed ``ChargerConfig``.

Every problem in the file is collected and reported on one line each, naming the file, the key
path and what is wrong, so an installer fixes them all in one round. Relative paths: ``state_dir``
against the current directory at start (made absolute when loaded), a meter ``map`` file against
the folder of the config file.
"""

from __future__ import annotations

import dataclasses
import re
import sys
import tomllib
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from controller.addresses import is_loopback
from controller.config.build import Builder, one_line
from controller.config.model import (
    MAX_TOKEN_LENGTH,
    MIN_TOKEN_LENGTH,
    ApiConfig,
    ChargerConfig,
    ConfigError,
    ControllerConfig,
    EvseConfig,
    MeterConfig,
    PinFactory,
    RfidConfig,
    access_token_problem,
    is_sim_meter_url,
    parse_bind,
)
from controller.config.schema import normalize_pin

__all__ = [
    "MAX_TOKEN_LENGTH",
    "MIN_TOKEN_LENGTH",
    "ApiConfig",
    "ChargerConfig",
    "ConfigError",
    "ControllerConfig",
    "EvseConfig",
    "MeterConfig",
    "PinFactory",
    "RfidConfig",
    "access_token_problem",
    "check_config_main",
    "is_loopback",
    "is_sim_meter_url",
    "load_config",
    "load_sim_default",
    "normalize_pin",
    "parse_bind",
    "parse_config",
    "parse_config_data",
    "read_token_file",
]

SIM_DEFAULT_RESOURCE = "sim_default.toml"


def parse_config(
    text: str, *, source: str, base_dir: str | Path | None = None, access_token: str | None = None
) -> ChargerConfig:
    """Parse and validate TOML text; ``source`` names it in messages, ``base_dir`` anchors map paths.

    ``access_token`` (checked already, see ``read_token_file``) replaces the file's ``api.access_token``.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{source}: {_toml_problem(str(exc), text)}"]) from None
    except RecursionError:
        raise ConfigError([f"{source}: invalid TOML: nested too deeply"]) from None
    except ValueError as exc:  # e.g. an integer longer than Python converts
        raise ConfigError([f"{source}: invalid TOML: {one_line(str(exc))}"]) from None
    return parse_config_data(data, source=source, base_dir=base_dir, access_token=access_token)


def parse_config_data(
    data: object, *, source: str, base_dir: str | Path | None = None, access_token: str | None = None
) -> ChargerConfig:
    """Validate already-parsed data shaped like the TOML file (tests, other front ends)."""
    return Builder(source, Path(base_dir) if base_dir is not None else Path.cwd(), access_token).build(data)


def load_config(path: str | Path, *, access_token: str | None = None) -> ChargerConfig:
    """Read and validate a config file; map paths in it are relative to its folder.

    ``access_token`` (checked already, see ``read_token_file``) replaces the file's ``api.access_token``.
    """
    source = str(path)
    text = _read_utf8(path, "config file", str)
    return parse_config(text, source=source, base_dir=Path(path).parent, access_token=access_token)


def _read_utf8(path: str | Path, what: str, why: Callable[[Exception], str]) -> str:
    """A file's UTF-8 text, or ConfigError "<path>: cannot read <what>: <reason>" (``why`` words other errors).

    The reason never quotes the file's content (a token file holds a secret).
    """
    source = str(path)
    try:
        return Path(path).read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{source}: cannot read {what}: no such file"]) from None
    except IsADirectoryError:
        raise ConfigError([f"{source}: cannot read {what}: it is a directory"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{source}: cannot read {what}: not UTF-8 text (byte {exc.start})"]) from None
    except (OSError, ValueError) as exc:
        raise ConfigError([f"{source}: cannot read {what}: {one_line(why(exc))}"]) from None


def load_sim_default(*, access_token: str | None = None) -> ChargerConfig:
    """The embedded simulated charger of ``run --sim`` (``controller/config/sim_default.toml``), with ``access_token``
    (``run --sim --api-token-file``) as its API token when given."""
    text = resources.files("controller.config").joinpath(SIM_DEFAULT_RESOURCE).read_text(encoding="utf-8")
    return parse_config(text, source=f"controller/config/{SIM_DEFAULT_RESOURCE}", access_token=access_token)


def without_pilots(config: ChargerConfig) -> ChargerConfig:
    """The same charger with no control pilot: the plug line says plugged, as on boards whose CP is handled
    elsewhere. Long simulations on a warped clock use it (a pilot is sampled every 20 ms of loop time)."""
    return dataclasses.replace(config, evses=tuple(dataclasses.replace(e, pilot=None) for e in config.evses))


def read_token_file(path: str | Path) -> str:
    """The API access token in a file (``run --api-token-file``), surrounding whitespace stripped.

    Raises ConfigError with one line naming the file and what is wrong, never quoting its content,
    so a wrong file does not put a secret into a terminal or a journal.
    """
    source = str(path)
    text = _read_utf8(path, "the API token file", lambda exc: getattr(exc, "strerror", None) or str(exc))
    token = text.strip()
    if not token:
        raise ConfigError([f"{source}: the API token file is empty; write a token of at least {MIN_TOKEN_LENGTH} "
                           "random characters into it"])
    problem = access_token_problem(token)
    if problem is not None:
        raise ConfigError([f"{source}: API access token: {problem}"])
    return token


def check_config_main(path: str) -> int:
    """``charger-controller check-config FILE``: "FILE: OK (...)" on stdout and 0, or every problem on stderr and 1."""
    try:
        config = load_config(path)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print(f"{path}: OK ({config.summary()})")
    return 0


def _toml_problem(message: str, text: str) -> str:
    """tomllib's "Invalid value (at line 12, column 5)" as "line 12: invalid TOML: Invalid value (column 5)"."""
    if match := re.search(r"\s*\(at line (\d+), column (\d+)\)$", message):
        return f"line {match.group(1)}: invalid TOML: {message[:match.start()]} (column {match.group(2)})"
    if match := re.search(r"\s*\(at end of document\)$", message):
        last_line = max(1, len(text.splitlines()))
        return f"line {last_line}: invalid TOML: {message[:match.start()]} (at the end of the file)"
    return f"invalid TOML: {one_line(message)}"
