"""A bench profile's control pilots: how the harness plays the car on each EVSE's CP, checked against the DUT.

Sim bench: ``[dut] pilots = true`` keeps the DUT's pilots (``sim_pilot``): the simulated car on each CP line plays
the EV, and the PWM's duty is read from the mock pin's state history. Real bench: an ``[evses.pilot]`` table per EVSE
(``pilot_wiring``): the front end the harness plays the car through (``comparator``: it drives the DUT's comparator
inputs; ``analog``: it switches a car simulator's resistors on the real CP line), how it measures the duty (``adc``:
an RC low-pass of the DUT's PWM pin into the harness's MCP3008; ``status``: the DUT's own /status) and the wires,
each checked against the DUT's ``[evses.pilot]``.
"""

from __future__ import annotations

from typing import Any

from controller.config.model import EvseConfig
from drivers.pilot.config import PilotConfig
from hil.profile import CAR_SWITCHES, COMPARATOR_LINES, DutyAdc, LineSpec, PilotWiring, ProfileError
from hil.profile_reader import Reader

SYSFS_PINS: dict[tuple[int, int], tuple[str, ...]] = {
    (0, 0): ("GPIO12", "GPIO18"),  # Pi 1-4: PWM0 on GPIO12 or GPIO18 (pwm-2chan: GPIO18)
    (0, 1): ("GPIO13", "GPIO19"),  # PWM1 on GPIO13 or GPIO19
    (2, 0): ("GPIO12",), (2, 1): ("GPIO13",), (2, 2): ("GPIO18",), (2, 3): ("GPIO19",),  # Pi 5 (RP1)
}
"""The pins a kernel PWM channel (chip, channel) can drive; another chip is not checked."""

PILOT_KEYS = {"front_end", "duty", "pwm_pin", "duty_channel", "duty_spi_device", "adc_vref_v", "pwm_high_v", "lines"}
ADC_KEYS = {"duty_channel", "duty_spi_device", "adc_vref_v", "pwm_high_v"}
REQUIRED_SWITCHES = ("ev_present", "s2_c", "cp_short", "diode_bypass")  # s2_d only for a car asking for ventilation


def dut_pwm_pins(pilot: PilotConfig) -> tuple[str, ...] | None:
    """The pins the DUT's PWM can be on; None when the bench cannot tell (a kernel PWM chip it does not know)."""
    if pilot.output == "gpio":
        assert pilot.gpio is not None  # PilotConfig checked it
        return (pilot.gpio.pin,)
    assert pilot.sysfs is not None
    return SYSFS_PINS.get((pilot.sysfs.chip, pilot.sysfs.channel))


def sim_pilot(evse: EvseConfig, source: str) -> PilotWiring | None:
    """The sim bench's CP of one EVSE: the DUT's own PWM pin (a mock pin) and its simulated car; None: no pilot."""
    if evse.pilot is None:
        return None
    config = evse.pilot.pilot
    if config.output != "gpio" or config.gpio is None:
        raise ProfileError(f'{source}: [dut] pilots: EVSE {evse.id}\'s pilot output must be "gpio" on the sim bench '
                           f"(its duty is read from the mock pin), got {config.output!r}")
    return PilotWiring("sim", "pin", config.gpio.pin, config.invert_output)


def pilot_wiring(reader: Reader, raw: object, path: str, evse: EvseConfig) -> PilotWiring:
    """One EVSE's ``[evses.pilot]`` on a real bench, checked against the DUT's pilot of that EVSE."""
    where = f"{reader.source}: [{path}]"
    table = reader.table(raw, path, PILOT_KEYS)
    if evse.pilot is None:
        raise ProfileError(f"{where} the DUT's EVSE {evse.id} has no control pilot (no [evses.pilot] in its "
                           "configuration)")
    config = evse.pilot.pilot
    front_end = _word(table, "front_end", ("comparator", "analog"), where)
    duty = _word(table, "duty", ("adc", "status"), where)
    pwm_pin = table.get("pwm_pin", "" if duty == "status" else None)  # the RC filter of duty = "adc" taps it
    if not isinstance(pwm_pin, str) or (duty == "adc" and not pwm_pin):
        raise ProfileError(f'{where} pwm_pin must be the DUT\'s PWM pin, e.g. "GPIO18"'
                           + (' (the pin the RC filter of duty = "adc" taps)' if duty == "adc" else ""))
    possible = dut_pwm_pins(config)
    if pwm_pin and possible is not None and pwm_pin not in possible:
        raise ProfileError(f"{where} pwm_pin: the DUT's PWM ({config.output}) is on {' or '.join(possible)}, "
                           f"not {pwm_pin}")
    adc = None
    if duty == "adc":
        adc = DutyAdc(
            channel=_whole(table, "duty_channel", 0, 7, where, None),
            spi_device=_whole(table, "duty_spi_device", 0, 1, where, 0),
            vref_v=_volts(table, "adc_vref_v", where),
            pwm_high_v=_volts(table, "pwm_high_v", where),
        )
    elif given := sorted(ADC_KEYS & set(table)):
        raise ProfileError(f'{where} {given[0]} is for duty = "adc" (an RC low-pass into the harness\'s MCP3008)')
    lines_path = f"{path}.lines"
    if front_end == "comparator":
        lines = _comparator_lines(reader, table.get("lines", {}), lines_path, config)
    else:
        lines = reader.lines(table.get("lines", {}), lines_path, CAR_SWITCHES, dut=False)
        missing = [role for role in REQUIRED_SWITCHES if role not in lines]
        if missing:
            raise ProfileError(f"{reader.source}: [{lines_path}] the analogue car needs the switch {missing[0]!r} "
                               f"(wired: {', '.join(lines) or 'none'})")
    return PilotWiring(front_end, duty, pwm_pin, config.invert_output, lines, adc)


def _comparator_lines(reader: Reader, raw: object, path: str, config: PilotConfig) -> dict[str, LineSpec]:
    """The harness's outputs into the DUT's comparator inputs: every threshold line, and low_ok where the DUT has it;
    each to the DUT's pin of that line, at the DUT's active level."""
    comparator = config.comparator
    if config.input != "comparator" or comparator is None:
        raise ProfileError(f'{reader.source}: [{path}] front_end = "comparator" needs a DUT whose pilot input is '
                           f'"comparator", this one reads CP with {config.input!r} (use front_end = "analog")')
    lines = reader.lines(raw, path, (*COMPARATOR_LINES, "low_ok"))
    wanted = dict(zip(COMPARATOR_LINES, comparator.pins, strict=True))
    if comparator.low_ok_pin is not None:
        wanted["low_ok"] = comparator.low_ok_pin
    for role, pin in wanted.items():
        spec = lines.get(role)
        if spec is None:
            raise ProfileError(f"{reader.source}: [{path}] {role} is missing: the DUT reads it on {pin}")
        if spec.dut != pin:
            raise ProfileError(f"{reader.source}: [{path}] {role}: wired to DUT {spec.dut} but the DUT uses {pin}")
        if spec.active_high != comparator.active_high:
            raise ProfileError(f"{reader.source}: [{path}] {role}: active_high must be the DUT's comparator "
                               f"active_high ({str(comparator.active_high).lower()})")
    if "low_ok" in lines and "low_ok" not in wanted:
        raise ProfileError(f"{reader.source}: [{path}] low_ok: the DUT's comparator has no low_ok_pin")
    return lines


def _word(table: dict[str, Any], key: str, options: tuple[str, ...], where: str) -> str:
    """A required choice."""
    value = table.get(key)
    if value not in options:
        raise ProfileError(f"{where} {key} must be one of {', '.join(repr(o) for o in options)}, got {value!r}")
    return str(value)


def _whole(table: dict[str, Any], key: str, low: int, high: int, where: str, default: int | None) -> int:
    """A whole number in [low, high] (required where ``default`` is None)."""
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ProfileError(f"{where} {key} must be a whole number from {low} to {high}, got {value!r}")
    return value


def _volts(table: dict[str, Any], key: str, where: str) -> float:
    """A voltage of 1 to 5.5 V (default 3.3 V)."""
    value = table.get(key, 3.3)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 1.0 <= value <= 5.5:
        raise ProfileError(f"{where} {key} must be a voltage from 1 to 5.5 V, got {value!r}")
    return float(value)
