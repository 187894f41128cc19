"""CP input through a comparator front end: one GPIO line per threshold, decoded to a state.

Many simple CP front ends (and some pilot ICs) compare the peak-detected high phase against a
ladder of thresholds and give each result as a logic line, so a Pi with no ADC can read the
state. Five lines, from the A/B threshold down to the E/F one, are a thermometer code: the
number of active lines is the state (5: A, 4: B, 3: C, 2: D, 1: E, 0: F), and as a line is active
above its threshold they are the lowest thresholds' (B: all but the A/B line). A pattern that is not
a thermometer (a higher line active while a lower one is not) is a broken comparator or wire and
reads as out of range. An optional ``low_ok`` line is active while the low phase is at -12 V.

The lines are turned into the nominal voltage of their state and fed to the same
``PilotDecoder`` as the ADC path, so debounce, the diode check and E/F faults are shared (the
comparators bring their own hysteresis; the decoder's bands simply hold the nominal values).
"""

from __future__ import annotations

from typing import Any

from gpiozero import DigitalInputDevice

from drivers.pilot.config import ComparatorInputConfig
from drivers.pilot.proximity import PpReading
from drivers.pilot.states import NOMINAL_V, CpState, PilotDecoder, PilotReading

_BY_COUNT = [CpState.F, CpState.E, CpState.D, CpState.C, CpState.B, CpState.A]
LOW_OK_V = -12.0  # what an active low-ok line stands for
LOW_MISSING_V = 0.0  # what an inactive one stands for (outside the F band: a diode fault)


def decode_lines(levels: list[bool]) -> CpState | None:
    """The state of a thermometer code (highest threshold first, so the active lines are the last ones: B is
    ``[False, True, True, True, True]``); None if it is not one."""
    count = sum(levels)
    if levels != [False] * (len(levels) - count) + [True] * count:
        return None
    return _BY_COUNT[count]


class ComparatorPilotInput:
    """Implements ``PilotInput`` on comparator lines (no PP: ``cable()`` is None)."""

    def __init__(self, config: ComparatorInputConfig, decoder: PilotDecoder, *, pin_factory: Any) -> None:
        """Open one input per comparator line (and the optional low-ok line)."""
        if pin_factory is None:
            raise ValueError("pin_factory: required (no global gpiozero Device.pin_factory is used)")
        self._config = config
        self._decoder = decoder
        self._closed = False
        self._lines: list[Any] = []
        self._low_ok: Any = None
        try:
            for pin in config.pins:
                self._lines.append(self._make(pin, pin_factory))
            if config.low_ok_pin is not None:
                self._low_ok = self._make(config.low_ok_pin, pin_factory)
        except Exception:
            self.close()
            raise

    def _make(self, pin: str, pin_factory: Any) -> Any:
        """One comparator line as a gpiozero input, with the config's pull and active level."""
        cfg = self._config
        if cfg.pull_up is None:
            return DigitalInputDevice(pin, pull_up=None, active_state=cfg.active_high, pin_factory=pin_factory)
        device = DigitalInputDevice(pin, pull_up=cfg.pull_up, pin_factory=pin_factory)
        return device

    def _active(self, device: Any) -> bool:
        """Whether a line reports its condition, whatever the pull."""
        active = bool(device.is_active)
        if self._config.pull_up is not None and (not self._config.pull_up) != self._config.active_high:
            active = not active  # gpiozero ties the active level to the pull; the config says which it is
        return active

    def levels(self) -> list[bool]:
        """The comparator lines now, highest threshold first."""
        return [self._active(line) for line in self._lines]

    def read_cp(self) -> tuple[float, float | None]:
        """The lines as (nominal high-phase V, nominal low-phase V or None); NaN for a broken code."""
        state = decode_lines(self.levels())
        high = NOMINAL_V[state] if state is not None else float("nan")
        if self._low_ok is None:
            return high, None
        return high, LOW_OK_V if self._active(self._low_ok) else LOW_MISSING_V

    def sample(self, now: float, *, pwm_on: bool) -> PilotReading:
        """Read the lines once and feed the decoder."""
        high, low = self.read_cp()
        self._decoder.update(high, low, pwm_on, now)
        return self._decoder.reading

    def reading(self) -> PilotReading:
        """The last debounced reading."""
        return self._decoder.reading

    def cable(self) -> PpReading | None:
        """No PP input on a comparator front end."""
        return None

    def close(self) -> None:
        """Release the lines; idempotent."""
        if self._closed:
            return
        self._closed = True
        for device in [*self._lines, self._low_ok]:
            if device is not None:
                device.close()
        self._lines.clear()
        self._low_ok = None
