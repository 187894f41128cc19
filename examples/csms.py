"""A small OCPP 2.0.1 CSMS to try the controller's OCPP front on one machine (README "Connect to a CSMS").

Run it in one terminal::

    .venv/bin/python examples/csms.py            # listens on ws://127.0.0.1:9000/ocpp/<station id>

then ``charger-controller run --sim --ocpp-url ws://127.0.0.1:9000/ocpp --ocpp-id CS001`` in another. It
accepts the boot, prints every message the station sends, and reads commands on its standard input:

    reserve ID TOKEN [EVSE] [SECONDS]   ReserveNow (no EVSE: any EVSE), expiring in SECONDS (default 600)
    cancel ID                           CancelReservation
    authorize TOKEN accept|reject       how Authorize answers for TOKEN (default: accept every token)
    get COMPONENT VARIABLE              GetVariables
    set COMPONENT VARIABLE VALUE        SetVariables
    available EVSE | unavailable EVSE   ChangeAvailability Operative / Inoperative
    trigger MESSAGE                     TriggerMessage (Heartbeat, StatusNotification, ...)
    quit

Built on the ``ocpp`` and ``websockets`` libraries, which the controller installs. For trying things out only:
no authentication, no TLS, one station at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import websockets
from ocpp.routing import on
from ocpp.v201 import ChargePoint, call, call_result
from websockets.asyncio.server import ServerConnection, serve


def now(offset_s: float = 0.0) -> str:
    """UTC time as OCPP writes it."""
    return (datetime.now(UTC) + timedelta(seconds=offset_s)).isoformat(timespec="seconds").replace("+00:00", "Z")


def show(direction: str, action: str, payload: Any) -> None:
    """One line per message."""
    print(f"{direction} {action} {json.dumps(payload, separators=(',', ':'))}", flush=True)


class Csms(ChargePoint):  # type: ignore[misc]
    """The CSMS side of one station: answers what the station sends."""

    refused: set[str] = set()

    @on("BootNotification")
    def boot(self, **payload: Any) -> Any:
        show("<-", "BootNotification", payload)
        return call_result.BootNotification(current_time=now(), interval=300, status="Accepted")

    @on("Heartbeat")
    def heartbeat(self, **payload: Any) -> Any:
        show("<-", "Heartbeat", payload)
        return call_result.Heartbeat(current_time=now())

    @on("StatusNotification")
    def status(self, **payload: Any) -> Any:
        show("<-", "StatusNotification", payload)
        return call_result.StatusNotification()

    @on("Authorize")
    def authorize(self, id_token: dict[str, Any], **payload: Any) -> Any:
        show("<-", "Authorize", {"id_token": id_token, **payload})
        status = "Invalid" if id_token["id_token"].upper() in self.refused else "Accepted"
        return call_result.Authorize(id_token_info={"status": status})

    @on("ReservationStatusUpdate")
    def reservation_status(self, **payload: Any) -> Any:
        show("<-", "ReservationStatusUpdate", payload)
        return call_result.ReservationStatusUpdate()

    @on("TransactionEvent")
    def transaction(self, **payload: Any) -> Any:
        show("<-", "TransactionEvent", payload)
        return call_result.TransactionEvent()

    @on("NotifyReport")
    def report(self, **payload: Any) -> Any:
        show("<-", "NotifyReport", {k: v for k, v in payload.items() if k != "report_data"})
        return call_result.NotifyReport()


def request(words: list[str], station: Csms) -> Any:
    """The CALL a command line asks for, or None with a message."""
    match words:
        case ["reserve", rid, token, *rest]:
            payload: dict[str, Any] = {"id": int(rid), "id_token": {"id_token": token, "type": "ISO14443"},
                                       "expiry_date_time": now(float(rest[1]) if len(rest) > 1 else 600)}
            if rest and rest[0] != "-":
                payload["evse_id"] = int(rest[0])
            return call.ReserveNow(**payload)
        case ["cancel", rid]:
            return call.CancelReservation(reservation_id=int(rid))
        case ["authorize", token, verdict]:
            (station.refused.add if verdict == "reject" else station.refused.discard)(token.upper())
            print(f"Authorize of {token} will be answered {'Invalid' if verdict == 'reject' else 'Accepted'}")
            return None
        case ["get", component, variable]:
            return call.GetVariables(get_variable_data=[{"component": {"name": component},
                                                         "variable": {"name": variable}}])
        case ["set", component, variable, value]:
            return call.SetVariables(set_variable_data=[{"component": {"name": component},
                                                         "variable": {"name": variable}, "attribute_value": value}])
        case ["available" | "unavailable" as which, evse]:
            status = "Operative" if which == "available" else "Inoperative"
            return call.ChangeAvailability(operational_status=status, evse={"id": int(evse)})
        case ["trigger", message]:
            return call.TriggerMessage(requested_message=message)
    print("commands: reserve ID TOKEN [EVSE] [SECONDS] | cancel ID | authorize TOKEN accept|reject | "
          "get C V | set C V VALUE | available EVSE | unavailable EVSE | trigger MESSAGE | quit")
    return None


async def commands(station: Csms) -> None:
    """Read command lines from stdin and send them to the station."""
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line or line.strip() == "quit":
            return
        try:
            payload = request(line.split(), station)
        except (ValueError, TypeError) as exc:
            print(f"bad command: {exc}")
            continue
        if payload is None:
            continue
        show("->", type(payload).__name__, payload.__dict__)
        try:
            answer = await station.call(payload, suppress=False)
        except Exception as exc:
            print(f"   failed: {type(exc).__name__}: {exc}", flush=True)
        else:
            show("   answer", type(payload).__name__, answer.__dict__)


async def main() -> None:
    """Serve one station at a time on the address given."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args()

    async def handler(websocket: ServerConnection) -> None:
        station_id = websocket.request.path.rstrip("/").rsplit("/", 1)[-1] if websocket.request else "?"
        print(f"station {station_id} connected ({websocket.subprotocol})", flush=True)
        station = Csms(station_id, websocket)
        reader = asyncio.ensure_future(commands(station))
        try:
            await station.start()
        except websockets.ConnectionClosed:
            print(f"station {station_id} disconnected", flush=True)
        finally:
            reader.cancel()

    async with serve(handler, "127.0.0.1", args.port, subprotocols=["ocpp2.0.1"]):  # type: ignore[list-item]
        print(f"CSMS listening on ws://127.0.0.1:{args.port}/ocpp (type commands here once a station is in)",
              flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    asyncio.run(main())
