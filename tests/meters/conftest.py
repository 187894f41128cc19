"""Fixtures for the meter tests: simulated meter servers and buses, all stopped after each test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from drivers.modbus_bus import ModbusBus
from drivers.sim.meter_server import SimTransport, SimulatedMeter, SimulatedMeterServer

from .meter_helpers import Serve


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """A starter for SimulatedMeterServers; every server it started is stopped afterwards."""
    servers: list[SimulatedMeterServer] = []

    async def start(meters: SimulatedMeter | list[SimulatedMeter],
                    transport: SimTransport = SimTransport.TCP) -> SimulatedMeterServer:
        server = SimulatedMeterServer(meters, transport)
        await server.__aenter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.__aexit__(None, None, None)


@pytest.fixture
async def buses() -> AsyncIterator[list[ModbusBus]]:
    """Buses registered here are closed after the test."""
    made: list[ModbusBus] = []
    yield made
    for bus in made:
        await bus.aclose()
