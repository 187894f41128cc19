"""A check of the reserved LEDs against the reservation core: lit (or blinking) exactly on the reserved EVSEs."""

from __future__ import annotations

from typing import Any


def reserved_led_matches_core(built: Any, config: Any = None) -> list[str]:
    """Mismatches between each EVSE's reserved-LED pin (blinking counts as lit) and ``core.reserved_evses()``.

    Pins and polarity come from ``config`` (a ChargerConfig) when given, else from each indicator
    driver's configuration. Read it with the loop settled: the LED follows on the next evaluation.
    """
    runtime = built.runtime
    factory = built.pin_factory
    reserved = runtime.core.reserved_evses()
    configs = {evse.id: evse.indicator for evse in config.evses} if config is not None else {}
    out: list[str] = []
    for evse_id, e in runtime._evses.items():
        indicator = configs.get(evse_id) or e.hw.indicator._config
        pin = factory.pin(indicator.reserved_pin)
        steady = bool(pin.state >= 0.5) == bool(indicator.reserved_active_high)
        blinking = _blinking(factory, pin)
        want = evse_id in reserved
        if (steady or blinking) != want:
            shown = "blinking" if blinking else "on" if steady else "off"
            out.append(
                f"EVSE {evse_id}: reserved LED {indicator.reserved_pin} is {shown} but the EVSE is "
                f"{'' if want else 'not '}in core.reserved_evses() {sorted(reserved)}"
            )
    return out


def _blinking(factory: Any, pin: Any) -> bool:
    """True while a gpiozero device holding ``pin`` runs its background blink thread."""
    for ref in factory._reservations.get(pin.info, ()):
        device = ref()
        if device is not None and getattr(device, "_blink_thread", None) is not None:
            return True
    return False
