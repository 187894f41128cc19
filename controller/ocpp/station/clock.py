"""The station's idea of the time: the system clock, or the CSMS's clock when the system clock is not synchronized.

A Raspberry Pi has no real-time clock: until NTP has set it, the system clock may be days (or decades) off.
OCPP messages then carry the CSMS's time (BootNotification's and Heartbeat's ``currentTime``, kept as an offset),
and times from the CSMS (a reservation's expiry) are turned into system-clock time before the controller sees
them, so they expire when the CSMS meant. Whether the kernel's clock is synchronized is asked with adjtimex(2)
(TIME_ERROR = not synchronized), which every NTP client (systemd-timesyncd, chrony, ntpd) keeps up to date.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

log = logging.getLogger("controller.ocpp")

_TIME_ERROR = 5  # adjtimex(2) return value: the clock is not synchronized
_TIMEX_SIZE = 512  # struct timex is 208 bytes on 64-bit Linux; room to spare, zeroed (modes = 0: read only)
OFFSET_LOG_THRESHOLD_S = 1.0  # an offset smaller than this is not worth a log line


def kernel_clock_synchronized() -> bool:
    """Whether the kernel says the system clock is NTP-synchronized (adjtimex); True where it cannot be asked."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        buffer = ctypes.create_string_buffer(_TIMEX_SIZE)
        state = int(libc.adjtimex(buffer))
    except (OSError, AttributeError):
        return True  # not Linux: trust the system clock, as every other program here does
    return state >= 0 and state != _TIME_ERROR


class StationClock:
    """UTC time for OCPP: the system clock plus the offset learned from the CSMS while the system is unsynchronized."""

    def __init__(self, *, synchronized: Callable[[], bool] = kernel_clock_synchronized,
                 system: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        """``synchronized`` tells whether the system clock can be trusted; ``system`` reads it (aware, any zone)."""
        self._synchronized = synchronized
        self._system = system
        self._offset = timedelta(0)
        self._logged_offset: timedelta | None = None

    @property
    def offset(self) -> timedelta:
        """CSMS time minus system time (zero while the system clock is synchronized)."""
        return self._offset

    def learn(self, csms_time: datetime) -> None:
        """The CSMS's current time arrived: keep it as an offset unless the system clock is synchronized."""
        if self._synchronized():
            if self._offset:
                log.info("system clock is NTP-synchronized now: the CSMS's time offset is no longer used")
            self._offset = timedelta(0)
            return
        self._offset = csms_time - self._system()
        seconds = self._offset.total_seconds()
        previous = self._logged_offset
        if abs(seconds) >= OFFSET_LOG_THRESHOLD_S and (
                previous is None or abs((self._offset - previous).total_seconds()) >= OFFSET_LOG_THRESHOLD_S):
            log.warning("system clock is not NTP-synchronized: OCPP uses the CSMS's time (offset %+.1f s)", seconds)
            self._logged_offset = self._offset

    def now(self) -> datetime:
        """The station's current time in UTC (what OCPP timestamps say)."""
        return (self._system() + self._offset).astimezone(UTC)

    def timestamp(self, at: datetime | None = None) -> str:
        """RFC 3339 in UTC with milliseconds and ``Z`` (``at`` in station time; default now)."""
        moment = (at or self.now()).astimezone(UTC)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def to_system(self, station_time: datetime) -> datetime:
        """A time given by the CSMS (e.g. a reservation's expiry) on the system clock the controller runs on."""
        return station_time - self._offset

    def to_station(self, system_time: datetime) -> datetime:
        """A system-clock time (e.g. the controller's expiry) as the CSMS counts it."""
        return (system_time + self._offset).astimezone(UTC)
