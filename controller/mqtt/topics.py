"""Every MQTT topic of the bridge, in one place, and the reading of a command topic back into its parts.

Under ``<prefix>`` (``topic_prefix``): ``availability``; per EVSE ``evse/<id>/<state key>`` and the commands
``evse/<id>/<command>/set``, answered on ``evse/<id>/result``; ``reserve`` and ``cancel``, answered on
``reserve/result`` and ``cancel/result``; ``error`` for a command that names no known EVSE. README
"Home Assistant and MQTT" has the table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

AVAILABILITY = "availability"
ONLINE = "online"
OFFLINE = "offline"
HA_STATUS = "status"  # <discovery_prefix>/status: Home Assistant's birth ("online") and last will ("offline")


class EvseCommand(StrEnum):
    """The per-EVSE commands: ``<prefix>/evse/<id>/<command>/set``."""

    ENABLED = "enabled"  # the operator's enable (the EVSE's availability): true/false, ON/OFF, 1/0 (any case)
    CHARGING_ALLOWED = "charging_allowed"  # pause/resume within the session (evcc's enable): as ENABLED
    RESET = "reset"  # any payload (Home Assistant's button sends PRESS)
    CURRENT_LIMIT = "current_limit"  # amperes: 0 pauses, 6..80; "None" or empty removes the limit


class SiteCommand(StrEnum):
    """The commands on the whole site: ``<prefix>/<command>`` with a JSON payload."""

    RESERVE = "reserve"  # the seed's Reservation JSON
    CANCEL = "cancel"  # a reservation id: 42 or {"reservation_id": 42}


@dataclass(frozen=True, slots=True)
class CommandTopic:
    """An incoming command topic read back: a site command, or an EVSE id (as written) and its command name."""

    site: SiteCommand | None = None
    evse: str | None = None  # the id level as written (it may name no EVSE, or not be a number)
    command: str | None = None  # the command level as written (it may be unknown)


class Topics:
    """The topics of one controller under ``prefix``, and Home Assistant's under ``discovery_prefix``."""

    def __init__(self, prefix: str, discovery_prefix: str) -> None:
        """Topics under ``prefix`` (no trailing "/"); discovery configs under ``discovery_prefix``."""
        self.prefix = prefix
        self.discovery_prefix = discovery_prefix
        self.node_id = re.sub(r"[^A-Za-z0-9_-]", "_", prefix)  # Home Assistant's node_id: [A-Za-z0-9_-]+

    @property
    def availability(self) -> str:
        """``online`` while connected, ``offline`` on an orderly stop and as the last will (retained)."""
        return f"{self.prefix}/{AVAILABILITY}"

    @property
    def error(self) -> str:
        """Errors of commands that name no known EVSE (not retained)."""
        return f"{self.prefix}/error"

    @property
    def ha_status(self) -> str:
        """Home Assistant's status topic: ``online`` when it (re)starts."""
        return f"{self.discovery_prefix}/{HA_STATUS}"

    def evse(self, evse_id: int, key: str) -> str:
        """A state topic of an EVSE: ``<prefix>/evse/<id>/<key>``."""
        return f"{self.prefix}/evse/{evse_id}/{key}"

    def command(self, evse_id: int, command: EvseCommand) -> str:
        """An EVSE's command topic: ``<prefix>/evse/<id>/<command>/set``."""
        return f"{self.prefix}/evse/{evse_id}/{command.value}/set"

    def evse_result(self, evse_id: int) -> str:
        """Where an EVSE's commands are answered (not retained)."""
        return f"{self.prefix}/evse/{evse_id}/result"

    def site(self, command: SiteCommand) -> str:
        """A site command topic: ``<prefix>/reserve`` or ``<prefix>/cancel``."""
        return f"{self.prefix}/{command.value}"

    def site_result(self, command: SiteCommand) -> str:
        """Where a site command is answered (not retained)."""
        return f"{self.prefix}/{command.value}/result"

    def subscriptions(self) -> list[str]:
        """What the bridge subscribes to: the commands and Home Assistant's status."""
        return [f"{self.prefix}/evse/+/+/set", *(self.site(c) for c in SiteCommand), self.ha_status]

    def discovery(self, component: str, object_id: str) -> str:
        """A discovery config topic: ``<discovery_prefix>/<component>/<node_id>/<object_id>/config``."""
        return f"{self.discovery_prefix}/{component}/{self.node_id}/{object_id}/config"

    def parse_command(self, topic: str) -> CommandTopic | None:
        """A command topic read back into its parts; None for any other topic."""
        for command in SiteCommand:
            if topic == self.site(command):
                return CommandTopic(site=command)
        head = f"{self.prefix}/evse/"
        if not topic.startswith(head) or not topic.endswith("/set"):
            return None
        levels = topic[len(head):-len("/set")].split("/")
        if len(levels) != 2:
            return None
        return CommandTopic(evse=levels[0], command=levels[1])
