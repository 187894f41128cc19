"""CLI client commands that talk to a running controller over its HTTP API (stdlib only).

``add_client_commands(subparsers)`` registers ``status``, ``reserve``, ``cancel``,
``present-token``, ``plug``, ``unplug``, ``fault``, ``enable``, ``disable``, ``reset``, ``limit`` and ``check``;
each sets ``func`` to a handler returning the exit status. Exit status: 0 done, 1 the
controller could not be reached or refused the request, 3 it answered "no" (a reservation
not Accepted, nothing to cancel, a token refused).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TextIO

from controller.core.parsing import format_rfc3339
from controller.core.types import ConnectorType
from controller.port.charger import SimFaultKind, parse_current_limit
from drivers.redact import redact_token

if TYPE_CHECKING:
    import urllib.error

DEFAULT_API = "127.0.0.1:8080"
TOKEN_ENV = "CHARGER_API_TOKEN"
TIMEOUT_S = 10.0
EXIT_OK, EXIT_FAILED, EXIT_NO = 0, 1, 3

Handler = Callable[[argparse.Namespace], int]


class ClientError(Exception):
    """The request did not get a useful answer; the message is for the operator."""


def api_url(api: str) -> str:
    """``HOST:PORT`` (or a full http:// URL) as a base URL without a trailing slash."""
    api = api.strip()
    if not api.startswith(("http://", "https://")):
        api = "http://" + api
    return api.rstrip("/")


def request(args: argparse.Namespace, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """One JSON request to the controller; raises ClientError with a one-line reason."""
    import urllib.error  # here, not at the top: ``--help`` and ``check-config`` need no HTTP client
    import urllib.request

    base = api_url(args.api)
    headers = {"Accept": "application/json"}
    token = args.access_token or os.environ.get(TOKEN_ENV)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
    if body is not None or method == "POST":  # the API refuses a POST without it (415), body or not
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        raise ClientError(_server_error(exc)) from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ConnectionRefusedError):
            raise ClientError(f"no controller answering at {base} — is `charger-controller run` running?") from None
        raise ClientError(f"cannot reach the controller at {base}: {exc.reason}") from None
    except (TimeoutError, ConnectionError) as exc:
        raise ClientError(f"the controller at {base} did not answer: {exc}") from None
    except ValueError as exc:
        raise ClientError(f"the controller at {base} sent a reply that is not JSON: {exc}") from None


def _server_error(exc: urllib.error.HTTPError) -> str:
    try:
        message = json.loads(exc.read()).get("error")
    except (ValueError, AttributeError, OSError):
        message = None
    return f"error {exc.code}: {message or exc.reason}"


# ---------------------------------------------------------------- commands


def cmd_status(args: argparse.Namespace) -> int:
    """Print every EVSE and the live reservations."""
    doc = request(args, "GET", "/status")
    if args.json:
        _print_json(doc)
    else:
        print(format_status(doc))
    return EXIT_OK


def cmd_reserve(args: argparse.Namespace) -> int:
    """ReserveNow: global without --evse, EVSE-specific with it."""
    body: dict[str, Any] = {"reservation_id": args.id, "id_token": args.token, "expiry_time": _expiry(args)}
    if args.parent is not None:
        body["parent_id_token"] = args.parent
    if args.evse is not None:
        body["evse_id"] = args.evse
    if args.connector_type is not None:
        body["connector_type"] = args.connector_type
    doc = request(args, "POST", "/reservations", body)
    result = str(doc.get("result"))
    _answer(args, doc, f"reservation {args.id}: {result}")
    return EXIT_OK if result == "Accepted" else EXIT_NO


def _expiry(args: argparse.Namespace) -> str:
    if args.expiry is not None:
        return str(args.expiry)
    return format_rfc3339(datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=args.expires_in))


def cmd_cancel(args: argparse.Namespace) -> int:
    """CancelReservation by id."""
    doc = request(args, "DELETE", f"/reservations/{args.reservation_id}")
    cancelled = bool(doc.get("cancelled"))
    _answer(args, doc, f"reservation {args.reservation_id}: {'cancelled' if cancelled else 'no such reservation'}")
    return EXIT_OK if cancelled else EXIT_NO


def cmd_present_token(args: argparse.Namespace) -> int:
    """Present a token at an EVSE, as its RFID reader would."""
    doc = request(args, "POST", f"/evses/{args.evse}/token", {"id_token": args.token})
    verdict = doc.get("verdict")
    _answer(args, doc, f"EVSE {args.evse}: {verdict} ({doc.get('reason')})")
    stopped = verdict == "stopped"
    return EXIT_OK if doc.get("may_charge") or stopped else EXIT_NO


def cmd_check(args: argparse.Namespace) -> int:
    """Is there a reservation for this token (at this EVSE)?"""
    body: dict[str, Any] = {"id_token": args.token}
    if args.evse is not None:
        body["evse_id"] = args.evse
    if args.group is not None:
        body["group_id_token"] = args.group
    doc = request(args, "POST", "/reservations/check", body)
    _answer(args, doc, str(doc.get("status")))
    return EXIT_OK


def _evse_action(path: str, done: str) -> Handler:
    def handler(args: argparse.Namespace) -> int:
        doc = request(args, "POST", path.format(evse=args.evse))
        _answer(args, doc, f"EVSE {args.evse}: {done}")
        return EXIT_OK

    handler.__doc__ = f"POST {path}"
    return handler


def cmd_reset(args: argparse.Namespace) -> int:
    """Operator: clear latched faults after a repair."""
    doc = request(args, "POST", f"/evses/{args.evse}/reset")
    still = ", ".join(doc.get("faults") or []) if isinstance(doc, dict) else ""
    _answer(args, doc, f"EVSE {args.evse}: faults reset" + (f"; still active: {still}" if still else ""))
    return EXIT_OK


def cmd_limit(args: argparse.Namespace) -> int:
    """Set (or with ``none`` remove) an EVSE's local current limit; 0 pauses charging."""
    doc = request(args, "POST", f"/evses/{args.evse}/limit", {"amps": args.amps})
    limit = doc.get("current_limit_a") if isinstance(doc, dict) else None
    paused = " (charging paused)" if limit == 0 else ""
    line = "limit removed" if limit is None else f"limit {limit:g} A{paused}"
    _answer(args, doc, f"EVSE {args.evse}: {line}")
    return EXIT_OK


def _amps(text: str) -> float | None:
    """``AMPS`` of ``limit``: a number, or ``none`` to remove the limit (the MQTT bridge's reading)."""
    try:
        return parse_current_limit(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_fault(args: argparse.Namespace) -> int:
    """Simulation: inject or clear a fault."""
    doc = request(args, "POST", "/sim/faults", {"evse_id": args.evse, "kind": args.kind})
    _answer(args, doc, f"EVSE {args.evse}: fault {args.kind} {'cleared' if args.kind == 'clear' else 'injected'}")
    return EXIT_OK


def _answer(args: argparse.Namespace, doc: Any, line: str) -> None:
    if args.json:
        _print_json(doc)
    else:
        print(line)


def _print_json(doc: Any, out: TextIO | None = None) -> None:
    print(json.dumps(doc, indent=2), file=out or sys.stdout)


# ---------------------------------------------------------------- human-readable status

_EVSE_COLUMNS = ("EVSE", "STATE", "PLUGGED", "RESERVED LED", "STATUS LED", "LOCK", "CONTACTOR", "FAULTS")
_RES_COLUMNS = ("ID", "TOKEN", "EVSE", "TYPE", "EXPIRES", "PARENT")


def format_status(doc: dict[str, Any]) -> str:
    """The status document as two small tables; tokens are shortened as in the logs."""
    rows = [_evse_row(e) for e in doc.get("evses", [])]
    lines = _table(_EVSE_COLUMNS, rows)
    reservations = doc.get("reservations", [])
    lines.append("")
    if not reservations:
        lines.append("no reservations")
    else:
        lines.append("reservations:")
        lines.extend(_table(_RES_COLUMNS, [_reservation_row(r) for r in reservations]))
    store = doc.get("store")
    if isinstance(store, dict) and not store.get("ok", True):
        lines.append("")
        lines.append(f"STORE FAULT: reservations cannot be changed until the store can write ({store.get('error')}); "
                     f"{store.get('unsynced_ends', 0)} ended reservation(s) still to be written")
    return "\n".join(lines)


def _evse_row(e: dict[str, Any]) -> list[str]:
    led = e.get("status_led")
    status_led = "-" if not led else f"{led.get('color')} {led.get('pattern')}"
    return [
        str(e.get("id")),
        str(e.get("state")) + (" (charging)" if e.get("charging") else ""),
        "yes" if e.get("plugged_in") else "no",
        str(e.get("reserved_led")),
        status_led,
        str(e.get("lock")),
        str(e.get("contactor")),
        ", ".join(e.get("faults") or []) or "-",
    ]


def _reservation_row(r: dict[str, Any]) -> list[str]:
    parent = r.get("parent_id_token")
    return [
        str(r.get("reservation_id")),
        redact_token(str(r.get("id_token", ""))),
        str(r.get("evse_id", "any")),
        str(r.get("connector_type", "any")),
        str(r.get("expiry_time")),
        "-" if parent is None else redact_token(str(parent)),
    ]


def _table(header: Sequence[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=False)]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in [header, *rows]]


# ---------------------------------------------------------------- argparse wiring


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--api", default=DEFAULT_API, metavar="HOST:PORT", help=f"controller API (default {DEFAULT_API})"
    )
    parser.add_argument(
        "--access-token", default=None, help=f"API access token (default: the {TOKEN_ENV} environment variable)"
    )
    parser.add_argument("--json", action="store_true", help="print the raw JSON answer")


def add_client_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the client subcommands; each sets ``func`` to a handler returning the exit status."""

    def add(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        parser = subparsers.add_parser(name, help=help_text, description=help_text)
        _common(parser)
        parser.set_defaults(func=_guarded(handler))
        return parser

    add("status", cmd_status, "show every EVSE and the live reservations")

    p = add("reserve", cmd_reserve, "reserve an EVSE (with --evse) or any EVSE (global)")
    p.add_argument("--id", type=int, required=True, help="reservation id")
    p.add_argument("--token", required=True, help="id token the reservation is for")
    when = p.add_mutually_exclusive_group(required=True)
    when.add_argument("--expires-in", type=float, metavar="MINUTES", help="expiry, minutes from now")
    when.add_argument("--expiry", metavar="RFC3339", help="expiry time, e.g. 2026-01-01T12:00:00Z")
    p.add_argument("--evse", type=int, help="EVSE id (absent: a global reservation)")
    p.add_argument("--connector-type", choices=[t.value for t in ConnectorType], metavar="TYPE", help="e.g. cType2")
    p.add_argument("--parent", help="parent (group) id token")

    p = add("cancel", cmd_cancel, "cancel a reservation")
    p.add_argument("reservation_id", type=int, metavar="ID", help="reservation id (as given to reserve --id)")

    p = add("present-token", cmd_present_token, "present an id token at an EVSE, as its RFID reader would")
    p.add_argument("evse", type=int, metavar="EVSE", help="EVSE id")
    p.add_argument("token", metavar="TOKEN", help="the id token, as a card reader would read it")

    p = add("check", cmd_check, "is there a reservation for this token?")
    p.add_argument("--token", required=True, help="id token")
    p.add_argument("--evse", type=int, help="EVSE id")
    p.add_argument("--group", help="group (parent) id token")

    for name, path, done, help_text in (
        ("enable", "/evses/{evse}/enable", "enabled", "put an EVSE back in service"),
        ("disable", "/evses/{evse}/disable", "disabled", "take an EVSE out of service"),
        ("plug", "/sim/evses/{evse}/plug", "plugged in", "simulation (run --sim): plug a car in"),
        ("unplug", "/sim/evses/{evse}/unplug", "unplugged", "simulation (run --sim): unplug the car"),
    ):
        p = add(name, _evse_action(path, done), help_text)
        p.add_argument("evse", type=int, metavar="EVSE", help="EVSE id")

    p = add("reset", cmd_reset, "after a repair: clear latched faults (a welded contactor) of an EVSE")
    p.add_argument("evse", type=int, metavar="EVSE", help="EVSE id")

    p = add("limit", cmd_limit, "limit the current an EVSE offers the car (0 pauses charging, none removes the limit)")
    p.add_argument("evse", type=int, metavar="EVSE", help="EVSE id")
    p.add_argument("amps", type=_amps, metavar="AMPS",
                   help="amperes per phase: 0 (pause) or 6 to 80, or none to remove the limit")

    p = add("fault", cmd_fault, "simulation (run --sim): inject a fault, or clear them")
    p.add_argument("evse", type=int, metavar="EVSE", help="EVSE id")
    kinds = [k.value for k in SimFaultKind]
    p.add_argument("kind", choices=kinds, metavar="KIND",
                   help=f"{', '.join(k for k in kinds if k != 'clear')}, or clear (repairs this EVSE's injected "
                        "faults and resets it, as an operator would)")


def _guarded(handler: Handler) -> Handler:
    """Turn a ClientError into one line on stderr and exit status 1."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except ClientError as exc:
            print(f"charger-controller: {exc}", file=sys.stderr)
            return EXIT_FAILED

    run.__doc__ = handler.__doc__
    return run


def run_client(argv: Sequence[str]) -> int:
    """Parse a client command line (e.g. ``["status", "--json"]``) and run it; returns the exit status."""
    parser = argparse.ArgumentParser(prog="charger-controller")
    add_client_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    handler: Handler = args.func
    return handler(args)
