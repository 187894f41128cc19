"""CP PWM on the Pi's hardware PWM through the kernel's pwm sysfs interface (the default backend).

Why this backend: the Pi's PWM block times every edge in hardware, so 1 kHz and the pulse width
hold whatever Linux and Python are doing; the software only writes a new duty. gpiozero's
``PWMOutputDevice`` on lgpio is software-timed (``drivers.pilot.output``), and at 10 % duty the
high pulse is only 100 us long. ``rpi-hardware-pwm`` (PyPI) drives the same kernel interface;
it is not used because it hard-codes the sysfs root (so it cannot be tested against a fake tree)
and adds a dependency for ~50 lines. This module speaks the same file protocol itself.

The kernel ABI (Linux Documentation/ABI/testing/sysfs-class-pwm, drivers/pwm/sysfs.c):
``/sys/class/pwm/pwmchipN/`` has ``npwm``, ``export`` and ``unexport``; writing a channel number
to ``export`` creates ``pwmX/`` with ``period`` and ``duty_cycle`` (nanoseconds), ``enable`` (0/1)
and ``polarity`` (normal/inversed). The kernel refuses a duty_cycle above the period (EINVAL),
so duty goes to 0 before the period is set. ``pwmX/`` appears, and udev makes it writable for the
gpio group, a moment after the export: the driver waits for it (``export_timeout_s``).

Raspberry Pi wiring (rpi-hardware-pwm's README): Pi 1-4 need ``dtoverlay=pwm-2chan`` in
config.txt; chip 0, channel 0 = GPIO18 and channel 1 = GPIO19 (or GPIO12/13 with
``pin=12,func=4,pin2=13,func2=4``). Pi 5: chip 2, channels 0/1 = GPIO12/13, 2/3 = GPIO18/19.

Quantisation: the duty is floored to whole nanoseconds (never rounded up: the car must not read
more than offered); the kernel may round further to its clock, so the duty is read back.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

from drivers.pilot.duty import PWM_FREQUENCY_HZ
from drivers.pilot.output import Clock, PwmPilotOutput

DEFAULT_SYSFS_ROOT = Path("/sys/class/pwm")


class SysfsPwmError(RuntimeError):
    """The pwm sysfs tree is missing, or refused a write (the message names the file)."""


class SysfsPwmOutput(PwmPilotOutput):
    """Implements ``PilotOutput`` on one kernel PWM channel (``pwmchip<chip>/pwm<channel>``).

    ``sysfs_root`` is injectable so tests run the real file protocol against a fake tree. The
    channel is enabled at once with a 0 % duty (``off``, -12 V) and stays enabled; ``close()``
    leaves it at ``off`` and, with ``unexport_on_close``, hands it back to the kernel.
    """

    def __init__(
        self,
        chip: int,
        channel: int,
        *,
        sysfs_root: Path | str = DEFAULT_SYSFS_ROOT,
        frequency_hz: float = PWM_FREQUENCY_HZ,
        invert: bool = False,
        export_timeout_s: float = 2.0,
        unexport_on_close: bool = False,
        clock: Clock = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Export (or reuse) the channel, program 1 kHz at 0 % and enable it."""
        if not 1.0 <= frequency_hz <= 1_000_000.0:
            raise ValueError(f"frequency_hz: {frequency_hz!r} is outside [1, 1e6]")
        self._chip_dir = Path(sysfs_root) / f"pwmchip{chip}"
        self._channel = channel
        self._dir = self._chip_dir / f"pwm{channel}"
        self._period_ns = round(1e9 / frequency_hz)
        self._sleep = sleep
        self._unexport = unexport_on_close
        self._export(export_timeout_s)
        # duty 0 first: the kernel refuses a period below the current duty_cycle
        self._write("duty_cycle", 0)
        self._write("period", self._period_ns)
        self._write("polarity", "normal")
        self._write("enable", 1)
        super().__init__(invert=invert, clock=clock)
        self._set(0.0)  # the resting level, inversion applied

    @property
    def path(self) -> Path:
        """The channel's sysfs directory."""
        return self._dir

    @property
    def period_ns(self) -> int:
        """The PWM period written to the kernel."""
        return self._period_ns

    def _export(self, timeout_s: float) -> None:
        """Export the channel if needed and wait until the kernel (and udev) made its files."""
        if not self._chip_dir.is_dir():
            raise SysfsPwmError(
                f"{self._chip_dir}: no such PWM chip (enable the PWM overlay, e.g. dtoverlay=pwm-2chan)"
            )
        npwm = self._chip_dir / "npwm"
        if npwm.exists():
            count = int(npwm.read_text().strip() or "0")
            if not 0 <= self._channel < count:
                raise SysfsPwmError(f"{npwm}: channel {self._channel} is outside 0..{count - 1}")
        if not self._dir.is_dir():
            self._write_file(self._chip_dir / "export", str(self._channel))
        deadline = time.monotonic() + timeout_s
        needed = [self._dir / name for name in ("period", "duty_cycle", "enable")]
        while not all(path.exists() for path in needed):
            if time.monotonic() >= deadline:
                raise SysfsPwmError(f"{self._dir}: not created within {timeout_s} s of the export")
            self._sleep(0.005)

    def _write_file(self, path: Path, value: str) -> None:
        """Write one sysfs attribute; a refused write raises SysfsPwmError naming the file."""
        try:
            with path.open("w") as file:
                file.write(value)
        except OSError as exc:
            raise SysfsPwmError(f"{path}: writing {value!r} failed: {exc}") from exc

    def _write(self, name: str, value: int | str) -> None:
        """Write one of the channel's attributes."""
        self._write_file(self._dir / name, str(value))

    def _read_int(self, name: str) -> int:
        """Read one of the channel's integer attributes."""
        path = self._dir / name
        try:
            return int(path.read_text().strip())
        except (OSError, ValueError) as exc:
            raise SysfsPwmError(f"{path}: unreadable: {exc}") from exc

    def _apply(self, fraction: float) -> float:
        """Write the duty in nanoseconds (never rounded towards more current) and read it back."""
        exact = fraction * self._period_ns
        # never offer more than asked: floor the pin's duty, or ceil it behind an inverting front end
        duty_ns = math.ceil(exact - 1e-6) if self._invert else math.floor(exact + 1e-6)
        self._write("duty_cycle", duty_ns)
        period = self._read_int("period") or self._period_ns
        return self._read_int("duty_cycle") / period

    def _release(self) -> None:
        """Optionally disable and unexport the channel."""
        if self._unexport:
            self._write("enable", 0)
            self._write_file(self._chip_dir / "unexport", str(self._channel))
