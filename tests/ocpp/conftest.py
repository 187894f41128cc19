"""OCPP test fixtures: the Python CSMS (2.0.1 and 1.6 flavours), the independent JS peer, and TLS material.

``csms_201`` and ``csms_16`` accept only their version's subprotocol, so a station that negotiates the wrong one is
refused. Both check at teardown that nothing the station sent broke the schema (``Csms.assert_valid``); a test that
provokes failures on purpose takes them with ``csms.take_schema_failures()``. The station URL: ``csms.url`` is what
``--ocpp-url`` takes (``ws://127.0.0.1:PORT/ocpp``), ``csms.station_url(id)`` / ``station_url(base, id)`` the URL
with the station id appended (tests/ocpp/csms.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from .csms import Csms, Pki, make_pki
from .jspeer import JsCsms, js_peer_unavailable


@pytest.fixture
async def csms_201() -> AsyncIterator[Csms]:
    """A running OCPP 2.0.1 CSMS (subprotocol ocpp2.0.1 only) on 127.0.0.1, schema-checked at teardown."""
    async with Csms(versions=("2.0.1",)) as csms:
        yield csms
    csms.assert_valid()


@pytest.fixture
async def csms_16() -> AsyncIterator[Csms]:
    """A running OCPP 1.6J CSMS (subprotocol ocpp1.6 only) on 127.0.0.1, schema-checked at teardown."""
    async with Csms(versions=("1.6",)) as csms:
        yield csms
    csms.assert_valid()


@pytest.fixture
def ocpp_pki(tmp_path: Path) -> Pki:
    """A throwaway CA and server certificate for 127.0.0.1 (skips when the openssl binary is missing)."""
    return make_pki(tmp_path / "pki")


@pytest.fixture
async def js_csms() -> AsyncIterator[JsCsms]:
    """The independent ocpp-rpc strict CSMS (both subprotocols), running; validation-checked at teardown.

    Skips when Node 18+ or tests/ocpp/js/node_modules is missing (run ``npm ci --prefix tests/ocpp/js``).
    """
    reason = js_peer_unavailable()
    if reason is not None:
        pytest.skip(reason)
    async with JsCsms() as peer:
        yield peer
    peer.assert_valid()
