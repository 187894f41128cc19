"""What Home Assistant's MQTT integration requires of a discovery config, written down as checks.

From Home Assistant's MQTT discovery documentation and its sensor constants: the schema of each component
(required topics), the device block, and the device classes with the units and state classes valid for
them (``DEVICE_CLASS_UNITS``, ``DEVICE_CLASS_STATE_CLASSES``). Only the classes the bridge may use are listed;
anything else is reported, so a new entity has to be checked against Home Assistant before it passes.
"""

from __future__ import annotations

import re
from typing import Any

TOPIC_LEVEL = re.compile(r"[^+#\x00]+")
DISCOVERY_TOPIC = re.compile(r"(?P<prefix>.+)/(?P<component>[a-z_]+)/(?P<node>[A-Za-z0-9_-]+)/"
                             r"(?P<object>[A-Za-z0-9_-]+)/config")
SENSOR_UNITS = {"power": {"W", "kW", "MW"}, "energy": {"Wh", "kWh", "MWh"}, "current": {"A", "mA"}}
SENSOR_STATE_CLASSES = {"power": {"measurement"}, "energy": {"total", "total_increasing"},
                        "current": {"measurement"}, "enum": set()}
BINARY_SENSOR_CLASSES = {"plug", "battery_charging", "problem", "power", "connectivity", "lock", "running"}
BUTTON_CLASSES = {"identify", "restart", "update"}
NUMBER_UNITS = {"current": {"A", "mA"}}
ENTITY_CATEGORIES = {"sensor": {"diagnostic"}, "binary_sensor": {"diagnostic"},
                     "switch": {"config", "diagnostic"}, "button": {"config", "diagnostic"},
                     "number": {"config", "diagnostic"}}
REQUIRED_TOPICS = {"sensor": ("state_topic",), "binary_sensor": ("state_topic",), "switch": ("command_topic",),
                   "button": ("command_topic",), "number": ("command_topic",)}


def _topic_ok(topic: object) -> bool:
    return isinstance(topic, str) and bool(topic) and all(TOPIC_LEVEL.fullmatch(level) for level in topic.split("/"))


def problems(topic: str, config: dict[str, Any]) -> list[str]:
    """Everything Home Assistant would refuse or warn about in this discovery config (empty: fine)."""
    found: list[str] = []
    match = DISCOVERY_TOPIC.fullmatch(topic)
    if match is None:
        return [f"{topic}: not <prefix>/<component>/<node_id>/<object_id>/config"]
    component = match["component"]
    if component not in REQUIRED_TOPICS:
        return [f"{topic}: component {component} is not one the bridge should use"]
    for key in ("unique_id", "name"):
        if not isinstance(config.get(key), str) or not config[key]:
            found.append(f"{key} missing")
    for key in (*REQUIRED_TOPICS[component], "availability_topic"):
        if not _topic_ok(config.get(key)):
            found.append(f"{key} missing or not a topic")
    for key in ("state_topic", "command_topic"):
        if key in config and not _topic_ok(config[key]):
            found.append(f"{key} is not a topic")
    device = config.get("device")
    if not isinstance(device, dict):
        found.append("device missing")
    else:
        ids = device.get("identifiers")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i for i in ids):
            found.append("device.identifiers must be a non-empty list of strings")
        for key in ("name", "manufacturer", "model", "sw_version"):
            if not isinstance(device.get(key), str) or not device[key]:
                found.append(f"device.{key} missing")
    category = config.get("entity_category")
    if category is not None and category not in ENTITY_CATEGORIES[component]:
        found.append(f"entity_category {category!r} is not allowed for a {component}")
    device_class, unit, state_class = (config.get(k) for k in ("device_class", "unit_of_measurement", "state_class"))
    if component == "sensor":
        found += _sensor(device_class, unit, state_class, config)
    elif component == "binary_sensor":
        if device_class is not None and device_class not in BINARY_SENSOR_CLASSES:
            found.append(f"binary_sensor device_class {device_class!r} unknown")
        if config.get("payload_on") == config.get("payload_off"):
            found.append("payload_on equals payload_off")
    elif component == "switch":
        if config.get("payload_on") == config.get("payload_off"):
            found.append("payload_on equals payload_off")
    elif component == "button":
        if device_class is not None and device_class not in BUTTON_CLASSES:
            found.append(f"button device_class {device_class!r} unknown")
    elif component == "number":
        if device_class is not None and unit not in NUMBER_UNITS.get(device_class, set()):
            found.append(f"number device_class {device_class!r} with unit {unit!r}")
        low, high, step = config.get("min", 1), config.get("max", 100), config.get("step", 1)
        if not low < high or not step > 0:
            found.append(f"number range min {low}, max {high}, step {step}")
    return [f"{topic}: {problem}" for problem in found]


def _sensor(device_class: Any, unit: Any, state_class: Any, config: dict[str, Any]) -> list[str]:
    """The device class, unit, state class and options of a sensor, as Home Assistant pairs them."""
    found: list[str] = []
    if device_class == "enum" or "options" in config:
        if device_class != "enum":
            found.append("options need device_class enum")
        options = config.get("options")
        if not isinstance(options, list) or not options or not all(isinstance(o, str) for o in options):
            found.append("an enum sensor needs a non-empty list of options")
        if unit is not None or state_class is not None:
            found.append("an enum sensor may have neither unit_of_measurement nor state_class")
        return found
    if device_class is not None:
        if device_class not in SENSOR_UNITS:
            found.append(f"sensor device_class {device_class!r} is not one the bridge should use")
        elif unit not in SENSOR_UNITS[device_class]:
            found.append(f"unit {unit!r} is not valid for device_class {device_class}")
        if state_class is not None and state_class not in SENSOR_STATE_CLASSES.get(device_class, set()):
            found.append(f"state_class {state_class!r} is not valid for device_class {device_class}")
    elif state_class is not None and unit is None and "value_template" not in config:
        found.append("a state_class without a unit")
    return found


def state_fits(component: str, config: dict[str, Any], state: str) -> bool:
    """Whether a retained state payload is one this entity understands (``None`` means unknown)."""
    if state == "None":
        return True
    if component in ("binary_sensor", "switch"):
        return state in (config.get("payload_on", "ON"), config.get("payload_off", "OFF"))
    if config.get("device_class") == "enum":
        return state in config["options"]
    if "unit_of_measurement" in config:
        try:
            float(state)
        except ValueError:
            return False
    return True
