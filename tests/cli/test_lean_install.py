"""The daemon's install is lean: matplotlib is only in the ``hil`` extra, ``check-config`` and the client
commands load no web stack, and ``charger-hil`` without matplotlib says how to install it in one line."""

from __future__ import annotations

import json
import re
import shlex
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from security.daemon import free_port

from hil.cli import PLOT_REQUIREMENT

from .cli_helpers import REPO, python

WEB_STACK = ("fastapi", "starlette", "uvicorn")
PLOTTING = ("matplotlib", "numpy", "PIL", "fontTools", "kiwisolver", "contourpy")
PI_EXAMPLE = REPO / "examples" / "pi-2evse.toml"

# runs one charger-controller command line in a fresh interpreter, then reports which top-level modules it loaded
LOADED_BY = """
import json, sys
from controller.cli import main
try:
    status = main(sys.argv[1:])
except SystemExit as exit_:
    status = exit_.code
print(json.dumps({"status": status, "modules": sorted({name.partition(".")[0] for name in sys.modules})}))
"""


def _pyproject() -> dict[str, Any]:
    document: dict[str, Any] = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    return document


def _name(requirement: str) -> str:
    """The distribution name of a requirement string, lower case."""
    match = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert match is not None, requirement
    return match.group(0).lower()


def _loaded_by(*argv: str) -> tuple[object, set[str]]:
    """(exit status, top-level modules imported) of ``charger-controller argv...`` in a fresh interpreter."""
    done = python(LOADED_BY, *argv)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    return report["status"], set(report["modules"])


def test_the_daemon_dependencies_hold_no_plotting_and_the_hil_extra_does() -> None:
    project = _pyproject()["project"]
    assert not {_name(r) for r in project["dependencies"]} & {m.lower() for m in PLOTTING}
    extras = project["optional-dependencies"]
    assert PLOT_REQUIREMENT in extras["hil"]  # what charger-hil tells a user to install
    assert "charger-controller[hil]" in extras["test"]  # the tests draw the HIL report's plots


def test_the_license_is_an_spdx_expression_setuptools_can_build() -> None:
    document = _pyproject()
    assert document["project"]["license"] == "Apache-2.0"
    setuptools = next(r for r in document["build-system"]["requires"] if _name(r) == "setuptools")
    floor = re.search(r">=\s*(\d+)", setuptools)
    assert floor is not None and int(floor.group(1)) >= 77, setuptools  # 77: the first with PEP 639 license strings


@pytest.mark.parametrize("argv", [["check-config", str(PI_EXAMPLE)], ["--help"], ["--version"], ["demo"],
                                  ["status", "--api"]], ids=lambda argv: argv[0])
def test_commands_that_serve_nothing_load_neither_the_web_stack_nor_plotting(argv: list[str]) -> None:
    if argv[-1] == "--api":
        argv = [*argv, f"127.0.0.1:{free_port('127.0.0.1')}"]  # nobody there: "no controller answering", status 1
    status, modules = _loaded_by(*argv)
    assert status == (1 if argv[0] == "status" else 0)
    assert not modules & {*WEB_STACK, *PLOTTING}, sorted(modules & {*WEB_STACK, *PLOTTING})


def test_the_daemon_loads_the_web_stack_but_no_plotting() -> None:
    done = python("import sys, controller.daemon; print(' '.join(sorted({n.partition('.')[0] for n in sys.modules})))")
    assert done.returncode == 0, done.stderr
    modules = set(done.stdout.split())
    assert {"fastapi", "uvicorn"} <= modules  # the probe itself sees what it looks for
    assert not modules & set(PLOTTING), sorted(modules & set(PLOTTING))


WITHOUT_MATPLOTLIB = """
import sys
sys.modules["matplotlib"] = None  # as if the hil extra were not installed: importing it fails
from hil.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_charger_hil_run_without_matplotlib_says_how_to_install_it(tmp_path: Path) -> None:
    done = python(WITHOUT_MATPLOTLIB, "run", "--bench", "sim", "--out", str(tmp_path), "reservations.specific")
    assert done.returncode == 2
    assert done.stdout == ""  # stopped before the first scenario
    (line,) = done.stderr.splitlines()
    assert line.startswith("charger-hil: ") and "matplotlib" in line, line
    assert f"{shlex.quote(sys.executable)} -m pip install '{PLOT_REQUIREMENT}'" in line, line
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "junit.xml").exists()


def test_charger_hil_list_works_without_matplotlib() -> None:
    done = python(WITHOUT_MATPLOTLIB, "list")
    assert done.returncode == 0, done.stderr
    assert "reservations.specific" in done.stdout and done.stderr == ""
