"""The control pilot (IEC 61851-1): CP PWM output, CP/PP input, state decoder and duty formula.

Drivers only: the controller decides what a CP state means for an EVSE (interlocks, limits).
"""

from drivers.pilot.config import (
    AdcInputConfig,
    ComparatorInputConfig,
    GpioPwmConfig,
    PilotConfig,
    SysfsPwmConfig,
    pilot_config_from_mapping,
)
from drivers.pilot.duty import (
    DutyMeaning,
    current_for_duty,
    duty_for_current,
    duty_for_offer,
    meaning_of_duty,
    pwm_running,
)
from drivers.pilot.interfaces import OutputMode, PilotInput, PilotOutput, PilotOutputReport
from drivers.pilot.proximity import PpReading, PpStatus, cable_rating
from drivers.pilot.states import CpState, CpThresholds, PilotDecoder, PilotError, PilotReading

__all__ = [
    "AdcInputConfig",
    "ComparatorInputConfig",
    "CpState",
    "CpThresholds",
    "DutyMeaning",
    "GpioPwmConfig",
    "OutputMode",
    "PilotConfig",
    "PilotDecoder",
    "PilotError",
    "PilotInput",
    "PilotOutput",
    "PilotOutputReport",
    "PilotReading",
    "PpReading",
    "PpStatus",
    "SysfsPwmConfig",
    "cable_rating",
    "current_for_duty",
    "duty_for_current",
    "duty_for_offer",
    "meaning_of_duty",
    "pilot_config_from_mapping",
    "pwm_running",
]
