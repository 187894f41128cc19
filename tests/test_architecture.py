"""The import-linter contracts hold on the tree, and each one fails when one forbidden import is added.

Each case copies controller/, drivers/, hil/ and pyproject.toml to a scratch folder, appends one import
that breaks exactly one contract, runs ``lint-imports`` there and expects that contract BROKEN. A contract
that could not fail (a typo in a module name, an ignore that covers too much) fails its case here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

# (contract id, module file to edit, the import line that breaks it)
BREAKS = [
    ("top-layers", "drivers/redact.py", "import hil.timewarp"),
    ("top-layers", "controller/daemon.py", "import hil.scenario"),
    ("pure-core", "controller/core/reservation.py", "import asyncio"),
    ("pure-core", "controller/core/site.py", "import drivers.meter"),
    ("pure-core", "controller/charging/session.py", "import controller.runtime.timers"),
    ("pure-core", "controller/charging/evse.py", "import gpiozero"),
    ("pure-core", "controller/core/types.py", "import pydantic"),
    ("pure-core", "controller/core/store.py", "import controller.mqtt.state"),
    ("core-below-charging", "controller/core/store.py", "import controller.charging.session"),
    ("fronts-use-the-port", "controller/api/app.py", "import controller.runtime.runtime"),
    ("fronts-use-the-port", "controller/api/client.py", "import drivers.gpio"),
    ("fronts-use-the-port", "controller/api/models.py", "import controller.charging.outputs"),
    ("fronts-use-the-port", "controller/mqtt/bridge.py", "import controller.runtime.runtime"),
    ("fronts-use-the-port", "controller/mqtt/commands.py", "import controller.config.model"),
    ("runtime-below-fronts", "controller/runtime/status.py", "import controller.api.events"),
    ("runtime-below-fronts", "controller/port/charger.py", "import controller.daemon"),
    ("runtime-below-fronts", "controller/runtime/runtime.py", "import controller.mqtt.topics"),
    ("fronts-use-the-port", "controller/ocpp/v201/station.py", "import controller.runtime.runtime"),
    ("fronts-use-the-port", "controller/ocpp/station/status.py", "import controller.charging.session"),
    ("runtime-below-fronts", "controller/runtime/tokens.py", "import controller.ocpp.front"),
    ("version-neutral-station", "controller/ocpp/station/transactions.py", "import ocpp.v201"),
    ("version-neutral-station", "controller/ocpp/station/queue.py", "import controller.ocpp.v201.convert"),
    ("version-neutral-station", "controller/ocpp/station/status.py", "import controller.ocpp.v16.status"),
    ("light-cli", "controller/config/ocpp.py", "import websockets"),
    ("drivers-stand-alone", "drivers/gpio/lock.py", "import controller.core.types"),
    ("lean-daemon", "controller/runtime/status.py", "import matplotlib.figure"),
    ("lean-daemon", "drivers/meter.py", "import matplotlib"),
    ("light-cli", "controller/config/loader.py", "import fastapi"),
    ("light-cli", "controller/api/client.py", "import controller.api.app"),
    ("light-cli", "controller/config/mqtt.py", "import aiomqtt"),
]


def _lint(where: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(where)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=where, env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def _contract_names() -> dict[str, str]:
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return {c["id"]: c["name"] for c in config["tool"]["importlinter"]["contracts"]}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the packages and pyproject.toml, without caches."""
    where = tmp_path_factory.mktemp("arch")
    for package in ("controller", "drivers", "hil"):
        shutil.copytree(ROOT / package, where / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", where / "pyproject.toml")
    return where


def test_every_contract_holds_on_the_tree(pristine: Path) -> None:
    done = _lint(pristine)
    assert done.returncode == 0, done.stdout + done.stderr
    names = _contract_names()
    for name in names.values():
        assert f"{name} KEPT" in " ".join(done.stdout.split()), f"contract not run: {name}\n{done.stdout}"


def test_every_contract_is_tried_below() -> None:
    assert {contract for contract, _, _ in BREAKS} == set(_contract_names())


@pytest.mark.parametrize(("contract", "module", "line"), BREAKS, ids=[f"{c}:{m}" for c, m, _ in BREAKS])
def test_a_forbidden_import_breaks_its_contract(
    pristine: Path, tmp_path: Path, contract: str, module: str, line: str
) -> None:
    where = tmp_path / "tree"
    shutil.copytree(pristine, where)
    target = where / module
    target.write_text(target.read_text(encoding="utf-8") + f"\n{line}  # the forbidden import\n", encoding="utf-8")
    done = _lint(where)
    out = " ".join(done.stdout.split())
    assert done.returncode != 0, f"{line!r} in {module} went unnoticed:\n{done.stdout}"
    name = " ".join(_contract_names()[contract].split())
    assert f"{name} BROKEN" in out, done.stdout
