"""Seed types: JSON shapes in and out, and a clear error for every kind of bad input."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from controller.core.parsing import FormatError
from controller.core.types import (
    ConnectorType,
    Reservation,
    ReservationCheck,
    ReservationCheckStatus,
    ReservationEndReason,
    ReservationUpdate,
    types_compatible,
)

CURRENT = {
    "reservation_id": 7,
    "id_token": "04A1B2C3",
    "expiry_time": "2026-11-21T13:00:00+01:00",
    "parent_id_token": "FLEET",
    "evse_id": 2,
    "connector_type": "sCEE-7_7",
}


def test_current_shape_round_trips_with_utc_time() -> None:
    r = Reservation.from_dict(CURRENT)
    assert r.expiry_time == datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    assert r.connector_type is ConnectorType.sCEE_7_7
    assert r.to_dict() == {**CURRENT, "expiry_time": "2026-11-21T12:00:00Z"}
    assert Reservation.from_dict(r.to_dict()) == r


def test_previous_shape_without_evse_and_type_is_accepted() -> None:
    r = Reservation.from_dict({"reservation_id": 1, "id_token": "abc", "expiry_time": "2026-11-21T12:00:00.250Z"})
    assert r.evse_id is None and r.connector_type is None and r.parent_id_token is None
    assert r.wanted_type is ConnectorType.Unknown
    assert r.to_dict() == {"reservation_id": 1, "id_token": "abc", "expiry_time": "2026-11-21T12:00:00.250000Z"}


def test_nanosecond_fraction_is_truncated_not_refused() -> None:
    r = Reservation.from_dict({"reservation_id": 1, "id_token": "a", "expiry_time": "2026-11-21T12:00:00.123456789Z"})
    assert r.expiry_time.microsecond == 123456


@pytest.mark.parametrize(
    ("patch", "field", "words"),
    [
        ({"reservation_id": None}, "reservation_id", "required"),
        ({"id_token": None}, "id_token", "required"),
        ({"expiry_time": None}, "expiry_time", "required"),
        ({"reservation_id": "5"}, "reservation_id", "non-negative integer"),
        ({"reservation_id": True}, "reservation_id", "non-negative integer"),
        ({"reservation_id": -1}, "reservation_id", "non-negative integer"),
        ({"reservation_id": 1.5}, "reservation_id", "non-negative integer"),
        ({"evse_id": -3}, "evse_id", "non-negative integer"),
        ({"reservation_id": 2**31}, "reservation_id", "at most 2147483647"),
        ({"expiry_time": "0001-01-01T00:00:00+01:00"}, "expiry_time", "out of range"),
        ({"evse_id": "1"}, "evse_id", "non-negative integer"),
        ({"id_token": ""}, "id_token", "must not be empty"),
        ({"id_token": "   "}, "id_token", "must not be empty"),
        ({"id_token": 1234}, "id_token", "must be a string"),
        ({"id_token": "x" * 256}, "id_token", "at most 255"),
        ({"parent_id_token": ""}, "parent_id_token", "must not be empty"),
        ({"expiry_time": "2026-11-21T12:00:00"}, "expiry_time", "RFC3339"),
        ({"expiry_time": "tomorrow"}, "expiry_time", "RFC3339"),
        ({"expiry_time": "2026-13-01T00:00:00Z"}, "expiry_time", "not a valid date-time"),
        ({"expiry_time": 1700000000}, "expiry_time", "RFC3339 string"),
        ({"connector_type": "Type2"}, "connector_type", "unknown connector type 'Type2'"),
        ({"connector_type": 2}, "connector_type", "connector type string"),
        ({"evseId": 1}, "evseId", "unknown field"),
    ],
)
def test_bad_reservation_names_the_field(patch: dict[str, object], field: str, words: str) -> None:
    data = {**CURRENT, **patch}
    if (
        patch.get("reservation_id", 0) is None
        or patch.get("id_token", 0) is None
        or patch.get("expiry_time", 0) is None
    ):
        data = {k: v for k, v in data.items() if k not in patch}
    with pytest.raises(FormatError) as info:
        Reservation.from_dict(data)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")
    assert words in str(info.value)


def test_non_object_is_refused() -> None:
    with pytest.raises(FormatError, match="Reservation: must be a JSON object, got list"):
        Reservation.from_dict([1, 2])
    assert issubclass(FormatError, ValueError)


def test_reservation_check_shape() -> None:
    check = ReservationCheck.from_dict({"id_token": "a", "evse_id": 1, "group_id_token": "g"})
    assert check == ReservationCheck("a", 1, "g")
    assert check.to_dict() == {"id_token": "a", "evse_id": 1, "group_id_token": "g"}
    with pytest.raises(FormatError, match="id_token: is required"):
        ReservationCheck.from_dict({"evse_id": 1})


def test_enum_values_are_the_seeds() -> None:
    assert [s.value for s in ReservationCheckStatus] == [
        "NotReserved",
        "ReservedForToken",
        "ReservedForOtherToken",
        "ReservedForOtherTokenAndHasParentToken",
    ]
    assert [s.value for s in ReservationUpdate] == ["Expired", "Removed", "Placed", "Cancelled", "Used"]
    assert ReservationEndReason("GlobalReservationRequirementDropped")
    assert len(ConnectorType) == 23


def test_unknown_matches_both_ways() -> None:
    assert types_compatible(ConnectorType.Unknown, ConnectorType.cCCS2)
    assert types_compatible(ConnectorType.cType2, ConnectorType.Unknown)
    assert types_compatible(ConnectorType.cType2, None)
    assert not types_compatible(ConnectorType.cType2, ConnectorType.cCCS2)
