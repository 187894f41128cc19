"""What the bridge needs to know of its ``[mqtt]`` section, as a protocol.

controller.config.model.MqttConfig has these fields; the bridge does not import it (the configuration
package reaches into the drivers' types, which no front may import), the daemon hands it over.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol


class BrokerSettings(Protocol):
    """The broker, the credentials, the topics and the measurement period (s) of one bridge."""

    @property
    def url(self) -> str:
        """``mqtt://host[:port]`` or ``mqtts://host[:port]``, as written (it holds no credentials)."""
        ...

    @property
    def host(self) -> str:
        """The broker's host name or address (IPv6 without brackets)."""
        ...

    @property
    def port(self) -> int:
        """The broker's TCP port."""
        ...

    @property
    def tls(self) -> bool:
        """mqtts://: TLS, verifying the broker's certificate and name."""
        ...

    @property
    def ca_file(self) -> Path | None:
        """The CA to verify the broker against; None: the system's CAs."""
        ...

    @property
    def client_id(self) -> str:
        """The MQTT client id."""
        ...

    @property
    def username(self) -> str | None:
        """The broker user, if the broker wants one."""
        ...

    @property
    def password(self) -> str | None:
        """The broker password; never logged."""
        ...

    @property
    def topic_prefix(self) -> str:
        """The root of every topic of this controller."""
        ...

    @property
    def discovery_prefix(self) -> str:
        """Home Assistant's discovery prefix."""
        ...

    @property
    def publish_interval_s(self) -> float:
        """How often the meter readings are published (s)."""
        ...
