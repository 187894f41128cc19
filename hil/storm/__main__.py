"""``python -m hil.storm``: run a fault storm on the simulated charger (see hil.storm.cli)."""

import sys

from hil.storm.cli import main

if __name__ == "__main__":
    sys.exit(main())
