"""OCPP 1.6 SmartCharging feature profile: SetChargingProfile (5.16), ClearChargingProfile (5.5),
GetCompositeSchedule (5.7), and RemoteStartTransaction's chargingProfile (5.11), on the station core.

This module translates: csChargingProfiles arrive in the ``ocpp`` library's snake_case and become the
version-neutral ``ChargingProfile`` (controller.ocpp.station.charging_profiles); installing, clearing, persisting and
applying them is the station core's ``SmartCharging`` (controller.ocpp.station.smart_charging). 1.6's own rules
(section 3.13): ChargePointMaxProfile (the core's station maximum) only on connectorId 0; a TxProfile only on a
connector with a transaction (its transactionId, when given, must be that one); a TxDefaultProfile on connectorId 0
is every connector's default; a profile replaces the installed one of the same chargingProfileId, or of the same
stackLevel and purpose on the connector (5.16); an Absolute schedule without startSchedule starts when it is received;
a Relative one ignores startSchedule. Limits: ChargeProfileMaxStackLevel, ChargingScheduleMaxPeriods,
ChargingScheduleAllowedChargingRateUnit (Current, Power), MaxChargingProfilesInstalled (controller.ocpp.v16.
configuration). A 1.6 answer has no reason: refusals are logged.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ocpp.v16 import call_result

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
from controller.ocpp.v16.configuration import COMPONENT, RATE_UNITS_16

if TYPE_CHECKING:
    from controller.ocpp.v16.station import Station16

log = logging.getLogger("controller.ocpp")

PURPOSES_16 = {"ChargePointMaxProfile": Purpose.STATION_MAX, "TxDefaultProfile": Purpose.TX_DEFAULT,
               "TxProfile": Purpose.TX}
NO_SUCH_TRANSACTION = "unknown"  # the transaction of a TxProfile whose transactionId names none open here


class SmartCharging16:
    """The 1.6 charge point's answers to the SmartCharging messages, on the station core's ``SmartCharging``."""

    def __init__(self, station: Station16, db_path: Path) -> None:
        """Act for ``station``; profiles live in ``db_path`` (ocpp.db)."""
        self._station = station
        self.variables = station.variables
        self.core = SmartCharging(station.charger, db_path, station.clock, station.transactions.tracker,
                                  same_level_replaces=True)

    def _limits(self) -> Limits:
        """What the SmartCharging keys say this charge point accepts."""
        allowed = self.variables.str_value(COMPONENT, "ChargingScheduleAllowedChargingRateUnit").split(",")
        return Limits(max_stack_level=self.variables.int_value("SmartChargingCtrlr", "ProfileStackLevel"),
                      max_periods=self.variables.int_value("SmartChargingCtrlr", "PeriodsPerSchedule"),
                      max_profiles=self.variables.int_value(COMPONENT, "MaxChargingProfilesInstalled"),
                      units=tuple(RateUnit(RATE_UNITS_16[u]) for u in allowed if u in RATE_UNITS_16))

    def _evse_of(self, connector_id: int) -> int | None:
        """The EVSE of a connectorId (0: the station), None for one the charge point does not have."""
        if connector_id == 0:
            return STATION
        pair = self._station.connectors.get(connector_id)
        return None if pair is None else pair[0]

    # ------------------------------------------------------------ 5.16

    async def set_charging_profile(self, connector_id: int, wire: dict[str, Any]) -> Any:
        """SetChargingProfile: Accepted once stored and applied; Rejected (the reason logged) otherwise."""
        evse_id = self._evse_of(connector_id)
        if evse_id is None:
            log.info("SetChargingProfile on connector %d: no such connector: Rejected", connector_id)
            return call_result.SetChargingProfile(status="Rejected")
        try:
            profile = profile_from_wire(evse_id, wire, self._station.clock.now())
        except (FormatError, ValueError, KeyError, TypeError) as exc:
            log.info("SetChargingProfile refused: %s", exc)
            return call_result.SetChargingProfile(status="Rejected")
        if wire.get("transaction_id") is not None:
            tx = self._station.transactions.find(int(wire["transaction_id"]))
            profile = replace(profile, transaction_id=NO_SUCH_TRANSACTION if tx is None or tx.evse_id != evse_id
                              else tx.transaction_id)
        self.core.limits = self._limits()
        refused = await self.core.install(profile)
        if refused is not None:
            log.info("SetChargingProfile %d refused: %s", profile.profile_id, refused.detail)
            return call_result.SetChargingProfile(status="Rejected")
        return call_result.SetChargingProfile(status="Accepted")

    # ------------------------------------------------------------ 5.5

    async def clear_charging_profile(self, profile_id: int | None, connector_id: int | None, purpose: str | None,
                                     stack_level: int | None) -> Any:
        """ClearChargingProfile: by id when given, else by connectorId, purpose and stackLevel (each optional; none:
        every profile); Accepted when one was cleared, else Unknown."""
        evse_id = None if connector_id is None else self._evse_of(connector_id)
        if connector_id is not None and evse_id is None:
            return call_result.ClearChargingProfile(status="Unknown")
        wanted = None if purpose is None else PURPOSES_16.get(purpose)

        def matches(p: ChargingProfile) -> bool:
            """The profile is one the request names."""
            if profile_id is not None:
                return p.profile_id == profile_id
            return (evse_id in (None, p.evse_id) and wanted in (None, p.purpose)
                    and stack_level in (None, p.stack_level))

        cleared = await self.core.clear(matches)
        return call_result.ClearChargingProfile(status="Accepted" if cleared else "Unknown")

    # ------------------------------------------------------------ 5.7

    def get_composite_schedule(self, connector_id: int, duration: int, unit: str | None) -> Any:
        """GetCompositeSchedule: the connector's composite schedule (0: the charge point's maximum) from now for
        ``duration`` seconds, in the unit asked (default A); Rejected for an unknown connector or unit."""
        evse_id = self._evse_of(connector_id)
        limits = self._limits()
        rate = RateUnit(unit) if unit in ("A", "W") else RateUnit.A
        if evse_id is None or rate not in limits.units:
            return call_result.GetCompositeSchedule(status="Rejected")
        start = self._station.clock.now()
        composite = self.core.composite()
        supply = composite.electrical(evse_id)
        periods = []
        for step in composite.schedule(evse_id, start, duration):
            limit, phases = in_unit(step.limit, rate, supply)
            periods.append({"start_period": step.start_s, "limit": limit, "number_phases": phases})
        stamp = self._station.clock.timestamp(start)
        return call_result.GetCompositeSchedule(
            status="Accepted", connector_id=connector_id, schedule_start=stamp,
            charging_schedule={"duration": duration, "start_schedule": stamp, "charging_rate_unit": rate.value,
                               "charging_schedule_period": periods})

    # ------------------------------------------------------------ 5.11

    def remote_start(self, id_tag: str, connector_id: int | None, wire: dict[str, Any] | None) -> Any:
        """RemoteStartTransaction: with a chargingProfile it must be a TxProfile without transactionId (else
        Rejected); once the start is Accepted, the profile waits for the transaction it opens."""
        operations = self._station.operations
        if wire is None:
            return operations.remote_start(id_tag, connector_id)
        evse_id = operations._free_evse() if connector_id is None else self._evse_of(connector_id)
        try:
            profile = profile_from_wire(evse_id or 0, wire, self._station.clock.now())
        except (FormatError, ValueError, KeyError, TypeError) as exc:
            log.info("RemoteStartTransaction refused: its charging profile: %s", exc)
            return call_result.RemoteStartTransaction(status="Rejected")
        if profile.purpose is not Purpose.TX or wire.get("transaction_id") is not None or not evse_id:
            log.info("RemoteStartTransaction refused: its profile must be a TxProfile without transactionId")
            return call_result.RemoteStartTransaction(status="Rejected")
        answer = operations.remote_start(id_tag, connector_id)
        if answer.status == "Accepted":
            self.core.for_remote_start(evse_id, profile)
        return answer


def profile_from_wire(evse_id: int, wire: Mapping[str, Any], received: Any) -> ChargingProfile:
    """A 1.6 ChargingProfile (snake_case) for ``evse_id`` as the neutral model (``received``: when it came, the start
    of an Absolute schedule without startSchedule); ValueError if unusable. The transaction is resolved apart."""
    s = wire["charging_schedule"]
    periods = tuple(Period(int(p["start_period"]), float(p["limit"]),
                           None if p.get("number_phases") is None else int(p["number_phases"]))
                    for p in s["charging_schedule_period"])
    kind = Kind(wire["charging_profile_kind"])
    start = s.get("start_schedule")
    if kind is Kind.RELATIVE:
        start_at = None
    elif start is None:
        start_at = received if kind is Kind.ABSOLUTE else None
    else:
        start_at = parse_rfc3339("startSchedule", start)
    schedule = Schedule(RateUnit(s["charging_rate_unit"]), periods, start_at,
                        None if s.get("duration") is None else int(s["duration"]),
                        None if s.get("min_charging_rate") is None else float(s["min_charging_rate"]))
    recurrency = wire.get("recurrency_kind")
    purpose = PURPOSES_16[wire["charging_profile_purpose"]]
    return ChargingProfile(
        int(wire["charging_profile_id"]), evse_id, int(wire["stack_level"]), purpose, kind, schedule,
        None if recurrency is None else Recurrency(recurrency),
        None if wire.get("valid_from") is None else parse_rfc3339("validFrom", wire["valid_from"]),
        None if wire.get("valid_to") is None else parse_rfc3339("validTo", wire["valid_to"]))
