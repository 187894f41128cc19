"""GPIO drivers on gpiozero: contactor, connector lock, LEDs and plug sensor, on an explicit pin factory."""

from drivers.gpio.config import ContactorConfig, IndicatorConfig, LockConfig, PlugConfig, config_from_mapping
from drivers.gpio.contactor import GpioContactor
from drivers.gpio.indicator import GpioIndicator
from drivers.gpio.lock import GpioLock
from drivers.gpio.plug import GpioPlugSensor

__all__ = [
    "ContactorConfig",
    "GpioContactor",
    "GpioIndicator",
    "GpioLock",
    "GpioPlugSensor",
    "IndicatorConfig",
    "LockConfig",
    "PlugConfig",
    "config_from_mapping",
]
