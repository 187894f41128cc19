"""The benchmarks' output probe: when a mock output pin really changes, timed from the thread that changes it."""

from __future__ import annotations

import threading
import time
from typing import Any


class OutputProbe:
    """Hooks a mock output pin's ``_change_state``: the time of the first real change after ``arm()``."""

    def __init__(self, pin: Any) -> None:
        self.pin = pin
        self._original = pin._change_state
        self._armed = False
        self._fired = threading.Event()
        self.at_ns = 0
        self.state: Any = None
        pin._change_state = self._change_state  # instance attribute: MockPin calls self._change_state

    def _change_state(self, value: Any) -> bool:
        changed = bool(self._original(value))
        if changed and self._armed:
            self.at_ns = time.perf_counter_ns()
            self.state = value
            self._armed = False
            self._fired.set()
        return changed

    def arm(self) -> None:
        self._fired.clear()
        self._armed = True

    def wait(self, timeout: float) -> bool:
        fired = self._fired.wait(timeout)
        self._armed = False
        return fired

    def unhook(self) -> None:
        self.pin._change_state = self._original
