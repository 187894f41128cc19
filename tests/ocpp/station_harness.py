"""The simulated charger of ``run --sim`` with its OCPP front, in-process, against a test CSMS.

``OcppStation`` builds the real runtime on the embedded sim configuration (a fresh state directory), starts the
OCPP front towards a CSMS of tests/ocpp/csms.py, and offers what a test needs: the runtime (the port), the sim
plant (plug, unplug), the reserved LED pins, and waiting on conditions with a timeout (no sleeps as assertions).
``clock`` gives the station a StationClock of the test's making (e.g. one whose system clock is not synchronized).
The helpers below say in one place what many tests say: an OCPP time ``seconds`` from now, a StatusNotification
predicate, a SetVariables of (component, variable, value) triples, and waiting for the boot and first statuses.
OCPP 1.6: ``ocpp_config(url, version="1.6")`` starts the 1.6 layer; ``status16`` and ``booted16`` are its
StatusNotification predicate and boot wait (connectorIds 0, 1 and 2).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from waiting import until

import controller.ocpp.front as front_module
from controller.config.loader import ChargerConfig, load_sim_default
from controller.config.ocpp_model import OcppConfig
from controller.ocpp.front import OcppFront
from controller.ocpp.station.clock import StationClock
from controller.ocpp.v16.station import Station16
from controller.ocpp.v201.station import Station201
from controller.runtime.build import Built, build

from .csms import Csms

RESERVED_LED = {1: "GPIO24", 2: "GPIO18"}  # controller/config/sim_default.toml


def ocpp_config(url: str, station_id: str = "CS001", **changes: Any) -> OcppConfig:
    """An [ocpp] section for a test CSMS at ``url`` (fast reconnects)."""
    config = OcppConfig(url=url, host="127.0.0.1", port=0, tls=url.startswith("wss"), station_id=station_id,
                        version="2.0.1", reservations=True, non_evse_specific_reservations=True,
                        security_profile=0, password=None, ca_file=None, reconnect_min_s=0.05, reconnect_max_s=0.5)
    return dataclasses.replace(config, **changes)


class OcppStation:
    """The sim charger and its OCPP station, started on ``state_dir``."""

    def __init__(self, state_dir: Path, config: OcppConfig, *, clock: StationClock | None = None,
                 charger: ChargerConfig | None = None) -> None:
        """``clock``: the station's clock (default: the real one, which asks the kernel whether it is synchronized);
        ``charger``: the charger's configuration (default: the simulated charger's)."""
        self.state_dir = state_dir
        self.config = config
        self.charger = charger
        self.clock = clock
        self.built: Built | None = None
        self.front: OcppFront | None = None
        self.resets = 0

    async def start(self) -> OcppStation:
        """Build the controller, start it, then the OCPP front."""
        self.built = await build(self.charger or load_sim_default(), state_dir=self.state_dir)
        await self.built.start()
        self.front = OcppFront(self.built.runtime, self.config, self.state_dir, on_reset=self._reset)
        if self.clock is None:
            await self.front.start()
            return self
        clock = self.clock

        class _WithClock(Station201):
            """The front's station, on the test's clock (the front itself takes no clock)."""

            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, clock=clock, **kwargs)

        class _WithClock16(Station16):
            """The front's 1.6 station, on the test's clock."""

            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, clock=clock, **kwargs)

        front_module.Station201 = _WithClock  # type: ignore[misc]
        front_module.Station16 = _WithClock16  # type: ignore[misc]
        try:
            await self.front.start()
        finally:
            front_module.Station201 = Station201  # type: ignore[misc]
            front_module.Station16 = Station16  # type: ignore[misc]
        return self

    def _reset(self) -> None:
        self.resets += 1

    async def stop(self) -> None:
        """The front first, then the controller (contactors open)."""
        if self.front is not None:
            await self.front.stop()
            self.front = None
        if self.built is not None:
            await self.built.stop()
            self.built = None

    async def __aenter__(self) -> OcppStation:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def runtime(self) -> Any:
        assert self.built is not None
        return self.built.runtime

    @property
    def station(self) -> Any:
        assert self.front is not None and self.front.station is not None
        return self.front.station

    def evse(self, evse_id: int) -> dict[str, Any]:
        """The EVSE's entry of the status document now."""
        return dict(self.runtime.evse_status(evse_id))

    def reserved_led(self, evse_id: int) -> bool:
        """The reserved LED pin of the EVSE is high."""
        assert self.built is not None
        return float(self.built.pin_factory.pin(RESERVED_LED[evse_id]).state) >= 0.5

    async def plug(self, evse_id: int) -> None:
        await self.runtime.sim.plug(evse_id)

    async def unplug(self, evse_id: int) -> None:
        await self.runtime.sim.unplug(evse_id)


def ocpp_time(seconds: float = 0.0, *, offset_s: float = 0.0) -> str:
    """An OCPP date-time ``seconds`` from now (``offset_s``: on a CSMS clock that far ahead of ours), with ``Z``."""
    moment = datetime.now(UTC) + timedelta(seconds=seconds + offset_s)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def status_of(evse_id: int, status: str) -> Callable[[dict[str, Any]], bool]:
    """A StatusNotification predicate: this EVSE's connector 1 reported in this status."""
    return lambda p: p["evseId"] == evse_id and p["connectorStatus"] == status


async def set_variables(csms: Csms, *settings: tuple[str, str, str]) -> list[dict[str, Any]]:
    """SetVariables of (component, variable, value) triples; returns the results (asserting each Accepted)."""
    data = [{"component": {"name": c}, "variable": {"name": v}, "attributeValue": value} for c, v, value in settings]
    answer = await csms.call("SetVariables", {"setVariableData": data})
    results: list[dict[str, Any]] = answer["setVariableResult"]
    assert [r["attributeStatus"] for r in results] == ["Accepted"] * len(settings), results
    return results


async def booted(csms: Csms, *, count: int | None = None) -> None:
    """Wait for the station's (next) BootNotification and both EVSEs' first StatusNotification after it."""
    await csms.wait_connected(count=count)
    await csms.expect("BootNotification")
    for evse_id in (1, 2):
        await csms.expect("StatusNotification", lambda p, e=evse_id: p["evseId"] == e)


def status16(connector_id: int, status: str, error_code: str | None = None) -> Callable[[dict[str, Any]], bool]:
    """A 1.6 StatusNotification predicate: this connectorId reported in this status (and errorCode, if given)."""
    return lambda p: (p["connectorId"] == connector_id and p["status"] == status
                      and (error_code is None or p["errorCode"] == error_code))


async def booted16(csms: Csms, *, count: int | None = None) -> None:
    """Wait for the 1.6 station's (next) BootNotification and the first StatusNotification of connectorIds 0, 1, 2."""
    await csms.wait_connected(count=count)
    await csms.expect("BootNotification")
    for connector_id in (0, 1, 2):
        await csms.expect("StatusNotification", lambda p, c=connector_id: p["connectorId"] == c)


async def charging16(station: OcppStation, csms: Csms, connector_id: int, id_tag: str = "ALICE") -> int:
    """OCPP 1.6: a local session charging on ``connector_id`` (= its EVSE in the sim); its CSMS transactionId."""
    assert (await station.runtime.present_token(connector_id, id_tag)).may_charge
    await station.plug(connector_id)
    await csms.expect("StartTransaction", lambda p: p["connectorId"] == connector_id)
    await until(lambda: station.evse(connector_id)["contactor"] == "closed", "charging", timeout=20)
    return int(next(m.response["transactionId"] for m in csms.received_messages("StartTransaction")
                    if m.payload["connectorId"] == connector_id and m.response is not None))
