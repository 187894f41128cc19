"""OCPP 1.6J boot, heartbeat and the CSMS's clock: BootNotification (vendor, model, serial, firmware; retried after
Pending and Rejected), the heartbeat interval from its answer, StatusNotification of connectorIds 0, 1 and 2 at boot
and again after a reconnect, the subprotocol ``ocpp1.6``, and the CSMS's time while the system clock is not
synchronized.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from controller.ocpp.station.clock import StationClock

from .csms import Csms
from .station_harness import OcppStation, booted16, ocpp_config, ocpp_time, status16

HOUR = 3600.0


async def test_boot_names_the_station_and_every_connector_is_reported(tmp_path: Path, csms_16: Csms) -> None:
    config = ocpp_config(csms_16.url, version="1.6", serial_number="SN-0042")
    async with OcppStation(tmp_path, config) as station:
        await csms_16.wait_connected()
        boot = await csms_16.expect("BootNotification")
        assert boot["chargePointVendor"] == config.vendor[:20]
        assert boot["chargePointModel"] == config.model[:20]
        assert boot["chargePointSerialNumber"] == "SN-0042"
        assert boot["firmwareVersion"]
        for connector_id in (0, 1, 2):
            status = await csms_16.expect("StatusNotification", status16(connector_id, "Available"))
            assert status["errorCode"] == "NoError"
            assert status["timestamp"].endswith("Z")
        assert csms_16.connections[0].subprotocol == "ocpp1.6"
        assert station.station.online


@pytest.mark.parametrize("status", ["Pending", "Rejected"])
async def test_a_boot_not_accepted_is_retried_after_the_interval(tmp_path: Path, csms_16: Csms, status: str) -> None:
    csms_16.set_boot_status(status, interval=1)
    async with OcppStation(tmp_path, ocpp_config(csms_16.url, version="1.6")) as station:
        await csms_16.expect("BootNotification")
        if status == "Pending":  # the CSMS may configure a pending station before it accepts it
            answer = await csms_16.call("GetConfiguration", {"key": ["NumberOfConnectors"]})
            assert answer["configurationKey"][0]["value"] == "2"
        await csms_16.expect("BootNotification", timeout=5)
        assert csms_16.received("StatusNotification") == []
        assert not station.station.online
        csms_16.set_boot_status("Accepted", interval=300)
        await csms_16.expect("BootNotification", timeout=5)
        await csms_16.expect("StatusNotification", status16(1, "Available"))


async def test_the_boot_answers_heartbeat_interval_is_used(tmp_path: Path, csms_16: Csms) -> None:
    csms_16.set_boot_status("Accepted", interval=1)
    async with OcppStation(tmp_path, ocpp_config(csms_16.url, version="1.6")):
        await booted16(csms_16)
        await csms_16.expect("Heartbeat", timeout=5)
        await csms_16.expect("Heartbeat", timeout=5)
        answer = await csms_16.call("GetConfiguration", {"key": ["HeartbeatInterval"]})
        assert answer["configurationKey"][0]["value"] == "1"


async def test_a_reconnect_reports_every_connector_again_and_keeps_the_boot(tmp_path: Path, csms_16: Csms) -> None:
    async with OcppStation(tmp_path, ocpp_config(csms_16.url, version="1.6")) as station:
        await booted16(csms_16)
        await csms_16.disconnect(abrupt=True)
        await csms_16.wait_connected(count=2)
        for connector_id in (0, 1, 2):
            message = await csms_16.expect_message("StatusNotification", status16(connector_id, "Available"))
            assert message.connection == 2
        assert len(csms_16.received("BootNotification")) == 1  # accepted once: a reconnect does not boot again
        assert station.station.online


@pytest.mark.parametrize("offset_s", [HOUR, -HOUR])
async def test_an_unsynchronized_station_uses_the_csms_time(tmp_path: Path, csms_16: Csms, offset_s: float) -> None:
    csms_16.time_offset_s = offset_s
    clock = StationClock(synchronized=lambda: False)
    async with OcppStation(tmp_path, ocpp_config(csms_16.url, version="1.6"), clock=clock) as station:
        await booted16(csms_16)
        statuses = csms_16.received("StatusNotification")
        assert all(abs(seconds_from_now(p["timestamp"]) - offset_s) < 30 for p in statuses), statuses
        # a reservation that the CSMS says ends in 2 s (its time) ends in 2 s
        answer = await csms_16.call("ReserveNow", {"connectorId": 1, "expiryDate": ocpp_time(2, offset_s=offset_s),
                                                   "idTag": "ALICE", "reservationId": 7})
        assert answer["status"] == "Accepted"
        await csms_16.expect("StatusNotification", status16(1, "Reserved"))
        assert station.evse(1)["reserved"]
        available = await csms_16.expect("StatusNotification", status16(1, "Available"), timeout=15)
        assert abs(seconds_from_now(available["timestamp"]) - offset_s) < 30


def seconds_from_now(timestamp: str) -> float:
    """How far an OCPP timestamp is from the system clock now (positive: ahead)."""
    return (datetime.fromisoformat(timestamp.replace("Z", "+00:00")) - datetime.now(UTC)).total_seconds()
