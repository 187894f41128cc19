"""OCPP 2.0.1 security profiles against the sim charger: 1 (HTTP Basic auth over ws://) and 2 (Basic auth over wss://
with the CSMS's certificate checked against a configured CA), a refused password retried with back-off, a new password
set by the CSMS (SecurityCtrlr.BasicAuthPassword, A01) used from the next connection on, and no password in the logs.
"""

from __future__ import annotations

import base64
import itertools
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from .csms import Csms, Pki
from .station_harness import OcppStation, booted, ocpp_config, set_variables, until

STATION = "CS001"
PASSWORD = "first-Password-0001"  # 16..40 characters
NEW_PASSWORD = "second-Password-0002"


def basic(password: str, station_id: str = STATION) -> str:
    """The Authorization header of Basic auth for the station."""
    return "Basic " + base64.b64encode(f"{station_id}:{password}".encode()).decode("ascii")


def station_log(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What the station logged (not the test CSMS: websockets.server and the ocpp library's records are its own)."""
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records
            if not r.name.startswith(("websockets.server", "ocpp", "tests"))]


def leaks(caplog: pytest.LogCaptureFixture, *passwords: str) -> list[str]:
    """Station log lines holding a password, or its Basic auth header."""
    secrets = [s for p in passwords for s in (p, basic(p).split()[1])]
    return [line for line in station_log(caplog) if any(s in line for s in secrets)]


@pytest.fixture
async def csms_basic() -> AsyncIterator[Csms]:
    """A 2.0.1 CSMS over ws:// that wants Basic auth with PASSWORD."""
    async with Csms(versions=("2.0.1",), basic_auth_password=PASSWORD) as csms:
        yield csms
    csms.assert_valid()


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every log record, DEBUG included (the websockets handshake and frames too)."""
    caplog.set_level(logging.DEBUG)
    for name in ("controller.ocpp.wire", "controller.ocpp.websocket", "websockets.client"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


async def test_profile_1_sends_basic_auth_and_boots(tmp_path: Path, csms_basic: Csms,
                                                    debug_logs: pytest.LogCaptureFixture) -> None:
    config = ocpp_config(csms_basic.url, security_profile=1, password=PASSWORD)
    async with OcppStation(tmp_path, config):
        await booted(csms_basic)
        assert csms_basic.connections[0].authorization == basic(PASSWORD)
        assert csms_basic.auth_failures == 0
    assert not leaks(debug_logs, PASSWORD)


async def test_a_refused_password_is_retried_with_back_off_until_the_csms_takes_it(
        tmp_path: Path, csms_basic: Csms, debug_logs: pytest.LogCaptureFixture) -> None:
    config = ocpp_config(csms_basic.url, security_profile=1, password="wrong-Password-0000",
                         reconnect_min_s=0.1, reconnect_max_s=0.4)
    async with OcppStation(tmp_path, config) as station:
        await until(lambda: csms_basic.auth_failures >= 5, "five refused attempts")
        times = [r.at for r in csms_basic.rejections if r.status == 401]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert all(gap >= 0.09 for gap in gaps), gaps  # never at once again: at least the minimum wait
        assert max(gaps[2:]) >= 0.2, gaps  # and the wait grows
        assert csms_basic.connections == []
        assert station.front is not None and station.front.station is not None
        assert not station.front.station._task.done()  # still trying, not crashed
        csms_basic.basic_auth_password = "wrong-Password-0000"  # the operator fixes the CSMS side
        await booted(csms_basic)
    assert any("refused our credentials" in line for line in station_log(debug_logs))
    assert not leaks(debug_logs, "wrong-Password-0000")


async def test_profile_2_verifies_the_csms_against_the_configured_ca(
        tmp_path: Path, ocpp_pki: Pki, debug_logs: pytest.LogCaptureFixture) -> None:
    async with Csms(versions=("2.0.1",), basic_auth_password=PASSWORD, ssl_context=ocpp_pki.server_context()) as csms:
        assert csms.url.startswith("wss://")
        config = ocpp_config(csms.url, security_profile=2, password=PASSWORD, ca_file=ocpp_pki.ca_cert)
        async with OcppStation(tmp_path, config):
            await booted(csms)
            assert csms.connections[0].authorization == basic(PASSWORD)
        csms.assert_valid()
    assert not leaks(debug_logs, PASSWORD)


async def test_profile_2_without_the_ca_refuses_the_csms_and_keeps_trying(
        tmp_path: Path, ocpp_pki: Pki, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="controller.ocpp")
    async with Csms(versions=("2.0.1",), basic_auth_password=PASSWORD, ssl_context=ocpp_pki.server_context()) as csms:
        config = ocpp_config(csms.url, security_profile=2, password=PASSWORD, ca_file=None,
                             reconnect_min_s=0.1, reconnect_max_s=0.3)
        async with OcppStation(tmp_path, config) as station:
            def refusals() -> int:
                return len([r for r in caplog.records if "cannot connect to the CSMS" in r.getMessage()
                            and "CERTIFICATE_VERIFY_FAILED" in r.getMessage()])

            await until(lambda: refusals() >= 2, "two refused TLS handshakes")
            assert csms.connections == [] and csms.messages == []
            assert station.front is not None and station.front.station is not None
            assert not station.front.station._task.done()


async def test_a_new_password_from_the_csms_is_used_on_the_next_connection(
        tmp_path: Path, csms_basic: Csms, debug_logs: pytest.LogCaptureFixture) -> None:
    config = ocpp_config(csms_basic.url, security_profile=1, password=PASSWORD)
    async with OcppStation(tmp_path, config):
        await booted(csms_basic)
        await set_variables(csms_basic, ("SecurityCtrlr", "BasicAuthPassword", NEW_PASSWORD))
        csms_basic.basic_auth_password = NEW_PASSWORD
        await csms_basic.disconnect()
        await csms_basic.wait_connected(count=2)
        assert csms_basic.connections[-1].authorization == basic(NEW_PASSWORD)
        assert csms_basic.auth_failures == 0
    await csms_basic.wait_disconnected()
    # kept: the next start uses the CSMS's password, not the configured one
    async with OcppStation(tmp_path, config):
        await csms_basic.wait_connected(count=3)
        assert csms_basic.connections[-1].authorization == basic(NEW_PASSWORD)
        await booted(csms_basic, count=3)
    assert not leaks(debug_logs, PASSWORD, NEW_PASSWORD)


async def test_profile_0_sends_no_credentials(tmp_path: Path, csms_201: Csms) -> None:
    async with OcppStation(tmp_path, ocpp_config(csms_201.url)):
        await booted(csms_201)
        assert csms_201.connections[0].authorization is None
        [read] = (await csms_201.call("GetVariables", {"getVariableData": [
            {"component": {"name": "SecurityCtrlr"}, "variable": {"name": "SecurityProfile"}}]}))["getVariableResult"]
        assert read["attributeValue"] == "0"
