"""The plant's energy next to the meter values the DUT reports over OCPP.

``PlantEnergy`` samples the register of the meter the plant plays (``BenchDriver.plant_meter``: the simulated SDM630
of the sim bench, the harness's meter on a real one) every ``SAMPLE_S``, as the DUT would decode it (the map's
resolution). ``readings_follow_plant`` holds each TransactionEvent's Energy.Active.Import.Register against it.

The tolerance, and why: the DUT does not read the meter when it makes an event, it reports its latest reading,
taken at most one poll interval (``meter_poll_s``) plus one read before; the event then reaches the CSMS after
the queue write and the send (the bench's latency). So a value that arrived at t must lie between the plant's
register at ``t - (meter_poll_s + 2 * latency_s)`` (one latency for the read, one for the delivery) and the
register at ``t``, give or take the payload's rounding (0.1 Wh) and one sampling step. Anything outside is a
reading that is wrong (units, scaling, another EVSE's meter) or older than the DUT's own polling allows.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
from collections.abc import Iterable
from types import TracebackType
from typing import Any

from drivers.sim.meter_server import SimulatedMeter
from hil.checks import CheckFailed
from hil.csms import Received
from hil.harness import Bench
from hil.timeline import CheckRecord

SAMPLE_S = 0.02
ROUNDING_WH = 0.05  # the station writes Wh with one decimal
ENERGY = "Energy.Active.Import.Register"
POWER = "Power.Active.Import"
CURRENT = "Current.Import"


def sampled(payload: dict[str, Any], measurand: str) -> list[float]:
    """The sampled values of ``measurand`` in a TransactionEvent or MeterValues payload, in Wh, W or A."""
    out = []
    for meter_value in payload.get("meterValue") or []:
        for value in meter_value.get("sampledValue") or []:
            if value.get("measurand", ENERGY) != measurand:
                continue
            unit = value.get("unitOfMeasure") or {}
            scale = 10.0 ** int(unit.get("multiplier", 0)) * (1000.0 if unit.get("unit") in ("kWh", "kW") else 1.0)
            out.append(float(value["value"]) * scale)
    return out


class PlantEnergy:
    """The plant meter's energy (Wh) and power (W) over scenario time, sampled while the ``async with`` lasts."""

    def __init__(self, bench: Bench, evse_id: int) -> None:
        """The plant's meter of EVSE ``evse_id`` (CheckFailed when the plant plays none)."""
        meter = bench.driver.plant_meter(evse_id)
        if meter is None:
            raise CheckFailed(f"EVSE {evse_id}: the plant plays no meter")
        self.bench = bench
        self.meter: SimulatedMeter = meter
        self.times: list[float] = []
        self.wh: list[float] = []
        self.w: list[float] = []
        self.amps: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> None:
        """Take one sample now."""
        expected = self.meter.expected()
        self.times.append(self.bench.now())
        self.wh.append(float(expected["energy_import"] or 0.0) * 1000.0)
        self.w.append(float(expected.get("power_total") or 0.0))
        self.amps.append(float(expected.get("current_l1") or 0.0))

    async def _run(self) -> None:
        """Sample every SAMPLE_S until cancelled."""
        while True:
            self.sample()
            await asyncio.sleep(SAMPLE_S)

    async def __aenter__(self) -> PlantEnergy:
        """Start sampling."""
        self.sample()
        self._task = asyncio.ensure_future(self._run())
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        """Stop sampling, with one last sample."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.sample()

    def at_or_before(self, t: float) -> float:
        """The register at the last sample at or before ``t`` (the first sample if none)."""
        i = bisect.bisect_right(self.times, t)
        return self.wh[max(i - 1, 0)]

    def at_or_after(self, t: float) -> float:
        """The register at the first sample at or after ``t`` (the last sample if none)."""
        i = bisect.bisect_left(self.times, t)
        return self.wh[min(i, len(self.wh) - 1)]

    def flowing_since(self) -> float | None:
        """When the plant's meter first saw power, if it did."""
        return next((t for t, w in zip(self.times, self.w, strict=True) if w > 0), None)

    @property
    def power_w(self) -> float:
        """The highest power the meter saw (the charging power)."""
        return max(self.w, default=0.0)

    @property
    def current_a(self) -> float:
        """The highest phase current the meter saw (the EV draws the same on every phase)."""
        return max(self.amps, default=0.0)


def readings_follow_plant(bench: Bench, plant: PlantEnergy, messages: Iterable[tuple[float, Received]],
                          window_s: float) -> None:
    """Check each message's energy reading against the plant's register between ``arrival - window_s`` and arrival.

    ``messages``: (arrival in scenario time, message). A message without an energy reading is a failure.
    """
    found = list(messages)
    slack = ROUNDING_WH + plant.power_w * SAMPLE_S / 3600.0
    bad = []
    for t, message in found:
        values = sampled(message.payload, ENERGY)
        low, high = plant.at_or_before(t - window_s) - slack, plant.at_or_after(t) + slack
        if not values:
            bad.append(f"{message.action} at t={t:.2f} s has no {ENERGY}")
        bad += [f"{v:.1f} Wh at t={t:.2f} s outside [{low:.1f}, {high:.1f}]" for v in values if not low <= v <= high]
    since, until = (found[0][0], found[-1][0]) if found else (bench.now(), bench.now())
    ok = bool(found) and not bad
    bench._record(CheckRecord(
        f"{len(found)} energy readings follow the plant's meter (each between the register {window_s:.2f} s before "
        f"its arrival and at its arrival, ±{slack:.2f} Wh)", ok, since, until, (), None,
        "; ".join(bad[:4]) if bad else ("" if found else "no readings")))


def power_matches_plant(bench: Bench, plant: PlantEnergy, messages: Iterable[tuple[float, Received]],
                        window_s: float, phases: int) -> None:
    """Check Power.Active.Import and Current.Import of the readings surely taken while the EV drew its current.

    Those are the messages that arrived more than ``window_s`` after the plant's meter first saw power (and before
    it stopped): power within 0.1 % (at least 1 W) of the plant's, each phase's current within 0.01 A of it.
    """
    start = plant.flowing_since()
    power, amps = plant.power_w, plant.current_a
    chosen = [(t, m) for t, m in messages if start is not None and t >= start + window_s]
    bad = []
    for t, message in chosen:
        watts, currents = sampled(message.payload, POWER), sampled(message.payload, CURRENT)
        if not watts or abs(watts[0] - power) > max(1.0, 0.001 * power):
            bad.append(f"power {watts} W at t={t:.2f} s")
        if len(currents) != phases or any(abs(a - amps) > 0.01 for a in currents):
            bad.append(f"currents {currents} A at t={t:.2f} s")
    ok = bool(chosen) and not bad
    since, until = (chosen[0][0], chosen[-1][0]) if chosen else (bench.now(), bench.now())
    detail = "; ".join(bad[:4]) if bad else ("" if chosen else "no reading taken while charging")
    bench._record(CheckRecord(
        f"{len(chosen)} readings taken while charging show the plant's {power:.0f} W and {phases} × {amps:.2f} A",
        ok, since, until, (), None, detail))
