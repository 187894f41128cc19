"""Access control of the HTTP API: a bearer token on every request, and no open API off loopback.

The API can reserve EVSEs and start charging, so anything reachable from the network must
present the configured token; the comparison is constant-time so timing reveals nothing.
Without a token the API is open to local programs only, and a web page in a local browser must
not reach it either: ``LocalRequestsOnly`` refuses requests addressed to another host name (DNS
rebinding) or coming from another web origin (and the API's Content-Type rule stops simple POSTs).
"""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from controller.addresses import is_loopback
from controller.api.errors import error_response


def require_token_for_bind(host: str, access_token: str | None) -> None:
    """Refuse to serve the API on a non-loopback address without an access token (ValueError)."""
    if access_token:
        return
    if not is_loopback(host):
        raise ValueError(
            f"refusing to serve the HTTP API on {host!r} without an access token: anyone on that network could "
            "reserve EVSEs and start charging. Give an API access token (charger-controller run --api-token-file "
            "FILE, a file holding 16 or more random characters, or api.access_token in the configuration file), "
            "or bind to 127.0.0.1."
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


def _host_name(name: str) -> str:
    """A host name as compared: lower case, without IPv6 brackets or a trailing dot."""
    name = name.strip().lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    return name.removesuffix(".")


def allowed_host(name: str, bind_host: str | None = None) -> bool:
    """Loopback names and addresses (localhost, 127.0.0.0/8, ::1) and the address the API is bound to."""
    host = _host_name(name)
    if not host:
        return False
    return is_loopback(host) or (bind_host is not None and host == _host_name(bind_host))


def _split_host_header(value: str) -> str | None:
    """The host of a Host header (``name[:port]`` or ``[v6][:port]``), None when malformed."""
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if not sep or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            return None
        return host
    host, sep, port = value.partition(":")
    if sep and not port.isdigit():
        return None
    return host


def _origin_host(origin: str) -> str | None:
    """The host of an http(s) Origin (``scheme://host[:port]``), None for anything else (including "null")."""
    try:
        parts = urlsplit(origin)
        _ = parts.port  # raises ValueError for a malformed port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        return None
    if parts.query or parts.fragment or parts.username is not None:
        return None
    return parts.hostname


def _shown(value: str) -> str:
    """A header value as quoted in an error message: repr, cut at 100 characters."""
    return repr(value if len(value) <= 100 else value[:100] + "...")


class LocalRequestsOnly:
    """ASGI middleware for an API without an access token: only requests addressed to a loopback name or the
    bind address (``Host``), and, from a browser, only from such an origin (``Origin``); else 403.

    A web page can make a browser send requests to 127.0.0.1, or, by DNS rebinding, to a name of its own
    that resolves to it: such requests carry the page's Host or Origin and are refused.
    """

    def __init__(self, app: ASGIApp, bind_host: str | None = None) -> None:
        self.app = app
        self._bind_host = bind_host

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = self._refusal(scope)
            if refusal is not None:
                await error_response(403, refusal, None)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope) -> str | None:
        """Why the request is refused, or None."""
        hosts: list[str] = []
        origins: list[str] = []
        for name, value in scope.get("headers", ()):
            if name.lower() == b"host":
                hosts.append(value.decode("latin-1"))
            elif name.lower() == b"origin":
                origins.append(value.decode("latin-1"))
        local = "this API has no access token and serves only local clients"
        if len(hosts) > 1 or len(origins) > 1:
            return f"refused: more than one Host or Origin header; {local}"
        if hosts:
            host = _split_host_header(hosts[0].strip())
            if host is None or not allowed_host(host, self._bind_host):
                return f"refused: Host {_shown(hosts[0])} is not a loopback name or the bind address; {local}"
        if origins:
            origin = origins[0].strip()
            host = _origin_host(origin)
            if host is None or not allowed_host(host, self._bind_host):
                return f"refused: Origin {_shown(origin)} is not a local http(s) origin; {local}"
        return None
