"""Proximity pilot (PP): the cable's coding resistor -> the cable's current rating.

On a socket outlet (a detachable cable) the plug carries a resistor Rc between PP and PE whose
value codes the cable's current capability (IEC 61851-1 Annex B / IEC 62196-2): 1.5 kOhm 13 A,
680 Ohm 20 A, 220 Ohm 32 A, 100 Ohm 63 A (70 A on one phase), each +-3 % and 0.5 W (Siemens TM ECC
2xPWM manual A5E42681298B, Table 3-3). The advertised current must never exceed it.

The EVSE reads Rc with ranges wide enough for tolerances and wiring: < 75 Ohm fault,
75..150 63 A, 150..330 32 A, 330..1000 20 A, 1000..2200 13 A, > 2200 Ohm no coded cable (0 A)
(Phoenix Contact "EV Charge Control Basic" user manual 106377_en_04, Table 5-1, "coding ... according
to IEC 61851-1"; the same edges are in Tinkerforge's evse-v2-bricklet software/src/iec61851.h).
A band's lower edge belongs to it (e.g. exactly 330 Ohm reads 20 A, the lower rating of the two).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

SHORT_BELOW_OHM = 75.0  # below this: a short, a fault
NO_CABLE_ABOVE_OHM = 2200.0  # above this: no coded cable

# (lowest resistance, amps), from the lowest resistance (highest rating) up
PP_BANDS: tuple[tuple[float, float], ...] = (
    (75.0, 63.0),
    (150.0, 32.0),
    (330.0, 20.0),
    (1000.0, 13.0),
)


class PpStatus(StrEnum):
    """What the PP reading means."""

    RATED = "rated"  # a coded cable: ``amps`` is its rating
    NO_CABLE = "no_cable"  # open or above 2.2 kOhm: no cable (or an uncoded one), offer nothing
    FAULT = "fault"  # below 75 Ohm (a short) or an unreadable value


@dataclass(frozen=True, slots=True)
class PpReading:
    """The cable reading: status, rating (0.0 unless RATED) and the measured resistance."""

    status: PpStatus
    amps: float
    ohms: float


def cable_rating(ohms: float) -> PpReading:
    """Map a measured PP-PE resistance (Ohm, ``math.inf`` for open) to the cable's rating."""
    if isinstance(ohms, bool) or not isinstance(ohms, int | float):
        return PpReading(PpStatus.FAULT, 0.0, math.nan)
    ohms = float(ohms)
    if math.isnan(ohms) or ohms < 0:
        return PpReading(PpStatus.FAULT, 0.0, ohms)
    if ohms < SHORT_BELOW_OHM:
        return PpReading(PpStatus.FAULT, 0.0, ohms)
    if ohms > NO_CABLE_ABOVE_OHM:
        return PpReading(PpStatus.NO_CABLE, 0.0, ohms)
    amps = 0.0
    for low, rating in PP_BANDS:
        if ohms >= low:
            amps = rating
    return PpReading(PpStatus.RATED, amps, ohms)


def resistance_from_divider(voltage_v: float, supply_v: float, pullup_ohm: float) -> float:
    """Rc from the voltage at PP with a pull-up ``pullup_ohm`` to ``supply_v`` (Rc to PE below it).

    V = Vs * Rc / (Rc + Rpu), so Rc = Rpu * V / (Vs - V); at or above the supply the line is open
    (``math.inf``); below 0 V it is an unreadable value (NaN, which ``cable_rating`` calls a fault).
    """
    if not (math.isfinite(voltage_v) and math.isfinite(supply_v) and supply_v > 0 and pullup_ohm > 0):
        return float("nan")
    if voltage_v < 0:
        return float("nan")
    if voltage_v >= supply_v:
        return math.inf
    return pullup_ohm * voltage_v / (supply_v - voltage_v)
