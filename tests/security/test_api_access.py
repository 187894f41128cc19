"""The API off loopback: the real daemon refuses every request without the access token, and will not
start on a non-loopback address without one.

The daemon is ``python -m controller.cli run --config FILE --api 0.0.0.0:PORT`` with a copy of the
embedded simulated charger whose ``[api]`` has a token. It is reached over 127.0.0.1 and over a
non-loopback address of this machine (that part is skipped when the machine has none).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from .daemon import Daemon, bearer, call, free_port, new_token, non_loopback_ipv4, run_to_exit, write_config

RESERVATION = {"reservation_id": 41, "id_token": "SEC-CARD-0001", "expiry_time": "2030-01-01T00:00:00Z",
               "evse_id": 1}
BODIES: dict[str, Any] = {
    "/reservations": RESERVATION,
    "/reservations/check": {"id_token": "SEC-CARD-0001"},
    "/evses/{evse_id}/token": {"id_token": "SEC-CARD-0001"},
    "/sim/faults": {"evse_id": 1, "kind": "weld"},
}
NOT_IN_SCHEMA = [("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/redoc"), ("GET", "/nowhere"),
                 ("OPTIONS", "/status"), ("HEAD", "/status"), ("PUT", "/reservations")]


class Deployed:
    """The running daemon, its access token and its API operations (method, template path)."""

    def __init__(self, daemon: Daemon, token: str, operations: list[tuple[str, str]]) -> None:
        self.daemon = daemon
        self.token = token
        self.operations = operations


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    """The daemon on 0.0.0.0 with an access token (from its config file)."""
    directory = tmp_path_factory.mktemp("secured")
    token = new_token("ACCESS")
    port = free_port()
    config = write_config(directory, bind=f"0.0.0.0:{port}", access_token=token)
    daemon = Daemon(["run", "--config", str(config), "--api", f"0.0.0.0:{port}",
                     "--state-dir", str(directory / "state")], directory).start()
    try:
        schema = call(f"http://127.0.0.1:{port}", "GET", "/openapi.json", authorization=bearer(token))
        assert schema.status_code == 200, schema.text
        operations = [(method.upper(), path) for path, item in schema.json()["paths"].items() for method in item]
        yield Deployed(daemon, token, operations)
    finally:
        assert daemon.stop() == 0, daemon.logs()[-3000:]


@pytest.fixture(params=["loopback", "non-loopback"])
def base_url(request: pytest.FixtureRequest, deployed: Deployed) -> str:
    """The API as a client on 127.0.0.1, then as one reaching this machine's non-loopback address."""
    if request.param == "loopback":
        return f"http://127.0.0.1:{deployed.daemon.port}"
    address = non_loopback_ipv4()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    url = f"http://{address}:{deployed.daemon.port}"
    try:
        requests.get(f"{url}/status", timeout=5)
    except requests.ConnectionError as exc:
        pytest.skip(f"{address} is not reachable from this machine: {exc}")
    return url


def concrete(path: str) -> str:
    """A template path with its parameters filled in (EVSE 1, reservation 41)."""
    return path.replace("{evse_id}", "1").replace("{reservation_id}", "41")


def status(base_url: str, token: str) -> dict[str, Any]:
    """``GET /status`` with the token."""
    reply = call(base_url, "GET", "/status", authorization=bearer(token))
    assert reply.status_code == 200, reply.text
    document: dict[str, Any] = reply.json()
    return document


def event_stream_head(base_url: str, authorization: str | None) -> tuple[int, dict[str, str], bytes]:
    """Open ``GET /events``: status, headers and the first bytes (the stream itself never ends)."""
    headers = {} if authorization is None else {"Authorization": authorization}
    with requests.get(f"{base_url}/events", headers=headers, stream=True, timeout=10) as reply:
        first = reply.raw.read(len(b": connected\n\n")) if reply.status_code == 200 else reply.content
        return reply.status_code, dict(reply.headers), first


def wrong_credentials(token: str) -> list[str | None]:
    """Authorization headers that must all be refused (None: no header at all)."""
    return [None, "", "Bearer", "Bearer ", "Bearer wrong-token-0123456789", bearer(token[:-1]), bearer(token + "x"),
            bearer(token.lower()), f"Basic {token}", token, f"Token {token}", f"Bearer {token[: len(token) // 2]}"]


def test_without_the_right_token_every_request_is_refused_and_changes_nothing(base_url: str,
                                                                              deployed: Deployed) -> None:
    before = status(base_url, deployed.token)
    requests_made = 0
    for authorization in wrong_credentials(deployed.token):
        for method, path in [*deployed.operations, *NOT_IN_SCHEMA]:
            if (method, path) == ("GET", "/events"):
                code, headers, body = event_stream_head(base_url, authorization)
            else:
                reply = call(base_url, method, concrete(path), authorization=authorization, json=BODIES.get(path))
                code, headers, body = reply.status_code, dict(reply.headers), reply.content
            requests_made += 1
            where = f"{method} {path} with Authorization {authorization!r}"
            assert code == 401, f"{where}: {code} {body[:200]!r}"
            assert headers.get("www-authenticate", "").startswith("Bearer realm="), where
            if method != "HEAD":
                error = json.loads(body)
                assert error["field"] is None and "access token" in error["error"], where
            assert deployed.token.encode() not in body, where
    assert requests_made >= 12 * len(deployed.operations)
    after = status(base_url, deployed.token)
    assert after["reservations"] == before["reservations"] == []
    for evse in after["evses"]:  # nothing was reserved, disabled, plugged, faulted or authorized
        assert (evse["enabled"], evse["plugged_in"], evse["phase"], evse["faults"]) == (True, False, "idle", []), evse


def test_with_the_token_the_api_works(base_url: str, deployed: Deployed) -> None:
    auth = bearer(deployed.token)
    assert call(base_url, "GET", "/openapi.json", authorization=auth).status_code == 200
    code, headers, first = event_stream_head(base_url, auth)
    assert (code, first) == (200, b": connected\n\n")
    assert headers["content-type"].startswith("text/event-stream")
    assert call(base_url, "GET", "/status", authorization=f"bearer {deployed.token}").status_code == 200
    reserve = call(base_url, "POST", "/reservations", authorization=auth, json=RESERVATION)
    assert reserve.json() == {"result": "Accepted"}, reserve.text
    check = call(base_url, "POST", "/reservations/check", authorization=auth,
                 json={"id_token": "SEC-CARD-0001", "evse_id": 1})
    assert check.json() == {"status": "ReservedForToken"}, check.text
    assert call(base_url, "DELETE", "/reservations/41", authorization=auth).json() == {"cancelled": True}
    assert call(base_url, "POST", "/evses/2/disable", authorization=auth).json() == {"evse_id": 2, "enabled": False}
    assert call(base_url, "POST", "/evses/2/enable", authorization=auth).json() == {"evse_id": 2, "enabled": True}
    assert call(base_url, "GET", "/nowhere", authorization=auth).status_code == 404


REFUSED_STARTS = {  # how -> (bind in the file, --api override or None); "{address}" is this machine's address
    "file bind 0.0.0.0, no token": ("0.0.0.0:{port}", None),
    "file bind on this machine's address, no token": ("{address}:{port}", None),
    "--sim --api 0.0.0.0": (None, "0.0.0.0:{port}"),
    "loopback file, --api 0.0.0.0": ("127.0.0.1:{port}", "0.0.0.0:{port}"),
    "loopback file, --api [::]": ("127.0.0.1:{port}", "[::]:{port}"),
}


@pytest.mark.parametrize("how", sorted(REFUSED_STARTS))
def test_the_daemon_refuses_to_start_off_loopback_without_a_token(how: str, tmp_path: Path) -> None:
    port = free_port()
    values = {"port": port, "address": non_loopback_ipv4() or "192.0.2.2"}
    bind, api = (None if text is None else text.format(**values) for text in REFUSED_STARTS[how])
    source = ["--sim"] if bind is None else ["--config", str(write_config(tmp_path, bind=bind, access_token=""))]
    override = [] if api is None else ["--api", api]
    code, output = run_to_exit(["run", *source, *override, "--state-dir", str(tmp_path / "state")], tmp_path)
    assert code != 0, output
    assert "access token" in output.lower() or "access_token" in output, output
    assert (api or bind or "").rsplit(":", 1)[0].strip("[]") in output, output  # names the address
    assert "ready: API on" not in output, output
    with pytest.raises(requests.ConnectionError):  # and nothing is served on that port
        requests.get(f"http://127.0.0.1:{port}/status", timeout=5)
