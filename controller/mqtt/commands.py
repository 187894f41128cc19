"""The bridge's commands: a payload on a command topic read strictly, carried out through the port, and answered.

Every command gets one answer (a JSON document, not retained): what was done, or ``{"error", "field"}`` naming
what is wrong (``field`` null when the payload as a whole is). Nothing a client sends can raise out of here:
the bridge stays up. Id tokens are never logged, and error texts never quote them (controller.core.tokens).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from controller.core.parsing import FormatError, parse_id
from controller.core.store import StoreError
from controller.core.types import Reservation
from controller.mqtt.backoff import ThrottledLog
from controller.mqtt.topics import CommandTopic, EvseCommand, SiteCommand, Topics
from controller.port.charger import Charger, UnknownEvse, parse_current_limit

log = logging.getLogger(__name__)

MAX_PAYLOAD_BYTES = 4096
TRUE = frozenset({"true", "on", "1"})
FALSE = frozenset({"false", "off", "0"})


@dataclass(frozen=True, slots=True)
class Answer:
    """The answer to one command: where it goes and its JSON document."""

    topic: str
    doc: dict[str, Any]

    @property
    def payload(self) -> str:
        """The document as compact JSON."""
        return json.dumps(self.doc, separators=(",", ":"))


class CommandError(ValueError):
    """A command that cannot be carried out; ``field`` names the bad part (None: the payload as a whole)."""

    def __init__(self, message: str, field: str | None) -> None:
        """``message`` says what is wrong (never quoting an id token)."""
        super().__init__(message)
        self.field = field


def parse_flag(text: str) -> bool:
    """``true``/``false``, ``ON``/``OFF`` or ``1``/``0`` in any case (Home Assistant's switch, evcc's setter)."""
    word = text.strip().lower()
    if word in TRUE:
        return True
    if word in FALSE:
        return False
    raise CommandError(f"expected true/false, ON/OFF or 1/0, got {_quote(text)}", "payload")


def parse_amps(text: str) -> float | None:
    """A current limit in amperes (``16``, ``16.0``); ``None``, ``null`` or nothing removes the limit.

    The port's reading (``parse_current_limit``), which the CLI's ``limit EVSE AMPS`` shares.
    """
    try:
        return parse_current_limit(text)
    except ValueError as exc:
        raise CommandError(str(exc), "payload") from None


def _quote(text: str) -> str:
    """A short payload as it can be shown in an error (only flag and number payloads are ever quoted)."""
    return json.dumps(text if len(text) <= 40 else text[:37] + "...")


def _text(payload: bytes) -> str:
    """The payload as UTF-8 text, within MAX_PAYLOAD_BYTES."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise CommandError(f"payload too large: {len(payload)} bytes, at most {MAX_PAYLOAD_BYTES}", None)
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CommandError(f"payload is not UTF-8 text (byte {exc.start})", None) from None


def _json(payload: bytes) -> object:
    """The payload as a JSON value."""
    text = _text(payload)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandError(f"payload is not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})", None) from None
    except RecursionError:
        raise CommandError("payload is not JSON: nested too deeply", None) from None


def _format_error(exc: FormatError, kind: str) -> CommandError:
    """A parser's FormatError as a CommandError; a wrong top-level type is about the payload, not a field."""
    if exc.field == kind:
        return CommandError(f"payload {exc.problem}", None)
    return CommandError(str(exc), exc.field)


class Commands:
    """Carries out the commands of one bridge on one charger."""

    def __init__(self, charger: Charger, topics: Topics, throttle: ThrottledLog) -> None:
        """Commands on ``charger``, answered on the result topics of ``topics``; failures logged via ``throttle``."""
        self._charger = charger
        self._topics = topics
        self._throttle = throttle

    async def handle(self, command: CommandTopic, topic: str, payload: bytes, retained: bool) -> Answer:
        """Carry out one command message and say how it went; never raises (but for cancellation)."""
        where = self._answer_topic(command)
        doc: dict[str, Any] = {"command": command.site.value if command.site else command.command}
        if command.evse is not None and where != self._topics.error:
            doc["evse_id"] = int(command.evse)
        if where == self._topics.error:
            doc["topic"] = topic
        try:
            if retained:
                raise CommandError("retained command ignored (it would run again at every reconnect): "
                                   "publish commands without the retain flag", None)
            await self._run(command, payload, doc)
        except CommandError as exc:
            doc.update({"error": str(exc), "field": exc.field})
        except UnknownEvse as exc:
            doc.update({"error": str(exc), "field": "evse_id"})
        except StoreError as exc:  # reserve and cancel: nothing changed
            doc.update({"error": f"store unavailable, retry: {exc}", "field": None})
        except ValueError as exc:  # the port's own checks (e.g. the current limit's range)
            doc.update({"error": str(exc), "field": "payload"})
        except Exception as exc:
            self._throttle.log(logging.ERROR, f"command {type(exc).__name__}", "MQTT command on %s failed", topic,
                               exc_info=exc)
            doc.update({"error": f"internal error ({type(exc).__name__}); it is logged", "field": None})
        if "error" in doc:  # keyed by answer topic and field (a bounded set): a flood of odd topics logs little
            self._throttle.log(logging.INFO, f"refused {where} {doc['field']}", "MQTT command on %s refused: %s",
                               topic, doc["error"])
        return Answer(where, doc)

    def _answer_topic(self, command: CommandTopic) -> str:
        """The result topic of a command: its own, the EVSE's, or ``error`` for an EVSE that does not exist."""
        if command.site is not None:
            return self._topics.site_result(command.site)
        evse = command.evse or ""
        if evse.isascii() and evse.isdigit() and len(evse) < 10 and int(evse) in self._charger.evse_ids():
            return self._topics.evse_result(int(evse))
        return self._topics.error

    async def _run(self, command: CommandTopic, payload: bytes, doc: dict[str, Any]) -> None:
        """Parse and carry out, adding what was done to ``doc``. Raises CommandError (and the port's errors)."""
        if command.site is SiteCommand.RESERVE:
            await self._reserve(payload, doc)
            return
        if command.site is SiteCommand.CANCEL:
            await self._cancel(payload, doc)
            return
        evse = command.evse or ""
        if not (evse.isascii() and evse.isdigit() and len(evse) < 10 and int(evse) in self._charger.evse_ids()):
            known = ", ".join(map(str, self._charger.evse_ids()))
            raise CommandError(f"unknown EVSE {_quote(evse)} in the topic; EVSEs: {known}", "evse_id")
        evse_id = int(evse)
        if command.command == EvseCommand.ENABLED:
            enabled = parse_flag(_text(payload))
            await self._charger.set_enabled(evse_id, enabled)
            log.info("MQTT EVSE %d %s", evse_id, "enabled" if enabled else "disabled")
            doc["enabled"] = enabled
            return
        if command.command == EvseCommand.CHARGING_ALLOWED:
            allowed = parse_flag(_text(payload))
            await self._charger.set_charging_allowed(evse_id, allowed)
            log.info("MQTT EVSE %d charging %s", evse_id, "allowed" if allowed else "paused")
            doc["charging_allowed"] = allowed
            return
        if command.command == EvseCommand.RESET:
            faults = await self._charger.reset_faults(evse_id)
            log.warning("MQTT EVSE %d fault reset; active now: %s", evse_id, ", ".join(faults) or "none")
            doc["faults"] = faults
            return
        if command.command == EvseCommand.CURRENT_LIMIT:
            limit = await self._charger.set_current_limit(evse_id, parse_amps(_text(payload)))
            # 0 pauses (enforced); other limits reach the car only through a control pilot (the PWM's offer)
            evses = self._charger.status()["evses"]
            piloted = any(e.get("id") == evse_id and e.get("pilot") is not None for e in evses)
            doc.update({"current_limit_a": limit, "enforced": limit == 0 or (limit is not None and piloted)})
            return
        known = ", ".join(c.value for c in EvseCommand)
        raise CommandError(f"unknown command {_quote(command.command or '')}; commands: {known}", "command")

    async def _reserve(self, payload: bytes, doc: dict[str, Any]) -> None:
        """ReserveNow with the seed's Reservation JSON; adds ``reservation_id`` (as soon as known) and ``result``."""
        data = _json(payload)
        if isinstance(data, dict) and isinstance(data.get("reservation_id"), int):
            doc["reservation_id"] = data["reservation_id"]  # named in an error answer too, for the sender
        try:
            reservation = Reservation.from_dict(data)
        except FormatError as exc:
            raise _format_error(exc, "Reservation") from None
        except (OverflowError, ValueError) as exc:  # a parser gap (a date out of range after its offset)
            raise CommandError(f"payload has a value out of range: {exc}", None) from None
        result = await self._charger.reserve(reservation)  # StoreError: nothing changed, answered by handle
        log.info("MQTT reserve %d -> %s", reservation.reservation_id, result.value)
        doc["result"] = result.value

    async def _cancel(self, payload: bytes, doc: dict[str, Any]) -> None:
        """CancelReservation by id (``42`` or ``{"reservation_id": 42}``); adds ``reservation_id`` and ``cancelled``."""
        data = _json(payload)
        try:
            if isinstance(data, dict):
                unknown = sorted(str(k) for k in data if k != "reservation_id")
                if unknown:
                    raise FormatError(unknown[0], "unknown field in cancel (allowed: reservation_id)")
                if data.get("reservation_id") is None:
                    raise FormatError("reservation_id", "is required in cancel")
                data = data["reservation_id"]
            reservation_id = parse_id("reservation_id", data)
        except FormatError as exc:
            raise _format_error(exc, "cancel") from None
        doc["reservation_id"] = reservation_id
        cancelled = await self._charger.cancel(reservation_id)  # StoreError: the reservation is kept (see handle)
        log.info("MQTT cancel %d -> %s", reservation_id, cancelled)
        doc["cancelled"] = cancelled
