"""controller.sd_notify: the notification protocol against real AF_UNIX datagram sockets, and WATCHDOG_USEC."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.sd_notify import Notifier, watchdog_timeout_s


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    """A short directory for socket paths (sun_path holds 108 bytes; pytest's tmp_path can be longer)."""
    with tempfile.TemporaryDirectory(prefix="sdn-") as name:
        yield Path(name)


def receiver(address: str) -> socket.socket:
    """A datagram socket bound at ``address`` (a path, or NUL + name for the abstract namespace), as systemd's."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(5)
    return sock


def test_sends_one_datagram_of_newline_separated_assignments_to_a_path(socket_dir: Path) -> None:
    path = str(socket_dir / "notify")
    with receiver(path) as systemd:
        notifier = Notifier(path)
        assert notifier.send("READY=1", "STATUS=2 EVSEs: 2 available; store ok")
        assert notifier.send("WATCHDOG=1")
        notifier.close()
        assert systemd.recv(4096) == b"READY=1\nSTATUS=2 EVSEs: 2 available; store ok"
        assert systemd.recv(4096) == b"WATCHDOG=1"


def test_an_at_sign_means_the_abstract_namespace() -> None:
    name = f"charger-test-{secrets.token_hex(8)}"
    with receiver("\0" + name) as systemd:
        notifier = Notifier.from_environment({"NOTIFY_SOCKET": f"@{name}"})
        assert notifier is not None
        assert notifier.send("READY=1")
        notifier.close()
        assert systemd.recv(4096) == b"READY=1"


@pytest.mark.parametrize("value", ["", "notify", "vsock:2:1234", "@"])
def test_no_notifier_without_a_usable_notify_socket(value: str) -> None:
    assert Notifier.from_environment({"NOTIFY_SOCKET": value} if value else {}) is None


def test_an_absent_listener_is_logged_once_and_never_raises(socket_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    """systemd gone or restarting: the controller goes on, with one warning per outage and a line when it is back."""
    path = str(socket_dir / "notify")
    notifier = Notifier(path)
    with caplog.at_level(logging.INFO, logger="controller.sd_notify"):
        assert not notifier.send("WATCHDOG=1")
        assert not notifier.send("WATCHDOG=1")
        with receiver(path) as systemd:
            assert notifier.send("WATCHDOG=1")
            assert systemd.recv(4096) == b"WATCHDOG=1"
    notifier.close()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("cannot notify systemd" in m for m in messages) == 1, messages
    assert sum("notifying systemd at" in m and "again" in m for m in messages) == 1, messages


def test_a_full_queue_drops_the_message_instead_of_blocking_the_loop(socket_dir: Path) -> None:
    """A listener that does not read fills its queue; send must then fail at once, not stall the event loop."""
    path = str(socket_dir / "notify")
    results: list[bool] = []
    with receiver(path):  # bound, never read
        notifier = Notifier(path)

        def flood() -> None:
            results.extend(notifier.send(f"STATUS={n}") for n in range(5000))

        worker = threading.Thread(target=flood, daemon=True)
        worker.start()
        worker.join(timeout=30)
        assert not worker.is_alive(), "send blocked on a full notification queue"
        notifier.close()
    assert results[0] is True
    assert results[-1] is False


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"WATCHDOG_USEC": "10000000"}, 10.0),
        ({"WATCHDOG_USEC": "2500000", "WATCHDOG_PID": str(os.getpid())}, 2.5),
        ({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),  # for another process
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "ten"}, None),
        ({}, None),
    ],
)
def test_watchdog_timeout_follows_sd_watchdog_enabled(environ: dict[str, str], expected: float | None) -> None:
    assert watchdog_timeout_s(environ) == expected
