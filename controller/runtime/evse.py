"""The runtime's data: the drivers of an EVSE, site settings, the per-EVSE record and what every collaborator shares.

Plain records only; the collaborators of controller.runtime.runtime (evaluation, outputs, timers, tokens, status)
read and write them, all inside the one asyncio loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from controller.charging.evse import EvseModel, EvseState
from controller.charging.outputs import Outputs
from controller.charging.session import ChargingSession
from controller.core.reservation import ReservationCore
from controller.core.types import Connector, ConnectorState
from controller.port.charger import UnknownEvse
from controller.port.events import EventHub
from controller.runtime.pilot import PilotHardware
from drivers.interfaces import Contactor, Indicator, Lock, Meter, MeterSnapshot, PlugSensor, TokenReader


@dataclass
class EvseHardware:
    """The drivers of one EVSE, as the composition root built them."""

    evse_id: int
    connectors: tuple[Connector, ...]
    contactor: Contactor
    plug: PlugSensor
    indicator: Indicator
    lock: Lock | None = None
    meter: Meter | None = None
    token_reader: TokenReader | None = None
    lock_when_reserved: bool = True
    meter_fault_state: ConnectorState = ConnectorState.FAULTED
    pilot: PilotHardware | None = None  # the control pilot; with one, ``plug`` is its PilotPlug


@dataclass(frozen=True, slots=True)
class RuntimeSettings:
    """Site-wide timing and thresholds (A, s)."""

    current_threshold_a: float = 0.5
    fault_hold_s: float = 5.0
    authorize_timeout_s: float = 60.0


@dataclass
class EvseRecord:
    """Everything the runtime holds about one EVSE: its drivers, model, session, last readings and outputs."""

    hw: EvseHardware
    model: EvseModel
    session: ChargingSession
    enabled: bool = True
    current_limit_a: float | None = None  # operator/evcc limit (A); 0 pauses, others cap the pilot's offer
    charging_allowed: bool = True  # False pauses charging (energy manager): contactor open, session and lock kept
    profile_limit_a: float | None = None  # the CSMS's charging profile for this EVSE (A per phase)
    max_current_a: float | None = None  # the configured maximum (the pilot's max_current_a)
    cable_a: float | None = None  # the plugged cable's rating (PP), when the pilot reads one
    limit_a: float | None = None  # the limit in effect at the last evaluation (controller.runtime.limits)
    reservation_pending: int | None = None  # the authorized session's reservation, used once the cable is in (1.6)
    snapshot: MeterSnapshot | None = None
    state: EvseState | None = None
    outputs: Outputs | None = None
    published: dict[str, Any] = field(default_factory=dict)
    timer: asyncio.TimerHandle | None = None
    lock_task: asyncio.Task[Any] | None = None
    pending: bool = False
    closed_seen: bool = False  # the contactor was closed (command or aux) at some evaluation
    open_since: float | None = None  # when it was first seen open again (command and aux) after that

    @property
    def evse_id(self) -> int:
        """The EVSE's id, from its hardware."""
        return self.hw.evse_id


@dataclass
class RuntimeContext:
    """What the runtime's collaborators share: the EVSE records, core, settings, event hub, clocks and loop.

    ``loop`` is set when the runtime starts and ``stopping`` when it stops; every collaborator reads
    them here, so they change in one place.
    """

    evses: dict[int, EvseRecord]
    core: ReservationCore
    settings: RuntimeSettings
    events: EventHub
    wall: Callable[[], datetime]
    mono: Callable[[], float]
    loop: asyncio.AbstractEventLoop | None = None
    stopping: bool = False
    site_max_a: float | None = None  # [site] max_current_a: shared by the EVSEs (A per phase)
    station_profile_limit_a: float | None = None  # the CSMS's charging profile for the whole station
    read_meter_soon: Callable[[Meter], None] | None = None  # a reading out of turn (the unlock interlock waits)

    def evse(self, evse_id: int) -> EvseRecord:
        """The record of ``evse_id``; UnknownEvse (the API's 404) if it is not configured."""
        e = self.evses.get(evse_id)
        if e is None:
            raise UnknownEvse(evse_id)
        return e
