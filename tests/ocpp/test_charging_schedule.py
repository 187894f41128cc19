"""The version-neutral charging-profile maths (controller.ocpp.station.schedule, charging_profiles): stack levels,
validity windows, Absolute/Recurring/Relative starts, durations, W -> A, the TxProfile > TxDefaultProfile order,
the station maximum, the composite schedule's steps, and the refusals; with hypothesis, that the composite schedule
says at each moment what the limit at that moment is."""

from __future__ import annotations

import itertools
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from controller.ocpp.station.charging_profiles import (
    STATION,
    ChargingProfile,
    Kind,
    Limits,
    Period,
    Purpose,
    RateUnit,
    Recurrency,
    Schedule,
    refusal,
    replaced_by,
)
from controller.ocpp.station.profile_store import ProfileStore
from controller.ocpp.station.schedule import Composite, Electrical, Limit, in_unit, next_boundary, period_at

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # a Monday


def profile(profile_id: int = 1, *, evse_id: int = 1, level: int = 0, purpose: Purpose = Purpose.TX_DEFAULT,
            kind: Kind = Kind.ABSOLUTE, periods: tuple[tuple[int, float], ...] = ((0, 16.0),),
            unit: RateUnit = RateUnit.A, start: datetime | None = T0, duration_s: int | None = None,
            recurrency: Recurrency | None = None, valid_from: datetime | None = None,
            valid_to: datetime | None = None, tx: str | None = None, phases: int | None = None) -> ChargingProfile:
    """A profile with test defaults (TxDefault on EVSE 1, Absolute from T0, 16 A)."""
    schedule = Schedule(unit, tuple(Period(s, limit, phases) for s, limit in periods),
                        None if kind is Kind.RELATIVE else start, duration_s)
    return ChargingProfile(profile_id, evse_id, level, purpose, kind, schedule, recurrency, valid_from, valid_to, tx)


def composite(*profiles: ChargingProfile, tx: dict[int, tuple[str, datetime]] | None = None) -> Composite:
    """The composite of ``profiles`` on a 230 V 3-phase supply."""
    return Composite(profiles, tx or {}, lambda _evse: Electrical())


def amps(limit: Limit | None) -> float | None:
    """A limit's amperes, rounded."""
    return None if limit is None else round(limit.amps, 2)


def test_periods_apply_in_turn_and_the_schedule_ends_after_its_duration() -> None:
    p = profile(periods=((0, 10.0), (60, 20.0)), duration_s=120)
    assert period_at(p, T0 - timedelta(seconds=1), None) is None
    assert period_at(p, T0, None) == Period(0, 10.0)
    assert period_at(p, T0 + timedelta(seconds=59), None) == Period(0, 10.0)
    assert period_at(p, T0 + timedelta(seconds=60), None) == Period(60, 20.0)
    assert period_at(p, T0 + timedelta(seconds=120), None) is None
    assert next_boundary(p, T0 + timedelta(seconds=10), None) == T0 + timedelta(seconds=60)
    assert next_boundary(p, T0 + timedelta(seconds=60), None) == T0 + timedelta(seconds=120)


def test_the_highest_stack_level_in_force_wins_and_a_lower_one_applies_outside_its_window() -> None:
    low = profile(1, level=0, periods=((0, 32.0),))
    high = profile(2, level=3, periods=((0, 8.0),), valid_from=T0 + timedelta(hours=1),
                   valid_to=T0 + timedelta(hours=2))
    c = composite(low, high)
    assert amps(c.evse_limit(1, T0 + timedelta(minutes=30))) == 32.0
    assert amps(c.evse_limit(1, T0 + timedelta(minutes=90))) == 8.0
    assert amps(c.evse_limit(1, T0 + timedelta(hours=2))) == 32.0
    assert c.next_change(T0, [1]) == T0 + timedelta(hours=1)


def test_recurring_daily_repeats_from_its_start_and_weekly_every_seven_days() -> None:
    daily = profile(kind=Kind.RECURRING, recurrency=Recurrency.DAILY, periods=((0, 6.0), (3600, 16.0)))
    assert period_at(daily, T0 + timedelta(days=3, minutes=10), None) == Period(0, 6.0)
    assert period_at(daily, T0 + timedelta(days=3, hours=2), None) == Period(3600, 16.0)
    assert period_at(daily, T0 - timedelta(hours=1), None) is None  # not before the first start
    assert next_boundary(daily, T0 + timedelta(days=1, hours=5), None) == T0 + timedelta(days=2)
    weekly = profile(kind=Kind.RECURRING, recurrency=Recurrency.WEEKLY, periods=((0, 6.0),), duration_s=86400)
    assert period_at(weekly, T0 + timedelta(days=7, hours=1), None) == Period(0, 6.0)
    assert period_at(weekly, T0 + timedelta(days=8, hours=1), None) is None


def test_relative_schedules_run_from_the_transactions_start() -> None:
    rel = profile(kind=Kind.RELATIVE, periods=((0, 6.0), (30, 16.0)))
    c = composite(rel, tx={1: ("tx-1", T0)})
    assert amps(c.evse_limit(1, T0 + timedelta(seconds=10))) == 6.0
    assert amps(c.evse_limit(1, T0 + timedelta(seconds=40))) == 16.0
    idle = composite(rel)  # no transaction: as if one started now, no boundary of its own
    assert amps(idle.evse_limit(1, T0 + timedelta(hours=5))) == 6.0
    assert idle.next_change(T0, [1]) is None


def test_a_tx_profile_beats_tx_default_and_only_for_its_transaction() -> None:
    default = profile(1, level=5, periods=((0, 20.0),))
    station_default = profile(2, evse_id=STATION, level=9, periods=((0, 25.0),))
    tx = profile(3, purpose=Purpose.TX, periods=((0, 10.0),), tx="tx-1")
    assert amps(composite(default, station_default, tx, tx={1: ("tx-1", T0)}).evse_limit(1, T0)) == 10.0
    assert amps(composite(default, station_default, tx, tx={1: ("tx-2", T0)}).evse_limit(1, T0)) == 20.0
    assert amps(composite(default, station_default, tx).evse_limit(2, T0)) == 25.0  # EVSE 2: the station's default


def test_watts_become_amperes_per_phase_with_the_periods_phases() -> None:
    three = profile(unit=RateUnit.W, periods=((0, 11040.0),))
    one = profile(unit=RateUnit.W, periods=((0, 3680.0),), phases=1)
    assert amps(composite(three).evse_limit(1, T0)) == 16.0
    assert composite(one).evse_limit(1, T0) == Limit(16.0, 1)
    assert in_unit(Limit(16.0, 3), RateUnit.W, Electrical()) == (11040.0, 3)
    assert in_unit(None, RateUnit.A, Electrical(max_current_a=32.0)) == (32.0, 3)


def test_watts_use_the_evses_own_voltage_and_phases() -> None:
    """A single-phase 240 V EVSE: a period without numberPhases means its one phase, and 3 phases cannot draw."""
    single = Composite([profile(unit=RateUnit.W, periods=((0, 2400.0),))], {},
                       lambda _evse: Electrical(voltage_v=240.0, phases=1))
    assert single.evse_limit(1, T0) == Limit(10.0, 1)
    asked_three = Composite([profile(unit=RateUnit.W, periods=((0, 2400.0),), phases=3)], {},
                            lambda _evse: Electrical(voltage_v=240.0, phases=1))
    assert asked_three.evse_limit(1, T0) == Limit(10.0, 1)
    assert in_unit(Limit(10.0, 1), RateUnit.W, Electrical(voltage_v=240.0, phases=1)) == (2400.0, 1)


def test_the_composite_is_the_least_of_the_station_maximum_and_the_evse_limit() -> None:
    station = profile(1, evse_id=STATION, purpose=Purpose.STATION_MAX, periods=((0, 12.0), (60, 40.0)))
    evse = profile(2, periods=((0, 20.0),))
    steps = composite(station, evse).schedule(1, T0, 120)
    assert [(s.start_s, amps(s.limit)) for s in steps] == [(0, 12.0), (60, 20.0)]
    assert [(s.start_s, amps(s.limit)) for s in composite(station, evse).schedule(STATION, T0, 120)] == [
        (0, 12.0), (60, 40.0)]
    assert composite(station).evse_limit(1, T0) is None  # the station's maximum is the station's, shared


def reason(p: ChargingProfile, *, installed: list[ChargingProfile] | None = None, tx: str | None = None,
           **more: Any) -> str | None:
    """The refusal code of ``p`` on a station with EVSEs 1 and 2 (None: accepted)."""
    found = refusal(p, evse_ids=[1, 2], open_transaction=tx, installed=installed or [], **more)
    return None if found is None else found.code


def test_refusals_name_the_reason() -> None:
    assert reason(profile()) is None
    assert reason(profile(evse_id=7)) == "UnknownEvse"
    assert reason(profile(purpose=Purpose.TX)) == "TxNotFound"
    assert reason(profile(purpose=Purpose.TX), tx="tx-1") is None
    assert reason(profile(purpose=Purpose.TX, tx="tx-9"), tx="tx-1") == "TxNotFound"
    assert reason(profile(purpose=Purpose.TX, evse_id=STATION), tx="tx-1") == "InvalidValue"
    assert reason(profile(purpose=Purpose.STATION_MAX)) == "InvalidValue"  # on EVSE 1, not the station
    assert reason(profile(purpose=Purpose.STATION_MAX, evse_id=STATION, kind=Kind.RELATIVE)) == "InvalidValue"
    assert reason(profile(periods=tuple((n, 6.0) for n in range(30)))) == "InvalidSchedule"
    assert reason(profile(unit=RateUnit.W), limits=Limits(units=(RateUnit.A,))) == "InvalidValue"
    assert reason(profile(level=99)) == "InvalidStackLevel"
    assert reason(profile(periods=((5, 6.0),))) == "InvalidSchedule"
    assert reason(profile(periods=((0, 6.0), (0, 7.0)))) == "InvalidSchedule"
    assert reason(profile(kind=Kind.RECURRING)) == "InvalidSchedule"  # no recurrencyKind
    assert reason(profile(start=None)) == "InvalidSchedule"  # Absolute without startSchedule
    installed = [profile(1)]
    assert reason(profile(2), installed=installed) == "DuplicateProfile"
    assert reason(profile(2, valid_from=T0 + timedelta(days=1)), installed=[profile(1, valid_to=T0)]) is None
    assert reason(profile(2), installed=installed, same_level_replaces=True) is None
    assert reason(profile(2, level=1), installed=installed, limits=Limits(max_profiles=1)) == "NoCapacity"
    assert reason(profile(1, level=3), installed=installed, limits=Limits(max_profiles=1)) is None  # replaces 1
    assert replaced_by(profile(2), installed, same_level_replaces=True) == installed
    assert replaced_by(profile(1, level=4), installed, same_level_replaces=False) == installed


def test_a_stored_profile_reads_back_the_same_and_a_damaged_row_is_skipped(tmp_path: Path) -> None:
    p = profile(4, kind=Kind.RECURRING, recurrency=Recurrency.WEEKLY, valid_to=T0 + timedelta(days=30),
                periods=((0, 6.0), (100, 7.5)), duration_s=600, phases=1)
    assert ChargingProfile.from_dict(p.to_dict()) == p
    store = ProfileStore(tmp_path / "ocpp.db")
    try:
        store.replace([], [p, profile(5)])
        with sqlite3.connect(tmp_path / "ocpp.db") as db:
            db.execute("UPDATE ocpp_charging_profiles SET data = '{\"id\": 5' WHERE profile_id = 5")
        assert store.load() == [p]
        store.replace([4], [])
        assert store.load() == []
    finally:
        store.close()


_period_lists = st.lists(st.tuples(st.integers(1, 500), st.floats(0, 63, allow_nan=False).map(lambda x: round(x, 1))),
                         min_size=0, max_size=4)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(-300, 300), st.one_of(st.none(), st.integers(10, 900)),
                          st.floats(6, 40).map(lambda x: round(x, 1)), _period_lists, st.booleans()),
                min_size=1, max_size=4),
       st.integers(0, 900))
def test_the_composite_schedule_says_at_every_moment_what_the_limit_then_is(
        specs: list[tuple[int, int, int | None, float, list[tuple[int, float]], bool]], probe_s: int) -> None:
    profiles = []
    for n, (level, offset, duration, first, later, station) in enumerate(specs, start=1):
        starts = sorted({s for s, _ in later})
        periods = ((0, first), *((s, dict(later)[s]) for s in starts))
        profiles.append(profile(n, level=level, start=T0 + timedelta(seconds=offset), duration_s=duration,
                                periods=periods, evse_id=STATION if station else 1,
                                purpose=Purpose.STATION_MAX if station else Purpose.TX_DEFAULT))
    by_slot = {(p.evse_id, p.purpose, p.stack_level): p for p in profiles}  # as installed: one per slot
    c = composite(*by_slot.values())
    steps = c.schedule(1, T0, 1000)
    assert steps[0].start_s == 0
    assert all(a.start_s < b.start_s and a.limit != b.limit for a, b in itertools.pairwise(steps))
    in_force = [s for s in steps if s.start_s <= probe_s][-1]
    assert in_force.limit == c.limit(1, T0 + timedelta(seconds=probe_s))
