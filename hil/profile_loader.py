"""Reading bench profiles: the built-in ones (``hil/benches/``) and TOML files, checked strictly.

Unknown keys, wrong types and wiring that does not match the DUT's own configuration are errors
(``ProfileError``) naming the file and the key. On the sim bench an EVSE without lines is wired to
the DUT's own pins; on a real bench only the EVSEs wired to the harness are tested. An ``[ocpp]`` table
(``listen = "host:port"``, ``path``, ``connect_timeout_s``) makes the harness play the DUT's CSMS (the ``ocpp``
theme) in the OCPP version the DUT speaks: on the sim bench the table's ``version`` ("2.0.1", the default, or
"1.6") configures the DUT; on a real bench the DUT's own ``[ocpp]`` section must point at that address, and its
``version`` is the one the CSMS speaks (a ``version`` in the table must match it). Control pilots: hil.pilot_profile.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

from controller.config.loader import ChargerConfig, ConfigError, load_config, load_sim_default, without_pilots
from controller.config.model import EvseConfig, parse_bind
from hil.pilot_profile import pilot_wiring, sim_pilot
from hil.profile import (
    DRIVEN_ROLES,
    OBSERVED_ROLES,
    OCPP_VERSIONS,
    SIM_DUT_CONFIG,
    SIM_RECONNECT_S,
    SIM_STATION_ID,
    BenchProfile,
    DutSettings,
    EvseBench,
    LineSpec,
    MeterLink,
    OcppLink,
    PlantSettings,
    ProfileError,
    Tolerances,
)
from hil.profile_reader import Reader


def load_profile(name_or_path: str) -> BenchProfile:
    """``sim`` (or another name of hil/benches/) or a path to a profile TOML file."""
    path = Path(name_or_path)
    if path.suffix != ".toml" and "/" not in name_or_path:
        builtin = resources.files("hil").joinpath("benches", f"{name_or_path}.toml")
        if not builtin.is_file():
            raise ProfileError(f"no built-in bench {name_or_path!r} (built in: {', '.join(builtin_benches())})")
        return parse_profile(builtin.read_text(encoding="utf-8"), source=f"hil/benches/{name_or_path}.toml")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError(f"{name_or_path}: cannot read bench profile: {exc.strerror or exc}") from None
    return parse_profile(text, source=str(path), base_dir=path.parent)


def builtin_benches() -> list[str]:
    """Names of the profiles shipped in hil/benches/."""
    folder = resources.files("hil").joinpath("benches")
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml"))


def parse_profile(text: str, *, source: str, base_dir: Path | None = None) -> BenchProfile:
    """Parse and check a profile; unknown keys and missing wiring are errors naming the key."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{source}: invalid TOML: {exc}") from None
    reader = Reader(source)
    root = reader.table(data, "", {"bench", "dut", "tolerance", "plant", "meter", "evses", "ocpp"})
    bench = reader.table(root.get("bench", {}), "bench", {"name", "kind", "description"})
    kind = reader.choice(bench, "bench.kind", ("sim", "real"), default="sim")
    dut = _dut(reader, root.get("dut", {}), kind)
    dut_config = _dut_config(dut, source, base_dir)
    tolerance = reader.dataclass(Tolerances, root.get("tolerance", {}), "tolerance")
    plant = reader.dataclass(PlantSettings, root.get("plant", {}), "plant")
    meter = None
    if "meter" in root:
        meter = reader.dataclass(MeterLink, root["meter"], "meter")
        if meter.link not in ("rtu", "tcp"):
            raise ProfileError(f"{source}: [meter] link must be \"rtu\" or \"tcp\", got {meter.link!r}")
    elif kind == "real" and any(e.meter is not None for e in dut_config.evses):
        raise ProfileError(f"{source}: [meter] is required: the DUT's EVSEs have meters, the harness must serve them")
    evses = _evses(reader, root.get("evses"), kind, dut_config, pilots=dut.pilots)
    ocpp = _ocpp(reader, root["ocpp"], kind, dut_config) if "ocpp" in root else None
    return BenchProfile(
        name=str(bench.get("name", Path(source).stem)),
        kind=kind,
        source=source,
        description=str(bench.get("description", "")),
        dut=dut,
        tolerance=tolerance,
        plant=plant,
        meter=meter,
        evses=evses,
        dut_config=dut_config,
        ocpp=ocpp,
    )


def _dut(reader: Reader, raw: object, kind: str) -> DutSettings:
    """The [dut] table; a real bench must name the DUT's API and a copy of its configuration."""
    dut: DutSettings = reader.dataclass(DutSettings, raw, "dut", tuple_fields=("restart_command",))
    if kind == "real":
        if not dut.api.startswith(("http://", "https://")):
            raise ProfileError(f"{reader.source}: [dut] api must be the DUT's API URL (http://host:port)")
        if dut.config == SIM_DUT_CONFIG:
            raise ProfileError(f"{reader.source}: [dut] config must be a copy of the DUT's configuration file")
        if dut.pilots:
            raise ProfileError(f"{reader.source}: [dut] pilots is for the sim bench; a real DUT's pilots are in its "
                               "configuration, wire each in [evses.pilot]")
    return dut


def _dut_config(dut: DutSettings, source: str, base_dir: Path | None) -> ChargerConfig:
    """The DUT's configuration the profile names (relative paths from the profile's folder)."""
    try:
        if dut.config == SIM_DUT_CONFIG:
            # without [dut] pilots the bench's lines model a board whose control pilot is handled elsewhere (the
            # plug line says plugged); with it the simulated charger keeps its pilots and the harness plays the car
            return load_sim_default() if dut.pilots else without_pilots(load_sim_default())
        path = Path(dut.config)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        return load_config(path)
    except ConfigError as exc:
        raise ProfileError(f"{source}: [dut] config {dut.config!r} is not a usable DUT configuration:\n{exc}") from None


def _evses(reader: Reader, raw: object, kind: str, config: ChargerConfig, *, pilots: bool) -> tuple[EvseBench, ...]:
    """The wiring; on the sim bench an EVSE without lines is wired to the DUT's own pins (and with ``pilots`` its
    CP to the simulated car); on a real bench an EVSE whose DUT has a control pilot needs its [evses.pilot]."""
    given: dict[int, EvseBench] = {}
    for index, item in enumerate(reader.array(raw, "evses")):
        path = f"evses[{index}]"
        table = reader.table(item, path, {"id", "meter_unit", "lines", "pilot"})
        evse_id = table.get("id")
        if not isinstance(evse_id, int) or isinstance(evse_id, bool):
            raise ProfileError(f"{reader.source}: [{path}] id must be the DUT's EVSE id (an integer)")
        try:
            dut_evse = config.evse(evse_id)
        except KeyError:
            raise ProfileError(f"{reader.source}: [{path}] the DUT has no EVSE {evse_id}") from None
        lines = reader.lines(table.get("lines", {}), f"{path}.lines", (*OBSERVED_ROLES, *DRIVEN_ROLES))
        unit = table.get("meter_unit")
        if unit is not None and (not isinstance(unit, int) or isinstance(unit, bool)):
            raise ProfileError(f"{reader.source}: [{path}] meter_unit must be an integer")
        if unit is None and dut_evse.meter is not None:
            unit = dut_evse.meter.unit_id
        pilot = None
        if "pilot" in table:
            if kind == "sim":
                raise ProfileError(f"{reader.source}: [{path}.pilot] the sim bench's car is simulated: keep the DUT's "
                                   "pilots with [dut] pilots = true instead")
            pilot = pilot_wiring(reader, table["pilot"], f"{path}.pilot", dut_evse)
        elif kind == "real" and dut_evse.pilot is not None:
            raise ProfileError(f"{reader.source}: [{path}] EVSE {evse_id}: the DUT reads a car from its control "
                               "pilot, so the harness must play it there: wire [evses.pilot] (README, \"Building a "
                               "real bench\")")
        given[evse_id] = EvseBench(evse_id, lines, unit, pilot)
    if kind == "real" and not given:
        raise ProfileError(f"{reader.source}: a real bench needs [[evses]] with their [evses.lines] wiring")
    evses = []
    for dut_evse in config.evses:
        bench = given.get(dut_evse.id)
        if bench is None:
            if kind == "real":
                continue  # an EVSE not wired to the harness is not tested
            bench = EvseBench(dut_evse.id, {}, dut_evse.meter.unit_id if dut_evse.meter else None)
        pilot = sim_pilot(dut_evse, reader.source) if kind == "sim" and pilots else bench.pilot
        wired = dut_lines(dut_evse)
        lines = dict(bench.lines)
        if kind == "sim":
            lines = {**wired, **lines}
            for role, spec in lines.items():
                own = wired.get(role)
                if own is None or (spec.harness, spec.dut, spec.active_high) != (own.harness, own.dut, own.active_high):
                    raise ProfileError(
                        f"{reader.source}: [evses] EVSE {dut_evse.id} {role}: "
                        "the sim bench watches the DUT's own pins; "
                        f"expected {own}, got {spec}"
                    )
        else:
            for role, spec in lines.items():
                own = wired.get(role)
                if own is None:
                    raise ProfileError(
                        f"{reader.source}: EVSE {dut_evse.id} {role}: the DUT's configuration has no such line"
                    )
                if spec.dut != own.dut:
                    raise ProfileError(
                        f"{reader.source}: EVSE {dut_evse.id} {role}: "
                        f"wired to DUT {spec.dut} but the DUT uses {own.dut}"
                    )
        evses.append(EvseBench(dut_evse.id, lines, bench.meter_unit, pilot))
    return tuple(evses)


def _ocpp(reader: Reader, raw: object, kind: str, config: ChargerConfig) -> OcppLink:
    """The [ocpp] table: where the harness's CSMS listens and (sim bench) which OCPP version the DUT speaks. On a
    real bench the DUT's own [ocpp] section must point at it (same port and path, ws://); its station id, reconnect
    back-off and OCPP version are taken from there.
    """
    where = f"{reader.source}: [ocpp]"
    table = reader.table(raw, "ocpp", {"listen", "path", "connect_timeout_s", "version"})
    listen, path = table.get("listen"), table.get("path", "/ocpp")
    version = table.get("version")
    if version is not None and version not in OCPP_VERSIONS:
        raise ProfileError(f'{where} version must be "2.0.1" or "1.6", got {version!r}')
    timeout = table.get("connect_timeout_s", 30.0 if kind == "real" else 5.0)
    if not isinstance(listen, str):
        raise ProfileError(f"{where} listen must be \"host:port\", the address the harness's CSMS listens on")
    try:
        host, port = (parse_bind(listen[:-2] + ":1")[0], 0) if listen.endswith(":0") else parse_bind(listen)
    except ValueError as exc:
        raise ProfileError(f"{where} listen: {exc}") from None
    if port == 0 and kind == "real":
        raise ProfileError(f"{where} listen needs a fixed port on a real bench: the DUT is configured to reach it")
    if not isinstance(path, str) or not path.startswith("/") or "?" in path or "#" in path or path.endswith("/"):
        raise ProfileError(f'{where} path must be a URL path such as "/ocpp" (no trailing slash), got {path!r}')
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise ProfileError(f"{where} connect_timeout_s must be a number of seconds > 0, got {timeout!r}")
    link = OcppLink(listen, host, port, path, float(timeout), SIM_STATION_ID, SIM_RECONNECT_S[1],
                    str(version or "2.0.1"))
    if kind == "sim":
        return link
    dut = config.ocpp
    if dut is None:
        raise ProfileError(f"{where}: the DUT's configuration has no [ocpp] section; give it url = "
                           f'"ws://<this harness>:{port}{path}" and a station_id')
    problem = None
    if version is not None and dut.version != version:
        problem = f"version {dut.version!r} is not the profile's [ocpp] version {version!r}"
    elif dut.tls:
        problem = f"url {dut.url!r}: the harness's CSMS speaks ws:// only (no TLS: security profile 0 or 1)"
    elif dut.port != port or "/" + urlsplit(dut.url).path.strip("/") != path:
        problem = f"url {dut.url!r} does not reach the harness's CSMS at port {port}, path {path}"
    if problem is not None:
        raise ProfileError(f"{where}: the DUT's [ocpp] {problem}")
    return OcppLink(listen, host, port, path, float(timeout), dut.station_id, dut.reconnect_max_s, dut.version)


def dut_lines(evse: EvseConfig) -> dict[str, LineSpec]:
    """The DUT's own lines of one EVSE with their "on" levels, from its configuration."""
    lines: dict[str, LineSpec] = {}

    def add(role: str, pin: str | None, active_high: bool) -> None:
        if pin is not None:
            lines[role] = LineSpec(role, pin, pin, active_high)

    ind = evse.indicator
    add("reserved_led", ind.reserved_pin, ind.reserved_active_high)
    add("status_red", ind.status_red_pin, ind.status_active_high)
    add("status_green", ind.status_green_pin, ind.status_active_high)
    add("status_blue", ind.status_blue_pin, ind.status_active_high)
    add("coil", evse.contactor.coil_pin, evse.contactor.coil_active_high)
    add("contactor_aux", evse.contactor.feedback_pin, evse.contactor.feedback_active_high)
    add("plug", evse.plug.pin, evse.plug.active_high)
    if evse.lock is not None:
        add("lock_motor_lock", evse.lock.lock_pin, evse.lock.motor_active_high)
        add("lock_motor_unlock", evse.lock.unlock_pin, evse.lock.motor_active_high)
        add("lock_feedback", evse.lock.feedback_pin, evse.lock.feedback_active_high)
    return lines
