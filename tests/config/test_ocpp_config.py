"""The optional ``[ocpp]`` section: defaults, every problem named by file and key, the password from a file or the
environment (never shown), the security profile that follows from the URL and the password, and ``run --ocpp-url
--ocpp-id --ocpp-version`` over a file's section or without one."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from controller.config.loader import ConfigError, load_config, load_sim_default
from controller.config.ocpp import PASSWORD_ENV, parse_ocpp_url, with_ocpp_flags

from .config_helpers import SOURCE, base, load, only_problem, problems, to_toml

PASSWORD = "0123456789-abcdef-pw"


def with_ocpp(**section: Any) -> dict[str, Any]:
    """The base configuration with this ``[ocpp]`` section."""
    data = base()
    data["ocpp"] = section
    return data


@pytest.fixture(autouse=True)
def no_password_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests say when the environment holds a password."""
    monkeypatch.delenv(PASSWORD_ENV, raising=False)


def test_no_section_no_station() -> None:
    assert load(base()).ocpp is None


def test_the_url_and_the_id_are_enough() -> None:
    ocpp = load(with_ocpp(url="ws://csms.lan/ocpp", station_id="CS-01")).ocpp
    assert ocpp is not None
    assert (ocpp.host, ocpp.port, ocpp.tls) == ("csms.lan", 80, False)
    assert ocpp.endpoint == "ws://csms.lan/ocpp/CS-01"
    assert (ocpp.version, ocpp.reservations, ocpp.non_evse_specific_reservations) == ("2.0.1", True, True)
    assert (ocpp.security_profile, ocpp.password, ocpp.ca_file) == (0, None, None)
    assert ocpp.heartbeat_interval_s == 300 and ocpp.reconnect_min_s <= ocpp.reconnect_max_s


@pytest.mark.parametrize(("url", "expected"), [
    ("ws://10.0.0.5", ("10.0.0.5", 80, False)),
    ("wss://csms.example.com/ocpp", ("csms.example.com", 443, True)),
    ("ws://csms.lan:9000/steve/websocket/CentralSystemService", ("csms.lan", 9000, False)),
    ("wss://[fd00::5]:8443/ocpp", ("fd00::5", 8443, True)),
])
def test_csms_urls(url: str, expected: tuple[str, int, bool]) -> None:
    assert parse_ocpp_url(url) == expected


@pytest.mark.parametrize(("url", "wording"), [
    ("http://csms.lan/ocpp", "expected ws://host[:port][/path] or wss://host[:port][/path]"),
    ("csms.lan", "expected ws://host[:port][/path]"),
    ("ws://user:secret@csms.lan", "no user or password in the URL"),
    ("ws://csms.lan/ocpp?x=1", "no query or fragment"),
    ("ws://csms.lan:0", "port"),
])
def test_a_bad_url_names_the_file_and_key(url: str, wording: str) -> None:
    problem = only_problem(with_ocpp(url=url, station_id="CS-01"))
    assert problem.startswith(f"{SOURCE}: ocpp.url: ") and wording in problem, problem
    assert "secret" not in problem


@pytest.mark.parametrize("station_id", ["CS:01", "x" * 49, "CS 01", "CS/01", ""])
def test_a_bad_station_id_names_the_key(station_id: str) -> None:
    problem = only_problem(with_ocpp(url="ws://csms.lan", station_id=station_id))
    assert problem.startswith(f"{SOURCE}: ocpp.station_id: "), problem


def test_a_station_id_of_48_characters_is_fine() -> None:
    ocpp = load(with_ocpp(url="ws://csms.lan", station_id="x" * 48)).ocpp
    assert ocpp is not None and ocpp.station_id == "x" * 48


@pytest.mark.parametrize("version", ["2.0", "2.1", "1.5", 201])
def test_only_2_0_1_and_1_6_are_versions(version: Any) -> None:
    problem = only_problem(with_ocpp(url="ws://csms.lan", station_id="CS", version=version))
    assert problem.startswith(f"{SOURCE}: ocpp.version: ") and "2.0.1" in problem and "1.6" in problem, problem


def test_an_unknown_key_names_the_allowed_ones() -> None:
    problem = only_problem(with_ocpp(url="ws://csms.lan", station_id="CS", colour="red"))
    assert problem.startswith(f"{SOURCE}: ocpp.colour: unknown key; allowed keys: ") and "station_id" in problem


def test_profile_1_without_a_password_is_refused() -> None:
    problem = only_problem(with_ocpp(url="ws://csms.lan", station_id="CS", security_profile=1))
    assert problem.startswith(f"{SOURCE}: ocpp.security_profile: 1 is HTTP Basic auth over ws://"), problem
    assert PASSWORD_ENV in problem


@pytest.mark.parametrize(("url", "profile"), [("wss://csms.lan", 1), ("ws://csms.lan", 2)])
def test_a_profile_that_does_not_fit_the_url_is_refused(monkeypatch: pytest.MonkeyPatch, url: str,
                                                        profile: int) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    problem = only_problem(with_ocpp(url=url, station_id="CS", security_profile=profile))
    assert problem.startswith(f"{SOURCE}: ocpp.security_profile: "), problem
    assert PASSWORD not in problem


def test_profile_0_with_a_password_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    problem = only_problem(with_ocpp(url="ws://csms.lan", station_id="CS", security_profile=0))
    assert problem.startswith(f"{SOURCE}: ocpp.security_profile: 0"), problem
    assert PASSWORD not in problem


def test_a_ca_file_with_ws_is_refused(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("not checked here")
    found = problems(with_ocpp(url="ws://csms.lan", station_id="CS", ca_file=str(tmp_path / "ca.pem")))
    assert found == [f"{SOURCE}: ocpp.ca_file: only used with a wss:// url (TLS); use wss:// or remove ca_file"]


def test_a_missing_ca_file_is_named(tmp_path: Path) -> None:
    problem = only_problem(with_ocpp(url="wss://csms.lan", station_id="CS", ca_file=str(tmp_path / "nope.pem")))
    assert problem.startswith(f"{SOURCE}: ocpp.ca_file: no CA file at "), problem


def test_the_password_comes_from_the_environment_and_sets_the_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    ws = load(with_ocpp(url="ws://csms.lan", station_id="CS")).ocpp
    wss = load(with_ocpp(url="wss://csms.lan", station_id="CS")).ocpp
    assert ws is not None and wss is not None
    assert (ws.security_profile, ws.password) == (1, PASSWORD)
    assert (wss.security_profile, wss.password) == (2, PASSWORD)
    assert PASSWORD not in repr(ws) and PASSWORD not in str(load(with_ocpp(url="ws://csms.lan", station_id="CS")))


def test_a_password_of_the_wrong_length_is_refused_without_showing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "short-secret")
    problem = only_problem(with_ocpp(url="ws://csms.lan", station_id="CS"))
    assert "16 to 40 characters" in problem and "short-secret" not in problem


def test_a_password_file_and_a_ca_file_are_read_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "ocpp.pw").write_text(PASSWORD + "\n")
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    data = with_ocpp(url="wss://csms.lan", station_id="CS", password_file="secrets/ocpp.pw", ca_file="ca.pem")
    path = tmp_path / "charger.toml"
    path.write_text(to_toml(data))
    ocpp = load_config(path).ocpp
    assert ocpp is not None
    assert (ocpp.password, ocpp.security_profile, ocpp.ca_file) == (PASSWORD, 2, (tmp_path / "ca.pem").absolute())


def test_reconnect_waits_in_order() -> None:
    problem = only_problem(with_ocpp(url="ws://csms.lan", station_id="CS", reconnect_min_s=10.0,
                                     reconnect_max_s=5.0))
    assert problem.startswith(f"{SOURCE}: ocpp.reconnect_min_s: must not exceed reconnect_max_s"), problem


def test_every_problem_of_the_section_at_once() -> None:
    found = problems(with_ocpp(url="ws://csms.lan", station_id="CS", heartbeat_interval_s=0, reservations="yes",
                               colour="red"))
    assert {p.split(": ")[1] for p in found} == {"ocpp.heartbeat_interval_s", "ocpp.reservations", "ocpp.colour"}


# ---------------------------------------------------------------------------------------------------- run flags


def test_flags_without_a_section_need_both_url_and_id() -> None:
    with pytest.raises(ConfigError) as caught:
        with_ocpp_flags(load_sim_default(), "ws://127.0.0.1:9000/ocpp", None, None)
    assert str(caught.value) == "--ocpp-id: needed too, as the configuration has no [ocpp] section"
    with pytest.raises(ConfigError) as caught:
        with_ocpp_flags(load_sim_default(), None, "CS9", None)
    assert str(caught.value).startswith("--ocpp-url: needed too")


def test_flags_without_a_section_make_one() -> None:
    config = with_ocpp_flags(load_sim_default(), "ws://127.0.0.1:9000/ocpp", "CS9", None)
    assert config.ocpp is not None
    assert (config.ocpp.endpoint, config.ocpp.version, config.ocpp.security_profile) == (
        "ws://127.0.0.1:9000/ocpp/CS9", "2.0.1", 0)


def test_flags_override_the_files_section_and_keep_the_rest() -> None:
    config = load(with_ocpp(url="ws://csms.lan/ocpp", station_id="CS-01", reservations=False,
                            non_evse_specific_reservations=False, heartbeat_interval_s=60))
    changed = with_ocpp_flags(config, "ws://other.lan:9000/x", "CS-02", "1.6")
    assert changed.ocpp is not None and config.ocpp is not None
    assert (changed.ocpp.host, changed.ocpp.port, changed.ocpp.endpoint) == ("other.lan", 9000, "ws://other.lan:9000/x/CS-02")
    assert changed.ocpp.version == "1.6"
    assert dataclasses.replace(changed.ocpp, url=config.ocpp.url, host=config.ocpp.host, port=config.ocpp.port,
                               station_id=config.ocpp.station_id, version=config.ocpp.version) == config.ocpp
    only_id = with_ocpp_flags(config, None, "CS-03", None)
    assert only_id.ocpp is not None and only_id.ocpp.url == "ws://csms.lan/ocpp" and only_id.ocpp.station_id == "CS-03"


@pytest.mark.parametrize(("url", "station_id", "version", "wording"), [
    ("http://csms.lan", "CS", None, "--ocpp-url: expected ws://"),
    ("ws://csms.lan", "CS:9", None, "--ocpp-id: expected 1 to 48"),
    ("ws://csms.lan", "CS", "2.0", "--ocpp-version: expected 2.0.1 or 1.6"),
])
def test_bad_flags_name_the_flag(url: str, station_id: str, version: str | None, wording: str) -> None:
    with pytest.raises(ConfigError) as caught:
        with_ocpp_flags(load_sim_default(), url, station_id, version)
    assert str(caught.value).startswith(wording), str(caught.value)


def test_a_flag_url_that_breaks_the_files_profile_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    config = load(with_ocpp(url="ws://csms.lan", station_id="CS", security_profile=1))
    with pytest.raises(ConfigError) as caught:
        with_ocpp_flags(config, "wss://csms.lan", None, None)
    assert str(caught.value).startswith("--ocpp-url: does not fit ocpp.security_profile: 1"), str(caught.value)
    assert PASSWORD not in str(caught.value)
