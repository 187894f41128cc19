"""``charger-controller run`` with OCPP as a process: ``--sim --ocpp-url --ocpp-id`` attaches the sim charger to the
CSMS, a Reset from the CSMS makes the process start itself again (BootNotification RemoteReset, the reservation
kept), the flags override a file's ``[ocpp]``, ``run --config`` with ``simulated = true`` serves the /sim routes,
and what cannot work is refused at once with a clear message.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from security.daemon import SIM_DEFAULT, Daemon, call, free_port, run_to_exit

from .csms import Csms
from .station_harness import ocpp_time, status_of

START_S = 60.0  # generous bounds for a loaded CI machine: never an assertion on speed


def _sim_config(directory: Path, ocpp: str = "") -> Path:
    """The embedded sim configuration as a file (``simulated = true``), with ``ocpp`` appended."""
    text = SIM_DEFAULT.read_text(encoding="utf-8")
    assert "simulated = true" in text and "[ocpp]" not in text
    path = directory / "charger.toml"
    path.write_text(text + ocpp, encoding="utf-8")
    return path


async def test_a_reset_from_the_csms_restarts_the_process_and_keeps_the_reservation(
        tmp_path: Path, csms_201: Csms) -> None:
    daemon = Daemon(["run", "--sim", "--ocpp-url", csms_201.url, "--ocpp-id", "CS9", "--state-dir",
                     str(tmp_path / "state"), "--api", f"127.0.0.1:{free_port('127.0.0.1')}"], tmp_path)
    try:
        await asyncio.to_thread(daemon.start)
        assert daemon.proc is not None
        pid = daemon.proc.pid
        await csms_201.wait_connected(station_id="CS9", timeout=START_S)
        boot = await csms_201.expect("BootNotification", timeout=START_S)
        assert boot["reason"] == "PowerUp"
        await csms_201.expect("StatusNotification", status_of(1, "Available"), timeout=START_S)
        answer = await csms_201.call("ReserveNow", {"id": 31, "expiryDateTime": ocpp_time(3600), "evseId": 1,
                                                    "idToken": {"idToken": "ALICE", "type": "ISO14443"}})
        assert answer["status"] == "Accepted"
        await csms_201.expect("StatusNotification", status_of(1, "Reserved"))

        assert (await csms_201.call("Reset", {"type": "Immediate"}))["status"] == "Accepted"
        await csms_201.wait_connected(station_id="CS9", count=2, timeout=START_S)
        again = await csms_201.expect_message("BootNotification", timeout=START_S)
        assert again.payload["reason"] == "RemoteReset" and again.connection == 2
        reserved = await csms_201.expect_message("StatusNotification", status_of(1, "Reserved"), timeout=START_S)
        assert reserved.connection == 2
        assert daemon.proc.poll() is None and daemon.proc.pid == pid  # the same process, started again
        assert "restarting (reset ordered by the CSMS)" in daemon.logs()
        status = await asyncio.to_thread(call, daemon.url, "GET", "/status")
        assert status.status_code == 200
        assert [r["reservation_id"] for r in status.json()["reservations"]] == [31]
    finally:
        assert await asyncio.to_thread(daemon.stop) == 0


async def test_flags_override_the_files_section_and_simulated_true_serves_the_sim_routes(
        tmp_path: Path, csms_201: Csms) -> None:
    dead = f"ws://127.0.0.1:{free_port('127.0.0.1')}/nowhere"
    path = _sim_config(tmp_path, f'\n[ocpp]\nurl = "{dead}"\nstation_id = "FROM-FILE"\nreconnect_min_s = 0.2\n')
    daemon = Daemon(["run", "--config", str(path), "--ocpp-url", csms_201.url, "--ocpp-id", "CS7", "--state-dir",
                     str(tmp_path / "state"), "--api", f"127.0.0.1:{free_port('127.0.0.1')}"], tmp_path)
    try:
        await asyncio.to_thread(daemon.start)
        await csms_201.wait_connected(station_id="CS7", timeout=START_S)
        await csms_201.expect("StatusNotification", status_of(1, "Available"), timeout=START_S)
        plugged = await asyncio.to_thread(call, daemon.url, "POST", "/sim/evses/1/plug")
        assert plugged.status_code == 200, plugged.text
        await csms_201.expect("StatusNotification", status_of(1, "Occupied"), station_id="CS7")
        assert {c.station_id for c in csms_201.connections} == {"CS7"}
    finally:
        assert await asyncio.to_thread(daemon.stop) == 0


def test_simulated_true_without_ocpp_serves_the_sim_routes(tmp_path: Path) -> None:
    path = _sim_config(tmp_path)
    daemon = Daemon(["run", "--config", str(path), "--state-dir", str(tmp_path / "state"),
                     "--api", f"127.0.0.1:{free_port('127.0.0.1')}"], tmp_path)
    try:
        daemon.start()
        assert call(daemon.url, "POST", "/sim/evses/2/plug").status_code == 200
        deadline = time.monotonic() + START_S
        while not call(daemon.url, "GET", "/status").json()["evses"][1]["plugged_in"]:
            assert time.monotonic() < deadline, "EVSE 2 never showed the plug"
            time.sleep(0.05)
    finally:
        assert daemon.stop() == 0


def test_an_ocpp_url_without_an_id_is_refused(tmp_path: Path) -> None:
    code, out = run_to_exit(["run", "--sim", "--ocpp-url", "ws://127.0.0.1:9/ocpp", "--state-dir",
                             str(tmp_path / "state")], tmp_path)
    assert code == 1
    assert out.strip() == "--ocpp-id: needed too, as the configuration has no [ocpp] section", out


def test_a_bad_ocpp_section_is_refused_naming_file_and_key(tmp_path: Path) -> None:
    path = _sim_config(tmp_path, '\n[ocpp]\nurl = "http://csms.lan"\nstation_id = "CS:1"\n')
    code, out = run_to_exit(["run", "--config", str(path), "--state-dir", str(tmp_path / "state")], tmp_path)
    assert code == 1
    assert f"{path}: ocpp.url: expected ws://" in out, out
