"""Home Assistant MQTT discovery: one device per EVSE with its sensors, binary sensors, switches, button and number.

Each config is published retained to ``<discovery_prefix>/<component>/<node_id>/<object_id>/config``; its
``unique_id`` is made of the node id (from topic_prefix) and the EVSE id only, so it is the same after a
restart and Home Assistant keeps the entity's history and settings. Device classes, units and state classes
are pairs Home Assistant accepts (power W measurement, energy kWh total_increasing, current A measurement,
enum sensors with their options and neither unit nor state class).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from controller.mqtt.state import CHARGE_STATUSES, CONNECTOR_STATES, LOCK_STATES, PHASES, PILOT_STATES
from controller.mqtt.topics import OFFLINE, ONLINE, EvseCommand, Topics
from controller.port.charger import MAX_CURRENT_LIMIT_A

MANUFACTURER = "charger-controller"
MODEL = "charger-controller EVSE"
PRESS = "PRESS"  # Home Assistant's button payload


@dataclass(frozen=True, slots=True)
class Entity:
    """One discovered entity of an EVSE: its component, object id (key) and the config fields of its kind."""

    component: str  # sensor, binary_sensor, switch, button, number
    key: str  # object id within the EVSE, also the last level of its state topic where it has one
    name: str
    fields: dict[str, Any] = field(default_factory=dict)
    state: str | None = None  # state topic key, when it reads one


def _flag(**extra: Any) -> dict[str, Any]:
    """The payloads of a boolean state topic (``true``/``false``)."""
    return {"payload_on": "true", "payload_off": "false", **extra}


def _enum(options: tuple[str, ...], **extra: Any) -> dict[str, Any]:
    """An enum sensor: Home Assistant requires the options, and no unit or state class with them."""
    return {"device_class": "enum", "options": list(options), **extra}


def _measure(device_class: str, unit: str, state_class: str, precision: int) -> dict[str, Any]:
    """A numeric sensor with a device class, its unit and state class."""
    return {"device_class": device_class, "unit_of_measurement": unit, "state_class": state_class,
            "suggested_display_precision": precision}


DIAGNOSTIC = {"entity_category": "diagnostic"}

ENTITIES: tuple[Entity, ...] = (
    Entity("sensor", "state", "Connector state", _enum(CONNECTOR_STATES, icon="mdi:ev-station"), "state"),
    Entity("sensor", "power", "Power", _measure("power", "W", "measurement", 0), "power"),
    Entity("sensor", "energy", "Energy", _measure("energy", "kWh", "total_increasing", 3), "energy"),
    *(Entity("sensor", f"current_{p}", f"Current {p.upper()}", _measure("current", "A", "measurement", 1),
             f"current/{p}") for p in PHASES),
    Entity("sensor", "lock", "Cable lock", _enum(LOCK_STATES, icon="mdi:lock", **DIAGNOSTIC), "lock"),
    Entity("sensor", "charge_status", "Charge status", _enum(CHARGE_STATUSES, **DIAGNOSTIC), "charge_status"),
    Entity("sensor", "pilot_state", "Control pilot state", _enum(PILOT_STATES, icon="mdi:car-electric", **DIAGNOSTIC),
           "pilot_state"),
    Entity("sensor", "limit", "Current limit in effect", _measure("current", "A", "measurement", 1), "limit"),
    Entity("sensor", "faults", "Faults",
           {"value_template": "{{ value_json | join(', ') if value_json else 'none' }}", "icon": "mdi:alert",
            **DIAGNOSTIC}, "faults"),
    Entity("binary_sensor", "plugged", "Plugged in", _flag(device_class="plug"), "plugged"),
    Entity("binary_sensor", "charging", "Charging", _flag(device_class="battery_charging"), "charging"),
    Entity("binary_sensor", "reserved", "Reserved", _flag(icon="mdi:calendar-clock"), "reserved"),
    Entity("binary_sensor", "faulted", "Fault", _flag(device_class="problem"), "faulted"),
    Entity("binary_sensor", "contactor", "Contactor",
           {"payload_on": "closed", "payload_off": "open", "device_class": "power", **DIAGNOSTIC}, "contactor"),
    # the operator's enable: off makes the EVSE Unavailable and ends its session (key kept: a stable unique id)
    Entity("switch", "enabled", "Available (operator enable)", _flag(icon="mdi:power"), "enabled"),
    # a pause within the session (an energy manager's enable): off opens the contactor, session and lock stay
    Entity("switch", "charging_allowed", "Charging allowed", _flag(icon="mdi:play-pause"), "charging_allowed"),
    Entity("button", "reset", "Reset faults", {"payload_press": PRESS, "entity_category": "config"}),
    Entity("number", "current_limit", "Current limit (0 A pauses)",
           {"device_class": "current", "unit_of_measurement": "A", "min": 0, "max": MAX_CURRENT_LIMIT_A,
            "step": 1, "mode": "box", "entity_category": "config"}, "current_limit"),
)
COMMANDS = {"enabled": EvseCommand.ENABLED, "charging_allowed": EvseCommand.CHARGING_ALLOWED,
            "reset": EvseCommand.RESET, "current_limit": EvseCommand.CURRENT_LIMIT}


def software_version() -> str:
    """The installed charger-controller version, for the device card ("unknown" in a bare checkout)."""
    try:
        return version("charger-controller")
    except PackageNotFoundError:
        return "unknown"


def device(topics: Topics, evse_id: int, sw_version: str) -> dict[str, Any]:
    """The Home Assistant device of one EVSE."""
    host = topics.prefix.rsplit("/", 1)[-1]
    return {
        "identifiers": [f"{topics.node_id}_evse{evse_id}"],
        "name": f"{host} EVSE {evse_id}",
        "manufacturer": MANUFACTURER,
        "model": MODEL,
        "sw_version": sw_version,
    }


def discovery_configs(topics: Topics, evse_ids: list[int], sw_version: str) -> dict[str, str]:
    """Every discovery config topic and its JSON payload, for these EVSEs."""
    out: dict[str, str] = {}
    for evse_id in evse_ids:
        dev = device(topics, evse_id, sw_version)
        for entity in ENTITIES:
            object_id = f"evse{evse_id}_{entity.key}"
            config: dict[str, Any] = {
                "unique_id": f"{topics.node_id}_{object_id}",
                "name": entity.name,
                "availability_topic": topics.availability,
                "payload_available": ONLINE,
                "payload_not_available": OFFLINE,
                "device": dev,
                **entity.fields,
            }
            if entity.state is not None:
                config["state_topic"] = topics.evse(evse_id, entity.state)
            if entity.key in COMMANDS:
                config["command_topic"] = topics.command(evse_id, COMMANDS[entity.key])
            out[topics.discovery(entity.component, object_id)] = json.dumps(config, sort_keys=True)
    return out
