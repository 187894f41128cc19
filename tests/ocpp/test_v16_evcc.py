"""The messages evcc (github.com/evcc-io/evcc, charger/ocpp) sends to an OCPP 1.6 charger it controls, replayed
against the sim charger, with the answers evcc needs.

evcc's ``CP.Setup``: ChangeAvailability(0, Operative); GetConfiguration of every key (it reads NumberOfConnectors,
SupportedFeatureProfiles, MeterValuesSampledData and its MaxLength); TriggerMessage(BootNotification) and wait for
it; try each measurand it wants one by one with ChangeConfiguration(MeterValuesSampledData) and keep those Accepted
(the others must be Rejected, as the spec says for a value the station cannot take); set the kept list; trigger
MeterValues and wait for them; ChangeConfiguration(MeterValueSampleInterval) and (WebSocketPingInterval, 30). Then
its loadpoint: RemoteStartTransaction(connectorId, idTag) to enable, RemoteStopTransaction(transactionId) to
disable, and ChangeAvailability of the connector.
"""

from __future__ import annotations

from pathlib import Path

from .csms import Csms
from .station_harness import OcppStation, booted16, ocpp_config, status16, until

EVCC_MEASURANDS = ("Power.Active.Import", "Energy.Active.Import.Register", "Current.Import", "Voltage",
                   "Current.Offered", "Power.Offered", "SoC")  # evcc's desiredMeasurands, in its order
EVCC_ID_TAG = "evcc"


async def test_evcc_setup_and_a_loadpoint_session(tmp_path: Path, csms_16: Csms) -> None:
    async with OcppStation(tmp_path, ocpp_config(csms_16.url, version="1.6", station_id="evcc-wallbox")) as station:
        await booted16(csms_16)
        boot = csms_16.received_messages("BootNotification")[0]
        assert boot.response is not None and boot.response["status"] == "Accepted"

        # -- CP.Setup
        assert await csms_16.call("ChangeAvailability", {"connectorId": 0, "type": "Operative"}) == \
            {"status": "Accepted"}
        configuration = await csms_16.call("GetConfiguration", {})
        keys = {e["key"]: e for e in configuration["configurationKey"]}
        assert keys["NumberOfConnectors"]["value"] == "2"
        profiles = keys["SupportedFeatureProfiles"]["value"].split(",")
        assert "Core" in profiles and "RemoteTrigger" in profiles  # evcc then triggers messages
        assert not keys["MeterValuesSampledData"]["readonly"]
        max_length = int(keys["MeterValuesSampledDataMaxLength"]["value"])

        assert await csms_16.call("TriggerMessage", {"requestedMessage": "BootNotification"}) == \
            {"status": "Accepted"}
        await csms_16.expect("BootNotification")

        accepted = []
        for measurand in EVCC_MEASURANDS:
            answer = await csms_16.call("ChangeConfiguration", {"key": "MeterValuesSampledData", "value": measurand})
            assert answer["status"] in ("Accepted", "Rejected"), answer
            if answer["status"] == "Accepted":
                accepted.append(measurand)
        assert accepted == ["Power.Active.Import", "Energy.Active.Import.Register", "Current.Import"]
        kept = ",".join(accepted[:max_length])
        assert await csms_16.call("ChangeConfiguration", {"key": "MeterValuesSampledData", "value": kept}) == \
            {"status": "Accepted"}
        # the full wish list at once is refused as a whole (it names measurands the station has no reading of)
        assert await csms_16.call("ChangeConfiguration", {"key": "MeterValuesSampledData",
                                                          "value": ",".join(EVCC_MEASURANDS)}) == {"status": "Rejected"}

        await until(lambda: all(station.evse(e)["energy_kwh"] is not None for e in (1, 2)), "the first meter readings")
        assert await csms_16.call("TriggerMessage", {"requestedMessage": "MeterValues"}) == {"status": "Accepted"}
        for connector_id in (1, 2):
            values = await csms_16.expect("MeterValues", lambda p, c=connector_id: p["connectorId"] == c)
            measurands = {v["measurand"] for m in values["meterValue"] for v in m["sampledValue"]}
            assert measurands == set(accepted)
        for key, value in (("MeterValueSampleInterval", "10"), ("WebSocketPingInterval", "30")):
            assert await csms_16.call("ChangeConfiguration", {"key": key, "value": value}) == {"status": "Accepted"}
        current = await csms_16.call("GetConfiguration", {"key": ["MeterValuesSampledData",
                                                                  "MeterValueSampleInterval"]})
        assert [e["value"] for e in current["configurationKey"]] == [kept, "10"]

        # -- the loadpoint: the car is plugged in, evcc enables charging, later disables it
        await station.plug(1)
        await csms_16.expect("StatusNotification", status16(1, "Preparing"))
        assert await csms_16.call("RemoteStartTransaction", {"connectorId": 1, "idTag": EVCC_ID_TAG}) == \
            {"status": "Accepted"}
        start = await csms_16.expect("StartTransaction")
        assert start["idTag"] == EVCC_ID_TAG and start["connectorId"] == 1
        await csms_16.expect("StatusNotification", status16(1, "Charging"), timeout=20)
        message = csms_16.received_messages("StartTransaction")[0]
        assert message.response is not None
        tx_id = message.response["transactionId"]
        assert await csms_16.call("RemoteStopTransaction", {"transactionId": tx_id}) == {"status": "Accepted"}
        stop = await csms_16.expect("StopTransaction", timeout=20)
        assert stop["transactionId"] == tx_id and stop["reason"] == "Remote"
        await csms_16.expect("StatusNotification", status16(1, "Finishing"))

        # Scheduled while the session still lets go of the car (the lock opening), Accepted once it is idle
        answer = await csms_16.call("ChangeAvailability", {"connectorId": 1, "type": "Inoperative"})
        assert answer["status"] in ("Accepted", "Scheduled")
        await csms_16.expect("StatusNotification", status16(1, "Unavailable"), timeout=20)
        assert await csms_16.call("ChangeAvailability", {"connectorId": 1, "type": "Operative"}) == \
            {"status": "Accepted"}
        await until(lambda: station.evse(1)["enabled"], "EVSE 1 enabled")
        await csms_16.expect("StatusNotification", lambda p: p["connectorId"] == 1 and p["status"] != "Unavailable")
