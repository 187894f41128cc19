"""Reservation endpoints against a real reservation core: happy paths and JSON shapes."""

from __future__ import annotations

from .http_helpers import Api

LATER = "2026-11-21T13:00:00Z"


def reservation(rid: int, token: str = "CARD-0001", **extra: object) -> dict[str, object]:
    return {"reservation_id": rid, "id_token": token, "expiry_time": LATER, **extra}


async def test_reserve_then_list_then_cancel(api: Api) -> None:
    reply = await api.call("POST", "/reservations", reservation(7, evse_id=1, connector_type="cType2"))
    assert (reply.status, reply.json) == (200, {"result": "Accepted"})

    listed = await api.call("GET", "/reservations")
    assert listed.status == 200
    assert listed.json == {
        "reservations": [
            {
                "reservation_id": 7,
                "id_token": "CARD-0001",
                "expiry_time": LATER,
                "evse_id": 1,
                "connector_type": "cType2",
            }
        ]
    }

    assert (await api.call("DELETE", "/reservations/7")).json == {"cancelled": True}
    assert (await api.call("DELETE", "/reservations/7")).json == {"cancelled": False}
    assert (await api.call("GET", "/reservations")).json == {"reservations": []}


async def test_reserve_answers_every_result_from_the_core(api: Api) -> None:
    assert (await api.call("POST", "/reservations", reservation(1, evse_id=1))).json == {"result": "Accepted"}
    assert (await api.call("POST", "/reservations", reservation(2, evse_id=1))).json == {"result": "Occupied"}
    past = {**reservation(3), "expiry_time": "2026-11-21T11:00:00Z"}
    assert (await api.call("POST", "/reservations", past)).json == {"result": "Rejected"}
    # an EVSE the site does not have is the core's to reject, not a 404
    assert (await api.call("POST", "/reservations", reservation(4, evse_id=9))).json == {"result": "Rejected"}


async def test_previous_shape_without_evse_and_type_is_a_global_reservation(api: Api) -> None:
    body = {"reservation_id": 5, "id_token": "OLD-SHAPE", "expiry_time": "2026-11-21T13:00:00+01:00"}
    assert (await api.call("POST", "/reservations", body)).json == {"result": "Accepted"}
    listed = (await api.call("GET", "/reservations")).json["reservations"]
    assert listed == [{"reservation_id": 5, "id_token": "OLD-SHAPE", "expiry_time": "2026-11-21T12:00:00Z"}]


async def test_check_reports_the_four_statuses_shape(api: Api) -> None:
    await api.call("POST", "/reservations", reservation(1, "OWNER-TOKEN", evse_id=1, parent_id_token="FLEET-A"))
    cases = [
        ({"id_token": "owner-token", "evse_id": 1}, "ReservedForToken"),
        ({"id_token": "SOMEONE", "evse_id": 1}, "ReservedForOtherTokenAndHasParentToken"),
        ({"id_token": "SOMEONE", "evse_id": 1, "group_id_token": "FLEET-B"}, "ReservedForOtherToken"),
        ({"id_token": "SOMEONE", "evse_id": 2}, "NotReserved"),
        ({"id_token": "SOMEONE"}, "NotReserved"),
    ]
    for body, expected in cases:
        reply = await api.call("POST", "/reservations/check", body)
        assert (reply.status, reply.json) == (200, {"status": expected}), body


async def test_a_reservation_shows_in_status(api: Api) -> None:
    await api.call("POST", "/reservations", reservation(3, evse_id=2))
    doc = (await api.call("GET", "/status")).json
    evse2 = doc["evses"][1]
    assert (evse2["id"], evse2["reserved"], evse2["reserved_led"]) == (2, True, "on")
    assert [r["reservation_id"] for r in doc["reservations"]] == [3]
