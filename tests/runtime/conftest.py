"""Fixtures of the runtime tests: the real runtime of ``run --sim``, built in-process on a temporary state directory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from controller.config.loader import load_sim_default
from controller.runtime.build import Built, build


@pytest.fixture
async def built(tmp_path: Path) -> AsyncIterator[Built]:
    """The sim charger's runtime, started; stopped after the test."""
    b = await build(load_sim_default(), state_dir=tmp_path)
    await b.start()
    try:
        yield b
    finally:
        await b.stop()
