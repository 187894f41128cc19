"""Small builders shared by the core tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from controller.core.types import Connector, ConnectorType, CoreEvent, Reservation

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


class FakeClock:
    """An injectable clock that moves only when told to."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def res(
    rid: int,
    token: str = "TOKEN",
    *,
    evse: int | None = None,
    ctype: ConnectorType | None = None,
    parent: str | None = None,
    minutes: float = 30,
) -> Reservation:
    """A reservation expiring ``minutes`` after T0."""
    return Reservation(rid, token, T0 + timedelta(minutes=minutes), parent, evse, ctype)


def site(*evses: tuple[ConnectorType, ...]) -> dict[int, list[Connector]]:
    """EVSEs numbered from 1, connectors numbered from 1, with the given types."""
    return {i: [Connector(j, t) for j, t in enumerate(types, start=1)] for i, types in enumerate(evses, start=1)}


class Recorder(list[CoreEvent]):
    """Collects core events in order."""

    def __call__(self, event: CoreEvent) -> None:
        self.append(event)
