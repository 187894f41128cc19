"""Pydantic models that document the HTTP API's bodies in ``/openapi.json``.

They describe, they do not validate requests: request bodies are parsed by the same
``from_dict`` functions as everywhere else (controller.core.types), so one set of rules applies.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from controller.core.parsing import MAX_ID
from controller.core.tokens import MAX_TOKEN_LENGTH, TOKEN_PATTERN
from controller.core.types import ConnectorState, ConnectorType, ReservationCheckStatus, ReservationResult
from controller.port.charger import MAX_CURRENT_LIMIT_A, MIN_CURRENT_LIMIT_A, SimFaultKind, TokenVerdict

# The token policy of controller.core.types.parse_token, as one pattern: no control character anywhere and at least
# one visible character (not only white space, format or combining characters). Explicit code point ranges, no
# \s: Python's and ECMA-262's \s differ, and the schema must say exactly what parse_token accepts.
_TOKEN = Field(
    min_length=1,
    max_length=MAX_TOKEN_LENGTH,
    pattern=TOKEN_PATTERN,
    description="id token, compared ASCII case-insensitively; no control characters, not only invisible ones",
)
_GROUP = Field(default=None, min_length=1, max_length=MAX_TOKEN_LENGTH, pattern=TOKEN_PATTERN)


class ErrorOut(BaseModel):
    """Every 4xx/5xx body: what went wrong, and the offending field when there is one."""

    error: str
    field: str | None = None


class ReservationBody(BaseModel):
    """The seed's Reservation; without evse_id/connector_type it is the previous shape (a global reservation)."""

    model_config = ConfigDict(extra="forbid")

    reservation_id: int = Field(ge=0, le=MAX_ID)
    id_token: str = _TOKEN
    expiry_time: datetime = Field(description="RFC3339 with an offset, e.g. 2026-01-01T12:00:00Z")
    parent_id_token: str | None = _GROUP
    evse_id: int | None = Field(default=None, ge=0, le=MAX_ID, description="absent: a global reservation")
    connector_type: ConnectorType | None = Field(default=None, description="absent or Unknown: any connector")


class ReservationCheckBody(BaseModel):
    """The seed's ReservationCheck: is there a reservation for this token (at this EVSE)?"""

    model_config = ConfigDict(extra="forbid")

    id_token: str = _TOKEN
    evse_id: int | None = Field(default=None, ge=0, le=MAX_ID)
    group_id_token: str | None = _GROUP


class TokenIn(BaseModel):
    """A token presented at an EVSE, as an RFID reader would."""

    model_config = ConfigDict(extra="forbid")

    id_token: str = _TOKEN


class SimFaultIn(BaseModel):
    """A fault to inject into (or clear from) the simulated plant."""

    model_config = ConfigDict(extra="forbid")

    evse_id: int = Field(ge=0, le=MAX_ID)
    kind: SimFaultKind


class ReserveOut(BaseModel):
    """Answer to ``POST /reservations``."""

    result: ReservationResult


class CancelOut(BaseModel):
    """Answer to ``DELETE /reservations/{id}``: false when no such live reservation."""

    cancelled: bool


class ReservationsOut(BaseModel):
    """Live reservations in arrival order."""

    reservations: list[ReservationBody]


class CheckOut(BaseModel):
    """Answer to ``POST /reservations/check``."""

    status: ReservationCheckStatus


class TokenOutcomeOut(BaseModel):
    """What presenting a token led to (controller.port.charger.TokenOutcome)."""

    evse_id: int
    may_charge: bool
    verdict: TokenVerdict
    reason: str
    reservation_id: int | None


class ResetOut(BaseModel):
    """An EVSE after an operator fault reset: the faults still active (a cause still present comes back)."""

    evse_id: int
    faults: list[str]


class EnabledOut(BaseModel):
    """An EVSE after an operator enable/disable."""

    evse_id: int
    enabled: bool


class SimActionOut(BaseModel):
    """A simulated-plant action that was carried out."""

    evse_id: int
    action: Literal["plug", "unplug", "fault"]
    kind: SimFaultKind | None = None


class StatusLedOut(BaseModel):
    """The status LED's colour and pattern."""

    model_config = ConfigDict(extra="allow")

    color: str
    pattern: str


class ConnectorOut(BaseModel):
    """One connector of an EVSE."""

    model_config = ConfigDict(extra="allow")

    id: int
    type: ConnectorType
    state: ConnectorState


class EvseStatusOut(BaseModel):
    """One EVSE's entry of the status document (the runtime may add fields)."""

    model_config = ConfigDict(extra="allow")

    id: int
    state: ConnectorState
    plugged_in: bool
    reserved: bool
    reserved_led: Literal["on", "off", "blink"]
    status_led: StatusLedOut | None
    lock: Literal["locked", "unlocked", "moving", "fault"]
    contactor: Literal["open", "closed"]
    charging: bool
    power_w: float | None
    faults: list[str]
    connectors: list[ConnectorOut]


class StoreStatusOut(BaseModel):
    """The reservation store's health: while it cannot write, changes are refused (503) and ends wait."""

    ok: bool
    error: str | None = Field(description="why the store cannot write (disk full, I/O error), null when it can")
    unsynced_ends: int = Field(ge=0, description="reservations ended in memory whose rows are not yet deleted")


class LoopStatusOut(BaseModel):
    """The event loop's health over the last minute (the controller's own probe; null while not measured)."""

    model_config = ConfigDict(extra="allow")

    lag_max_ms: float | None = Field(description="the longest a 100 ms probe timer fired late in the last minute")
    lag_p99_ms: float | None = Field(description="the 99th percentile of the probe's lateness in the last minute")
    samples: int = Field(ge=0, description="probe samples in the last minute")
    slow_callbacks: int = Field(ge=0, description="callbacks that held the loop over 20 ms since start (logged)")


class StatusOut(BaseModel):
    """``GET /status``: every EVSE, then the live reservations, then the store's and the loop's health."""

    model_config = ConfigDict(extra="allow")

    evses: list[EvseStatusOut]
    reservations: list[ReservationBody]
    store: StoreStatusOut
    loop: LoopStatusOut | None = None


class LimitIn(BaseModel):
    """An EVSE's local current limit (A per phase): 0 pauses charging, 6 to 80 A caps it, null removes it."""

    model_config = ConfigDict(extra="forbid")

    amps: Annotated[float, Field(ge=MIN_CURRENT_LIMIT_A, le=MAX_CURRENT_LIMIT_A)] | Literal[0] | None = Field(
        description="amperes per phase: 0 = pause, 6 to 80 = the most the car is offered, null = no local limit")


class LimitOut(BaseModel):
    """Answer to ``POST /evses/{id}/limit``: the local limit now, and the EVSE's status entry after the change."""

    evse_id: int
    current_limit_a: float | None
    evse: EvseStatusOut


def request_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` that documents a JSON request body without FastAPI validating it."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}},
        }
    }


def request_schemas(models: list[type[BaseModel]]) -> dict[str, Any]:
    """Component schemas for request models (and the enums they use), keyed as ``request_body`` refers to them."""
    out: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        out.update(schema.pop("$defs", {}))
        out[model.__name__] = schema
    return out
