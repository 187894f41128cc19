"""``charger-hil``: run the HIL scenario suite on a bench and write junit.xml and report.html.

    charger-hil run --bench sim [--out DIR] [scenario ...]
    charger-hil list [--bench sim]

Exit status: 0 every scenario passed (or was skipped), 1 a scenario failed or errored,
2 the command line or the bench profile is wrong, or the report's plotting library (the ``hil`` extra) is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from hil.profile import BenchProfile, ProfileError
from hil.profile_loader import builtin_benches, load_profile
from hil.runner import ScenarioResult, run_all
from hil.scenario import Scenario, load_all, select
from hil.timeline import CheckRecord

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
# the ``hil`` extra of pyproject.toml: report.html's timeline plots; only ``run`` needs it
PLOT_REQUIREMENT = "matplotlib>=3.7"
STATUS_WORD = {"passed": "PASS", "failed": "FAIL", "error": "ERROR", "skipped": "SKIP", "xfail": "XFAIL"}


class ConsoleProgress:
    """Live progress: which scenario, each step, each check with its measured latency, the verdict."""

    def __init__(self, out: TextIO | None = None, verbose: bool = True) -> None:
        self.out = out
        self.verbose = verbose

    def _print(self, text: str) -> None:
        print(text, file=self.out or sys.stdout, flush=True)

    def begin(self, index: int, total: int, scenario: Scenario) -> None:
        self._print(f"[{index}/{total}] {scenario.name}: {scenario.title}")

    def step(self, t: float, text: str) -> None:
        if self.verbose:
            self._print(f"    {t:6.2f} s  step  {text}")

    def check(self, record: CheckRecord) -> None:
        if self.verbose or not record.ok:
            mark = "ok  " if record.ok else "FAIL"
            detail = f" — {record.detail}" if record.detail else ""
            self._print(f"    {record.decided:6.2f} s  {mark}  {record.text}{detail}")

    def note(self, t: float, text: str) -> None:
        self._print(f"    {t:6.2f} s  note  {text}")

    def end(self, result: ScenarioResult) -> None:
        word = STATUS_WORD[result.status]
        why = f": {result.message}" if result.message else ""
        self._print(f"    {word} {result.scenario.name} ({result.duration_s:.1f} s){why}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="charger-hil", description="Hardware-in-the-loop bench of the charger controller"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                help="run the scenarios, or list them (COMMAND --help for its options)")
    run = sub.add_parser("run", help="run scenarios on a bench, write DIR/junit.xml and DIR/report.html")
    run.add_argument("--bench", required=True, metavar="sim|FILE",
                     help=f"a built-in bench ({', '.join(builtin_benches())}) or a bench profile (TOML)")
    run.add_argument("--out", default="hil-report", metavar="DIR", help="where the reports go (default: hil-report)")
    run.add_argument("-q", "--quiet", action="store_true", help="print only scenarios, failures and the verdict")
    run.add_argument("-j", "--jobs", type=int, default=1, metavar="N",
                     help="sim bench: run N scenarios at once, each with its own DUT (progress: verdicts only)")
    run.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                     help="console log level of the DUT and the bench (the report keeps INFO lines)")
    run.add_argument("scenarios", nargs="*", metavar="scenario",
                     help="names, themes or globs (reservations, faults.weld, '*expiry*'); default: all")
    run.set_defaults(func=_run)
    lister = sub.add_parser("list", help="list the scenarios")
    lister.set_defaults(func=_list)
    return parser


def plots_missing() -> str | None:
    """Why the report's plots cannot be drawn (matplotlib not installed: the ``hil`` extra), with the fix; or None.

    Checked before any scenario runs, so a run without it stops at once rather than after the suite.
    """
    try:
        import hil.plot  # noqa: F401  (imports matplotlib)
    except ModuleNotFoundError as exc:
        missing = (exc.name or "matplotlib").partition(".")[0]
        if missing == "hil":
            raise  # our own module is missing: a broken install, not the extra
        return (f"charger-hil: run writes report.html with plots, which need matplotlib ({missing} is not "
                f"installed); install the hil extra: {shlex.quote(sys.executable)} -m pip install "
                f"{shlex.quote(PLOT_REQUIREMENT)} (or pip install '.[hil]' in the checkout)")
    return None


def _run(args: argparse.Namespace) -> int:
    if (missing := plots_missing()) is not None:
        print(missing, file=sys.stderr)
        return EXIT_USAGE
    try:
        profile = load_profile(args.bench)
        scenarios = select(args.scenarios)
    except (ProfileError, LookupError) as exc:
        print(f"charger-hil: {exc}", file=sys.stderr)
        return EXIT_USAGE
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(args.log_level)  # the report keeps INFO lines; the console shows only what was asked for
    console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(console)
    for noisy in ("pymodbus", "uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL if noisy == "pymodbus" else logging.WARNING)
    try:
        return _run_suite(args, profile, scenarios)
    finally:
        root.removeHandler(console)


def _run_suite(args: argparse.Namespace, profile: BenchProfile, scenarios: list[Scenario]) -> int:
    out = Path(args.out)
    progress = ConsoleProgress(verbose=not args.quiet)
    print(f"bench {profile.name} ({profile.kind}): {len(scenarios)} scenario(s), reports in {out}/", flush=True)
    jobs = max(1, args.jobs) if profile.kind == "sim" else 1
    started = time.monotonic()
    results = asyncio.run(run_all(profile, scenarios, progress=progress, jobs=jobs))
    wall = time.monotonic() - started
    from hil.report import write_reports

    junit, html = write_reports(results, profile, out)
    counts = {s: sum(r.status == s for r in results) for s in ("passed", "failed", "error", "skipped", "xfail")}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    print(f"{summary} in {wall:.1f} s — {junit} — {html}", flush=True)
    return EXIT_OK if all(r.ok for r in results) else EXIT_FAILED


def _list(args: argparse.Namespace) -> int:
    scenarios = load_all()
    width = max(map(len, scenarios)) + 2
    for name, scenario in scenarios.items():
        needs = f"  [needs {', '.join(sorted(scenario.needs))}]" if scenario.needs else ""
        print(f"{name:{width}}{scenario.title}{needs}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run one subcommand; returns the exit status."""
    args = _parser().parse_args(argv)
    status: int = args.func(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
