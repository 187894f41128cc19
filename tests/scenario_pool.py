"""Run broken-controller HIL cases each in a fresh process (three at a time): a case patches the controller in
its own process only, so the patches never meet, and the scenarios run in parallel."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable


def outcomes_in_fresh_processes(run_case: Callable[[str], tuple[str, str]],
                                cases: Iterable[str]) -> dict[str, tuple[str, str]]:
    """``run_case(case)`` -> (status, message) for every case, each in a process of its own (fork, one task each)."""
    names = list(cases)
    with multiprocessing.get_context("fork").Pool(3, maxtasksperchild=1) as pool:
        results = pool.map(run_case, names, chunksize=1)
    return dict(zip(names, results, strict=True))
