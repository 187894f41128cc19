"""Self-tests of the Python CSMS harness (tests/ocpp/csms.py), driven by a minimal fake station.

The fake station is the ``ocpp`` library's ChargePoint on the client side of ``websockets.asyncio.client.connect``;
tests/ocpp/test_js_peer.py uses it too.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from ocpp.exceptions import FormatViolationError, SecurityError
from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from .csms import (
    SUBPROTOCOL,
    CallErrorReceived,
    Csms,
    Pki,
    date_time_format_enforced,
    station_url,
    utc_now_iso,
    validate_payload,
)

STATION = "CS001"


class FakeStation201(ChargePoint201):
    """A minimal 2.0.1 station: accepts reservations; answers TriggerMessage with an invalid status on purpose."""

    @on("ReserveNow")
    def on_reserve_now(self, **_: Any) -> Any:
        """Accepted."""
        return result201.ReserveNow(status="Accepted")

    @on("CancelReservation")
    def on_cancel_reservation(self, **_: Any) -> Any:
        """Accepted."""
        return result201.CancelReservation(status="Accepted")

    @on("TriggerMessage", skip_schema_validation=True)
    def on_trigger_message(self, **_: Any) -> Any:
        """A status the schema does not know, so the CSMS has something to reject."""
        return result201.TriggerMessage(status="Maybe")


class FakeStation16(ChargePoint16):
    """A minimal 1.6 station: accepts reservations and remote starts."""

    @on("ReserveNow")
    def on_reserve_now(self, **_: Any) -> Any:
        """Accepted."""
        return result16.ReserveNow(status="Accepted")

    @on("RemoteStartTransaction")
    def on_remote_start_transaction(self, **_: Any) -> Any:
        """Accepted."""
        return result16.RemoteStartTransaction(status="Accepted")


@contextlib.asynccontextmanager
async def fake_station(
    base_url: str,
    station_id: str = STATION,
    version: str = "2.0.1",
    *,
    password: str | None = None,
    username: str | None = None,
    subprotocols: list[str] | None = None,
    ssl: Any = None,
) -> AsyncIterator[FakeStation201 | FakeStation16]:
    """Connect a fake station (OCPP-J: the id is the last path segment) and serve it until the block ends."""
    headers = {}
    if password is not None:
        credentials = f"{username or station_id}:{password}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(credentials).decode()
    offered = [SUBPROTOCOL[version]] if subprotocols is None else subprotocols
    websocket = await connect(
        station_url(base_url, station_id),
        subprotocols=offered or None,  # type: ignore[arg-type]  # (an empty list sends an empty, invalid header)
        additional_headers=headers,
        open_timeout=5,
        proxy=None,  # never through a proxy of the environment: the CSMS is on loopback
        **({} if ssl is None else {"ssl": ssl}),
    )
    cls = FakeStation201 if websocket.subprotocol == "ocpp2.0.1" else FakeStation16
    station = cls(station_id, websocket, response_timeout=5)
    task = asyncio.create_task(station.start())
    try:
        yield station
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
            await task
        await websocket.close()


def boot_201() -> Any:
    """A valid 2.0.1 BootNotification."""
    return call201.BootNotification(charging_station={"model": "Sim", "vendor_name": "Test"}, reason="PowerUp")


def status_201(evse_id: int = 1, status: str = "Available", timestamp: str | None = None) -> Any:
    """A 2.0.1 StatusNotification for connector 1 of an EVSE."""
    return call201.StatusNotification(
        timestamp=timestamp or utc_now_iso(), connector_status=status, evse_id=evse_id, connector_id=1
    )


def connection_of(station: Any) -> ClientConnection:
    """The fake station's websocket."""
    return station._connection  # type: ignore[no-any-return]


def test_jsonschema_checks_date_time_formats() -> None:
    """Format checking is really on (jsonschema skips formats silently without rfc3339-validator)."""
    assert date_time_format_enforced()
    status = {"timestamp": "2026-12-06T10:00:00", "connectorStatus": "Available", "evseId": 1, "connectorId": 1}
    errors = validate_payload("2.0.1", "StatusNotification", status)
    assert len(errors) == 1 and errors[0].startswith("timestamp:") and "date-time" in errors[0]
    for good in ("2026-12-06T10:00:00Z", "2026-12-06T10:00:00.5+01:00"):
        assert validate_payload("2.0.1", "StatusNotification", {**status, "timestamp": good}) == []
    assert validate_payload("1.6", "Heartbeat", {}, response=True) == ["(root): 'currentTime' is a required property"]
    assert validate_payload("1.6", "HeartbeatResponse", {}) == [
        "OCPP 1.6 has no request schema for action 'HeartbeatResponse'"
    ]


async def test_boot_heartbeat_and_status_are_recorded_and_validated(csms_201: Csms) -> None:
    """Station CALLs are recorded with their answers, every frame both ways with a time; the answers are valid."""
    async with fake_station(csms_201.url) as station:
        boot = await station.call(boot_201())
        assert boot.status == "Accepted" and boot.interval == 300 and boot.current_time.endswith("Z")
        heartbeat = await station.call(call201.Heartbeat())
        assert heartbeat.current_time.endswith("Z")
        await station.call(status_201(1))
        assert (await csms_201.expect("BootNotification"))["chargingStation"] == {"model": "Sim", "vendorName": "Test"}
        assert await csms_201.expect("Heartbeat") == {}
        assert (await csms_201.expect("StatusNotification", lambda p: p["evseId"] == 1))[
            "connectorStatus"
        ] == "Available"
        charge_point = await csms_201.wait_connected()
        assert charge_point.id == STATION and charge_point.version == "2.0.1"

    messages = csms_201.received_messages()
    assert [m.action for m in messages] == ["BootNotification", "Heartbeat", "StatusNotification"]
    assert all(m.valid and m.consumed and m.station_id == STATION and m.connection == 1 for m in messages)
    assert messages[2].response == {}
    for message in messages:
        assert validate_payload("2.0.1", message.action, message.response, response=True) == []
    inbound = [f for f in csms_201.frames if f.direction == "in"]
    outbound = [f for f in csms_201.frames if f.direction == "out"]
    assert len(inbound) == len(outbound) == 3
    assert [json.loads(f.text)[2] for f in inbound] == ["BootNotification", "Heartbeat", "StatusNotification"]
    assert all(a.at <= b.at for a, b in zip(csms_201.frames, csms_201.frames[1:], strict=False))
    assert csms_201.connections[0].subprotocol == "ocpp2.0.1" and csms_201.connections[0].authorization is None


async def test_v201_answers_follow_the_configuration(csms_201: Csms) -> None:
    """Boot status and interval, Authorize answers with a group token, TransactionEvent's idTokenInfo."""
    csms_201.set_boot_status("Pending", interval=7)
    csms_201.authorize_answers["TAG1"] = {"status": "Accepted", "groupIdToken": "GROUP1"}
    csms_201.authorize_answers["BAD"] = {"status": "Blocked"}
    async with fake_station(csms_201.url) as station:
        boot = await station.call(boot_201())
        assert (boot.status, boot.interval) == ("Pending", 7)
        csms_201.set_boot_status("Accepted")
        assert (await station.call(boot_201())).status == "Accepted"
        tag1 = await station.call(call201.Authorize(id_token={"id_token": "TAG1", "type": "ISO14443"}))
        assert tag1.id_token_info == {"status": "Accepted", "group_id_token": {"id_token": "GROUP1", "type": "Central"}}
        bad = await station.call(call201.Authorize(id_token={"id_token": "BAD", "type": "ISO14443"}))
        assert bad.id_token_info == {"status": "Blocked"}
        started = await station.call(
            call201.TransactionEvent(
                event_type="Started",
                timestamp=utc_now_iso(),
                trigger_reason="Authorized",
                seq_no=0,
                transaction_info={"transaction_id": "tx-1"},
                id_token={"id_token": "TAG1", "type": "ISO14443"},
                evse={"id": 1, "connector_id": 1},
            )
        )
        assert started.id_token_info["status"] == "Accepted"
        for request in (
            call201.MeterValues(
                evse_id=1, meter_value=[{"timestamp": utc_now_iso(), "sampled_value": [{"value": 1.5}]}]
            ),
            call201.ReservationStatusUpdate(reservation_id=0, reservation_update_status="Expired"),
            call201.NotifyEvent(
                generated_at=utc_now_iso(),
                seq_no=0,
                event_data=[
                    {
                        "event_id": 1,
                        "timestamp": utc_now_iso(),
                        "trigger": "Delta",
                        "actual_value": "true",
                        "event_notification_type": "HardWiredNotification",
                        "component": {"name": "Connector", "evse": {"id": 1, "connector_id": 1}},
                        "variable": {"name": "Problem"},
                    }
                ],
            ),
            call201.SecurityEventNotification(type="StartupOfTheDevice", timestamp=utc_now_iso()),
            call201.FirmwareStatusNotification(status="Idle"),
            call201.LogStatusNotification(status="Idle"),
            call201.NotifyReport(request_id=1, generated_at=utc_now_iso(), seq_no=0),
        ):
            await station.call(request, suppress=False)
        transfer = await station.call(call201.DataTransfer(vendor_id="x"))
        assert transfer.status == "UnknownVendorId"
    assert [m.error_code for m in csms_201.messages] == [None] * len(csms_201.messages)


async def test_v16_core_messages(csms_16: Csms) -> None:
    """1.6: parentIdTag from authorize_answers, increasing transactionIds, StopTransaction, MeterValues."""
    csms_16.authorize_answers["TAG1"] = {"status": "Accepted", "groupIdToken": "PARENT"}
    async with fake_station(csms_16.url, version="1.6") as station:
        boot = await station.call(call16.BootNotification(charge_point_model="Sim", charge_point_vendor="Test"))
        assert boot.status == "Accepted" and boot.current_time.endswith("Z")
        await station.call(call16.StatusNotification(connector_id=1, error_code="NoError", status="Available"))
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
            call16.MeterValues(
                connector_id=1,
                transaction_id=1,
                meter_value=[{"timestamp": utc_now_iso(), "sampled_value": [{"value": "12.5"}]}],
            ),
            suppress=False,
        )
        stopped = await station.call(
            call16.StopTransaction(meter_stop=10, timestamp=utc_now_iso(), transaction_id=1, id_tag="TAG1")
        )
        assert stopped.id_tag_info["parent_id_tag"] == "PARENT"
        await station.call(call16.DiagnosticsStatusNotification(status="Idle"), suppress=False)
        await station.call(call16.FirmwareStatusNotification(status="Idle"), suppress=False)
        assert (await station.call(call16.DataTransfer(vendor_id="x"))).status == "UnknownVendorId"
    starts = csms_16.received_messages("StartTransaction")
    assert [m.response["transactionId"] for m in starts if m.response] == [1, 2]
    assert csms_16.connections[0].version == "1.6"


async def test_a_naive_timestamp_is_a_schema_failure(csms_201: Csms) -> None:
    """A timestamp without a UTC offset: CALLERROR FormatViolation, a recorded failure, assert_valid fails."""
    async with fake_station(csms_201.url) as station:
        await station.call(status_201(1, timestamp="2026-12-06T10:00:00Z"), suppress=False)
        await station.call(status_201(1, timestamp="2026-12-06T11:00:00+01:00"), suppress=False)
        assert csms_201.schema_failures == []
        with pytest.raises(FormatViolationError):
            await station.call(status_201(2, timestamp="2026-12-06T10:00:00"), suppress=False)
    with pytest.raises(AssertionError, match=r"(?s)StatusNotification: timestamp: .*date-time.*frame: .*10:00:00\""):
        csms_201.assert_valid()
    await csms_201.expect("StatusNotification")
    await csms_201.expect("StatusNotification")
    with pytest.raises(AssertionError, match="breaks the schema"):
        await csms_201.expect("StatusNotification", timeout=1)
    [failure] = csms_201.take_schema_failures()
    assert (failure.kind, failure.action, failure.station_id) == ("call", "StatusNotification", STATION)
    assert '"timestamp":"2026-12-06T10:00:00"' in failure.frame
    assert csms_201.received_messages("StatusNotification")[2].error_code == "FormatViolation"
    csms_201.assert_valid()


async def test_a_wrong_or_missing_subprotocol_is_refused(csms_201: Csms) -> None:
    """The 2.0.1 CSMS refuses ocpp1.6 and a handshake without a subprotocol (HTTP 400); both are recorded."""
    for offered in (["ocpp1.6"], ["ocpp1.5", "json"], []):
        with pytest.raises(InvalidStatus) as refused:
            async with fake_station(csms_201.url, subprotocols=offered):
                pass
        assert refused.value.response.status_code == 400
    assert [r.status for r in csms_201.rejections] == [400, 400, 400]
    assert csms_201.connections == []


async def test_both_versions_on_one_csms() -> None:
    """The default Csms speaks both; each connection gets the ChargePoint of its subprotocol."""
    async with Csms() as csms:
        async with fake_station(csms.url, "A", "1.6") as a, fake_station(csms.url, "B", "2.0.1") as b:
            await a.call(call16.Heartbeat())
            await b.call(call201.Heartbeat())
            assert (await csms.wait_connected(station_id="A")).version == "1.6"
            assert (await csms.wait_connected(station_id="B")).version == "2.0.1"
        assert [(m.station_id, m.version) for m in csms.messages] == [("A", "1.6"), ("B", "2.0.1")]
        csms.assert_valid()


async def test_unknown_path_is_404(csms_201: Csms) -> None:
    """Only <path>/<station id> is served."""
    with pytest.raises(InvalidStatus) as refused:
        await connect(f"ws://127.0.0.1:{csms_201.port}/other/{STATION}", subprotocols=["ocpp2.0.1"], proxy=None)
    assert refused.value.response.status_code == 404
    assert csms_201.rejections[0].status == 404


async def test_basic_auth_refuses_wrong_credentials_with_401() -> None:
    """Security profile 1: a wrong password, a missing header or a username other than the station id get 401."""
    async with Csms(versions=("2.0.1",), basic_auth_password="s3cret") as csms:
        for password, username in (("wrong", None), (None, None), ("s3cret", "OTHER")):
            with pytest.raises(InvalidStatus) as refused:
                async with fake_station(csms.url, password=password, username=username):
                    pass
            assert refused.value.response.status_code == 401
            assert refused.value.response.headers["WWW-Authenticate"].startswith("Basic")
        assert csms.auth_failures == 3
        assert [r.reason for r in csms.rejections] == [
            "wrong password",
            "missing Authorization",
            "username is not the station id",
        ]
        async with fake_station(csms.url, password="s3cret") as station:
            assert (await station.call(boot_201())).status == "Accepted"
        assert csms.connections[0].authorization == "Basic " + base64.b64encode(b"CS001:s3cret").decode()
        assert csms.auth_failures == 3
        csms.assert_valid()


async def test_tls_security_profile_2(ocpp_pki: Pki) -> None:
    """wss with a throwaway CA and Basic auth; a station that does not trust the CA cannot connect."""
    async with Csms(versions=("2.0.1",), ssl_context=ocpp_pki.server_context(), basic_auth_password="pw") as csms:
        assert csms.url.startswith("wss://127.0.0.1:")
        async with fake_station(csms.url, password="pw", ssl=ocpp_pki.client_context()) as station:
            assert (await station.call(boot_201())).status == "Accepted"
        with pytest.raises(OSError, match="CERTIFICATE_VERIFY_FAILED"):
            async with fake_station(csms.url, password="pw"):
                pass
        csms.assert_valid()


async def test_calls_from_the_csms(csms_201: Csms) -> None:
    """call() with a dataclass or an action name; call_raw() sends invalid payloads and returns the CALLERROR."""
    reserve = {"id": 1, "expiryDateTime": utc_now_iso(600), "idToken": {"idToken": "TAG1", "type": "ISO14443"}}
    async with fake_station(csms_201.url):
        await csms_201.wait_connected()
        as_object = call201.ReserveNow(
            id=0, expiry_date_time=utc_now_iso(600), id_token={"id_token": "TAG1", "type": "ISO14443"}, evse_id=1
        )
        assert await csms_201.call(as_object) == {"status": "Accepted"}
        assert await csms_201.call("ReserveNow", reserve) == {"status": "Accepted"}
        assert await csms_201.call_raw("CancelReservation", {"reservationId": 1}) == ("result", {"status": "Accepted"})

        outcome = await csms_201.call_raw("ReserveNow", {**reserve, "id": "one"})
        assert outcome[0] == "error" and outcome[1] == "TypeConstraintViolation"
        with pytest.raises(ValueError, match="breaks the schema"):
            await csms_201.call("ReserveNow", {**reserve, "id": "one"})
        with pytest.raises(CallErrorReceived) as error:
            await csms_201.call("UnlockConnector", {"evseId": 1, "connectorId": 1})
        assert error.value.code == "NotImplemented"

        # the station's CALLRESULT is validated too
        outcome = await csms_201.call_raw("TriggerMessage", {"requestedMessage": "Heartbeat"})
        assert outcome == ("result", {"status": "Maybe"})
        [failure] = csms_201.take_schema_failures()
        assert (failure.kind, failure.action) == ("result", "TriggerMessage") and "Maybe" in failure.errors[0]

        # the library's own ChargePoint.call still works on the CSMS side
        charge_point = await csms_201.wait_connected()
        answer = await charge_point.call(as_object)
        assert answer.status == "Accepted"
    assert [c.action for c in csms_201.calls] == [
        "ReserveNow",
        "ReserveNow",
        "CancelReservation",
        "ReserveNow",
        "UnlockConnector",
        "TriggerMessage",
    ]


async def test_custom_handlers(csms_201: Csms) -> None:
    """set_handler answers an action with a dict (sync or async) or a CALLERROR; None restores the default."""

    async def slow_heartbeat(payload: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0.01)
        return {"currentTime": "2030-01-01T00:00:00Z"}

    def refuse(payload: dict[str, Any]) -> dict[str, Any]:
        raise SecurityError(description="not today")

    csms_201.set_handler("Heartbeat", slow_heartbeat)
    csms_201.set_handler("Authorize", refuse)
    async with fake_station(csms_201.url) as station:
        assert (await station.call(call201.Heartbeat())).current_time == "2030-01-01T00:00:00Z"
        with pytest.raises(SecurityError):
            await station.call(call201.Authorize(id_token={"id_token": "T", "type": "Central"}), suppress=False)
        csms_201.set_handler("Heartbeat", None)
        assert (await station.call(call201.Heartbeat())).current_time.startswith("20")
    assert csms_201.received_messages("Authorize")[0].error_code == "SecurityError"


async def test_an_unknown_action_is_not_supported_and_recorded(csms_201: Csms) -> None:
    """A CALL of an action OCPP 2.0.1 does not have: CALLERROR NotSupported, and a schema failure."""
    async with connect(csms_201.station_url(STATION), subprotocols=["ocpp2.0.1"], proxy=None) as websocket:
        await websocket.send(json.dumps([2, "u1", "FlyToTheMoon", {}]))
        answer = json.loads(await asyncio.wait_for(websocket.recv(), 5))
        assert answer[:3] == [4, "u1", "NotSupported"]
        await websocket.send("not json")
    await csms_201.wait_disconnected()
    failures = csms_201.take_schema_failures()
    assert [(f.kind, f.action) for f in failures] == [("call", "FlyToTheMoon"), ("frame", "?")]


async def test_disconnect_and_reconnect(csms_201: Csms) -> None:
    """disconnect() closes the station's connection from the server side; the next connection is counted."""
    async with fake_station(csms_201.url) as station:
        await station.call(boot_201())
        await csms_201.disconnect()
        await asyncio.wait_for(connection_of(station).wait_closed(), 5)
        assert connection_of(station).close_code == 1001
        with pytest.raises(AssertionError, match="no station"):
            await csms_201.call_raw("Reset", {"type": "Immediate"})
    assert not csms_201.connections[0].open and csms_201.connections[0].close_code == 1001

    async with fake_station(csms_201.url) as again:
        charge_point = await csms_201.wait_connected(count=2)
        assert charge_point.info.serial == 2
        await again.call(boot_201())
        await csms_201.disconnect(abrupt=True)
        await asyncio.wait_for(connection_of(again).wait_closed(), 5)
        assert connection_of(again).close_code == 1006
    assert [m.connection for m in csms_201.received_messages("BootNotification")] == [1, 2]
    await csms_201.wait_disconnected()


async def test_restart_on_the_same_port(csms_201: Csms) -> None:
    """stop() closes everything and refuses connections; start() listens on the same port again."""
    port = csms_201.port
    async with fake_station(csms_201.url) as station:
        await station.call(boot_201())
        await csms_201.stop()
        assert not csms_201.running
        await asyncio.wait_for(connection_of(station).wait_closed(), 5)
        with pytest.raises(OSError):
            async with fake_station(csms_201.url):
                pass
        await csms_201.start()
        assert csms_201.port == port
    async with fake_station(csms_201.url) as again:
        await again.call(boot_201())
    assert len(csms_201.received("BootNotification")) == 2
    assert len(csms_201.connections) == 2


async def test_expect_walks_a_sequence(csms_201: Csms) -> None:
    """expect() takes the oldest unconsumed match; skipped messages stay for later; a timeout says what came."""
    async with fake_station(csms_201.url) as station:
        for evse_id, status in ((1, "Available"), (2, "Available"), (1, "Occupied")):
            await station.call(status_201(evse_id, status))
        second = await csms_201.expect("StatusNotification", lambda p: p["evseId"] == 2)
        assert second["evseId"] == 2
        assert (await csms_201.expect("StatusNotification"))["connectorStatus"] == "Available"
        assert (await csms_201.expect("StatusNotification"))["connectorStatus"] == "Occupied"
        with pytest.raises(AssertionError, match="no StatusNotification matching"):
            await csms_201.expect("StatusNotification", timeout=0.2)
        with pytest.raises(AssertionError):
            await csms_201.expect("Heartbeat", lambda p: p["missing"], timeout=0.1)

        # a waiter is woken by the arrival, not by polling
        waiter = asyncio.create_task(csms_201.expect("StatusNotification", lambda p: p["evseId"] == 2))
        await asyncio.sleep(0)
        await station.call(status_201(2, "Reserved"))
        assert (await asyncio.wait_for(waiter, 5))["connectorStatus"] == "Reserved"
    assert len(csms_201.received("StatusNotification")) == 4


async def test_a_call_without_answer_times_out(csms_201: Csms) -> None:
    """A station that never answers: TimeoutError naming the action; the CALL was sent and recorded."""
    async with connect(csms_201.station_url(STATION), subprotocols=["ocpp2.0.1"], proxy=None) as websocket:
        await csms_201.wait_connected()
        with pytest.raises(TimeoutError, match="did not answer the CSMS's Reset"):
            await csms_201.call_raw("Reset", {"type": "Immediate"}, timeout=0.2)
        sent = json.loads(await asyncio.wait_for(websocket.recv(), 5))
        assert sent[0] == 2 and sent[2:] == ["Reset", {"type": "Immediate"}]
    assert csms_201.calls[0].outcome is None
