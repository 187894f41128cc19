"""A real bench: this program runs on a harness Pi whose GPIO pins are wired to the DUT Pi's pins.

The harness plays the plant on its pins (hil.plant), serves the meters on its RS-485 adapter or
over TCP (hil.meter_link), talks to the DUT over its HTTP API, and restarts the DUT with the
profile's ``restart_command``. With an ``[ocpp]`` table the harness also runs the DUT's CSMS
(hil.csms) from the first scenario on, so the DUT, configured to connect there, stays online for
every theme. An EVSE with ``[evses.pilot]`` has its car played on CP (hil.harness_car); where its
duty comes from the DUT's /status, the bench polls it every ``STATUS_POLL_S`` while a scenario runs.
Pins come from lgpio by name; lgpio is imported only when a real bench is opened, so this module
imports anywhere.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import TYPE_CHECKING, Any

from hil.bench import PILOT_FAULTS, PlantFault
from hil.dut_api import DutApi
from hil.harness_car import HarnessCar, StatusDuty
from hil.meter_link import MeterLinkServer, harness_meters
from hil.plant import HarnessEvse, HarnessPlant
from hil.profile import CP_RANK, ROLE_LABELS, BenchProfile
from hil.timeline import Timeline

if TYPE_CHECKING:
    from drivers.sim.meter_server import SimulatedMeter
    from hil.csms import HarnessCsms

log = logging.getLogger(__name__)

STATUS_POLL_S = 0.05  # how often the DUT's /status duty is read for a pilot wired with duty = "status"


class RealBenchError(RuntimeError):
    """The bench cannot be used as configured (no lgpio, DUT not reachable, restart failed)."""


def lgpio_factory() -> Any:
    """gpiozero's lgpio pin factory; a clear error where lgpio is missing (not a Pi, or no 'pi' extra)."""
    try:
        from gpiozero.pins.lgpio import LGPIOFactory

        return LGPIOFactory()
    except Exception as exc:
        raise RealBenchError(
            f"a real bench needs lgpio on the harness Pi (pip install 'charger-controller[pi]'): {exc}"
        ) from exc


class RealBench:
    """Implements hil.bench.BenchDriver on harness GPIO pins (lgpio, or any gpiozero factory given)."""

    def __init__(self, profile: BenchProfile, *, pin_factory: Any = None) -> None:
        if profile.kind != "real":
            raise ValueError(f"{profile.source}: RealBench needs a real profile")
        self.profile = profile
        token = os.environ.get(profile.dut.access_token_env) or None
        self.api = DutApi(profile.dut.api, token)
        self._factory = pin_factory
        self._plant: HarnessPlant | None = None
        self._meters: MeterLinkServer | None = None
        self._timeline: Timeline | None = None
        self._duty_poll: asyncio.Task[None] | None = None
        self.csms: HarnessCsms | None = None

    # ------------------------------------------------------------ lifecycle

    async def open(self, timeline: Timeline, *, ocpp: bool = False) -> None:
        """Start the plant, meters and CSMS (first time), then reset the DUT to a clean state; with ``ocpp``, wait
        until the DUT is connected to the harness's CSMS."""
        self._timeline = timeline
        for evse in self.profile.evses:
            timeline.palettes[evse.evse_id] = self.profile.timing(evse.evse_id).status_colors
            for role, spec in evse.lines.items():
                timeline.trace(f"evse{evse.evse_id}.{role}", evse_id=evse.evse_id, role=role,
                               label=ROLE_LABELS[role], kind="observed" if spec.observed else "driven")
            timeline.trace(f"evse{evse.evse_id}.meter_current", evse_id=evse.evse_id, role="meter_current",
                           label=ROLE_LABELS["meter_current"], kind="plant", unit="A")
            if evse.pilot is not None:
                timeline.trace(f"evse{evse.evse_id}.pilot_duty", evse_id=evse.evse_id, role="pilot_duty",
                               label=ROLE_LABELS["pilot_duty"], kind="observed", unit="%")
                timeline.trace(f"evse{evse.evse_id}.pilot_state", evse_id=evse.evse_id, role="pilot_state",
                               label=ROLE_LABELS["pilot_state"], kind="driven", unit="state")
        if self._plant is None:
            await self._start_hardware()
        assert self._plant is not None
        for harness in self._plant.evses.values():  # the lines as they are now start every trace
            for role in [*harness.watched, *harness.driven]:
                timeline.record(f"evse{harness.evse_id}.{role}", timeline.now(), 1.0 if harness.level(role) else 0.0)
            if harness.car is not None:
                timeline.record(f"evse{harness.evse_id}.pilot_duty", timeline.now(), harness.car.duty)
                if harness.car.state:
                    timeline.record(f"evse{harness.evse_id}.pilot_state", timeline.now(),
                                    float(CP_RANK[harness.car.state]))
            harness.update_load()
        if any(isinstance(h.car.duty_reader, StatusDuty) for h in self._plant.evses.values() if h.car is not None):
            self._duty_poll = asyncio.ensure_future(self._poll_duty())
        await self._reset_dut()
        if ocpp:
            await self._dut_connected()

    async def _dut_connected(self) -> None:
        """The CSMS listens (again, after a scenario's outage) and the DUT is connected to it; records start anew."""
        link, csms = self.profile.ocpp, self.csms
        if link is None or csms is None:
            raise RealBenchError(f"{self.profile.source}: the profile has no [ocpp] table: no CSMS for the DUT")
        await csms.start()
        csms.forget()
        try:
            await asyncio.wait_for(csms.connected.wait(), link.connect_timeout_s)
        except TimeoutError:
            raise RealBenchError(
                f"the DUT did not connect to the harness's CSMS on {link.listen} (path {link.path}) within "
                f"{link.connect_timeout_s:g} s: check the url of its [ocpp] section and the network") from None

    async def _start_hardware(self) -> None:
        loop = asyncio.get_running_loop()
        factory = self._factory if self._factory is not None else lgpio_factory()
        meters = harness_meters(self.profile)
        if meters and self.profile.meter is not None:
            self._meters = MeterLinkServer(self.profile.meter, list(meters.values()))
            await self._meters.start()
        self._plant = HarnessPlant(self.profile, factory, loop, self._line_changed, meters)
        link = self.profile.ocpp
        if link is not None:
            from hil.csms import HarnessCsms
            from hil.ocpp_dialect import connector_numbers

            self.csms = await HarnessCsms(link.host, link.port, link.path, version=link.version,
                                          connectors=connector_numbers(self.profile.dut_config)).start()

    def _line_changed(self, evse_id: int, role: str, t: float, value: float) -> None:
        timeline = self._timeline
        key = f"evse{evse_id}.{role}"
        if timeline is not None and key in timeline.traces:
            timeline.record(key, timeline.rel(t), value)

    async def _reset_dut(self) -> None:
        """A clean start: plant healthy, no car, no reservation; a DUT with a fault or a session is restarted."""
        assert self._plant is not None
        self._clear_plant_faults(reset_cars=True)
        await self.api.wait_ready(self.profile.dut.ready_timeout_s)
        status = await self.api.status()
        busy = [e for e in status["evses"] if e.get("faults") or e.get("phase", "idle") != "idle"]
        for evse in self._plant.evses.values():
            evse.plug(False)
        if busy and self.profile.dut.restart_command:
            await self.restart_dut(0.5)
        elif busy:
            ids = [e["id"] for e in busy]
            raise RealBenchError(f"the DUT is not idle (EVSEs {ids}) and the profile has no restart_command")
        for reservation in await self.api.reservations():
            await self.api.cancel(int(reservation["reservation_id"]))

    async def _poll_duty(self) -> None:
        """Hand the DUT's reported PWM duty to each car whose duty comes from /status."""
        assert self._plant is not None
        readers = {i: h.car.duty_reader for i, h in self._plant.evses.items() if h.car is not None}
        while True:
            try:
                for entry in (await self.api.status())["evses"]:
                    reader, pilot = readers.get(entry.get("id")), entry.get("pilot")
                    if isinstance(reader, StatusDuty) and isinstance(pilot, dict):
                        reader.value = float(pilot["duty_percent"])
            except Exception as exc:  # the DUT restarting: the cars keep the last duty meanwhile
                log.debug("reading the DUT's duty failed: %s", exc)
            await asyncio.sleep(STATUS_POLL_S)

    def _clear_plant_faults(self, *, reset_cars: bool = False) -> None:
        """The plant healthy again; ``reset_cars``: the cars also want energy again, not full, at their maximum (as a
        scenario starts, not when it clears its faults)."""
        assert self._plant is not None
        for evse in self._plant.evses.values():
            evse.clear()
            if reset_cars and evse.car is not None:
                evse.car.reset(time.monotonic())
        if self._meters is not None:
            self._meters.server.clear_wire_fault()

    async def close(self) -> None:
        """Leave the plant healthy (the next scenario resets the DUT); hardware stays open until ``shutdown``."""
        if self._duty_poll is not None:
            self._duty_poll.cancel()
            await asyncio.gather(self._duty_poll, return_exceptions=True)
            self._duty_poll = None
        if self._plant is not None:
            self._clear_plant_faults(reset_cars=True)
        self._timeline = None

    async def shutdown(self) -> None:
        """Release the harness pins and stop serving the meters."""
        if self._plant is not None:
            self._plant.close()
            self._plant = None
        if self._meters is not None:
            await self._meters.stop()
            self._meters = None
        if self.csms is not None:
            await self.csms.stop()
            self.csms = None

    async def restart_dut(self, down_s: float) -> None:
        """Run the profile's restart command (e.g. a relay in the DUT's supply, or systemctl over ssh)."""
        command = self.profile.dut.restart_command
        if not command:
            raise RealBenchError("the profile has no [dut] restart_command")
        process = await asyncio.create_subprocess_exec(*command)
        if await process.wait() != 0:
            raise RealBenchError(f"restart command {' '.join(command)!r} failed with status {process.returncode}")
        await asyncio.sleep(down_s)
        await self.api.wait_ready(self.profile.dut.ready_timeout_s)

    # ------------------------------------------------------------ plant

    def _evse(self, evse_id: int) -> HarnessEvse:
        if self._plant is None:
            raise RealBenchError("the bench is not open")
        return self._plant.evse(evse_id)

    def _car(self, evse_id: int) -> HarnessCar:
        """The car on the EVSE's control pilot; RealBenchError where none is wired."""
        car = self._evse(evse_id).car
        if car is None:
            raise RealBenchError(f"EVSE {evse_id} has no control pilot wired ([evses.pilot])")
        return car

    async def plug(self, evse_id: int) -> None:
        self._evse(evse_id).plug(True)

    async def unplug(self, evse_id: int) -> None:
        self._evse(evse_id).plug(False)

    async def bounce_plug(self, evse_id: int, plugged: bool, edges: int, interval_s: float) -> float:
        evse = self._evse(evse_id)
        for i in range(edges):
            evse.plug(plugged if (edges - i) % 2 == 0 else not plugged)
            await asyncio.sleep(interval_s)
        settled = time.monotonic()
        evse.plug(plugged)
        return settled

    async def fault(self, evse_id: int, kind: PlantFault, *, delay_s: float = 0.0) -> None:
        evse = self._evse(evse_id)
        if kind is PlantFault.WELD:
            evse.weld()
        elif kind is PlantFault.LOCK_JAM:
            evse.jam()
        elif kind is PlantFault.CLEAR:
            self._clear_plant_faults()
        elif kind in PILOT_FAULTS:
            self._car(evse_id).fault(kind.value, time.monotonic())
        else:
            if self._meters is None or evse.meter is None:
                raise RealBenchError(f"EVSE {evse_id} has no harness meter")
            units = [evse.meter.unit_id]
            server = self._meters.server
            if kind is PlantFault.METER_SILENT:
                server.go_silent(units)
            elif kind is PlantFault.METER_LATE:
                server.answer_late(delay_s, units)
            else:
                server.corrupt_crc(units)

    def set_demand(self, evse_id: int, current_a: float) -> None:
        """The current the EV draws; on a control pilot the car's maximum (it draws min(offered, this))."""
        evse = self._evse(evse_id)
        evse.charging_current_a = current_a
        if evse.car is not None:
            evse.car.set(wants_charge=None, full=None, max_current_a=current_a)
        evse.update_load()

    def set_car(self, evse_id: int, *, wants_charge: bool | None = None, full: bool | None = None,
                max_current_a: float | None = None) -> None:
        """Drive the car the harness plays on the EVSE's CP."""
        self._car(evse_id).set(wants_charge=wants_charge, full=full, max_current_a=max_current_a)

    def plant_meter(self, evse_id: int) -> SimulatedMeter | None:
        """The meter the harness serves for the EVSE."""
        meter: SimulatedMeter | None = self._evse(evse_id).meter
        return meter
