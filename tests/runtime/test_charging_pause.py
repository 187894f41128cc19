"""Pausing charging within a session (an energy manager's enable, or a 0 A limit) keeps the session and the car.

The real runtime of ``run --sim`` (in-process, temporary state directory): while paused the contactor opens and
stays open, the session stays authorized and the socket locked; resuming closes it again without a new token.
``set_enabled(False)`` by contrast ends the session (the EVSE becomes Unavailable).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from controller.runtime.build import Built


async def _until(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def _charging(built: Built, evse_id: int = 1) -> Any:
    """Token, plug, and wait until the contactor is closed."""
    runtime = built.runtime
    assert (await runtime.present_token(evse_id, "ALICE")).may_charge
    assert runtime.sim is not None
    await runtime.sim.plug(evse_id)
    await _until(lambda: runtime.evse_status(evse_id)["contactor"] == "closed", "contactor closed")
    return runtime


async def test_a_paused_session_opens_the_contactor_and_resumes_without_a_new_token(built: Built) -> None:
    runtime = await _charging(built)

    await runtime.set_charging_allowed(1, False)
    await _until(lambda: runtime.evse_status(1)["contactor"] == "open", "contactor open while paused")
    status = runtime.evse_status(1)
    assert (status["phase"], status["lock"], status["charging_allowed"], status["charging"]) == (
        "charging", "locked", False, False)
    await asyncio.sleep(0.3)  # the evaluations meanwhile must not close it again
    assert runtime.evse_status(1)["contactor"] == "open"

    await runtime.set_charging_allowed(1, True)
    await _until(lambda: runtime.evse_status(1)["contactor"] == "closed", "contactor closed after resume")
    assert runtime.evse_status(1)["phase"] == "charging"


async def test_a_zero_amp_limit_pauses_and_a_real_limit_resumes(built: Built) -> None:
    runtime = await _charging(built)

    assert await runtime.set_current_limit(1, 0) == 0
    await _until(lambda: runtime.evse_status(1)["contactor"] == "open", "contactor open at 0 A")
    assert runtime.evse_status(1)["phase"] == "charging"

    assert await runtime.set_current_limit(1, 16) == 16
    await _until(lambda: runtime.evse_status(1)["contactor"] == "closed", "contactor closed at 16 A")


async def test_a_pause_before_the_plug_keeps_the_contactor_open_from_the_start(built: Built) -> None:
    runtime = built.runtime
    await runtime.set_charging_allowed(2, False)
    assert (await runtime.present_token(2, "BOB")).may_charge
    assert runtime.sim is not None
    await runtime.sim.plug(2)
    await _until(lambda: runtime.evse_status(2)["phase"] == "charging" and runtime.evse_status(2)["lock"] == "locked",
                 "session charging with the socket locked")
    await asyncio.sleep(0.3)
    assert runtime.evse_status(2)["contactor"] == "open"


async def test_disabling_the_evse_ends_the_session_unlike_a_pause(built: Built) -> None:
    runtime = await _charging(built)

    await runtime.set_enabled(1, False)
    await _until(lambda: runtime.evse_status(1)["phase"] in ("stopping", "unlocking", "idle"), "session ending")
    await _until(lambda: runtime.evse_status(1)["contactor"] == "open", "contactor open")
