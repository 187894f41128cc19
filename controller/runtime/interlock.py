"""What the runtime knows that the interlocks need: is the contactor closed, and which current may the unlock trust.

The lock is released only once the contactor is confirmed open and a meter reading completed after the
opening shows no current (DESIGN.md, interlocks). The pure decision is controller.charging.outputs.unlock_permitted;
these functions give it its evidence from an EVSE's record, and fail closed (None) when a reading is
unknown or older than the opening.
"""

from __future__ import annotations

from controller.runtime.evse import EvseRecord
from drivers.interfaces import ContactorReport


def contactor_closed(report: ContactorReport | None) -> bool:
    """Closed as far as we know: the aux contact, or the command where no aux is fitted."""
    if report is None:
        return False
    return report.feedback_closed if report.feedback_closed is not None else report.commanded_closed


def current_a(e: EvseRecord, now: float) -> float | None:
    """Largest phase current of a fresh, healthy reading; None when unknown."""
    if e.hw.meter is None or e.snapshot is None or e.hw.meter.fault(now) is not None:
        return None
    return e.snapshot.max_current_a()


def track_opening(e: EvseRecord, report: ContactorReport, now: float) -> bool:
    """Note when the contactor, once closed, is seen open again (command and aux contact); True at that moment."""
    if report.commanded_closed or report.feedback_closed is True:
        e.closed_seen, e.open_since = True, None
    elif e.closed_seen and e.open_since is None:
        e.open_since = now
        return True
    return False


def reading_after_opening(e: EvseRecord) -> bool:
    """The meter reading was completed after the contactor, once closed, was seen open again.

    Only such a reading may let the lock go: one from before (even from before the session's current
    started) says nothing about what flows now, so the lock waits for the next poll.
    """
    if not e.closed_seen:
        return True
    return e.open_since is not None and e.snapshot is not None and e.snapshot.timestamp >= e.open_since


def current_for_unlock(e: EvseRecord, now: float) -> float | None:
    """The current the unlock interlock may trust (see ``reading_after_opening``); None fails closed."""
    return current_a(e, now) if reading_after_opening(e) else None
