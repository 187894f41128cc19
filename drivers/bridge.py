"""The one thread boundary: hardware-library callbacks enter the asyncio loop here.

gpiozero (lgpio's notification thread, or the caller's thread under MockFactory) and
serial reader threads must never touch loop state directly; they call ``post`` and the
callback runs later in the loop thread, where all state lives.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class LoopBridge:
    """Hands callbacks from any thread into one asyncio loop with ``call_soon_threadsafe``."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._loop_thread: int | None = None

    @classmethod
    def current(cls) -> LoopBridge:
        """A bridge into the running loop (call from inside the loop)."""
        bridge = cls(asyncio.get_running_loop())
        bridge._loop_thread = threading.get_ident()
        return bridge

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop every posted callback runs in."""
        return self._loop

    def post(self, callback: Callable[..., Any], *args: Any) -> None:
        """Run ``callback(*args)`` in the loop thread soon; safe from any thread, never blocks."""
        if self._loop.is_closed():
            log.debug("loop closed, dropping %r", callback)
            return
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # loop closed between the check and the call
            log.debug("loop closed, dropping %r", callback)
