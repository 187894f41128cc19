"""The ``charger-controller`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run one subcommand; returns the exit status."""
    parser = argparse.ArgumentParser(prog="charger-controller", description="EV charger controller")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="print a short walk through the reservation core on a simulated 3-EVSE site")
    parser.parse_args(argv)
    from controller.demo import run_demo

    run_demo()
    return 0


if __name__ == "__main__":
    sys.exit(main())
