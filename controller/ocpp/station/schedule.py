"""The composite schedule: which limit the installed charging profiles set for an EVSE or the station, and when.

Pure (no clock, no loop): every question takes the moment ``at`` (station time). The rules, the same in OCPP 2.0.1
(K08, "Composite Schedule" of Part 2 K) and 1.6 (3.13.2 stacking, 3.13.3 combining):

- a profile is in force at ``at`` when ``validFrom <= at < validTo`` (absent bounds are open) and its schedule has
  started and not run out: Absolute from ``startSchedule``; Recurring from the latest Daily/Weekly repetition of
  ``startSchedule`` (not before the first); Relative from the start of the EVSE's transaction (without one: from
  ``at`` itself, as if the transaction started now; such a schedule has no boundaries of its own then); for
  ``duration`` seconds when given. The period in force is the last one whose ``startPeriod`` has passed.
- within one purpose the in-force profile of the highest stack level wins; where it is not in force (before its
  start, after its duration, outside its validity) the next lower one applies. A TxDefaultProfile set for the EVSE
  comes before one set for the whole station (evseId/connectorId 0), a TxProfile (of the EVSE's transaction only)
  before either.
- the EVSE's own limit is the TxProfile's or else the TxDefaultProfile's; the station's is the station maximum
  (ChargingStationMaxProfile, 1.6 ChargePointMaxProfile); what an EVSE may draw is the least of the two
  (the runtime shares the station's limit between EVSEs).
- limits are amperes per phase: a W limit is divided by the supply voltage and the period's numberPhases
  (default: the EVSE's configured phases, OCPP's 3 on a three-phase EVSE; at most those), from
  ``[evses.pilot]`` voltage_v and phases; a composite asked in W multiplies back. Phases are not switched: a
  period asking for fewer phases than a three-phase car uses limits each phase as if it drew on those only.
  minChargingRate does not lower or raise the limit (it is a hint for a local optimizer, K01 / 1.6
  ChargingSchedule): it is kept and reported only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from controller.ocpp.station.charging_profiles import STATION, ChargingProfile, Kind, Period, Purpose, RateUnit
from controller.ocpp.station.charging_profiles import Recurrency as Rec

DEFAULT_PHASES = 3  # numberPhases when a period gives none (both versions)
_CYCLE = {Rec.DAILY: timedelta(days=1), Rec.WEEKLY: timedelta(days=7)}


@dataclass(frozen=True, slots=True)
class Electrical:
    """How an EVSE (or the station, id 0) is supplied: what W <-> A conversions and an unlimited period use."""

    voltage_v: float = 230.0
    phases: int = DEFAULT_PHASES
    max_current_a: float = 32.0  # reported in a composite schedule where no profile limits


@dataclass(frozen=True, slots=True)
class Limit:
    """A limit in force: amperes per phase, on ``phases`` phases."""

    amps: float
    phases: int = DEFAULT_PHASES

    def watts(self, voltage_v: float) -> float:
        """The same limit as power."""
        return self.amps * voltage_v * self.phases


@dataclass(frozen=True, slots=True)
class Step:
    """One period of a composite schedule: from ``start_s`` seconds after its start, ``limit`` (None: unlimited)."""

    start_s: int
    limit: Limit | None


def least(a: Limit | None, b: Limit | None) -> Limit | None:
    """The lower of two limits (None: no limit)."""
    if a is None:
        return b
    if b is None:
        return a
    return a if a.amps <= b.amps else b


def schedule_start(profile: ChargingProfile, at: datetime, tx_start: datetime | None) -> datetime:
    """When the profile's schedule (its latest repetition, for Recurring) started, as seen at ``at``."""
    start = profile.schedule.start
    if profile.kind is Kind.RELATIVE or start is None:
        return tx_start if tx_start is not None else at
    if profile.kind is Kind.RECURRING and profile.recurrency is not None and at > start:
        cycle = _CYCLE[profile.recurrency]
        return start + cycle * ((at - start) // cycle)
    return start


def period_at(profile: ChargingProfile, at: datetime, tx_start: datetime | None) -> Period | None:
    """The profile's period in force at ``at`` (None: the profile is not in force then)."""
    if profile.valid_from is not None and at < profile.valid_from:
        return None
    if profile.valid_to is not None and at >= profile.valid_to:
        return None
    start = schedule_start(profile, at, tx_start)
    if at < start:
        return None
    offset = (at - start).total_seconds()
    duration = profile.schedule.duration_s
    if duration is not None and offset >= duration:
        return None
    found = None
    for period in profile.schedule.periods:
        if period.start_s <= offset:
            found = period
    return found


def next_boundary(profile: ChargingProfile, at: datetime, tx_start: datetime | None) -> datetime | None:
    """The first moment after ``at`` at which the profile's period (or whether it is in force) may change."""
    found: list[datetime] = [t for t in (profile.valid_from, profile.valid_to) if t is not None and t > at]
    if not (profile.kind is Kind.RELATIVE and tx_start is None):
        start = schedule_start(profile, at, tx_start)
        found += [start + timedelta(seconds=p.start_s) for p in profile.schedule.periods]
        if profile.schedule.duration_s is not None:
            found.append(start + timedelta(seconds=profile.schedule.duration_s))
        if profile.kind is Kind.RECURRING and profile.recurrency is not None:
            found.append(start + _CYCLE[profile.recurrency] if at >= start else start)
    later = [t for t in found if t > at]
    return min(later) if later else None


class Composite:
    """The installed profiles of a station, its EVSEs' open transactions and supplies: limits at any moment."""

    def __init__(self, profiles: Iterable[ChargingProfile], transactions: Mapping[int, tuple[str, datetime]],
                 electrical: Callable[[int], Electrical]) -> None:
        """``transactions``: EVSE id -> (transaction id, start) of each open transaction; ``electrical(evse_id)``
        the supply of an EVSE (0: the station)."""
        self.profiles = sorted(profiles, key=lambda p: -p.stack_level)
        self.transactions = transactions
        self.electrical = electrical

    def _tx_start(self, evse_id: int) -> datetime | None:
        """When the EVSE's open transaction started (None without one)."""
        tx = self.transactions.get(evse_id)
        return None if tx is None else tx[1]

    def _candidates(self, evse_id: int) -> list[list[ChargingProfile]]:
        """The EVSE's own-limit profiles in order of precedence: its TxProfile(s) of the open transaction, its
        TxDefaultProfiles, the station-wide TxDefaultProfiles (each list by stack level, highest first)."""
        tx = self.transactions.get(evse_id)
        tx_id = None if tx is None else tx[0]
        return [
            [p for p in self.profiles if p.purpose is Purpose.TX and p.evse_id == evse_id and tx_id is not None
             and p.transaction_id == tx_id],
            [p for p in self.profiles if p.purpose is Purpose.TX_DEFAULT and p.evse_id == evse_id],
            [p for p in self.profiles if p.purpose is Purpose.TX_DEFAULT and p.evse_id == STATION],
        ]

    def _first_in_force(self, groups: Iterable[list[ChargingProfile]], at: datetime, tx_start: datetime | None,
                        supply: Electrical) -> Limit | None:
        """The limit of the first profile in force, groups in order, each by stack level."""
        for group in groups:
            for profile in group:
                period = period_at(profile, at, tx_start)
                if period is not None:
                    return _amps(period, profile.schedule.unit, supply)
        return None

    def evse_limit(self, evse_id: int, at: datetime) -> Limit | None:
        """The EVSE's own limit at ``at``: TxProfile, else TxDefaultProfile (None: no profile limits it)."""
        return self._first_in_force(self._candidates(evse_id), at, self._tx_start(evse_id), self.electrical(evse_id))

    def station_limit(self, at: datetime) -> Limit | None:
        """The station maximum at ``at`` (None: no profile limits the station)."""
        group = [p for p in self.profiles if p.purpose is Purpose.STATION_MAX]
        return self._first_in_force([group], at, None, self.electrical(STATION))

    def limit(self, evse_id: int, at: datetime) -> Limit | None:
        """What the composite schedule says at ``at``: the station's maximum for 0, else the least of it and the
        EVSE's own limit."""
        station = self.station_limit(at)
        return station if evse_id == STATION else least(station, self.evse_limit(evse_id, at))

    def next_change(self, at: datetime, evse_ids: Iterable[int]) -> datetime | None:
        """The first moment after ``at`` at which any limit of these EVSEs (and the station's) may change."""
        relevant = {STATION, *evse_ids}
        times = [next_boundary(p, at, self._tx_start(p.evse_id)) for p in self.profiles if p.evse_id in relevant
                 or (p.evse_id == STATION and p.purpose is Purpose.TX_DEFAULT)]
        if any(p.purpose is Purpose.TX_DEFAULT and p.evse_id == STATION for p in self.profiles):
            # a station-wide TxDefaultProfile runs relative to each EVSE's own transaction
            times += [next_boundary(p, at, self._tx_start(e)) for p in self.profiles
                      if p.purpose is Purpose.TX_DEFAULT and p.evse_id == STATION for e in relevant if e != STATION]
        later = [t for t in times if t is not None and t > at]
        return min(later) if later else None

    def schedule(self, evse_id: int, start: datetime, duration_s: int) -> list[Step]:
        """The composite schedule of an EVSE (0: the station) from ``start`` for ``duration_s`` seconds: one step
        per change, equal neighbours merged."""
        steps: list[Step] = []
        end = start + timedelta(seconds=duration_s)
        at = start
        while at < end:
            value = self.limit(evse_id, at)
            offset = int((at - start).total_seconds())  # startPeriod is whole seconds: a later change wins
            if steps and steps[-1].start_s == offset:
                steps.pop()
            if not steps or steps[-1].limit != value:
                steps.append(Step(offset, value))
            following = self.next_change(at, [evse_id])
            if following is None:
                break
            at = following
        return steps


def _amps(period: Period, unit: RateUnit, supply: Electrical) -> Limit:
    """A period's limit as amperes per phase (W through the supply voltage and the period's phases: by default the
    phases the EVSE has, and never more, since a car cannot draw on a phase that is not wired)."""
    phases = min(period.phases or supply.phases, supply.phases)
    if unit is RateUnit.A:
        return Limit(period.limit, phases)
    return Limit(period.limit / (supply.voltage_v * phases), phases)


def in_unit(limit: Limit | None, unit: RateUnit, supply: Electrical) -> tuple[float, int]:
    """A composite step's (limit, phases) in ``unit`` (unlimited: the supply's maximum current), one decimal."""
    value = limit if limit is not None else Limit(supply.max_current_a, supply.phases)
    number = value.amps if unit is RateUnit.A else value.watts(supply.voltage_v)
    return round(number, 1), value.phases
