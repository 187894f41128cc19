"""A reader that stops early (``charger-controller status | head -1``) ends the command quietly: no traceback,
no "Exception ignored" line, exit status 1 (the Python documentation's advice for SIGPIPE)."""

from __future__ import annotations

import pytest

from .cli_helpers import into_closed_pipe, through_head

QUIET_EXIT = 1


@pytest.fixture(params=[False, True], ids=["buffered", "unbuffered"])
def unbuffered(request: pytest.FixtureRequest) -> bool:
    """Whether PYTHONUNBUFFERED is set: each print meets the closed pipe, or the flush at the end does."""
    flag: bool = request.param
    return flag


def _assert_quiet(stderr: str) -> None:
    """The command wrote nothing to stderr."""
    assert stderr == "", stderr  # no traceback, no "Exception ignored ... BrokenPipeError", nothing at all


@pytest.mark.parametrize("args", [["demo"], ["--version"], ["check-config", "examples/pi-2evse.toml"]], ids=" ".join)
def test_a_closed_pipe_ends_a_local_command_quietly(args: list[str], unbuffered: bool) -> None:
    code, stderr = into_closed_pipe(*args, unbuffered=unbuffered)
    _assert_quiet(stderr)
    assert code == QUIET_EXIT


@pytest.mark.parametrize("args", [["--help"], ["status", "--help"]], ids=" ".join)
def test_a_closed_pipe_ends_help_quietly(args: list[str], unbuffered: bool) -> None:
    code, stderr = into_closed_pipe(*args, unbuffered=unbuffered)
    _assert_quiet(stderr)
    assert code == (0 if unbuffered else QUIET_EXIT)  # unbuffered, argparse's own write ignores the error


@pytest.mark.parametrize("args", [["status"], ["status", "--json"], ["reserve", "--id", "7", "--token", "PIPE-CARD",
                                                                     "--expires-in", "5"]], ids=" ".join)
def test_a_closed_pipe_ends_a_client_command_quietly(sim_api: str, args: list[str], unbuffered: bool) -> None:
    code, stderr = into_closed_pipe(*args, "--api", sim_api, unbuffered=unbuffered)
    _assert_quiet(stderr)
    assert code == QUIET_EXIT


def test_status_through_head_prints_its_first_line_only(sim_api: str) -> None:
    code, out, stderr = through_head("status", "--api", sim_api)
    assert out.split() == ["EVSE", "STATE", "PLUGGED", "RESERVED", "LED", "STATUS", "LED", "LOCK", "CONTACTOR",
                           "FAULTS"]
    _assert_quiet(stderr)
    assert code in (0, QUIET_EXIT)  # 0 when all of it fitted into the pipe before head left


@pytest.mark.parametrize(("args", "first"), [(["demo"], "Site: EVSE 1 Type 2 | EVSE 2 Type 2 + CCS | EVSE 3 CCS"),
                                             (["--help"], "usage: charger-controller [-h] [--version] COMMAND ...")],
                         ids=["demo", "--help"])
def test_local_commands_through_head(args: list[str], first: str) -> None:
    code, out, stderr = through_head(*args)
    assert out == first + "\n"
    _assert_quiet(stderr)
    assert code in (0, QUIET_EXIT)
