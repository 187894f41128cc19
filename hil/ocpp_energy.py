"""The plant's energy next to the meter values the DUT reports over OCPP.

``PlantEnergy`` samples the register of the meter the plant plays (``BenchDriver.plant_meter``: the simulated SDM630
of the sim bench, the harness's meter on a real one) every ``SAMPLE_S``, as the DUT would decode it (the map's
resolution). ``readings_follow_plant`` holds each transaction message's energy reading against it: a 2.0.1
TransactionEvent's Energy.Active.Import.Register; in 1.6 a MeterValues' register, a StartTransaction's meterStart
and a StopTransaction's meterStop and Transaction.End values (whole Wh: ``energy_readings`` says how each is
rounded; the Transaction.Begin values a StopTransaction repeats were taken at the start, and are not judged at its
arrival).

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
WHOLE_WH = 0.5  # 1.6 meterStart and meterStop are whole Wh
ENERGY = "Energy.Active.Import.Register"
POWER = "Power.Active.Import"
CURRENT = "Current.Import"


def sampled(payload: dict[str, Any], measurand: str, *, skip_context: str | None = None) -> list[float]:
    """The sampled values of ``measurand`` in a TransactionEvent or MeterValues payload (1.6: also a
    StopTransaction's transactionData), in Wh, W or A; values of ``skip_context`` are left out."""
    out = []
    for meter_value in payload.get("meterValue") or payload.get("transactionData") or []:
        for value in meter_value.get("sampledValue") or []:
            if value.get("measurand", ENERGY) != measurand or (skip_context and value.get("context") == skip_context):
                continue
            unit = value.get("unitOfMeasure") or {"unit": value.get("unit")}  # 2.0.1 an object; 1.6 a field
            scale = 10.0 ** int(unit.get("multiplier", 0)) * (1000.0 if unit.get("unit") in ("kWh", "kW") else 1.0)
            out.append(float(value["value"]) * scale)
    return out


def energy_readings(message: Received) -> list[tuple[float, float]]:
    """The energy readings (Wh) a transaction message reports as of its making, each with its rounding."""
    payload = message.payload
    if message.action == "StartTransaction":
        return [(float(payload["meterStart"]), WHOLE_WH)]
    if message.action == "StopTransaction":
        end = sampled(payload, ENERGY, skip_context="Transaction.Begin")
        return [(float(payload["meterStop"]), WHOLE_WH), *((v, ROUNDING_WH) for v in end)]
    return [(v, ROUNDING_WH) for v in sampled(payload, ENERGY)]


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
    step = plant.power_w * SAMPLE_S / 3600.0
    slack = ROUNDING_WH + step
    bad = []
    for t, message in found:
        values = energy_readings(message)
        if not values:
            bad.append(f"{message.action} at t={t:.2f} s has no {ENERGY}")
        for v, rounding in values:
            low, high = plant.at_or_before(t - window_s) - rounding - step, plant.at_or_after(t) + rounding + step
            if not low <= v <= high:
                bad.append(f"{v:.1f} Wh at t={t:.2f} s outside [{low:.1f}, {high:.1f}]")
    since, until = (found[0][0], found[-1][0]) if found else (bench.now(), bench.now())
    ok = bool(found) and not bad
    whole = f", whole Wh ±{WHOLE_WH + step:.2f}" if any(m.action.endswith("Transaction") for _, m in found) else ""
    bench._record(CheckRecord(
        f"{len(found)} energy readings follow the plant's meter (each between the register {window_s:.2f} s before "
        f"its arrival and at its arrival, ±{slack:.2f} Wh{whole})", ok, since, until, (), None,
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
