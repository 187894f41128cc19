"""The ``charger-controller`` command: run the daemon, check a configuration, or talk to a running one."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from controller.api.client import add_client_commands

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="charger-controller", description="EV charger controller")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the controller (on a Pi with --config, or simulated with --sim)")
    source = run.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", metavar="FILE", help="configuration file (TOML)")
    source.add_argument("--sim", action="store_true", help="the embedded simulated 2-EVSE charger")
    run.add_argument("--api", metavar="HOST:PORT", help="bind the HTTP API here (overrides the file)")
    run.add_argument("--state-dir", metavar="DIR", help="where reservations.db lives (overrides the file)")
    run.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    run.set_defaults(func=_run)

    check = sub.add_parser("check-config", help="validate a configuration file and print every problem")
    check.add_argument("file", metavar="FILE")
    check.set_defaults(func=_check_config)

    demo = sub.add_parser("demo", help="print a short walk through the reservation core on a 3-EVSE site")
    demo.set_defaults(func=_demo)

    add_client_commands(sub)
    return parser


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=level, format=LOG_FORMAT, stream=sys.stderr)
    # Our bus adapter logs one clear line per meter fault; pymodbus' own frame dumps are noise.
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    if level != "DEBUG":
        logging.getLogger("uvicorn.access").setLevel(logging.WARNING)


def _run(args: argparse.Namespace) -> int:
    from controller.config.loader import ConfigError, load_config, load_sim_default
    from controller.daemon import run_daemon

    _setup_logging(args.log_level)
    try:
        config = load_sim_default() if args.sim else load_config(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1

    def ready(url: str) -> None:
        print(f"charger-controller ready: API on {url} ({len(config.evses)} EVSEs)", flush=True)

    try:
        asyncio.run(
            run_daemon(
                config,
                api=args.api,
                state_dir=Path(args.state_dir) if args.state_dir else None,
                on_ready=ready,
            )
        )
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"charger-controller: cannot run: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


def _check_config(args: argparse.Namespace) -> int:
    from controller.config.loader import check_config_main

    return check_config_main(args.file)


def _demo(args: argparse.Namespace) -> int:
    from controller.core.demo import run_demo

    run_demo()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run one subcommand; returns the exit status."""
    args = _parser().parse_args(argv)
    status: int = args.func(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
