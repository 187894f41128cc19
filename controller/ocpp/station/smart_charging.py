"""Smart charging for both protocol layers: the installed profiles, kept durably, applied to the controller in time.

``SmartCharging`` holds the CSMS's charging profiles (controller.ocpp.station.charging_profiles), writes each change
to ``ocpp.db`` before it is answered (off the event loop), and applies them: it works out each EVSE's own limit
(TxProfile, else TxDefaultProfile) and the station's maximum now (controller.ocpp.station.schedule), hands those that
changed to the port (``Charger.set_profile_limit``: A per phase; None removes it; 0 pauses charging, the session
kept), and arms one timer for the next moment any limit may change. A Set or Clear is applied before it is answered
and every boundary when it comes, so a profile takes effect within a second.

It follows the transactions of the station core's tracker (controller.ocpp.station.transactions): the layer calls
``follow`` with each EVSE status event once its tracker has seen it. A transaction's start (as first seen) anchors
Relative schedules; a TxProfile applies only to its transaction and is removed when that ends (2.0.1 K01: a
TxProfile is for one transaction; 1.6 3.13.1); a remote start's TxProfile (1.6
RemoteStartTransaction, 2.0.1 RequestStartTransaction chargingProfile) waits for the transaction it starts, and is
dropped if the session ends without one. No transaction survives a restart, so neither does a TxProfile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from controller.ocpp.station.charging_profiles import ChargingProfile, Limits, Purpose, Refusal, refusal, replaced_by
from controller.ocpp.station.clock import StationClock
from controller.ocpp.station.profile_store import ProfileStore, ProfileStoreError
from controller.ocpp.station.schedule import Composite, Electrical, Limit
from controller.ocpp.station.transactions import TransactionTracker
from controller.port.charger import Charger

log = logging.getLogger("controller.ocpp")

TIMER_SLACK_S = 0.005  # the timer wakes this much after a boundary, so the boundary has passed when it looks
STORE_FAILURE = Refusal("StoreFailure", "the profile could not be stored")


class SmartCharging:
    """The station's charging profiles: install, clear, report and apply (see the module docstring)."""

    def __init__(self, charger: Charger, db_path: Path, clock: StationClock, tracker: TransactionTracker, *,
                 limits: Limits | None = None, same_level_replaces: bool = False,
                 on_count: Callable[[int], None] | None = None) -> None:
        """Act on ``charger``; profiles live in ``db_path`` (ocpp.db); ``tracker`` knows the open transactions.

        W <-> A uses each EVSE's configured supply (``configured_supply``); ``limits``: what the station accepts;
        ``same_level_replaces``: a profile replaces another of the same EVSE, purpose and stack level (1.6) instead
        of being refused (2.0.1); ``on_count(n)`` hears the number installed.
        """
        self.charger = charger
        self.clock = clock
        self.tracker = tracker
        self.electrical = configured_supply(charger)
        self.limits = limits or Limits()
        self.same_level_replaces = same_level_replaces
        self._on_count = on_count
        self._store = ProfileStore(db_path)
        self.profiles: dict[int, ChargingProfile] = {}
        self._tx_started: dict[str, datetime] = {}  # transaction id -> when the station first saw it open
        self._pending: dict[int, ChargingProfile] = {}  # EVSE -> a remote start's TxProfile, for its transaction
        self._engaged: set[int] = set()  # EVSEs seen in use since their pending profile was given
        self._applied: dict[int | None, float | None] = {}
        self._lock = asyncio.Lock()
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._open: frozenset[str] = frozenset()

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Take the stored profiles (TxProfiles are dropped: their transactions ended with the last run), apply."""
        try:
            stored = await asyncio.to_thread(self._store.load)
        except ProfileStoreError as exc:
            log.error("%s", exc)
            stored = []
        stale = [p.profile_id for p in stored if p.purpose is Purpose.TX]
        self.profiles = {p.profile_id: p for p in stored if p.purpose is not Purpose.TX}
        if stale:
            await self._write(stale, [])
        self._counted()
        self._open = self._open_ids()
        await self.apply()

    async def stop(self) -> None:
        """Stop the timer and what is under way, and close the table."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._store.close()

    # ------------------------------------------------------------ what the CSMS asks

    def open_transaction(self, evse_id: int) -> str | None:
        """The id of the transaction open on the EVSE, if any."""
        tx = self.tracker.open(evse_id)
        return None if tx is None else tx.transaction_id

    def refusal(self, profile: ChargingProfile) -> Refusal | None:
        """Why ``profile`` may not be installed now (None: it may)."""
        return refusal(profile, evse_ids=self.charger.evse_ids(), installed=self.profiles.values(),
                       open_transaction=self.open_transaction(profile.evse_id), limits=self.limits,
                       same_level_replaces=self.same_level_replaces)

    async def install(self, profile: ChargingProfile) -> Refusal | None:
        """Check, store durably, apply: None when installed, else why not (nothing changed then)."""
        refused = self.refusal(profile)
        if refused is not None:
            return refused
        if profile.purpose is Purpose.TX and profile.transaction_id is None:
            profile = replace(profile, transaction_id=self.open_transaction(profile.evse_id))
        gone = [p.profile_id for p in replaced_by(profile, self.profiles.values(),
                                                  same_level_replaces=self.same_level_replaces)]
        if not await self._write(gone, [profile]):
            return STORE_FAILURE
        for profile_id in gone:
            self.profiles.pop(profile_id, None)
        self.profiles[profile.profile_id] = profile
        log.info("charging profile %d installed: %s, EVSE %d, stack level %d", profile.profile_id,
                 profile.purpose.value, profile.evse_id, profile.stack_level)
        self._counted()
        await self.apply()
        return None

    def matching(self, test: Callable[[ChargingProfile], bool]) -> list[ChargingProfile]:
        """The installed profiles ``test`` accepts, by EVSE and id."""
        return sorted((p for p in self.profiles.values() if test(p)), key=lambda p: (p.evse_id, p.profile_id))

    async def clear(self, test: Callable[[ChargingProfile], bool]) -> bool | None:
        """Remove the profiles ``test`` accepts (durably), apply: True if any, False if none, None if the store
        refused (nothing changed)."""
        gone = [p.profile_id for p in self.matching(test)]
        if not gone:
            return False
        if not await self._write(gone, []):
            return None
        for profile_id in gone:
            self.profiles.pop(profile_id, None)
        log.info("charging profiles cleared: %s", ", ".join(map(str, gone)))
        self._counted()
        await self.apply()
        return True

    def for_remote_start(self, evse_id: int, profile: ChargingProfile) -> None:
        """A remote start's TxProfile: installed for the transaction the start opens on this EVSE."""
        self._pending[evse_id] = profile
        self._engaged.discard(evse_id)

    def composite(self) -> Composite:
        """The composite schedule of what is installed now, with the open transactions."""
        return Composite(self.profiles.values(), self._transactions_now(), self.electrical)

    # ------------------------------------------------------------ following the EVSEs

    def follow(self, event: dict[str, Any]) -> None:
        """An EVSE status event the layer's tracker has seen: transactions that opened or ended change limits."""
        evse_id = event.get("id")
        if isinstance(evse_id, int) and evse_id in self._pending:
            self._follow_pending(evse_id, event)
        now_open = self._open_ids()
        if now_open == self._open:
            return
        ended = self._open - now_open
        self._open = now_open
        for tx_id in ended:
            self._tx_started.pop(tx_id, None)
        self._spawn(self._transactions_changed(ended))

    def _follow_pending(self, evse_id: int, event: dict[str, Any]) -> None:
        """Bind a remote start's profile to the transaction that opened, or drop it when the EVSE is idle again."""
        tx_id = self.open_transaction(evse_id)
        if tx_id is not None:
            profile = replace(self._pending.pop(evse_id), transaction_id=tx_id)
            self._spawn(self._install_logged(profile))
        elif event.get("phase") != "idle" or event.get("plugged_in"):
            self._engaged.add(evse_id)
        elif evse_id in self._engaged:
            log.info("EVSE %d: the remote start's charging profile is dropped (no transaction started)", evse_id)
            self._pending.pop(evse_id, None)
            self._engaged.discard(evse_id)

    async def _install_logged(self, profile: ChargingProfile) -> None:
        """Install a remote start's profile now that its transaction is open (a refusal is logged)."""
        refused = await self.install(profile)
        if refused is not None:
            log.warning("remote start's charging profile %d not installed: %s", profile.profile_id, refused.detail)

    async def _transactions_changed(self, ended: frozenset[str]) -> None:
        """Remove the TxProfiles of ended transactions, then apply (a started one may start Relative schedules)."""
        await self.clear(lambda p: p.purpose is Purpose.TX and p.transaction_id in ended)
        await self.apply()

    def _open_ids(self) -> frozenset[str]:
        """The ids of the open transactions now."""
        return frozenset(tx_id for tx_id, _ in self._transactions_now().values())

    def _transactions_now(self) -> dict[int, tuple[str, datetime]]:
        """EVSE -> (transaction id, start) of every open transaction (start: when first seen open)."""
        now = self.clock.now()
        return {tx.evse_id: (tx.transaction_id, self._tx_started.setdefault(tx.transaction_id, now))
                for tx in self.tracker.open_transactions()}

    # ------------------------------------------------------------ applying

    async def apply(self) -> None:
        """Hand the limits that changed to the controller, and wake again at the next boundary."""
        async with self._lock:
            now = self.clock.now()
            composite = self.composite()
            evse_ids = self.charger.evse_ids()
            wanted: dict[int | None, float | None] = {None: _amps(composite.station_limit(now))}
            for evse_id in evse_ids:
                wanted[evse_id] = _amps(composite.evse_limit(evse_id, now))
            for key, amps in wanted.items():
                if self._applied.get(key) != amps:
                    await self.charger.set_profile_limit(key, amps)
                    self._applied[key] = amps
            self._arm(composite.next_change(now, evse_ids), now)

    def _arm(self, boundary: datetime | None, now: datetime) -> None:
        """One timer, for the next boundary (none: no timer)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if boundary is not None:
            delay = max(0.0, (boundary - now).total_seconds()) + TIMER_SLACK_S
            self._timer = asyncio.get_running_loop().call_later(delay, lambda: self._spawn(self.apply()))

    # ------------------------------------------------------------ helpers

    async def _write(self, removed: list[int], added: list[ChargingProfile]) -> bool:
        """One durable change of the table, off the loop; False (logged) if the disk refused."""
        try:
            await asyncio.to_thread(self._store.replace, removed, added)
        except ProfileStoreError as exc:
            log.error("charging profiles not changed: %s", exc)
            return False
        return True

    def _counted(self) -> None:
        """Tell the number of installed profiles (SmartChargingCtrlr.Entries)."""
        if self._on_count is not None:
            self._on_count(len(self.profiles))

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run ``coro`` as a task kept until it ends."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def configured_supply(charger: Charger) -> Callable[[int], Electrical]:
    """Each EVSE's supply (0: the station) as the charger's configuration gives it (``[evses.pilot]`` voltage_v,
    phases, max_current_a; ``[site] max_current_a``): what W <-> A conversions and an unlimited period use."""

    def electrical(evse_id: int) -> Electrical:
        supply = charger.supply(evse_id or None)
        default = Electrical()
        return Electrical(supply.voltage_v, supply.phases,
                          default.max_current_a if supply.max_current_a is None else supply.max_current_a)

    return electrical


def _amps(limit: Limit | None) -> float | None:
    """A limit as the port takes it: amperes per phase, one decimal (None: no limit)."""
    return None if limit is None else round(float(limit.amps), 1)
