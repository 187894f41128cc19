"""PP resistance -> cable rating at every band edge, and the divider that measures it."""

from __future__ import annotations

import math

import pytest

from drivers.pilot.proximity import PpStatus, cable_rating, resistance_from_divider


@pytest.mark.parametrize(
    ("ohms", "status", "amps"),
    [
        (0.0, PpStatus.FAULT, 0.0),
        (74.9, PpStatus.FAULT, 0.0),
        (75.0, PpStatus.RATED, 63.0),
        (100.0, PpStatus.RATED, 63.0),  # nominal 63 A
        (149.9, PpStatus.RATED, 63.0),
        (150.0, PpStatus.RATED, 32.0),
        (220.0, PpStatus.RATED, 32.0),  # nominal 32 A
        (329.9, PpStatus.RATED, 32.0),
        (330.0, PpStatus.RATED, 20.0),
        (680.0, PpStatus.RATED, 20.0),  # nominal 20 A
        (999.9, PpStatus.RATED, 20.0),
        (1000.0, PpStatus.RATED, 13.0),
        (1500.0, PpStatus.RATED, 13.0),  # nominal 13 A
        (2200.0, PpStatus.RATED, 13.0),
        (2200.1, PpStatus.NO_CABLE, 0.0),
        (math.inf, PpStatus.NO_CABLE, 0.0),
        (-1.0, PpStatus.FAULT, 0.0),
        (math.nan, PpStatus.FAULT, 0.0),
    ],
)
def test_every_band_edge(ohms: float, status: PpStatus, amps: float) -> None:
    reading = cable_rating(ohms)
    assert (reading.status, reading.amps) == (status, amps)


@pytest.mark.parametrize("nominal", [100.0, 220.0, 680.0, 1500.0])
def test_the_nominal_values_plus_minus_3_percent_keep_their_rating(nominal: float) -> None:
    rating = cable_rating(nominal).amps
    assert cable_rating(nominal * 0.97).amps == rating
    assert cable_rating(nominal * 1.03).amps == rating


def test_the_divider_inverts_to_the_resistor() -> None:
    supply, pullup = 3.3, 1000.0
    for ohms in (100.0, 220.0, 680.0, 1500.0):
        volts = supply * ohms / (ohms + pullup)
        assert resistance_from_divider(volts, supply, pullup) == pytest.approx(ohms)
    assert resistance_from_divider(3.3, supply, pullup) == math.inf
    assert math.isnan(resistance_from_divider(-0.1, supply, pullup))
    assert cable_rating(resistance_from_divider(-0.1, supply, pullup)).status is PpStatus.FAULT
