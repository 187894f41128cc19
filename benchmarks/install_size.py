"""The daemon's install footprint: size of a fresh venv with ``pip install .`` (no extras) and its start-up cost.

For each ``--source`` (default: this checkout) the source tree is copied (without venvs, build output and
caches) to a temporary folder and installed with pip into a new venv of this Python; this downloads from
PyPI, so the tests never run it. Measured, as medians of ``--runs`` runs after a warm-up:
``python -X importtime -c "import controller.daemon"`` (the sum of its self times minus that of an empty
``-c pass``; the instrumentation itself adds to it) and the wall time of ``python -c "import controller.daemon"``,
of ``charger-controller --help`` and of ``charger-controller check-config examples/pi-2evse.toml``. Several
``--source`` (e.g. an older commit unpacked with ``git archive``) are timed in turns, round by round, so a busy
machine slows them alike. ``--extras hil`` installs extras too.
Prints ONE JSON object. Run: python3 benchmarks/install_size.py [--source DIR ...] [--runs N] [--extras X]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SKIP = shutil.ignore_patterns(".git", ".venv", "venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache",
                              ".hypothesis", "state", "out", "hil-report", "reliability-out")
HEAVY = ("matplotlib", "numpy", "PIL", "fontTools", "kiwisolver", "contourpy")
_IMPORTTIME = re.compile(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|")
# as on a Pi: byte code cached, nothing from this shell's Python settings or the checkout on the import path
ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH", "PYTHONHOME")}


@dataclass
class Install:
    """One source tree installed into its own venv, and the samples taken from it."""

    source: Path
    venv: Path
    example: Path
    empty_mb: float
    samples: dict[str, list[float]] = field(default_factory=dict)

    @property
    def python(self) -> str:
        """The venv's interpreter."""
        return str(self.venv / "bin" / "python")

    @property
    def cli(self) -> str:
        """The venv's ``charger-controller`` console script."""
        return str(self.venv / "bin" / "charger-controller")

    def sample(self, name: str, value: float) -> None:
        """Keep one measurement of ``name``."""
        self.samples.setdefault(name, []).append(value)


def tree_mb(path: Path) -> float:
    """Size of the files under ``path`` in MB (10^6 bytes), symlinks not followed."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            file = Path(root) / name
            if not file.is_symlink():
                total += file.stat().st_size
    return round(total / 1e6, 1)


def site_packages(venv: Path) -> Path:
    """The venv's site-packages folder."""
    return next((venv / "lib").glob("python3*/site-packages"))


def largest(site: Path, count: int = 10) -> dict[str, float]:
    """The ``count`` biggest top-level folders of site-packages (MB), the heaviest first."""
    sizes = {entry.name: tree_mb(entry) for entry in site.iterdir()
             if entry.is_dir() and not entry.name.endswith((".dist-info", ".egg-info")) and entry.name != "__pycache__"}
    return dict(sorted(sizes.items(), key=lambda item: -item[1])[:count])


def self_import_us(python: str, code: str, cwd: Path) -> int:
    """Sum of the self import times (µs) that ``python -X importtime -c code`` reports."""
    done = subprocess.run([python, "-X", "importtime", "-c", code], cwd=cwd, env=ENV, capture_output=True,
                          text=True, check=True)
    return sum(int(match.group(1)) for match in _IMPORTTIME.finditer(done.stderr))


def wall_ms(command: list[str], cwd: Path) -> float:
    """Wall time (ms) of one run of ``command``, which must succeed."""
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=ENV, capture_output=True, check=True)
    return (time.perf_counter() - started) * 1000


def install(source: Path, work: Path, extras: str) -> Install:
    """Copy ``source`` into ``work`` and pip-install it into a fresh venv there."""
    tree = work / "src"
    shutil.copytree(source, tree, ignore=SKIP)
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], env=ENV, check=True)
    empty_mb = tree_mb(venv)
    target = f"{tree}[{extras}]" if extras else str(tree)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check", target],
                   env=ENV, check=True, stdout=sys.stderr)
    return Install(source, venv, tree / "examples" / "pi-2evse.toml", empty_mb)


def time_round(setup: Install, here: Path) -> None:
    """One sample of every timed figure of ``setup``."""
    setup.sample("pass_us", self_import_us(setup.python, "pass", here))
    setup.sample("daemon_us", self_import_us(setup.python, "import controller.daemon", here))
    setup.sample("daemon_ms", wall_ms([setup.python, "-c", "import controller.daemon"], here))
    setup.sample("help_ms", wall_ms([setup.cli, "--help"], here))
    setup.sample("check_ms", wall_ms([setup.cli, "check-config", str(setup.example)], here))
    setup.sample("python_ms", wall_ms([setup.python, "-c", "pass"], here))


def report(setup: Install, extras: str, runs: int) -> dict[str, Any]:
    """The figures of one install."""
    site = site_packages(setup.venv)
    med = {name: statistics.median(values) for name, values in setup.samples.items()}
    return {
        "source": setup.source.name,
        "python": sys.version.split()[0],
        "extras": extras or None,
        "venv_mb": tree_mb(setup.venv),
        "empty_venv_mb": setup.empty_mb,
        "installed_mb": round(tree_mb(setup.venv) - setup.empty_mb, 1),
        "matplotlib_stack_installed": any((site / name).exists() for name in HEAVY),
        "largest_packages_mb": largest(site),
        "import_controller_daemon_ms": round((med["daemon_us"] - med["pass_us"]) / 1000, 1),
        "import_controller_daemon_wall_ms": round(med["daemon_ms"], 1),
        "cli_help_wall_ms": round(med["help_ms"], 1),
        "check_config_wall_ms": round(med["check_ms"], 1),
        "python_pass_wall_ms": round(med["python_ms"], 1),
        "runs": runs,
    }


def main() -> None:
    """Parse the command line, install, measure in turns, print the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, action="append",
                        help="a checkout to install; repeat to compare (default: this one)")
    parser.add_argument("--runs", type=int, default=9, help="timed runs per figure; the median is reported")
    parser.add_argument("--extras", default="", help="extras to install too, e.g. hil (default: none)")
    args = parser.parse_args()
    runs = max(1, args.runs)
    with tempfile.TemporaryDirectory(prefix="charger-install-") as scratch:
        here = Path(scratch)  # commands run outside every source tree, so the installed package is imported
        setups = []
        for index, source in enumerate(args.source or [REPO]):
            (here / str(index)).mkdir()
            setups.append(install(source.resolve(), here / str(index), args.extras))
        for _ in range(2):  # warm-up: the page cache, and byte code pip did not write
            for setup in setups:
                time_round(setup, here)
        for setup in setups:
            setup.samples.clear()
        for _ in range(runs):
            for setup in setups:
                time_round(setup, here)
        results = [report(setup, args.extras, runs) for setup in setups]
    out: dict[str, Any] = {"benchmark": "install_size", **results[0]} if len(results) == 1 else \
        {"benchmark": "install_size", "installs": results}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
