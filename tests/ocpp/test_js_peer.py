"""Self-tests of the independent JS peer (tests/ocpp/js/csms.js on ocpp-rpc, strict mode) and its Python wrapper.

The fake station is the one of tests/ocpp/test_csms_harness.py (the ``ocpp`` library's ChargePoint as a client).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from ocpp.exceptions import SecurityError
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from .csms import CallErrorReceived, utc_now_iso
from .jspeer import JsCsms, js_peer_unavailable
from .test_csms_harness import STATION, boot_201, connection_of, fake_station, status_201


async def raw_call(websocket: Any, action: str, payload: dict[str, Any]) -> list[Any]:
    """Send one CALL on a bare websocket and return the answer frame."""
    await websocket.send(json.dumps([2, f"raw-{action}", action, payload]))
    return json.loads(await asyncio.wait_for(websocket.recv(), 5))  # type: ignore[no-any-return]


async def test_boot_and_status_notification(js_csms: JsCsms) -> None:
    """A 2.0.1 station boots and reports a status; the peer answers validly and reports both CALLs."""
    assert js_csms.strict_datetime is True
    async with fake_station(js_csms.url) as station:
        connected = await js_csms.wait_connected()
        assert connected == {"event": "connected", "identity": STATION, "protocol": "ocpp2.0.1"}
        boot = await station.call(boot_201(), suppress=False)
        assert boot.status == "Accepted" and boot.interval == 300 and boot.current_time.endswith("Z")
        await station.call(status_201(1, "Available"), suppress=False)
        await station.call(call201.Heartbeat(), suppress=False)
        assert (await js_csms.expect("BootNotification"))["reason"] == "PowerUp"
        status = await js_csms.expect("StatusNotification", lambda p: p["evseId"] == 1)
        assert status["connectorStatus"] == "Available"
        assert js_csms.calls[0]["response"]["status"] == "Accepted"
    await js_csms.wait_disconnected()
    assert [c["action"] for c in js_csms.calls] == ["BootNotification", "StatusNotification", "Heartbeat"]


async def test_v16_boot_authorize_and_transactions(js_csms: JsCsms) -> None:
    """1.6: boot status and interval as set, parentIdTag from the authorize table, increasing transactionIds."""
    await js_csms.set_boot_status("Pending", interval=5)
    await js_csms.authorize("TAG1", "Accepted", "PARENT")
    async with fake_station(js_csms.url, version="1.6") as station:
        boot = await station.call(call16.BootNotification(charge_point_model="Sim", charge_point_vendor="Test"))
        assert (boot.status, boot.interval) == ("Pending", 5)
        authorized = await station.call(call16.Authorize(id_tag="TAG1"))
        assert authorized.id_tag_info == {"status": "Accepted", "parent_id_tag": "PARENT"}
        ids = []
        for connector in (1, 2):
            started = await station.call(
                call16.StartTransaction(connector_id=connector, id_tag="TAG1", meter_start=0, timestamp=utc_now_iso())
            )
            ids.append(started.transaction_id)
        assert ids == [1, 2]
        await station.call(
            call16.StopTransaction(meter_stop=5, timestamp=utc_now_iso(), transaction_id=1), suppress=False
        )
        await js_csms.respond("DataTransfer", {"status": "Accepted", "data": "hello"})
        transfer = await station.call(call16.DataTransfer(vendor_id="x"))
        assert (transfer.status, transfer.data) == ("Accepted", "hello")
        await js_csms.respond("Heartbeat", error=("SecurityError", "not today"))
        with pytest.raises(SecurityError):
            await station.call(call16.Heartbeat(), suppress=False)
        await js_csms.respond("Heartbeat")
        assert (await station.call(call16.Heartbeat())).current_time.endswith("Z")
    assert (await js_csms.expect("StopTransaction"))["meterStop"] == 5


async def test_strict_validation_rejects_what_breaks_the_schema(js_csms: JsCsms) -> None:
    """An unknown property, a bad enum, a naive timestamp: CALLERRORs, reported as the station's validation errors."""
    good = {"timestamp": utc_now_iso(), "connectorStatus": "Available", "evseId": 1, "connectorId": 1}
    async with connect(js_csms.station_url(STATION), subprotocols=["ocpp2.0.1"], proxy=None) as websocket:
        assert (await raw_call(websocket, "StatusNotification", good))[0] == 3
        extra = await raw_call(websocket, "StatusNotification", {**good, "colour": "green"})
        assert extra[0] == 4 and extra[2] == "PropertyConstraintViolation"
        enum = await raw_call(websocket, "StatusNotification", {**good, "connectorStatus": "Sleeping"})
        assert enum[0] == 4 and enum[2] == "FormatViolation"
        naive = await raw_call(websocket, "StatusNotification", {**good, "timestamp": "2026-12-06T10:00:00"})
        assert naive[0] == 4 and naive[2] == "FormatViolation"
        with pytest.raises(AssertionError, match="rejected the station's StatusNotification"):
            await js_csms.expect("StatusNotification", lambda p: p["connectorStatus"] == "Sleeping", timeout=1)
    errors = js_csms.station_validation_errors()
    assert [(e["action"], e["isCall"], e["code"]) for e in errors] == [
        ("StatusNotification", True, "PropertyConstraintViolation"),
        ("StatusNotification", True, "FormatViolation"),
        ("StatusNotification", True, "FormatViolation"),
    ]
    assert "colour" in json.dumps(errors[0]) and "date-time" in errors[2]["message"]
    with pytest.raises(AssertionError, match="problem"):
        js_csms.assert_valid()
    js_csms.take_validation_errors()
    assert len(js_csms.received("StatusNotification")) == 1  # only the valid one reached a handler


async def test_calls_from_the_peer(js_csms: JsCsms) -> None:
    """A CSMS call is answered; invalid params are refused before sending; the station's answers are validated."""
    reserve = {"id": 1, "expiryDateTime": utc_now_iso(600), "idToken": {"idToken": "TAG1", "type": "ISO14443"}}
    async with fake_station(js_csms.url):
        await js_csms.wait_connected()
        assert await js_csms.call("ReserveNow", reserve) == {"status": "Accepted"}
        assert await js_csms.call_raw("CancelReservation", {"reservationId": 1}) == ("result", {"status": "Accepted"})
        with pytest.raises(CallErrorReceived) as error:
            await js_csms.call("UnlockConnector", {"evseId": 1, "connectorId": 1})
        assert error.value.code == "NotImplemented"

        refused = await js_csms.call_raw("ReserveNow", {**reserve, "id": "one"})
        assert refused[0] == "error" and refused[1] == "TypeConstraintViolation"
        outbound = await js_csms.expect_validation_error("ReserveNow", outbound=True)
        assert outbound["isCall"] is True

        invalid_answer = await js_csms.call_raw("TriggerMessage", {"requestedMessage": "Heartbeat"})
        assert invalid_answer[0] == "error"
        inbound = await js_csms.expect_validation_error("TriggerMessage")
        assert (inbound["isCall"], inbound["result"]) == (False, {"status": "Maybe"})


async def test_disconnect_reconnect_and_restart(js_csms: JsCsms) -> None:
    """disconnect() closes the station's connection (1001); the peer restarts on the same port."""
    async with fake_station(js_csms.url) as station:
        await station.call(boot_201())
        await js_csms.disconnect()
        await asyncio.wait_for(connection_of(station).wait_closed(), 5)
        assert connection_of(station).close_code == 1001
    async with fake_station(js_csms.url) as again:
        assert (await js_csms.wait_connected(count=2))["identity"] == STATION
        await again.call(boot_201())
        port = js_csms.port
        await js_csms.stop()
        await asyncio.wait_for(connection_of(again).wait_closed(), 5)
    await js_csms.start()
    assert js_csms.port == port
    async with fake_station(js_csms.url) as third:
        await third.call(boot_201())
        await js_csms.wait_connected(count=3)
    assert len(js_csms.received("BootNotification")) == 3


async def test_handshake_checks() -> None:
    """No common subprotocol: 400; wrong path: 404; Basic auth: a wrong or missing password gets 401."""
    reason = js_peer_unavailable()
    if reason is not None:
        pytest.skip(reason)
    async with JsCsms(password="s3cret") as peer:
        for offered, password, status in ((["ocpp1.5"], "s3cret", 400), (None, "wrong", 401), (None, None, 401)):
            with pytest.raises(InvalidStatus) as refused:
                async with fake_station(peer.url, password=password, subprotocols=offered):
                    pass
            assert refused.value.response.status_code == status
        with pytest.raises(InvalidStatus) as refused:
            await connect(f"ws://127.0.0.1:{peer.port}/other/{STATION}", subprotocols=["ocpp2.0.1"], proxy=None)
        assert refused.value.response.status_code == 404
        async with fake_station(peer.url, password="s3cret") as station:
            assert (await station.call(boot_201())).status == "Accepted"
        await peer.wait_disconnected()
        assert peer.auth_failures == 2
        assert [r["status"] for r in peer.rejections] == [400, 401, 401, 404]
        peer.assert_valid()
