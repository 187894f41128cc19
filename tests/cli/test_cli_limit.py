"""``charger-controller limit EVSE AMPS`` against a real ``run --sim``: one line per change, exit statuses as the
other client commands (0 done, 1 refused or unreachable, 2 a command line argparse refuses)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import requests
from security.daemon import free_port

from .cli_helpers import GUARD_S, REPO, environment


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``charger-controller args...``: exit status, stdout and stderr."""
    return subprocess.run([sys.executable, "-m", "controller.cli", *args], cwd=REPO, env=environment(),
                          capture_output=True, text=True, timeout=GUARD_S, stdin=subprocess.DEVNULL, check=False)


def local_limit(api: str, evse_id: int) -> float | None:
    """The EVSE's local limit as ``GET /status`` shows it."""
    doc = requests.get(f"http://{api}/status", timeout=10).json()
    limit: float | None = next(e for e in doc["evses"] if e["id"] == evse_id)["current_limit_a"]
    return limit


@pytest.mark.parametrize(("amps", "line", "limit"), [
    ("10", "EVSE 2: limit 10 A", 10.0),
    ("12.5", "EVSE 2: limit 12.5 A", 12.5),
    ("0", "EVSE 2: limit 0 A (charging paused)", 0.0),
    ("none", "EVSE 2: limit removed", None),
    ("16", "EVSE 2: limit 16 A", 16.0),
    ("NULL", "EVSE 2: limit removed", None),
])
def test_limit_sets_and_removes_the_local_limit(sim_api: str, amps: str, line: str, limit: float | None) -> None:
    done = cli("limit", "2", amps, "--api", sim_api)
    assert (done.returncode, done.stdout, done.stderr) == (0, line + "\n", "")
    assert local_limit(sim_api, 2) == limit


def test_limit_json_prints_the_answer(sim_api: str) -> None:
    done = cli("limit", "1", "20", "--json", "--api", sim_api)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert (doc["evse_id"], doc["current_limit_a"], doc["evse"]["id"], doc["evse"]["current_limit_a"]) == \
        (1, 20.0, 1, 20.0)
    assert cli("limit", "1", "none", "--api", sim_api).returncode == 0


@pytest.mark.parametrize(("args", "error"), [
    (["1", "5"], "error 422: amps: current limit must be 0 (pause) or 6 to 80 A, got 5"),
    (["1", "81"], "error 422: amps: current limit must be 0 (pause) or 6 to 80 A, got 81"),
    (["9", "10"], "error 404: evse_id: unknown evse 9 (known: 1, 2)"),
])
def test_a_refused_limit_exits_1_with_the_controllers_reason(sim_api: str, args: list[str], error: str) -> None:
    before = local_limit(sim_api, 1)
    done = cli("limit", *args, "--api", sim_api)
    assert (done.returncode, done.stdout, done.stderr) == (1, "", f"charger-controller: {error}\n")
    assert local_limit(sim_api, 1) == before  # nothing changed


@pytest.mark.parametrize("amps", ["ten", "inf", "nan", "16A"])
def test_amps_that_are_no_number_are_a_usage_error(amps: str) -> None:
    done = cli("limit", "1", amps, "--api", "127.0.0.1:9")  # never sent: argparse refuses it first
    assert done.returncode == 2 and done.stdout == ""
    assert "argument AMPS: expected a" in done.stderr and json.dumps(amps) in done.stderr, done.stderr


def test_no_controller_is_exit_1() -> None:
    api = f"127.0.0.1:{free_port('127.0.0.1')}"
    done = cli("limit", "1", "10", "--api", api)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith(f"charger-controller: no controller answering at http://{api}"), done.stderr
