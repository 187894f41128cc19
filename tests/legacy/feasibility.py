"""Legacy copy (verbatim, before issue #15) of controller/core/feasibility.py.

Can every reserved car charge, whatever order the cars arrive in and whatever EVSE each picks?

EVerest answers this by enumerating every arrival order and every choice (factorial time). The
adversary wins iff, for some car of type t, the other cars can occupy all of C(t), the free EVSEs
that could serve t: a matching of (cars minus that one) onto all of C(t). Cars of one type are
interchangeable and so are EVSEs serving the same set of wanted types, so a max-flow from car
types to EVSE classes decides it in polynomial time, on a network of a few dozen nodes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence

from controller.core.types import ConnectorType

# Free EVSEs grouped by the types of their Available connectors: {types: how many EVSEs}.
# EVSEs with the same Available types are interchangeable, so this is all a decision needs.
FreeEvses = Mapping[frozenset[ConnectorType], int]
Feasibility = Callable[[Sequence[ConnectorType], FreeEvses], bool]


def serves(available: frozenset[ConnectorType], wanted: ConnectorType) -> bool:
    """An EVSE whose Available connectors have these types can take a car wanting ``wanted``."""
    if not available:
        return False
    if wanted is ConnectorType.Unknown or ConnectorType.Unknown in available:
        return True
    return wanted in available


def is_feasible(cars: Sequence[ConnectorType], free: FreeEvses) -> bool:
    """True iff every arrival order and every choice of free EVSE lets each car charge."""
    if not cars:
        return True
    if len(cars) > sum(free.values()):
        return False
    counts = Counter(cars)
    wanted = list(counts)
    classes: Counter[frozenset[ConnectorType]] = Counter()
    for available, n in free.items():
        signature = frozenset(t for t in wanted if serves(available, t))
        if signature and n > 0:
            classes[signature] += n
    for t in wanted:
        target = sum(size for sig, size in classes.items() if t in sig)
        if target == 0:
            return False  # a car of type t finds nothing even when it comes first
        if len(cars) - 1 < target:
            continue  # too few other cars to fill C(t)
        supply = {s: n - (1 if s is t else 0) for s, n in counts.items()}
        if _max_flow(supply, {sig: size for sig, size in classes.items() if t in sig}) == target:
            return False
    return True


def _max_flow(supply: Mapping[ConnectorType, int], classes: Mapping[frozenset[ConnectorType], int]) -> int:
    """Max flow source -> car type (supply) -> EVSE class it serves (unbounded) -> sink (class size)."""
    types = [s for s, n in supply.items() if n > 0]
    sigs = list(classes)
    n_t, n_c = len(types), len(sigs)
    source, sink = 0, 1 + n_t + n_c
    size = sink + 1
    cap = [[0] * size for _ in range(size)]
    big = sum(classes.values())
    for i, s in enumerate(types):
        cap[source][1 + i] = supply[s]
        for j, sig in enumerate(sigs):
            if s in sig:
                cap[1 + i][1 + n_t + j] = big
    for j, sig in enumerate(sigs):
        cap[1 + n_t + j][sink] = classes[sig]
    flow = 0
    while True:
        parent = [-1] * size
        parent[source] = source
        queue = [source]
        for u in queue:
            if u == sink:
                break
            row = cap[u]
            for v in range(size):
                if parent[v] < 0 and row[v] > 0:
                    parent[v] = u
                    queue.append(v)
        if parent[sink] < 0:
            return flow
        push = big
        v = sink
        while v != source:
            u = parent[v]
            push = min(push, cap[u][v])
            v = u
        v = sink
        while v != source:
            u = parent[v]
            cap[u][v] -= push
            cap[v][u] += push
            v = u
        flow += push
