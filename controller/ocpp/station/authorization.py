"""OCPP authorization, version neutral: the authorization cache, the local authorization list and the rules.

``AuthorizationStore`` keeps both in the station's SQLite file (controller.ocpp.station.auth_store) and decides
what to do with a presented token (``decide``): ask the CSMS, or accept or refuse here. The switches come in as
``AuthSettings`` (read from the device model by the caller); times are station time (StationClock.now(), the
clock the CSMS's cacheExpiryDateTime is written in). Requirement ids are OCPP 2.0.1 Part 2 (with the 2025 errata);
the 1.6 configuration keys of the same switches are aliases of the same variables, so the 1.6 layer reuses this.

The rules (``decide``), in order:

- AuthCtrlr.Enabled false: every token is accepted.
- The local list (LocalAuthListCtrlr.Enabled) is looked at before the cache (AuthCacheCtrlr.Enabled): a listed
  token is never looked up in the cache (list entries take precedence, as in EVerest libocpp's validate_token).
  An entry whose cacheExpiryDateTime passed, or a cache entry not updated by the CSMS for AuthCacheCtrlr.LifeTime
  seconds (C10.FR.10 as the 2025 errata words it; C10.FR.13), counts as absent ("removed from the cache"): its token
  is unknown, so it is asked about again. A use refreshes only the LRU order.
- Online, AuthCtrlr.DisableRemoteAuthorization: never asked; Accepted entries accepted, other entries and unknown
  tokens refused.
- Online, LocalPreAuthorize: an Accepted entry starts at once (C12.FR.02 cache, C14.FR.02 list); a non-Accepted one
  is asked about (C10.FR.03/C12.FR.05 cache, C14.FR.03 list) unless that source's DisablePostAuthorize is true,
  then refused with its status. Otherwise (and without LocalPreAuthorize) the CSMS is asked.
- Offline: a non-Accepted entry is refused, whatever OfflineTxForUnknownIdEnabled says (C13.FR.04 as the errata
  reads it; the cache likewise: a card the CSMS blocked stays blocked offline). An Accepted entry is accepted when
  LocalAuthorizeOffline is true (C13); when it is false the token counts as unknown. An unknown token is accepted
  when OfflineTxForUnknownIdEnabled is true (C15), else refused.

A station whose Authorize got no answer decides again with ``online=False``. Tokens never appear in logs
(drivers.redact); write failures raise AuthStoreError naming the file, with memory and disk unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from controller.core.parsing import FormatError
from controller.ocpp.station.auth_store import AuthDatabase, AuthStoreError, CachedEntry, ListedEntry
from controller.ocpp.station.auth_types import (
    ACCEPTED,
    CACHE_MAX_ENTRIES,
    UNKNOWN,
    AuthSettings,
    Decision,
    IdTokenInfo,
    ListEntry,
    ListStatus,
    ListUpdateResult,
    Source,
    UpdateType,
    Verdict,
    token_key,
)
from drivers.redact import redact_token

__all__ = ["AuthStoreError", "AuthorizationStore", "LocalAnswer", "remember_answer"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LocalAnswer:
    """What the station itself knows about a token: the info and where it comes from (list or cache)."""

    source: Source
    info: IdTokenInfo


class AuthorizationStore:
    """The authorization cache and local list of one station, persisted, and the rules that use them."""

    def __init__(self, path: str | Path, *, cache_limit: int = CACHE_MAX_ENTRIES,
                 on_entries: Callable[[int], None] | None = None, busy_timeout_s: float = 2.0) -> None:
        """Open (or make) the tables in ``path``; ``on_entries(n)`` hears the list's size now and after each change.

        ``on_entries`` is meant to keep LocalAuthListCtrlr.Entries (``set_internal``); an exception in it is logged.
        """
        if cache_limit < 1:
            raise ValueError("cache_limit must be at least 1")
        self.cache_limit = cache_limit
        self._on_entries = on_entries
        self._db = AuthDatabase(path, busy_timeout_s=busy_timeout_s)
        self._tell_entries()

    @property
    def path(self) -> Path:
        """The SQLite file."""
        return self._db.path

    def close(self) -> None:
        """Close the database (idempotent)."""
        self._db.close()

    # ------------------------------------------------------------ authorization cache (C10, C11)

    def remember(self, token: str, info: IdTokenInfo, *, now: datetime, settings: AuthSettings) -> bool:
        """Keep what the CSMS said about ``token`` (C10.FR.04 Authorize, C10.FR.05 TransactionEvent answers).

        Nothing is kept while AuthCacheCtrlr.Enabled is false. A cacheExpiryDateTime already past removes the
        token instead (C10.FR.10 errata note: prepaid accounts are kept out this way). A full cache drops first
        the entries no longer valid, then the least recently used (AuthCacheCtrlr.Policy = LRU). True when stored;
        AuthStoreError when it cannot be written (nothing changed).
        """
        if not settings.cache_enabled:
            return False
        key = token_key(token)
        if not info.present_at(now):
            self._db.cache_delete([key])
            return False
        evict: list[str] = []
        items = self._db.cache_items()
        if self._db.cache_get(key) is None and len(items) >= self.cache_limit:
            others = [(k, e) for k, e in items if k != key]
            others.sort(key=lambda item: (self._cache_valid(item[1], now, settings.cache_lifetime_s),
                                          item[1].last_used))
            evict = [k for k, _ in others[: len(items) - self.cache_limit + 1]]
            log.info("authorization cache full (%d entries): dropping %d least recently used", len(items), len(evict))
        self._db.cache_put(key, CachedEntry(info, now, now), evict)
        log.debug("authorization cache: %s is %s", redact_token(token), info.status)
        return True

    def lookup(self, token: str, now: datetime, *, settings: AuthSettings) -> LocalAnswer | None:
        """What the enabled local sources say about ``token``: the list first, then the cache; None if neither knows."""
        if settings.list_enabled:
            listed = self.list_lookup(token, now)
            if listed is not None:
                return LocalAnswer(Source.LOCAL_LIST, listed)
        if settings.cache_enabled:
            cached = self.cache_lookup(token, now, lifetime_s=settings.cache_lifetime_s)
            if cached is not None:
                return LocalAnswer(Source.CACHE, cached)
        return None

    def cache_lookup(self, token: str, now: datetime, *, lifetime_s: int | None) -> IdTokenInfo | None:
        """The cached info of ``token`` while it is valid (C10.FR.10 lifetime since the last update, C10.FR.13)."""
        entry = self._db.cache_get(token_key(token))
        if entry is None or not self._cache_valid(entry, now, lifetime_s):
            return None
        return entry.info

    def clear(self, *, settings: AuthSettings) -> bool:
        """ClearCache (C11): empty the cache; False (Rejected) while AuthCacheCtrlr.Enabled is false (C11.FR.04).

        AuthStoreError when it cannot be written (the caller answers Rejected; nothing changed).
        """
        if not settings.cache_enabled:
            return False
        self._db.cache_clear()
        log.info("authorization cache cleared")
        return True

    def purge(self, now: datetime, *, settings: AuthSettings) -> int:
        """Drop the cache entries no longer valid (C10.FR.10, C10.FR.13); how many went. AuthStoreError if it cannot."""
        doomed = [k for k, e in self._db.cache_items() if not self._cache_valid(e, now, settings.cache_lifetime_s)]
        self._db.cache_delete(doomed)
        return len(doomed)

    def cache_size(self) -> int:
        """How many entries the cache holds (valid or not)."""
        return len(self._db.cache_items())

    @staticmethod
    def _cache_valid(entry: CachedEntry, now: datetime, lifetime_s: int | None) -> bool:
        """Whether a cache entry still counts: within its cacheExpiryDateTime and AuthCacheCtrlr.LifeTime."""
        if not entry.info.present_at(now):
            return False
        return lifetime_s is None or now - entry.updated_at <= timedelta(seconds=lifetime_s)

    # ------------------------------------------------------------ local authorization list (D01, D02)

    def update_local_list(self, read: Callable[[], tuple[int, str, Sequence[ListEntry]]], *, settings: AuthSettings,
                          message_bytes: int | None = None) -> ListUpdateResult:
        """SendLocalList as a protocol layer receives it: ``read()`` parses the request into (version, update type,
        entries); a request that cannot be read is Failed (InvalidValue), a list that cannot be stored is Failed
        (StoreFailure, nothing changed). Both versions answer so."""
        try:
            version, update_type, entries = read()
            return self.send_local_list(version, update_type, entries, settings=settings, message_bytes=message_bytes)
        except (FormatError, ValueError, KeyError, TypeError) as exc:
            log.warning("SendLocalList refused: %s", exc)
            return ListUpdateResult(ListStatus.FAILED, "InvalidValue", str(exc))
        except AuthStoreError as exc:
            log.error("SendLocalList: %s", exc)
            return ListUpdateResult(ListStatus.FAILED, "StoreFailure", "the local list cannot be stored")

    def send_local_list(self, version: int, update_type: UpdateType | str, entries: Sequence[ListEntry], *,
                        settings: AuthSettings, message_bytes: int | None = None) -> ListUpdateResult:
        """SendLocalList (D01): a Full list replaces ours, a Differential one changes it; the answer's status.

        Failed: the list is disabled (SendLocalListStatusEnumType has no Rejected), versionNumber <= 0 (D01.FR.18),
        more entries than ItemsPerMessage or more bytes than BytesPerMessage in the message, a token twice
        (D01.FR.06), a Full entry without info, or more entries than LocalAuthListCtrlr.Entries allows (D01.FR.12).
        VersionMismatch: a Differential update whose version is not above ours (D01.FR.19). A Differential entry
        without info deletes its token (D01.FR.17); one with no entries only sets the version (D01.FR.05).
        AuthStoreError when it cannot be written (the caller answers Failed; nothing changed).
        """
        kind = UpdateType(update_type)
        refused = self._refuse_list(version, kind, entries, settings, message_bytes)
        if refused is not None:
            log.warning("SendLocalList %s version %d: %s (%s)", kind.value, version, refused.status.value,
                        refused.detail)
            return refused
        upserts = {token_key(e.id_token): ListedEntry(e.info, e.token_type) for e in entries if e.info is not None}
        deletes = {token_key(e.id_token) for e in entries if e.info is None}
        current = self._db.list_keys()
        size = len(upserts) if kind is UpdateType.FULL else len((current | set(upserts)) - deletes)
        if size > settings.list_max_entries:
            return self._failed(kind, version, "TooManyEntries",
                                f"the list would hold {size} tokens, at most {settings.list_max_entries} allowed")
        self._db.list_apply(version, replace=kind is UpdateType.FULL, upserts=upserts, deletes=deletes)
        log.info("SendLocalList %s version %d accepted: %d token(s) in the local list", kind.value, version,
                 len(self._db.list_keys()))
        self._tell_entries()
        return ListUpdateResult(ListStatus.ACCEPTED)

    def _refuse_list(self, version: int, kind: UpdateType, entries: Sequence[ListEntry], settings: AuthSettings,
                     message_bytes: int | None) -> ListUpdateResult | None:
        """The Failed/VersionMismatch answer a SendLocalList gets before anything is written, or None."""
        if not settings.list_enabled:
            return ListUpdateResult(ListStatus.FAILED, "Disabled", "LocalAuthListCtrlr.Enabled is false")
        if isinstance(version, bool) or not isinstance(version, int) or version <= 0:
            return ListUpdateResult(ListStatus.FAILED, "InvalidVersion", "versionNumber must be above 0 (D01.FR.18)")
        if kind is UpdateType.DIFFERENTIAL and version <= self._db.list_version:
            return ListUpdateResult(ListStatus.VERSION_MISMATCH, None,
                                    f"version {version} is not above the current {self._db.list_version}")
        limit = settings.list_items_per_message
        if limit is not None and len(entries) > limit:
            return ListUpdateResult(ListStatus.FAILED, "TooManyItems",
                                    f"{len(entries)} entries in one message, ItemsPerMessage is {limit}")
        limit = settings.list_bytes_per_message
        if limit is not None and message_bytes is not None and message_bytes > limit:
            return ListUpdateResult(ListStatus.FAILED, "TooManyBytes",
                                    f"the message is {message_bytes} bytes, BytesPerMessage is {limit}")
        keys = [token_key(e.id_token) for e in entries]
        if len(set(keys)) != len(keys):
            return ListUpdateResult(ListStatus.FAILED, "DuplicateToken", "a token is listed twice (D01.FR.06)")
        if kind is UpdateType.FULL and any(e.info is None for e in entries):
            return ListUpdateResult(ListStatus.FAILED, "MissingIdTokenInfo", "a Full list entry has no idTokenInfo")
        return None

    @staticmethod
    def _failed(kind: UpdateType, version: int, reason: str, detail: str) -> ListUpdateResult:
        """A Failed answer, logged."""
        log.warning("SendLocalList %s version %d: Failed (%s)", kind.value, version, detail)
        return ListUpdateResult(ListStatus.FAILED, reason, detail)

    def local_list_version(self, *, settings: AuthSettings) -> int:
        """GetLocalListVersion (D02): the version; 0 when no list was ever set (D02.FR.02) or it is disabled.

        Disabled answers 0 as EVerest libocpp does: the station then has no list in use.
        """
        return self._db.list_version if settings.list_enabled else 0

    def list_lookup(self, token: str, now: datetime) -> IdTokenInfo | None:
        """The listed info of ``token`` while present (an entry past its cacheExpiryDateTime counts as absent)."""
        entry = self._db.list_get(token_key(token))
        if entry is None or not entry.info.present_at(now):
            return None
        return entry.info

    def local_list_size(self) -> int:
        """How many tokens the local list holds (LocalAuthListCtrlr.Entries)."""
        return len(self._db.list_keys())

    def _tell_entries(self) -> None:
        """Give the list's size to ``on_entries``; its failure is logged, never raised."""
        if self._on_entries is None:
            return
        try:
            self._on_entries(self.local_list_size())
        except Exception as exc:
            log.warning("cannot record the local list's size (LocalAuthListCtrlr.Entries): %s", exc)

    # ------------------------------------------------------------ the rules (C01, C10-C15)

    def decide(self, token: str, *, online: bool, now: datetime, settings: AuthSettings) -> Decision:
        """What to do with a presented token: ask the CSMS, or accept/refuse here (the rules: module docstring)."""
        decision = self._decide(token, online, now, settings)
        if decision.source is Source.CACHE and decision.verdict is not Verdict.ASK_CSMS:
            self._touch(token, now)
        log.debug("authorization of %s (%s): %s, %s", redact_token(token), "online" if online else "offline",
                  decision.verdict.value, decision.reason)
        return decision

    def _decide(self, token: str, online: bool, now: datetime, s: AuthSettings) -> Decision:
        """``decide`` without the bookkeeping."""
        if not s.enabled:
            return Decision(Verdict.ACCEPT, ACCEPTED, None, Source.AUTHORIZATION_DISABLED,
                            "authorization disabled (AuthCtrlr.Enabled = false)")
        known = self.lookup(token, now, settings=s)
        status = None if known is None else known.info.status_at(now)
        if online:
            if s.disable_remote_authorization:
                if known is None:
                    return Decision(Verdict.REFUSE, UNKNOWN, None, Source.NOT_ASKED,
                                    "unknown token, and AuthCtrlr.DisableRemoteAuthorization forbids asking the CSMS")
                return _local(known, status, "remote authorization disabled")
            if s.local_pre_authorize and known is not None:
                if status == ACCEPTED:
                    return _local(known, status, "pre-authorized (LocalPreAuthorize)")
                post_disabled = (s.list_disable_post_authorize if known.source is Source.LOCAL_LIST
                                 else s.cache_disable_post_authorize)
                if post_disabled:
                    return _local(known, status, "not asked again (DisablePostAuthorize)")
            return Decision(Verdict.ASK_CSMS, reason="the CSMS is asked")
        if known is not None and status != ACCEPTED:
            return _local(known, status, "offline")
        if known is not None and s.local_authorize_offline:
            return _local(known, status, "offline (LocalAuthorizeOffline)")
        if s.offline_tx_for_unknown_id:
            return Decision(Verdict.ACCEPT, ACCEPTED, None, Source.UNKNOWN_OFFLINE,
                            "offline: unknown tokens allowed (OfflineTxForUnknownIdEnabled)")
        return Decision(Verdict.REFUSE, UNKNOWN, None, Source.UNKNOWN_OFFLINE,
                        "offline: the CSMS cannot authorize the token")

    def _touch(self, token: str, now: datetime) -> None:
        """Record a use of a cache entry (LRU order); a failure only costs the order, so it is logged."""
        try:
            self._db.cache_touch(token_key(token), now)
        except AuthStoreError as exc:
            log.warning("authorization cache: cannot record a use (%s)", exc)


def _local(known: LocalAnswer, status: str | None, why: str) -> Decision:
    """A local verdict from a list or cache entry: accepted only if its status (at now) is Accepted."""
    where = "local list" if known.source is Source.LOCAL_LIST else "authorization cache"
    verdict = Verdict.ACCEPT if status == ACCEPTED else Verdict.REFUSE
    return Decision(verdict, status, known.info.group_id_token, known.source, f"{status} in the {where}: {why}")


def remember_answer(store: AuthorizationStore, token: str, read: Callable[[], IdTokenInfo], *, now: datetime,
                    settings: AuthSettings, what: str) -> bool:
    """Cache the CSMS's answer about ``token`` as ``read()`` makes it of the layer's payload (``what``: its name, e.g.
    idTagInfo); an answer that cannot be read or a store that cannot be written is logged and skipped (the answer
    itself stands). True when stored."""
    try:
        return store.remember(token, read(), now=now, settings=settings)
    except (FormatError, ValueError) as exc:
        log.warning("authorization cache: the CSMS's %s for %s is unusable (%s): not cached", what,
                    redact_token(token), exc)
    except AuthStoreError as exc:
        log.warning("authorization cache: %s not cached: %s", redact_token(token), exc)
    return False
