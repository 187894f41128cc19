"""The free EVSEs of a site, kept up to date one EVSE at a time instead of recounted over all of them.

Every decision of the reservation core reads the same derived facts: how many free EVSEs (not plugged,
no occupied connector, not EVSE-specifically reserved) have each set of Available connector types, and
which of them have at least one Available connector (EverEst's "available" EVSEs, split by the connector
types they carry). ``FreeIndex`` holds those facts and changes them when one EVSE changes, in O(1).
"""

from __future__ import annotations

from collections import Counter

from controller.core.types import ConnectorType

# What one EVSE contributes: the types of its Available connectors when it is free, None when it is not.
Contribution = frozenset[ConnectorType] | None


class FreeIndex:
    """Free EVSEs grouped by Available types, the available ones by connector type, and a version per change."""

    __slots__ = ("_by_type", "_types_of", "available", "contribution", "groups", "version")

    def __init__(self, types_of: dict[int, frozenset[ConnectorType]]) -> None:
        """Start with no EVSE free; ``types_of`` maps each EVSE to the types of all its connectors."""
        self._types_of = types_of
        self.contribution: dict[int, Contribution] = dict.fromkeys(types_of)
        # Free EVSEs by the types of their Available connectors; never holds a zero count.
        self.groups: Counter[frozenset[ConnectorType]] = Counter()
        self.available: set[int] = set()  # free and with an Available connector
        self._by_type: dict[ConnectorType, set[int]] = {}  # available EVSEs having a connector of the type
        self.version = 0  # changes whenever ``groups`` does

    def update(self, evse_id: int, contribution: Contribution) -> bool:
        """Record what the EVSE contributes now; True if that changed anything."""
        old = self.contribution[evse_id]
        if old == contribution:
            return False
        self.contribution[evse_id] = contribution
        self.version += 1
        groups = self.groups
        if old is not None:
            if groups[old] == 1:
                del groups[old]
            else:
                groups[old] -= 1
        if contribution is not None:
            groups[contribution] += 1
        was, now = bool(old), bool(contribution)
        if was != now:
            if now:
                self.available.add(evse_id)
                for t in self._types_of[evse_id]:
                    self._by_type.setdefault(t, set()).add(evse_id)
            else:
                self.available.discard(evse_id)
                for t in self._types_of[evse_id]:
                    self._by_type[t].discard(evse_id)
        return True

    def available_with(self, wanted: ConnectorType) -> set[int]:
        """The available EVSEs that have a connector a car wanting ``wanted`` could use (Site.has_type)."""
        if wanted is ConnectorType.Unknown:
            return self.available
        empty: set[int] = set()
        return self._by_type.get(wanted, empty) | self._by_type.get(ConnectorType.Unknown, empty)
