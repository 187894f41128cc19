"""The contract with evcc's ``charger: type: custom`` on its MQTT plugin, as README "evcc" configures it.

evcc (plugin/mqtt.go, plugin/helper.go setFormattedValue) publishes a setter's value with Go's ``%v``, either
bare (no ``payload`` template) or in place of ``${param}`` in the template (util.ReplaceFormatted): ``enable``
is a bool, so ``true`` or ``false``; ``maxcurrent`` an int64, so ``16``; at QoS 1, not retained. It reads
``status`` with api.ChargeStatusString (the first letter A, B or C, any case; E/F are errors; B is "connected,
not charging", which a paused car is), ``enabled`` with cast.ToBoolE, ``power``/``energy``/``currents`` with
strconv.ParseFloat. This test sends exactly those payloads to exactly the README's topics, reads the topics back
with those rules, and checks what the simulated charger really does: evcc's enable pauses and resumes charging
within the session (``charging_allowed``), never the operator's enable.
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
STATUS, ENABLED, ENABLE, MAXCURRENT = (f"{EVSE}/charge_status", f"{EVSE}/charging_allowed",
                                       f"{EVSE}/charging_allowed/set", f"{EVSE}/current_limit/set")
POWER, ENERGY, CONTACTOR, LOCK = f"{EVSE}/power", f"{EVSE}/energy", f"{EVSE}/contactor", f"{EVSE}/lock"
CURRENTS = [f"{EVSE}/current/l{n}" for n in (1, 2, 3)]
ENABLE_TEMPLATE = "${enable}"  # the README's payload template of evcc's enable setter
PLACEHOLDER = re.compile(r"\$\{(\w+)(:([a-zA-Z0-9%.]+))?\}")  # util.ReplaceFormatted's (legacy) placeholders


def go_value(value: bool | int) -> str:
    """Go's ``%v`` of a bool or an int64."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def evcc_payload(template: str, param: str, value: bool | int) -> str:
    """setFormattedValue: the bare ``%v`` without a template, else the template with ``${param}`` replaced."""
    if not template:
        return go_value(value)
    assert "{{" not in template, "a Go template: not modelled here"

    def replace(match: re.Match[str]) -> str:
        assert match[1].lower() == param and not match[3], f"not modelled here: {match[0]}"
        return go_value(value)

    return PLACEHOLDER.sub(replace, template)


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
    """The README's example is what this test exercises: the same topic suffixes and payload templates."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("\n## evcc\n"):]
    section = section[:section.index("\n## ", 1)]
    for key, suffix in [("status", "charge_status"), ("enabled", "charging_allowed"),
                        ("enable", "charging_allowed/set"), ("maxcurrent", "current_limit/set"), ("power", "power"),
                        ("energy", "energy")]:
        assert re.search(rf"\n    {key}:\n      source: mqtt\n      topic: charger-controller/garage-pi/evse/1/"
                         rf"{re.escape(suffix)}\n", section), key
    # the one template: evcc's enable writes its bool in place of ${enable}; every other setter publishes bare
    assert re.findall(r"\n *payload: *(.*)\n", section) == [ENABLE_TEMPLATE]
    assert f"/charging_allowed/set\n      payload: {ENABLE_TEMPLATE}\n" in section
    assert "/enabled" not in section.split("```yaml", 1)[1].split("```", 1)[0]  # not the operator's enable
    for phase in (1, 2, 3):
        assert f"topic: charger-controller/garage-pi/evse/1/current/l{phase}\n" in section


def test_evcc_payloads_are_the_bare_values() -> None:
    """What evcc publishes with the README's configuration: ``true``/``false`` and the amperes as an integer."""
    assert evcc_payload(ENABLE_TEMPLATE, "enable", True) == "true"
    assert evcc_payload(ENABLE_TEMPLATE, "enable", False) == "false"
    assert evcc_payload("", "maxcurrent", 16) == "16"


async def test_evcc_pauses_and_resumes_a_session_without_a_new_token(tmp_path: Path, broker: Broker) -> None:
    async with running_sim(tmp_path / "state", mqtt_config(broker.url)) as (built, _), \
            Watcher(broker.port) as evcc:
        runtime = built.runtime
        # evcc at start: status A (no car), enabled true
        assert charge_status(await evcc.value(STATUS, "A")) == "A"
        assert to_bool(await evcc.value(ENABLED, "true")) is True

        # evcc's maxcurrent(16), then a car arrives and is authorized: B, then C with power flowing
        await evcc.publish(MAXCURRENT, evcc_payload("", "maxcurrent", 16))
        await evcc.value(f"{EVSE}/current_limit", "16.0")
        assert runtime.evse_status(1)["current_limit_a"] == 16.0
        await runtime.sim.plug(1)  # type: ignore[union-attr]
        assert charge_status(await evcc.value(STATUS, "B")) == "B"
        assert (await runtime.present_token(1, "EVCC-CAR-01")).may_charge
        assert charge_status(await evcc.value(STATUS, "C")) == "C"
        await evcc.value(CONTACTOR, "closed")
        await evcc.value(POWER, lambda p: parse_float(p) > 1000.0)
        assert parse_float(evcc.last[ENERGY]) >= 0.0
        await evcc.value(CURRENTS[0], lambda p: parse_float(p) > 10.0)
        assert all(parse_float(evcc.last[topic]) >= 0.0 for topic in CURRENTS)

        # evcc's enable(false) (PV surplus gone): paused. The contactor opens, evcc reads enabled false and status
        # B (connected, not charging); the session, its authorization and the cable lock are kept
        await evcc.publish(ENABLE, evcc_payload(ENABLE_TEMPLATE, "enable", False))
        assert to_bool(await evcc.value(ENABLED, "false")) is False
        await evcc.value(CONTACTOR, "open")
        assert charge_status(await evcc.value(STATUS, lambda p: p != "C")) == "B"
        await evcc.value(POWER, "0.0")
        paused = runtime.evse_status(1)
        assert (paused["charging_allowed"], paused["charging"], paused["contactor"]) == (False, False, "open")
        assert (paused["phase"], paused["lock"], paused["state"]) == ("charging", "locked", "Occupied"), paused
        assert paused["enabled"] is True and evcc.last[f"{EVSE}/enabled"] == "true"  # still available
        assert evcc.last[LOCK] == "locked"

        # evcc's maxcurrent(6) while paused: recorded, still paused
        await evcc.publish(MAXCURRENT, evcc_payload("", "maxcurrent", 6))
        await evcc.value(f"{EVSE}/current_limit", "6.0")
        assert runtime.evse_status(1)["contactor"] == "open" and charge_status(evcc.last[STATUS]) == "B"

        # evcc's enable(true) (surplus back): charging resumes in the same session, no token presented: C
        await evcc.publish(ENABLE, evcc_payload(ENABLE_TEMPLATE, "enable", True))
        assert to_bool(await evcc.value(ENABLED, "true")) is True
        assert charge_status(await evcc.value(STATUS, "C")) == "C"
        await evcc.value(CONTACTOR, "closed")
        await evcc.value(POWER, lambda p: parse_float(p) > 1000.0)
        assert runtime.evse_status(1)["charging_allowed"] is True
        # evcc modulates: the control pilot offers its maxcurrent (6 A) and the car draws that, then 10 A
        await evcc.value(CURRENTS[0], lambda p: abs(parse_float(p) - 6.0) < 0.5)
        await evcc.publish(MAXCURRENT, evcc_payload("", "maxcurrent", 10))
        await evcc.value(CURRENTS[0], lambda p: abs(parse_float(p) - 10.0) < 0.5)
        assert runtime.evse_status(1)["pilot"]["advertised_a"] == 10.0

        # stopped at the car (the same token: the session it started is still the one running), the cable
        # released, the car leaves: B, then A
        assert (await runtime.present_token(1, "EVCC-CAR-01")).verdict.value == "stopped"
        assert charge_status(await evcc.value(STATUS, "B")) == "B"
        await evcc.value(LOCK, "unlocked")
        await runtime.sim.unplug(1)  # type: ignore[union-attr]
        assert charge_status(await evcc.value(STATUS, "A")) == "A"
        # evcc's setters were answered (and never refused) on the result topic
        results = [m.payload for m in evcc.messages if m.topic == f"{EVSE}/result"]
        assert len(results) == 5 and not any('"error"' in r for r in results), results
        assert '{"command":"charging_allowed","evse_id":1,"charging_allowed":false}' in results


async def test_a_car_authorized_while_evcc_has_it_disabled_waits_for_enable(tmp_path: Path, broker: Broker) -> None:
    """evcc disables an idle charger: a car that arrives and is authorized then stays at B until evcc enables."""
    async with running_sim(tmp_path / "state", mqtt_config(broker.url)) as (built, _), \
            Watcher(broker.port) as evcc:
        runtime = built.runtime
        await evcc.publish(ENABLE, evcc_payload(ENABLE_TEMPLATE, "enable", False))
        assert to_bool(await evcc.value(ENABLED, "false")) is False
        assert evcc.last[f"{EVSE}/state"] == "Available"  # paused, not out of service: it takes a car
        await runtime.sim.plug(1)  # type: ignore[union-attr]
        assert (await runtime.present_token(1, "EVCC-CAR-02")).may_charge
        await evcc.value(LOCK, "locked")
        assert charge_status(await evcc.value(STATUS, "B")) == "B"
        assert runtime.evse_status(1)["contactor"] == "open"

        await evcc.publish(ENABLE, evcc_payload(ENABLE_TEMPLATE, "enable", True))
        assert charge_status(await evcc.value(STATUS, "C")) == "C"
        await evcc.value(CONTACTOR, "closed")
