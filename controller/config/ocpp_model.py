"""The OCPP front's settings as the configuration gives them (``[ocpp]``, or ``run --ocpp-url``).

Its own module, importing nothing but the standard library, so the OCPP front reads its settings without
importing the rest of the configuration model (which knows the drivers' option classes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True)
class OcppConfig:
    """The OCPP front (controller.ocpp): the CSMS, the station's identity and features, security and timing (s).

    ``password`` (HTTP Basic auth, security profiles 1 and 2) comes from ``password_file`` or
    ``$CHARGER_OCPP_PASSWORD``; it is left out of ``repr``, so it never reaches a log line.
    """

    url: str  # as written: ws://host[:port][/path] or wss://...; the station id is appended as the last segment
    host: str
    port: int
    tls: bool
    station_id: str
    version: str  # "2.0.1" or "1.6"
    reservations: bool  # 2.0.1 ReservationCtrlr.Available; 1.6 the Reservation feature profile
    non_evse_specific_reservations: bool  # 2.0.1 ReservationCtrlr.NonEvseSpecific; 1.6 ReserveConnectorZeroSupported
    security_profile: int  # 0 none, 1 Basic auth over ws, 2 Basic auth over wss
    password: str | None = field(repr=False)
    ca_file: Path | None  # wss: the CA that signed the CSMS's certificate; None: the system CAs
    heartbeat_interval_s: int = 300  # until the CSMS sets one at boot
    message_timeout_s: float = 30.0
    reconnect_min_s: float = 2.0
    reconnect_max_s: float = 120.0
    vendor: str = "charger-controller"
    model: str = "charger-controller"
    serial_number: str | None = None

    @property
    def endpoint(self) -> str:
        """The URL the station connects to: ``url`` with the station id as its last path segment (OCPP-J)."""
        return f"{self.url.rstrip('/')}/{self.station_id}"
