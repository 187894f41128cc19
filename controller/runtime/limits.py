"""Each EVSE's offered current now, from the limits the runtime holds (controller.charging.limits decides).

The limits: the EVSE's configured maximum (its pilot's ``max_current_a``), the cable's rating (PP), the local limit
(API, CLI, MQTT: ``current_limit_a``), the CSMS's charging profile for the EVSE, and the EVSE's share of the site
limit: the least of ``[site] max_current_a`` and the CSMS's profile for the whole station, shared among the EVSEs
whose sessions hold a car (in the order they were authorized).
"""

from __future__ import annotations

from controller.charging.limits import least, share_site, usable
from controller.charging.session import Phase
from controller.runtime.evse import EvseRecord, RuntimeContext

_WANTING = (Phase.LOCKING, Phase.CHARGING)  # sessions that hold a car and may draw current


def own_limit(e: EvseRecord) -> float | None:
    """The least of the EVSE's own limits (no site share), as a car can be offered it (< 6 A: 0)."""
    return usable(least((e.max_current_a, e.cable_a, e.current_limit_a, e.profile_limit_a)))


def site_limit(ctx: RuntimeContext) -> float | None:
    """The limit the EVSEs share (the least of ``[site] max_current_a`` and the station's profile), None: none."""
    return least((ctx.site_max_a, ctx.station_profile_limit_a))


def offered_limits(ctx: RuntimeContext) -> dict[int, float | None]:
    """Every EVSE's limit now (None: no limit applies); 0 means offer nothing (a pause)."""
    own = {evse_id: own_limit(e) for evse_id, e in ctx.evses.items()}
    site = site_limit(ctx)
    if site is None:
        return own
    wanting = sorted((e for e in ctx.evses.values() if e.session.view.phase in _WANTING),
                     key=lambda e: (e.session.view.authorized_at or 0.0, e.evse_id))
    shares = share_site(site, [e.evse_id for e in wanting], own)
    return {evse_id: usable(least((limit, shares.get(evse_id)))) for evse_id, limit in own.items()}
