"""One error shape for the HTTP API: ``{"error": message, "field": name-or-null}``.

Bad input is always a 4xx naming the field or saying the body is invalid; only a failure
inside the controller is a 500, logged with its traceback while the server keeps serving.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from controller.core.parsing import FormatError
from controller.core.store import StoreError
from controller.port.charger import UnknownEvse

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024  # a Reservation is a few hundred bytes
STORE_RETRY_AFTER_S = 5  # Retry-After of a 503 while the reservation store cannot write


class ApiError(Exception):
    """A request the API refuses, with its HTTP status and the offending field (if any)."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


def error_response(status: int, message: str, field: str | None = None, **headers: str) -> JSONResponse:
    """The API's error body."""
    return JSONResponse({"error": message, "field": field}, status_code=status, headers=headers or None)


def check_json_content_type(request: Request) -> None:
    """415 unless the request says ``Content-Type: application/json`` (or ``application/*+json``).

    A missing Content-Type is refused too: a web page can make a browser send a form or text/plain POST to
    any address, but application/json only after a CORS preflight, which this API never grants.
    """
    ctype = request.headers.get("content-type")
    if ctype is None:
        raise ApiError(415, f"{request.method} needs Content-Type: application/json (also without a body), got none")
    if not _is_json_type(ctype):
        shown = ctype if len(ctype) <= 100 else ctype[:100] + "..."
        raise ApiError(415, f"{request.method} needs Content-Type: application/json (also without a body), "
                       f"got {shown!r}: the request body must be JSON")


async def require_json_posts(request: Request) -> None:
    """App-wide dependency: every POST, with or without a body, must be ``application/json`` (see above)."""
    if request.method == "POST":
        check_json_content_type(request)


async def read_json(request: Request) -> object:
    """The request body as JSON: 415 for another or no content type, 413 when too big, 400 when empty or not JSON."""
    check_json_content_type(request)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise ApiError(413, f"request body is larger than {MAX_BODY_BYTES} bytes")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY_BYTES:
            raise ApiError(413, f"request body is larger than {MAX_BODY_BYTES} bytes")
    if not raw.strip():
        raise ApiError(400, "request body is empty: expected a JSON object")
    try:
        data = json.loads(bytes(raw))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ApiError(400, f"request body is not valid JSON: {exc}") from None
    where = _lone_surrogate(data)
    if where is not None:  # a \udXXX escape decodes to a lone surrogate: not text, nothing could store or show it
        raise ApiError(422, f"{where or 'body'}: not valid text: a lone UTF-16 surrogate escape (\\ud800 to "
                       "\\udfff outside a pair)", where or None)
    return data


def _lone_surrogate(data: object, where: str = "") -> str | None:
    """The path of the first key or string holding a lone surrogate (``""`` for the top level), else None."""
    if isinstance(data, str):
        try:
            data.encode("utf-8")
        except UnicodeEncodeError:
            return where
        return None
    if isinstance(data, dict):
        for key, value in data.items():
            path = f"{where}.{key}" if where else str(key)
            if _lone_surrogate(key) is not None:
                return repr(path)
            found = _lone_surrogate(value, path)
            if found is not None:
                return found
    if isinstance(data, list):
        for index, value in enumerate(data):
            found = _lone_surrogate(value, f"{where}[{index}]")
            if found is not None:
                return found
    return None


def _is_json_type(ctype: str) -> bool:
    media = ctype.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def install_error_handlers(app: FastAPI, known_evses: Callable[[], Iterable[int]]) -> None:
    """Map every refusal to the API's error shape; ``known_evses()`` names the EVSEs in 404 messages."""

    async def on_api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_response(exc.status, exc.message, exc.field)

    async def on_format_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, FormatError)
        return error_response(422, str(exc), exc.field)

    async def on_unknown_evse(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, UnknownEvse)
        known = ", ".join(str(e) for e in known_evses())
        return error_response(404, f"evse_id: unknown evse {exc.evse_id} (known: {known})", "evse_id")

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(part) for part in first.get("loc", ()) if part not in ("path", "query", "body")]
        field = loc[-1] if loc else None
        got = first.get("input")
        message = f"{field or 'request'}: {first.get('msg', 'invalid value')}, got {got!r}"
        return error_response(422, message, field)

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        where = f"{request.method} {request.url.path}"
        if exc.status_code == 404:
            message = f"no such endpoint: {where} (see /openapi.json)"
        elif exc.status_code == 405:
            # Starlette names only the methods of the first route matching the path; list every route's
            allowed = _allowed_methods(request) or (exc.headers or {}).get("Allow", "")
            message = f"method not allowed: {where} (allowed: {allowed})"
            return error_response(405, message, None, **{**(exc.headers or {}), "Allow": allowed})
        else:
            message = f"{where}: {exc.detail}"
        return error_response(exc.status_code, message, None, **(exc.headers or {}))

    async def on_store_error(request: Request, exc: Exception) -> JSONResponse:
        # the disk refused the write (full, read-only, failing): nothing changed; try again later
        message = f"the reservation store cannot write, so nothing was changed; try again later ({exc})"
        return error_response(503, message, None, **{"Retry-After": str(STORE_RETRY_AFTER_S)})

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(StoreError, on_store_error)
    app.add_exception_handler(FormatError, on_format_error)
    app.add_exception_handler(UnknownEvse, on_unknown_evse)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at this path (``Allow`` of a 405), sorted: asked of the router itself."""
    methods: set[str] = set()
    for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"):
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes):
            methods.add(method)
    return ", ".join(sorted(methods))


class InternalErrors:
    """ASGI middleware: an unexpected exception becomes a logged traceback and a 500, never a dead server."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except ClientDisconnect:  # the client went (or was cut off by a timeout) while sending its body
            log.debug("client disconnected during %s %s", scope.get("method"), scope.get("path"))
        except Exception:
            log.exception("internal error serving %s %s", scope.get("method"), scope.get("path"))
            if not started:
                await JSONResponse({"error": "internal error"}, status_code=500)(scope, receive, send)
