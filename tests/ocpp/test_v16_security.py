"""OCPP 1.6 security profile 1 (the 1.6 security whitepaper: HTTP Basic auth over ws://) against the sim charger:
the configured password at boot, a new one set by the CSMS with ChangeConfiguration(AuthorizationKey) used from the
next connection on and kept across a restart, never shown by GetConfiguration and never in the logs.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from .csms import Csms
from .station_harness import OcppStation, booted16, ocpp_config

STATION = "CS001"
PASSWORD = "first-Password-0001"  # 16..40 characters
NEW_PASSWORD = "second-Password-0002"


def basic(password: str) -> str:
    """The Authorization header of Basic auth for the station."""
    return "Basic " + base64.b64encode(f"{STATION}:{password}".encode()).decode("ascii")


@pytest.fixture
async def csms_basic() -> AsyncIterator[Csms]:
    """A 1.6 CSMS over ws:// that wants Basic auth with PASSWORD."""
    async with Csms(versions=("1.6",), basic_auth_password=PASSWORD) as csms:
        yield csms
    csms.assert_valid()


async def test_authorization_key_is_the_basic_auth_password_from_the_next_connection_on(
        tmp_path: Path, csms_basic: Csms, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("controller.ocpp.wire", "controller.ocpp.websocket", "websockets.client"):
        caplog.set_level(logging.DEBUG, logger=name)
    config = ocpp_config(csms_basic.url, version="1.6", security_profile=1, password=PASSWORD)
    async with OcppStation(tmp_path, config):
        await booted16(csms_basic)
        assert csms_basic.connections[0].authorization == basic(PASSWORD)
        answer = await csms_basic.call("ChangeConfiguration", {"key": "AuthorizationKey", "value": NEW_PASSWORD})
        assert answer == {"status": "Accepted"}
        listed = await csms_basic.call("GetConfiguration", {"key": ["AuthorizationKey", "SecurityProfile"]})
        assert listed["configurationKey"] == [{"key": "AuthorizationKey", "readonly": False},
                                              {"key": "SecurityProfile", "readonly": True, "value": "1"}]
        csms_basic.basic_auth_password = NEW_PASSWORD
        await csms_basic.disconnect()
        await csms_basic.wait_connected(count=2)
        assert csms_basic.connections[-1].authorization == basic(NEW_PASSWORD)
    await csms_basic.wait_disconnected()
    async with OcppStation(tmp_path, config):  # kept: not the configured password any more
        await csms_basic.wait_connected(count=3)
        assert csms_basic.connections[-1].authorization == basic(NEW_PASSWORD)
        assert csms_basic.auth_failures == 0
    secrets = [s for p in (PASSWORD, NEW_PASSWORD) for s in (p, basic(p).split()[1])]
    station_lines = [r.getMessage() for r in caplog.records
                     if not r.name.startswith(("websockets.server", "ocpp", "tests"))]
    assert not [line for line in station_lines if any(s in line for s in secrets)]
