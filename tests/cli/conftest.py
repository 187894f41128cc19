"""The CLI tests' shared fixture: a ``run --sim`` daemon per test module, for the client commands to talk to."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from security.daemon import Daemon, free_port


@pytest.fixture(scope="module")
def sim_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``run --sim`` on a free loopback port; its ``HOST:PORT``."""
    directory: Path = tmp_path_factory.mktemp("cli")
    bind = f"127.0.0.1:{free_port('127.0.0.1')}"
    daemon = Daemon(["run", "--sim", "--api", bind, "--state-dir", str(directory / "state")], directory).start()
    try:
        yield bind
    finally:
        assert daemon.stop() == 0, daemon.logs()[-3000:]
