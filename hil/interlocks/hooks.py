"""How the interlock monitor listens: a listener chained onto an observed pin, and a spy on one method.

Both are installed on instances only and removed without a trace; once removed (or while their
handler fails) the pin or method behaves exactly as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class PinHook:
    """A listener chained in front of an ObservedPin's own; a pass-through once ``active`` is False."""

    def __init__(self, pin: Any, handler: Callable[[bool], None], on_error: Callable[[BaseException], None]) -> None:
        self.pin = pin
        self.handler = handler
        self.on_error = on_error
        self.original: Callable[[bool], None] | None = pin.listener
        self.active = True
        pin.listener = self

    def __call__(self, level: bool) -> None:
        if self.active:
            try:
                self.handler(level)
            except Exception as exc:  # the monitor must never break the mechanism it watches
                self.on_error(exc)
        if self.original is not None:
            self.original(level)

    def remove(self) -> None:
        """Hand the pin back to its own listener."""
        self.active = False
        if self.pin.listener is self:
            self.pin.listener = self.original


class MethodSpy:
    """Wraps one method on one instance to note each call after it ran; removed by deleting the attribute."""

    def __init__(self, owner: Any, name: str, after: Callable[..., None]) -> None:
        self.owner = owner
        self.name = name
        self.method = getattr(owner, name)
        self.after = after
        self.active = True
        setattr(owner, name, self)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        result = self.method(*args, **kwargs)
        if self.active:
            self.after(*args, **kwargs)
        return result

    def remove(self) -> None:
        """Give the instance its class's method back."""
        self.active = False
        if self.owner.__dict__.get(self.name) is self:
            delattr(self.owner, self.name)
