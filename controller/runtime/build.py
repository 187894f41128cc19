"""The composition root: a validated configuration becomes drivers, a core and a running Runtime.

The only place that picks implementations. Real pin factories are chosen by name and fail
closed (no silent fallback to another GPIO library); ``simulated = true`` builds the plant of
drivers/sim on MockFactory pins and serves simulated meters on loopback, with the same driver
classes on top.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from controller.config.model import ChargerConfig, EvseConfig, PinFactory, is_sim_meter_url
from controller.core.reservation import ReservationCore, utc_now
from controller.core.store import ReservationStore
from controller.core.types import ConnectorState
from controller.runtime.evse import EvseHardware, RuntimeSettings
from controller.runtime.pilot_build import build_pilot
from controller.runtime.runtime import Runtime
from controller.runtime.state_lock import StateDirLock
from drivers.bridge import LoopBridge
from drivers.gpio import GpioContactor, GpioIndicator, GpioLock, GpioPlugSensor
from drivers.meter import MeterPoller, ModbusMeter
from drivers.modbus_bus import BusConfig, ModbusBus
from drivers.rfid import SerialTokenReader

log = logging.getLogger(__name__)

STORE_NAME = "reservations.db"


class StartupError(RuntimeError):
    """The controller cannot start as configured; the message says why."""


@dataclass
class Built:
    """What ``build`` made: the runtime, the pin factory (tests drive its pins), the meter pollers and,
    for a simulated charger, the plant (drivers.sim.plant.SimPlant) that animates the pins."""

    runtime: Runtime
    pin_factory: Any
    pollers: list[MeterPoller] = field(default_factory=list)
    plant: Any = None

    async def start(self) -> None:
        """Start the runtime, then the meter polling that feeds it."""
        await self.runtime.start()
        for poller in self.pollers:
            poller.start()

    async def stop(self) -> None:
        """Stop the runtime (contactors open first); it closes pollers, drivers, buses and the store."""
        await self.runtime.stop()


def make_pin_factory(kind: PinFactory) -> Any:
    """A gpiozero pin factory by name; refuses to start rather than fall back to another backend."""
    try:
        if kind is PinFactory.MOCK:
            from gpiozero.pins.mock import MockFactory

            from drivers.sim.pin_history import CappedMockPWMPin

            return MockFactory(pin_class=CappedMockPWMPin)  # bounded pin.states: a long --sim stays flat
        if kind is PinFactory.LGPIO:
            from gpiozero.pins.lgpio import LGPIOFactory

            return LGPIOFactory()
        if kind is PinFactory.RPIGPIO:
            from gpiozero.pins.rpigpio import RPiGPIOFactory

            return RPiGPIOFactory()
        from gpiozero.pins.native import NativeFactory

        return NativeFactory()
    except Exception as exc:
        raise StartupError(
            f"pin factory {kind.value!r} is not usable here: {exc}. On a Raspberry Pi install the 'pi' extra "
            "(lgpio); to try the controller without hardware use `charger-controller run --sim`"
        ) from exc


async def build(
    config: ChargerConfig,
    *,
    state_dir: Path | None = None,
    wall_clock: Callable[[], datetime] = utc_now,
    mono_clock: Callable[[], float] = time.monotonic,
) -> Built:
    """Make every driver, the store, the core and the runtime (not yet started).

    First the state directory's lock (one controller per directory), then the store and the core, so a
    busy directory or a bad database stops the start before any pin is touched. If anything fails, what
    was already made is closed again before the error is raised, so the process can always exit.
    """
    directory = Path(state_dir if state_dir is not None else config.controller.state_dir)
    lock = StateDirLock(directory)
    lock.acquire()
    closers: list[Callable[[], Awaitable[None]]] = []
    store: ReservationStore | None = None
    factory: Any = None
    try:
        store = ReservationStore(directory / STORE_NAME)
        core = ReservationCore({e.id: list(e.connectors) for e in config.evses}, clock=wall_clock, store=store)
        for problem in core.startup_problems:
            log.error("%s", problem)
        factory = make_pin_factory(config.controller.pin_factory)
        return await _build_runtime(config, core, store, lock, factory, closers, wall_clock, mono_clock)
    except BaseException:
        await _close_partial(closers, factory, store, lock)
        raise


async def _close_partial(
    closers: list[Callable[[], Awaitable[None]]], factory: Any, store: ReservationStore | None, lock: StateDirLock
) -> None:
    """Undo a failed build: drivers and plant closed (newest first), pin factory, store, then the lock."""
    for closer in reversed(closers):
        try:
            await closer()
        except Exception:
            log.exception("error while closing after a failed start")
    if factory is not None:
        with contextlib.suppress(Exception):
            factory.close()
    if store is not None:
        store.close()
    lock.release()


async def _build_runtime(
    config: ChargerConfig,
    core: ReservationCore,
    store: ReservationStore,
    lock: StateDirLock,
    factory: Any,
    closers: list[Callable[[], Awaitable[None]]],
    wall_clock: Callable[[], datetime],
    mono_clock: Callable[[], float],
) -> Built:
    """The drivers (and the simulated plant), the meter pollers and the runtime around ``core``."""
    bridge = LoopBridge.current()
    plant = None
    buses: dict[str, BusConfig] = {bus.name: bus for bus in config.meter_buses}
    if config.controller.simulated:
        plant, buses = await _build_plant(config, factory, buses, closers, mono_clock)

    modbus: dict[str, ModbusBus] = {}
    for name, bus_config in buses.items():
        modbus[name] = ModbusBus(bus_config, clock=mono_clock)
        closers.append(modbus[name].aclose)

    hardware: list[EvseHardware] = []
    meters_by_bus: dict[str, list[tuple[ModbusMeter, float]]] = {}
    meter_evse: dict[str, int] = {}
    for evse in config.evses:
        hw, meter = _build_evse(evse, factory, bridge, modbus, mono_clock, closers)
        hw.pilot = build_pilot(evse, factory, plant, closers, mono_clock)
        if hw.pilot is not None:
            hw.plug = hw.pilot.plug  # with a pilot, plugged is B, C or D
        hardware.append(hw)
        if meter is not None and evse.meter is not None:
            meters_by_bus.setdefault(evse.meter.bus, []).append((meter, evse.meter.poll_interval_s))
            meter_evse[meter.name] = evse.id

    settings = RuntimeSettings(
        current_threshold_a=config.controller.current_threshold_a,
        fault_hold_s=config.controller.fault_hold_s,
        authorize_timeout_s=config.controller.authorize_timeout_s,
    )
    pollers: list[MeterPoller] = []
    runtime_ref: list[Runtime] = []

    def on_result(meter: ModbusMeter, result: Any) -> None:
        if runtime_ref:
            runtime_ref[0].on_meter_result(meter_evse[meter.name], result)

    poller_of: dict[int, tuple[MeterPoller, ModbusMeter]] = {}  # id(meter) -> its poller
    for entries in meters_by_bus.values():
        interval = min(interval for _meter, interval in entries)
        pollers.append(MeterPoller([m for m, _ in entries], on_result, interval_s=interval))
        poller_of.update((id(m), (pollers[-1], m)) for m, _ in entries)

    def read_meter_soon(meter: Any) -> None:
        found = poller_of.get(id(meter))
        if found is not None:
            found[0].read_soon(found[1])

    async def stop_pollers() -> None:
        for poller in pollers:
            await poller.stop()

    async def close_store() -> None:
        store.close()
        lock.release()

    # closers run in order after the runtime opened the contactors: pollers, drivers, buses, plant, store, lock
    ordered = [stop_pollers, *reversed(closers), close_store]
    runtime = Runtime(
        hardware,
        core,
        settings=settings,
        wall_clock=wall_clock,
        mono_clock=mono_clock,
        sim=plant,
        on_stop=ordered,
        read_meter_soon=read_meter_soon,
    )
    runtime_ref.append(runtime)
    return Built(runtime, factory, pollers, plant)


async def _build_plant(
    config: ChargerConfig,
    factory: Any,
    buses: dict[str, BusConfig],
    closers: list[Callable[[], Awaitable[None]]],
    clock: Callable[[], float],
) -> tuple[Any, dict[str, BusConfig]]:
    """The simulated plant: mechanisms on the pins, and a meter server for each simulated bus."""
    from drivers.sim.meter_server import SimTransport, SimulatedMeter, SimulatedMeterServer
    from drivers.sim.plant import SimPlant

    sim_meters: dict[str, list[SimulatedMeter]] = {}
    meter_of: dict[int, SimulatedMeter] = {}
    for evse in config.evses:
        if evse.meter is not None and is_sim_meter_url(buses[evse.meter.bus].target):
            sim = SimulatedMeter(evse.meter.meter_map, evse.meter.unit_id, clock=clock)
            sim_meters.setdefault(evse.meter.bus, []).append(sim)
            meter_of[evse.id] = sim
    servers: dict[str, SimulatedMeterServer] = {}
    for name, meters in sim_meters.items():
        servers[name] = SimulatedMeterServer(meters, SimTransport.RTU_SOCKET)
    if len(servers) > 1:
        raise StartupError("the simulated plant supports one simulated meter bus")
    server = next(iter(servers.values()), None)
    plant = SimPlant(factory, server, clock=clock)
    for evse in config.evses:
        plant.add_evse(evse.id, evse.contactor, evse.plug, evse.lock, meter_of.get(evse.id))
    await plant.start()
    closers.append(plant.stop)
    out = dict(buses)
    for name, srv in servers.items():
        out[name] = srv.bus_config(name, timing=buses[name].timing)
    return plant, out


def _build_evse(
    evse: EvseConfig,
    factory: Any,
    bridge: LoopBridge,
    modbus: dict[str, ModbusBus],
    clock: Callable[[], float],
    closers: list[Callable[[], Awaitable[None]]],
) -> tuple[EvseHardware, ModbusMeter | None]:
    contactor = GpioContactor(evse.contactor, bridge=bridge, pin_factory=factory, clock=clock)
    closers.append(contactor.aclose)
    plug = GpioPlugSensor(evse.plug, bridge=bridge, pin_factory=factory, clock=clock)
    closers.append(plug.aclose)
    indicator = GpioIndicator(evse.indicator, bridge=bridge, pin_factory=factory, clock=clock)
    closers.append(indicator.aclose)
    lock = None
    if evse.lock is not None:
        lock = GpioLock(evse.lock, bridge=bridge, pin_factory=factory, clock=clock)
        closers.append(lock.aclose)
    meter = None
    if evse.meter is not None:
        meter = ModbusMeter(
            f"evse{evse.id}",
            modbus[evse.meter.bus],
            evse.meter.meter_map,
            evse.meter.unit_id,
            stale_after_s=evse.meter.stale_after_s,
            clock=clock,
        )
    reader = None
    if evse.rfid is not None:
        reader = SerialTokenReader(
            evse.rfid.port, bridge, baudrate=evse.rfid.baudrate, repeat_suppress_s=evse.rfid.repeat_suppress_s
        )
        closers.append(reader.aclose)
    hw = EvseHardware(
        evse_id=evse.id,
        connectors=evse.connectors,
        contactor=contactor,
        plug=plug,
        indicator=indicator,
        lock=lock,
        meter=meter,
        token_reader=reader,
        lock_when_reserved=evse.lock_when_reserved,
        meter_fault_state=evse.meter.fault_state if evse.meter is not None else ConnectorState.FAULTED,
    )
    return hw, meter
