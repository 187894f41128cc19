"""The reservation core's questions: what is reserved, for whom, and what the site looks like.

A mixin of controller.core.reservation.ReservationCore, kept apart from the operations that change things; each
question that depends on time runs as one core operation, so reservations that are due end first.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import datetime

from controller.core.site import Site
from controller.core.tokens import same_token
from controller.core.types import Connector, ConnectorState, Reservation, ReservationCheck, ReservationCheckStatus


class CoreQuestions:
    """Mixin of ReservationCore: the public questions (no changes but the expiries that are due)."""

    _site: Site
    _reserved: frozenset[int]

    def _operation(self) -> AbstractContextManager[None]:
        """One core operation (the core's own)."""
        raise NotImplementedError

    def is_charging_possible(self, evse_id: int) -> bool:
        """May a driver without a reservation charge here and every global reservation still be honoured?"""
        with self._operation():
            return self._site.is_charging_possible(evse_id)

    def is_evse_reserved(self, evse_id: int) -> bool:
        """Is this EVSE held by an EVSE-specific reservation?"""
        with self._operation():
            return evse_id in self._site.specific

    @property
    def last_reserved_evses(self) -> frozenset[int]:
        """The reserved set as last computed, without expiring anything first (a fallback that cannot fail)."""
        return self._reserved

    def reserved_evses(self) -> frozenset[int]:
        """The EVSEs whose reserved LED must be on now."""
        with self._operation():
            pass
        return self._reserved

    def matches_reserved_identifier(
        self, id_token: str, evse_id: int | None = None, parent_id_token: str | None = None
    ) -> int | None:
        """The id of the reservation this token (or its parent) holds here, or None."""
        with self._operation():

            def matches(r: Reservation) -> bool:
                return same_token(r.id_token, id_token) or same_token(r.parent_id_token, parent_id_token)

            if evse_id is not None and evse_id in self._site.specific:
                own = self._site.specific[evse_id]
                return own.reservation_id if matches(own) else None
            for r in self._site.globals:
                if matches(r):
                    return r.reservation_id
            return None

    def has_reservation_parent_id(self, evse_id: int | None) -> bool:
        """Does the reservation on this EVSE (or, failing one, any global reservation) have a parent token?"""
        with self._operation():
            if evse_id is not None:
                if evse_id not in self._site.evses:
                    return False
                if evse_id in self._site.specific:
                    return self._site.specific[evse_id].parent_id_token is not None
            return any(r.parent_id_token is not None for r in self._site.globals)

    def exists_reservation(self, check: ReservationCheck) -> ReservationCheckStatus:
        """The four-way reservation check of EVerest's Auth (with its is_evse_reserved(bool) bug fixed)."""
        found = self.matches_reserved_identifier(check.id_token, check.evse_id, check.group_id_token)
        if check.evse_id is None:
            return (
                ReservationCheckStatus.RESERVED_FOR_TOKEN if found is not None else ReservationCheckStatus.NOT_RESERVED
            )
        if not self.is_evse_reserved(check.evse_id):
            return ReservationCheckStatus.NOT_RESERVED
        if found is not None:
            return ReservationCheckStatus.RESERVED_FOR_TOKEN
        if check.group_id_token is None and self.has_reservation_parent_id(check.evse_id):
            return ReservationCheckStatus.RESERVED_FOR_OTHER_TOKEN_AND_HAS_PARENT_TOKEN
        return ReservationCheckStatus.RESERVED_FOR_OTHER_TOKEN

    def next_expiry(self) -> datetime | None:
        """When the next reservation expires (for the runtime's one timer), or None."""
        return self._site.next_expiry()

    def reservations(self) -> list[Reservation]:
        """Live reservations in arrival order."""
        return self._site.ordered()

    def reservation(self, reservation_id: int) -> Reservation | None:
        """One live reservation by id."""
        return self._site.find(reservation_id)

    @property
    def evse_ids(self) -> list[int]:
        """Configured EVSE ids, ascending."""
        return list(self._site.evses)

    def connectors(self, evse_id: int) -> tuple[Connector, ...]:
        """The connectors of one EVSE."""
        self._site.check_evse(evse_id)
        return self._site.evses[evse_id]

    def connector_state(self, evse_id: int, connector_id: int) -> ConnectorState:
        """The state last set for one connector."""
        return self._site.states[(evse_id, connector_id)]

    def is_plugged_in(self, evse_id: int) -> bool:
        """Is a car plugged in at this EVSE?"""
        return evse_id in self._site.plugged
