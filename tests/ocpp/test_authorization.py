"""Version-neutral OCPP authorization: the rules as a table, the cache (expiry, lifetime, LRU), the local list.

Real SQLite files in tmp_path (the disk itself: test_auth_store.py). Times are a fake clock: ``T0`` plus seconds.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from controller.ocpp.station.auth_types import (
    AuthSettings,
    Decision,
    IdTokenInfo,
    ListEntry,
    ListStatus,
    Source,
    UpdateType,
    Verdict,
    token_key,
)
from controller.ocpp.station.authorization import AuthorizationStore

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ON = AuthSettings()  # the device model's defaults
PRE = replace(ON, local_pre_authorize=True)
CARD = "04A2B3C4D5E6F7"  # an RFID UID as the reader gives it
SECRET = "SECRETCARD0123456789"  # long enough that a leak in a log line would show


def at(seconds: float) -> datetime:
    """The fake clock: T0 plus ``seconds``."""
    return T0 + timedelta(seconds=seconds)


def accepted(group: str | None = None, **more: Any) -> IdTokenInfo:
    """An Accepted IdTokenInfo."""
    return IdTokenInfo("Accepted", group, **more)


@pytest.fixture
def entries() -> list[int]:
    """What on_entries heard, in order."""
    return []


@pytest.fixture
def store(tmp_path: Path, entries: list[int]) -> Iterator[AuthorizationStore]:
    """A store in a fresh file, reporting its list size to ``entries``."""
    s = AuthorizationStore(tmp_path / "ocpp.db", on_entries=entries.append)
    yield s
    s.close()


def reopen(store: AuthorizationStore, **kwargs: Any) -> AuthorizationStore:
    """Close ``store`` and open its file again (a restart)."""
    store.close()
    return AuthorizationStore(store.path, **kwargs)


def full(store: AuthorizationStore, version: int, *items: tuple[str, IdTokenInfo | None],
         settings: AuthSettings = ON) -> ListStatus:
    """Send a Full list; its status."""
    return store.send_local_list(version, "Full", [ListEntry(t, i) for t, i in items], settings=settings).status


def diff(store: AuthorizationStore, version: int, *items: tuple[str, IdTokenInfo | None],
         settings: AuthSettings = ON) -> ListStatus:
    """Send a Differential list; its status."""
    return store.send_local_list(version, "Differential", [ListEntry(t, i) for t, i in items],
                                 settings=settings).status


# ---------------------------------------------------------------- the rules, as a table

ACCEPT, REFUSE, ASK = Verdict.ACCEPT, Verdict.REFUSE, Verdict.ASK_CSMS
LIST, CACHE, UNKNOWN_OFF, NOT_ASKED = Source.LOCAL_LIST, Source.CACHE, Source.UNKNOWN_OFFLINE, Source.NOT_ASKED

# (online, where the token is known, its status there, settings changed from the defaults, verdict, source)
RULES: list[tuple[bool, str, str, dict[str, Any], Verdict, Source | None]] = [
    # AuthCtrlr.Enabled false: everything accepted, online or not
    (True, "none", "", {"enabled": False}, ACCEPT, Source.AUTHORIZATION_DISABLED),
    (False, "list", "Blocked", {"enabled": False}, ACCEPT, Source.AUTHORIZATION_DISABLED),
    # online without LocalPreAuthorize: always asked
    (True, "list", "Accepted", {}, ASK, None),
    (True, "cache", "Accepted", {}, ASK, None),
    (True, "none", "", {}, ASK, None),
    # online with LocalPreAuthorize: Accepted starts at once (C12.FR.02, C14.FR.02), others are asked again
    (True, "list", "Accepted", {"local_pre_authorize": True}, ACCEPT, LIST),
    (True, "cache", "Accepted", {"local_pre_authorize": True}, ACCEPT, CACHE),
    (True, "list", "Blocked", {"local_pre_authorize": True}, ASK, None),
    (True, "cache", "Invalid", {"local_pre_authorize": True}, ASK, None),
    (True, "none", "", {"local_pre_authorize": True}, ASK, None),
    # DisablePostAuthorize of the source that knows the token: refused with its status, not asked
    (True, "list", "Blocked", {"local_pre_authorize": True, "list_disable_post_authorize": True}, REFUSE, LIST),
    (True, "cache", "Invalid", {"local_pre_authorize": True, "cache_disable_post_authorize": True}, REFUSE, CACHE),
    (True, "cache", "Invalid", {"local_pre_authorize": True, "list_disable_post_authorize": True}, ASK, None),
    (True, "list", "Blocked", {"local_pre_authorize": True, "cache_disable_post_authorize": True}, ASK, None),
    # a disabled source is not looked at
    (True, "list", "Accepted", {"local_pre_authorize": True, "list_enabled": False}, ASK, None),
    (True, "cache", "Accepted", {"local_pre_authorize": True, "cache_enabled": False}, ASK, None),
    # DisableRemoteAuthorization: never asked, only the local sources decide
    (True, "list", "Accepted", {"disable_remote_authorization": True}, ACCEPT, LIST),
    (True, "cache", "Blocked", {"disable_remote_authorization": True}, REFUSE, CACHE),
    (True, "none", "", {"disable_remote_authorization": True}, REFUSE, NOT_ASKED),
    # offline, LocalAuthorizeOffline (default true): Accepted entries start (C13)
    (False, "list", "Accepted", {}, ACCEPT, LIST),
    (False, "cache", "Accepted", {}, ACCEPT, CACHE),
    # offline, a known non-Accepted token is refused even when unknown ones may charge (C13.FR.04 errata)
    (False, "list", "Blocked", {"offline_tx_for_unknown_id": True}, REFUSE, LIST),
    (False, "cache", "Expired", {"offline_tx_for_unknown_id": True}, REFUSE, CACHE),
    (False, "list", "Blocked", {"local_authorize_offline": False}, REFUSE, LIST),
    # offline, LocalAuthorizeOffline false: an Accepted entry counts as unknown
    (False, "list", "Accepted", {"local_authorize_offline": False}, REFUSE, UNKNOWN_OFF),
    (False, "cache", "Accepted", {"local_authorize_offline": False, "offline_tx_for_unknown_id": True}, ACCEPT,
     UNKNOWN_OFF),
    # offline, unknown: OfflineTxForUnknownIdEnabled decides (C15)
    (False, "none", "", {}, REFUSE, UNKNOWN_OFF),
    (False, "none", "", {"offline_tx_for_unknown_id": True}, ACCEPT, UNKNOWN_OFF),
    # offline, a disabled source is not looked at
    (False, "list", "Accepted", {"list_enabled": False}, REFUSE, UNKNOWN_OFF),
    (False, "cache", "Accepted", {"cache_enabled": False}, REFUSE, UNKNOWN_OFF),
    (False, "list", "Blocked", {"list_enabled": False, "offline_tx_for_unknown_id": True}, ACCEPT, UNKNOWN_OFF),
]


@pytest.mark.parametrize(("online", "where", "status", "changes", "verdict", "source"), RULES)
def test_decision_rules(store: AuthorizationStore, online: bool, where: str, status: str, changes: dict[str, Any],
                        verdict: Verdict, source: Source | None) -> None:
    """Every rule of the module docstring: online/offline x list/cache/unknown x each switch."""
    if where == "list":
        assert full(store, 1, (CARD, IdTokenInfo(status, "GROUP-L"))) is ListStatus.ACCEPTED
    elif where == "cache":
        assert store.remember(CARD, IdTokenInfo(status, "GROUP-C"), now=T0, settings=ON)
    decision = store.decide(CARD.lower(), online=online, now=at(60), settings=replace(ON, **changes))
    assert (decision.verdict, decision.source) == (verdict, source)
    if verdict is ASK:
        with pytest.raises(ValueError, match="CSMS decides"):
            decision.authorization()
        return
    authorization = decision.authorization()
    assert authorization.accepted is (verdict is ACCEPT)
    assert authorization.reason == decision.reason and CARD not in decision.reason
    if source in (LIST, CACHE):
        assert decision.status == status
        assert authorization.group_id_token == ("GROUP-L" if source is LIST else "GROUP-C")
    else:
        assert authorization.group_id_token is None


def test_the_local_list_takes_precedence_over_the_cache(store: AuthorizationStore) -> None:
    """A listed token is never looked up in the cache: its status and group win, online and offline."""
    store.remember(CARD, accepted("CACHE-GROUP"), now=T0, settings=ON)
    assert full(store, 1, (CARD, IdTokenInfo("Blocked"))) is ListStatus.ACCEPTED
    assert store.decide(CARD, online=True, now=T0, settings=PRE).verdict is ASK
    offline = store.decide(CARD, online=False, now=T0, settings=replace(ON, offline_tx_for_unknown_id=True))
    assert (offline.verdict, offline.status, offline.source) == (REFUSE, "Blocked", LIST)
    assert full(store, 2, (CARD, accepted("LIST-GROUP"))) is ListStatus.ACCEPTED
    assert store.decide(CARD, online=False, now=T0, settings=ON).group_id_token == "LIST-GROUP"
    found = store.lookup(CARD, T0, settings=replace(ON, list_enabled=False))
    assert found is not None and (found.source, found.info.group_id_token) == (CACHE, "CACHE-GROUP")


def test_tokens_match_ascii_case_insensitively(store: AuthorizationStore) -> None:
    """"abc" and "ABC" are one token (cache, list, SendLocalList duplicates); "é" and "É" are not."""
    store.remember("card-ab12", accepted(), now=T0, settings=ON)
    assert store.cache_lookup("CARD-AB12", T0, lifetime_s=None) == accepted()
    assert store.cache_size() == 1
    store.remember("CARD-ab12", IdTokenInfo("Blocked"), now=T0, settings=ON)
    assert store.cache_size() == 1 and store.cache_lookup("card-AB12", T0, lifetime_s=None) == IdTokenInfo("Blocked")
    assert full(store, 1, ("carte-é", accepted())) is ListStatus.ACCEPTED
    assert store.list_lookup("CARTE-é", T0) == accepted()
    assert store.list_lookup("CARTE-É", T0) is None
    assert token_key("straße-k") == "STRAßE-K"
    duplicate = store.send_local_list(2, "Full", [ListEntry("Abc", accepted()), ListEntry("aBC", accepted())],
                                      settings=ON)
    assert (duplicate.status, duplicate.reason_code) == (ListStatus.FAILED, "DuplicateToken")


# ---------------------------------------------------------------- the cache: expiry, lifetime, LRU (C10, C11)

def test_cache_expiry_date_time_makes_an_entry_absent(store: AuthorizationStore) -> None:
    """C10.FR.13: after cacheExpiryDateTime the entry counts as absent: asked again online, unknown offline."""
    store.remember(CARD, accepted(cache_expiry=at(100)), now=T0, settings=ON)
    assert store.decide(CARD, online=True, now=at(99), settings=PRE).verdict is ACCEPT
    assert store.decide(CARD, online=True, now=at(100), settings=PRE).verdict is ASK
    offline = store.decide(CARD, online=False, now=at(100), settings=replace(ON, offline_tx_for_unknown_id=True))
    assert (offline.verdict, offline.source) == (ACCEPT, UNKNOWN_OFF)
    assert store.purge(at(100), settings=ON) == 1 and store.cache_size() == 0


def test_an_expiry_already_past_is_not_cached_and_removes_the_entry(store: AuthorizationStore) -> None:
    """C10.FR.10 (errata note): a cacheExpiryDateTime in the past keeps the token out of the cache."""
    store.remember(CARD, accepted(), now=T0, settings=ON)
    assert not store.remember(CARD, accepted(cache_expiry=at(-1)), now=T0, settings=ON)
    assert store.cache_size() == 0


def test_lifetime_counts_from_the_last_update(store: AuthorizationStore) -> None:
    """C10.FR.10: over AuthCacheCtrlr.LifeTime seconds after the last update the entry is gone; an update renews."""
    settings = replace(PRE, cache_lifetime_s=3600)
    store.remember(CARD, accepted(), now=T0, settings=settings)
    assert store.decide(CARD, online=True, now=at(3600), settings=settings).verdict is ACCEPT
    assert store.decide(CARD, online=True, now=at(3601), settings=settings).verdict is ASK
    store.remember(CARD, accepted(), now=at(3601), settings=settings)
    assert store.decide(CARD, online=True, now=at(7000), settings=settings).verdict is ACCEPT
    assert store.cache_lookup(CARD, at(10**6), lifetime_s=None) == accepted()  # no lifetime: kept


def test_a_16_expiry_date_makes_the_token_expired(store: AuthorizationStore) -> None:
    """A 1.6 idTagInfo.expiryDate (token_expiry): after it the token is Expired, and refused offline."""
    store.remember(CARD, accepted(token_expiry=at(10)), now=T0, settings=ON)
    assert store.decide(CARD, online=False, now=at(9), settings=ON).verdict is ACCEPT
    late = store.decide(CARD, online=False, now=at(10), settings=replace(ON, offline_tx_for_unknown_id=True))
    assert (late.verdict, late.status) == (REFUSE, "Expired")


def test_nothing_is_cached_while_the_cache_is_disabled(store: AuthorizationStore) -> None:
    """The cache keeps nothing while AuthCacheCtrlr.Enabled is false."""
    assert not store.remember(CARD, accepted(), now=T0, settings=replace(ON, cache_enabled=False))
    assert store.cache_size() == 0


def test_a_full_cache_drops_the_least_recently_used(tmp_path: Path) -> None:
    """AuthCacheCtrlr.Policy = LRU: a use counts as recent; entries no longer valid go first; survives restart."""
    store = AuthorizationStore(tmp_path / "ocpp.db", cache_limit=3)
    for n, token in enumerate(("A", "B", "C")):
        store.remember(token, accepted(), now=at(n), settings=ON)
    assert store.decide("a", online=False, now=at(10), settings=ON).verdict is ACCEPT  # A used: B is now the oldest
    store = reopen(store, cache_limit=3)
    store.remember("D", accepted(), now=at(11), settings=ON)
    assert [t for t in "ABCD" if store.cache_lookup(t, at(11), lifetime_s=None)] == ["A", "C", "D"]
    store.remember("E", accepted(cache_expiry=at(13)), now=at(12), settings=ON)  # C is dropped (oldest)
    store.remember("F", accepted(), now=at(20), settings=ON)  # E's validity ended: it goes before the older A
    assert [t for t in "ABCDEF" if store.cache_lookup(t, at(20), lifetime_s=None)] == ["A", "D", "F"]
    assert store.cache_size() == 3
    store.close()


def test_clear_cache(store: AuthorizationStore) -> None:
    """C11: ClearCache empties the cache; Rejected (False) while the cache is disabled (C11.FR.04), nothing cleared."""
    store.remember(CARD, accepted(), now=T0, settings=ON)
    assert not store.clear(settings=replace(ON, cache_enabled=False))
    assert store.cache_size() == 1
    assert store.clear(settings=ON)
    assert store.cache_size() == 0
    store = reopen(store)
    assert store.cache_size() == 0
    store.close()


# ---------------------------------------------------------------- the local list (D01, D02)

def test_full_replaces_and_differential_changes(store: AuthorizationStore, entries: list[int]) -> None:
    """D01: Full replaces the list (empty: clears it); Differential adds, updates and deletes (no idTokenInfo)."""
    assert store.local_list_version(settings=ON) == 0  # D02: never set
    assert full(store, 5, ("A", accepted()), ("B", accepted("G")), ("C", IdTokenInfo("Blocked"))) is ListStatus.ACCEPTED
    assert store.local_list_version(settings=ON) == 5 and store.local_list_size() == 3
    assert diff(store, 6, ("b", IdTokenInfo("Invalid")), ("c", None), ("D", accepted()), ("Z", None)) \
        is ListStatus.ACCEPTED
    assert [store.list_lookup(t, T0) for t in "ABCD"] == [accepted(), IdTokenInfo("Invalid"), None, accepted()]
    assert diff(store, 7) is ListStatus.ACCEPTED  # D01.FR.05: no entries, only the version
    assert (store.local_list_version(settings=ON), store.local_list_size()) == (7, 3)
    assert full(store, 2, ("E", accepted())) is ListStatus.ACCEPTED  # a Full list may go back in version
    assert store.list_lookup("A", T0) is None and store.local_list_size() == 1
    assert full(store, 3) is ListStatus.ACCEPTED
    assert (store.local_list_version(settings=ON), store.local_list_size()) == (3, 0)
    assert entries == [0, 3, 3, 3, 1, 0]  # at open, then after each accepted update


def test_version_rules(store: AuthorizationStore) -> None:
    """D01.FR.19: a Differential version not above ours is VersionMismatch; D01.FR.18: version 0 is Failed."""
    assert full(store, 4, ("A", accepted())) is ListStatus.ACCEPTED
    assert diff(store, 4, ("B", accepted())) is ListStatus.VERSION_MISMATCH
    assert diff(store, 3, ("B", accepted())) is ListStatus.VERSION_MISMATCH
    assert full(store, 0, ("B", accepted())) is ListStatus.FAILED
    assert diff(store, -1) is ListStatus.FAILED
    assert store.list_lookup("B", T0) is None and store.local_list_version(settings=ON) == 4


@pytest.mark.parametrize(("changes", "reason"), [
    ({"list_enabled": False}, "Disabled"),
    ({"list_items_per_message": 2}, "TooManyItems"),
    ({"list_max_entries": 2}, "TooManyEntries"),
])
def test_refused_lists_change_nothing(store: AuthorizationStore, changes: dict[str, Any], reason: str) -> None:
    """Failed for a disabled list, too many entries in one message, or a list beyond LocalAuthListCtrlr.Entries."""
    assert full(store, 1, ("A", accepted())) is ListStatus.ACCEPTED
    result = store.send_local_list(2, UpdateType.DIFFERENTIAL, [ListEntry(t, accepted()) for t in "BCD"],
                                   settings=replace(ON, **changes))
    assert (result.status, result.reason_code) == (ListStatus.FAILED, reason)
    assert result.detail and len(result.reason_code) <= 20
    assert (store.local_list_version(settings=ON), store.local_list_size()) == (1, 1)


def test_other_refusals(store: AuthorizationStore) -> None:
    """BytesPerMessage, a Full entry without idTokenInfo; the version reads 0 while the list is disabled."""
    big = store.send_local_list(1, "Full", [ListEntry("A", accepted())], settings=ON, message_bytes=70_000)
    assert (big.status, big.reason_code) == (ListStatus.FAILED, "TooManyBytes")
    bare = store.send_local_list(1, "Full", [ListEntry("A", None)], settings=ON)
    assert (bare.status, bare.reason_code) == (ListStatus.FAILED, "MissingIdTokenInfo")
    assert full(store, 9, ("A", accepted())) is ListStatus.ACCEPTED
    assert store.local_list_version(settings=replace(ON, list_enabled=False)) == 0
    assert store.local_list_version(settings=ON) == 9
    with pytest.raises(ValueError):
        store.send_local_list(10, "Sideways", [], settings=ON)


def test_list_entry_expiry(store: AuthorizationStore) -> None:
    """A list entry past its cacheExpiryDateTime counts as absent (then the cache may know the token)."""
    assert full(store, 1, (CARD, IdTokenInfo("Blocked", cache_expiry=at(5)))) is ListStatus.ACCEPTED
    store.remember(CARD, accepted(), now=T0, settings=ON)
    assert store.decide(CARD, online=False, now=at(4), settings=ON).verdict is REFUSE
    after = store.decide(CARD, online=False, now=at(5), settings=ON)
    assert (after.verdict, after.source) == (ACCEPT, CACHE)


def test_decision_and_info_values() -> None:
    """The value types refuse what they cannot hold; a Decision's Authorization mirrors it."""
    with pytest.raises(ValueError):
        IdTokenInfo("")
    with pytest.raises(ValueError):
        IdTokenInfo("Accepted", cache_expiry=datetime(2026, 1, 1))  # naive: not comparable
    decision = Decision(Verdict.REFUSE, "Blocked", "G", Source.CACHE, "Blocked in the cache")
    assert decision.authorization().accepted is False and decision.authorization().group_id_token == "G"
    with pytest.raises(ValueError):
        AuthorizationStore(Path("unused.db"), cache_limit=0)
