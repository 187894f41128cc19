"""The current an EVSE may offer: the least of every limit that applies, and a site limit shared between EVSEs.

DESIGN.md, "The control pilot": the offered current is the minimum of the configuration's maximum, the cable's
rating (PP), the CSMS's charging profiles, a local limit (API, CLI, MQTT) and the EVSE's share of the site limit.
0 A means "offer nothing now" (a pause: the contactor opens, the session and the lock stay). IEC 61851-1 lets a car
be offered no less than 6 A (Annex A, duty 10 %), so a share below that is no share: the site limit serves as many
EVSEs as it can give 6 A each, in the order their sessions started, and the others get 0 until it can.
Pure: the runtime gives the inputs and applies the answers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

MIN_OFFER_A = 6.0  # IEC 61851-1 Annex A: the least current a duty cycle can offer


def least(limits: Iterable[float | None]) -> float | None:
    """The smallest of the limits that are set (None: no limit at all)."""
    found = [float(limit) for limit in limits if limit is not None]
    return min(found) if found else None


def usable(limit_a: float | None) -> float | None:
    """A limit as a car can be offered it: below 6 A is 0 (nothing can be offered); None stays None."""
    if limit_a is None:
        return None
    return limit_a if limit_a >= MIN_OFFER_A else 0.0


def share_site(site_a: float | None, wanting: Sequence[int], own: Mapping[int, float | None]) -> dict[int, float]:
    """Each EVSE's share of ``site_a`` (A per phase) among the EVSEs ``wanting`` current, in the order their sessions
    started; ``own`` is each one's own limit (None: none). An EVSE that needs less than an equal share leaves the rest
    to the others; when the site cannot give everyone 6 A, the latest get 0. No site limit: no entry."""
    if site_a is None:
        return {}

    def cap(evse_id: int) -> float:
        """The EVSE's own limit (infinite without one)."""
        limit = own.get(evse_id)
        return math.inf if limit is None else limit

    shares = dict.fromkeys(wanting, 0.0)
    served = list(wanting)
    while served:
        left, pending = float(site_a), list(served)
        given: dict[int, float] = {}
        while pending:  # water-filling: the EVSEs that need less than an equal share are served first
            equal = left / len(pending)
            capped = [e for e in pending if cap(e) < equal]
            if not capped:
                given.update(dict.fromkeys(pending, equal))
                break
            for e in capped:
                amount = cap(e)
                given[e] = amount
                left -= amount
                pending.remove(e)
        if all(amount >= MIN_OFFER_A or own.get(e) == 0 for e, amount in given.items()):
            shares.update(given)
            return shares
        served.pop()  # the latest session waits; share among the others
    return shares
