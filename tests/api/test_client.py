"""The CLI client commands against a real served API."""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
from datetime import UTC, datetime

import pytest
from core_helpers import FakeClock

from controller.api.client import add_client_commands, format_status, run_client

from .conftest import TOKEN, Start
from .fake_charger import FakeCharger
from .http_helpers import Api


async def client(api: Api, *argv: str) -> int:
    """Run one client command line against ``api`` in a worker thread (the server runs in this loop)."""
    return await asyncio.to_thread(run_client, [argv[0], "--api", f"127.0.0.1:{api.port}", *argv[1:]])


async def test_status_human_and_json(start: Start, capsys: pytest.CaptureFixture[str]) -> None:
    api = await start(FakeCharger(clock=FakeClock(datetime.now(UTC))))  # --expires-in counts from the real now
    assert await client(api, "reserve", "--id", "5", "--token", "DRIVER-TOKEN-1", "--expires-in", "30",
                        "--evse", "2", "--connector-type", "cType2") == 0  # fmt: skip
    capsys.readouterr()
    assert await client(api, "status") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["EVSE", "STATE", "PLUGGED", "RESERVED", "LED", "STATUS", "LED", "LOCK", "CONTACTOR",
                                "FAULTS"]  # fmt: skip
    assert lines[1].split() == ["1", "Available", "no", "off", "green", "steady", "unlocked", "open", "-"]
    assert lines[2].split() == ["2", "Available", "no", "on", "amber", "steady", "locked", "open", "-"]
    assert lines[4] == "reservations:"
    assert lines[6].split()[:4] == ["5", "...-1", "2", "cType2"]  # tokens shortened as in the logs
    assert "DRIVER-TOKEN-1" not in "\n".join(lines)

    assert await client(api, "status", "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["reservations"][0]["id_token"] == "DRIVER-TOKEN-1"
    assert [e["id"] for e in doc["evses"]] == [1, 2]


async def test_reserve_cancel_and_exit_codes(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["reserve", "--id", "1", "--token", "CARD-1", "--expiry", "2026-11-21T13:00:00Z", "--parent", "FLEET"]
    assert await client(api, *argv) == 0
    assert capsys.readouterr().out == "reservation 1: Accepted\n"
    assert api.charger.reservations()[0].parent_id_token == "FLEET"
    past = ["reserve", "--id", "2", "--token", "CARD-2", "--expiry", "2000-01-01T00:00:00Z", "--json"]
    assert await client(api, *past) == 3
    assert json.loads(capsys.readouterr().out) == {"result": "Rejected"}
    assert await client(api, "cancel", "1") == 0
    assert capsys.readouterr().out == "reservation 1: cancelled\n"
    assert await client(api, "cancel", "1") == 3
    assert capsys.readouterr().out == "reservation 1: no such reservation\n"


async def test_present_token_check_and_evse_commands(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    await client(api, "reserve", "--id", "1", "--token", "CARD-1", "--expiry", "2026-11-21T13:00:00Z", "--evse", "1")
    assert await client(api, "check", "--token", "CARD-1", "--evse", "1") == 0
    assert await client(api, "present-token", "1", "CARD-2") == 3
    assert await client(api, "present-token", "1", "CARD-1") == 0
    assert await client(api, "disable", "2") == 0
    assert await client(api, "enable", "2") == 0
    assert await client(api, "plug", "1") == 0
    assert await client(api, "unplug", "1") == 0
    assert await client(api, "fault", "2", "weld") == 0
    assert await client(api, "fault", "2", "lock_jam") == 0
    assert await client(api, "reset", "2") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1:] == [
        "ReservedForToken",
        "EVSE 1: refused_reserved_for_other (reserved for another token)",
        "EVSE 1: reservation_used (reserved for this token)",
        "EVSE 2: disabled",
        "EVSE 2: enabled",
        "EVSE 1: plugged in",
        "EVSE 1: unplugged",
        "EVSE 2: fault weld injected",
        "EVSE 2: fault lock_jam injected",
        "EVSE 2: faults reset; still active: lock_jam",
    ]


async def test_server_errors_are_printed_with_exit_1(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    assert await client(api, "present-token", "9", "CARD-1") == 1
    assert capsys.readouterr().err == "charger-controller: error 404: evse_id: unknown evse 9 (known: 1, 2)\n"
    assert await client(api, "reserve", "--id", "1", "--token", "C", "--expiry", "soon") == 1
    assert "error 422: expiry_time: 'soon' is not an RFC3339 date-time" in capsys.readouterr().err


async def test_access_token_from_option_or_environment(
    start: Start, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    api = await start(access_token=TOKEN)
    monkeypatch.delenv("CHARGER_API_TOKEN", raising=False)
    assert await client(api, "status") == 1
    assert "error 401: missing or wrong access token" in capsys.readouterr().err
    assert await client(api, "status", "--access-token", TOKEN) == 0
    monkeypatch.setenv("CHARGER_API_TOKEN", TOKEN)
    assert await client(api, "status", "--json") == 0


def test_connection_refused_is_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert run_client(["status", "--api", f"127.0.0.1:{port}"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    url = f"http://127.0.0.1:{port}"
    expected = f"no controller answering at {url} — is `charger-controller run` running?"
    assert captured.err == f"charger-controller: {expected}\n"


def test_subcommands_register_on_a_parser_with_defaults() -> None:
    parser = argparse.ArgumentParser()
    add_client_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["present-token", "2", "CARD"])
    assert (args.api, args.access_token, args.json, args.evse, args.token) == ("127.0.0.1:8080", None, False, 2, "CARD")
    assert callable(args.func)
    with pytest.raises(SystemExit):
        parser.parse_args(["reserve", "--id", "1", "--token", "T"])  # an expiry is required
    with pytest.raises(SystemExit):
        parser.parse_args(["fault", "1", "fire"])


def test_format_status_without_reservations() -> None:
    assert format_status({"evses": [], "reservations": []}).endswith("\nno reservations")


def test_format_status_names_a_store_fault() -> None:
    doc = {"evses": [], "reservations": [],
           "store": {"ok": False, "error": "database or disk is full", "unsynced_ends": 2}}
    text = format_status(doc)
    assert text.endswith(
        "STORE FAULT: reservations cannot be changed until the store can write (database or disk is full); "
        "2 ended reservation(s) still to be written"
    )
    healthy = {**doc, "store": {"ok": True, "error": None, "unsynced_ends": 0}}
    assert "STORE FAULT" not in format_status(healthy)
