"""Every GPIO pin at most once in the whole file, whatever name it was written with.

Kept apart from build.py as one cross-check over every EVSE's raw tables: the GPIO driver sections' pin
options, then the pins its control pilot uses (controller.config.pilot.pilot_pins: an output pin, comparator
lines, the ADC's SPI0 lines, which several ADC inputs may share). Read from the raw values, so a problem
elsewhere in a table hides no pin used twice; a value that is no pin is left to the table's own validation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from controller.config.pilot import PinClaim, pilot_pins
from controller.config.schema import DRIVER_SECTIONS, describe_value, is_pin_field, normalize_pin


def _claims(raw: Mapping[str, Any], label: str, simulated: bool) -> Iterator[tuple[str, PinClaim]]:
    """(section path, claim) for every pin one EVSE's raw table names, driver sections first."""
    for section_name in DRIVER_SECTIONS:
        section = raw.get(section_name)
        if not isinstance(section, Mapping):
            continue
        section_path = f"{label}.{section_name}"
        for key, value in section.items():
            if isinstance(key, str) and is_pin_field(key):
                yield section_path, PinClaim(value, f"{section_path}.{key}")
    for claim in pilot_pins(raw.get("pilot"), f"{label}.pilot", simulated=simulated):
        yield f"{label}.pilot", claim


def check_pins(raw_evses: list[Any], labels: list[str], simulated: bool,
               problem: Callable[[str, str], None]) -> set[str]:
    """Report each pin used a second time (at the second use); the section paths with such a pin."""
    used: dict[str, PinClaim] = {}
    in_conflict: set[str] = set()
    for index, raw in enumerate(raw_evses):
        if not isinstance(raw, Mapping):
            continue
        for section_path, claim in _claims(raw, labels[index], simulated):
            try:
                pin = normalize_pin(claim.value)
            except ValueError:
                continue  # the section's own validation reports it
            first = used.get(pin)
            if first is None:
                used[pin] = claim
            elif claim.share is None or claim.share != first.share:
                written = "" if claim.value == pin else f" (written {describe_value(claim.value)})"
                role = "" if claim.role is None else f" ({claim.role})"
                problem(claim.path, f"pin {pin}{role}{written} is already used by {first.where}")
                in_conflict.add(section_path)
    return in_conflict
