"""Answering a token presented at an EVSE (RFID reader or API), with the semantics of DESIGN.md.

Reserved for this token (or its parent): the reservation is used and the session authorized; reserved for
another: refused, the reservation kept; not reserved: allowed only if ``is_charging_possible``; the token
of the running session stops it. The EVSE is evaluated right after, so the outputs follow at once.

With a token authority (the OCPP front's CSMS), every other token is first authorized there; the verdict is
then decided again after the answer (the EVSE may have changed meanwhile), with the token's group token as a
parent that may use a reservation made for the group.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from controller.charging.session import Phase
from controller.core.tokens import same_token
from controller.port.charger import Authorization, ReservationUse, TokenAuthority, TokenOutcome, TokenVerdict
from controller.runtime.evse import EvseRecord, RuntimeContext
from drivers.redact import redact_token

log = logging.getLogger("controller.runtime")  # one name for the whole runtime, as before the split


_NO_AUTHORIZATION_NEEDED = frozenset({TokenVerdict.STOPPED, TokenVerdict.REFUSED_EVSE_NOT_READY})
"""Verdicts decided without the authority: the running session's own token, an EVSE that cannot charge."""


class TokenAuthorizer:
    """Decides what a token at an EVSE means and starts, authorizes or stops its charging session."""

    def __init__(self, ctx: RuntimeContext, evaluate: Callable[[EvseRecord], None]) -> None:
        """``evaluate`` reads, decides and acts for an EVSE now (after each token)."""
        self._ctx = ctx
        self._evaluate = evaluate
        self.authority: TokenAuthority | None = None
        self.reservation_use = ReservationUse.AT_AUTHORIZATION

    async def present(self, evse_id: int, id_token: str) -> TokenOutcome:
        """A token at an EVSE: use its reservation, refuse, allow, or stop the running session."""
        e = self._ctx.evse(evse_id)
        outcome = self.decide(e, id_token)
        authority = self.authority
        group: str | None = None
        if authority is not None and (outcome.verdict not in _NO_AUTHORIZATION_NEEDED or self._group_may_stop(e)):
            answer = await self._authorize(authority, evse_id, id_token)
            group = answer.group_id_token
            if answer.accepted:
                outcome = self.decide(e, id_token, group)
            elif outcome.verdict is not TokenVerdict.REFUSED_EVSE_NOT_READY:
                outcome = TokenOutcome(evse_id, TokenVerdict.REFUSED_NOT_AUTHORIZED,
                                       answer.reason or "not authorized")
        now = self._ctx.mono()
        if outcome.verdict is TokenVerdict.STOPPED:
            e.session.request_stop(now)
            if authority is not None:
                self._stopped(authority, evse_id, id_token)
        elif outcome.may_charge:
            e.session.authorize(id_token, now, reservation_used=outcome.verdict is TokenVerdict.RESERVATION_USED,
                                group_token=group)
            if outcome.reservation_id is not None:
                if self.reservation_use is ReservationUse.AT_TRANSACTION_START:
                    e.reservation_pending = outcome.reservation_id  # used at the plug (Evaluator)
                else:
                    self._ctx.core.use_reservation(outcome.reservation_id)
        log.info("EVSE %d: token %s -> %s (%s)", evse_id, redact_token(id_token), outcome.verdict, outcome.reason)
        self._ctx.events.publish({"type": "token", **outcome.to_dict()})
        self._evaluate(e)
        return outcome

    def stop(self, evse_id: int) -> bool:
        """A remote stop: the session stops as if its token was presented again; False when none runs."""
        e = self._ctx.evse(evse_id)
        if e.session.view.phase not in (Phase.AUTHORIZED, Phase.LOCKING, Phase.CHARGING):
            return False
        e.session.request_stop(self._ctx.mono())
        log.info("EVSE %d: session stopped remotely", evse_id)
        self._evaluate(e)
        return True

    @staticmethod
    def _group_may_stop(e: EvseRecord) -> bool:
        """A running session of a known group: another token of that group may stop it (1.6 parentIdTag, 2.0.1
        groupIdToken), so that token is worth asking the authority about."""
        view = e.session.view
        return view.phase in (Phase.LOCKING, Phase.CHARGING) and view.group_token is not None

    @staticmethod
    def _stopped(authority: TokenAuthority, evse_id: int, id_token: str) -> None:
        """Tell the authority which token stopped the session; its failure is logged, the stop goes on."""
        try:
            authority.session_stopped(evse_id, id_token)
        except Exception:
            log.exception("EVSE %d: token authority failed to note the stop by %s", evse_id, redact_token(id_token))

    @staticmethod
    async def _authorize(authority: TokenAuthority, evse_id: int, id_token: str) -> Authorization:
        """The authority's answer; a failing authority refuses (logged), it never lets a token through."""
        try:
            return await authority.authorize(evse_id, id_token)
        except Exception as exc:
            log.exception("EVSE %d: token authority failed for %s", evse_id, redact_token(id_token))
            return Authorization(False, reason=f"authorization failed: {type(exc).__name__}")

    def decide(self, e: EvseRecord, token: str, group_id_token: str | None = None) -> TokenOutcome:
        """The verdict for ``token`` (of group ``group_id_token``) at ``e``, from its session, its state and the
        reservation core; no change."""
        core = self._ctx.core
        view = e.session.view
        evse_id = e.evse_id
        same = same_token(view.token, token)
        if view.phase in (Phase.LOCKING, Phase.CHARGING) and same:
            return TokenOutcome(evse_id, TokenVerdict.STOPPED, "the same token stops the running session")
        if view.phase in (Phase.LOCKING, Phase.CHARGING) and same_token(view.group_token, group_id_token):
            return TokenOutcome(evse_id, TokenVerdict.STOPPED, "a token of the session's group stops it")
        if view.phase is not Phase.IDLE:
            return TokenOutcome(evse_id, TokenVerdict.REFUSED_EVSE_NOT_READY, f"a session is {view.phase.value}")
        state = e.state
        if state is not None and (state.faulted or state.unavailable):
            why = "faulted: " + ", ".join(state.faults) if state.faulted else "unavailable"
            return TokenOutcome(evse_id, TokenVerdict.REFUSED_EVSE_NOT_READY, f"EVSE is {why}")
        rid = core.matches_reserved_identifier(token, evse_id, group_id_token)
        if core.is_evse_reserved(evse_id):
            if rid is None:
                return TokenOutcome(
                    evse_id, TokenVerdict.REFUSED_RESERVED_FOR_OTHER, "reserved for another token; reservation kept"
                )
            return TokenOutcome(evse_id, TokenVerdict.RESERVATION_USED, "reserved for this token", rid)
        if rid is not None:
            return TokenOutcome(evse_id, TokenVerdict.RESERVATION_USED, "the token's reservation is used here", rid)
        if not core.is_charging_possible(evse_id):
            return TokenOutcome(
                evse_id,
                TokenVerdict.REFUSED_GLOBAL_RESERVATIONS,
                "charging here would leave a reserved car without an EVSE",
            )
        return TokenOutcome(evse_id, TokenVerdict.ALLOWED, "not reserved; charging possible")
