"""Home Assistant discovery on a real broker: every retained config is one Home Assistant accepts, its states fit
it, unique ids survive a restart, and Home Assistant's ``online`` announcement brings every config back."""

from __future__ import annotations

import json
from pathlib import Path

from .broker import Broker
from .ha_rules import DISCOVERY_TOPIC, problems, state_fits
from .mqtt_helpers import DISCOVERY, PREFIX, Watcher, evse_topic, mqtt_config, running_sim

# What each EVSE must offer in Home Assistant: (component, object id suffix, device class or None)
EXPECTED = {
    ("sensor", "state", "enum"), ("sensor", "power", "power"), ("sensor", "energy", "energy"),
    ("sensor", "current_l1", "current"), ("sensor", "current_l2", "current"), ("sensor", "current_l3", "current"),
    ("sensor", "lock", "enum"), ("sensor", "charge_status", "enum"), ("sensor", "faults", None),
    ("sensor", "pilot_state", "enum"), ("sensor", "limit", "current"),
    ("binary_sensor", "plugged", "plug"), ("binary_sensor", "charging", "battery_charging"),
    ("binary_sensor", "reserved", None), ("binary_sensor", "faulted", "problem"),
    ("binary_sensor", "contactor", "power"), ("switch", "enabled", None), ("switch", "charging_allowed", None),
    ("button", "reset", None), ("number", "current_limit", "current"),
}


async def _configs(watcher: Watcher) -> dict[str, dict[str, object]]:
    """The discovery configs the watcher has, once all of both EVSEs' have arrived."""
    await watcher.until(lambda: len(watcher.retained(f"{DISCOVERY}/")) >= 2 * len(EXPECTED), "every discovery config")
    return {topic: json.loads(payload) for topic, payload in watcher.retained(f"{DISCOVERY}/").items()}


async def test_every_discovery_config_is_one_home_assistant_accepts(tmp_path: Path, broker: Broker) -> None:
    async with running_sim(tmp_path / "state", mqtt_config(broker.url)), Watcher(broker.port) as watcher:
        configs = await _configs(watcher)
        await watcher.value(evse_topic(2, "charge_status"), "A")  # the state is there too

        assert [p for topic, config in configs.items() for p in problems(topic, config)] == []
        found = set()
        for topic, config in configs.items():
            match = DISCOVERY_TOPIC.fullmatch(topic)
            assert match is not None and match["prefix"] == DISCOVERY
            evse, _, key = match["object"].partition("_")
            assert evse in ("evse1", "evse2"), topic
            found.add((evse, match["component"], key, config.get("device_class")))
            assert config["availability_topic"] == f"{PREFIX}/availability"
            assert (config["payload_available"], config["payload_not_available"]) == ("online", "offline")
            assert config["device"]["identifiers"] == [f"test_cc_{evse}"]  # type: ignore[index]
            for key_name in ("state_topic", "command_topic"):
                if key_name in config:
                    assert str(config[key_name]).startswith(f"{PREFIX}/evse/{evse[4:]}/"), (topic, config)
            if "state_topic" in config:  # the retained state is one this entity understands
                state = watcher.last.get(str(config["state_topic"]))
                assert state is not None, f"no retained state on {config['state_topic']}"
                assert state_fits(match["component"], config, state), (topic, state)
        assert found == {(f"evse{n}", c, k, d) for n in (1, 2) for c, k, d in EXPECTED}
        unique_ids = [config["unique_id"] for config in configs.values()]
        assert len(set(unique_ids)) == len(unique_ids)
        number = configs[f"{DISCOVERY}/number/test_cc/evse1_current_limit/config"]
        assert number["command_topic"] == f"{PREFIX}/evse/1/current_limit/set"
        assert (number["min"], number["max"], number["unit_of_measurement"]) == (0, 80.0, "A")
        switch = configs[f"{DISCOVERY}/switch/test_cc/evse1_enabled/config"]
        assert (switch["command_topic"], switch["state_topic"]) == (f"{PREFIX}/evse/1/enabled/set",
                                                                    f"{PREFIX}/evse/1/enabled")
        assert "Available" in str(switch["name"])  # the operator's enable is the EVSE's availability
        pause = configs[f"{DISCOVERY}/switch/test_cc/evse2_charging_allowed/config"]
        assert pause["unique_id"] == "test_cc_evse2_charging_allowed" and pause["name"] == "Charging allowed"
        assert (pause["command_topic"], pause["state_topic"]) == (f"{PREFIX}/evse/2/charging_allowed/set",
                                                                  f"{PREFIX}/evse/2/charging_allowed")
        assert (pause["payload_on"], pause["payload_off"]) == ("true", "false")
        button = configs[f"{DISCOVERY}/button/test_cc/evse2_reset/config"]
        assert button["command_topic"] == f"{PREFIX}/evse/2/reset/set"
    async with Watcher(broker.port, f"{DISCOVERY}/#") as late:  # retained: still there after the bridge left
        assert await _configs(late) == configs
        assert all(m.retain for m in late.messages)


async def test_unique_ids_are_the_same_after_a_restart(tmp_path: Path, broker: Broker) -> None:
    settings = mqtt_config(broker.url)
    ids = []
    for run in range(2):
        async with running_sim(tmp_path / "state", settings), Watcher(broker.port, f"{DISCOVERY}/#") as watcher:
            configs = await _configs(watcher)
            ids.append(sorted(str(config["unique_id"]) for config in configs.values()))
            assert all(str(config["unique_id"]).startswith("test_cc_evse") for config in configs.values()), run
    assert ids[0] == ids[1]


async def test_home_assistant_online_brings_every_config_back(tmp_path: Path, broker: Broker) -> None:
    """A Home Assistant that lost its discovery state (a broker without the retained configs) announces itself
    with ``homeassistant/status online``: the bridge publishes every config again, though none changed."""
    async with running_sim(tmp_path / "state", mqtt_config(broker.url)), Watcher(broker.port) as watcher:
        configs = await _configs(watcher)
        for topic in configs:  # as if the broker had lost them
            await watcher.publish(topic, b"", retain=True)
        await watcher.until(lambda: not any(watcher.retained(f"{DISCOVERY}/").values()), "configs cleared")

        await watcher.publish(f"{DISCOVERY}/status", "online")
        await watcher.until(lambda: all(watcher.last.get(topic) for topic in configs), "every config again")
        assert {t: json.loads(watcher.last[t]) for t in configs} == configs


async def test_home_assistant_offline_is_not_an_announcement(tmp_path: Path, broker: Broker) -> None:
    async with running_sim(tmp_path / "state", mqtt_config(broker.url)), Watcher(broker.port) as watcher:
        configs = await _configs(watcher)
        topic = next(iter(configs))
        await watcher.publish(topic, b"", retain=True)
        await watcher.value(topic, "")
        await watcher.publish(f"{DISCOVERY}/status", "offline")
        mark = watcher.mark()
        # a command round trip proves the bridge has read the "offline" before it: still no config again
        await watcher.request(f"{PREFIX}/evse/1/enabled/set", "true", f"{PREFIX}/evse/1/result")
        assert all(m.topic != topic for m in watcher.messages[mark:])
