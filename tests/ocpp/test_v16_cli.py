"""``charger-controller run`` with OCPP 1.6 as a process: ``--ocpp-version 1.6`` (or ``version = "1.6"`` in the
file's ``[ocpp]``) connects with the subprotocol ``ocpp1.6`` and boots; a SIGKILL during a transaction loses
nothing: after the restart on the same state directory the transaction ends with reason PowerLoss under the
transactionId the CSMS gave its StartTransaction.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest
from security.daemon import SIM_DEFAULT, Daemon, call, free_port

from .csms import Csms
from .station_harness import status16

START_S = 60.0  # generous bounds for a loaded CI machine: never an assertion on speed


def _args(csms: Csms, tmp_path: Path, station_id: str) -> list[str]:
    """``run --sim`` at ``csms`` with OCPP 1.6 from the flags, on ``tmp_path/state``."""
    return ["run", "--sim", "--ocpp-url", csms.url, "--ocpp-id", station_id, "--ocpp-version", "1.6",
            "--state-dir", str(tmp_path / "state"), "--api", f"127.0.0.1:{free_port('127.0.0.1')}"]


async def test_version_1_6_in_the_file_boots_with_the_1_6_subprotocol(tmp_path: Path, csms_16: Csms) -> None:
    text = SIM_DEFAULT.read_text(encoding="utf-8")
    path = tmp_path / "charger.toml"
    path.write_text(text + f'\n[ocpp]\nurl = "{csms_16.url}"\nstation_id = "CS16"\nversion = "1.6"\n',
                    encoding="utf-8")
    daemon = Daemon(["run", "--config", str(path), "--state-dir", str(tmp_path / "state"),
                     "--api", f"127.0.0.1:{free_port('127.0.0.1')}"], tmp_path)
    try:
        await asyncio.to_thread(daemon.start)
        await csms_16.wait_connected(station_id="CS16", timeout=START_S)
        await csms_16.expect("BootNotification", timeout=START_S)
        for connector_id in (0, 1, 2):
            await csms_16.expect("StatusNotification", status16(connector_id, "Available"), timeout=START_S)
        assert csms_16.connections[0].subprotocol == "ocpp1.6"
        assert "OCPP 1.6 station CS16" in daemon.logs()
    finally:
        assert await asyncio.to_thread(daemon.stop) == 0


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")
async def test_a_sigkill_during_a_transaction_ends_it_with_power_loss_after_the_restart(
        tmp_path: Path, csms_16: Csms) -> None:
    daemon = Daemon(_args(csms_16, tmp_path, "CS17"), tmp_path)
    try:
        await asyncio.to_thread(daemon.start)
        await csms_16.wait_connected(station_id="CS17", timeout=START_S)
        await csms_16.expect("StatusNotification", status16(1, "Available"), timeout=START_S)
        token = await asyncio.to_thread(call, daemon.url, "POST", "/evses/1/token", json={"id_token": "ALICE"})
        assert token.status_code == 200 and token.json()["may_charge"], token.text
        plugged = await asyncio.to_thread(call, daemon.url, "POST", "/sim/evses/1/plug")
        assert plugged.status_code == 200, plugged.text
        start = await csms_16.expect_message("StartTransaction", timeout=START_S)
        await csms_16.expect("StatusNotification", status16(1, "Charging"), timeout=START_S)
        assert daemon.proc is not None
        daemon.proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(daemon.proc.wait, START_S)
    finally:
        await asyncio.to_thread(daemon.stop)
    again = Daemon(_args(csms_16, tmp_path, "CS17"), tmp_path)
    try:
        await asyncio.to_thread(again.start)
        await csms_16.wait_connected(station_id="CS17", count=2, timeout=START_S)
        stop = await csms_16.expect("StopTransaction", timeout=START_S)
        assert start.response is not None
        assert stop["transactionId"] == start.response["transactionId"]
        assert stop["reason"] == "PowerLoss"
        assert len(csms_16.received("StartTransaction")) == 1  # delivered once, never again
        assert "Traceback" not in again.logs()
    finally:
        assert await asyncio.to_thread(again.stop) == 0
