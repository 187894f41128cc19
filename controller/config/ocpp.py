"""The optional ``[ocpp]`` section: the CSMS to talk to, the station's identity, security and retries.

Kept apart from build.py so the OCPP settings are read in one place, for a file (``[ocpp]``) as for
``run --ocpp-url URL --ocpp-id ID [--ocpp-version V]`` (which creates or overrides the section). Imports no
OCPP or WebSocket library: ``check-config`` stays light.

Security profiles (OCPP 2.0.1 part 2, A00.FR.2xx; 1.6 security whitepaper): 0 = none (ws:// without a
password: a lab or a private network only), 1 = HTTP Basic auth over ws://, 2 = Basic auth over wss://
with the CSMS's certificate verified. The user name of Basic auth is the station id, so it may not hold
a colon; the password is 16 to 40 characters (2.0.1's BasicAuthPassword is a passwordString of at most 40).
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field

from controller.config.model import ChargerConfig, ConfigError, parse_bind
from controller.config.mqtt import read_password_file
from controller.config.ocpp_model import OcppConfig
from controller.config.schema import STRICT, describe_value

PASSWORD_ENV = "CHARGER_OCPP_PASSWORD"
VERSIONS = ("2.0.1", "1.6")
DEFAULT_PORTS = {"ws": 80, "wss": 443}
PASSWORD_LENGTH = range(16, 41)
# OCPP-J: the identity is the last path segment and the Basic auth user name: URL-safe, no colon, at most 48.
_STATION_ID = re.compile(r"[A-Za-z0-9._~*=+|@-]{1,48}")


class OcppSection(BaseModel):
    """``[ocpp]``: where the CSMS is, who this station is, which features it offers, and its timing."""

    model_config = STRICT
    url: str = Field(min_length=1)
    station_id: str = Field(min_length=1)
    version: Literal["2.0.1", "1.6"] = "2.0.1"
    reservations: bool = True
    non_evse_specific_reservations: bool = True
    security_profile: Literal[0, 1, 2] | None = None
    password_file: str | None = Field(default=None, min_length=1)
    ca_file: str | None = Field(default=None, min_length=1)
    heartbeat_interval_s: int = Field(default=300, ge=1, le=86_400)
    message_timeout_s: float = Field(default=30.0, gt=0, le=600)
    reconnect_min_s: float = Field(default=2.0, gt=0, le=600)
    reconnect_max_s: float = Field(default=120.0, gt=0, le=3600)
    vendor: str = Field(default="charger-controller", min_length=1, max_length=50)
    model: str = Field(default="charger-controller", min_length=1, max_length=20)
    serial_number: str | None = Field(default=None, min_length=1, max_length=25)


def parse_ocpp_url(url: str) -> tuple[str, int, bool]:
    """``ws://host[:port][/path]`` or ``wss://...`` -> (host, port, tls); ValueError saying what is wrong."""
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS or "://" not in url:
        raise ValueError(f"expected ws://host[:port][/path] or wss://host[:port][/path], got {describe_value(url)}")
    if parts.username is not None or parts.password is not None:
        raise ValueError("no user or password in the URL: the station id is the user name, the password comes "
                         f"from password_file or ${PASSWORD_ENV}")
    if parts.query or parts.fragment:
        raise ValueError(f"expected no query or fragment, got {describe_value(url)}")
    netloc = parts.netloc
    has_port = netloc.rpartition(":")[2].isdigit() and not netloc.endswith("]")
    host, port = parse_bind(netloc if has_port else f"{netloc}:{DEFAULT_PORTS[parts.scheme]}")
    return host, port, parts.scheme == "wss"


def station_id_problem(station_id: str) -> str | None:
    """What is wrong with a station id, or None (URL-safe characters, no colon, 1..48 long)."""
    if _STATION_ID.fullmatch(station_id):
        return None
    return (f"expected 1 to 48 letters, digits or . _ ~ * = + | @ - (it is a URL path segment and the Basic auth "
            f"user name), got {describe_value(station_id)}")


Validate = Callable[[type[OcppSection], object, str], tuple[OcppSection | None, bool]]


def build_ocpp(raw: object, base_dir: Path, problem: Callable[[str, str], None],
               validate: Validate) -> OcppConfig | None:
    """The ``[ocpp]`` table as an OcppConfig; each problem is reported through ``problem(path, message)``.

    Relative ``ca_file`` and ``password_file`` paths are taken from ``base_dir`` (the config file's folder).
    """
    section, ok = validate(OcppSection, raw, "ocpp")
    if section is None or not ok:
        return None
    try:
        host, port, tls = parse_ocpp_url(section.url)
    except ValueError as exc:
        problem("ocpp.url", str(exc))
        return None
    if (why := station_id_problem(section.station_id)) is not None:
        problem("ocpp.station_id", why)
        return None
    if section.reconnect_min_s > section.reconnect_max_s:
        problem("ocpp.reconnect_min_s", f"must not exceed reconnect_max_s ({section.reconnect_max_s})")
        return None
    ca_file = None
    if section.ca_file is not None:
        ca_file = (base_dir / section.ca_file).absolute()
        if not tls:
            problem("ocpp.ca_file", "only used with a wss:// url (TLS); use wss:// or remove ca_file")
            return None
        if not ca_file.is_file():
            problem("ocpp.ca_file", f"no CA file at {ca_file}")
            return None
    password = None
    if section.password_file is not None:
        try:
            password = read_password_file(base_dir / section.password_file)
        except ValueError as exc:
            problem("ocpp.password_file", str(exc))
            return None
        source = "ocpp.password_file"
    else:
        password = os.environ.get(PASSWORD_ENV) or None
        source = f"${PASSWORD_ENV}"
    if password is not None and len(password) not in PASSWORD_LENGTH:
        problem("ocpp.password_file" if section.password_file is not None else "ocpp",
                f"the password from {source} must be 16 to 40 characters, it has {len(password)}")
        return None
    profile = section.security_profile
    if profile is None:
        profile = 0 if password is None else (2 if tls else 1)
    if (why := _profile_problem(profile, tls, password is not None)) is not None:
        problem("ocpp.security_profile", why)
        return None
    return OcppConfig(
        url=section.url, host=host, port=port, tls=tls, station_id=section.station_id, version=section.version,
        reservations=section.reservations, non_evse_specific_reservations=section.non_evse_specific_reservations,
        security_profile=profile, password=password, ca_file=ca_file,
        heartbeat_interval_s=section.heartbeat_interval_s, message_timeout_s=section.message_timeout_s,
        reconnect_min_s=section.reconnect_min_s, reconnect_max_s=section.reconnect_max_s,
        vendor=section.vendor, model=section.model, serial_number=section.serial_number,
    )


def _profile_problem(profile: int, tls: bool, has_password: bool) -> str | None:
    """Why a security profile does not fit the URL and the password, or None."""
    if profile == 0 and has_password:
        return "0 (no security) but a password is set: use 1 (ws://) or 2 (wss://), or remove the password"
    if profile == 1 and (tls or not has_password):
        return "1 is HTTP Basic auth over ws://: needs a ws:// url and a password (password_file or " \
               f"${PASSWORD_ENV})"
    if profile == 2 and (not tls or not has_password):
        return "2 is HTTP Basic auth over wss://: needs a wss:// url and a password (password_file or " \
               f"${PASSWORD_ENV})"
    return None


def with_ocpp_flags(config: ChargerConfig, url: str | None, station_id: str | None,
                    version: str | None) -> ChargerConfig:
    """``run --ocpp-url URL --ocpp-id ID [--ocpp-version V]``: the file's ``[ocpp]`` overridden, or a new one.

    Without a section in the file, URL and ID are both needed (the rest takes its defaults, the password
    from ``$CHARGER_OCPP_PASSWORD``). Raises ConfigError naming the option that is wrong.
    """
    if url is None and station_id is None and version is None:
        return config
    current = config.ocpp
    if current is None and (url is None or station_id is None):
        missing = "--ocpp-url" if url is None else "--ocpp-id"
        raise ConfigError([f"{missing}: needed too, as the configuration has no [ocpp] section"])
    problems = []
    host = port = tls = None
    if url is not None:
        try:
            host, port, tls = parse_ocpp_url(url)
        except ValueError as exc:
            problems.append(f"--ocpp-url: {exc}")
    if station_id is not None and (why := station_id_problem(station_id)) is not None:
        problems.append(f"--ocpp-id: {why}")
    if version is not None and version not in VERSIONS:
        problems.append(f"--ocpp-version: expected 2.0.1 or 1.6, got {describe_value(version)}")
    if problems:
        raise ConfigError(problems)
    if current is None:
        assert url is not None and station_id is not None and host is not None and port is not None
        password = os.environ.get(PASSWORD_ENV) or None
        if password is not None and len(password) not in PASSWORD_LENGTH:
            raise ConfigError([f"${PASSWORD_ENV}: the password must be 16 to 40 characters, it has {len(password)}"])
        profile = 0 if password is None else (2 if tls else 1)
        ocpp = OcppConfig(url=url, host=host, port=port, tls=bool(tls), station_id=station_id,
                          version=version or "2.0.1", reservations=True, non_evse_specific_reservations=True,
                          security_profile=profile, password=password, ca_file=None)
    else:
        changes: dict[str, object] = {}
        if url is not None:
            changes.update(url=url, host=host, port=port, tls=tls)
        if station_id is not None:
            changes["station_id"] = station_id
        if version is not None:
            changes["version"] = version
        ocpp = dataclasses.replace(current, **changes)  # type: ignore[arg-type]
        if (why := _profile_problem(ocpp.security_profile, ocpp.tls, ocpp.password is not None)) is not None:
            raise ConfigError([f"--ocpp-url: does not fit ocpp.security_profile: {why}"])
        if ocpp.ca_file is not None and not ocpp.tls:
            raise ConfigError(["--ocpp-url: ocpp.ca_file needs a wss:// url"])
    return dataclasses.replace(config, ocpp=ocpp)


__all__ = ["PASSWORD_ENV", "VERSIONS", "OcppSection", "build_ocpp", "parse_ocpp_url", "station_id_problem",
           "with_ocpp_flags"]
