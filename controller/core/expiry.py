"""Live reservations by expiry time: what is due now, and when the next one is, without scanning them all.

Every public call of the reservation core first ends what is due, so that must cost nothing when nothing
is: a heap of (expiry_time, arrival sequence, id) with lazy deletion. An entry whose reservation is no
longer live under that sequence is dropped when it reaches the top, and the heap is rebuilt when such
dead entries outnumber the live ones.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from datetime import datetime

from controller.core.types import Reservation

Entry = tuple[datetime, int, int]  # (expiry_time, arrival sequence, reservation_id)


class ExpiryQueue:
    """Expiry times of the live reservations; ``is_live(id, seq)`` tells a current entry from a dead one."""

    __slots__ = ("_dead", "_heap", "_is_live")

    def __init__(self, is_live: Callable[[int, int], bool]) -> None:
        """Empty; ``is_live(reservation_id, seq)`` is asked of an entry before it is trusted."""
        self._heap: list[Entry] = []
        self._is_live = is_live
        self._dead = 0  # entries whose reservation ended (an estimate: the next rebuild makes it exact)

    def push(self, reservation: Reservation, seq: int) -> None:
        """A reservation became live with this arrival sequence."""
        heapq.heappush(self._heap, (reservation.expiry_time, seq, reservation.reservation_id))

    def dropped(self, live: Callable[[], Iterable[tuple[Reservation, int]]]) -> None:
        """A reservation stopped being live; rebuild from ``live()`` when dead entries outnumber the rest."""
        self._dead += 1
        if self._dead > 64 and self._dead * 2 > len(self._heap):
            self._heap = [(r.expiry_time, seq, r.reservation_id) for r, seq in live()]
            heapq.heapify(self._heap)
            self._dead = 0

    def _top(self) -> Entry | None:
        """The earliest live entry, dropping dead ones above it."""
        heap = self._heap
        while heap:
            top = heap[0]
            if self._is_live(top[2], top[1]):
                return top
            heapq.heappop(heap)
            self._dead = max(0, self._dead - 1)
        return None

    def due(self, now: datetime) -> list[int]:
        """Ids of the live reservations with expiry_time <= now, by (expiry_time, sequence); taken off the heap."""
        out: list[int] = []
        seen: set[tuple[int, int]] = set()  # one reservation put back under the same sequence has two entries
        while (top := self._top()) is not None and top[0] <= now:
            heapq.heappop(self._heap)
            if (top[2], top[1]) not in seen:
                seen.add((top[2], top[1]))
                out.append(top[2])
        self._dead = max(0, self._dead - len(out))  # already off the heap: their ``dropped`` adds nothing dead
        return out

    def next_time(self) -> datetime | None:
        """The earliest expiry of a live reservation, or None."""
        top = self._top()
        return None if top is None else top[0]
