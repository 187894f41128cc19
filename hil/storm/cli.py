"""``python -m hil.storm --hours 24 --seed N [--pilots] [--json]``: one storm on the embedded sim charger, its report
as JSON."""

from __future__ import annotations

import argparse
import logging
import random
import sys
from dataclasses import replace
from pathlib import Path

from hil.storm.catalogue import PILOT_KINDS
from hil.storm.run import sim_storm
from hil.storm.settings import StormSettings, pilot_settings

DESCRIPTION = "Fault storms on the simulated bench: many simulated hours of cars, reservations and random faults."


def main(argv: list[str] | None = None) -> int:
    """``python -m hil.storm --hours 24 --seed N [--json]``: exit 0 when the storm found nothing."""
    from controller.config.loader import load_config
    from hil.timewarp import run_warped

    parser = argparse.ArgumentParser(prog="python -m hil.storm", description=DESCRIPTION)
    parser.add_argument("--hours", type=float, default=24.0, help="simulated hours (default 24)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: a random one)")
    parser.add_argument("--config", type=Path, default=None, help="a simulated charger config (default: embedded)")
    parser.add_argument("--pilots", action="store_true",
                        help="storm the charger with a control pilot on both EVSEs (pilot faults, cars that get "
                             "full or pause, local limits; a simulated hour takes two to three times as long)")
    parser.add_argument("--kinds", default=None,
                        help=f"fault kinds, comma-separated (default: {','.join(StormSettings().kinds)}; with "
                             f"--pilots {','.join(pilot_settings().kinds)}; {','.join(PILOT_KINDS)} need --pilots)")
    parser.add_argument("--trace-hours", type=float, default=None,
                        help="trace memory with tracemalloc for the first H hours (default: all; it about "
                             "doubles the run time; 0: RSS and live blocks only)")
    parser.add_argument("--json", action="store_true", help="print only the report, as one JSON object")
    parser.add_argument("--log-level", default="CRITICAL", help="controller log level on stderr (default quiet)")
    args = parser.parse_args(argv)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(args.log_level.upper())
    console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(console)
    logging.getLogger().setLevel(min(console.level, logging.WARNING))
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    config = load_config(args.config) if args.config is not None else None
    settings = pilot_settings() if args.pilots else StormSettings()
    if args.kinds is not None:
        settings = replace(settings, kinds=tuple(k for k in args.kinds.split(",") if k))
    if set(settings.kinds) & set(PILOT_KINDS) and not args.pilots and config is None:
        parser.error(f"--kinds: {', '.join(PILOT_KINDS)} need --pilots (the charger with control pilots)")
    report = run_warped(sim_storm(hours=args.hours, seed=seed, config=config, settings=settings,
                                  trace_hours=args.trace_hours, pilots=args.pilots))
    if args.json:
        print(report.to_json())
    else:
        print(report.to_json(indent=2))
        failures = report.failures()
        print(f"{len(failures)} failure(s)" if failures else "storm passed", file=sys.stderr)
    return 1 if report.failures() else 0
