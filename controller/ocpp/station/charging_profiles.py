"""Charging profiles as both protocol layers receive them: one version-neutral model, and the checks that refuse one.

A profile is what OCPP 2.0.1 SetChargingProfile (K01) and 1.6 SetChargingProfile (5.16, 3.13) carry: an id, the
EVSE it is for (0: the whole station), a stack level, a purpose, a kind (Absolute, Recurring Daily/Weekly, or
Relative to the transaction's start), an optional validity window, a transaction for a TxProfile, and one charging
schedule (start, duration, unit A or W, periods of ``startPeriod`` seconds and ``limit``, optional ``numberPhases``
and ``minChargingRate``). The layers translate their wire form into ``ChargingProfile`` (1.6's
ChargePointMaxProfile is ``Purpose.STATION_MAX``, its integer transactionId the station's own transaction id) and
``refusal`` decides whether it may be installed, naming why not (2.0.1 answers the reason in statusInfo, 1.6 only
Rejected). The model is stored as JSON (``to_dict``/``from_dict``) in ocpp.db (controller.ocpp.station.profile_store).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from controller.core.parsing import parse_rfc3339

STATION = 0  # the EVSE id of a profile for the whole station (2.0.1 evseId 0, 1.6 connectorId 0)
MAX_PROFILES = 64  # profiles installed at once (SmartChargingCtrlr.Entries maxLimit, 1.6 MaxChargingProfilesInstalled)
MAX_STACK_LEVEL = 8  # the highest stackLevel accepted (ProfileStackLevel, 1.6 ChargeProfileMaxStackLevel)
MAX_PERIODS = 24  # periods per schedule (PeriodsPerSchedule, 1.6 ChargingScheduleMaxPeriods)
_EARLIEST, _LATEST = datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)


class Purpose(StrEnum):
    """What a profile limits (2.0.1 ChargingProfilePurposeEnumType; 1.6 ChargePointMaxProfile = STATION_MAX)."""

    STATION_MAX = "ChargingStationMaxProfile"
    TX_DEFAULT = "TxDefaultProfile"
    TX = "TxProfile"


class Kind(StrEnum):
    """How a schedule's start is found (ChargingProfileKindEnumType)."""

    ABSOLUTE = "Absolute"
    RECURRING = "Recurring"
    RELATIVE = "Relative"


class Recurrency(StrEnum):
    """How often a Recurring schedule starts again (RecurrencyKindEnumType)."""

    DAILY = "Daily"
    WEEKLY = "Weekly"


class RateUnit(StrEnum):
    """The unit of a schedule's limits: amperes per phase or watts (ChargingRateUnitEnumType)."""

    A = "A"
    W = "W"


@dataclass(frozen=True, slots=True)
class Period:
    """One period of a schedule: from ``start_s`` seconds after the schedule's start, ``limit`` in its unit."""

    start_s: int
    limit: float
    phases: int | None = None  # numberPhases; None: 3 (both versions' default)


@dataclass(frozen=True, slots=True)
class Schedule:
    """A charging schedule: its unit and periods, an absolute start (Absolute, Recurring), a duration."""

    unit: RateUnit
    periods: tuple[Period, ...]
    start: datetime | None = None  # startSchedule (station time); None for Relative
    duration_s: int | None = None  # None: the last period lasts for ever (or until the transaction ends)
    min_rate: float | None = None  # minChargingRate: kept and reported, advisory only (the limit is a maximum)
    schedule_id: int = 0  # 2.0.1 ChargingScheduleType.id


@dataclass(frozen=True, slots=True)
class ChargingProfile:
    """One installed charging profile (version-neutral)."""

    profile_id: int
    evse_id: int  # 0: the whole station
    stack_level: int
    purpose: Purpose
    kind: Kind
    schedule: Schedule
    recurrency: Recurrency | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    transaction_id: str | None = None  # a TxProfile's transaction (the station's transaction id)

    def to_dict(self) -> dict[str, Any]:
        """JSON shape for the profile store."""
        s = self.schedule
        return {"id": self.profile_id, "evse_id": self.evse_id, "stack_level": self.stack_level,
                "purpose": self.purpose.value, "kind": self.kind.value,
                "recurrency": None if self.recurrency is None else self.recurrency.value,
                "valid_from": _iso(self.valid_from), "valid_to": _iso(self.valid_to),
                "transaction_id": self.transaction_id,
                "schedule": {"unit": s.unit.value, "start": _iso(s.start), "duration_s": s.duration_s,
                             "min_rate": s.min_rate, "schedule_id": s.schedule_id,
                             "periods": [[p.start_s, p.limit, p.phases] for p in s.periods]}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ChargingProfile:
        """Read back ``to_dict``'s shape; KeyError/ValueError/TypeError for a damaged record."""
        s = data["schedule"]
        periods = tuple(Period(int(start), float(limit), None if phases is None else int(phases))
                        for start, limit, phases in s["periods"])
        schedule = Schedule(RateUnit(s["unit"]), periods, _time(s.get("start")), _opt_int(s.get("duration_s")),
                            None if s.get("min_rate") is None else float(s["min_rate"]), int(s.get("schedule_id", 0)))
        recurrency = data.get("recurrency")
        tx = data.get("transaction_id")
        return cls(int(data["id"]), int(data["evse_id"]), int(data["stack_level"]), Purpose(data["purpose"]),
                   Kind(data["kind"]), schedule, None if recurrency is None else Recurrency(recurrency),
                   _time(data.get("valid_from")), _time(data.get("valid_to")), None if tx is None else str(tx))


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a profile is refused: a short reason code (2.0.1 statusInfo.reasonCode) and a sentence."""

    code: str
    detail: str


@dataclass(frozen=True, slots=True)
class Limits:
    """What this station accepts (SmartChargingCtrlr / the 1.6 keys)."""

    max_stack_level: int = MAX_STACK_LEVEL
    max_periods: int = MAX_PERIODS
    max_profiles: int = MAX_PROFILES
    units: tuple[RateUnit, ...] = (RateUnit.A, RateUnit.W)


def refusal(profile: ChargingProfile, *, evse_ids: Iterable[int], open_transaction: str | None,
            installed: Iterable[ChargingProfile], limits: Limits | None = None,
            same_level_replaces: bool = False) -> Refusal | None:
    """Why ``profile`` may not be installed (None: it may).

    ``open_transaction`` is the transaction open on the profile's EVSE (a TxProfile needs it); ``installed`` the
    profiles there are now; ``same_level_replaces``: another profile of the same EVSE, purpose and stack level (and,
    for a TxProfile, transaction) is replaced by it (OCPP 1.6 5.16 "SHALL replace"), instead of refused
    (2.0.1 K01.FR.06, K01.FR.39). Checks, in order: the EVSE exists (K01.FR.28); a station maximum is for EVSE 0
    (K01.FR.03, 1.6: ChargePointMaxProfile on connectorId 0 only) and not Relative (K01.FR.38); a TxProfile is for
    an EVSE (K01.FR.16) with a transaction (K01.FR.09), and its transactionId is that one (K01.FR.33); the unit is
    supported (K01.FR.26); the stack level and the number of periods are within the station's limits; periods
    start at 0 (K01.FR.31) and increase (K01.FR.35), with a limit >= 0 and 1..3 phases; Absolute and Recurring have
    a startSchedule (K01.FR.40), Relative none (K01.FR.41), Recurring a recurrencyKind; validFrom before validTo;
    room for one more profile.
    """
    s = profile.schedule
    limits = limits or Limits()
    if profile.evse_id != STATION and profile.evse_id not in set(evse_ids):
        return Refusal("UnknownEvse", f"EVSE {profile.evse_id} does not exist")
    if profile.purpose is Purpose.STATION_MAX:
        if profile.evse_id != STATION:
            return Refusal("InvalidValue", "a station maximum profile is for the whole station (EVSE 0)")
        if profile.kind is Kind.RELATIVE:
            return Refusal("InvalidValue", "a station maximum profile cannot be Relative")
    if profile.purpose is Purpose.TX:
        if profile.evse_id == STATION:
            return Refusal("InvalidValue", "a TxProfile is for one EVSE, not the station")
        if open_transaction is None:
            return Refusal("TxNotFound", f"no transaction is open on EVSE {profile.evse_id}")
        if profile.transaction_id is not None and profile.transaction_id != open_transaction:
            return Refusal("TxNotFound", f"transaction {profile.transaction_id} is not the one on EVSE "
                                         f"{profile.evse_id}")
    elif profile.transaction_id is not None:
        return Refusal("InvalidValue", "only a TxProfile may name a transaction")
    if s.unit not in limits.units:
        return Refusal("InvalidValue", f"charging rate unit {s.unit.value} is not supported")
    if not 0 <= profile.stack_level <= limits.max_stack_level:
        return Refusal("InvalidStackLevel", f"stackLevel must be 0..{limits.max_stack_level}")
    if not 1 <= len(s.periods) <= limits.max_periods:
        return Refusal("InvalidSchedule", f"a schedule has 1..{limits.max_periods} periods, not {len(s.periods)}")
    if problem := _periods_problem(s.periods):
        return Refusal("InvalidSchedule", problem)
    if s.duration_s is not None and s.duration_s <= 0:
        return Refusal("InvalidSchedule", "duration must be positive")
    if profile.kind is Kind.RELATIVE and s.start is not None:
        return Refusal("InvalidSchedule", "a Relative schedule has no startSchedule")
    if profile.kind is not Kind.RELATIVE and s.start is None:
        return Refusal("InvalidSchedule", f"an {profile.kind.value} schedule needs a startSchedule")
    if (profile.kind is Kind.RECURRING) != (profile.recurrency is not None):
        return Refusal("InvalidSchedule", "recurrencyKind goes with (and only with) a Recurring profile")
    if profile.valid_from is not None and profile.valid_to is not None and profile.valid_to <= profile.valid_from:
        return Refusal("InvalidValue", "validTo is not after validFrom")
    others = [p for p in installed if p.profile_id != profile.profile_id]
    if not same_level_replaces and any(_same_slot(p, profile) and _overlap(p, profile) for p in others):
        return Refusal("DuplicateProfile", "another profile has this EVSE, purpose and stack level")
    kept = [p for p in others if not (same_level_replaces and _same_slot(p, profile))]
    if len(kept) >= limits.max_profiles:
        return Refusal("NoCapacity", f"{limits.max_profiles} profiles are installed already")
    return None


def replaced_by(profile: ChargingProfile, installed: Iterable[ChargingProfile], *,
                same_level_replaces: bool) -> list[ChargingProfile]:
    """The installed profiles ``profile`` replaces: the one with its id (K01.FR.05, 1.6 5.16), and with
    ``same_level_replaces`` (1.6) those of the same EVSE, purpose and stack level (and transaction)."""
    return [p for p in installed if p.profile_id == profile.profile_id
            or (same_level_replaces and _same_slot(p, profile))]


def _same_slot(a: ChargingProfile, b: ChargingProfile) -> bool:
    """Same EVSE, purpose and stack level (and, for TxProfiles, the same transaction)."""
    return (a.evse_id == b.evse_id and a.purpose is b.purpose and a.stack_level == b.stack_level
            and (a.purpose is not Purpose.TX or a.transaction_id == b.transaction_id))


def _overlap(a: ChargingProfile, b: ChargingProfile) -> bool:
    """The two profiles' validity windows share a moment (no bound: open on that side)."""
    a_from, b_from = a.valid_from or _EARLIEST, b.valid_from or _EARLIEST
    a_to, b_to = a.valid_to or _LATEST, b.valid_to or _LATEST
    return a_from < b_to and b_from < a_to


def _periods_problem(periods: tuple[Period, ...]) -> str | None:
    """What is wrong with a schedule's periods, if anything."""
    if periods[0].start_s != 0:
        return "the first period must start at 0"
    for before, after in itertools.pairwise(periods):
        if after.start_s <= before.start_s:
            return "periods must start in increasing order"
    for p in periods:
        if p.limit < 0:
            return "a limit cannot be negative"
        if p.phases is not None and not 1 <= p.phases <= 3:
            return "numberPhases must be 1..3"
    return None


def _iso(moment: datetime | None) -> str | None:
    """A time as stored (ISO 8601 with offset)."""
    return None if moment is None else moment.isoformat()


def _time(value: object) -> datetime | None:
    """A stored time back (None stays None); FormatError (a ValueError) if damaged."""
    return None if value is None else parse_rfc3339("time", value)


def _opt_int(value: object) -> int | None:
    """An optional stored integer."""
    return None if value is None else int(str(value))
