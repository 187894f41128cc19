"""Connector status for the CSMS, derived from the controller's status document (DESIGN.md "Fronts").

One rule for every protocol layer: Faulted before Unavailable before Occupied before Reserved before
Available (as libocpp's effective connector status ranks them). Occupied = plugged in or a session holds the
car; Reserved = the EVSE is in ``reserved_evses()``. A reserved token presented before the plug makes the
EVSE Available again (the reservation is used: 2.0.1 H03.FR.09). The 1.6 layer refines Occupied and
Available into its own statuses from the same entry.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any

HOLDING_PHASES = frozenset({"locking", "charging", "stopping", "unlocking"})
"""Session phases (controller.charging.session.Phase values) in which the car is held: the connector is Occupied."""


class ConnectorStatus(StrEnum):
    """A connector's status as OCPP 2.0.1 names it (ConnectorStatusEnumType)."""

    AVAILABLE = "Available"
    OCCUPIED = "Occupied"
    RESERVED = "Reserved"
    UNAVAILABLE = "Unavailable"
    FAULTED = "Faulted"


def connector_status(evse: Mapping[str, Any], connector: Mapping[str, Any]) -> ConnectorStatus:
    """The status of one connector of one EVSE entry of ``Charger.status()``."""
    state = str(connector.get("state", ""))
    evse_state = str(evse.get("state", ""))
    if "Faulted" in state or evse_state.startswith("Faulted"):
        return ConnectorStatus.FAULTED
    if state.startswith("Unavailable") or not evse.get("enabled", True) or evse_state.startswith("Unavailable"):
        return ConnectorStatus.UNAVAILABLE
    # not the core's Occupied: an authorized session without a cable holds the EVSE for the reservation rules,
    # but the CSMS sees it Available until the cable is in (DESIGN.md "Fronts", 2.0.1 H03.FR.09)
    if evse.get("plugged_in") or evse.get("phase") in HOLDING_PHASES:
        return ConnectorStatus.OCCUPIED
    if evse.get("reserved"):
        return ConnectorStatus.RESERVED
    return ConnectorStatus.AVAILABLE


def all_statuses(evses: Iterable[Mapping[str, Any]]) -> dict[tuple[int, int], ConnectorStatus]:
    """Every connector's status, keyed by (EVSE id, connector id)."""
    return {(int(evse["id"]), int(c["id"])): connector_status(evse, c) for evse in evses for c in evse["connectors"]}


_RANK = (ConnectorStatus.FAULTED, ConnectorStatus.UNAVAILABLE, ConnectorStatus.OCCUPIED, ConnectorStatus.RESERVED,
         ConnectorStatus.AVAILABLE)


def evse_availability(statuses: Iterable[ConnectorStatus]) -> ConnectorStatus:
    """An EVSE's availability from its connectors': the first of Faulted, Unavailable, Occupied, Reserved present
    (one connector in use or out of order is the whole EVSE's state); Available otherwise."""
    present = set(statuses)
    return next((status for status in _RANK if status in present), ConnectorStatus.AVAILABLE)


def station_availability(statuses: Iterable[ConnectorStatus]) -> ConnectorStatus:
    """The station's availability: Faulted or Unavailable only when no connector can serve (every one is out of
    order: Faulted if every one is faulted), else Available."""
    present = set(statuses)
    if present and present <= {ConnectorStatus.FAULTED, ConnectorStatus.UNAVAILABLE}:
        return ConnectorStatus.FAULTED if present == {ConnectorStatus.FAULTED} else ConnectorStatus.UNAVAILABLE
    return ConnectorStatus.AVAILABLE


class StatusTracker:
    """What the CSMS was last told about each connector, so only changes are sent (and all after a reconnect)."""

    def __init__(self) -> None:
        """Nothing told yet."""
        self._sent: dict[tuple[int, int], ConnectorStatus] = {}

    def forget(self) -> None:
        """A new connection: the next ``changes`` reports every connector."""
        self._sent.clear()

    def changes(self, current: Mapping[tuple[int, int], ConnectorStatus]) -> list[tuple[int, int, ConnectorStatus]]:
        """The connectors whose status differs from what was last reported, in EVSE and connector order."""
        return [(evse_id, connector_id, status) for (evse_id, connector_id), status in sorted(current.items())
                if self._sent.get((evse_id, connector_id)) is not status]

    def sent(self, evse_id: int, connector_id: int, status: ConnectorStatus) -> None:
        """The CSMS accepted this status report."""
        self._sent[(evse_id, connector_id)] = status

    def last(self, evse_id: int, connector_id: int) -> ConnectorStatus | None:
        """The status last reported for a connector, if any."""
        return self._sent.get((evse_id, connector_id))
