"""Stop -> unlock without waiting for the next meter poll: when the contactor opens, the runtime asks the meter's
poller for one reading out of turn, so the unlock interlock (which trusts only a reading completed after the opening)
is satisfied in about one Modbus round trip. The interlock itself is as strict as before: no reading, no unlock.

The real runtime of ``run --sim`` with its meters polled only every 30 s: an unlock within seconds can only come from
the out-of-turn reading.
"""

from __future__ import annotations

from pathlib import Path

from waiting import until

from controller.config.loader import parse_config
from controller.runtime.build import build

SIM_DEFAULT = Path(__file__).resolve().parents[2] / "controller" / "config" / "sim_default.toml"


async def test_the_lock_releases_after_a_stop_without_waiting_for_the_next_poll(tmp_path: Path) -> None:
    text = SIM_DEFAULT.read_text(encoding="utf-8")
    text = text.replace("poll_interval_s = 2.0", "poll_interval_s = 30.0").replace("stale_after_s = 6.0",
                                                                                   "stale_after_s = 90.0")
    assert text.count("poll_interval_s = 30.0") == 2
    built = await build(parse_config(text, source="slow-poll.toml"), state_dir=tmp_path)
    await built.start()
    try:
        runtime = built.runtime
        assert (await runtime.present_token(1, "ALICE")).may_charge
        assert runtime.sim is not None
        await runtime.sim.plug(1)
        await until(lambda: runtime.evse_status(1)["contactor"] == "closed", "contactor closed")
        assert runtime.evse_status(1)["lock"] == "locked"
        reads_before = sum(p.meters[0].bus.stats.requests for p in built.pollers)

        assert (await runtime.present_token(1, "ALICE")).verdict.value == "stopped"
        await until(lambda: runtime.evse_status(1)["lock"] == "unlocked", "the lock released", timeout=10)
        assert runtime.evse_status(1)["contactor"] == "open"
        assert sum(p.meters[0].bus.stats.requests for p in built.pollers) > reads_before  # a reading out of turn
    finally:
        await built.stop()
