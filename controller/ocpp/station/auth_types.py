"""The values of OCPP authorization, version neutral: what the CSMS says about a token, the rules' inputs and outcome.

Plain dataclasses of our own (no ``ocpp`` library): the 2.0.1 layer (controller.ocpp.v201.auth) and later the 1.6
layer translate their IdTokenInfo/IdTagInfo into ``IdTokenInfo``, read the rules' switches into ``AuthSettings``
and turn a ``Decision`` into the port's ``Authorization``. Statuses are OCPP's AuthorizationStatus spellings
("Accepted", "Blocked", "Invalid", ...), kept as text so both versions' sets fit.

Tokens are matched ASCII case-insensitively, as OCPP compares identifiers (controller.core.tokens.same_token):
``token_key`` folds a-z to A-Z and keeps every other character, so "alice" and "ALICE" share one entry while "é"
and "É" do not. OCPP 2.0.1 C01.FR.25 (errata 2025-01) compares idToken *and* type; the port hands the station
only the token text (an RFID read is ISO14443), so the store keys on the text alone and keeps the type for
information.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from controller.ocpp.station.variables import VariableStore
from controller.port.charger import Authorization

ACCEPTED = "Accepted"
UNKNOWN = "Unknown"
CACHE_MAX_ENTRIES = 1_000
"""Authorization cache bound (AuthCacheCtrlr.Policy = LRU evicts beyond it).

A row holds a 36-character token, a status, a 36-character group token and three timestamps: about 200 bytes,
so 1,000 entries stay well inside AuthCacheCtrlr.Storage (1 MiB); a charger sees far fewer distinct cards.
"""
LIST_MAX_ENTRIES = 10_000
"""Local list bound when LocalAuthListCtrlr.Entries has no maxLimit (the device model gives 10,000: D01.FR.12)."""
_UPPER = str.maketrans(string.ascii_lowercase, string.ascii_uppercase)


def token_key(token: str) -> str:
    """The stored key of a token: a-z folded to A-Z, every other character kept (matches where same_token does)."""
    return token.translate(_UPPER)


@dataclass(frozen=True, slots=True)
class IdTokenInfo:
    """What the CSMS says about one token (2.0.1 IdTokenInfoType, 1.6 IdTagInfo), as the station keeps it.

    ``cache_expiry`` (2.0.1 cacheExpiryDateTime, station time): after it the entry counts as absent (C10.FR.13;
    the token itself may still be valid, so the CSMS is asked again). ``token_expiry`` (1.6 expiryDate): after it
    the token itself is Expired. ``group_id_token`` is the group (2.0.1 groupIdToken.idToken, 1.6 parentIdTag).
    """

    status: str
    group_id_token: str | None = None
    cache_expiry: datetime | None = None
    token_expiry: datetime | None = None

    def __post_init__(self) -> None:
        """Refuse what cannot be an OCPP status or a timestamp we can compare (aware datetimes only)."""
        if not isinstance(self.status, str) or not self.status:
            raise ValueError(f"an authorization status must be a non-empty string, not {self.status!r}")
        if self.group_id_token is not None and (not isinstance(self.group_id_token, str) or not self.group_id_token):
            raise ValueError("a group id token must be a non-empty string or None")
        for name in ("cache_expiry", "token_expiry"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
                raise ValueError(f"{name} must be an aware datetime or None")

    def present_at(self, now: datetime) -> bool:
        """Whether the entry still counts at ``now`` (its cacheExpiryDateTime, if any, has not passed)."""
        return self.cache_expiry is None or now < self.cache_expiry

    def status_at(self, now: datetime) -> str:
        """The status at ``now``: Expired once a 1.6 expiryDate has passed, else as given."""
        if self.token_expiry is not None and now >= self.token_expiry:
            return "Expired"
        return self.status


@dataclass(frozen=True, slots=True)
class ListEntry:
    """One entry of a SendLocalList: the token and its info; ``info`` None deletes it (Differential only)."""

    id_token: str
    info: IdTokenInfo | None
    token_type: str | None = None


class UpdateType(StrEnum):
    """SendLocalList updateType (2.0.1 UpdateEnumType, 1.6 UpdateType)."""

    FULL = "Full"
    DIFFERENTIAL = "Differential"


class ListStatus(StrEnum):
    """SendLocalList answer (2.0.1 SendLocalListStatusEnumType; 1.6 UpdateStatus adds NotSupported)."""

    ACCEPTED = "Accepted"
    FAILED = "Failed"
    VERSION_MISMATCH = "VersionMismatch"


@dataclass(frozen=True, slots=True)
class ListUpdateResult:
    """The answer to a SendLocalList, with a short reason code (at most 20 characters) and a human explanation."""

    status: ListStatus
    reason_code: str | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """The switches of the authorization rules, read from the device model by the caller (``from_variables``).

    Defaults are the device model's defaults (controller.ocpp.v201.device_model ``_authorization``).
    """

    enabled: bool = True  # AuthCtrlr.Enabled
    local_pre_authorize: bool = False  # AuthCtrlr.LocalPreAuthorize
    local_authorize_offline: bool = True  # AuthCtrlr.LocalAuthorizeOffline
    offline_tx_for_unknown_id: bool = False  # AuthCtrlr.OfflineTxForUnknownIdEnabled
    disable_remote_authorization: bool = False  # AuthCtrlr.DisableRemoteAuthorization
    cache_enabled: bool = True  # AuthCacheCtrlr.Enabled
    cache_lifetime_s: int | None = 86_400  # AuthCacheCtrlr.LifeTime (None: no lifetime)
    cache_disable_post_authorize: bool = False  # AuthCacheCtrlr.DisablePostAuthorize
    list_enabled: bool = True  # LocalAuthListCtrlr.Enabled
    list_disable_post_authorize: bool = False  # LocalAuthListCtrlr.DisablePostAuthorize
    list_items_per_message: int | None = 250  # LocalAuthListCtrlr.ItemsPerMessage
    list_bytes_per_message: int | None = 65_536  # LocalAuthListCtrlr.BytesPerMessage
    list_max_entries: int = LIST_MAX_ENTRIES  # LocalAuthListCtrlr.Entries maxLimit

    @classmethod
    def from_variables(cls, variables: VariableStore) -> AuthSettings:
        """The current switches from the station's variables (an undefined optional one keeps its default)."""

        def flag(component: str, variable: str, default: bool) -> bool:
            """A boolean variable, or ``default`` when this station does not define it."""
            try:
                return variables.bool_value(component, variable)
            except KeyError:
                return default

        def number(component: str, variable: str, default: int | None) -> int | None:
            """An integer variable, or ``default`` when this station does not define it."""
            try:
                return variables.int_value(component, variable)
            except KeyError:
                return default

        auth, cache, local = "AuthCtrlr", "AuthCacheCtrlr", "LocalAuthListCtrlr"
        entries = variables.definition(local, "Entries")
        max_entries = entries.max_limit if entries is not None and entries.max_limit is not None else None
        return cls(
            enabled=flag(auth, "Enabled", True),
            local_pre_authorize=flag(auth, "LocalPreAuthorize", False),
            local_authorize_offline=flag(auth, "LocalAuthorizeOffline", True),
            offline_tx_for_unknown_id=flag(auth, "OfflineTxForUnknownIdEnabled", False),
            disable_remote_authorization=flag(auth, "DisableRemoteAuthorization", False),
            cache_enabled=flag(cache, "Enabled", True),
            cache_lifetime_s=number(cache, "LifeTime", None),
            cache_disable_post_authorize=flag(cache, "DisablePostAuthorize", False),
            list_enabled=flag(local, "Enabled", True),
            list_disable_post_authorize=flag(local, "DisablePostAuthorize", False),
            list_items_per_message=number(local, "ItemsPerMessage", None),
            list_bytes_per_message=number(local, "BytesPerMessage", None),
            list_max_entries=int(max_entries) if max_entries is not None else LIST_MAX_ENTRIES,
        )


class Verdict(StrEnum):
    """What the station does with a presented token."""

    ASK_CSMS = "ask_csms"  # send Authorize and follow the answer (on no answer: decide again offline)
    ACCEPT = "accept"  # accepted here, without asking
    REFUSE = "refuse"  # refused here, without asking


class Source(StrEnum):
    """Where a local verdict comes from."""

    LOCAL_LIST = "local_list"
    CACHE = "cache"
    UNKNOWN_OFFLINE = "unknown_offline"  # offline, known to neither: OfflineTxForUnknownIdEnabled decides
    NOT_ASKED = "not_asked"  # online, known to neither, and AuthCtrlr.DisableRemoteAuthorization forbids asking
    AUTHORIZATION_DISABLED = "authorization_disabled"  # AuthCtrlr.Enabled = false


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of the rules for one token: ask the CSMS, or accept/refuse here with the status and group."""

    verdict: Verdict
    status: str | None = None  # the AuthorizationStatus a local verdict rests on (None for ASK_CSMS)
    group_id_token: str | None = None
    source: Source | None = None
    reason: str = ""  # why, for logs and the port's Authorization (never the token itself)

    def authorization(self) -> Authorization:
        """The port's Authorization for a local verdict; ValueError for ASK_CSMS (the CSMS's answer decides)."""
        if self.verdict is Verdict.ASK_CSMS:
            raise ValueError("the CSMS decides this token: there is no local Authorization")
        return Authorization(self.verdict is Verdict.ACCEPT, self.group_id_token, self.reason)
