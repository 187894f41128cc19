"""The local HTTP API of the controller: reservations, tokens, EVSE enable/disable, status, events.

It talks only to the ``Charger`` facade (controller.port.charger). Every endpoint is ``async def``
so it runs in the controller's loop (FastAPI would run a plain ``def`` in a worker thread).
Request bodies are parsed by the types' own ``from_dict``, so the API, the store and the CLI
share one set of rules; the pydantic models only document them in /openapi.json.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel

from controller.api import models as m
from controller.api.auth import BearerAuth, LocalRequestsOnly
from controller.api.errors import (
    ApiError,
    InternalErrors,
    install_error_handlers,
    read_json,
    require_json_posts,
)
from controller.api.events import DEFAULT_KEEPALIVE_S, DEFAULT_QUEUE_LIMIT, EventStreams
from controller.api.limits import limit_routes
from controller.core.parsing import FormatError
from controller.core.tokens import parse_token
from controller.core.types import Reservation, ReservationCheck
from controller.port.charger import Charger, SimFaultKind, SimPlantControls, UnknownEvse
from drivers.redact import redact_token

log = logging.getLogger(__name__)
_T = TypeVar("_T")

_ERROR_WHY = {
    400: "the body is empty or not valid JSON",
    401: "missing or wrong access token",
    403: "without an access token: the Host or Origin is not local (a web page's request)",
    404: "unknown EVSE (or endpoint)",
    409: "the simulated plant refuses (a locked plug cannot be pulled; the EVSE has no such part)",
    413: "the body is too large",
    415: "no `Content-Type: application/json` (every POST needs it, also one without a body)",
    422: "a field is missing or invalid; `field` names it",
    500: "the controller failed; the error is logged",
    503: "the reservation store cannot write (disk full or failing): nothing was changed; retry later",
}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` documenting the API's error bodies for these status codes."""
    return {code: {"model": m.ErrorOut, "description": _ERROR_WHY[code]} for code in codes}


_BODY = (400, 413, 415, 422)  # endpoints that read a JSON body
_EVSE = (404, 422)  # endpoints with an evse_id in the path
_ACTION = (*_EVSE, 415)  # body-less POSTs on an EVSE: they need the JSON Content-Type all the same
_JSON_POSTS = (
    "Every POST needs `Content-Type: application/json`, also one without a body (a web page cannot make a "
    "browser send that without a CORS preflight, which this API never grants); otherwise the answer is 415."
)


def create_app(
    charger: Charger,
    *,
    access_token: str | None = None,
    bind_host: str | None = None,
    sse_keepalive_s: float = DEFAULT_KEEPALIVE_S,
    sse_queue_limit: int = DEFAULT_QUEUE_LIMIT,
) -> FastAPI:
    """The API app for one charger; with ``access_token`` every request needs ``Authorization: Bearer``.

    Without a token only local requests are served: Host and Origin must be loopback names or ``bind_host``
    (the address the API is served on), else 403. Every POST must be ``application/json``, else 415.
    """
    if access_token is not None and not _usable_token(access_token):
        raise ValueError("access token must be 16 to 512 printable ASCII characters without spaces")
    app = FastAPI(
        title="charger-controller",
        version="1",
        description="Local API of the EV charger controller (EVerest Auth reservation semantics). " + _JSON_POSTS,
        docs_url=None,
        redoc_url=None,
        responses=_errors(401, 403, 500),
        dependencies=[Depends(require_json_posts)],
    )
    streams = EventStreams(charger.events, queue_limit=sse_queue_limit, keepalive_s=sse_keepalive_s)
    app.state.event_streams = streams
    app.include_router(_reservation_routes(charger))
    app.include_router(_evse_routes(charger, streams))
    app.include_router(limit_routes(charger, _errors(*_BODY, 404)))  # POST /evses/{id}/limit (controller.api.limits)
    app.include_router(_sim_routes(charger))
    install_error_handlers(app, charger.evse_ids)
    app.add_middleware(InternalErrors)
    if access_token is not None:
        app.add_middleware(BearerAuth, token=access_token)
    else:
        app.add_middleware(LocalRequestsOnly, bind_host=bind_host)
    _document_request_bodies(app)
    return app


def _usable_token(token: str) -> bool:
    return 16 <= len(token) <= 512 and token.isascii() and token.isprintable() and " " not in token


def _parse(kind: str, parse: Callable[[object], _T], data: object) -> _T:
    """Run a ``from_dict``; a wrong top-level type is about the body, not a field."""
    try:
        return parse(data)
    except FormatError as exc:
        if exc.field == kind:
            raise ApiError(422, f"request body {exc.problem}", None) from None
        raise
    except (OverflowError, ValueError) as exc:  # a parser gap (e.g. a date out of range after its offset)
        raise ApiError(422, f"request body has a value out of range: {exc}", None) from None


def _reservation_routes(charger: Charger) -> APIRouter:
    router = APIRouter(tags=["reservations"])

    @router.post(
        "/reservations",
        response_model=m.ReserveOut,
        openapi_extra=m.request_body(m.ReservationBody),
        responses=_errors(*_BODY, 503),
    )
    async def reserve(request: Request) -> JSONResponse:
        """ReserveNow: EVSE-specific with evse_id, global without; the answer is a ReservationResult."""
        reservation = _parse("Reservation", Reservation.from_dict, await read_json(request))
        result = await charger.reserve(reservation)
        log.info(
            "API reserve %d for %s -> %s", reservation.reservation_id, redact_token(reservation.id_token), result.value
        )
        return JSONResponse({"result": result.value})

    @router.get("/reservations", response_model=m.ReservationsOut)
    async def reservations() -> JSONResponse:
        """Live reservations in arrival order."""
        return JSONResponse({"reservations": [r.to_dict() for r in charger.reservations()]})

    @router.post(
        "/reservations/check",
        response_model=m.CheckOut,
        openapi_extra=m.request_body(m.ReservationCheckBody),
        responses=_errors(*_BODY),
    )
    async def check(request: Request) -> JSONResponse:
        """Is there a reservation for this token (at this EVSE, or for its group token)?"""
        query = _parse("ReservationCheck", ReservationCheck.from_dict, await read_json(request))
        return JSONResponse({"status": charger.check(query).value})

    @router.delete("/reservations/{reservation_id}", response_model=m.CancelOut, responses=_errors(422, 503))
    async def cancel(reservation_id: int) -> JSONResponse:
        """CancelReservation; ``cancelled`` is false when no such live reservation exists."""
        cancelled = await charger.cancel(reservation_id)
        log.info("API cancel %d -> %s", reservation_id, cancelled)
        return JSONResponse({"cancelled": cancelled})

    return router


def _evse_routes(charger: Charger, streams: EventStreams) -> APIRouter:
    router = APIRouter(tags=["evses"])

    @router.post(
        "/evses/{evse_id}/token",
        response_model=m.TokenOutcomeOut,
        openapi_extra=m.request_body(m.TokenIn),
        responses=_errors(*_BODY, 404),
    )
    async def present_token(evse_id: int, request: Request) -> JSONResponse:
        """Present a token at an EVSE, as its RFID reader would."""
        id_token = _token_body(await read_json(request))
        _known(charger, evse_id)
        outcome = await charger.present_token(evse_id, id_token)
        log.info("API token %s at EVSE %d -> %s", redact_token(id_token), evse_id, outcome.verdict.value)
        return JSONResponse(outcome.to_dict())

    @router.post("/evses/{evse_id}/enable", response_model=m.EnabledOut, responses=_errors(*_ACTION))
    async def enable(evse_id: int) -> JSONResponse:
        """Operator: make the EVSE available again."""
        return await _set_enabled(charger, evse_id, True)

    @router.post("/evses/{evse_id}/disable", response_model=m.EnabledOut, responses=_errors(*_ACTION))
    async def disable(evse_id: int) -> JSONResponse:
        """Operator: take the EVSE out of service (Unavailable)."""
        return await _set_enabled(charger, evse_id, False)

    @router.post("/evses/{evse_id}/reset", response_model=m.ResetOut, responses=_errors(*_ACTION))
    async def reset(evse_id: int) -> JSONResponse:
        """Operator: after a repair, clear latched faults (a welded contactor stays Faulted until this)."""
        _known(charger, evse_id)
        faults = await charger.reset_faults(evse_id)
        log.warning("API EVSE %d fault reset; active now: %s", evse_id, ", ".join(faults) or "none")
        return JSONResponse({"evse_id": evse_id, "faults": faults})

    @router.get("/status", response_model=m.StatusOut, tags=["status"])
    async def status() -> JSONResponse:
        """Every EVSE (state, plug, LEDs, lock, contactor, faults) and the live reservations."""
        return JSONResponse(charger.status())

    @router.get(
        "/events",
        tags=["status"],
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}, "description": "event: <type> / data: <json>"}},
    )
    async def events(
        since: Annotated[
            int | None, Query(ge=0, le=2**53, description="replay the kept events after this seq (0: all kept)")
        ] = None,
        last_event_id: Annotated[
            str | None,
            Header(
                alias="Last-Event-ID",
                description="the seq of the last event a reconnecting client saw (digits); ?since wins over it",
                pattern=r"^[ \t]*[0-9]{1,16}[ \t]*$",
            ),
        ] = None,
    ) -> StreamingResponse:
        """Server-sent events: ``id: <seq>``, ``event: <type>``, ``data: <document>`` per controller event.

        A reconnecting client's ``Last-Event-ID`` (or ``?since=N``) replays what it missed from the kept
        events; ``?since=0`` includes what happened at start, such as reservations that ended while down.
        """
        if since is None and last_event_id is not None:
            since = int(last_event_id)  # the header's pattern admits only ASCII digits (and blanks around)
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(streams.stream(since), media_type="text/event-stream", headers=headers)

    return router


async def _set_enabled(charger: Charger, evse_id: int, enabled: bool) -> JSONResponse:
    _known(charger, evse_id)
    await charger.set_enabled(evse_id, enabled)
    log.info("API EVSE %d %s", evse_id, "enabled" if enabled else "disabled")
    return JSONResponse({"evse_id": evse_id, "enabled": enabled})


def _sim_routes(charger: Charger) -> APIRouter:
    router = APIRouter(tags=["simulation (run --sim only)"])

    @router.post("/sim/evses/{evse_id}/plug", response_model=m.SimActionOut, responses=_errors(*_ACTION))
    async def plug(evse_id: int, request: Request) -> JSONResponse:
        """Simulation: a car plugs in."""
        sim = _sim(charger, request)
        _known(charger, evse_id)
        await sim.plug(evse_id)
        return JSONResponse({"evse_id": evse_id, "action": "plug", "kind": None})

    @router.post("/sim/evses/{evse_id}/unplug", response_model=m.SimActionOut, responses=_errors(*_ACTION, 409))
    async def unplug(evse_id: int, request: Request) -> JSONResponse:
        """Simulation: the car unplugs."""
        sim = _sim(charger, request)
        _known(charger, evse_id)
        try:
            await sim.unplug(evse_id)
        except PermissionError as exc:  # the plant refuses, like a real locked socket
            raise ApiError(409, str(exc), "evse_id") from None
        return JSONResponse({"evse_id": evse_id, "action": "unplug", "kind": None})

    @router.post(
        "/sim/faults",
        response_model=m.SimActionOut,
        openapi_extra=m.request_body(m.SimFaultIn),
        responses=_errors(*_BODY, 404, 409),
    )
    async def fault(request: Request) -> JSONResponse:
        """Simulation: inject a fault (weld, lock_jam, meter_silent) or clear them."""
        sim = _sim(charger, request)
        evse_id, kind = _fault_body(await read_json(request))
        _known(charger, evse_id)
        try:
            await sim.fault(evse_id, kind)
        except ValueError as exc:  # e.g. a lock jam on an EVSE without a lock
            raise ApiError(409, str(exc), "kind") from None
        return JSONResponse({"evse_id": evse_id, "action": "fault", "kind": kind.value})

    return router


def _sim(charger: Charger, request: Request) -> SimPlantControls:
    if charger.sim is None:
        raise ApiError(
            404,
            f"{request.method} {request.url.path} exists only under `charger-controller run --sim`",
        )
    return charger.sim


def _known(charger: Charger, evse_id: int) -> None:
    """404 for an EVSE the site does not have (a reservation naming one is the core's to Reject)."""
    if evse_id not in charger.evse_ids():
        raise UnknownEvse(evse_id)


def _object(kind: str, data: object, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ApiError(422, f"request body must be a JSON object, got {type(data).__name__}")
    for key in sorted(str(k) for k in data):
        if key not in allowed:
            raise FormatError(key, f"unknown field in {kind} (allowed: {', '.join(sorted(allowed))})")
    for key in sorted(allowed):
        if data.get(key) is None:
            raise FormatError(key, f"is required in {kind}")
    return data


def _token_body(data: object) -> str:
    """``{"id_token": "..."}`` with the same token rules as a Reservation's id_token."""
    return parse_token("id_token", _object("token request", data, {"id_token"})["id_token"])


def _fault_body(data: object) -> tuple[int, SimFaultKind]:
    """``{"evse_id": int, "kind": weld|lock_jam|meter_silent|clear}``."""
    body = _object("fault request", data, {"evse_id", "kind"})
    evse_id, kind = body["evse_id"], body["kind"]
    if isinstance(evse_id, bool) or not isinstance(evse_id, int):
        raise FormatError("evse_id", f"must be an integer, got {evse_id!r}")
    kinds = ", ".join(k.value for k in SimFaultKind)
    if not isinstance(kind, str) or kind not in {k.value for k in SimFaultKind}:
        raise FormatError("kind", f"must be one of {kinds}, got {kind!r}")
    return evse_id, SimFaultKind(kind)


def _document_request_bodies(app: FastAPI) -> None:
    """Add the request-body schemas (not known to FastAPI, which does not parse them) to /openapi.json."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            requests: list[type[BaseModel]] = [m.ReservationBody, m.ReservationCheckBody, m.TokenIn, m.SimFaultIn,
                                               m.LimitIn]
            for name, body in m.request_schemas(requests).items():
                components.setdefault(name, body)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
