"""``GET /events``: server-sent events from the charger's EventHub, per-client bounded queues."""

from __future__ import annotations

import asyncio

from controller.api.events import encode_event

from .conftest import Start
from .http_helpers import Api, SseReader, frame_seq, parse_frame

LATER = "2026-11-21T13:00:00Z"


async def wait_for_subscribers(api: Api, count: int) -> None:
    for _ in range(200):
        if len(api.charger.events._subscribers) == count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"expected {count} subscribers, have {len(api.charger.events._subscribers)}")


async def test_an_event_published_after_connect_arrives(api: Api) -> None:
    sse = await SseReader.open(api.port)
    assert sse.status == 200
    assert await sse.frame() == ": connected\n\n"
    body = {"reservation_id": 4, "id_token": "DRIVER-AAA", "expiry_time": LATER, "evse_id": 2}
    await api.call("POST", "/reservations", body)
    frames = [parse_frame(await sse.frame()) for _ in range(2)]
    assert frames == [
        ("reservation_update", {"type": "reservation_update", "reservation_id": 4, "reservation_status": "Placed"}),
        ("evse_reserved", {"type": "evse_reserved", "evse_id": 2, "reserved": True, "reason": None}),
    ]
    await api.call("POST", "/sim/evses/1/plug")
    kind, doc = parse_frame(await sse.frame())
    assert (kind, doc["id"], doc["plugged_in"]) == ("evse_state", 1, True)
    await sse.close()


async def test_disconnect_unsubscribes(api: Api) -> None:
    first, second = await SseReader.open(api.port), await SseReader.open(api.port)
    for sse in (first, second):
        await sse.frame()
    await wait_for_subscribers(api, 2)
    await first.close()
    await wait_for_subscribers(api, 1)
    api.charger.events.publish({"type": "token", "evse_id": 1})
    assert parse_frame(await second.frame()) == ("token", {"type": "token", "evse_id": 1})
    await second.close()
    await wait_for_subscribers(api, 0)


async def test_a_slow_client_loses_the_oldest_events_and_is_told(start: Start) -> None:
    api = await start(sse_queue_limit=3)
    sse = await SseReader.open(api.port)
    await sse.frame()
    for n in range(10):  # published in one go: the stream cannot send in between
        api.charger.events.publish({"type": "token", "n": n})
    assert parse_frame(await sse.frame()) == ("overflow", {"type": "overflow", "dropped": 7})
    assert [parse_frame(await sse.frame())[1]["n"] for _ in range(3)] == [7, 8, 9]
    await sse.close()


async def test_keep_alive_comments_while_idle(start: Start) -> None:
    api = await start(sse_keepalive_s=0.05)
    sse = await SseReader.open(api.port)
    assert await sse.frame() == ": connected\n\n"
    assert await sse.frame(timeout=2) == ": keep-alive\n\n"
    await sse.close()


async def test_an_event_that_is_not_json_is_skipped_without_hurting_the_publisher(api: Api) -> None:
    sse = await SseReader.open(api.port)
    await sse.frame()
    api.charger.events.publish({"type": "token", "bad": object()})
    api.charger.events.publish({"type": "token", "ok": True})
    assert parse_frame(await sse.frame()) == ("token", {"type": "token", "ok": True})
    await sse.close()


def test_frames_cannot_be_split_by_a_newline_in_the_type() -> None:
    assert encode_event({"type": "a\nb", "x": "line\nbreak"}) == (
        b'event: a b\ndata: {"type":"a\\nb","x":"line\\nbreak"}\n\n'
    )


async def test_since_replays_kept_events_and_last_event_id_resumes(api: Api) -> None:
    for n in range(5):
        api.charger.events.publish({"type": "token", "n": n})
    everything = await SseReader.open(api.port, path="/events?since=0")
    await everything.frame()
    assert [parse_frame(await everything.frame())[1]["n"] for _ in range(5)] == [0, 1, 2, 3, 4]
    await everything.close()
    resumed = await SseReader.open(api.port, headers={"Last-Event-ID": "3"})  # saw seq 1..3 (n 0..2)
    await resumed.frame()
    assert [parse_frame(await resumed.frame())[1]["n"] for _ in range(2)] == [3, 4]
    api.charger.events.publish({"type": "token", "n": 5})
    frame = await resumed.frame()
    assert parse_frame(frame)[1]["n"] == 5 and frame_seq(frame) == 6
    await resumed.close()


async def test_a_catch_up_older_than_what_is_kept_is_told_how_much_it_missed(api: Api) -> None:
    api.charger.events.history_limit = 3
    for n in range(6):
        api.charger.events.publish({"type": "token", "n": n})
    sse = await SseReader.open(api.port, path="/events?since=1")
    await sse.frame()
    assert parse_frame(await sse.frame()) == ("overflow", {"type": "overflow", "dropped": 2})  # seq 2 and 3 gone
    assert [parse_frame(await sse.frame())[1]["n"] for _ in range(3)] == [3, 4, 5]
    await sse.close()


async def test_a_bad_last_event_id_is_a_422_naming_the_header(api: Api) -> None:
    reply = await api.call("GET", "/events", headers={"Last-Event-ID": "yesterday"})
    assert reply.status == 422
    assert reply.error_body()["field"] == "Last-Event-ID"
    reply = await api.call("GET", "/events?since=-1")
    assert reply.status == 422 and reply.error_body()["field"] == "since"
