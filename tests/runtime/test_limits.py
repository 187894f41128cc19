"""The limit in effect per EVSE on the real runtime of ``run --sim``: a charging-profile limit for one EVSE or for
the station (shared like a site limit: 6 A or nothing, first session first), shown as ``limit_a``; 0 pauses
charging (contactor open, session and lock kept) and removing it resumes."""

from __future__ import annotations

import pytest
from waiting import until

from controller.port.charger import Supply, UnknownEvse
from controller.runtime.build import Built


async def _charging(built: Built, evse_id: int, token: str) -> None:
    runtime = built.runtime
    assert runtime.sim is not None
    assert (await runtime.present_token(evse_id, token)).may_charge
    await runtime.sim.plug(evse_id)
    await until(lambda: runtime.evse_status(evse_id)["contactor"] == "closed", f"EVSE {evse_id} charging")


async def test_a_profile_limit_of_0_pauses_one_evse_and_removing_it_resumes(built: Built) -> None:
    runtime = built.runtime
    await _charging(built, 1, "ALICE")
    own = runtime.evse_status(1)["limit_a"]  # the pilot's maximum, or None without a pilot
    await runtime.set_profile_limit(1, 0)
    await until(lambda: runtime.evse_status(1)["contactor"] == "open", "paused")
    entry = runtime.evse_status(1)
    assert entry["limit_a"] == 0 and entry["phase"] == "charging" and entry["lock"] == "locked"
    await runtime.set_profile_limit(1, 5.5)  # below 6 A nothing can be offered: still paused
    assert runtime.evse_status(1)["limit_a"] == 0
    await runtime.set_profile_limit(1, 16)
    await until(lambda: runtime.evse_status(1)["contactor"] == "closed", "resumed")
    assert runtime.evse_status(1)["limit_a"] == 16
    await runtime.set_profile_limit(1, None)
    assert runtime.evse_status(1)["limit_a"] == own


async def test_a_station_limit_is_shared_and_the_later_session_waits_when_6_a_each_does_not_fit(built: Built) -> None:
    runtime = built.runtime
    await runtime.set_profile_limit(None, 16)
    await _charging(built, 2, "ALICE")
    assert runtime.evse_status(2)["limit_a"] == 16  # the station's 16 A (and the sim pilot's 16 A maximum)
    await _charging(built, 1, "BOB")
    await until(lambda: runtime.evse_status(2)["limit_a"] == 8, "EVSE 2 shares the station's 16 A")
    assert runtime.evse_status(1)["limit_a"] == 8
    await runtime.set_profile_limit(None, 10)  # 5 A each cannot be offered: the later session (EVSE 1) waits
    await until(lambda: runtime.evse_status(1)["contactor"] == "open", "EVSE 1 paused")
    assert runtime.evse_status(1)["limit_a"] == 0 and runtime.evse_status(2)["limit_a"] == 10
    assert runtime.evse_status(2)["contactor"] == "closed"
    await runtime.present_token(2, "ALICE")  # EVSE 2's session ends: EVSE 1 gets the station's 10 A
    await until(lambda: runtime.evse_status(1)["contactor"] == "closed", "EVSE 1 resumed")
    assert runtime.evse_status(1)["limit_a"] == 10


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), True, "16"])
async def test_a_bad_profile_limit_is_refused_naming_it(built: Built, bad: object) -> None:
    with pytest.raises(ValueError, match="charging-profile limit"):
        await built.runtime.set_profile_limit(1, bad)  # type: ignore[arg-type]


async def test_the_supply_is_the_configured_one_and_the_station_adds_up(built: Built) -> None:
    """What turns a CSMS's watts into amperes: each EVSE's ``[evses.pilot]`` voltage, phases and maximum; the
    station's is the site maximum, else the EVSEs' maxima added up."""
    runtime = built.runtime
    assert runtime.supply(1) == Supply(230.0, 3, 16.0)  # sim_default.toml's pilot on EVSE 1
    assert runtime.supply(None) == Supply(230.0, 3, 32.0)  # no [site] max_current_a: 16 A + 16 A
    runtime._ctx.site_max_a = 20.0
    assert runtime.supply(None).max_current_a == 20.0
    with pytest.raises(UnknownEvse):
        runtime.supply(9)
