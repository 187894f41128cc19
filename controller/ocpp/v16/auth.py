"""OCPP 1.6 authorization on the wire: IdTagInfo, SendLocalList, GetLocalListVersion and ClearCache.

Translations between the ``ocpp`` library's 1.6 payloads (snake_case keys: ``id_tag_info`` {status, parent_id_tag,
expiry_date}) and the version-neutral types of controller.ocpp.station.authorization, which keeps the cache and
the local list and applies the rules (the 1.6 keys LocalAuthorizeOffline, LocalPreAuthorize,
AllowOfflineTxForUnknownId, AuthorizationCacheEnabled and LocalAuthListEnabled are aliases of the same
variables). ``parentIdTag`` is the group token; ``expiryDate`` is the token's own expiry (after it the token is
Expired). The answers are the keyword arguments of the ``call_result`` classes.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from controller.core.parsing import FormatError, parse_rfc3339
from controller.ocpp.station.auth_types import AuthSettings, IdTokenInfo, ListEntry
from controller.ocpp.station.authorization import AuthorizationStore, AuthStoreError, remember_answer
from controller.ocpp.wire import message_bytes
from controller.port.charger import Authorization

log = logging.getLogger("controller.ocpp")


def id_tag_info(payload: Mapping[str, Any]) -> IdTokenInfo:
    """The neutral IdTokenInfo of an IdTagInfo; FormatError/ValueError naming what cannot be used."""
    if not isinstance(payload, Mapping):
        raise FormatError("idTagInfo", f"must be an object, got {type(payload).__name__}")
    status = payload.get("status")
    if not isinstance(status, str) or not status:
        raise FormatError("idTagInfo.status", f"must be a status, got {status!r}")
    parent = payload.get("parent_id_tag")
    if parent is not None and not isinstance(parent, str):
        raise FormatError("idTagInfo.parentIdTag", "must be a string")
    expiry = payload.get("expiry_date")
    return IdTokenInfo(status, parent or None, None,
                       None if expiry is None else parse_rfc3339("idTagInfo.expiryDate", expiry))


def authorization(payload: Mapping[str, Any], *, now: datetime) -> Authorization:
    """The port's Authorization of a CSMS's IdTagInfo: Accepted (and not past its expiryDate) or not, with the
    parentIdTag as the group. Never raises: an unreadable expiryDate is ignored, anything else unreadable refuses."""
    status = payload.get("status") if isinstance(payload, Mapping) else None
    parent = payload.get("parent_id_tag") if isinstance(payload, Mapping) else None
    with contextlib.suppress(FormatError, ValueError):
        status = id_tag_info(payload).status_at(now)
    return Authorization(status == "Accepted", parent if isinstance(parent, str) and parent else None, str(status))


def remember(store: AuthorizationStore, token: str, info: Mapping[str, Any], *, now: datetime,
             settings: AuthSettings) -> bool:
    """Cache what the CSMS said about ``token`` (Authorize, StartTransaction and StopTransaction answers).

    A payload that cannot be read or a store that cannot be written is logged and skipped; True when stored.
    """
    if not token:
        return False
    return remember_answer(store, token, lambda: id_tag_info(info), now=now, settings=settings, what="idTagInfo")


def list_entries(items: Sequence[Mapping[str, Any]] | None) -> list[ListEntry]:
    """The neutral entries of a localAuthorizationList ([{id_tag, id_tag_info?}])."""
    entries = []
    for index, item in enumerate(items or ()):
        token = item.get("id_tag") if isinstance(item, Mapping) else None
        if not isinstance(token, str) or not token:
            raise FormatError(f"localAuthorizationList[{index}].idTag", "expected a non-empty idTag")
        info = item.get("id_tag_info")
        entries.append(ListEntry(token, None if info is None else id_tag_info(info)))
    return entries


def send_local_list(store: AuthorizationStore, payload: Mapping[str, Any], *, settings: AuthSettings) -> dict[str, Any]:
    """The SendLocalList answer: Accepted, VersionMismatch, Failed, or NotSupported while LocalAuthListEnabled is
    false (as EVerest's 1.6 station answers)."""
    if not settings.list_enabled:
        return {"status": "NotSupported"}

    def read() -> tuple[int, str, list[ListEntry]]:
        return (int(payload["list_version"]), str(payload["update_type"]),
                list_entries(payload.get("local_authorization_list")))

    result = store.update_local_list(read, settings=settings, message_bytes=message_bytes(payload))
    return {"status": result.status.value}


def get_local_list_version(store: AuthorizationStore, *, settings: AuthSettings) -> dict[str, Any]:
    """GetLocalListVersion: the version (0: no list, or the list is disabled)."""
    return {"list_version": store.local_list_version(settings=settings)}


def clear_cache(store: AuthorizationStore, *, settings: AuthSettings) -> dict[str, Any]:
    """ClearCache: Accepted once cleared; Rejected while AuthorizationCacheEnabled is false or on a failure."""
    try:
        cleared = store.clear(settings=settings)
    except AuthStoreError as exc:
        log.error("ClearCache: %s", exc)
        return {"status": "Rejected"}
    return {"status": "Accepted" if cleared else "Rejected"}
