"""OCPP 2.0.1 smart charging (functional block K): SetChargingProfile (K01), ClearChargingProfile (K10),
GetChargingProfiles with ReportChargingProfiles (K09), GetCompositeSchedule (K08), and a RequestStartTransaction's
chargingProfile (K05).

This module translates: profiles arrive in the ``ocpp`` library's snake_case and become the version-neutral
``ChargingProfile`` (controller.ocpp.station.charging_profiles); installing, clearing, persisting and applying them
is the station core's ``SmartCharging`` (controller.ocpp.station.smart_charging). Refusals are answered Rejected with
a statusInfo naming the reason. What this station accepts is its SmartChargingCtrlr (controller.ocpp.v201.
device_model): Enabled (false: every SetChargingProfile Rejected), ProfileStackLevel, PeriodsPerSchedule, RateUnit;
Entries[ChargingProfiles] counts what is installed. One chargingSchedule per profile (the second and third are for
ISO 15118 sales tariffs, which this station does not do).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ocpp.v201 import call, call_result

from controller.core.parsing import FormatError, parse_rfc3339
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
)
from controller.ocpp.station.schedule import in_unit
from controller.ocpp.station.smart_charging import SmartCharging
from controller.ocpp.v201.convert import status_info

if TYPE_CHECKING:
    from controller.ocpp.v201.station import Station201

CTRLR = "SmartChargingCtrlr"
LIMIT_SOURCE = "CSO"  # every profile here was set by the CSMS (ChargingLimitSourceEnumType)


class SmartCharging201:
    """The 2.0.1 station's answers to the K use cases, on the station core's ``SmartCharging``."""

    def __init__(self, station: Station201, db_path: Path) -> None:
        """Act for ``station``; profiles live in ``db_path`` (ocpp.db)."""
        self._station = station
        self.variables = station.variables
        self.core = SmartCharging(
            station.charger, db_path, station.clock, station.transactions.tracker,
            on_count=lambda n: self.variables.set_internal(CTRLR, "Entries", str(n),
                                                           variable_instance="ChargingProfiles"))

    def _limits(self) -> Limits:
        """What SmartChargingCtrlr says this station accepts."""
        units = tuple(RateUnit(u) for u in self.variables.list_value(CTRLR, "RateUnit") if u in ("A", "W"))
        return Limits(max_stack_level=self.variables.int_value(CTRLR, "ProfileStackLevel"),
                      max_periods=self.variables.int_value(CTRLR, "PeriodsPerSchedule"), units=units)

    # ------------------------------------------------------------ K01

    async def set_charging_profile(self, evse_id: int, charging_profile: dict[str, Any]) -> Any:
        """K01: install (replacing one of the same id, K01.FR.05) and apply at once, or Rejected with the reason (a
        TxProfile must name its transaction, K01.FR.03; the other checks are the core's)."""
        if not self.variables.bool_value(CTRLR, "Enabled"):
            return call_result.SetChargingProfile(status="Rejected", status_info=status_info(
                "Disabled", "SmartChargingCtrlr.Enabled is false"))
        try:
            profile = profile_from_wire(evse_id, charging_profile)
        except (FormatError, ValueError, KeyError, TypeError) as exc:
            return call_result.SetChargingProfile(status="Rejected", status_info=status_info("InvalidValue", str(exc)))
        if profile.purpose is Purpose.TX and profile.transaction_id is None:
            return call_result.SetChargingProfile(status="Rejected", status_info=status_info(
                "InvalidValue", "a TxProfile names its transactionId (K01.FR.03)"))
        self.core.limits = self._limits()
        refused = await self.core.install(profile)
        if refused is not None:
            return call_result.SetChargingProfile(status="Rejected",
                                                  status_info=status_info(refused.code, refused.detail))
        return call_result.SetChargingProfile(status="Accepted")

    # ------------------------------------------------------------ K10

    async def clear_charging_profile(self, profile_id: int | None, criteria: Mapping[str, Any] | None) -> Any:
        """K10: clear by chargingProfileId, else by the criteria given (evseId, purpose, stackLevel; none given:
        every profile); Unknown when nothing matched."""
        criteria = criteria or {}

        def matches(p: ChargingProfile) -> bool:
            """The profile is one the request names."""
            if profile_id is not None:
                return p.profile_id == profile_id
            return (criteria.get("evse_id") in (None, p.evse_id)
                    and criteria.get("charging_profile_purpose") in (None, p.purpose.value)
                    and criteria.get("stack_level") in (None, p.stack_level))

        cleared = await self.core.clear(matches)
        if cleared is None:
            return call_result.ClearChargingProfile(status="Unknown", status_info=status_info("StoreFailure"))
        return call_result.ClearChargingProfile(status="Accepted" if cleared else "Unknown")

    # ------------------------------------------------------------ K09

    def get_charging_profiles(self, request_id: int, criterion: Mapping[str, Any], evse_id: int | None) -> Any:
        """K09: Accepted, then ReportChargingProfiles of the matching profiles, one per EVSE (tbc on all but the
        last); NoProfiles when none match."""
        ids = criterion.get("charging_profile_id")
        sources = criterion.get("charging_limit_source")

        def matches(p: ChargingProfile) -> bool:
            """The profile is one the request asks for."""
            return (evse_id in (None, p.evse_id) and (not ids or p.profile_id in ids)
                    and criterion.get("charging_profile_purpose") in (None, p.purpose.value)
                    and criterion.get("stack_level") in (None, p.stack_level)
                    and (not sources or LIMIT_SOURCE in sources))

        found = self.core.matching(matches)
        if not found:
            return call_result.GetChargingProfiles(status="NoProfiles")
        groups: dict[int, list[dict[str, Any]]] = {}
        for profile in found:
            groups.setdefault(profile.evse_id, []).append(profile_to_wire(profile, self._station.clock.timestamp))
        for n, (group_evse, profiles) in enumerate(sorted(groups.items())):
            self._station.outbox.put(call.ReportChargingProfiles(
                request_id=request_id, charging_limit_source=LIMIT_SOURCE, charging_profile=profiles,
                evse_id=group_evse, tbc=n < len(groups) - 1))
        return call_result.GetChargingProfiles(status="Accepted")

    # ------------------------------------------------------------ K08

    def get_composite_schedule(self, duration: int, evse_id: int, unit: str | None) -> Any:
        """K08: the composite schedule of an EVSE (0: the station's maximum) from now for ``duration`` seconds;
        Rejected for an unknown EVSE or a unit not in SmartChargingCtrlr.RateUnit."""
        limits = self._limits()
        rate = RateUnit(unit) if unit in ("A", "W") else (limits.units[0] if limits.units else RateUnit.A)
        if evse_id != STATION and evse_id not in self._station.charger.evse_ids():
            return call_result.GetCompositeSchedule(status="Rejected", status_info=status_info("UnknownEvse"))
        if rate not in limits.units:
            return call_result.GetCompositeSchedule(status="Rejected", status_info=status_info(
                "UnsupportedRateUnit", f"{rate.value} is not in SmartChargingCtrlr.RateUnit"))
        start = self._station.clock.now()
        composite = self.core.composite()
        supply = composite.electrical(evse_id)
        periods = []
        for step in composite.schedule(evse_id, start, duration):
            limit, phases = in_unit(step.limit, rate, supply)
            periods.append({"start_period": step.start_s, "limit": limit, "number_phases": phases})
        return call_result.GetCompositeSchedule(status="Accepted", schedule={
            "evse_id": evse_id, "duration": duration, "schedule_start": self._station.clock.timestamp(start),
            "charging_rate_unit": rate.value, "charging_schedule_period": periods})

    # ------------------------------------------------------------ F01 with a profile

    def request_start(self, payload: dict[str, Any]) -> Any:
        """RequestStartTransaction (K05): with a chargingProfile, it must be a TxProfile without transactionId (else
        Rejected); once the start is Accepted, the profile waits for the transaction the start opens."""
        operations = self._station.operations
        wire = payload.get("charging_profile")
        if wire is None:
            return operations.request_start(payload)
        evse_id = payload.get("evse_id")
        if evse_id is None:
            evse_id = operations._free_evse()
        try:
            profile = profile_from_wire(int(evse_id or 0), wire)
        except (FormatError, ValueError, KeyError, TypeError) as exc:
            return call_result.RequestStartTransaction(status="Rejected",
                                                       status_info=status_info("InvalidProfile", str(exc)))
        if profile.purpose is not Purpose.TX or profile.transaction_id is not None:
            return call_result.RequestStartTransaction(status="Rejected", status_info=status_info(
                "InvalidProfile", "a remote start's profile is a TxProfile without transactionId"))
        answer = operations.request_start({**payload, "evse_id": evse_id})
        if answer.status == "Accepted" and isinstance(evse_id, int):
            self.core.for_remote_start(evse_id, profile)
        return answer


def profile_from_wire(evse_id: int, wire: Mapping[str, Any]) -> ChargingProfile:
    """A 2.0.1 ChargingProfileType (snake_case) for ``evse_id`` as the neutral model; ValueError if unusable."""
    schedules = wire["charging_schedule"]
    if len(schedules) != 1:
        raise ValueError("one chargingSchedule per profile (more are for ISO 15118, not supported)")
    s = schedules[0]
    periods = tuple(Period(int(p["start_period"]), float(p["limit"]),
                           None if p.get("number_phases") is None else int(p["number_phases"]))
                    for p in s["charging_schedule_period"])
    start = s.get("start_schedule")
    schedule = Schedule(RateUnit(s["charging_rate_unit"]), periods,
                        None if start is None else parse_rfc3339("startSchedule", start),
                        None if s.get("duration") is None else int(s["duration"]),
                        None if s.get("min_charging_rate") is None else float(s["min_charging_rate"]), int(s["id"]))
    recurrency = wire.get("recurrency_kind")
    return ChargingProfile(
        int(wire["id"]), evse_id, int(wire["stack_level"]), Purpose(wire["charging_profile_purpose"]),
        Kind(wire["charging_profile_kind"]), schedule, None if recurrency is None else Recurrency(recurrency),
        _time("validFrom", wire.get("valid_from")), _time("validTo", wire.get("valid_to")),
        None if wire.get("transaction_id") is None else str(wire["transaction_id"]))


def profile_to_wire(profile: ChargingProfile, timestamp: Any) -> dict[str, Any]:
    """The neutral profile as a 2.0.1 ChargingProfileType (snake_case); ``timestamp(at)`` writes a time."""
    s = profile.schedule
    periods = []
    for p in s.periods:
        period: dict[str, Any] = {"start_period": p.start_s, "limit": p.limit}
        if p.phases is not None:
            period["number_phases"] = p.phases
        periods.append(period)
    schedule: dict[str, Any] = {"id": s.schedule_id, "charging_rate_unit": s.unit.value,
                                "charging_schedule_period": periods}
    optional_schedule = {"start_schedule": None if s.start is None else timestamp(s.start),
                         "duration": s.duration_s, "min_charging_rate": s.min_rate}
    schedule.update({k: v for k, v in optional_schedule.items() if v is not None})
    wire: dict[str, Any] = {"id": profile.profile_id, "stack_level": profile.stack_level,
                            "charging_profile_purpose": profile.purpose.value,
                            "charging_profile_kind": profile.kind.value, "charging_schedule": [schedule]}
    optional = {"recurrency_kind": None if profile.recurrency is None else profile.recurrency.value,
                "valid_from": None if profile.valid_from is None else timestamp(profile.valid_from),
                "valid_to": None if profile.valid_to is None else timestamp(profile.valid_to),
                "transaction_id": profile.transaction_id}
    wire.update({k: v for k, v in optional.items() if v is not None})
    return wire


def _time(field: str, value: object) -> Any:
    """An optional date-time field."""
    return None if value is None else parse_rfc3339(field, value)
