"""Can every reserved car charge, whatever order the cars arrive in and whatever EVSE each picks?

EVerest answers this by enumerating every arrival order and every choice (factorial time). The
adversary wins iff, for some car of type t, the other cars can occupy all of C(t), the free EVSEs
that could serve t: a matching of (cars minus that one) onto all of C(t). Cars of one type are
interchangeable and so are EVSEs serving the same set of wanted types, so a max-flow from car
types to EVSE classes decides it in polynomial time, on a network of a few dozen nodes.

That max-flow saturates C(t) iff Hall's condition holds: for every set Y of wanted types that
contains t, the classes serving t whose signature lies inside Y hold no more EVSEs than the cars of
Y other than the one of type t (the middle edges are unbounded, so a minimum cut never crosses one
unless it costs as much as cutting every sink edge). ``HallTable`` keeps, for every Y, the number of
free EVSEs whose signature is a subset of Y (a subset-sum transform over at most 2**HALL_LIMIT
masks), so a decision is a few hundred integer comparisons; more distinct types than that fall back
to the max-flow. Both give the same answer, and both are monotone: fewer cars, or more free EVSEs,
never turn a feasible set infeasible.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence

from controller.core.types import ConnectorType

# Free EVSEs grouped by the types of their Available connectors: {types: how many EVSEs}.
# EVSEs with the same Available types are interchangeable, so this is all a decision needs.
FreeEvses = Mapping[frozenset[ConnectorType], int]
Feasibility = Callable[[Sequence[ConnectorType], FreeEvses], bool]

HALL_LIMIT = 10  # most distinct wanted types decided by HallTable (2**10 masks); more use the max-flow


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
    return feasible_counts(Counter(cars), len(cars), free)


def feasible_counts(counts: Mapping[ConnectorType, int], n_cars: int, free: FreeEvses) -> bool:
    """``is_feasible`` for the cars given as {type: how many} (``n_cars`` in all, at least one)."""
    wanted = [t for t, n in counts.items() if n > 0]
    if len(wanted) <= HALL_LIMIT:
        return HallTable(wanted, free).feasible(counts, n_cars)
    return _flow_feasible(counts, wanted, n_cars, free)


class HallTable:
    """Free EVSEs counted by signature subset over a fixed list of wanted types: decides from car counts.

    Built once per free-EVSE grouping and type list, it answers ``feasible`` for any car counts over those
    types (types beyond the cars' own never change the answer: their cars are zero).
    """

    __slots__ = ("_bits", "_full", "_mask_of", "_sub", "total", "types")

    def __init__(self, types: Sequence[ConnectorType], free: FreeEvses) -> None:
        """Group ``free`` by which of ``types`` each class serves and take subset sums over those masks."""
        self.types = tuple(types)
        self._bits = {t: 1 << i for i, t in enumerate(self.types)}
        self._full = (1 << len(self.types)) - 1
        self._mask_of: dict[frozenset[ConnectorType], int] = {}
        self.total = sum(free.values())
        exact = [0] * (self._full + 1)
        for available, n in free.items():
            if n > 0:
                exact[self.mask(available)] += n
        for bit in self._bits.values():  # zeta transform: _sub[Y] = EVSEs whose signature is a subset of Y
            for y in range(self._full + 1):
                if y & bit:
                    exact[y] += exact[y ^ bit]
        self._sub = exact

    def mask(self, available: frozenset[ConnectorType]) -> int:
        """The signature of a class: the bits of the types its EVSEs serve."""
        found = self._mask_of.get(available)
        if found is None:
            found = 0
            for t, bit in self._bits.items():
                if serves(available, t):
                    found |= bit
            self._mask_of[available] = found
        return found

    def without(self, available: frozenset[ConnectorType] | None) -> HallTable:
        """The table with one more EVSE taken: one of class ``available`` (None: a non-free one, nothing)."""
        if available is None:
            return self
        other = HallTable.__new__(HallTable)
        other.types, other._bits, other._full, other._mask_of = self.types, self._bits, self._full, self._mask_of
        other.total = self.total - 1
        sig = self.mask(available)
        other._sub = [v - 1 if y & sig == sig else v for y, v in enumerate(self._sub)]
        return other

    def feasible(self, counts: Mapping[ConnectorType, int], n_cars: int) -> bool:
        """``is_feasible`` for these car counts (every type with cars must be one of ``types``)."""
        if n_cars <= 0:
            return True
        if n_cars > self.total:
            return False
        sub, full = self._sub, self._full
        by_bit = [0] * len(self.types)
        present: list[int] = []
        for t, n in counts.items():
            if n > 0:
                bit = self._bits[t]
                by_bit[bit.bit_length() - 1] = n
                present.append(bit)
        supply = [0] * (full + 1)  # supply[Y]: cars whose type is in Y
        for y in range(1, full + 1):
            low = y & -y
            supply[y] = supply[y ^ low] + by_bit[low.bit_length() - 1]
        for bit in present:
            target = sub[full] - sub[full ^ bit]  # |C(t)|
            if target == 0:
                return False  # a car of type t finds nothing even when it comes first
            if n_cars - 1 < target:
                continue  # too few other cars to fill C(t)
            # saturated iff for every Y containing t: EVSEs of C(t) with signature in Y <= cars of Y but this one
            if all(sub[y] - sub[y ^ bit] < supply[y] for y in range(bit, full + 1) if y & bit):
                return False
        return True


def _flow_feasible(
    counts: Mapping[ConnectorType, int], wanted: Sequence[ConnectorType], n_cars: int, free: FreeEvses
) -> bool:
    """The max-flow decision (many distinct types): one flow per wanted type over the class network."""
    if n_cars > sum(free.values()):
        return False
    classes: Counter[frozenset[ConnectorType]] = Counter()
    for available, n in free.items():
        signature = frozenset(t for t in wanted if serves(available, t))
        if signature and n > 0:
            classes[signature] += n
    for t in wanted:
        target = sum(size for sig, size in classes.items() if t in sig)
        if target == 0:
            return False
        if n_cars - 1 < target:
            continue
        supply = {s: counts[s] - (1 if s is t else 0) for s in wanted}
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
