"""SysfsPwmOutput against a fake pwm sysfs tree: real files, the kernel's ABI, a kernel thread.

The fake kernel (``FakePwmChip``) creates ``pwmchipN/{npwm,export,unexport}`` and, a moment after
a channel number is written to ``export`` (as udev takes a moment on a Pi), ``pwmX/`` with
``period``, ``duty_cycle``, ``enable`` and ``polarity``. What it cannot do with plain files is
refuse a write; so every write the driver makes is also recorded and replayed against the
kernel's rule (duty_cycle <= period) by ``assert_kernel_would_accept``.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from drivers.pilot.duty import current_for_duty, duty_for_current
from drivers.pilot.interfaces import OutputMode, PilotOutput
from drivers.pilot.sysfs import SysfsPwmError, SysfsPwmOutput


class FakePwmChip:
    """A pwmchip directory whose export file a thread serves, as the kernel does."""

    def __init__(self, root: Path, chip: int = 0, npwm: int = 2, delay_s: float = 0.02) -> None:
        """Create the chip directory and start serving its export file."""
        self.dir = root / f"pwmchip{chip}"
        self.dir.mkdir(parents=True)
        (self.dir / "npwm").write_text(f"{npwm}\n")
        (self.dir / "export").write_text("")
        (self.dir / "unexport").write_text("")
        self.delay_s = delay_s
        self.exports: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        """Create pwmX a moment after X is written to export, as the kernel and udev do."""
        while not self._stop.is_set():
            text = (self.dir / "export").read_text().strip()
            if text:
                (self.dir / "export").write_text("")
                channel = int(text)
                self.exports.append(channel)
                time.sleep(self.delay_s)
                self.make_channel(channel)
            time.sleep(0.001)

    def make_channel(self, channel: int) -> Path:
        """What the kernel creates on export: the channel's attributes, disabled."""
        pwm = self.dir / f"pwm{channel}"
        pwm.mkdir(exist_ok=True)
        for name, value in (("period", "0"), ("duty_cycle", "0"), ("enable", "0"), ("polarity", "normal")):
            (pwm / name).write_text(value + "\n")
        return pwm

    def read(self, channel: int, name: str) -> str:
        """One attribute of an exported channel."""
        return (self.dir / f"pwm{channel}" / name).read_text().strip()

    def stop(self) -> None:
        """Stop serving exports."""
        self._stop.set()
        self._thread.join(timeout=1)


@pytest.fixture
def chip(tmp_path: Path) -> Iterator[FakePwmChip]:
    """A fake pwmchip0 under a temporary sysfs root."""
    fake = FakePwmChip(tmp_path)
    yield fake
    fake.stop()


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Every (file name, value) the driver writes, in order (the real write still happens)."""
    seen: list[tuple[str, str]] = []
    real = SysfsPwmOutput._write_file

    def spy(self: SysfsPwmOutput, path: Path, value: str) -> None:
        """Record the write, then do it."""
        seen.append((path.name, value))
        real(self, path, value)

    monkeypatch.setattr(SysfsPwmOutput, "_write_file", spy)
    return seen


def assert_kernel_would_accept(writes: list[tuple[str, str]]) -> None:
    """Replay the writes against drivers/pwm/sysfs.c's rule: duty_cycle never above period."""
    period, duty = 0, 0
    for name, value in writes:
        if name == "period":
            period = int(value)
        elif name == "duty_cycle":
            duty = int(value)
        else:
            continue
        assert duty <= period, f"kernel refuses: duty_cycle {duty} > period {period} after writing {name}"


def test_exports_waits_for_the_channel_and_rests_at_off(chip: FakePwmChip, writes: list[tuple[str, str]]) -> None:
    out = SysfsPwmOutput(0, 1, sysfs_root=chip.dir.parent)
    assert chip.exports == [1]
    assert chip.read(1, "period") == "1000000"  # 1 kHz in ns
    assert chip.read(1, "duty_cycle") == "0"  # off: -12 V
    assert chip.read(1, "enable") == "1"
    assert chip.read(1, "polarity") == "normal"
    assert out.report().mode is OutputMode.OFF
    assert isinstance(out, PilotOutput)
    assert_kernel_would_accept(writes)


def test_duty_is_written_in_nanoseconds_and_floored(chip: FakePwmChip, writes: list[tuple[str, str]]) -> None:
    out = SysfsPwmOutput(0, 0, sysfs_root=chip.dir.parent)
    report = out.set_current(16.0)
    assert chip.read(0, "duty_cycle") == "266666"  # 26.6667 % of 1 ms, floored
    assert report.mode is OutputMode.PWM
    assert report.advertised_a == pytest.approx(16.0)
    assert report.duty_percent == pytest.approx(16.0 / 0.6)
    assert out.state_b().mode is OutputMode.STANDBY
    assert chip.read(0, "duty_cycle") == "1000000"  # constant +12 V
    assert out.set_duty(5.0).mode is OutputMode.DIGITAL
    assert chip.read(0, "duty_cycle") == "50000"
    assert out.set_current(0.0).mode is OutputMode.STANDBY  # a 0 A limit: no offer
    assert out.off().mode is OutputMode.OFF
    assert chip.read(0, "duty_cycle") == "0"
    assert_kernel_would_accept(writes)


@pytest.mark.parametrize("invert", [False, True])
def test_the_car_never_reads_more_than_asked(chip: FakePwmChip, invert: bool) -> None:
    out = SysfsPwmOutput(0, 0, sysfs_root=chip.dir.parent, invert=invert)
    for tenths in range(60, 801, 7):
        amps = tenths / 10
        out.set_current(amps)
        pin_ns = int(chip.read(0, "duty_cycle"))
        cp_ns = 1_000_000 - pin_ns if invert else pin_ns
        assert cp_ns <= duty_for_current(amps) * 10_000 + 1e-6
        assert current_for_duty(cp_ns / 10_000) <= amps + 1e-9
        assert cp_ns >= duty_for_current(amps) * 10_000 - 1  # and loses less than a nanosecond


def test_an_inverting_front_end_gets_the_complement(chip: FakePwmChip) -> None:
    out = SysfsPwmOutput(0, 0, sysfs_root=chip.dir.parent, invert=True)
    assert chip.read(0, "duty_cycle") == "1000000"  # off: the pin high puts -12 V on CP
    out.state_b()
    assert chip.read(0, "duty_cycle") == "0"
    out.set_current(6.0)
    assert chip.read(0, "duty_cycle") == "900000"


def test_an_exported_channel_is_reused(chip: FakePwmChip, writes: list[tuple[str, str]]) -> None:
    chip.make_channel(0)
    SysfsPwmOutput(0, 0, sysfs_root=chip.dir.parent)
    assert chip.exports == []
    assert ("export", "0") not in writes


def test_a_channel_left_with_a_long_duty_is_reprogrammed_in_kernel_order(
    chip: FakePwmChip, writes: list[tuple[str, str]]
) -> None:
    pwm = chip.make_channel(0)
    (pwm / "period").write_text("2000000\n")  # a previous user: 500 Hz at 75 %
    (pwm / "duty_cycle").write_text("1500000\n")
    SysfsPwmOutput(0, 0, sysfs_root=chip.dir.parent)
    names = [name for name, _ in writes]
    assert names.index("duty_cycle") < names.index("period")  # duty 0 first, or EINVAL
    assert_kernel_would_accept([("period", "2000000"), ("duty_cycle", "1500000"), *writes])


def test_close_returns_to_off_and_can_unexport(chip: FakePwmChip, writes: list[tuple[str, str]]) -> None:
    out = SysfsPwmOutput(0, 0, sysfs_root=chip.dir.parent, unexport_on_close=True)
    out.set_current(32.0)
    out.close()
    out.close()  # idempotent
    assert writes[-3:] == [("duty_cycle", "0"), ("enable", "0"), ("unexport", "0")]
    with pytest.raises(RuntimeError, match="closed"):
        out.set_current(10.0)


def test_a_missing_chip_names_the_path_and_the_overlay(tmp_path: Path) -> None:
    with pytest.raises(SysfsPwmError, match=r"pwmchip3: no such PWM chip .*dtoverlay"):
        SysfsPwmOutput(3, 0, sysfs_root=tmp_path)


def test_a_channel_beyond_npwm_is_refused(chip: FakePwmChip) -> None:
    with pytest.raises(SysfsPwmError, match=r"npwm: channel 2 is outside 0..1"):
        SysfsPwmOutput(0, 2, sysfs_root=chip.dir.parent)


def test_an_export_that_never_appears_times_out(chip: FakePwmChip) -> None:
    chip.stop()  # no kernel thread: the export is never served
    with pytest.raises(SysfsPwmError, match=r"pwm0: not created within 0.05 s"):
        SysfsPwmOutput(0, 0, sysfs_root=chip.dir.parent, export_timeout_s=0.05)


def test_a_refused_write_names_the_file(chip: FakePwmChip) -> None:
    out = SysfsPwmOutput(0, 0, sysfs_root=chip.dir.parent)
    (chip.dir / "pwm0" / "duty_cycle").unlink()
    (chip.dir / "pwm0" / "duty_cycle").mkdir()  # writing a directory fails like a refused write
    with pytest.raises(SysfsPwmError, match=r"duty_cycle: writing"):
        out.set_current(10.0)


def test_frequency_is_validated(chip: FakePwmChip) -> None:
    with pytest.raises(ValueError, match="frequency_hz"):
        SysfsPwmOutput(0, 0, sysfs_root=chip.dir.parent, frequency_hz=math.inf)
