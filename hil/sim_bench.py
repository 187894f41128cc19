"""The simulated bench: the real controller (DUT) in this process on MockFactory pins and simulated meters.

The DUT is ``controller.runtime.build.build`` on the profile's DUT configuration, with its HTTP API served on
127.0.0.1 so scenarios talk to it exactly as on a real bench; a scenario that talks OCPP gets the harness's CSMS
(hil.csms, on the profile's ``[ocpp] listen`` address) and a DUT whose OCPP front is started pointed at it, after
its API as the daemon does. The plant is the one the sim build
wires to the DUT's pins (drivers.sim: contactor aux after a delay, lock switch after the travel,
the plug, meters on a Modbus server). The harness reads every line from the pins' own state
histories (``drivers.sim.pins.read_changes``), so edge times are exact whatever the polling rate. With the
profile's ``[dut] pilots`` the DUT keeps its control pilots and the harness drives and records each CP's car
(hil.sim_pilot).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from controller.api.app import create_app
from controller.api.server import ApiServer
from controller.runtime.build import Built, build
from drivers.sim.pin_history import change_count, read_changes
from drivers.sim.plant import SimPlant
from hil.bench import PlantFault
from hil.dut_api import DutApi
from hil.profile import ROLE_LABELS, SIM_RECONNECT_S, BenchProfile, LineSpec
from hil.sim_pilot import SimPilotProbe, set_car
from hil.timeline import Timeline

if TYPE_CHECKING:
    from controller.ocpp.front import OcppFront
    from drivers.sim.meter_server import SimulatedMeter
    from hil.csms import HarnessCsms

log = logging.getLogger(__name__)

POLL_S = 0.005


class MockLineProbe:
    """Reads one mock pin's state history incrementally, with each change's monotonic time.

    The pins keep a bounded history (drivers.sim.pins.CappedMockPWMPin): the probe reads on from the
    sequence number it got to, so it sees every change as long as it polls before HISTORY_CAP more
    happen; changes dropped before it read them are counted in ``lost`` and logged.
    """

    def __init__(self, pin: Any, spec: LineSpec) -> None:
        self.pin = pin
        self.spec = spec
        self.lost = 0
        attached = read_changes(pin, change_count(pin) - 1)  # the present state (and any change since)
        latest = attached.changes[-1]
        self._next = attached.next_seq
        self._t = latest.time
        self._value = self.level(latest.state)

    def level(self, raw: Any) -> float:
        """Electrical state as "on" level: 1.0 on, 0.0 off; a PWM duty for dimmed LEDs."""
        value = float(raw)
        return value if self.spec.active_high else 1.0 - value

    def initial(self) -> tuple[float, float]:
        """(monotonic time, value) the pin has as the probe attaches."""
        return self._t, self._value

    def poll(self) -> list[tuple[float, float]]:
        """Changes since the last poll, as (monotonic time, value)."""
        read = read_changes(self.pin, self._next)
        self._next = read.next_seq
        if read.lost:
            self.lost += read.lost
            log.warning("%s line (%s): %d changes dropped from its history before they were read", self.spec.role,
                        self.spec.harness, read.lost)
        return [(change.time, self.level(change.state)) for change in read.changes]


class SimBench:
    """Implements hil.bench.BenchDriver with the DUT and its plant in this process."""

    def __init__(self, profile: BenchProfile) -> None:
        if profile.kind != "sim":
            raise ValueError(f"{profile.source}: SimBench needs a sim profile")
        self.profile = profile
        self.api = DutApi("http://127.0.0.1:0")
        self.csms: HarnessCsms | None = None
        self.built: Built | None = None
        self._front: OcppFront | None = None
        self._server: ApiServer | None = None
        self._serving: asyncio.Task[None] | None = None
        self._state_dir: Path | None = None
        self._timeline: Timeline | None = None
        self._probes: list[tuple[str, MockLineProbe]] = []
        self._pilots: dict[int, SimPilotProbe] = {}
        self._recorder: asyncio.Task[None] | None = None
        self._port = 0

    # ------------------------------------------------------------ lifecycle

    async def open(self, timeline: Timeline, *, ocpp: bool = False) -> None:
        """A fresh DUT (empty reservation store) on fresh pins, its API on a free local port; with ``ocpp`` the
        harness's CSMS listens first and the DUT's OCPP front connects to it."""
        self._timeline = timeline
        for evse in self.profile.evses:
            timeline.palettes[evse.evse_id] = self.profile.timing(evse.evse_id).status_colors
        self._state_dir = Path(tempfile.mkdtemp(prefix="hil-dut-"))
        self._port = 0
        if ocpp:
            link = self.profile.ocpp
            if link is None:
                raise ValueError(f"{self.profile.source}: the profile has no [ocpp] table: no CSMS to connect to")
            from hil.csms import HarnessCsms
            from hil.ocpp_dialect import connector_numbers

            self.csms = await HarnessCsms(link.host, link.port, link.path, version=link.version,
                                          connectors=connector_numbers(self.profile.dut_config)).start()
        await self._power_on()
        self._recorder = asyncio.ensure_future(self._record())

    async def close(self) -> None:
        """Stop recording, then the DUT (contactors open first) and its API."""
        if self._recorder is not None:
            self._recorder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._recorder
            self._recorder = None
        self._poll()
        self._detach_pilots()  # the pins' shutdown is not part of the scenario
        self._probes = []
        await self._power_off()
        if self.csms is not None:
            await self.csms.stop()
            self.csms = None
        if self._state_dir is not None:
            shutil.rmtree(self._state_dir, ignore_errors=True)
            self._state_dir = None

    async def restart_dut(self, down_s: float) -> None:
        """Power-cycle the DUT; its reservation store survives, the plug and lock keep their positions."""
        plant = self.plant
        plugged = {i: sim.plugged for i, sim in plant.evses.items()}
        locked = {i: sim.lock.locked for i, sim in plant.evses.items() if sim.lock is not None}
        self._poll()
        self._dark()
        self._detach_pilots()
        self._probes = []
        await self._power_off()
        await asyncio.sleep(down_s)
        await self._power_on(plugged=plugged, locked=locked)

    def _dark(self) -> None:
        """Without power the DUT drives nothing: its outputs read off, the contacts open, no current flows."""
        timeline = self._timeline
        assert timeline is not None
        now = timeline.now()
        for key, probe in self._probes:
            if probe.spec.observed or probe.spec.role == "contactor_aux":
                timeline.record(key, now, 0.0)
        for evse in self.profile.evses:
            timeline.record(f"evse{evse.evse_id}.meter_current", now, 0.0)
        for pilot in self._pilots.values():
            pilot.dark(now)

    def _detach_pilots(self) -> None:
        """Stop recording the control pilots (the DUT goes, or its pins are attached anew)."""
        for pilot in self._pilots.values():
            pilot.detach()
        self._pilots = {}

    async def _power_on(self, plugged: dict[int, bool] | None = None, locked: dict[int, bool] | None = None) -> None:
        assert self._state_dir is not None
        built = await build(self.profile.dut_config, state_dir=self._state_dir)
        self.built = built
        plant = _plant_of(built)
        for evse_id, sim in plant.evses.items():  # the world outside the DUT did not reboot with it
            if locked and locked.get(evse_id) and sim.lock is not None:
                sim.lock.force(True)
            if plugged and plugged.get(evse_id):
                await plant.plug(evse_id)
            sim.charging_current_a = self.profile.plant.charging_current_a
            if sim.pilot is not None:
                sim.pilot.car.profile.max_current_a = self.profile.plant.car_max_current_a
        self._attach(built)  # after the plant took its positions: their re-creation is no line change
        await built.start()
        app = create_app(built.runtime)
        server = ApiServer(app, "127.0.0.1", self._port)
        self._port = server.port  # a restart serves on the same port, as a real DUT keeps its address
        self._server = server
        self._serving = await server.start()
        self.api.base_url = server.url
        if self.csms is not None:
            await self._start_ocpp(built, self.csms)

    async def _start_ocpp(self, built: Built, csms: HarnessCsms) -> None:
        """The DUT's OCPP front, as ``[ocpp] url = csms.url`` would start it, in the profile's OCPP version (fast
        reconnects, see SIM_RECONNECT_S)."""
        from controller.config.ocpp_model import OcppConfig
        from controller.ocpp.front import OcppFront

        link = self.profile.ocpp
        assert self._state_dir is not None and link is not None
        config = OcppConfig(url=csms.url, host=csms.url_host, port=csms.port, tls=False,
                            station_id=link.station_id, version=link.version, reservations=True,
                            non_evse_specific_reservations=True, security_profile=0, password=None, ca_file=None,
                            reconnect_min_s=SIM_RECONNECT_S[0], reconnect_max_s=SIM_RECONNECT_S[1])
        front = OcppFront(built.runtime, config, self._state_dir)
        await front.start()
        self._front = front

    async def _power_off(self) -> None:
        if self._server is not None:
            self._server.stop()
            if self._serving is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await self._serving
            self._server = self._serving = None
        if self._front is not None:
            await self._front.stop()
            self._front = None
        if self.built is not None:
            await self.built.stop()
            self.built = None

    # ------------------------------------------------------------ recording

    def _attach(self, built: Built) -> None:
        timeline = self._timeline
        assert timeline is not None
        self._poll()
        self._detach_pilots()
        self._probes = []
        for evse in self.profile.evses:
            for role, spec in evse.lines.items():
                key = f"evse{evse.evse_id}.{role}"
                timeline.trace(
                    key,
                    evse_id=evse.evse_id,
                    role=role,
                    label=ROLE_LABELS[role],
                    kind="observed" if spec.observed else "driven",
                )
                probe = MockLineProbe(built.pin_factory.pin(spec.harness), spec)
                _, value = probe.initial()
                timeline.record(key, timeline.now(), value)
                self._probes.append((key, probe))
            timeline.trace(
                f"evse{evse.evse_id}.meter_current",
                evse_id=evse.evse_id,
                role="meter_current",
                label="EV current (meter)",
                kind="plant",
                unit="A",
            )
            line = _plant_of(built).evses[evse.evse_id].pilot
            if evse.pilot is not None and line is not None:
                pin = built.pin_factory.pin(evse.pilot.pwm_pin)
                self._pilots[evse.evse_id] = SimPilotProbe(timeline, evse.evse_id, evse.pilot, pin, line)
        self._poll()

    def _poll(self) -> None:
        timeline = self._timeline
        if timeline is None:
            return
        for key, probe in self._probes:
            for t, value in probe.poll():
                timeline.record(key, timeline.rel(t), value)
        for pilot in self._pilots.values():
            pilot.poll()  # the car's current too
        if self.built is not None:
            now = timeline.now()
            for evse_id, sim in _plant_of(self.built).evses.items():
                key = f"evse{evse_id}.meter_current"
                if key in timeline.traces and evse_id not in self._pilots:
                    flowing = sim.contactor.contacts_closed and sim.plugged
                    timeline.record(key, now, sim.charging_current_a if flowing else 0.0)

    async def _record(self) -> None:
        while True:
            self._poll()
            await asyncio.sleep(POLL_S)

    # ------------------------------------------------------------ plant

    @property
    def plant(self) -> SimPlant:
        """The running DUT's simulated plant."""
        if self.built is None:
            raise RuntimeError("the DUT is off")
        return _plant_of(self.built)

    async def plug(self, evse_id: int) -> None:
        await self.plant.plug(evse_id)

    async def unplug(self, evse_id: int) -> None:
        await self.plant.unplug(evse_id)

    async def bounce_plug(self, evse_id: int, plugged: bool, edges: int, interval_s: float) -> float:
        plant = self.plant
        sim = plant.evses[evse_id]
        settled = await asyncio.to_thread(sim.plug.bounce, plugged, edges, interval_s)
        sim.plugged = plugged
        plant.tick()
        return settled

    async def fault(self, evse_id: int, kind: PlantFault, *, delay_s: float = 0.0) -> None:
        plant = self.plant
        sim = plant.evses[evse_id]
        if kind in (PlantFault.METER_LATE, PlantFault.METER_CRC):
            if plant.server is None or sim.meter is None:
                raise ValueError(f"EVSE {evse_id} has no simulated meter")
            if kind is PlantFault.METER_LATE:
                plant.server.answer_late(delay_s, [sim.meter.unit_id])
            else:
                plant.server.corrupt_crc([sim.meter.unit_id])
            return
        await plant.fault(evse_id, kind.value)

    def set_demand(self, evse_id: int, current_a: float) -> None:
        """The current the EV draws; on a control pilot the car's maximum (it draws min(offered, this))."""
        plant = self.plant
        sim = plant.evses[evse_id]
        sim.charging_current_a = current_a
        if sim.pilot is not None:
            set_car(sim.pilot, wants_charge=None, full=None, max_current_a=current_a)
        plant.tick()

    def set_car(self, evse_id: int, *, wants_charge: bool | None = None, full: bool | None = None,
                max_current_a: float | None = None) -> None:
        """Drive the simulated car on the EVSE's CP."""
        plant = self.plant
        line = plant.evses[evse_id].pilot
        if line is None:
            raise ValueError(f"EVSE {evse_id} has no control pilot")
        set_car(line, wants_charge=wants_charge, full=full, max_current_a=max_current_a)
        plant.tick()

    def plant_meter(self, evse_id: int) -> SimulatedMeter | None:
        """The EVSE's simulated meter (the one the DUT reads over Modbus)."""
        sim = self.plant.evses.get(evse_id)
        return None if sim is None else sim.meter


def _plant_of(built: Built) -> SimPlant:
    """The sim build's plant."""
    plant = built.plant
    if not isinstance(plant, SimPlant):
        raise RuntimeError("the DUT configuration is not simulated (controller.simulated = false)")
    return plant

