"""The bench interface every bench implements: ``BenchDriver``, and the faults a plant can play (``PlantFault``).

``SimBench`` (hil.sim_bench) runs the real controller in this process on mock pins, ``RealBench``
(hil.real_bench) is a harness Pi wired to a DUT Pi; both import this module, never each other, and
hil.runner picks one for a profile (``make_driver``). Scenarios never see the driver directly:
they use ``hil.harness.Bench``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from hil.dut_api import DutApi
from hil.profile import BenchProfile
from hil.timeline import Timeline

if TYPE_CHECKING:
    from drivers.sim.meter_server import SimulatedMeter
    from hil.csms import HarnessCsms


class PlantFault(StrEnum):
    """Faults the plant can play."""

    WELD = "weld"  # the main contacts weld: the aux contact stays closed whatever the coil does
    LOCK_JAM = "lock_jam"  # the lock motor turns, the bolt does not move
    METER_SILENT = "meter_silent"  # the meter stops answering
    METER_LATE = "meter_late"  # the meter answers later than the DUT waits
    METER_CRC = "meter_crc"  # the meter's answers arrive with a broken CRC
    DIODE_SHORT = "diode_short"  # control pilot: the car's diode is shorted (the low phase is not at -12 V)
    CP_SHORT = "cp_short"  # control pilot: CP shorted to PE (state E)
    OVERCURRENT_EV = "overcurrent_ev"  # control pilot: the car draws more than the PWM offers
    CLEAR = "clear"  # the plant is healthy again (a latched weld on the DUT stays: that needs an operator)


PILOT_FAULTS = frozenset({PlantFault.DIODE_SHORT, PlantFault.CP_SHORT, PlantFault.OVERCURRENT_EV})
"""Faults the car plays on a control pilot (a bench whose EVSE has CP wiring)."""


class BenchDriver(Protocol):
    """One bench. Each scenario runs between ``open`` and ``close``; the driver records every line.

    Line traces are keyed ``evse{N}.{role}`` (roles from hil.profile), the plant's meter current
    ``evse{N}.meter_current``; values are 0/1 for logic lines ("on" = 1, whatever the wire's
    polarity), the PWM duty for a dimmed status LED, amperes for the current. An EVSE with a control
    pilot also has ``evse{N}.pilot_duty`` (the DUT's PWM duty, %) and ``evse{N}.pilot_state`` (the state
    the car presents on CP, as hil.profile.CP_RANK), and its meter current is what the car draws.
    """

    profile: BenchProfile
    api: DutApi
    csms: HarnessCsms | None  # the harness's CSMS while a scenario that talks OCPP runs (profile [ocpp])

    async def open(self, timeline: Timeline, *, ocpp: bool = False) -> None:
        """Bring the DUT to a clean start (fresh on sim, reset on a real bench) and start recording.

        ``ocpp``: the scenario talks OCPP: ``csms`` listens and the DUT is connected to it (the sim bench starts
        the DUT's OCPP front pointed at it; a real DUT is configured to connect there by its operator).
        """
        ...

    async def close(self) -> None:
        """Stop recording and leave the bench safe (contactor open, plant healthy)."""
        ...

    async def restart_dut(self, down_s: float) -> None:
        """Power the DUT off for about ``down_s`` seconds and wait until its API answers again."""
        ...

    async def plug(self, evse_id: int) -> None:
        """The EV's plug goes in."""
        ...

    async def unplug(self, evse_id: int) -> None:
        """The EV's plug comes out."""
        ...

    async def bounce_plug(self, evse_id: int, plugged: bool, edges: int, interval_s: float) -> float:
        """The plug contact chatters ``edges`` times, ``interval_s`` apart, then settles; returns when it settled
        (monotonic seconds)."""
        ...

    async def fault(self, evse_id: int, kind: PlantFault, *, delay_s: float = 0.0) -> None:
        """Play a fault (``delay_s``: how late a late meter answers)."""
        ...

    def set_demand(self, evse_id: int, current_a: float) -> None:
        """The current the EV draws while the contacts are closed."""
        ...

    def set_car(self, evse_id: int, *, wants_charge: bool | None = None, full: bool | None = None,
                max_current_a: float | None = None) -> None:
        """The car on the EVSE's control pilot: it asks for energy or stops asking, its battery is full or takes
        energy again, the most it draws (None: unchanged). ValueError where the EVSE has no pilot."""
        ...

    def plant_meter(self, evse_id: int) -> SimulatedMeter | None:
        """The meter the plant plays for the EVSE (its energy register is the energy delivered), if any."""
        ...
