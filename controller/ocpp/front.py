"""The OCPP front as the daemon starts it: the device model store, the protocol layer of the configured version.

``version = "2.0.1"`` runs controller.ocpp.v201 (subprotocol ``ocpp2.0.1``), ``version = "1.6"`` controller.ocpp.v16
(``ocpp1.6``), both on the same version-neutral station core and the same device model store: 1.6 reaches its
variables by their 1.6 configuration keys, plus the keys only 1.6 has (controller.ocpp.v16.configuration).
Speaks to the controller only through the port (controller.port.charger.Charger). Its state lives in
``<state_dir>/ocpp.db`` (device model variables, and the durable message queue), beside the reservation store.
A CSMS-ordered Reset ends the daemon with a restart request; the reason is kept in ``ocpp-boot-reason`` so the
next BootNotification says ``RemoteReset`` (2.0.1; a 1.6 BootNotification has no reason).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from controller.config.ocpp_model import OcppConfig
from controller.core.types import ConnectorType
from controller.ocpp.station.session import firmware_version
from controller.ocpp.station.variables import VariableStore
from controller.ocpp.v16.configuration import definitions16
from controller.ocpp.v16.station import Station16
from controller.ocpp.v201.convert import ocpp_connector_type
from controller.ocpp.v201.device_model import definitions
from controller.ocpp.v201.station import Station201
from controller.port.charger import Charger

log = logging.getLogger("controller.ocpp")

DB_NAME = "ocpp.db"
BOOT_REASON_FILE = "ocpp-boot-reason"


class OcppFront:
    """Starts and stops the OCPP station of ``config`` in front of ``charger``."""

    def __init__(self, charger: Charger, config: OcppConfig, state_dir: Path,
                 *, on_reset: Callable[[], None] | None = None) -> None:
        """``on_reset`` is called when the CSMS ordered a reset and it is due: the daemon restarts then."""
        self.charger = charger
        self.config = config
        self.state_dir = state_dir
        self._on_reset = on_reset
        self.variables: VariableStore | None = None
        self.station: Station201 | Station16 | None = None

    async def start(self) -> None:
        """Open the device model, then connect in the background (a CSMS that is down never stops the start)."""
        if self.config.version not in ("2.0.1", "1.6"):
            raise ValueError(f"OCPP {self.config.version} is not supported: set ocpp.version = \"2.0.1\" or \"1.6\"")
        evses = [(int(e["id"]), [(int(c["id"]), ocpp_connector_type(ConnectorType(c["type"])))
                                 for c in e["connectors"]]) for e in self.charger.status()["evses"]]
        defs = definitions(
            evses, reservations_available=self.config.reservations,
            non_evse_specific=self.config.non_evse_specific_reservations, vendor=self.config.vendor,
            model=self.config.model, security_profile=self.config.security_profile,
            serial_number=self.config.serial_number, firmware_version=firmware_version(),
            station_id=self.config.station_id,
        )
        if self.config.version == "1.6":
            defs += definitions16(defs, connectors=sum(len(connectors) for _, connectors in evses),
                                  reservations=self.config.reservations)
        self.variables = VariableStore(self.state_dir / DB_NAME, defs)
        layer = Station16 if self.config.version == "1.6" else Station201
        station = layer(self.charger, self.config, self.variables, self.state_dir / DB_NAME, on_reset=self._reset)
        station.boot_reason = self._take_boot_reason()
        self.station = station
        await station.start()
        log.info("OCPP %s station %s: connecting to %s", self.config.version, self.config.station_id,
                 self.config.endpoint)

    async def stop(self) -> None:
        """Disconnect and close the store."""
        if self.station is not None:
            await self.station.stop()
            self.station = None
        if self.variables is not None:
            self.variables.close()
            self.variables = None

    def _reset(self, kind: str) -> None:
        """The CSMS's reset is due: remember why for the next boot, then ask the daemon to restart."""
        try:
            (self.state_dir / BOOT_REASON_FILE).write_text("RemoteReset\n", encoding="ascii")
        except OSError as exc:
            log.warning("cannot keep the boot reason for after the reset: %s", exc)
        if self._on_reset is not None:
            self._on_reset()

    def _take_boot_reason(self) -> str:
        """``RemoteReset`` after a CSMS-ordered reset (the file is removed), else ``PowerUp``."""
        path = self.state_dir / BOOT_REASON_FILE
        try:
            reason = path.read_text(encoding="ascii").strip()
            path.unlink()
        except (OSError, UnicodeDecodeError):
            return "PowerUp"
        return reason if reason in ("RemoteReset", "ScheduledReset", "FirmwareUpdate") else "PowerUp"
