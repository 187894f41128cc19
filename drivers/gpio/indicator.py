"""The reserved LED (gpiozero LED) and an optional RGB status LED (gpiozero RGBLED) of one EVSE.

Blinking and pulsing run in gpiozero's background threads; nothing here posts back into the
loop, so the bridge is only kept for the common driver signature.
"""

from __future__ import annotations

import time
from types import TracebackType

from gpiozero import LED, RGBLED

from drivers.bridge import LoopBridge
from drivers.gpio._input import Clock, PinFactory, require_factory
from drivers.gpio.config import RGB, IndicatorConfig
from drivers.interfaces import LedMode, StatusColor, StatusPattern


class GpioIndicator:
    """Implements ``drivers.interfaces.Indicator``: reserved LED on/off/blink, status colour + pattern."""

    def __init__(
        self,
        config: IndicatorConfig,
        *,
        bridge: LoopBridge,
        pin_factory: PinFactory,
        clock: Clock = time.monotonic,
    ) -> None:
        self._config = config
        self._bridge = bridge
        self._clock = clock
        self._closed = False
        factory = require_factory(pin_factory)
        self._reserved_led = LED(
            config.reserved_pin,
            active_high=config.reserved_active_high,
            initial_value=False,
            pin_factory=factory,
        )
        self._reserved_mode = LedMode.OFF
        self._rgb: RGBLED | None = None
        self._status: tuple[StatusColor, StatusPattern] | None = None
        if config.has_status:
            try:
                self._rgb = RGBLED(
                    config.status_red_pin,
                    config.status_green_pin,
                    config.status_blue_pin,
                    active_high=config.status_active_high,
                    initial_value=(0, 0, 0),
                    pwm=config.status_pwm,
                    pin_factory=factory,
                )
            except Exception:
                self._reserved_led.close()
                raise
            self._status = (StatusColor.OFF, StatusPattern.STEADY)

    # ------------------------------------------------------------ Indicator protocol

    def set_reserved(self, mode: LedMode) -> None:
        """Show ``mode`` on the reserved LED; BLINK keeps blinking in the background."""
        self._check_open()
        if mode == self._reserved_mode:
            return  # re-starting a blink would restart its phase
        if mode is LedMode.ON:
            self._reserved_led.on()
        elif mode is LedMode.OFF:
            self._reserved_led.off()
        else:
            self._reserved_led.blink(
                on_time=self._config.blink_on_s, off_time=self._config.blink_off_s, background=True
            )
        self._reserved_mode = mode

    def set_status(self, color: StatusColor, pattern: StatusPattern) -> None:
        """Show ``color`` with ``pattern`` on the status LED; a no-op when none is fitted."""
        self._check_open()
        if self._rgb is None or self._status == (color, pattern):
            return
        rgb = self.rgb_for(color)
        if color is StatusColor.OFF:
            self._rgb.off()
        elif pattern is StatusPattern.STEADY:
            self._rgb.color = rgb
        elif pattern is StatusPattern.PULSE and self._config.status_pwm:
            fade = self._config.pulse_fade_s
            self._rgb.pulse(fade_in_time=fade, fade_out_time=fade, on_color=rgb, background=True)
        else:  # BLINK, or PULSE on a non-PWM LED
            self._rgb.blink(
                on_time=self._config.blink_on_s,
                off_time=self._config.blink_off_s,
                on_color=rgb,
                background=True,
            )
        self._status = (color, pattern)

    @property
    def reserved_mode(self) -> LedMode:
        """The mode last set on the reserved LED."""
        return self._reserved_mode

    @property
    def status(self) -> tuple[StatusColor, StatusPattern] | None:
        """The colour and pattern last set on the status LED; None when none is fitted."""
        return self._status

    def rgb_for(self, color: StatusColor) -> RGB:
        """The (r, g, b) a colour is shown with (rounded to 0/1 on a non-PWM LED)."""
        r, g, b = self._config.status_colors[color]
        if not self._config.status_pwm:
            return (float(r >= 0.5), float(g >= 0.5), float(b >= 0.5))
        return (float(r), float(g), float(b))

    # ------------------------------------------------------------ lifetime

    def close(self) -> None:
        """Stop blinking, turn the LEDs off and release the pins; idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._reserved_led.off()
            if self._rgb is not None:
                self._rgb.off()
        finally:
            self._reserved_led.close()
            if self._rgb is not None:
                self._rgb.close()

    async def aclose(self) -> None:
        """Async form of ``close()``."""
        self.close()

    async def __aenter__(self) -> GpioIndicator:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"indicator {self._config.reserved_pin}: used after close()")
