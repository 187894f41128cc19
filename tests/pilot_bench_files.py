"""Files for benches with a control pilot, shared by the tests of tests/hil: a one-EVSE DUT configuration with a
pilot (examples/pi-2evse.toml's EVSE 1) and a real bench profile wiring it as hil/benches/example-real.toml does."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCHES = ROOT / "hil" / "benches"

COMPARATOR_DUT = """
[evses.pilot]
output = "sysfs"
input = "comparator"
max_current_a = 20.0

[evses.pilot.sysfs]
chip = 0
channel = 0

[evses.pilot.comparator]
pins = ["GPIO7", "GPIO8", "GPIO9", "GPIO10", "GPIO11"]
low_ok_pin = "GPIO14"
"""
ADC_DUT = """
[evses.pilot]
output = "gpio"
input = "adc"

[evses.pilot.gpio]
pin = "GPIO7"
"""
COMPARATOR_LINES_TOML = """
[evses.pilot]
front_end = "comparator"
duty = "status"
pwm_pin = "GPIO18"

[evses.pilot.lines]
cp_ab  = { harness = "GPIO2",  dut = "GPIO7",  active_high = true }
cp_bc  = { harness = "GPIO3",  dut = "GPIO8",  active_high = true }
cp_cd  = { harness = "GPIO10", dut = "GPIO9",  active_high = true }
cp_de  = { harness = "GPIO11", dut = "GPIO10", active_high = true }
cp_ef  = { harness = "GPIO14", dut = "GPIO11", active_high = true }
low_ok = { harness = "GPIO15", dut = "GPIO14", active_high = true }
"""
ANALOG_TOML = """
[evses.pilot]
front_end = "analog"
duty = "adc"
pwm_pin = "GPIO7"
duty_channel = 3
duty_spi_device = 1

[evses.pilot.lines]
ev_present   = { harness = "GPIO2",  active_high = true }
s2_c         = { harness = "GPIO3",  active_high = true }
cp_short     = { harness = "GPIO14", active_high = false }
diode_bypass = { harness = "GPIO15", active_high = true }
"""


def one_evse_dut(tmp_path: Path, pilot: str) -> Path:
    """examples/pi-2evse.toml's EVSE 1 alone, with ``pilot`` (an [evses.pilot] table); the file's path."""
    text = (ROOT / "examples" / "pi-2evse.toml").read_text(encoding="utf-8")
    text = text[: text.index("# ------------------------------------------------------------------ EVSE 2")]
    path = tmp_path / "dut.toml"
    path.write_text(text + pilot, encoding="utf-8")
    return path


def real_profile(dut: Path, pilot: str) -> str:
    """A real bench wiring EVSE 1 of ``dut`` as example-real.toml does, plus ``pilot`` ([evses.pilot] text)."""
    example = (BENCHES / "example-real.toml").read_text(encoding="utf-8")
    lines = example[example.index("[[evses]]"): example.index("# A DUT with a control pilot")]
    return (f'[bench]\nkind = "real"\n[dut]\nconfig = "{dut}"\napi = "http://192.168.50.10:8080"\n'
            f'[meter]\nlink = "rtu"\nport = "/dev/ttyUSB0"\n{lines}{pilot}')
