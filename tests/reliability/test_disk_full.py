"""Disk full under ``run --sim``: the safety loop goes on, changes are refused, nothing acknowledged is lost.

The state directory is a 1 MiB tmpfs. While EVSE 1 charges and EVSE 2 holds a reservation that comes due,
the tmpfs is filled to the last byte. Then:

- a replacing reservation and a cancel are refused with 503 and a message naming the store; nothing changes;
- the expiry still turns EVSE 2's reserved LED off (memory), to be written when space returns;
- the stop token still opens EVSE 1's contactor and only then releases its lock (checked at every sample);
- ``GET /status`` answers 200 and shows the store fault; the log has one ERROR for the outage, no traceback.

When space returns the store recovers by itself, a new reservation is accepted, and after a restart exactly
the acknowledged state is there. With ``CHARGER_RELIABILITY_OUT`` set, the figures go to disk_full.json.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from security.daemon import Daemon, free_port

JSON = {"Content-Type": "application/json"}
GUARD_S = 20.0  # generous bounds for a slow shared machine; the figures are reported, not asserted on


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs (needs root, as CI has); skipped where mounting is not allowed."""
    mount = tmp_path / "state"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode}); CI runs as root")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(directory: Path) -> Path:
    """Write a filler file until the file system says ENOSPC; returns it (delete it to free the space)."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    chunk = b"\0" * 4096
    try:
        while True:
            try:
                os.write(fd, chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                if len(chunk) == 1:
                    break
                chunk = chunk[: len(chunk) // 2]
    finally:
        os.close(fd)
    return filler


class Api:
    """Plain HTTP calls to the daemon."""

    def __init__(self, url: str) -> None:
        self.url = url

    def call(self, method: str, path: str, body: Any = None) -> requests.Response:
        data = None if body is None else json.dumps(body)
        return requests.request(method, self.url + path, data=data, headers=JSON, timeout=10)

    def status(self) -> dict[str, Any]:
        reply = self.call("GET", "/status")
        assert reply.status_code == 200, reply.text
        doc: dict[str, Any] = reply.json()
        return doc

    def evse(self, evse_id: int) -> dict[str, Any]:
        return next(e for e in self.status()["evses"] if e["id"] == evse_id)

    def reserve(self, rid: int, token: str, evse_id: int, in_s: float) -> requests.Response:
        expiry = (datetime.now(UTC) + timedelta(seconds=in_s)).isoformat().replace("+00:00", "Z")
        return self.call("POST", "/reservations",
                         {"reservation_id": rid, "id_token": token, "expiry_time": expiry, "evse_id": evse_id})

    def until(self, check: Callable[[], bool], what: str) -> float:
        began = time.monotonic()
        while time.monotonic() - began < GUARD_S:
            if check():
                return time.monotonic() - began
            time.sleep(0.02)
        raise AssertionError(f"not within {GUARD_S} s: {what}; status: {self.status()}")


def test_disk_full_while_charging_and_a_reservation_comes_due(small_disk: Path, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    args = ["run", "--sim", "--state-dir", str(small_disk), "--api", f"127.0.0.1:{free_port()}"]
    daemon = Daemon(args, logs).start()
    figures: dict[str, Any] = {}
    try:
        api = Api(daemon.url)
        # EVSE 1 charges; EVSE 2 is reserved until shortly after the disk fills
        assert api.call("POST", "/evses/1/token", {"id_token": "DRIVER-ONE"}).json()["may_charge"]
        assert api.call("POST", "/sim/evses/1/plug").status_code == 200
        api.until(lambda: api.evse(1)["charging"], "EVSE 1 charging")
        expires_at = time.time() + 8.0
        assert api.reserve(10, "HOLDER-TEN", 2, in_s=8.0).json() == {"result": "Accepted"}
        api.until(lambda: api.evse(2)["reserved_led"] == "on", "EVSE 2's reserved LED on")

        before = api.status()["reservations"]
        filler = fill(small_disk)
        refused = api.reserve(10, "REPLACEMENT", 2, in_s=600.0)  # would replace 10: needs a write
        assert refused.status_code == 503, refused.text
        assert "store" in refused.json()["error"] and "full" in refused.json()["error"]
        kept = api.call("DELETE", "/reservations/10")
        assert kept.status_code == 503, kept.text
        status = api.status()
        assert status["reservations"] == before  # the old reservation 10, unchanged
        assert status["store"]["ok"] is False and "full" in status["store"]["error"]

        # the expiry turns the LED off although its delete cannot be written
        api.until(lambda: api.evse(2)["reserved_led"] == "off", "LED off at expiry")
        figures["led_off_after_expiry_ms"] = round((time.time() - expires_at) * 1000, 1)
        status = api.status()
        assert status["reservations"] == [] and status["store"]["unsynced_ends"] == 1

        # the stop opens the contactor, and only then does the lock let go
        assert api.call("POST", "/evses/1/token", {"id_token": "DRIVER-ONE"}).json()["verdict"] == "stopped"
        samples: list[tuple[str, str]] = []

        def released() -> bool:
            evse = api.evse(1)
            samples.append((evse["contactor"], evse["lock"]))
            return bool(evse["contactor"] == "open" and evse["lock"] == "unlocked")

        figures["stop_to_unlocked_s"] = api.until(released, "contactor open and lock released")
        assert all(lock == "locked" for contactor, lock in samples if contactor == "closed"), samples
        figures["stop_samples"] = len(samples)

        # space returns: the store recovers by itself and writes the end it owed
        filler.unlink()
        figures["recovery_s"] = api.until(lambda: api.status()["store"]["ok"], "store writable again")
        assert api.status()["store"]["unsynced_ends"] == 0
        assert api.reserve(12, "AFTER-TWELVE", 2, in_s=600.0).json() == {"result": "Accepted"}
        assert api.call("POST", "/sim/evses/1/unplug").status_code == 200

        timings = []
        for _ in range(20):
            began = time.monotonic()
            api.status()
            timings.append((time.monotonic() - began) * 1000)
        figures["status_ms_median_after"] = round(statistics.median(timings), 2)
    finally:
        assert daemon.stop() == 0
    log = daemon.logs()
    outage_errors = [line for line in log.splitlines() if " ERROR " in line and "cannot write" in line]
    assert len(outage_errors) == 1, outage_errors
    assert "writable again" in log
    assert "Traceback" not in log and "Exception in callback" not in log
    figures["log_lines"] = len(log.splitlines())
    figures["log_bytes"] = len(log.encode())

    with sqlite3.connect(small_disk / "reservations.db") as db:
        on_disk = [r[0] for r in db.execute("SELECT reservation_id FROM reservations ORDER BY seq")]
    assert on_disk == [12]
    again = Daemon(args, logs).start()
    try:
        assert [r["reservation_id"] for r in Api(again.url).status()["reservations"]] == [12]
    finally:
        assert again.stop() == 0
    print(json.dumps(figures))
    out = os.environ.get("CHARGER_RELIABILITY_OUT", "").strip()
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "disk_full.json").write_text(json.dumps(figures) + "\n")
