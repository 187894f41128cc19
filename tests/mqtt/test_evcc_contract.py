"""The contract with evcc's ``charger: type: custom`` on its MQTT plugin, as README "evcc" configures it.

evcc (plugin/mqtt.go, plugin/helper.go setFormattedValue) publishes a setter's value with Go's ``%v`` when the
plugin has no ``payload`` template: ``enable`` is a bool, so ``true`` or ``false``; ``maxcurrent`` an int64,
so ``16``; at QoS 1, not retained. It reads ``status`` with api.ChargeStatusString (the first letter A, B or C,
any case; E/F are errors), ``enabled`` with cast.ToBoolE, ``power``/``energy``/``currents`` with
strconv.ParseFloat. This test sends exactly those payloads to exactly the README's topics and reads the
topics back with those rules.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from .broker import Broker
from .mqtt_helpers import PREFIX, Watcher, mqtt_config, running_sim

README = Path(__file__).resolve().parents[2] / "README.md"
EVSE = f"{PREFIX}/evse/1"
# The topics of README's evcc example (charger-controller/garage-pi/evse/1/...), under this test's prefix
STATUS, ENABLED, ENABLE, MAXCURRENT = (f"{EVSE}/charge_status", f"{EVSE}/enabled", f"{EVSE}/enabled/set",
                                       f"{EVSE}/current_limit/set")
POWER, ENERGY = f"{EVSE}/power", f"{EVSE}/energy"
CURRENTS = [f"{EVSE}/current/l{n}" for n in (1, 2, 3)]


def charge_status(payload: str) -> str:
    """evcc's api.ChargeStatusString: A, B or C (C1/D1 count as B); anything else is an error."""
    s = payload.strip("\x00 ").upper()
    if not s:
        raise ValueError(f"invalid status: {payload!r}")
    if s[0] in "AB":
        return s[0]
    if s[0] in "CD":
        return "B" if s in ("C1", "D1") else "C"
    raise ValueError(f"invalid status: {payload!r}")


def to_bool(payload: str) -> bool:
    """cast.ToBoolE on a string: strconv.ParseBool."""
    if payload in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if payload in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(f"not a bool: {payload!r}")


def parse_float(payload: str) -> float:
    """evcc's parseFloat: strconv.ParseFloat, NaN and Inf refused."""
    value = float(payload)
    if not math.isfinite(value) or not re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", payload):
        raise ValueError(payload)
    return value


def test_the_readme_configures_evcc_on_these_topics() -> None:
    """The README's example is what this test exercises: the same topic suffixes and no payload templates."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("\n## evcc\n"):]
    section = section[:section.index("\n## ", 1)]
    for key, suffix in [("status", "charge_status"), ("enabled", "enabled"), ("enable", "enabled/set"),
                        ("maxcurrent", "current_limit/set"), ("power", "power"), ("energy", "energy")]:
        assert re.search(rf"\n    {key}:\n      source: mqtt\n      topic: charger-controller/garage-pi/evse/1/"
                         rf"{re.escape(suffix)}\n", section), key
    assert "payload:" not in section  # evcc then publishes bare %v values, as tested below
    for phase in (1, 2, 3):
        assert f"topic: charger-controller/garage-pi/evse/1/current/l{phase}\n" in section


async def test_what_evcc_sends_and_reads(tmp_path: Path, broker: Broker) -> None:
    async with running_sim(tmp_path / "state", mqtt_config(broker.url)) as (built, _), \
            Watcher(broker.port) as evcc:
        runtime = built.runtime
        # evcc at start: status A (no car), enabled true
        assert charge_status(await evcc.value(STATUS, "A")) == "A"
        assert to_bool(await evcc.value(ENABLED, "true")) is True

        # evcc's maxcurrent(16), then a car arrives and is authorized: B, then C with power flowing
        await evcc.publish(MAXCURRENT, "16")
        await evcc.value(f"{EVSE}/current_limit", "16.0")
        assert runtime.evse_status(1)["current_limit_a"] == 16.0
        await runtime.sim.plug(1)  # type: ignore[union-attr]
        assert charge_status(await evcc.value(STATUS, "B")) == "B"
        assert (await runtime.present_token(1, "EVCC-CAR-01")).may_charge
        assert charge_status(await evcc.value(STATUS, "C")) == "C"
        await evcc.value(POWER, lambda p: parse_float(p) > 1000.0)
        assert parse_float(evcc.last[ENERGY]) >= 0.0
        await evcc.value(CURRENTS[0], lambda p: parse_float(p) > 10.0)
        assert all(parse_float(evcc.last[topic]) >= 0.0 for topic in CURRENTS)

        # evcc's enable(false) (PV surplus gone): charging stops, enabled reads false
        await evcc.publish(ENABLE, "false")
        assert to_bool(await evcc.value(ENABLED, "false")) is False
        assert charge_status(await evcc.value(STATUS, lambda p: p != "C")) == "B"  # still plugged, not charging
        await evcc.value(f"{EVSE}/contactor", "open")

        # evcc's maxcurrent(6) and enable(true): enabled again, the limit recorded; the session ended with the
        # disable (README "evcc"), so charging resumes once the car is authorized again: B, then C
        await evcc.publish(MAXCURRENT, "6")
        await evcc.value(f"{EVSE}/current_limit", "6.0")
        await evcc.publish(ENABLE, "true")
        assert to_bool(await evcc.value(ENABLED, "true")) is True
        assert runtime.evse_status(1)["enabled"] is True
        assert charge_status(evcc.last[STATUS]) == "B"
        await evcc.value(f"{EVSE}/lock", "unlocked")  # the disable ended the session: the cable was released
        assert (await runtime.present_token(1, "EVCC-CAR-01")).may_charge
        assert charge_status(await evcc.value(STATUS, "C")) == "C"
        # stopped at the car (the same token), the cable released, the car leaves: B, then A
        assert (await runtime.present_token(1, "EVCC-CAR-01")).verdict.value == "stopped"
        assert charge_status(await evcc.value(STATUS, "B")) == "B"
        await evcc.value(f"{EVSE}/lock", "unlocked")
        await runtime.sim.unplug(1)  # type: ignore[union-attr]
        assert charge_status(await evcc.value(STATUS, "A")) == "A"
        # evcc's setters were answered (and never refused) on the result topic
        results = [m.payload for m in evcc.messages if m.topic == f"{EVSE}/result"]
        assert len(results) == 4 and not any('"error"' in r for r in results), results
