"""``POST /evses/{id}/limit``: the local current limit of an EVSE, as the CLI's ``limit EVSE AMPS`` sets it.

The limit is one of those the offered current is the least of (DESIGN.md, "The control pilot"); 0 pauses
charging, null removes it. The value's rules are the port's (``check_current_limit``), as for the MQTT bridge's
``current_limit`` command, so every front refuses the same values with the same words; here a refusal is a 422
naming ``amps``. Kept apart from app.py, which only includes this router.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from controller.api import models as m
from controller.api.errors import ApiError, read_json
from controller.core.parsing import FormatError
from controller.port.charger import Charger, UnknownEvse, check_current_limit

log = logging.getLogger(__name__)

LIMIT_REQUEST = "limit request"


def limit_body(data: object) -> float | None:
    """``{"amps": number | null}``: the limit as the port takes it; FormatError naming ``amps`` (or an unknown key)."""
    if not isinstance(data, dict):
        raise ApiError(422, f"request body must be a JSON object, got {type(data).__name__}")
    for key in sorted(str(k) for k in data):
        if key != "amps":
            raise FormatError(key, f"unknown field in {LIMIT_REQUEST} (allowed: amps)")
    if "amps" not in data:
        raise FormatError("amps", f"is required in {LIMIT_REQUEST}: a number of amperes, or null to remove the limit")
    try:
        return check_current_limit(data["amps"])
    except ValueError as exc:
        raise FormatError("amps", str(exc)) from None
    except OverflowError:  # an integer too large for a float
        raise FormatError("amps", "current limit must be 0 (pause) or 6 to 80 A, got an integer far out of range") \
            from None


def limit_routes(charger: Charger, responses: dict[int | str, dict[str, Any]]) -> APIRouter:
    """The router of ``POST /evses/{evse_id}/limit``; ``responses`` documents its error answers."""
    router = APIRouter(tags=["evses"])

    @router.post(
        "/evses/{evse_id}/limit",
        response_model=m.LimitOut,
        openapi_extra=m.request_body(m.LimitIn),
        responses=responses,
    )
    async def set_limit(evse_id: int, request: Request) -> JSONResponse:
        """Set the EVSE's local current limit (A per phase): 0 pauses charging, null removes the limit."""
        amps = limit_body(await read_json(request))
        if evse_id not in charger.evse_ids():
            raise UnknownEvse(evse_id)
        try:
            limit = await charger.set_current_limit(evse_id, amps)
        except ValueError as exc:  # the port's own check (the body's was the same one)
            raise FormatError("amps", str(exc)) from None
        log.info("API EVSE %d current limit %s", evse_id, "removed" if limit is None else f"{limit:g} A")
        entry = next((e for e in charger.status()["evses"] if e.get("id") == evse_id), None)
        return JSONResponse({"evse_id": evse_id, "current_limit_a": limit, "evse": entry})

    return router
