"""EVSE, status and simulation endpoints."""

from __future__ import annotations

from controller.port.charger import SimFaultKind

from .conftest import Start
from .fake_charger import FakeCharger
from .http_helpers import Api

LATER = "2026-11-21T13:00:00Z"
EVSE_KEYS = {
    "id", "state", "plugged_in", "reserved", "reserved_led", "status_led", "lock",
    "contactor", "charging", "power_w", "faults", "connectors",
}  # fmt: skip


async def test_status_has_the_documented_shape(api: Api) -> None:
    reply = await api.call("GET", "/status")
    assert reply.status == 200
    assert set(reply.json) == {"evses", "reservations", "store"}
    assert reply.json["store"] == {"ok": True, "error": None, "unsynced_ends": 0}
    assert [e["id"] for e in reply.json["evses"]] == [1, 2]
    for evse in reply.json["evses"]:
        assert set(evse) == EVSE_KEYS
        assert evse["connectors"] == [{"id": 1, "type": "cType2", "state": "Available"}]


async def test_present_token_uses_refuses_and_allows(api: Api) -> None:
    body = {"reservation_id": 1, "id_token": "DRIVER-AAA", "expiry_time": LATER, "evse_id": 1}
    await api.call("POST", "/reservations", body)

    other = await api.call("POST", "/evses/1/token", {"id_token": "DRIVER-BBB"})
    assert other.status == 200
    assert other.json == {
        "evse_id": 1,
        "may_charge": False,
        "verdict": "refused_reserved_for_other",
        "reason": "reserved for another token",
        "reservation_id": None,
    }
    used = (await api.call("POST", "/evses/1/token", {"id_token": "driver-aaa"})).json
    assert (used["verdict"], used["may_charge"], used["reservation_id"]) == ("reservation_used", True, 1)
    assert (await api.call("GET", "/reservations")).json == {"reservations": []}
    allowed = (await api.call("POST", "/evses/2/token", {"id_token": "DRIVER-CCC"})).json
    assert (allowed["verdict"], allowed["may_charge"]) == ("allowed", True)


async def test_unknown_evse_is_404_naming_the_evse(api: Api) -> None:
    for method, path, body in (
        ("POST", "/evses/9/token", {"id_token": "DRIVER-AAA"}),
        ("POST", "/evses/9/enable", None),
        ("POST", "/evses/0/disable", None),
        ("POST", "/sim/evses/9/plug", None),
        ("POST", "/sim/faults", {"evse_id": 9, "kind": "weld"}),
    ):
        reply = await (api.call(method, path, body) if body is not None else api.call(method, path))
        assert reply.status == 404, path
        assert reply.error_body() == {"error": reply.json["error"], "field": "evse_id"}
        assert "unknown evse" in reply.json["error"] and "known: 1, 2" in reply.json["error"]


async def test_enable_and_disable(api: Api) -> None:
    reply = await api.call("POST", "/evses/2/disable")
    assert (reply.status, reply.json) == (200, {"evse_id": 2, "enabled": False})
    assert (await api.call("GET", "/status")).json["evses"][1]["state"] == "Unavailable"
    assert (await api.call("POST", "/evses/2/enable")).json == {"evse_id": 2, "enabled": True}
    assert (await api.call("GET", "/status")).json["evses"][1]["state"] == "Available"


async def test_sim_controls_reach_the_plant(api: Api) -> None:
    assert (await api.call("POST", "/sim/evses/1/plug")).json == {"evse_id": 1, "action": "plug", "kind": None}
    assert (await api.call("GET", "/status")).json["evses"][0]["plugged_in"] is True
    assert (await api.call("POST", "/sim/evses/1/unplug")).json["action"] == "unplug"
    fault = await api.call("POST", "/sim/faults", {"evse_id": 2, "kind": "lock_jam"})
    assert fault.json == {"evse_id": 2, "action": "fault", "kind": "lock_jam"}
    assert (await api.call("GET", "/status")).json["evses"][1]["faults"] == ["lock_jam"]
    assert api.charger.fake_sim.calls == [("plug", 1, None), ("unplug", 1, None), ("fault", 2, SimFaultKind.LOCK_JAM)]


async def test_sim_endpoints_without_sim_are_404_saying_so(start: Start) -> None:
    api = await start(FakeCharger(sim=False))
    for path, body in (("/sim/evses/1/plug", None), ("/sim/evses/1/unplug", None), ("/sim/faults", {})):
        reply = await (api.call("POST", path, body) if body is not None else api.call("POST", path))
        assert reply.status == 404
        assert "only under `charger-controller run --sim`" in reply.error_body()["error"]


async def test_bad_fault_requests_name_the_field(api: Api) -> None:
    cases = [
        ({"evse_id": 1, "kind": "fire"}, "kind"),
        ({"evse_id": "1", "kind": "weld"}, "evse_id"),
        ({"kind": "weld"}, "evse_id"),
        ({"evse_id": 1, "kind": "weld", "extra": 1}, "extra"),
    ]
    for body, field in cases:
        reply = await api.call("POST", "/sim/faults", body)
        assert (reply.status, reply.error_body()["field"]) == (422, field), body


async def test_status_passes_the_chargers_document_through_unfiltered(api: Api) -> None:
    document = {"evses": [{"id": 1, "phase": "idle", "energy_kwh": 1.5, "reserved_led": "pulse"}], "reservations": []}
    api.charger.status = lambda: document  # the runtime adds fields; the API neither drops nor polices them
    assert (await api.call("GET", "/status")).json == document
