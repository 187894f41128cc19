"""Scenarios: async functions of a Bench, registered by theme (one module of hil/scenarios per theme).

    @scenario(needs={"lock"})
    async def specific(bench: Bench) -> None:
        "A specific reservation lights the EVSE's LED and locks its socket."
        ...

The name is ``<theme>.<function>``; the docstring's first paragraph is the title in the report.
``needs`` names what the bench must have, else the scenario is skipped: "lock", "meter",
"two_evses", "restart", "ocpp" (an ``[ocpp]`` table: the harness plays the DUT's CSMS, and the bench
opens with the DUT connected to it), "pilot" (EVSE 1 has a control pilot the harness plays the car on:
``[dut] pilots`` on the sim bench, ``[evses.pilot]`` on a real one), "plug_line" (EVSE 1 has no pilot: the
DUT reads the car from its plug line, which a pilot replaces).
"""

from __future__ import annotations

import fnmatch
import importlib
import pkgutil
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hil.harness import Bench
    from hil.profile import BenchProfile

ScenarioFunc = Callable[["Bench"], Awaitable[None]]

NEEDS = frozenset({"lock", "meter", "two_evses", "restart", "ocpp", "pilot", "plug_line"})


@dataclass(frozen=True, slots=True)
class Scenario:
    """One registered scenario."""

    name: str
    theme: str
    title: str
    func: ScenarioFunc
    needs: frozenset[str]
    timeout_s: float
    known_issue: str | None = None  # a known DUT bug this scenario shows: a failure is expected (xfail)

    def missing(self, profile: BenchProfile) -> list[str]:
        """What the bench lacks for this scenario (empty: it can run)."""
        have = set()
        evses = profile.evses
        if evses and all("lock_motor_lock" in e.lines and "lock_feedback" in e.lines for e in evses[:2]):
            have.add("lock")
        if evses and all(e.meter_unit is not None for e in evses[:2]) and (profile.kind == "sim" or profile.meter):
            have.add("meter")
        if len(evses) >= 2:
            have.add("two_evses")
        if profile.kind == "sim" or profile.dut.restart_command:
            have.add("restart")
        if profile.ocpp is not None:
            have.add("ocpp")
        if evses and evses[0].evse_id == 1:
            have.add("pilot" if evses[0].pilot is not None else "plug_line")
        return sorted(self.needs - have)


REGISTRY: dict[str, Scenario] = {}


def scenario(
    *, needs: Iterable[str] = (), timeout_s: float = 30.0, known_issue: str | None = None
) -> Callable[[ScenarioFunc], ScenarioFunc]:
    """Register the decorated coroutine function as scenario ``<theme>.<name>``.

    ``known_issue`` says which known DUT bug makes it fail: its failure is then reported as an expected
    failure, and a pass as an error (the bug is fixed: remove the mark).
    """
    wanted = frozenset(needs)
    unknown = wanted - NEEDS
    if unknown:
        raise ValueError(f"unknown needs {sorted(unknown)} (known: {sorted(NEEDS)})")

    def register(func: ScenarioFunc) -> ScenarioFunc:
        module: Any = func.__module__
        theme = str(module).rpartition(".")[2]
        name = f"{theme}.{getattr(func, '__name__', 'scenario')}"
        paragraph = (func.__doc__ or "").strip().split("\n\n")[0]
        title = " ".join(paragraph.split()) or name
        REGISTRY[name] = Scenario(name, theme, title, func, wanted, timeout_s, known_issue)
        return func

    return register


THEME_ORDER = ("reservations", "faults", "restart", "competition", "ocpp", "pilot")


def load_all() -> dict[str, Scenario]:
    """Import every module of hil.scenarios (registering their scenarios); the registry in run order
    (themes as in THEME_ORDER, then any other theme; scenarios as written in their module)."""
    import hil.scenarios as package

    modules = [info.name for info in pkgutil.iter_modules(package.__path__)]
    for name in modules:
        importlib.import_module(f"{package.__name__}.{name}")
    rank = {theme: i for i, theme in enumerate([*THEME_ORDER, *sorted(set(modules) - set(THEME_ORDER))])}
    ordered = sorted(REGISTRY.values(), key=lambda s: rank.get(s.theme, len(rank)))  # stable: module order kept
    return {s.name: s for s in ordered}


def select(patterns: Iterable[str]) -> list[Scenario]:
    """Scenarios by name, theme, bare name or glob (``faults``, ``faults.weld``, ``weld``, ``*expiry*``); all for none.

    Raises LookupError naming a pattern that matches nothing.
    """
    registry = load_all()
    patterns = list(patterns)
    if not patterns:
        return list(registry.values())
    chosen: dict[str, Scenario] = {}
    for pattern in patterns:
        hits = [
            s
            for name, s in registry.items()
            if pattern in (name, s.theme, name.partition(".")[2]) or fnmatch.fnmatch(name, pattern)
        ]
        if not hits:
            raise LookupError(f"no scenario matches {pattern!r} (see `charger-hil list`)")
        for hit in hits:
            chosen.setdefault(hit.name, hit)
    return list(chosen.values())
