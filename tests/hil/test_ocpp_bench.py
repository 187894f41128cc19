"""The bench's OCPP side: the ``[ocpp]`` profile table, the harness's CSMS (hil.csms) in both versions, and the
``ocpp`` theme's four scenarios on the sim bench with the DUT speaking OCPP 2.0.1 and 1.6J (the same scenarios,
the profile's ``[ocpp] version`` choosing; test_sim_suite.py runs the whole suite, 2.0.1, for its reports).
"""

from __future__ import annotations

import asyncio
import json
import socket
import warnings
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

import hil
from drivers.sim.meter_server import SimulatedMeter
from hil.checks import CheckFailed
from hil.csms import CsmsCallError, HarnessCsms, Received
from hil.harness import Bench
from hil.ocpp_energy import PlantEnergy, readings_follow_plant
from hil.profile import BenchProfile, ProfileError
from hil.profile_loader import load_profile, parse_profile
from hil.real_bench import RealBench, RealBenchError
from hil.runner import ScenarioResult, run_all, run_scenario
from hil.scenario import load_all
from hil.sim_bench import SimBench
from hil.timeline import Timeline

EXAMPLES = Path(hil.__file__).parent.parent / "examples"
REAL = """
[bench]
kind = "real"
[dut]
config = "dut.toml"
api = "http://192.168.50.10:8080"
[meter]
link = "tcp"
listen = "0.0.0.0:1502"
[[evses]]
id = 1
[evses.lines]
reserved_led = { harness = "GPIO4", dut = "GPIO24", active_high = true }
"""
DUT_OCPP = '\n[ocpp]\nurl = "ws://192.168.50.2:9000/ocpp"\nstation_id = "bench-dut"\nreconnect_max_s = 20.0\n'


def _real(tmp_path: Path, ocpp_table: str, dut_ocpp: str = DUT_OCPP, meter_port: int = 1502) -> BenchProfile:
    """Parse a real profile with ``ocpp_table``, its DUT a copy of examples/pi-2evse.toml plus ``dut_ocpp``."""
    (tmp_path / "dut.toml").write_text((EXAMPLES / "pi-2evse.toml").read_text() + dut_ocpp)
    text = REAL.replace("0.0.0.0:1502", f"127.0.0.1:{meter_port}") + ocpp_table
    return parse_profile(text, source="bench.toml", base_dir=tmp_path)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_sim_bench_has_a_csms_on_a_free_loopback_port() -> None:
    link = load_profile("sim").ocpp
    assert link is not None and (link.host, link.port, link.path) == ("127.0.0.1", 0, "/ocpp")


def test_a_real_bench_takes_the_station_from_the_dut_configuration(tmp_path: Path) -> None:
    profile = _real(tmp_path, '[ocpp]\nlisten = "0.0.0.0:9000"\nconnect_timeout_s = 45\n')
    link = profile.ocpp
    assert link is not None
    assert (link.host, link.port, link.path, link.connect_timeout_s) == ("0.0.0.0", 9000, "/ocpp", 45.0)
    assert (link.station_id, link.reconnect_max_s) == ("bench-dut", 20.0)


@pytest.mark.parametrize(("table", "dut", "message"), [
    ('[ocpp]\nlisten = "0.0.0.0:0"\n', DUT_OCPP, "needs a fixed port on a real bench"),
    ('[ocpp]\nlisten = "9000"\n', DUT_OCPP, "[ocpp] listen: expected host:port"),
    ('[ocpp]\nlisten = "0.0.0.0:9000"\npath = "ocpp"\n', DUT_OCPP, "path must be a URL path"),
    ('[ocpp]\nlisten = "0.0.0.0:9000"\nport = 1\n', DUT_OCPP, "unknown key 'port'"),
    ('[ocpp]\nlisten = "0.0.0.0:9000"\n', "", "the DUT's configuration has no [ocpp] section"),
    ('[ocpp]\nlisten = "0.0.0.0:9001"\n', DUT_OCPP, "does not reach the harness's CSMS at port 9001"),
    ('[ocpp]\nlisten = "0.0.0.0:9000"\npath = "/csms"\n', DUT_OCPP, "does not reach the harness's CSMS"),
    ('[ocpp]\nlisten = "0.0.0.0:9000"\n', DUT_OCPP.replace("ws://", "wss://"), "ws:// only"),
    ('[ocpp]\nlisten = "0.0.0.0:9000"\nversion = "2.1"\n', DUT_OCPP, 'version must be "2.0.1" or "1.6"'),
    ('[ocpp]\nlisten = "0.0.0.0:9000"\nversion = "1.6"\n', DUT_OCPP, "is not the profile's [ocpp] version"),
])
def test_a_wrong_ocpp_table_is_refused_naming_the_key(tmp_path: Path, table: str, dut: str, message: str) -> None:
    with pytest.raises(ProfileError, match=r"bench\.toml") as refused:
        _real(tmp_path, table, dut)
    assert message in str(refused.value)


def _sim_profile(version: str) -> BenchProfile:
    """The built-in sim bench with ``[ocpp] version`` set (read through the loader, as a profile file would be)."""
    text = (Path(hil.__file__).parent / "benches" / "sim.toml").read_text(encoding="utf-8")
    listen = 'listen = "127.0.0.1:0"\n'
    assert listen in text, "hil/benches/sim.toml no longer listens on 127.0.0.1:0"
    return parse_profile(text.replace(listen, f'{listen}version = "{version}"\n'), source="sim-ocpp.toml")


def test_the_profile_says_which_ocpp_version_the_dut_speaks(tmp_path: Path) -> None:
    """Sim bench: the table's version (2.0.1 by default); real bench: the DUT's own [ocpp] version."""
    link = load_profile("sim").ocpp
    assert link is not None and link.version == "2.0.1"
    link16 = _sim_profile("1.6").ocpp
    assert link16 is not None and link16.version == "1.6"
    real = _real(tmp_path, '[ocpp]\nlisten = "0.0.0.0:9000"\n', DUT_OCPP + 'version = "1.6"\n').ocpp
    assert real is not None and real.version == "1.6"  # a real bench: the DUT's own [ocpp] version


def test_ocpp_scenarios_are_skipped_on_a_bench_without_a_csms() -> None:
    example = load_profile(str(Path(hil.__file__).parent / "benches" / "example-real.toml"))
    ocpp = [s for s in load_all().values() if s.theme == "ocpp"]
    assert len(ocpp) == 4 and all("ocpp" in s.needs for s in ocpp)
    assert all("ocpp" in s.missing(example) for s in ocpp)
    assert not any("ocpp" in s.missing(load_profile("sim")) for s in ocpp)


async def test_the_csms_answers_records_checks_calls_and_survives_an_outage() -> None:
    csms = await HarnessCsms().start()
    try:
        station = f"{csms.url}/CS-1"
        async with connect(station, subprotocols=["ocpp2.0.1"]) as ws:  # type: ignore[list-item]
            boot = {"chargingStation": {"model": "m", "vendorName": "v"}, "reason": "PowerUp"}
            await ws.send(json.dumps([2, "1", "BootNotification", boot]))
            assert json.loads(await ws.recv())[2]["status"] == "Accepted"
            await ws.send(json.dumps([2, "2", "StatusNotification", {"timestamp": "2026-01-01T00:00:00Z"}]))
            await ws.recv()  # answered, then found to break the schema (no connectorStatus, evseId...)
            calling = asyncio.ensure_future(csms.call("CancelReservation", {"reservationId": 3}))
            request = json.loads(await ws.recv())
            assert request[2:] == ["CancelReservation", {"reservationId": 3}]
            await ws.send(json.dumps([3, request[1], {"status": "Rejected"}]))
            assert (await calling).payload == {"status": "Rejected"}
            assert csms.station_id == "CS-1" and [m.action for m in csms.received] == ["BootNotification",
                                                                                       "StatusNotification"]
            assert len(csms.problems) == 1 and "StatusNotification" in csms.problems[0]

            await csms.stop()  # an outage: the connection drops, nothing listens
            await asyncio.wait_for(ws.wait_closed(), 2)
        with pytest.raises(CsmsCallError, match="no station"):
            await csms.call("Reset", {"type": "Immediate"})
        with pytest.raises(OSError):
            await connect(station, subprotocols=["ocpp2.0.1"], open_timeout=1)  # type: ignore[list-item]

        await csms.start()  # back on the same port
        async with connect(station, subprotocols=["ocpp2.0.1"]) as ws:  # type: ignore[list-item]
            await asyncio.wait_for(csms.connected.wait(), 2)
            assert csms.connections == 2
        with pytest.raises(InvalidStatus):
            await connect(f"{csms.url}/a/b", subprotocols=["ocpp2.0.1"])  # type: ignore[list-item]
    finally:
        await csms.stop()


async def test_the_16_csms_names_transactions_and_knows_connectors_by_their_number() -> None:
    """The 1.6 CSMS: ocpp1.6 only, a transactionId per StartTransaction (the same for a resend), statuses by
    (EVSE, connector) through the connectorId map, schema checks of the 1.6 actions."""
    csms = await HarnessCsms(version="1.6", connectors={1: (1, 1), 2: (2, 1)}).start()
    try:
        async with connect(f"{csms.url}/CS-16", subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
            start = {"connectorId": 2, "idTag": "TOKEN", "meterStart": 0, "timestamp": "2026-01-01T00:00:00Z"}
            answers = []
            for unique_id, payload in (("1", start), ("2", start), ("3", {**start, "connectorId": 1})):
                await ws.send(json.dumps([2, unique_id, "StartTransaction", payload]))
                answers.append(json.loads(await ws.recv())[2]["transactionId"])
            assert answers == [1, 1, 2]  # the same start again (a resend) keeps its transactionId
            status = {"connectorId": 2, "errorCode": "NoError", "status": "Reserved"}
            await ws.send(json.dumps([2, "4", "StatusNotification", status]))
            await ws.recv()
            assert csms.statuses == {(2, 1): "Reserved"} and csms.received[0].answer["transactionId"] == 1
            assert not csms.problems, csms.problems
        with pytest.raises(InvalidStatus):
            await connect(f"{csms.url}/CS-16", subprotocols=["ocpp2.0.1"])  # type: ignore[list-item]
    finally:
        await csms.stop()


async def test_a_real_bench_runs_the_csms_from_its_start_and_waits_for_the_dut(tmp_path: Path) -> None:
    port = _free_port()
    profile = _real(tmp_path, f'[ocpp]\nlisten = "127.0.0.1:{port}"\nconnect_timeout_s = 0.3\n',
                    DUT_OCPP.replace("192.168.50.2:9000", f"127.0.0.1:{port}"), meter_port=_free_port())
    factory = MockFactory(pin_class=MockPWMPin)
    bench = RealBench(profile, pin_factory=factory)
    await bench._start_hardware()  # what the first open() does before resetting the DUT over its API
    try:
        assert bench.csms is not None and bench.csms.listening and bench.csms.port == port
        with pytest.raises(RealBenchError, match="did not connect to the harness's CSMS"):
            await bench._dut_connected()
        async with connect(f"ws://127.0.0.1:{port}/ocpp/bench-dut", subprotocols=["ocpp2.0.1"]):  # type: ignore[list-item]
            await bench._dut_connected()
            assert bench.csms.station_id == "bench-dut"
        assert bench.plant_meter(1) is not None
    finally:
        await bench.shutdown()
        factory.close()
    assert bench.csms is None


class _Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class _MeterDriver:
    """Just enough of a bench driver for PlantEnergy: the profile and a plant meter on the test's clock."""

    def __init__(self, clock: _Clock) -> None:
        self.profile = load_profile("sim")
        self.api: object = None
        meter = self.profile.dut_config.evse(1).meter
        assert meter is not None
        self.meter = SimulatedMeter(meter.meter_map, clock=clock)

    def plant_meter(self, evse_id: int) -> SimulatedMeter:
        return self.meter


def _event(value_wh: float) -> Received:
    sampled = [{"value": value_wh, "measurand": "Energy.Active.Import.Register", "unitOfMeasure": {"unit": "Wh"}}]
    return Received(0.0, 1, "x", "TransactionEvent", {"meterValue": [{"timestamp": "t", "sampledValue": sampled}]})


def test_energy_readings_are_held_against_the_plant_meter_within_the_polling_window() -> None:
    clock = _Clock()
    driver = _MeterDriver(clock)
    bench = Bench(driver, Timeline(clock))  # type: ignore[arg-type]
    plant = PlantEnergy(bench, 1)
    driver.meter.set_load(230.0, 16.0)  # 11040 W: 3.07 Wh a second
    for _ in range(501):  # 10 s, sampled every 20 ms
        plant.sample()
        clock.t += 0.02
    at_4s = plant.at_or_before(4.0)
    readings_follow_plant(bench, plant, [(5.0, _event(round(at_4s, 1)))], window_s=2.6)  # 1 s old: fine
    assert bench.timeline.checks[-1].ok
    for wrong in (at_4s / 1000.0, plant.at_or_before(1.0), plant.at_or_after(6.0)):  # kWh, 4 s old, from the future
        with pytest.raises(CheckFailed, match="outside"):
            readings_follow_plant(bench, plant, [(5.0, _event(round(wrong, 1)))], window_s=2.6)


# ---------------------------------------------------------------------------------------------------------------------
# the ocpp theme on the sim bench, in both versions

OCPP_SCENARIOS = sorted(name for name, s in load_all().items() if s.theme == "ocpp")


@pytest.fixture(scope="module", params=["2.0.1", "1.6"])
def ocpp_theme(request: pytest.FixtureRequest) -> tuple[str, dict[str, ScenarioResult]]:
    """The four ocpp scenarios on the sim bench, the DUT speaking ``request.param``, two at a time; one that misses
    its timing in company is run again alone before it counts (as test_sim_suite.py does)."""
    version = str(request.param)
    profile = _sim_profile(version)
    scenarios = [load_all()[name] for name in OCPP_SCENARIOS]
    by_name = {r.scenario.name: r for r in asyncio.run(run_all(profile, scenarios, jobs=2))}
    for name, first in list(by_name.items()):
        if first.status != "passed":
            again = asyncio.run(run_scenario(SimBench(profile), first.scenario))
            if again.status == "passed":
                warnings.warn(f"{name} ({version}) missed its timing in company ({first.message}) but passed alone",
                              stacklevel=1)
            else:
                again.message = f"{again.message} (with another scenario: {first.message})"
            by_name[name] = again
    return version, by_name


@pytest.mark.parametrize("name", OCPP_SCENARIOS)
def test_the_ocpp_scenario_passes_in_either_version(ocpp_theme: tuple[str, dict[str, ScenarioResult]],
                                                    name: str) -> None:
    """Each ocpp scenario passes on the sim bench with the DUT speaking 2.0.1, and speaking 1.6."""
    version, results = ocpp_theme
    result = results[name]
    checks = result.timeline.checks if result.timeline is not None else []
    transcript = "\n".join([*(f"{c.decided:7.3f} {'ok  ' if c.ok else 'FAIL'} {c.text} {c.detail}" for c in checks),
                            "--- log", *result.log_lines[-40:], result.detail])
    assert result.status == "passed", f"OCPP {version}: {result.status}: {result.message}\n{transcript}"
    assert any(f"OCPP {version} schemas" in c.text and c.ok for c in checks), "the DUT spoke another version"
