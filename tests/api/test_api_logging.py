"""Logs never carry a full id token (our lines redact, the access log has no bodies); serving twice."""

from __future__ import annotations

import asyncio
import logging

import pytest

from controller.api.app import create_app
from controller.api.server import bound_port, serve

from .fake_charger import FakeCharger
from .http_helpers import SseReader, call_sync, parse_frame

SECRET = "DRIVER-SECRET-4711"


async def test_tokens_are_redacted_in_every_log_line(caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(FakeCharger())
    ready, stop = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(serve(app, "127.0.0.1", 0, ready=ready, stop=stop))  # with the access log
    with caplog.at_level(logging.INFO):
        await ready.wait()
        port = bound_port(app)
        body = {"reservation_id": 1, "id_token": SECRET, "expiry_time": "2026-11-21T13:00:00Z", "evse_id": 1}
        await asyncio.to_thread(call_sync, port, "POST", "/reservations", body)
        await asyncio.to_thread(call_sync, port, "POST", "/evses/1/token", {"id_token": SECRET})
        stop.set()
        await task
    messages = [r.getMessage() for r in caplog.records]
    assert any("POST /evses/1/token" in m for m in messages if "HTTP/1.1" in m)  # the access log ran
    assert any("DR...11" in m for m in messages)
    assert not [m for m in messages if SECRET in m or SECRET.lower() in m]


async def test_the_same_app_can_be_served_again_after_a_stop() -> None:
    charger = FakeCharger()
    app = create_app(charger)
    for round_ in range(2):
        ready, stop = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(serve(app, "127.0.0.1", 0, ready=ready, stop=stop))
        await ready.wait()
        sse = await SseReader.open(bound_port(app))
        await sse.frame()
        charger.events.publish({"type": "token", "round": round_})
        assert parse_frame(await sse.frame()) == ("token", {"type": "token", "round": round_})
        stop.set()
        await task
        await sse.close()
