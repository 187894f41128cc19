"""``run --sim --api-token-file FILE``: the simulated charger off loopback, guarded by a token from a file.

Without a token the daemon refuses a non-loopback bind and its message points at ``--api-token-file``; with
one it serves, refusing requests without the token (401) and answering those with it (200), and the token
appears nowhere in its output. A bad token file stops it with one line naming the file.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from .daemon import Daemon, bearer, call, free_port, new_token, run_to_exit


def test_without_a_token_the_refusal_suggests_the_token_file(tmp_path: Path) -> None:
    port = free_port()
    code, output = run_to_exit(["run", "--sim", "--api", f"0.0.0.0:{port}", "--state-dir", str(tmp_path / "state")],
                               tmp_path)
    assert code == 1, output
    assert "--api-token-file" in output and "0.0.0.0" in output, output
    assert "Traceback" not in output and "ready: API on" not in output, output


def test_with_a_token_file_it_serves_only_requests_with_the_token(tmp_path: Path) -> None:
    token = new_token("FILETOKEN")
    token_file = tmp_path / "api-token"
    token_file.write_text(f"{token}\n", encoding="utf-8")  # as `echo TOKEN > FILE` writes it
    port = free_port()
    daemon = Daemon(["run", "--sim", "--api", f"0.0.0.0:{port}", "--api-token-file", str(token_file),
                     "--state-dir", str(tmp_path / "state"), "--log-level", "DEBUG"], tmp_path).start()
    try:
        base = f"http://127.0.0.1:{port}"
        refused = call(base, "GET", "/status")
        assert refused.status_code == 401, refused.text
        assert call(base, "GET", "/status", authorization=bearer(token + "x")).status_code == 401
        answered = call(base, "GET", "/status", authorization=bearer(token))
        assert answered.status_code == 200, answered.text
        assert [evse["id"] for evse in answered.json()["evses"]] == [1, 2]
    finally:
        assert daemon.stop() == 0, daemon.logs()[-3000:]
    assert token not in daemon.logs() and token[-12:] not in daemon.logs()


def test_a_bad_token_file_stops_the_start_naming_the_file(tmp_path: Path) -> None:
    token_file = tmp_path / "api-token"
    token_file.write_text("too-short-key\n", encoding="utf-8")
    port = free_port()
    args = ["run", "--sim", "--api", f"0.0.0.0:{port}", "--state-dir", str(tmp_path / "state")]
    code, output = run_to_exit([*args, "--api-token-file", str(token_file)], tmp_path)
    assert code == 1, output
    assert output.splitlines() == [f"{token_file}: API access token: too short: 13 characters, at least 16 needed"]
    code, output = run_to_exit([*args, "--api-token-file", str(tmp_path / "missing")], tmp_path)
    assert (code, output.splitlines()) == (1, [f"{tmp_path / 'missing'}: cannot read the API token file: no such file"])
    with pytest.raises(requests.ConnectionError):  # and nothing is served on that port
        requests.get(f"http://127.0.0.1:{port}/status", timeout=5)
