"""Durable reservation writes off the event loop: one writer thread, group commit, answers after the commit.

The core decides a change and makes it in memory at once (controller.core.writes); its write is queued
here. One writer thread (a one-worker executor, through ``loop.run_in_executor`` so a warped test loop
knows real work is under way) commits every write queued so far in ONE transaction: one fsync for the
writes that arrived together, however slow the disk. Meanwhile the loop goes on serving pins, timers and
interlocks. When the transaction is durable the core is told (its held events go out), then the callers
waiting for those writes are answered. A transaction that fails fails every write queued or in flight
(the core undoes their changes, newest first) and their callers get the StoreError: memory and disk agree.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from controller.core.pending import Change, StoreWrite
from controller.core.reservation import ReservationCore
from controller.core.store import ReservationStore, StoreError

log = logging.getLogger("controller.runtime")

class StoreWriter:
    """The reservation store's writer thread and its queue, on one loop (see the module)."""

    def __init__(
        self,
        core: ReservationCore,
        store: ReservationStore,
        loop: asyncio.AbstractEventLoop,
        on_settled: Callable[[bool], None],
    ) -> None:
        """Write ``core``'s changes to ``store``; ``on_settled(failed)`` runs in the loop after each transaction."""
        self._core = core
        self._store = store
        self._loop = loop
        self._on_settled = on_settled
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reservation-store")
        self._queue: list[StoreWrite] = []
        self._busy = False
        self._waiters: dict[StoreWrite, asyncio.Future[None]] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self.transactions = 0  # committed or attempted, for tests and benchmarks: group commit shows here
        self.writes = 0

    def submit(self, write: StoreWrite) -> None:
        """Queue ``write`` (the core's writer callback; in the loop): committed with all queued beside it."""
        self._queue.append(write)
        self._idle.clear()
        if not self._busy:
            self._start()

    async def settle(self, change: Change[Any]) -> None:
        """Wait until ``change`` is durable (and the write before it settled); StoreError when its write failed."""
        if change.after is not None and change.write is None:
            await self._wait(change.after)  # decided against that write's state: answered once it settled
            return
        if change.write is not None:
            await self._wait(change.write)
            if change.write.error is not None:
                raise change.write.error

    async def _wait(self, write: StoreWrite) -> None:
        """Until ``write`` settled, either way."""
        if write.done:
            return
        waiter = self._waiters.get(write)
        if waiter is None:
            waiter = self._waiters[write] = self._loop.create_future()
        await asyncio.shield(waiter)

    async def close(self) -> None:
        """Let the writes queued and in flight settle, then stop the thread (before the store is closed)."""
        await self._idle.wait()
        self._executor.shutdown(wait=True)

    # ------------------------------------------------------------ the writer

    def _start(self) -> None:
        """Hand everything queued to the thread as one transaction."""
        batch, self._queue = self._queue, []
        self._busy = True
        self.transactions += 1
        self.writes += len(batch)
        future = self._loop.run_in_executor(self._executor, self._commit, batch)
        future.add_done_callback(lambda done: self._finished(batch, done))

    def _commit(self, batch: list[StoreWrite]) -> None:
        """On the writer thread: one transaction for the whole batch (a probe when it writes nothing)."""
        rows = [(w.puts, w.deletes) for w in batch if not w.empty]
        if rows:
            self._store.write_batch(rows)
        elif any(w.probe for w in batch):
            self._store.probe()

    def _finished(self, batch: list[StoreWrite], done: asyncio.Future[None]) -> None:
        """In the loop: tell the core, answer the waiters, start the next batch."""
        self._busy = False
        error = done.exception()
        failed = error is not None
        if error is None:
            for write in batch:
                self._core.write_done(write)
        else:
            if not isinstance(error, StoreError):  # a bug, not the disk: still undo, still answer
                log.error("reservation store writer failed", exc_info=error)
                error = StoreError(f"{self._store.path}: cannot write: {error!r}")
            self._core.write_failed(batch[0], error)
            self._queue = [w for w in self._queue if not w.done]  # the core failed them too
        for write in list(self._waiters):
            if write.done:
                waiter = self._waiters.pop(write)
                if not waiter.done():
                    waiter.set_result(None)
        if self._queue:
            self._start()
        else:
            self._idle.set()
        try:
            self._on_settled(failed)
        except Exception:
            log.exception("error after a reservation store write")
