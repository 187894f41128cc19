"""The retained state topics follow the simulated charger: plug, charge (with power, energy and phase currents at
the reading period), pause, reservation, disable; availability says online, and offline after an orderly stop."""

from __future__ import annotations

import json
from pathlib import Path

from .broker import Broker
from .mqtt_helpers import PREFIX, Watcher, evse_topic, mqtt_config, running_sim


def _number(expected_above: float) -> object:
    """A check that a payload is a number above ``expected_above``."""
    return lambda payload: payload != "None" and float(payload) > expected_above


async def test_state_topics_follow_plug_charge_and_stop(tmp_path: Path, broker: Broker) -> None:
    async with running_sim(tmp_path / "state", mqtt_config(broker.url)) as (built, bridge), \
            Watcher(broker.port, f"{PREFIX}/#") as watcher:
        runtime = built.runtime
        assert bridge.connected
        for key, idle in [("state", "Available"), ("plugged", "false"), ("charging", "false"),
                          ("charge_status", "A"), ("lock", "unlocked"), ("contactor", "open"), ("enabled", "true"),
                          ("charging_allowed", "true"),
                          ("reserved", "false"), ("faults", "[]"), ("faulted", "false"), ("current_limit", "None"),
                          ("limit", "16.0"), ("pilot_state", "A"), ("power", "0.0"), ("current/l1", "0.0")]:
            await watcher.value(evse_topic(1, key), idle)
        async with Watcher(broker.port, f"{PREFIX}/evse/1/#") as late:  # retained: a late subscriber has them all
            topics = set(watcher.retained(f"{PREFIX}/evse/1/"))
            await late.until(lambda: {m.topic for m in late.messages if m.retain} == topics,
                             "every state topic from the broker's retained messages")

        await runtime.sim.plug(1)  # type: ignore[union-attr]
        await watcher.value(evse_topic(1, "plugged"), "true")
        await watcher.value(evse_topic(1, "charge_status"), "B")
        await watcher.value(evse_topic(1, "pilot_state"), "B")  # the car is connected, S2 open
        await watcher.value(evse_topic(1, "state"), runtime.evse_status(1)["state"])  # as the status document says

        assert (await runtime.present_token(1, "WALK-IN-1")).may_charge
        await watcher.value(evse_topic(1, "charging"), "true")
        await watcher.value(evse_topic(1, "charge_status"), "C")
        await watcher.value(evse_topic(1, "contactor"), "closed")
        await watcher.value(evse_topic(1, "lock"), "locked")
        await watcher.value(evse_topic(1, "state"), "Occupied")
        await watcher.value(evse_topic(1, "power"), _number(1000.0))  # type: ignore[arg-type]
        await watcher.value(evse_topic(1, "current/l1"), _number(10.0))  # type: ignore[arg-type]
        await watcher.value(evse_topic(1, "pilot_state"), "C")
        # a limit the control pilot offers the car: the limit in effect and the car's current follow
        await runtime.set_current_limit(1, 8)
        await watcher.value(evse_topic(1, "limit"), "8.0")
        await watcher.value(evse_topic(1, "current/l1"), lambda p: p != "None" and abs(float(p) - 8.0) < 0.5)
        await runtime.set_current_limit(1, None)
        await watcher.value(evse_topic(1, "limit"), "16.0")
        first = float(await watcher.value(evse_topic(1, "energy"), _number(0.0)))  # type: ignore[arg-type]
        await watcher.value(evse_topic(1, "energy"), _number(first))  # type: ignore[arg-type]  # it keeps counting
        entry = json.loads(await watcher.value(evse_topic(1, "json"), lambda p: json.loads(p)["charging"]))
        assert entry == {**runtime.evse_status(1), "power_w": entry["power_w"], "energy_kwh": entry["energy_kwh"],
                         "current_a": entry["current_a"]}

        # paused (an energy manager, or a 0 A limit): not charging, the contactor open, the session and lock kept
        await runtime.set_charging_allowed(1, False)
        await watcher.value(evse_topic(1, "charging_allowed"), "false")
        await watcher.value(evse_topic(1, "charging"), "false")
        await watcher.value(evse_topic(1, "charge_status"), "B")
        await watcher.value(evse_topic(1, "contactor"), "open")
        await watcher.value(evse_topic(1, "power"), "0.0")
        assert (watcher.last[evse_topic(1, "lock")], watcher.last[evse_topic(1, "state")]) == ("locked", "Occupied")
        await runtime.set_charging_allowed(1, True)
        await watcher.value(evse_topic(1, "charging_allowed"), "true")
        await watcher.value(evse_topic(1, "charge_status"), "C")
        await runtime.set_current_limit(1, 0)
        await watcher.value(evse_topic(1, "current_limit"), "0.0")
        await watcher.value(evse_topic(1, "charge_status"), "B")
        assert watcher.last[evse_topic(1, "charging_allowed")] == "true"  # a 0 A limit is a pause of its own
        await runtime.set_current_limit(1, None)
        await watcher.value(evse_topic(1, "charge_status"), "C")

        assert (await runtime.present_token(1, "WALK-IN-1")).verdict.value == "stopped"
        await watcher.value(evse_topic(1, "charging"), "false")
        await watcher.value(evse_topic(1, "charge_status"), "B")
        await watcher.value(evse_topic(1, "power"), "0.0")
        assert watcher.last[evse_topic(2, "charge_status")] == "A"  # the other EVSE never moved


async def test_only_changed_payloads_are_published_again(tmp_path: Path, broker: Broker) -> None:
    """Idle EVSE 1 changes nothing: while EVSE 2 is plugged in, no topic of EVSE 1 is published again."""
    settings = mqtt_config(broker.url, publish_interval_s=0.2)
    async with running_sim(tmp_path / "state", settings) as (built, _), \
            Watcher(broker.port, f"{PREFIX}/evse/#") as watcher:
        await watcher.value(evse_topic(1, "power"), "0.0")
        await watcher.value(evse_topic(2, "lock"), "unlocked")
        mark = watcher.mark()
        await built.runtime.sim.plug(2)  # type: ignore[union-attr]  # a change after quiet periods comes through
        await watcher.value(evse_topic(2, "plugged"), "true")
        changed = {m.topic for m in watcher.messages[mark:]}
        assert not any(topic.startswith(f"{PREFIX}/evse/1/") for topic in changed), changed


async def test_a_reservation_shows_reserved(tmp_path: Path, broker: Broker) -> None:
    async with running_sim(tmp_path / "state", mqtt_config(broker.url)), Watcher(broker.port) as watcher:
        await watcher.value(evse_topic(2, "reserved"), "false")
        reservation = {"reservation_id": 7, "id_token": "ALICE-0001", "expiry_time": "2099-01-01T00:00:00Z",
                       "evse_id": 2}
        answer = await watcher.request(f"{PREFIX}/reserve", json.dumps(reservation), f"{PREFIX}/reserve/result")
        assert answer == {"command": "reserve", "reservation_id": 7, "result": "Accepted"}
        await watcher.value(evse_topic(2, "reserved"), "true")
        await watcher.value(evse_topic(2, "state"), "Reserved")
        await watcher.value(evse_topic(2, "lock"), "locked")
        assert "ALICE" not in "".join(m.payload for m in watcher.messages if m.retain), "an id token in a state topic"
        answer = await watcher.request(f"{PREFIX}/cancel", "7", f"{PREFIX}/cancel/result")
        assert answer == {"command": "cancel", "reservation_id": 7, "cancelled": True}
        await watcher.value(evse_topic(2, "reserved"), "false")
        await watcher.value(evse_topic(2, "state"), "Available")


async def test_availability_is_online_then_offline_after_an_orderly_stop(tmp_path: Path, broker: Broker) -> None:
    async with Watcher(broker.port, f"{PREFIX}/availability") as watcher:
        async with running_sim(tmp_path / "state", mqtt_config(broker.url)):
            await watcher.value(f"{PREFIX}/availability", "online")
            async with Watcher(broker.port, f"{PREFIX}/availability") as late:  # retained
                await late.value(f"{PREFIX}/availability", "online")
        await watcher.value(f"{PREFIX}/availability", "offline")
    async with Watcher(broker.port, f"{PREFIX}/availability") as late:  # retained for whoever comes later
        await late.value(f"{PREFIX}/availability", "offline")
