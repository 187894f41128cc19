"""The systemd unit in systemd/: unprivileged, hardened, restarted on failure, and it starts the real CLI.

The unit is read by a small parser of the unit-file syntax (configparser cannot keep repeated keys
such as ``DeviceAllow=``). ``systemd-analyze verify`` and ``systemd-analyze security --offline``
run too when this machine has them.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from controller.cli import _parser

UNIT_PATH = Path(__file__).resolve().parents[1] / "systemd" / "charger-controller.service"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze") or (
    "/usr/bin/systemd-analyze" if Path("/usr/bin/systemd-analyze").exists() else None
)

Unit = dict[str, list[tuple[str, str]]]


def parse_unit(text: str) -> Unit:
    """Sections -> (key, value) in file order; comments, blank lines and backslash continuations as systemd."""
    unit: Unit = {}
    section: str | None = None
    pending = ""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not pending and (not line or line[0] in "#;"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        line, pending = pending + line, ""
        if match := re.fullmatch(r"\[([^\[\]]+)\]", line):
            section = match.group(1)
            assert section not in unit, f"line {number}: section [{section}] appears twice"
            unit[section] = []
            continue
        assert section is not None, f"line {number}: assignment before the first section"
        key, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", key.strip()), f"line {number}: not KEY=VALUE: {raw!r}"
        unit[section].append((key.strip(), value.strip()))
    assert not pending, "the file ends inside a backslash continuation"
    return unit


@pytest.fixture(scope="module")
def unit() -> Unit:
    return parse_unit(UNIT_PATH.read_text(encoding="utf-8"))


def values(unit: Unit, section: str, key: str) -> list[str]:
    """Every assignment of ``key`` in ``section``, in order."""
    return [v for k, v in unit.get(section, []) if k == key]


def value(unit: Unit, section: str, key: str) -> str | None:
    """The effective value of a single-valued key: systemd takes the last assignment."""
    found = values(unit, section, key)
    return found[-1] if found else None


def exec_start(unit: Unit) -> list[str]:
    commands = values(unit, "Service", "ExecStart")
    assert len(commands) == 1, f"expected one ExecStart=, got {commands}"
    return shlex.split(commands[0])


def environment(unit: Unit) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in values(unit, "Service", "Environment"):
        for word in shlex.split(line):
            name, sep, val = word.partition("=")
            assert sep, f"Environment= word without '=': {word!r}"
            env[name] = val
    return env


def seconds(text: str) -> float:
    """A systemd time span in the forms this unit may use: ``10``, ``10s``, ``500ms``, ``1min``."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(ms|s|sec|min)?", text)
    assert match, f"unsupported time span {text!r}"
    scale = {"ms": 0.001, "min": 60.0}.get(match.group(2) or "s", 1.0)
    return float(match.group(1)) * scale


# ------------------------------------------------------------------ the file itself


def test_has_exactly_the_unit_service_and_install_sections(unit: Unit) -> None:
    assert list(unit) == ["Unit", "Service", "Install"]


def test_runs_as_an_unprivileged_user(unit: Unit) -> None:
    user = value(unit, "Service", "User")
    assert user, "User= must be set: without it the service runs as root"
    assert user not in ("root", "0")
    assert value(unit, "Service", "Group") not in ("root", "0")
    assert value(unit, "Service", "DynamicUser") in (None, "no", "false")  # the gpio/dialout groups need a real user


def test_supplementary_groups_open_gpio_and_serial_ports(unit: Unit) -> None:
    groups = {g for line in values(unit, "Service", "SupplementaryGroups") for g in line.split()}
    assert {"gpio", "dialout"} <= groups


def test_restarts_on_failure_and_leaves_time_for_a_safe_stop(unit: Unit) -> None:
    assert value(unit, "Service", "Restart") == "on-failure"
    assert seconds(value(unit, "Service", "RestartSec") or "0.1") > 0  # never a tight restart loop
    # run_daemon stops on SIGTERM: contactors open and confirmed (up to 1 s), then LEDs, locks, drivers.
    assert value(unit, "Service", "KillSignal") in (None, "SIGTERM", "TERM", "15")
    assert seconds(value(unit, "Service", "TimeoutStopSec") or "90") >= 5


def test_tells_systemd_when_it_is_ready_and_keeps_its_watchdog_fed(unit: Unit) -> None:
    """Type=notify with a watchdog: READY=1 once the API is up, WATCHDOG=1 from the loop-health probe (daemon.py)."""
    from controller.daemon import PROBE_MAX_AGE

    assert value(unit, "Service", "Type") == "notify"
    assert value(unit, "Service", "NotifyAccess") in (None, "main")  # only the daemon itself, not a helper process
    watchdog = seconds(value(unit, "Service", "WatchdogSec") or "0")
    # long enough for a slow Pi under load (keep-alives every WatchdogSec/2), short enough to matter
    assert 5 <= watchdog <= 60, watchdog
    # the probe's evidence (at most PROBE_MAX_AGE keep-alive intervals old) is younger than the watchdog's limit
    assert PROBE_MAX_AGE * watchdog / 2 < watchdog
    assert value(unit, "Service", "Restart") in ("on-failure", "on-watchdog", "on-abnormal", "always")
    # the default SIGABRT lets Python's fault handler print where the loop was stuck
    assert value(unit, "Service", "WatchdogSignal") in (None, "SIGABRT", "ABRT", "6")
    assert environment(unit).get("PYTHONFAULTHANDLER") == "1"
    families = {f for line in values(unit, "Service", "RestrictAddressFamilies") for f in line.split()}
    assert "AF_UNIX" in families  # the notification socket


def test_is_hardened(unit: Unit) -> None:
    service = {k: value(unit, "Service", k) for k in ("NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp")}
    assert service == {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes"}
    assert value(unit, "Service", "CapabilityBoundingSet") == ""  # no capabilities at all


def test_state_directory_is_where_the_daemon_writes(unit: Unit) -> None:
    state = value(unit, "Service", "StateDirectory")
    assert state, "StateDirectory= must be set: ProtectSystem=strict leaves nothing else writable"
    argv = exec_start(unit)
    if "--state-dir" in argv:  # otherwise the config file's state_dir must point there
        assert argv[argv.index("--state-dir") + 1] == f"/var/lib/{state}"


def test_devices_are_an_allow_list_with_gpio_and_usb_serial(unit: Unit) -> None:
    assert value(unit, "Service", "PrivateDevices") in (None, "no", "false")  # "yes" hides /dev/gpiochip*
    assert value(unit, "Service", "DevicePolicy") == "closed"
    allowed = {tuple(line.split()) for line in values(unit, "Service", "DeviceAllow")}
    assert ("char-gpiochip", "rw") in allowed
    assert ("char-ttyUSB", "rw") in allowed
    assert ("char-ttyS", "rw") in allowed  # the Pi's mini UART: serial0 on models with Bluetooth
    assert ("char-ttyAMA", "rw") in allowed


def test_open_files_are_limited_with_room_for_the_api_connection_cap(unit: Unit) -> None:
    """LimitNOFILE= bounds descriptors; the API's connection cap (256) must fit in half of it (api_server)."""
    from controller.api.connections import DEFAULT_MAX_CONNECTIONS

    limit = value(unit, "Service", "LimitNOFILE")
    assert limit, "LimitNOFILE= must be set: the API's connection cap is sized against it"
    soft, _, hard = limit.partition(":")
    assert soft.isdigit() and (not hard or hard.isdigit()), f"LimitNOFILE={limit}: expected a number (or soft:hard)"
    assert 2 * DEFAULT_MAX_CONNECTIONS <= int(soft) <= 65536, limit
    assert not hard or int(hard) >= int(soft), limit


def test_documentation_points_at_the_readme_of_the_install_layout(unit: Unit) -> None:
    """README's install puts the checkout in /opt/charger-controller/src."""
    readme = Path(__file__).resolve().parents[1] / "README.md"
    assert "sudo git clone <this repository> /opt/charger-controller/src" in readme.read_text(encoding="utf-8")
    assert value(unit, "Unit", "Documentation") == "file:///opt/charger-controller/src/README.md"


def test_exec_start_runs_the_daemon_with_a_config_file(unit: Unit) -> None:
    argv = exec_start(unit)
    assert Path(argv[0]).is_absolute()
    assert Path(argv[0]).name == "charger-controller"
    assert argv[1:3] == ["run", "--config"]
    config = argv[3]
    config_dir = value(unit, "Service", "ConfigurationDirectory")
    assert config_dir and config == f"/etc/{config_dir}/config.toml"
    args = _parser().parse_args(argv[1:])  # the real command line accepts these options
    assert (args.command, args.config, args.sim) == ("run", config, False)


def test_lgpio_gets_a_writable_working_directory(unit: Unit) -> None:
    """lgpio makes its notification FIFO in $LG_WD or the working directory (read-only / otherwise)."""
    runtime_dir = value(unit, "Service", "RuntimeDirectory")
    assert runtime_dir
    assert value(unit, "Service", "WorkingDirectory") == f"/run/{runtime_dir}"
    env = environment(unit)
    assert env.get("LG_WD") == f"/run/{runtime_dir}"
    assert env.get("GPIOZERO_PIN_FACTORY") == "lgpio"  # fail closed: no silent fallback to another backend


def test_starts_at_boot(unit: Unit) -> None:
    assert "multi-user.target" in " ".join(values(unit, "Install", "WantedBy")).split()


def test_parser_keeps_repeated_keys_and_continuations() -> None:
    unit = parse_unit("# c\n[Service]\nDeviceAllow=a rw\n; c\nDeviceAllow=b \\\n  r\nUser=x\nUser=y\n")
    assert values(unit, "Service", "DeviceAllow") == ["a rw", "b r"]
    assert value(unit, "Service", "User") == "y"


# ------------------------------------------------------------------ systemd-analyze


def runnable_copy(directory: Path, extra: str = "") -> Path:
    """The unit with ExecStart's program replaced by /bin/true (verify checks that it exists)."""
    text = UNIT_PATH.read_text(encoding="utf-8")
    text, count = re.subn(r"(?m)^ExecStart=\S+", "ExecStart=/bin/true", text)
    assert count == 1
    path = directory / UNIT_PATH.name
    path.write_text(text.replace("[Service]\n", f"[Service]\n{extra}", 1), encoding="utf-8")
    return path


def analyze(*args: str | Path) -> subprocess.CompletedProcess[str]:
    assert SYSTEMD_ANALYZE is not None
    return subprocess.run([SYSTEMD_ANALYZE, *map(str, args)], capture_output=True, text=True, timeout=60, check=False)


needs_analyze = pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed here")


@needs_analyze
def test_systemd_analyze_verify_is_clean(tmp_path: Path) -> None:
    result = analyze("verify", "--man=no", runnable_copy(tmp_path))
    # No warning is expected or tolerated: unknown keys, bad values and missing programs all print here.
    assert result.returncode == 0, result.stderr
    assert (result.stdout + result.stderr).strip() == ""


@needs_analyze
def test_systemd_analyze_verify_would_catch_a_mistake(tmp_path: Path) -> None:
    """The check above is not vacuous on this systemd: a misspelt key is reported."""
    result = analyze("verify", "--man=no", runnable_copy(tmp_path, extra="NoNewPrivilege=yes\n"))
    assert "Unknown key 'NoNewPrivilege'" in result.stdout + result.stderr


@needs_analyze
def test_systemd_analyze_security_exposure_is_low(tmp_path: Path) -> None:
    if "--offline" not in analyze("security", "--help").stdout:
        pytest.skip("this systemd-analyze has no 'security --offline' (systemd < 250)")
    result = analyze("security", "--offline=yes", runnable_copy(tmp_path))
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", result.stdout)
    assert match, result.stdout + result.stderr
    # systemd 252 scores this unit 1.7 ("OK"); the same unit without its hardening block scores 9.1
    # ("UNSAFE"). Newer systemd versions add checks, so only a loose bound is asserted.
    assert float(match.group(1)) < 4.0
