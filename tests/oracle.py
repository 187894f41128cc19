"""Brute-force oracle: EVerest's Auth feasibility check, literally (every arrival order, every choice).

Factorial time; the tests compare the polynomial decision against it on small sites, and
benchmarks/feasibility.py times it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import permutations

from controller.core.types import ConnectorType

UNKNOWN = ConnectorType.Unknown


def _can_take(available: frozenset[ConnectorType], wanted: ConnectorType) -> bool:
    """EVerest: has_evse_connector_type and an Available connector of a compatible type."""
    return any(wanted == UNKNOWN or c in (wanted, UNKNOWN) for c in available)


def _can_virtual_car_arrive(
    used: frozenset[int], order: Sequence[ConnectorType], free: Mapping[int, frozenset[ConnectorType]]
) -> bool:
    possible = False
    for evse_id, available in free.items():
        if evse_id in used or not _can_take(available, order[0]):
            continue
        possible = True
        if len(order) == 1:
            return True
        if not _can_virtual_car_arrive(used | {evse_id}, order[1:], free):
            return False
    return possible


def expand(groups: Mapping[frozenset[ConnectorType], int]) -> dict[int, frozenset[ConnectorType]]:
    """One entry per free EVSE (numbered here) from the core's {Available types: count} groups."""
    free: dict[int, frozenset[ConnectorType]] = {}
    for available, n in groups.items():
        for _ in range(n):
            free[len(free) + 1] = available
    return free


def oracle_is_feasible(cars: Sequence[ConnectorType], groups: Mapping[frozenset[ConnectorType], int]) -> bool:
    """True iff for every order of cars and every choice each car finds a free compatible EVSE."""
    if not cars:
        return True
    free = expand(groups)
    return all(_can_virtual_car_arrive(frozenset(), order, free) for order in set(permutations(cars)))
