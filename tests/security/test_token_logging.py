"""No full token in the daemon's logs, even at DEBUG: RFID/id tokens and the API access token.

The real daemon runs as a subprocess at ``--log-level DEBUG`` (uvicorn's access log on) with an access
token; tokens are presented, reserved (with parent tokens), checked, used and sent in malformed
requests, and afterwards its stdout and stderr must not contain any of them in full, in any letter
case. The redacted form (``drivers.redact.redact_token``, e.g. "TO...-A") is expected and checked for,
so the test notices when the token lines stop being logged at all.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from drivers.redact import redact_token

from .daemon import Daemon, bearer, call, free_port, new_token, write_config

EXPIRY = "2030-01-01T00:00:00Z"


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[Daemon, str]]:
    """A fresh daemon at DEBUG with an access token; stopped (SIGTERM) by the test to read its full logs."""
    token = new_token("ACCESS")
    port = free_port("127.0.0.1")
    config = write_config(tmp_path, bind=f"127.0.0.1:{port}", access_token=token)
    running = Daemon(["run", "--config", str(config), "--state-dir", str(tmp_path / "state"),
                      "--log-level", "DEBUG"], tmp_path).start()
    try:
        yield running, token
    finally:
        running.stop()


def assert_no_full_token(logs: str, tokens: dict[str, str]) -> None:
    """None of ``tokens`` appears in ``logs``, in any letter case."""
    folded = logs.casefold()
    leaked = {name: token for name, token in tokens.items() if token.casefold() in folded}
    lines = [line for line in logs.splitlines() if any(t.casefold() in line.casefold() for t in leaked.values())]
    assert not leaked, f"full tokens in the logs: {sorted(leaked)}:\n" + "\n".join(lines[:10])


def test_tokens_and_the_access_token_never_appear_in_full_in_debug_logs(daemon: tuple[Daemon, str]) -> None:
    running, access = daemon
    url, auth = running.url, bearer(access)
    t = {name: new_token(name) for name in ("PRESENTED", "RESERVED", "PARENT", "GLOBAL", "GROUP", "OTHER",
                                              "BADEXPIRY", "LONG", "KEY", "BROKEN", "CTYPE", "HUGE", "WRONGBEARER",
                                              "LASTEVENT", "TYPE")}

    def post(path: str, body: object) -> requests.Response:
        reply: requests.Response = call(url, "POST", path, authorization=auth, json=body)
        return reply

    # a session started and stopped with a presented token
    assert post("/evses/1/token", {"id_token": t["PRESENTED"]}).json()["may_charge"] is True
    assert post("/sim/evses/1/plug", None).status_code == 200
    assert post("/evses/1/token", {"id_token": t["PRESENTED"].lower()}).status_code == 200
    # reservations with parent tokens, checks, a refused and a used presentation, a cancel
    reserved = {"reservation_id": 1, "id_token": t["RESERVED"], "parent_id_token": t["PARENT"], "evse_id": 2,
                "expiry_time": EXPIRY}
    assert post("/reservations", reserved).json() == {"result": "Accepted"}
    post("/reservations", {"reservation_id": 2, "id_token": t["GLOBAL"], "parent_id_token": t["PARENT"],
                           "expiry_time": EXPIRY})
    check = {"id_token": t["OTHER"], "evse_id": 2, "group_id_token": t["PARENT"]}
    assert post("/reservations/check", check).status_code == 200
    assert post("/reservations/check", {"id_token": t["GROUP"], "group_id_token": t["GROUP"]}).status_code == 200
    assert call(url, "GET", "/reservations", authorization=auth).status_code == 200
    assert post("/evses/2/token", {"id_token": t["OTHER"]}).json()["may_charge"] is False
    assert post("/evses/2/token", {"id_token": t["RESERVED"]}).json()["verdict"] == "reservation_used"
    assert call(url, "DELETE", "/reservations/2", authorization=auth).status_code == 200
    # malformed requests carrying tokens
    bad = {**reserved, "reservation_id": 3, "id_token": t["BADEXPIRY"], "expiry_time": "soon"}
    assert post("/reservations", bad).status_code == 422
    assert post("/evses/1/token", {"id_token": t["LONG"] * 20}).status_code == 422
    assert post("/reservations/check", {t["KEY"]: t["KEY"], "id_token": t["KEY"]}).status_code == 422
    assert post("/reservations", {"reservation_id": t["TYPE"], "id_token": t["TYPE"]}).status_code == 422
    broken = call(url, "POST", "/evses/1/token", authorization=auth, data=f'{{"id_token": "{t["BROKEN"]}"'.encode(),
                  headers={"Content-Type": "application/json"})
    assert broken.status_code == 400
    ctype = call(url, "POST", "/evses/1/token", authorization=auth, data=json.dumps({"id_token": t["CTYPE"]}).encode(),
                 headers={"Content-Type": "text/plain"})
    assert ctype.status_code == 415
    huge = json.dumps({"id_token": t["HUGE"], "pad": "x" * 70_000}).encode()
    assert call(url, "POST", "/evses/1/token", authorization=auth, data=huge,
                headers={"Content-Type": "application/json"}).status_code == 413
    assert call(url, "GET", "/status", authorization=bearer(t["WRONGBEARER"])).status_code == 401
    assert call(url, "GET", "/status", authorization=bearer(access + "x")).status_code == 401
    assert call(url, "GET", "/status", authorization=f"Basic {access}").status_code == 401
    with requests.get(f"{url}/events", headers={"Authorization": auth, "Last-Event-ID": t["LASTEVENT"]},
                      stream=True, timeout=10) as reply:
        assert reply.status_code == 422

    assert running.stop() == 0
    logs = running.logs()
    assert " DEBUG " in logs and "uvicorn.access" in logs, "the daemon did not log at DEBUG"
    for name in ("PRESENTED", "RESERVED", "OTHER"):  # the token lines are there, redacted
        assert redact_token(t[name]) in logs, name
    assert_no_full_token(logs, {**t, "ACCESS": access})

