"""Modbus energy meters: ModbusMeter implements drivers.interfaces.Meter over a shared ModbusBus.

A read runs the map's planned requests, decodes them in our own code and returns a MeterSnapshot
or a Fault value; the bus reconnects by itself, so a meter recovers as soon as reads succeed again.
MeterPoller reads the meters of one bus in turn and hands each result to a callback.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from drivers.interfaces import Fault, FaultKind, MeterSnapshot
from drivers.meter_map import DecodeError, MeterMap
from drivers.modbus_bus import ModbusBus

log = logging.getLogger(__name__)

MeterResult = MeterSnapshot | Fault


class ModbusMeter:
    """One meter (unit id) of a known model on a bus. Times are ``clock()`` seconds.

    ``fault(now)`` is METER_STALE once no valid reading arrived for longer than ``stale_after_s``
    (counted from construction before the first reading), else the last read's fault, else None.
    A declared current that the meter reports as "not available" is METER_BAD_DATA, never 0 A:
    the unlock interlock must not read "no current" from a meter that cannot say.
    """

    def __init__(self, name: str, bus: ModbusBus, meter_map: MeterMap, unit_id: int, *,
                 stale_after_s: float = 10.0, clock: Callable[[], float] = time.monotonic,
                 owns_bus: bool = False) -> None:
        if not 1 <= unit_id <= 247:
            raise ValueError(f"meter {name!r}: unit id must be 1..247, not {unit_id}")
        if not stale_after_s > 0:
            raise ValueError(f"meter {name!r}: stale_after_s must be > 0, not {stale_after_s}")
        self.name = name
        self.bus = bus
        self.meter_map = meter_map
        self.unit_id = unit_id
        self.stale_after_s = stale_after_s
        self._clock = clock
        self._owns_bus = owns_bus
        self._created = clock()
        self._last: MeterSnapshot | None = None
        self._fault: Fault | None = None

    async def read(self) -> MeterSnapshot | Fault:
        """Read every planned request; the first failing request ends the read with its fault."""
        values: dict[str, float | None] = {}
        for request in self.meter_map.plan:
            registers = await self.bus.read_registers(self.unit_id, request.function_code,
                                                      request.address, request.count)
            if isinstance(registers, Fault):
                return self._failed(registers.kind, registers.detail)
            try:
                values.update(request.decode(registers))
            except DecodeError as exc:
                return self._failed(FaultKind.METER_BAD_DATA, str(exc))
        phases = self.meter_map.phases
        missing = [f"current_l{n}" for n in range(1, phases + 1) if values.get(f"current_l{n}") is None]
        if missing:
            return self._failed(FaultKind.METER_BAD_DATA, f"meter reports {missing} as not available")
        snapshot = MeterSnapshot(
            voltage_v=_phases(values, "voltage", phases),
            current_a=_phases(values, "current", phases),
            power_w=values.get("power_total"),
            energy_import_kwh=values.get("energy_import"),
            timestamp=self._clock(),
        )
        if self._fault is not None:
            log.info("meter %s: reading again after %s", self.name, self._fault.kind)
        self._last, self._fault = snapshot, None
        return snapshot

    def last(self) -> MeterSnapshot | None:
        """The last valid reading, however old."""
        return self._last

    def fault(self, now: float) -> Fault | None:
        """METER_STALE past the stale limit, else the last read's fault, else None."""
        reference = self._last.timestamp if self._last is not None else self._created
        if now - reference > self.stale_after_s:
            cause = f"; last: {self._fault.kind} {self._fault.detail}" if self._fault else ""
            return Fault(FaultKind.METER_STALE, reference + self.stale_after_s,
                         f"no valid reading for {now - reference:.1f} s{cause}")
        return self._fault

    async def aclose(self) -> None:
        """Close the bus only if this meter owns it (a shared bus is closed by its owner)."""
        if self._owns_bus:
            await self.bus.aclose()

    def _failed(self, kind: FaultKind, detail: str) -> Fault:
        """Record a fault, keeping ``since`` from the first of an unbroken run of the same kind."""
        now = self._clock()
        since = self._fault.since if self._fault is not None and self._fault.kind == kind else now
        self._fault = Fault(kind, since, f"meter {self.name} (unit {self.unit_id}): {detail}")
        return self._fault


def _phases(values: dict[str, float | None], prefix: str,
            phases: int) -> tuple[float | None, float | None, float | None]:
    l1, l2, l3 = (values.get(f"{prefix}_l{n}") if n <= phases else None for n in (1, 2, 3))
    return (l1, l2, l3)


class MeterPoller:
    """Reads the meters of one bus in turn, one round every ``interval_s``, until stopped.

    Results go to ``on_result(meter, snapshot_or_fault)`` in the loop; a callback that raises is
    logged and polling goes on. A round that overruns the interval starts the next one at once.
    ``read_soon(meter)`` asks for one reading of a meter out of turn (e.g. right after its contactor opened, so the
    unlock interlock gets a reading in about one bus round trip instead of up to an interval): it is read as soon as
    the bus is free, between the rounds' reads, and the rounds keep their schedule.
    """

    def __init__(self, meters: Sequence[ModbusMeter], on_result: Callable[[ModbusMeter, MeterResult], None],
                 *, interval_s: float = 1.0) -> None:
        if not meters:
            raise ValueError("MeterPoller needs at least one meter")
        buses = {id(meter.bus) for meter in meters}
        if len(buses) != 1:
            raise ValueError(f"meters {[m.name for m in meters]} are on different buses: one poller per bus")
        if not interval_s > 0:
            raise ValueError(f"interval_s must be > 0, not {interval_s}")
        self.meters = tuple(meters)
        self.interval_s = interval_s
        self._on_result = on_result
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._urgent: list[ModbusMeter] = []
        self._wake = asyncio.Event()

    def read_soon(self, meter: ModbusMeter) -> None:
        """Read ``meter`` (one of this poller's) as soon as the bus is free, out of turn; ValueError if not ours."""
        if meter not in self.meters:
            raise ValueError(f"meter {meter.name} is not polled here (bus {self.meters[0].bus.name})")
        if meter not in self._urgent:
            self._urgent.append(meter)
        self._wake.set()

    async def _read(self, meter: ModbusMeter) -> MeterResult:
        """One reading, delivered to the callback."""
        result = await meter.read()
        try:
            self._on_result(meter, result)
        except Exception:
            log.exception("meter poller: callback failed for meter %s", meter.name)
        return result

    async def _read_urgent(self) -> None:
        """The out-of-turn readings asked for so far, in order."""
        while self._urgent and not self._stopping:
            await self._read(self._urgent.pop(0))

    async def poll_once(self) -> list[MeterResult]:
        """One round: each meter once, in order; returns the results as delivered."""
        results: list[MeterResult] = []
        for meter in self.meters:
            await self._read_urgent()
            if self._stopping:
                break
            if meter in self._urgent:
                self._urgent.remove(meter)  # read now in its turn: that answers the request too
            results.append(await self._read(meter))
        return results

    async def run(self) -> None:
        """Poll until cancelled or stopped."""
        loop = asyncio.get_running_loop()
        next_round = loop.time()
        while not self._stopping:
            await self.poll_once()
            next_round = max(next_round + self.interval_s, loop.time())
            await self._until(next_round)

    async def _until(self, when: float) -> None:
        """Wait for loop time ``when``, reading the meters asked for out of turn meanwhile.

        Once the wait for ``when`` has timed out the round is due, whatever the clock says: a loop's clock may stop
        a hair short of a timer's time (a stepped clock in tests), and waiting again for that hair would spin.
        """
        loop = asyncio.get_running_loop()
        while not self._stopping:
            self._wake.clear()
            if not self._urgent:
                remaining = when - loop.time()
                if remaining <= 0:
                    return
                try:
                    await asyncio.wait_for(self._wake.wait(), remaining)
                except TimeoutError:
                    return
            await self._read_urgent()

    def start(self) -> asyncio.Task[None]:
        """Run in a background task (idempotent while it runs)."""
        if self._task is None or self._task.done():
            self._stopping = False
            self._task = asyncio.create_task(self.run(), name=f"meter-poller-{self.meters[0].bus.name}")
        return self._task

    async def stop(self) -> None:
        """Stop the polling task and wait for it to end; idempotent.

        Python 3.11's ``asyncio.wait_for`` (inside pymodbus) can swallow a cancellation that races
        with a completing read, so the poller also checks a stop flag and is cancelled until it ends.
        """
        task, self._task = self._task, None
        if task is None or task.done():
            return
        self._stopping = True
        while not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=0.1)
        self._stopping = False
        if not task.cancelled() and task.exception() is not None:
            log.error("meter poller ended with an error", exc_info=task.exception())

    async def __aenter__(self) -> MeterPoller:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
