"""What both protocol layers' answers to the CSMS's orders start from: the station's parts, the availability keeper,
and the tasks an answer leaves running (a reset, a scheduled availability), cancelled when the station stops."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from controller.ocpp.station.availability import AvailabilityKeeper
from controller.ocpp.station.clock import StationClock
from controller.ocpp.station.outbox import Outbox
from controller.ocpp.station.variables import VariableStore
from controller.port.charger import Charger


class StationOrders:
    """The base of a layer's ``Operations``: its station's parts by name, ``availability``, ``spawn`` and ``stop``.

    ``station`` is the layer's StationSession; a subclass declares the precise types of the parts it uses.
    """

    def __init__(self, station: Any, db_path: Path, on_reset: Callable[[str], None] | None,
                 busy: Callable[[int, dict[str, Any]], bool]) -> None:
        """Act for ``station``; ``db_path`` is ocpp.db (the availability table); ``on_reset(kind)`` restarts the
        process (without it a Reset is Rejected); ``busy(evse_id, status entry)`` makes an Inoperative Scheduled."""
        self._station = station
        self.charger: Charger = station.charger
        self.variables: VariableStore = station.variables
        self.outbox: Outbox = station.outbox
        self.transactions = station.transactions
        self.clock: StationClock = station.clock
        self._on_reset = on_reset
        self._tasks: set[asyncio.Task[Any]] = set()
        self.availability = AvailabilityKeeper(self.charger, db_path, busy, self.spawn)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run ``coro`` after the current answer (a task kept until it ends)."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        """Cancel what is still running of the orders, and close the availability table (the station stops)."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.availability.close()
