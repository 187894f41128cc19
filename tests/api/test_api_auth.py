"""Bearer-token access control and the loopback rule for binding without a token."""

from __future__ import annotations

import pytest

from controller.addresses import is_loopback
from controller.api.app import create_app
from controller.api.auth import require_token_for_bind

from .conftest import TOKEN, Start
from .fake_charger import FakeCharger
from .http_helpers import SseReader

PATHS = [("GET", "/status"), ("GET", "/reservations"), ("GET", "/openapi.json"), ("GET", "/nowhere")]


async def test_without_a_configured_token_no_header_is_needed(start: Start) -> None:
    api = await start()
    assert (await api.call("GET", "/status")).status == 200


async def test_with_a_token_every_endpoint_needs_it(start: Start) -> None:
    api = await start(access_token=TOKEN)
    for method, path in [*PATHS, ("POST", "/evses/1/enable"), ("DELETE", "/reservations/1")]:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
            reply = await api.call(method, path, headers={**headers} or {"Authorization": ""})
            assert reply.status == 401, (path, headers)
            assert reply.error_body()["field"] is None
            assert reply.headers["www-authenticate"].startswith("Bearer")
    api.token = TOKEN
    for method, path in PATHS[:3]:
        assert (await api.call(method, path)).status == 200, path
    assert (await api.call("GET", "/nowhere")).status == 404
    assert (await api.call("GET", "/status", headers={"Authorization": f"bearer {TOKEN}"})).status == 200


async def test_event_stream_needs_the_token_too(start: Start) -> None:
    api = await start(access_token=TOKEN)
    refused = await SseReader.open(api.port)
    assert refused.status == 401
    await refused.close()
    allowed = await SseReader.open(api.port, {"Authorization": f"Bearer {TOKEN}"})
    assert allowed.status == 200
    assert await allowed.frame() == ": connected\n\n"
    await allowed.close()


def test_create_app_refuses_a_weak_token() -> None:
    for token in ("", "short", "has a space in it!!", "ünïcödé-token-0123456789"):
        with pytest.raises(ValueError, match="access token"):
            create_app(FakeCharger(), access_token=token)


LOOPBACK = ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST", "::ffff:127.0.0.1"]


@pytest.mark.parametrize("host", LOOPBACK)
def test_loopback_hosts_need_no_token(host: str) -> None:
    assert is_loopback(host)
    require_token_for_bind(host, None)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "192.168.1.20", "charger.local", "10.0.0.1"])
def test_other_hosts_need_a_token(host: str) -> None:
    assert not is_loopback(host)
    with pytest.raises(ValueError, match="without an access token"):
        require_token_for_bind(host, None)
    with pytest.raises(ValueError):
        require_token_for_bind(host, "")
    require_token_for_bind(host, TOKEN)
