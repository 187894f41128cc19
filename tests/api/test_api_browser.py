"""Requests a web page could make a local browser send: refused without doing or revealing anything.

Without an access token the API serves local programs only. A page can make the browser POST a form
(or text/plain) to 127.0.0.1 without asking anyone, so every POST must say ``application/json`` (which
needs a CORS preflight the API never grants). By DNS rebinding a page's own name can resolve to
127.0.0.1, so the ``Host`` must be a loopback name or the bind address; a cross-site ``Origin`` is
refused outright.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from controller.api.auth import allowed_host

from .conftest import TOKEN, Start
from .http_helpers import Api

LATER = "2030-01-01T12:00:00Z"
RESERVATION = {"reservation_id": 9, "id_token": "DRIVER-AAA", "expiry_time": LATER, "evse_id": 1}
BODYLESS_POSTS = ["/evses/1/enable", "/evses/1/disable", "/evses/1/reset", "/sim/evses/1/plug",
                  "/sim/evses/1/unplug"]


async def evse_1(api: Api) -> dict[str, object]:
    """EVSE 1 as /status shows it, with ``enabled`` as the charger holds it."""
    reply = await api.call("GET", "/status")
    assert reply.status == 200, reply.text
    evse: dict[str, object] = reply.json["evses"][0]
    return {**evse, "enabled": api.charger.enabled[1]}


# ------------------------------------------------------------------ Content-Type on every POST


async def test_a_form_post_to_disable_is_refused_and_the_evse_stays_enabled(api: Api) -> None:
    reply = await api.call("POST", "/evses/1/disable", raw=b"x=1",
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert reply.status == 415
    error = reply.error_body()
    assert "application/x-www-form-urlencoded" in error["error"] and "application/json" in error["error"]
    assert error["field"] is None
    assert (await evse_1(api))["enabled"] is True


@pytest.mark.parametrize("ctype", [None, "text/plain", "multipart/form-data; boundary=x", "application/jsonx"])
@pytest.mark.parametrize("path", BODYLESS_POSTS)
async def test_a_bodyless_post_without_the_json_content_type_does_nothing(api: Api, path: str,
                                                                          ctype: str | None) -> None:
    headers = {} if ctype is None else {"Content-Type": ctype}
    reply = await api.call("POST", path, raw=b"", headers=headers)
    assert reply.status == 415, reply.text
    assert ("got none" if ctype is None else repr(ctype)) in reply.error_body()["error"]
    assert api.charger.fake_sim.calls == []
    evse = await evse_1(api)
    assert (evse["enabled"], evse["plugged_in"]) == (True, False)


async def test_a_json_body_without_a_content_type_is_no_longer_accepted(api: Api) -> None:
    reply = await api.call("POST", "/reservations", raw=b'{"reservation_id": 9, "id_token": "DRIVER-AAA", '
                                                        b'"expiry_time": "2030-01-01T12:00:00Z", "evse_id": 1}')
    assert reply.status == 415
    assert "got none" in reply.error_body()["error"]
    assert (await api.call("GET", "/reservations")).json == {"reservations": []}


@pytest.mark.parametrize("ctype", ["application/json", "Application/JSON; charset=utf-8",
                                   "application/merge-patch+json"])
async def test_json_content_types_pass_with_or_without_a_body(api: Api, ctype: str) -> None:
    reply = await api.call("POST", "/evses/1/disable", raw=b"", headers={"Content-Type": ctype})
    assert reply.json == {"evse_id": 1, "enabled": False}
    reply = await api.call("POST", "/reservations", RESERVATION, headers={"Content-Type": ctype})
    assert reply.json == {"result": "Unavailable"}  # EVSE 1 is disabled: refused, but the request was taken


async def test_the_content_type_rule_comes_after_routing(api: Api) -> None:
    """A wrong path or method still says so (404, 405), whatever the Content-Type."""
    assert (await api.call("POST", "/nowhere", raw=b"", headers={})).status == 404
    assert (await api.call("POST", "/status", raw=b"", headers={})).status == 405


# ------------------------------------------------------------------ Host and Origin without a token


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8080", "127.0.0.1.evil.example",
                                  "localhost.evil.example", "192.168.1.20", "0.0.0.0", "[::2]:80", "",
                                  "127.0.0.1:http", "[::1", "a:b:c"])
async def test_a_request_for_another_host_is_403_and_reveals_nothing(api: Api, host: str) -> None:
    assert (await api.call("POST", "/reservations", {**RESERVATION, "evse_id": 2})).json == {"result": "Accepted"}
    reply = await api.call("GET", "/status", headers={"Host": host})
    assert reply.status == 403, reply.text
    error = reply.error_body()
    assert error["field"] is None and "Host" in error["error"]
    if host:
        assert repr(host) in error["error"]
    assert "DRIVER" not in reply.text and "evses" not in reply.text
    assert set(reply.headers) >= {"content-type"} and "access-control-allow-origin" not in reply.headers


async def test_a_post_for_another_host_changes_nothing(api: Api) -> None:
    reply = await api.call("POST", "/reservations", RESERVATION, headers={"Host": "evil.example"})
    assert reply.status == 403
    reply = await api.call("POST", "/evses/1/disable", headers={"Host": "evil.example:80"})
    assert reply.status == 403
    assert (await api.call("GET", "/reservations")).json == {"reservations": []}
    assert (await evse_1(api))["enabled"] is True


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.1:8080", "127.1.2.3:1", "localhost", "LocalHost:8080",
                                  "localhost.:80", "[::1]", "[::1]:8080", "[::ffff:127.0.0.1]:8080"])
async def test_loopback_hosts_pass(api: Api, host: str) -> None:
    assert (await api.call("GET", "/status", headers={"Host": host})).status == 200


@pytest.mark.parametrize("origin", ["http://evil.example", "https://evil.example:443", "http://127.0.0.1.evil.example",
                                    "null", "file://", "ftp://localhost", "http://localhost/path", "localhost",
                                    "http://user@localhost", "http://localhost:99999"])
async def test_a_foreign_or_opaque_origin_is_403(api: Api, origin: str) -> None:
    reply = await api.call("POST", "/evses/1/disable", headers={"Origin": origin})
    assert reply.status == 403, reply.text
    assert "Origin" in reply.error_body()["error"]
    assert (await evse_1(api))["enabled"] is True
    assert (await api.call("GET", "/status", headers={"Origin": origin})).status == 403


@pytest.mark.parametrize("origin", ["http://localhost:3000", "https://127.0.0.1", "http://[::1]:8080", "http://localhost"])
async def test_a_local_origin_passes(api: Api, origin: str) -> None:
    assert (await api.call("POST", "/evses/1/disable", headers={"Origin": origin})).status == 200


async def test_the_bind_address_passes_as_host_and_origin(start: Start) -> None:
    api = await start(bind_host="charger.local")
    assert (await api.call("GET", "/status", headers={"Host": "charger.local:8080"})).status == 200
    assert (await api.call("GET", "/status", headers={"Host": "CHARGER.LOCAL"})).status == 200
    assert (await api.call("GET", "/status", headers={"Origin": "http://charger.local:8080"})).status == 200
    assert (await api.call("GET", "/status", headers={"Host": "other.local"})).status == 403
    assert (await api.call("GET", "/status", headers={"Host": "127.0.0.1"})).status == 200  # loopback too


async def test_duplicate_host_headers_are_refused(api: Api) -> None:
    def raw_request() -> bytes:
        with socket.create_connection(("127.0.0.1", api.port), timeout=5) as client:
            client.sendall(b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\n"
                           b"Connection: close\r\n\r\n")
            data = b""
            while chunk := client.recv(65536):
                data += chunk
            return data

    answer = await asyncio.to_thread(raw_request)
    assert answer.split(b" ", 2)[1] in (b"400", b"403"), answer[:200]
    assert b"evses" not in answer


async def test_an_http_1_0_request_without_host_passes(api: Api) -> None:
    """Not a browser (every browser sends Host): a plain local tool may omit it."""

    def raw_request() -> bytes:
        with socket.create_connection(("127.0.0.1", api.port), timeout=5) as client:
            client.sendall(b"GET /status HTTP/1.0\r\n\r\n")
            data = b""
            while chunk := client.recv(65536):
                data += chunk
            return data

    assert (await asyncio.to_thread(raw_request)).startswith(b"HTTP/1.1 200")


async def test_with_an_access_token_the_token_decides_not_the_host(start: Start) -> None:
    api = await start(access_token=TOKEN)
    assert (await api.call("GET", "/status", headers={"Host": "charger.example"})).status == 200
    assert (await api.call("GET", "/status", headers={"Host": "charger.example", "Authorization": ""})).status == 401


def test_allowed_host() -> None:
    assert allowed_host("LOCALHOST") and allowed_host("127.9.9.9") and allowed_host("[::1]") and allowed_host("::1")
    assert not allowed_host("") and not allowed_host("example.com") and not allowed_host("10.0.0.1")
    assert allowed_host("10.0.0.1", "10.0.0.1") and allowed_host("[fe80::1]", "fe80::1")
    assert not allowed_host("10.0.0.2", "10.0.0.1")



async def test_the_clients_of_this_project_send_the_json_content_type_on_bodyless_posts(api: Api) -> None:
    """The HIL harness's DUT client and the e2e helper must keep working against the stricter API."""
    from e2e.sim_charger import http

    from hil.dut_api import DutApi

    assert await DutApi(api.url).request("POST", "/evses/1/disable") == {"evse_id": 1, "enabled": False}
    assert (await http(api.port, "POST", "/evses/1/enable")).json == {"evse_id": 1, "enabled": True}
