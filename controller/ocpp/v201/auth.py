"""OCPP 2.0.1 authorization on the wire: IdTokenInfoType, SendLocalList, GetLocalListVersion and ClearCache.

Translations between the ``ocpp`` library's payloads (snake_case keys, as it passes a CALL's fields to a handler and
a CALLRESULT's to the caller, nested dicts included) and the version-neutral types of
controller.ocpp.station.authorization. The answers are the keyword arguments of the ``call_result`` classes
(``call_result.SendLocalList(**send_local_list(...))``). Times on the wire are CSMS time, which is station time
(StationClock.now()), so they are taken as they come.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from controller.core.parsing import FormatError, format_rfc3339, parse_rfc3339
from controller.ocpp.station.auth_types import AuthSettings, IdTokenInfo, ListEntry
from controller.ocpp.station.authorization import AuthorizationStore, AuthStoreError, remember_answer
from controller.ocpp.v201.convert import status_info
from controller.ocpp.wire import message_bytes
from controller.port.charger import Authorization

log = logging.getLogger("controller.ocpp")

GROUP_TOKEN_TYPE = "Central"  # C09.FR.13 (errata 2025-01): a GroupIdToken's type SHOULD be Central
NOT_CACHED_TYPES = frozenset({"Central", "NoAuthorization"})  # never cached (EVerest cites C03.FR.01, C05.FR.01)


def id_token_info(payload: Mapping[str, Any]) -> IdTokenInfo:
    """The neutral IdTokenInfo of an IdTokenInfoType (status, cache_expiry_date_time, group_id_token).

    FormatError/ValueError naming what cannot be used. Fields the station does not act on (evse_id, languages,
    personal_message, charging_priority) are left out.
    """
    if not isinstance(payload, Mapping):
        raise FormatError("idTokenInfo", f"must be an object, got {type(payload).__name__}")
    status = payload.get("status")
    if not isinstance(status, str) or not status:
        raise FormatError("idTokenInfo.status", f"must be a status, got {status!r}")
    expiry = payload.get("cache_expiry_date_time")
    group = payload.get("group_id_token")
    group_token = None
    if group is not None:
        if not isinstance(group, Mapping) or not isinstance(group.get("id_token"), str):
            raise FormatError("idTokenInfo.groupIdToken", "expected an IdTokenType with idToken")
        group_token = group["id_token"] or None
    return IdTokenInfo(status, group_token,
                       None if expiry is None else parse_rfc3339("idTokenInfo.cacheExpiryDateTime", expiry))


def id_token_info_payload(info: IdTokenInfo) -> dict[str, Any]:
    """The IdTokenInfoType (snake_case) of a neutral IdTokenInfo: what a CSMS would say, e.g. in a local list."""
    payload: dict[str, Any] = {"status": info.status}
    if info.cache_expiry is not None:
        payload["cache_expiry_date_time"] = format_rfc3339(info.cache_expiry)
    if info.group_id_token is not None:
        payload["group_id_token"] = {"id_token": info.group_id_token, "type": GROUP_TOKEN_TYPE}
    return payload


def authorization(payload: Mapping[str, Any]) -> Authorization:
    """The port's Authorization of a CSMS's IdTokenInfoType (AuthorizeResponse): Accepted or not, with the group.

    Never raises: only status and groupIdToken are read (the library checks no formats, so a bad
    cacheExpiryDateTime must not cost the answer); anything unreadable is simply not Accepted or has no group.
    """
    status = payload.get("status") if isinstance(payload, Mapping) else None
    group = payload.get("group_id_token") if isinstance(payload, Mapping) else None
    group_token = group.get("id_token") if isinstance(group, Mapping) else None
    return Authorization(status == "Accepted", group_token if isinstance(group_token, str) and group_token else None,
                         str(status))


def remember(store: AuthorizationStore, id_token: Mapping[str, Any], info: Mapping[str, Any], *, now: datetime,
             settings: AuthSettings) -> bool:
    """C10.FR.04/C10.FR.05: cache what the CSMS said about an IdTokenType (Authorize, TransactionEvent answers).

    Central and NoAuthorization tokens are never cached. A payload that cannot be read or a store that cannot be
    written is logged and skipped (the answer itself stands); True when stored.
    """
    token, kind = id_token.get("id_token"), id_token.get("type")
    if not isinstance(token, str) or not token or kind in NOT_CACHED_TYPES:
        return False
    return remember_answer(store, token, lambda: id_token_info(info), now=now, settings=settings,
                           what="idTokenInfo")


def list_entries(items: Sequence[Mapping[str, Any]] | None) -> list[ListEntry]:
    """The neutral entries of a localAuthorizationList (AuthorizationData: id_token, optional id_token_info)."""
    entries = []
    for index, item in enumerate(items or ()):
        where = f"localAuthorizationList[{index}]"
        token = item.get("id_token") if isinstance(item, Mapping) else None
        if not isinstance(token, Mapping) or not isinstance(token.get("id_token"), str) or not token["id_token"]:
            raise FormatError(f"{where}.idToken", "expected an IdTokenType with a non-empty idToken")
        info = item.get("id_token_info")
        kind = token.get("type")
        entries.append(ListEntry(token["id_token"], None if info is None else id_token_info(info),
                                 kind if isinstance(kind, str) else None))
    return entries


def send_local_list(store: AuthorizationStore, payload: Mapping[str, Any], *, settings: AuthSettings) -> dict[str, Any]:
    """D01: the SendLocalListResponse fields for a SendLocalListRequest (version_number, update_type, list).

    A list that cannot be read is Failed (InvalidValue); one that cannot be stored is Failed (StoreFailure).
    """

    def read() -> tuple[int, str, list[ListEntry]]:
        entries = list_entries(payload.get("local_authorization_list"))
        return int(payload["version_number"]), str(payload["update_type"]), entries

    result = store.update_local_list(read, settings=settings, message_bytes=message_bytes(payload))
    answer: dict[str, Any] = {"status": result.status.value}
    if result.reason_code is not None:
        answer["status_info"] = status_info(result.reason_code, result.detail)
    return answer


def get_local_list_version(store: AuthorizationStore, *, settings: AuthSettings) -> dict[str, Any]:
    """D02: the GetLocalListVersionResponse fields (0: no list, or the list is disabled)."""
    return {"version_number": store.local_list_version(settings=settings)}


def clear_cache(store: AuthorizationStore, *, settings: AuthSettings) -> dict[str, Any]:
    """C11: the ClearCacheResponse fields: Accepted once cleared; Rejected while disabled (C11.FR.04) or on failure."""
    try:
        cleared = store.clear(settings=settings)
    except AuthStoreError as exc:
        log.error("ClearCache: %s", exc)
        return {"status": "Rejected", "status_info": status_info("StoreFailure", "the cache cannot be written")}
    if not cleared:
        return {"status": "Rejected", "status_info": status_info("Disabled", "AuthCacheCtrlr.Enabled is false")}
    return {"status": "Accepted"}
