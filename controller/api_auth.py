"""Access control of the HTTP API: a bearer token on every request, and no open API off loopback.

The API can reserve EVSEs and start charging, so anything reachable from the network must
present the configured token; the comparison is constant-time so timing reveals nothing.
"""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from controller.api_errors import error_response
from controller.config_model import is_loopback

__all__ = ["BearerAuth", "is_loopback", "require_token_for_bind"]

def require_token_for_bind(host: str, access_token: str | None) -> None:
    """Refuse to serve the API on a non-loopback address without an access token (ValueError)."""
    if access_token:
        return
    if not is_loopback(host):
        raise ValueError(
            f"refusing to serve the HTTP API on {host!r} without an access token: anyone on that network could "
            "reserve EVSEs and start charging. Set an API access token, or bind to 127.0.0.1."
        )


class BearerAuth:
    """ASGI middleware: every HTTP request needs ``Authorization: Bearer <token>``, else 401."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        if not token:
            raise ValueError("access token must not be empty")
        self.app = app
        self._expected = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self._authorized(scope):
            response = error_response(
                401,
                "missing or wrong access token: send the header 'Authorization: Bearer <token>'",
                None,
                **{"WWW-Authenticate": 'Bearer realm="charger-controller"'},
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _authorized(self, scope: Scope) -> bool:
        given = b""
        for name, value in scope.get("headers", ()):
            if name.lower() == b"authorization":
                scheme, _, credentials = value.partition(b" ")
                if scheme.lower() == b"bearer":
                    given = credentials.strip()
                break
        # always compare, even when nothing was given, so the answer takes the same time
        return hmac.compare_digest(given, self._expected) and bool(given)
