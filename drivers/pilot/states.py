"""Control-pilot states from CP voltages: bands with hysteresis, a debounce and the diode check.

Pure (time comes in as a value), so the same decoder runs behind an ADC, behind comparator
lines and in the simulator, and is tested at every threshold without hardware.

The EVSE measures the CP voltage in the high phase of its PWM (IEC 61851-1 Table A.4, "system
states detected by the EVSE"): A +12 V (no EV), B +9 V (EV connected), C +6 V (EV ready),
D +3 V (EV ready, ventilation required), E 0 V (CP shorted to PE, or no supply), F -12 V (EVSE not
available). The default bands are the nominal +-1 V (A 11..13 V, B 8..10 V, C 5..7 V, D 2..4 V,
E -1..1 V, F -13..-11 V), as the Siemens TM ECC 2xPWM manual (A5E42681298B, Table 3-2: "tolerance
+-1 V") lists them; chargebyte's Tarragon driver uses the same bands (with E up to 2 V), "mostly
based on IEC 61851-1 Table A.4" (chargebyte/everest-chargebyte, utils/cp/CPUtils.cpp).

Between two bands lies a gap (10..11 V between A and B, ...). A reading in a gap keeps the side
the line came from: at or above the upper state -> the upper state, at or below the lower state
-> the lower one (chargebyte's rule, which is this decoder's hysteresis), but only within
``hysteresis_v`` of that side; elsewhere, and with no known previous state, it is INVALID.

Debounce and noise: a new level counts only after ``confirm_samples`` equal readings in a row
that also span ``hold_s`` seconds (chargebyte needs two equal rounds; OpenEVSE holds 250 ms,
25 ms towards A: open_evse.h ``DELAY_STATE_TRANSITION``). A single spike never changes the state.
Keep confirm_samples x sample period + contactor opening time well inside the 100 ms the EVSE has
to switch off after C -> B (Table A.6 sequence 8.1, as EVerest's IECStateMachine.cpp quotes it).

Diode check: while the PWM runs, the low phase must sit in the F band (-12 V +- 1 V). An EV's
series diode blocks the negative half; without it the low phase mirrors the high one (EVerest's
YetiSimulator models it as low = -high). In B/C/D with PWM on, a low phase outside the F band is a
diode fault: the decoder reports state F with ``PilotError.DIODE`` and keeps it latched until the
line reads A (no EV), as chargebyte does, so the fault cannot flicker with PWM on/off.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from enum import StrEnum


class CpState(StrEnum):
    """IEC 61851-1 control-pilot states as the EVSE detects them."""

    A = "A"  # +12 V: no EV
    B = "B"  # +9 V: EV connected, not ready
    C = "C"  # +6 V: EV ready, no ventilation required
    D = "D"  # +3 V: EV ready, ventilation required
    E = "E"  # 0 V: CP shorted to PE / no supply
    F = "F"  # -12 V: EVSE not available (or a diode fault)


class PilotError(StrEnum):
    """Why the pilot is faulted (the controller maps these to EVSE faults)."""

    DIODE = "diode"  # PWM on, EV present, low phase not at -12 V: the EV's diode is missing/shorted
    CP_SHORT = "cp_short"  # state E: CP at 0 V
    OUT_OF_RANGE = "out_of_range"  # a stable reading in no band (front end or wiring fault)


_RANK = {CpState.A: 5, CpState.B: 4, CpState.C: 3, CpState.D: 2, CpState.E: 1, CpState.F: 0}
NOMINAL_V: dict[CpState, float] = {
    CpState.A: 12.0,
    CpState.B: 9.0,
    CpState.C: 6.0,
    CpState.D: 3.0,
    CpState.E: 0.0,
    CpState.F: -12.0,
}


@dataclass(frozen=True, slots=True)
class CpThresholds:
    """Voltage bands (inclusive, V, CP high phase) and the hysteresis reach into each gap."""

    a_min: float = 11.0
    a_max: float = 13.0
    b_min: float = 8.0
    b_max: float = 10.0
    c_min: float = 5.0
    c_max: float = 7.0
    d_min: float = 2.0
    d_max: float = 4.0
    e_min: float = -1.0
    e_max: float = 1.0
    f_min: float = -13.0
    f_max: float = -11.0
    hysteresis_v: float = 1.0

    def __post_init__(self) -> None:
        """Validate the bands: finite, descending from A to F, not overlapping."""
        values = [
            ("a_max", self.a_max),
            ("a_min", self.a_min),
            ("b_max", self.b_max),
            ("b_min", self.b_min),
            ("c_max", self.c_max),
            ("c_min", self.c_min),
            ("d_max", self.d_max),
            ("d_min", self.d_min),
            ("e_max", self.e_max),
            ("e_min", self.e_min),
            ("f_max", self.f_max),
            ("f_min", self.f_min),
        ]
        for name, value in [*values, ("hysteresis_v", self.hysteresis_v)]:
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"CpThresholds.{name}: must be a finite number, got {value!r}")
        for (upper_name, upper), (lower_name, lower) in itertools.pairwise(values):
            if not upper > lower:
                raise ValueError(
                    f"CpThresholds.{lower_name}: {lower!r} must be below {upper_name} ({upper!r}); "
                    "bands run from A (highest) down to F and must not overlap"
                )
        if self.hysteresis_v < 0:
            raise ValueError(f"CpThresholds.hysteresis_v: must be >= 0, got {self.hysteresis_v!r}")

    def bands(self) -> list[tuple[CpState, float, float]]:
        """(state, low, high) from A down to F."""
        return [
            (CpState.A, self.a_min, self.a_max),
            (CpState.B, self.b_min, self.b_max),
            (CpState.C, self.c_min, self.c_max),
            (CpState.D, self.d_min, self.d_max),
            (CpState.E, self.e_min, self.e_max),
            (CpState.F, self.f_min, self.f_max),
        ]


DEFAULT_THRESHOLDS = CpThresholds()


def classify(high_v: float, previous: CpState | None, thresholds: CpThresholds = DEFAULT_THRESHOLDS) -> CpState | None:
    """The state a high-phase voltage means, given the previous state; None: in no band (invalid).

    In a gap between an upper state U and a lower state L: within ``hysteresis_v`` below U's band,
    a line that was at U or above stays U; within ``hysteresis_v`` above L's band, a line that was at
    L or below stays L; anything else in a gap is invalid.
    """
    if not math.isfinite(high_v):
        return None
    bands = thresholds.bands()
    for state, low, high in bands:
        if low <= high_v <= high:
            return state
    if previous is None:
        return None
    rank = _RANK[previous]
    hyst = thresholds.hysteresis_v
    for (upper, upper_low, _), (lower, _, lower_high) in itertools.pairwise(bands):
        if lower_high < high_v < upper_low:
            if rank >= _RANK[upper] and high_v >= upper_low - hyst:
                return upper
            if rank <= _RANK[lower] and high_v <= lower_high + hyst:
                return lower
            return None
    return None  # above A or below F


def low_phase_ok(low_v: float, thresholds: CpThresholds = DEFAULT_THRESHOLDS) -> bool:
    """True when the PWM's low phase is at -12 V (inside the F band): the EV's diode blocks it."""
    return math.isfinite(low_v) and thresholds.f_min <= low_v <= thresholds.f_max


@dataclass(frozen=True, slots=True)
class PilotReading:
    """The debounced pilot: state (None until the first stable reading), error, last raw volts."""

    state: CpState | None
    error: PilotError | None
    high_v: float
    low_v: float | None
    since: float  # monotonic s when ``state``/``error`` last changed


_Level = tuple[CpState | None, PilotError | None]


class PilotDecoder:
    """Turns raw CP samples into a debounced state with the diode check and E/F faults.

    Feed each sample with ``update(high_v, low_v, pwm_on, now)``; ``low_v`` is None when the front
    end cannot measure the low phase (no diode check then). ``pwm_on`` says whether the output is
    a square wave right now (0 % < duty < 100 %): only then does a low phase exist to check.
    """

    def __init__(
        self,
        thresholds: CpThresholds = DEFAULT_THRESHOLDS,
        *,
        confirm_samples: int = 3,
        hold_s: float = 0.0,
    ) -> None:
        """A decoder with no state yet; see the class docstring for the arguments."""
        if isinstance(confirm_samples, bool) or not isinstance(confirm_samples, int) or confirm_samples < 1:
            raise ValueError(f"confirm_samples: must be a whole number >= 1, got {confirm_samples!r}")
        if not math.isfinite(hold_s) or hold_s < 0:
            raise ValueError(f"hold_s: must be >= 0, got {hold_s!r}")
        self._thresholds = thresholds
        self._confirm = confirm_samples
        self._hold_s = hold_s
        self._stable: _Level = (None, None)
        self._since = 0.0
        self._candidate: _Level | None = None
        self._candidate_count = 0
        self._candidate_since = 0.0
        self._last_class: CpState | None = None  # undebounced band, for hysteresis
        self._diode_latched = False
        self._high_v = math.nan
        self._low_v: float | None = None

    @property
    def thresholds(self) -> CpThresholds:
        """The voltage bands in use."""
        return self._thresholds

    @property
    def reading(self) -> PilotReading:
        """The debounced state and error with the last raw voltages."""
        state, error = self._stable
        return PilotReading(state, error, self._high_v, self._low_v, self._since)

    @property
    def state(self) -> CpState | None:
        """The debounced state (None until the first stable reading)."""
        return self._stable[0]

    @property
    def error(self) -> PilotError | None:
        """The debounced error, if any."""
        return self._stable[1]

    def _level(self, high_v: float, low_v: float | None, pwm_on: bool) -> _Level:
        """The undebounced (state, error) one sample stands for."""
        previous = self._last_class if self._last_class is not None else self._stable[0]
        band = classify(high_v, previous, self._thresholds)
        self._last_class = band
        if band is None:
            return (None, PilotError.OUT_OF_RANGE)
        if band is CpState.A:
            return (CpState.A, None)
        if band is CpState.E:
            return (CpState.E, PilotError.CP_SHORT)
        if self._diode_latched:
            return (CpState.F, PilotError.DIODE)
        ev_present = band in (CpState.B, CpState.C, CpState.D)
        if ev_present and pwm_on and low_v is not None and not low_phase_ok(low_v, self._thresholds):
            return (CpState.F, PilotError.DIODE)
        return (band, None)

    def update(self, high_v: float, low_v: float | None, pwm_on: bool, now: float) -> bool:
        """Take one sample at ``now`` (monotonic s); True if the debounced state or error changed."""
        self._high_v = high_v
        self._low_v = low_v
        level = self._level(high_v, low_v, pwm_on)
        if level == self._stable:
            self._candidate = None
            return False
        if level != self._candidate:
            self._candidate = level
            self._candidate_count = 0
            self._candidate_since = now
        self._candidate_count += 1
        if self._candidate_count < self._confirm or now - self._candidate_since < self._hold_s:
            return False
        self._stable = level
        self._since = now
        self._candidate = None
        if level[1] is PilotError.DIODE:
            self._diode_latched = True
        elif level[0] is CpState.A:
            self._diode_latched = False  # the EV has gone: a new one gets a fresh check
        return True

    def reset(self) -> None:
        """Forget everything (e.g. after the front end was re-initialised)."""
        self._stable = (None, None)
        self._candidate = None
        self._last_class = None
        self._diode_latched = False
