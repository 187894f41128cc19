"""The real daemon without an access token, against what a web page can make a local browser send.

``run --sim --api 127.0.0.2:PORT`` (loopback, so no token is needed). A page can POST a form or
text/plain to it, and by DNS rebinding can have the browser send anything with the page's own host name
in ``Host`` and its own ``Origin``. Every such request is refused (415 or 403) and changes nothing; the
same requests from a local program (loopback Host, the bind address, JSON) work.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from .daemon import Daemon, call, free_port

BIND = "127.0.0.2"  # a loopback address that is not 127.0.0.1, so "the bind address" is its own case
RESERVATION = {"reservation_id": 7, "id_token": "WEB-CARD-0001", "expiry_time": "2030-01-01T00:00:00Z", "evse_id": 1}
BODIES: dict[str, Any] = {
    "/reservations": RESERVATION,
    "/reservations/check": {"id_token": "WEB-CARD-0001"},
    "/evses/{evse_id}/token": {"id_token": "WEB-CARD-0001"},
    "/sim/faults": {"evse_id": 1, "kind": "weld"},
}
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """``run --sim`` on the loopback address 127.0.0.2 without a token, for the whole module."""
    directory: Path = tmp_path_factory.mktemp("browser")
    port = free_port(BIND)
    running = Daemon(["run", "--sim", "--api", f"{BIND}:{port}", "--state-dir", str(directory / "state")],
                     directory).start()
    try:
        yield running
    finally:
        assert running.stop() == 0, running.logs()[-3000:]


def untouched(url: str) -> None:
    """Nothing reserved, disabled, plugged, faulted or authorized."""
    reply = call(url, "GET", "/status")
    assert reply.status_code == 200, reply.text
    assert reply.json()["reservations"] == []
    for evse in reply.json()["evses"]:
        assert (evse["enabled"], evse["plugged_in"], evse["phase"], evse["faults"]) == (True, False, "idle", []), evse


def test_a_form_post_to_disable_is_refused_and_the_evse_stays_enabled(daemon: Daemon) -> None:
    reply = call(daemon.url, "POST", "/evses/1/disable", data=b"confirm=yes",
                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert reply.status_code == 415
    assert reply.json()["field"] is None and "application/x-www-form-urlencoded" in reply.json()["error"]
    plain = call(daemon.url, "POST", "/evses/1/disable", data=b"", headers={"Content-Type": "text/plain"})
    assert plain.status_code == 415
    untouched(daemon.url)


def test_every_operation_for_a_rebound_host_is_403_and_reveals_nothing(daemon: Daemon) -> None:
    schema = call(daemon.url, "GET", "/openapi.json").json()
    operations = [(method.upper(), path) for path, item in schema["paths"].items() for method in item]
    assert len(operations) >= 13
    for headers in ({"Host": f"evil.example:{daemon.port}"}, {"Origin": "http://evil.example"},
                    {"Origin": "null"}):
        for method, path in [*operations, ("GET", "/openapi.json")]:
            concrete = path.replace("{evse_id}", "1").replace("{reservation_id}", "7")
            sent = {**headers, **JSON} if method == "POST" else headers
            if path == "/events":
                with requests.get(f"{daemon.url}{concrete}", headers=sent, stream=True, timeout=10) as stream:
                    code, body = stream.status_code, stream.raw.read(2000)
            else:
                reply = call(daemon.url, method, concrete, json=BODIES.get(path), headers=sent)
                code, body = reply.status_code, reply.content
            where = f"{method} {concrete} with {headers}"
            assert code == 403, f"{where}: {code} {body[:200]!r}"
            assert b'"field":null' in body and (b"Host" in body or b"Origin" in body), where
            assert b"evses" not in body and b"WEB-CARD" not in body and b"openapi" not in body, where
    untouched(daemon.url)


def test_local_programs_are_served_by_loopback_name_and_bind_address(daemon: Daemon) -> None:
    for host in (f"{BIND}:{daemon.port}", "localhost", f"127.0.0.1:{daemon.port}", "[::1]"):
        assert call(daemon.url, "GET", "/status", headers={"Host": host}).status_code == 200, host
    local_origin = {"Origin": f"http://{BIND}:{daemon.port}", **JSON}
    assert call(daemon.url, "POST", "/evses/2/disable", headers=local_origin).json() == {"evse_id": 2,
                                                                                          "enabled": False}
    assert call(daemon.url, "POST", "/evses/2/enable", headers=JSON).json() == {"evse_id": 2, "enabled": True}
    untouched(daemon.url)
