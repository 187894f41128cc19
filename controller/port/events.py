"""The controller's event documents, numbered and kept for catch-up, fanned out to every front."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

HISTORY_LIMIT = 512


@dataclass(slots=True)
class EventHub:
    """Fan-out of event documents to subscribers (the API's event stream, the CLI, tests).

    Every published document gets a ``seq`` (1, 2, ...) and the last ``history_limit`` are kept,
    so a subscriber can catch up on what it missed: the reservations that ended while the
    controller was down are published at start, before any client could connect.
    """

    history_limit: int = HISTORY_LIMIT
    _subscribers: list[Callable[[dict[str, Any]], None]] = field(default_factory=list)
    _history: deque[dict[str, Any]] = field(default_factory=deque)
    _seq: int = 0

    @property
    def last_seq(self) -> int:
        """The ``seq`` of the latest event (0 before the first)."""
        return self._seq

    def subscribe(
        self, callback: Callable[[dict[str, Any]], None], *, since: int | None = None
    ) -> Callable[[], None]:
        """Receive every event document from now on, first the kept ones after ``since`` if given.

        Returns the unsubscribe function.
        """
        if since is not None:
            for event in [event for event in self._history if event["seq"] > since]:
                callback(event)
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            self._subscribers[:] = [cb for cb in self._subscribers if cb is not callback]

        return unsubscribe

    def missed_since(self, since: int) -> int:
        """How many events after ``since`` are no longer kept (a catch-up from there has a gap)."""
        oldest = self._history[0]["seq"] if self._history else self._seq + 1
        return max(0, min(oldest, self._seq + 1) - max(since, 0) - 1)

    def publish(self, event: dict[str, Any]) -> None:
        """Number the document (``seq``), keep it, and deliver it to every subscriber."""
        self._seq += 1
        event = {**event, "seq": self._seq}
        self._history.append(event)
        while len(self._history) > self.history_limit:
            self._history.popleft()
        for callback in list(self._subscribers):
            callback(event)
