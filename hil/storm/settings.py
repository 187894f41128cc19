"""What a storm is asked to do (``StormSettings``) and the bench timing its checks rely on (``BenchLimits``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from controller.config.model import ChargerConfig
from hil.storm.catalogue import PILOT_KINDS, STORM_KINDS

START_UTC = datetime(2026, 3, 1, 6, 0, tzinfo=UTC)
"""The wall-clock time a simulated storm starts at."""


@dataclass(frozen=True)
class StormSettings:
    """The mix of traffic and faults (simulated seconds)."""

    kinds: tuple[str, ...] = STORM_KINDS
    fault_interval_mean_s: float = 240.0  # mean time between fault starts (site-wide)
    car_idle_mean_s: float = 1200.0  # mean time a bay stays empty between cars
    reservation_share: float = 0.5  # cars that reserve before they come
    global_share: float = 0.35  # of those, global (any EVSE) reservations
    charge_min_s: float = 180.0  # log-uniform between these
    charge_max_s: float = 5400.0
    plug_bounce_share: float = 0.3  # plug-ins and unplugs that bounce
    late_plug_share: float = 0.05  # cars that plug in after the authorization timed out
    operator_interval_mean_s: float = 1800.0  # reservations nobody comes for, and cancellations
    sample_interval_s: float = 3600.0  # memory sample period
    warmup_samples: int = 2  # memory samples (hours) left out of the slope
    check_interval_s: float = 5.0  # state-level interlock and reserved-LED checks (edges are checked live)
    charge_poll_s: float = 300.0  # how often a charging car's driver looks whether the session still runs
    # a car on a control pilot (only there): its battery gets full, or it stops asking for energy for a while
    car_full_share: float = 0.0
    car_pause_share: float = 0.0
    limit_interval_mean_s: float = 0.0  # local limits (6..16 A or none) at random on pilot EVSEs; 0: none


def pilot_settings() -> StormSettings:
    """The storm of the charger with control pilots: the pilot faults with one of each other kind of fault (a
    silent meter, a chattering plug, a jammed lock, a weld; the day storm covers the meter wire's others), more
    faults and more and shorter visits than the day storm; cars that get full or pause; local limits; drivers who
    notice within seconds that a fault ended their session (a pilot fault latched until the car leaves must not
    wait for them). Meant for a few hours, so no memory slope (the day storm on the plug-line charger has it): the
    warm-up covers the whole run."""
    return StormSettings(
        kinds=(*PILOT_KINDS, "meter_silent", "plug_bounce", "lock_jam", "weld"),
        fault_interval_mean_s=150.0,
        car_idle_mean_s=180.0,
        charge_max_s=1800.0,
        charge_poll_s=2.0,
        car_full_share=0.3,
        car_pause_share=0.3,
        limit_interval_mean_s=900.0,
        warmup_samples=1000,
    )


@dataclass(frozen=True)
class BenchLimits:
    """Timing of the bench the checks need, derived from its configuration."""

    recovery_bound_s: float  # a cleared fault is gone (and a car can move on) within this
    plug_debounce_s: float
    authorize_timeout_s: float

    @classmethod
    def from_config(cls, config: ChargerConfig, margin_s: float = 5.0) -> BenchLimits:
        """Fault hold + meter staleness and polling + bus reconnect + contactor and lock retry timings."""
        ctl = config.controller
        meter_s = max(
            (e.meter.stale_after_s + 2 * e.meter.poll_interval_s for e in config.evses if e.meter is not None),
            default=0.0,
        )
        bus_s = max(
            (b.timing.reconnect_max_s + (b.timing.retries + 1) * b.timing.timeout_s for b in config.meter_buses),
            default=0.0,
        )
        contactor_s = max(e.contactor.fault_clear_s + e.contactor.supervision_timeout_s for e in config.evses)
        lock_s = max(
            ((e.lock.retries + 1) * (e.lock.pulse_s + e.lock.retry_backoff_s) for e in config.evses if e.lock),
            default=0.0,
        )
        return cls(
            recovery_bound_s=ctl.fault_hold_s + meter_s + bus_s + contactor_s + lock_s + margin_s,
            plug_debounce_s=min(e.plug.debounce_s for e in config.evses),
            authorize_timeout_s=ctl.authorize_timeout_s,
        )
