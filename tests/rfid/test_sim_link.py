"""The virtual serial link and the simulated RDM6300: bytes arrive, unplug/replug, bad input named."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import serial

from drivers.rfid import encode_frame
from drivers.sim.serial_link import SimulatedRfidReader, VirtualSerialLink, bad_checksum_frame, truncated_frame

TOKEN = "0F00A1B2C3"


def test_bytes_written_by_the_simulator_reach_pyserial_unchanged(tmp_path: Path) -> None:
    with VirtualSerialLink(tmp_path / "rfid") as link:
        port = serial.serial_for_url(link.path, baudrate=9600, timeout=2)
        try:
            SimulatedRfidReader(link).present(TOKEN, repeats=2)
            assert port.read(28) == encode_frame(TOKEN) * 2  # STX/ETX pass: the pty is raw
        finally:
            port.close()


def test_unplug_removes_the_path_and_replug_brings_a_new_pty_behind_it(tmp_path: Path) -> None:
    link = VirtualSerialLink(tmp_path / "rfid")
    first = link.device
    assert os.path.realpath(link.path) == first
    link.unplug()
    assert not link.plugged and not os.path.lexists(link.path)
    with pytest.raises(serial.SerialException):
        serial.serial_for_url(link.path)
    link.unplug()  # idempotent
    link.replug()
    assert link.device is not None and os.path.realpath(link.path) == link.device
    with pytest.raises(RuntimeError, match="already plugged"):
        link.replug()
    link.close()


def test_refuses_to_replace_a_real_file(tmp_path: Path) -> None:
    path = tmp_path / "not-a-link"
    path.write_text("keep me")
    with pytest.raises(FileExistsError, match="not a symlink"):
        VirtualSerialLink(path)
    assert path.read_text() == "keep me"


def test_writing_to_an_unplugged_link_is_an_error(tmp_path: Path) -> None:
    link = VirtualSerialLink(tmp_path / "rfid")
    link.unplug()
    with pytest.raises(RuntimeError, match="unplugged"):
        SimulatedRfidReader(link).present(TOKEN)


def test_corrupted_frames_differ_from_the_valid_one_only_where_intended() -> None:
    valid, bad = encode_frame(TOKEN), bad_checksum_frame(TOKEN)
    assert len(bad) == len(valid) and bad[:11] == valid[:11] and bad[11:13] != valid[11:13]
    assert truncated_frame(TOKEN, 5) == valid[:5]


@pytest.mark.parametrize("keep", [0, 14])
def test_truncation_outside_the_frame_is_rejected(keep: int) -> None:
    with pytest.raises(ValueError, match=r"must keep 1\.\.13 bytes"):
        truncated_frame(TOKEN, keep)


@pytest.mark.parametrize("cuts", [[0], [14], [3, 3]])
def test_split_points_must_lie_inside_the_frame(tmp_path: Path, cuts: list[int]) -> None:
    with VirtualSerialLink(tmp_path / "rfid") as link, pytest.raises(ValueError, match="strictly inside"):
        SimulatedRfidReader(link).present_split(TOKEN, cuts)
