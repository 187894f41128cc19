"""Translations between OCPP 2.0.1 payloads and the controller's types (reservations, connector types, tokens)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from controller.core.parsing import FormatError, parse_rfc3339
from controller.core.types import ConnectorType, Reservation
from controller.ocpp.station.clock import StationClock


def _key(name: str) -> str:
    """A connector type name without case and separators: "s309-1P-16A" and "s309_1P_16A" meet."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


_CONNECTOR_TYPES = {_key(t.value): t for t in ConnectorType}


def connector_type(ocpp_name: str | None) -> ConnectorType | None:
    """The controller's ConnectorType of a 2.0.1 ConnectorEnumType value (None: any); ValueError if it has none."""
    if ocpp_name is None:
        return None
    found = _CONNECTOR_TYPES.get(_key(ocpp_name))
    if found is None:
        raise ValueError(f"connector type {ocpp_name!r} is not one this station has")
    return found


def ocpp_connector_type(ctype: ConnectorType) -> str:
    """The 2.0.1 ConnectorEnumType spelling of a controller connector type."""
    return {"s309_1P_16A": "s309-1P-16A", "s309_1P_32A": "s309-1P-32A", "s309_3P_16A": "s309-3P-16A",
            "s309_3P_32A": "s309-3P-32A", "sCEE-7_7": "sCEE-7-7"}.get(ctype.value, ctype.value)


def reservation_from_reserve_now(
    payload: Mapping[str, Any], clock: StationClock
) -> Reservation:
    """The core's Reservation of a ReserveNow (snake_case keys as the ocpp library passes them).

    ``groupIdToken`` becomes the parent token; the expiry is moved from CSMS time onto the system clock.
    Raises FormatError or ValueError naming what cannot be used.
    """
    expiry = clock.to_system(parse_rfc3339("expiryDateTime", payload["expiry_date_time"]))
    group = payload.get("group_id_token")
    token = payload["id_token"]
    if not isinstance(token, Mapping) or not isinstance(token.get("id_token"), str):
        raise FormatError("idToken", "expected an IdTokenType with idToken")
    return Reservation(
        reservation_id=int(payload["id"]),
        id_token=token["id_token"],
        expiry_time=expiry,
        parent_id_token=group["id_token"] if isinstance(group, Mapping) else None,
        evse_id=payload.get("evse_id"),
        connector_type=connector_type(payload.get("connector_type")),
    )


def status_info(reason: str, detail: str = "") -> dict[str, str]:
    """A StatusInfoType: a short reason code (at most 20 characters) and optional text (at most 512)."""
    info = {"reason_code": reason[:20]}
    if detail:
        info["additional_info"] = detail[:512]
    return info
