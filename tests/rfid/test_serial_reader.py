"""The real SerialTokenReader (pyserial, its own thread) against a simulated RDM6300 on a pty."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from drivers.bridge import LoopBridge
from drivers.interfaces import Fault, FaultKind, TokenReader
from drivers.rfid import SerialTokenReader, SkipReason
from drivers.sim.serial_link import SimulatedRfidReader, VirtualSerialLink

WAIT_S = 5.0  # generous upper bound for any single event; tests never sleep on purpose
A, B, C, D, E = "0F00A1B2C3", "1122334455", "AABBCCDDEE", "0000000001", "7E7E7E7E7E"


class Recorder:
    """Collects tokens and fault changes in the loop thread and lets tests await them."""

    def __init__(self, reader: SerialTokenReader) -> None:
        self.tokens: asyncio.Queue[str] = asyncio.Queue()
        self.faults: asyncio.Queue[Fault | None] = asyncio.Queue()
        self.threads: set[int] = set()
        reader.subscribe(self._on_token)
        reader.subscribe_fault(self.faults.put_nowait)

    def _on_token(self, token: str) -> None:
        self.threads.add(threading.get_ident())
        self.tokens.put_nowait(token)

    async def token(self) -> str:
        return await asyncio.wait_for(self.tokens.get(), WAIT_S)

    async def fault_change(self) -> Fault | None:
        return await asyncio.wait_for(self.faults.get(), WAIT_S)

    async def connected(self) -> None:
        assert await self.fault_change() is None


@pytest.fixture
def link(tmp_path: Path) -> Iterator[VirtualSerialLink]:
    with VirtualSerialLink(tmp_path / "charger-rfid") as virtual:
        yield virtual


@pytest.fixture
def rdm6300(link: VirtualSerialLink) -> SimulatedRfidReader:
    return SimulatedRfidReader(link)


MakeReader = Callable[..., SerialTokenReader]


@pytest.fixture
async def make_reader() -> AsyncIterator[MakeReader]:
    """Builds readers with short test timings and closes every one of them afterwards."""
    readers: list[SerialTokenReader] = []

    def make(port: str, **options: object) -> SerialTokenReader:
        settings: dict[str, object] = {"reconnect_min_s": 0.02, "reconnect_max_s": 0.2, "read_timeout_s": 0.05}
        settings.update(options)
        reader = SerialTokenReader(port, LoopBridge.current(), **settings)  # type: ignore[arg-type]
        readers.append(reader)
        return reader

    yield make
    for reader in readers:
        await reader.aclose()


async def test_it_is_a_token_reader(link: VirtualSerialLink, make_reader: MakeReader) -> None:
    assert isinstance(make_reader(link.path), TokenReader)


async def test_tokens_arrive_in_the_loop_thread_once_per_presentation(
    link: VirtualSerialLink, rdm6300: SimulatedRfidReader, make_reader: MakeReader
) -> None:
    reader = make_reader(link.path, repeat_suppress_s=30.0)
    seen = Recorder(reader)
    await seen.connected()

    rdm6300.present(A, repeats=5)  # a card held on the reader: the module repeats its frame
    rdm6300.present(B)
    assert [await seen.token(), await seen.token()] == [A, B]
    assert seen.threads == {threading.get_ident()}
    assert reader.fault() is None and reader.connected


async def test_corrupt_frames_and_noise_are_skipped_and_counted(
    link: VirtualSerialLink, rdm6300: SimulatedRfidReader, make_reader: MakeReader
) -> None:
    reader = make_reader(link.path)
    seen = Recorder(reader)
    await seen.connected()

    rdm6300.present_bad_checksum(A)
    rdm6300.send_garbage()
    rdm6300.present_truncated(B, keep=9)  # cut off by the STX of the next frame
    rdm6300.present_split(C, cuts=[1, 6, 12])
    rdm6300.present(D)
    # had any corrupt frame got through, it would have arrived before C
    assert [await seen.token(), await seen.token()] == [C, D]
    counts = reader.skip_counts()
    assert counts[SkipReason.BAD_CHECKSUM] == 1
    assert counts[SkipReason.GARBAGE] == 1
    assert counts[SkipReason.TRUNCATED] == 1


async def test_unplugged_reader_faults_then_recovers_by_itself(
    link: VirtualSerialLink,
    rdm6300: SimulatedRfidReader,
    make_reader: MakeReader,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="drivers.rfid")
    reader = make_reader(link.path, clock=lambda: 42.0)
    seen = Recorder(reader)
    await seen.connected()
    rdm6300.present(A)
    assert await seen.token() == A

    rdm6300.unplug()
    fault = await seen.fault_change()
    assert fault is not None
    assert fault.kind is FaultKind.TOKEN_READER_DISCONNECTED
    assert fault.since == 42.0
    assert link.path in fault.detail
    assert reader.fault() == fault and not reader.connected
    lost = [r for r in caplog.records if r.name == "drivers.rfid" and r.levelno == logging.WARNING]
    assert len(lost) == 1
    assert "disconnected" in lost[0].getMessage()
    assert "token_reader_disconnected" in lost[0].getMessage()

    rdm6300.replug()
    await seen.connected()
    assert reader.fault() is None
    rdm6300.present(B)
    assert await seen.token() == B
    assert any("reconnected" in r.getMessage() for r in caplog.records)


async def test_a_reader_missing_at_start_is_a_fault_until_it_appears(tmp_path: Path, make_reader: MakeReader) -> None:
    path = tmp_path / "charger-rfid"
    reader = make_reader(str(path))
    seen = Recorder(reader)
    fault = await seen.fault_change()
    assert fault is not None and fault.kind is FaultKind.TOKEN_READER_DISCONNECTED
    assert "not available" in fault.detail

    with VirtualSerialLink(path) as late:
        await seen.connected()
        SimulatedRfidReader(late).present(E)
        assert await seen.token() == E
        await reader.aclose()


async def test_tokens_are_redacted_in_logs(
    link: VirtualSerialLink,
    rdm6300: SimulatedRfidReader,
    make_reader: MakeReader,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    reader = make_reader(link.path)
    seen = Recorder(reader)
    await seen.connected()
    rdm6300.present(A)
    assert await seen.token() == A
    assert "RFID token presented: ...C3" in caplog.text  # drivers.redact: the last two characters only
    assert A not in caplog.text


async def test_a_failing_subscriber_does_not_starve_the_others(
    link: VirtualSerialLink, rdm6300: SimulatedRfidReader, make_reader: MakeReader
) -> None:
    reader = make_reader(link.path)

    def broken(token: str) -> None:
        raise RuntimeError("subscriber bug")

    reader.subscribe(broken)
    seen = Recorder(reader)
    await seen.connected()
    rdm6300.present(A)
    assert await seen.token() == A


async def test_aclose_stops_the_thread_and_is_idempotent(link: VirtualSerialLink) -> None:
    async with SerialTokenReader(link.path, LoopBridge.current(), read_timeout_s=0.05) as reader:
        seen = Recorder(reader)
        await seen.connected()
        assert any(t.name == f"rfid-reader {link.path}" for t in threading.enumerate())
    assert not any(t.name == f"rfid-reader {link.path}" for t in threading.enumerate())
    await reader.aclose()  # second close: a no-op


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"baudrate": 0}, "baudrate must be > 0"),
        ({"reconnect_min_s": 1.0, "reconnect_max_s": 0.5}, "0 < min <= max"),
        ({"read_timeout_s": 0.0}, "read timeout must be > 0"),
        ({"repeat_suppress_s": -1.0}, "interval must be >= 0"),
    ],
)
async def test_bad_settings_are_rejected_by_name(options: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SerialTokenReader("/dev/null", LoopBridge.current(), **options)  # type: ignore[arg-type]
