"""Fault storms on the simulated bench: many simulated hours of cars, reservations and random faults.

``run_storm(built, hours=..., seed=...)`` drives a controller built on the simulated charger
(``controller.runtime.build.build`` with ``simulated = true``), best on a ``hil.timewarp`` loop so that a
simulated day passes in a few minutes; ``sim_storm`` builds one and ``python -m hil.storm`` runs
that and prints the ``StormReport`` as JSON. Cars come and go at every EVSE (``traffic``), faults
from the catalogue (``catalogue``) are injected, held, cleared and their recovery proven
(``faults``), while the interlocks, unhandled exceptions (``run``) and memory (``memory``) are
watched; everything lands in the report (``report``). A car that cannot start or leave within the
recovery bound while no fault is in force on its EVSE is stuck (``site``).

By default the plug-line charger is stormed (``without_pilots``: a control pilot is sampled every 20 ms
of loop time, which makes a simulated hour cost two to three times as much). ``sim_storm(pilots=True,
settings=pilot_settings())`` storms the charger with a pilot on both EVSEs: the car's faults
(``PILOT_KINDS``) join the catalogue, cars get full and pause, local limits change, and the interlock
monitor's pilot rules and the pilot offer check watch it (``python -m hil.storm --pilots``).

Timing is real while the loop is busy, so a seed fixes the storm's decisions but not every
interleaving: two runs with one seed are alike, not identical.

Modules, each importing only those listed before it: ``catalogue`` (fault kinds and hold times),
``settings`` (``StormSettings``, ``BenchLimits``), ``report`` (``StormReport``), ``site`` (the
shared bookkeeping), ``traffic`` (cars and the operator), ``faults`` (fault episodes), ``memory``
(the memory watch), ``run`` (``run_storm``, ``sim_storm``), ``cli`` (``python -m hil.storm``).
"""

from hil.storm.catalogue import PILOT_KINDS, STORM_KINDS
from hil.storm.report import StormReport
from hil.storm.run import run_storm, sim_storm
from hil.storm.settings import START_UTC, BenchLimits, StormSettings, pilot_settings

__all__ = [
    "PILOT_KINDS",
    "START_UTC",
    "STORM_KINDS",
    "BenchLimits",
    "StormReport",
    "StormSettings",
    "pilot_settings",
    "run_storm",
    "sim_storm",
]
