"""Every command over a real broker, each answered on its result topic; bad payloads are answered with an error
naming the field, and the bridge keeps serving after each of them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controller.core.store import StoreError

from .broker import Broker
from .mqtt_helpers import PREFIX, Watcher, evse_topic, mqtt_config, running_sim

RESULT_1 = f"{PREFIX}/evse/1/result"
RESERVE, RESERVE_RESULT = f"{PREFIX}/reserve", f"{PREFIX}/reserve/result"
CANCEL, CANCEL_RESULT = f"{PREFIX}/cancel", f"{PREFIX}/cancel/result"
ERROR = f"{PREFIX}/error"


def _reservation(reservation_id: int, **changes: object) -> str:
    """A Reservation of EVSE 1 for BOB as JSON, with ``changes`` over it."""
    body: dict[str, object] = {"reservation_id": reservation_id, "id_token": "BOB-000042",
                               "expiry_time": "2099-01-01T00:00:00Z", "evse_id": 1}
    return json.dumps({**body, **changes})


async def test_enable_and_disable_take_every_spelling(tmp_path: Path, broker: Broker) -> None:
    async with running_sim(tmp_path / "state", mqtt_config(broker.url)) as (built, _), \
            Watcher(broker.port) as watcher:
        for payload, enabled in [("false", False), ("TRUE", True), ("OFF", False), ("on", True), ("0", False),
                                 ("1", True), (" Off\n", False), ("true", True)]:
            answer = await watcher.request(f"{PREFIX}/evse/1/enabled/set", payload, RESULT_1)
            assert answer == {"command": "enabled", "evse_id": 1, "enabled": enabled}, payload
            assert built.runtime.evse_status(1)["enabled"] is enabled
            await watcher.value(evse_topic(1, "enabled"), "true" if enabled else "false")
            await watcher.value(evse_topic(1, "state"), "Available" if enabled else "Unavailable")


async def test_charging_allowed_pauses_and_resumes_with_every_spelling(tmp_path: Path, broker: Broker) -> None:
    """The pause of an energy manager: the EVSE stays Available (unlike the operator's disable), the state topic
    follows, and the operator's enable is untouched."""
    async with running_sim(tmp_path / "state", mqtt_config(broker.url)) as (built, _), \
            Watcher(broker.port) as watcher:
        await watcher.value(evse_topic(1, "charging_allowed"), "true")
        for payload, allowed in [("false", False), ("TRUE", True), ("OFF", False), ("on", True), ("0", False),
                                 ("1", True), (" Off\n", False), ("true", True)]:
            answer = await watcher.request(f"{PREFIX}/evse/1/charging_allowed/set", payload, RESULT_1)
            assert answer == {"command": "charging_allowed", "evse_id": 1, "charging_allowed": allowed}, payload
            assert built.runtime.evse_status(1)["charging_allowed"] is allowed
            await watcher.value(evse_topic(1, "charging_allowed"), "true" if allowed else "false")
            assert watcher.last[evse_topic(1, "state")] == "Available"
            assert watcher.last[evse_topic(1, "enabled")] == "true"
        assert built.runtime.evse_status(2)["charging_allowed"] is True


async def test_reset_answers_with_the_faults_still_active(tmp_path: Path, broker: Broker) -> None:
    async with running_sim(tmp_path / "state", mqtt_config(broker.url)) as (built, _), \
            Watcher(broker.port) as watcher:
        answer = await watcher.request(f"{PREFIX}/evse/2/reset/set", "PRESS", f"{PREFIX}/evse/2/result")
        assert answer == {"command": "reset", "evse_id": 2, "faults": []}
        assert built.runtime.evse_status(2)["faults"] == []


async def test_current_limit_is_recorded_shown_and_removed(tmp_path: Path, broker: Broker) -> None:
    async with running_sim(tmp_path / "state", mqtt_config(broker.url)) as (built, _), \
            Watcher(broker.port) as watcher:
        topic = f"{PREFIX}/evse/1/current_limit/set"
        for payload, limit in [("16", 16.0), ("6.5", 6.5), ("0", 0.0), ("80", 80.0), ("None", None), ("32", 32.0),
                               ("", None)]:
            answer = await watcher.request(topic, payload, RESULT_1)
            # 0 is enforced (a pause); the other limits are enforced by the control pilot the sim EVSEs have
            piloted = built.runtime.evse_status(1)["pilot"] is not None
            assert answer == {"command": "current_limit", "evse_id": 1, "current_limit_a": limit,
                              "enforced": limit == 0 or (limit is not None and piloted)}
            assert built.runtime.evse_status(1)["current_limit_a"] == limit
            await watcher.value(evse_topic(1, "current_limit"), "None" if limit is None else json.dumps(limit))
        for payload in ["5", "81", "-6", "nan", "inf", "sixteen", "1e400"]:
            answer = await watcher.request(topic, payload, RESULT_1)
            assert answer["field"] == "payload" and answer["command"] == "current_limit", (payload, answer)
            assert "current" in answer["error"] or "amperes" in answer["error"], answer
        assert built.runtime.evse_status(1)["current_limit_a"] is None  # the last good one: "" removed it
        assert built.runtime.evse_status(2)["current_limit_a"] is None


async def test_reserve_and_cancel_are_answered_with_the_result(tmp_path: Path, broker: Broker) -> None:
    async with running_sim(tmp_path / "state", mqtt_config(broker.url)) as (built, _), \
            Watcher(broker.port) as watcher:
        assert await watcher.request(RESERVE, _reservation(1), RESERVE_RESULT) == {
            "command": "reserve", "reservation_id": 1, "result": "Accepted"}
        assert [r.reservation_id for r in built.runtime.reservations()] == [1]
        global_one = json.dumps({"reservation_id": 2, "id_token": "CAROL-0001", "expiry_time": "2099-01-01T00:00:00Z"})
        assert (await watcher.request(RESERVE, global_one, RESERVE_RESULT))["result"] == "Accepted"
        # EVSE 1 is reserved for BOB: a reservation of EVSE 1 for someone else is the core's to refuse
        third = _reservation(3, id_token="DAVE-00001")
        assert (await watcher.request(RESERVE, third, RESERVE_RESULT))["result"] in ("Occupied", "Rejected")

        assert await watcher.request(CANCEL, "1", CANCEL_RESULT) == {
            "command": "cancel", "reservation_id": 1, "cancelled": True}
        assert await watcher.request(CANCEL, '{"reservation_id": 2}', CANCEL_RESULT) == {
            "command": "cancel", "reservation_id": 2, "cancelled": True}
        assert await watcher.request(CANCEL, "1", CANCEL_RESULT) == {
            "command": "cancel", "reservation_id": 1, "cancelled": False}
        assert built.runtime.reservations() == []


async def test_a_store_that_cannot_write_is_an_error_to_retry(tmp_path: Path, broker: Broker,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    async with running_sim(tmp_path / "state", mqtt_config(broker.url)) as (built, _), \
            Watcher(broker.port) as watcher:
        def refuse(*_args: object) -> object:
            """A store that cannot write, as a full disk makes it."""
            raise StoreError("disk full")

        monkeypatch.setattr(built.runtime, "reserve", refuse)
        monkeypatch.setattr(built.runtime, "cancel", refuse)
        answer = await watcher.request(RESERVE, _reservation(4), RESERVE_RESULT)
        assert answer == {"command": "reserve", "reservation_id": 4,
                          "error": "store unavailable, retry: disk full", "field": None}
        answer = await watcher.request(CANCEL, "4", CANCEL_RESULT)
        assert answer == {"command": "cancel", "reservation_id": 4,
                          "error": "store unavailable, retry: disk full", "field": None}


BAD = [
    # (topic, payload, answer topic, expected field, a word the error must hold)
    (RESERVE, "{not json", RESERVE_RESULT, None, "not JSON"),
    (RESERVE, "[1, 2]", RESERVE_RESULT, None, "JSON object"),
    (RESERVE, _reservation(5, expiry_time=1234), RESERVE_RESULT, "expiry_time", "RFC3339"),
    (RESERVE, _reservation(5, evse_id="one"), RESERVE_RESULT, "evse_id", "integer"),
    (RESERVE, _reservation(5, colour="red"), RESERVE_RESULT, "colour", "unknown field"),
    (RESERVE, _reservation(5, id_token=""), RESERVE_RESULT, "id_token", "empty"),
    (RESERVE, _reservation(5, expiry_time="tomorrow"), RESERVE_RESULT, "expiry_time", "RFC3339"),
    (RESERVE, json.dumps({"id_token": "X-00000001", "expiry_time": "2099-01-01T00:00:00Z"}), RESERVE_RESULT,
     "reservation_id", "required"),
    (RESERVE, b"\xff\xfe", RESERVE_RESULT, None, "UTF-8"),
    (RESERVE, "x" * 5000, RESERVE_RESULT, None, "too large"),
    (CANCEL, "seven", CANCEL_RESULT, None, "not JSON"),
    (CANCEL, '"7"', CANCEL_RESULT, "reservation_id", "integer"),
    (CANCEL, "-1", CANCEL_RESULT, "reservation_id", "non-negative"),
    (CANCEL, '{"id": 7}', CANCEL_RESULT, "id", "unknown field"),
    (CANCEL, "{}", CANCEL_RESULT, "reservation_id", "required"),
    (f"{PREFIX}/evse/1/enabled/set", "maybe", RESULT_1, "payload", "true/false"),
    (f"{PREFIX}/evse/1/enabled/set", "", RESULT_1, "payload", "true/false"),
    (f"{PREFIX}/evse/1/charging_allowed/set", "paused", RESULT_1, "payload", "true/false"),
    (f"{PREFIX}/evse/1/charging_allowed/set", "2", RESULT_1, "payload", "true/false"),
    (f"{PREFIX}/evse/1/charging_allowed/set", b"\xff", RESULT_1, None, "UTF-8"),
    (f"{PREFIX}/evse/9/charging_allowed/set", "false", ERROR, "evse_id", "unknown EVSE"),
    (f"{PREFIX}/evse/1/current_limit/set", "[16]", RESULT_1, "payload", "amperes"),
    (f"{PREFIX}/evse/1/brightness/set", "50", RESULT_1, "command", "unknown command"),
    (f"{PREFIX}/evse/9/enabled/set", "true", ERROR, "evse_id", "unknown EVSE"),
    (f"{PREFIX}/evse/0/reset/set", "PRESS", ERROR, "evse_id", "unknown EVSE"),
    (f"{PREFIX}/evse/one/reset/set", "PRESS", ERROR, "evse_id", "unknown EVSE"),
    (f"{PREFIX}/evse/99999999999999999999/reset/set", "PRESS", ERROR, "evse_id", "unknown EVSE"),
]


async def test_bad_payloads_are_answered_naming_the_field_and_the_bridge_stays_up(tmp_path: Path,
                                                                                   broker: Broker) -> None:
    async with running_sim(tmp_path / "state", mqtt_config(broker.url)) as (built, bridge), \
            Watcher(broker.port) as watcher:
        for topic, payload, answer_topic, field, word in BAD:
            answer = await watcher.request(topic, payload, answer_topic)
            assert answer["field"] == field, (topic, payload, answer)
            assert word in answer["error"], (topic, payload, answer)
            if answer_topic == ERROR:
                assert answer["topic"] == topic
            # still alive and serving: a good command right after each bad one
            ok = await watcher.request(f"{PREFIX}/evse/2/enabled/set", "true", f"{PREFIX}/evse/2/result")
            assert ok == {"command": "enabled", "evse_id": 2, "enabled": True}
        assert bridge.connected and bridge.connections == 1
        assert built.runtime.reservations() == []
        assert built.runtime.evse_status(1)["enabled"] is True
        assert built.runtime.evse_status(1)["charging_allowed"] is True  # no bad payload paused it


async def test_a_retained_command_is_not_carried_out(tmp_path: Path, broker: Broker) -> None:
    """A retained command would run again at every reconnect: it is refused, and says why."""
    async with running_sim(tmp_path / "state", mqtt_config(broker.url)) as (built, _), \
            Watcher(broker.port) as watcher:
        topic = f"{PREFIX}/evse/1/enabled/set"
        mark = watcher.mark()
        await watcher.publish(topic, "false", retain=True)
        await watcher.publish(topic, b"", retain=True)  # cleared again: the broker keeps nothing
        # the live delivery of a retained publish carries no retain flag (MQTT 3.1.1): it is carried out once
        answer = json.loads((await watcher.after(mark, RESULT_1)).payload)
        assert answer["enabled"] is False
        await watcher.request(topic, "true", RESULT_1)

        await watcher.publish(f"{PREFIX}/evse/2/enabled/set", "false", retain=True)  # left on the broker
    async with Watcher(broker.port, f"{PREFIX}/evse/2/result") as results, \
            running_sim(tmp_path / "state2", mqtt_config(broker.url)) as (built, _):
        # the new bridge gets the retained command at subscribe time, with the retain flag: refused
        answer = json.loads((await results.after(0, f"{PREFIX}/evse/2/result")).payload)
        assert answer["field"] is None and "retained command ignored" in answer["error"]
        assert built.runtime.evse_status(2)["enabled"] is True
