"""An EVSE's entry of the status document as retained topic payloads: plain text values and one JSON document.

Booleans are ``true``/``false`` (Home Assistant's payload_on/off here, and truthy for evcc's bool getter);
numbers are plain decimals; an unknown value is ``None``, the one payload Home Assistant takes as "unknown".
Meter readings (power, energy, phase currents) are kept apart: they are published every publish_interval_s,
everything else when it changes (and the whole-entry JSON at both).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from controller.mqtt.topics import Topics

NONE = "None"  # Home Assistant's PAYLOAD_NONE: the state becomes unknown
PHASES = ("l1", "l2", "l3")

# The connector states a "state" topic can hold: the status document's, and Reserved (see connector_state).
CONNECTOR_STATES = ("Available", "Reserved", "Occupied", "Faulted", "Unavailable", "FaultedOccupied",
                    "UnavailableFaulted")
LOCK_STATES = ("locked", "unlocked", "moving", "fault")
CHARGE_STATUSES = ("A", "B", "C")
PILOT_STATES = ("A", "B", "C", "D", "E", "F")  # IEC 61851-1's CP states, as the status document's pilot.state


def flag(value: object) -> str:
    """``true``/``false`` (``None`` when unknown)."""
    if value is None:
        return NONE
    return "true" if value else "false"


def number(value: object, digits: int) -> str:
    """A reading rounded to ``digits`` decimals as plain text (``None`` when unknown)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return NONE
    return json.dumps(round(float(value), digits))


def connector_state(entry: Mapping[str, Any]) -> str:
    """The status document's state, but ``Reserved`` for an Available EVSE held by a reservation (as OCPP says)."""
    state = str(entry.get("state"))
    return "Reserved" if state == "Available" and entry.get("reserved") else state


def charge_status(entry: Mapping[str, Any]) -> str:
    """evcc's charge status: ``A`` no car plugged, ``B`` plugged but not charging (a paused session too: its
    contactor is open), ``C`` charging."""
    if not entry.get("plugged_in"):
        return "A"
    return "C" if entry.get("charging") else "B"


def pilot_state(entry: Mapping[str, Any]) -> str:
    """The control pilot's state A..F (``None`` without a pilot, or before its first confirmed reading)."""
    pilot = entry.get("pilot")
    state = pilot.get("state") if isinstance(pilot, Mapping) else None
    return str(state) if state in PILOT_STATES else NONE


def state_payloads(topics: Topics, entry: Mapping[str, Any]) -> dict[str, str]:
    """The retained state topics of one EVSE (all but the meter readings, which its JSON holds too) and payloads."""
    evse_id = int(entry["id"])
    faults = [str(f) for f in entry.get("faults", [])]
    values = {
        "state": connector_state(entry),
        "plugged": flag(entry.get("plugged_in")),
        "charging": flag(entry.get("charging")),
        "reserved": flag(entry.get("reserved")),
        "lock": str(entry.get("lock")),
        "contactor": str(entry.get("contactor")),
        "enabled": flag(entry.get("enabled", True)),
        "charging_allowed": flag(entry.get("charging_allowed", True)),
        "faults": json.dumps(faults),
        "faulted": flag(bool(faults)),
        "current_limit": number(entry.get("current_limit_a"), 1),
        "limit": number(entry.get("limit_a"), 1),
        "pilot_state": pilot_state(entry),
        "charge_status": charge_status(entry),
        "json": json.dumps(dict(entry), separators=(",", ":"), sort_keys=True),  # the whole entry, for Node-RED
    }
    return {topics.evse(evse_id, key): payload for key, payload in values.items()}


def measurement_payloads(topics: Topics, entry: Mapping[str, Any]) -> dict[str, str]:
    """The meter reading topics of one EVSE (power W, energy kWh, current A per phase) and their payloads."""
    evse_id = int(entry["id"])
    currents = entry.get("current_a") or [None, None, None]
    values = {
        "power": number(entry.get("power_w"), 1),
        "energy": number(entry.get("energy_kwh"), 3),
        **{f"current/{phase}": number(current, 2) for phase, current in zip(PHASES, currents, strict=False)},
    }
    return {topics.evse(evse_id, key): payload for key, payload in values.items()}
