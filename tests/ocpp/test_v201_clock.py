"""The station's clock against the CSMS's (B01-B03, a Pi without a real-time clock): while the system clock is not
NTP-synchronized, OCPP timestamps follow the CSMS's currentTime (a WARNING says so), and times the CSMS gives (a
reservation's expiry) are moved onto the system clock, so they expire when the CSMS meant; a synchronized system
clock is trusted over the CSMS's.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from controller.ocpp.station.clock import StationClock

from .csms import Csms
from .station_harness import OcppStation, booted, ocpp_config, ocpp_time, status_of

HOUR = 3600.0


def seconds_from_now(timestamp: str) -> float:
    """How far an OCPP timestamp is from the system clock now (positive: ahead)."""
    return (datetime.fromisoformat(timestamp.replace("Z", "+00:00")) - datetime.now(UTC)).total_seconds()


@pytest.mark.parametrize("offset_s", [HOUR, -HOUR])
async def test_an_unsynchronized_station_uses_the_csms_time(tmp_path: Path, csms_201: Csms, offset_s: float,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="controller.ocpp")
    csms_201.time_offset_s = offset_s
    clock = StationClock(synchronized=lambda: False)
    async with OcppStation(tmp_path, ocpp_config(csms_201.url), clock=clock) as station:
        await booted(csms_201)
        statuses = csms_201.received("StatusNotification")
        assert all(abs(seconds_from_now(p["timestamp"]) - offset_s) < 30 for p in statuses), statuses
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert any("not NTP-synchronized" in w and "CSMS's time" in w for w in warnings), warnings

        # a reservation that the CSMS says ends in 2 s (its time) ends in 2 s
        answer = await csms_201.call("ReserveNow", {"id": 7, "expiryDateTime": ocpp_time(2, offset_s=offset_s),
                                                    "evseId": 1, "idToken": {"idToken": "ALICE", "type": "ISO14443"}})
        assert answer["status"] == "Accepted"
        await csms_201.expect("StatusNotification", status_of(1, "Reserved"))
        assert station.evse(1)["reserved"]
        update = await csms_201.expect("ReservationStatusUpdate", timeout=15)
        assert update == {"reservationId": 7, "reservationUpdateStatus": "Expired"}
        available = await csms_201.expect("StatusNotification", status_of(1, "Available"))
        assert abs(seconds_from_now(available["timestamp"]) - offset_s) < 30
        [dt] = (await csms_201.call("GetVariables", {"getVariableData": [
            {"component": {"name": "ClockCtrlr"}, "variable": {"name": "DateTime"}}]}))["getVariableResult"]
        assert abs(seconds_from_now(dt["attributeValue"]) - offset_s) < 30


async def test_a_synchronized_station_keeps_its_own_time(tmp_path: Path, csms_201: Csms,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="controller.ocpp")
    csms_201.time_offset_s = HOUR
    clock = StationClock(synchronized=lambda: True)
    async with OcppStation(tmp_path, ocpp_config(csms_201.url), clock=clock):
        await booted(csms_201)
        statuses = csms_201.received("StatusNotification")
        assert all(abs(seconds_from_now(p["timestamp"])) < 30 for p in statuses), statuses
        answer = await csms_201.call("ReserveNow", {"id": 8, "expiryDateTime": ocpp_time(600), "evseId": 2,
                                                    "idToken": {"idToken": "ALICE", "type": "ISO14443"}})
        assert answer["status"] == "Accepted"
        await csms_201.expect("StatusNotification", status_of(2, "Reserved"))
    assert not [r for r in caplog.records if "not NTP-synchronized" in r.getMessage()]
