"""A virtual serial link (pty pair behind a stable path) and a simulated RDM6300 reader on it.

The controller side opens ``link.path`` with pyserial exactly as it would open
``/dev/charger-rfid``; the simulator writes into the pty master. ``unplug()`` behaves like
pulling a USB adapter: the open port fails (EIO) and reopening fails (no such file) until
``replug()`` puts a fresh pty behind the same path. Needs only ``os.openpty()``, no socat.
"""

from __future__ import annotations

import contextlib
import os
import select
import time
import tty
from collections.abc import Sequence
from itertools import pairwise
from types import TracebackType

from drivers.rfid import DATA_CHARS, encode_frame


class VirtualSerialLink:
    """One end is a path for the code under test (a symlink to a pty slave); the other is ours."""

    def __init__(self, path: str | os.PathLike[str], *, write_timeout_s: float = 2.0) -> None:
        self.path = os.fspath(path)
        self.write_timeout_s = write_timeout_s
        self._master: int | None = None
        self._slave: int | None = None
        self._device: str | None = None
        if os.path.lexists(self.path) and not os.path.islink(self.path):
            raise FileExistsError(f"virtual serial link path {self.path} exists and is not a symlink")
        self.replug()

    @property
    def plugged(self) -> bool:
        """True while the path leads to a live pty."""
        return self._master is not None

    @property
    def device(self) -> str | None:
        """The pty slave behind ``path`` right now (e.g. ``/dev/pts/7``), None while unplugged."""
        return self._device

    def replug(self) -> None:
        """Create a fresh pty and point ``path`` at it (atomically, like udev re-adding a link)."""
        if self.plugged:
            raise RuntimeError(f"virtual serial link {self.path} is already plugged")
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line discipline: 0x03 (ETX) must not become ^C
        self._master, self._slave, self._device = master, slave, os.ttyname(slave)
        staging = f"{self.path}.replug"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(staging)
        os.symlink(self._device, staging)
        os.replace(staging, self.path)

    def unplug(self) -> None:
        """Remove the path and hang up the pty; an open port on it starts failing. Idempotent."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        for fd in (self._slave, self._master):
            if fd is not None:
                os.close(fd)
        self._master = self._slave = self._device = None

    def write(self, data: bytes) -> None:
        """Send bytes as the device would; raises if unplugged or nobody drains a full buffer."""
        if self._master is None:
            raise RuntimeError(f"virtual serial link {self.path} is unplugged")
        view = memoryview(data)
        while view:
            _, writable, _ = select.select([], [self._master], [], self.write_timeout_s)
            if not writable:
                raise TimeoutError(f"virtual serial link {self.path}: pty buffer full for {self.write_timeout_s} s")
            view = view[os.write(self._master, view) :]

    def close(self) -> None:
        """Same as ``unplug()``: nothing is left behind on disk."""
        self.unplug()

    def __enter__(self) -> VirtualSerialLink:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def bad_checksum_frame(token: str) -> bytes:
    """A frame for ``token`` whose checksum is wrong (every checksum bit flipped)."""
    frame = encode_frame(token)
    start = 1 + DATA_CHARS
    wrong = int(frame[start : start + 2], 16) ^ 0xFF
    return frame[:start] + f"{wrong:02X}".encode("ascii") + frame[start + 2 :]


def truncated_frame(token: str, keep: int) -> bytes:
    """The first ``keep`` bytes of a frame (1..13): it never ends, like a reader losing power."""
    frame = encode_frame(token)
    if not 1 <= keep < len(frame):
        raise ValueError(f"truncated frame must keep 1..{len(frame) - 1} bytes, got {keep}")
    return frame[:keep]


class SimulatedRfidReader:
    """Plays an RDM6300 module on a ``VirtualSerialLink`` (it only ever transmits)."""

    def __init__(self, link: VirtualSerialLink) -> None:
        self.link = link

    def present(self, token: str, *, repeats: int = 1) -> None:
        """A card in the field: its frame ``repeats`` times back to back, as the module does."""
        if repeats < 1:
            raise ValueError(f"repeats must be >= 1, got {repeats}")
        self.link.write(encode_frame(token) * repeats)

    def present_bad_checksum(self, token: str) -> None:
        """A frame garbled on the wire so that its checksum no longer matches."""
        self.link.write(bad_checksum_frame(token))

    def present_truncated(self, token: str, *, keep: int = 7) -> None:
        """A frame cut off after ``keep`` bytes (the card left the field mid-frame)."""
        self.link.write(truncated_frame(token, keep))

    def send_garbage(self, data: bytes = b"\x00\xff\x03noise\r\n") -> None:
        """Line noise between frames (ETX and hex-looking bytes included)."""
        self.link.write(data)

    def present_split(self, token: str, cuts: Sequence[int], *, pause_s: float = 0.01) -> None:
        """One frame written in pieces cut at the ``cuts`` offsets, pausing so reads see them apart."""
        frame = encode_frame(token)
        bounds = [0, *sorted(cuts), len(frame)]
        if any(start >= end for start, end in pairwise(bounds)):
            raise ValueError(
                f"cuts must be distinct offsets strictly inside the {len(frame)}-byte frame, got {list(cuts)}"
            )
        for start, end in pairwise(bounds):
            self.link.write(frame[start:end])
            if end < len(frame):
                time.sleep(pause_s)

    def unplug(self) -> None:
        """Pull the reader's USB adapter."""
        self.link.unplug()

    def replug(self) -> None:
        """Plug the adapter back in; it reappears at the same path."""
        self.link.replug()
