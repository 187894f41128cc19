"""The exact ledger of what the daemon acknowledged, and the workload that feeds it.

The client sends one request at a time, so the daemon's reservation state is a pure function of the
answered requests: ``Ledger.live`` is that state (id -> reservation document, in arrival order).
A request cut off by a kill has an unknown outcome; ``Ledger.outcomes`` lists every state it may
have left, and the first look after the kill (the database, then the API) must be one of them.
Anything else means an acknowledged change was lost, or a refused/cancelled one came back.

The site is the embedded sim charger: two idle EVSEs whose connectors all take our types, so
whether a ReserveNow fits is a matter of counting (``predict_reserve``). The prediction only steers the
workload towards many Accepted answers; the ledger believes the daemon's answers, not the prediction.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

Doc = dict[str, Any]  # a reservation exactly as Reservation.to_dict() writes it (API and store)
State = list[tuple[int, Doc]]  # live reservations in arrival order

EVSES = (1, 2)
ACCEPTED = "Accepted"
# A reservation this close to its expiry may legitimately have ended (reason Expired) by the time we look.
EXPIRY_SLACK = timedelta(minutes=2)


class LedgerError(AssertionError):
    """The daemon's answers or state contradict what it acknowledged earlier."""


def rfc3339(moment: datetime) -> str:
    """Whole-second UTC with Z: the form the daemon writes back, so documents compare exactly."""
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def expiry_of(doc: Doc) -> datetime:
    """The expiry time of a reservation document."""
    return datetime.fromisoformat(str(doc["expiry_time"]).replace("Z", "+00:00"))


@dataclass(frozen=True)
class Op:
    """One request: ReserveNow (``doc`` set) or CancelReservation."""

    kind: Literal["reserve", "cancel"]
    rid: int
    doc: Doc | None = None
    wire: Doc | None = None  # the body as sent (sometimes with explicit nulls)
    why: str = ""
    expect: str = ""  # predicted answer (steering and statistics only)

    def describe(self) -> str:
        """One line for failure messages."""
        if self.kind == "cancel":
            return f"DELETE /reservations/{self.rid} ({self.why}, expect {self.expect})"
        return f"POST /reservations {self.wire} ({self.why}, expect {self.expect})"


def predict_reserve(live: dict[int, Doc], rid: int, evse: int | None) -> str:
    """The answer to a ReserveNow on this 2-EVSE idle site (steering only, never asserted)."""
    others = [d for r, d in live.items() if r != rid]  # a same-id reservation is removed first
    specific = {d["evse_id"] for d in others if "evse_id" in d}
    n_global = sum(1 for d in others if "evse_id" not in d)
    if evse is not None:
        if evse in specific:
            return "Occupied"
        return ACCEPTED if n_global <= len(EVSES) - len(specific) - 1 else "Occupied"
    return ACCEPTED if n_global + 1 <= len(EVSES) - len(specific) else "Occupied"


def _same(a: State, b: State) -> bool:
    return len(a) == len(b) and all(x == y for x, y in zip(a, b, strict=True))


@dataclass
class Ledger:
    """What the daemon acknowledged; ``pending`` is the request a kill cut off (outcome unknown)."""

    live: dict[int, Doc] = field(default_factory=dict)
    pending: Op | None = None
    counts: Counter[str] = field(default_factory=Counter)
    history: list[str] = field(default_factory=list)  # last requests and answers, for failure messages

    def state(self) -> State:
        """Live reservations in arrival order."""
        return list(self.live.items())

    def acknowledge(self, op: Op, answer: Any, now: datetime) -> None:
        """Apply an answered request; a contradiction with earlier acknowledgements is a LedgerError."""
        self._note(f"{op.describe()} -> {answer}")
        if op.kind == "cancel":
            if not isinstance(answer, dict) or not isinstance(answer.get("cancelled"), bool):
                raise LedgerError(f"unexpected cancel answer {answer!r} to {op.describe()}")
            was_live = op.rid in self.live
            if answer["cancelled"]:
                if not was_live:
                    raise LedgerError(f"reservation {op.rid} was cancelled although it was not live: it came back")
                del self.live[op.rid]
                self.counts["acknowledged_cancelled"] += 1
            else:
                if was_live and not self._may_have_expired(self.live[op.rid], now):
                    raise LedgerError(f"acknowledged reservation {op.rid} {self.live[op.rid]} was no longer live")
                self.live.pop(op.rid, None)
                self.counts["cancel_not_found"] += 1
            return
        assert op.doc is not None
        if not isinstance(answer, dict) or not isinstance(answer.get("result"), str):
            raise LedgerError(f"unexpected reserve answer {answer!r} to {op.describe()}")
        # DESIGN.md step 2: an existing reservation with this id is removed even if the new one is refused.
        self.live.pop(op.rid, None)
        if answer["result"] == ACCEPTED:
            self.live[op.rid] = op.doc
            self.counts["acknowledged_accepted"] += 1
        else:
            self.counts["acknowledged_refused"] += 1
        self.counts["answers_as_predicted" if answer["result"] == op.expect else "answers_unpredicted"] += 1

    def cut_off(self, op: Op) -> None:
        """A kill cut this request off: it may or may not have taken effect."""
        self._note(f"{op.describe()} -> (no answer: killed)")
        self.pending = op
        self.counts["in_flight_unknown"] += 1

    def outcomes(self) -> list[tuple[str, State]]:
        """Every state the daemon may be in now, with a name for each (one unless a request is pending)."""
        base = self.state()
        op = self.pending
        if op is None:
            return [("as acknowledged", base)]
        without = [(rid, doc) for rid, doc in base if rid != op.rid]
        options: list[tuple[str, State]] = [("cut-off request had no effect", base)]
        if op.kind == "cancel":
            options.append(("cut-off cancel took effect", without))
        else:
            assert op.doc is not None
            options.append(("cut-off reserve took effect", [*without, (op.rid, op.doc)]))
            # DESIGN.md step 2 removes the old reservation of this id before the new one is decided: a refusal
            # leaves neither. A replacement that is Accepted swaps the two in one transaction, so a cut-off
            # one leaves the old or the new, never neither (test_replacement_is_atomic_across_power_loss).
            if not (op.expect == ACCEPTED and op.rid in self.live):
                options.append(("cut-off reserve removed the old one", without))
        unique: list[tuple[str, State]] = []
        for name, state in options:
            if not any(_same(state, s) for _, s in unique):
                unique.append((name, state))
        return unique

    def resolve(self, observed: State, where: str, now: datetime) -> str:
        """Check ``observed`` against ``outcomes`` and adopt it; returns the outcome's name.

        Reservations within EXPIRY_SLACK of their expiry are left out of the comparison on both sides
        (ending as Expired is a stated reason); with expiries over an hour away that never happens in CI.
        """

        def trim(state: State) -> State:
            return [(rid, doc) for rid, doc in state if not self._may_have_expired(doc, now)]

        options = self.outcomes()
        for name, state in options:
            if _same(trim(state), trim(observed)):
                if self.pending is not None:
                    self.counts[f"unknown_resolved: {name}"] += 1
                self.pending = None
                self.live = dict(observed)
                return name
        raise LedgerError(self._explain(observed, options, where))

    def _explain(self, observed: State, options: list[tuple[str, State]], where: str) -> str:
        lines = [f"{where}: the reservations are not what the daemon acknowledged."]
        base = dict(self.state())
        seen = dict(observed)
        pending = self.pending.rid if self.pending is not None else None
        lost = [rid for rid in base if rid not in seen and rid != pending]
        extra = [rid for rid in seen if rid not in base and rid != pending]
        changed = [rid for rid in base if rid in seen and seen[rid] != base[rid] and rid != pending]
        if lost:
            lines.append(f"  LOST (acknowledged, missing): {[(rid, base[rid]) for rid in lost]}")
        if extra:
            lines.append(f"  PRESENT BUT NOT LIVE (cancelled, refused or replaced): {[(r, seen[r]) for r in extra]}")
        if changed:
            lines.append(f"  CHANGED: {[(rid, base[rid], seen[rid]) for rid in changed]}")
        lines.append(f"  observed: {observed}")
        for name, state in options:
            lines.append(f"  allowed ({name}): {state}")
        lines.append("  last requests:\n    " + "\n    ".join(self.history[-12:]))
        return "\n".join(lines)

    def _note(self, line: str) -> None:
        self.history.append(line)
        del self.history[:-50]

    @staticmethod
    def _may_have_expired(doc: Doc, now: datetime) -> bool:
        return expiry_of(doc) <= now + EXPIRY_SLACK


class Workload:
    """Chooses the next request so that most ReserveNows are Accepted on a 2-EVSE site.

    Mix: new reservations with increasing ids when there is room, replacements (same id, new
    document), cancels, re-use of an ended id, and some requests that must be refused (those must
    never be found stored) or cancel nothing.
    """

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.next_id = 1
        self.generation = 0

    def next_op(self, ledger: Ledger, now: datetime) -> Op:
        """The next request for the current acknowledged state.

        Mostly keeps both EVSEs reserved (so every restart has reservations to lose): below two live
        reservations it mostly adds one, at two it mostly replaces or cancels one.
        """
        rng = self.rng
        live = ledger.live
        ended = [rid for rid in range(max(1, self.next_id - 40), self.next_id) if rid not in live]
        full = len(live) >= len(EVSES)
        weights = {
            "new": 0.5 if full else 5.0,  # at two live reservations a new one is refused (Occupied)
            "re-use ended id": (0.2 if full else 1.0) if ended else 0.0,
            "replace": (3.0 if full else 1.0) if live else 0.0,
            "cancel live": (2.0 if full else 0.7) if live else 0.0,
            "cancel absent": 0.3,
        }
        action = rng.choices(list(weights), list(weights.values()))[0]
        if action == "cancel live":
            return self._cancel(rng.choice(list(live)), live, action)
        if action == "replace":
            return self._reserve(rng.choice(list(live)), live, now, action)
        if action == "cancel absent":
            absent = rng.choice(ended) if ended and rng.random() < 0.5 else self.next_id + 10_000
            return self._cancel(absent, live, action)
        if action == "re-use ended id":
            return self._reserve(rng.choice(ended), live, now, action)
        rid = self.next_id
        self.next_id += 1
        return self._reserve(rid, live, now, action)

    def _cancel(self, rid: int, live: dict[int, Doc], why: str) -> Op:
        return Op("cancel", rid, why=why, expect="cancelled" if rid in live else "not found")

    def _reserve(self, rid: int, live: dict[int, Doc], now: datetime, why: str) -> Op:
        rng = self.rng
        self.generation += 1
        targets: list[int | None] = [*EVSES, None]
        fitting = [t for t in targets if predict_reserve(live, rid, t) == ACCEPTED]
        # about one in ten ReserveNows is meant to be refused when the site allows it
        refusing = [t for t in targets if t not in fitting]
        pool = refusing if refusing and (not fitting or rng.random() < 0.1) else fitting
        evse = rng.choice(pool)
        doc = self._doc(rid, evse, now)
        wire = dict(doc)
        if evse is None and rng.random() < 0.5:
            wire["evse_id"] = None  # a global reservation, said explicitly
        return Op("reserve", rid, doc, wire, why, predict_reserve(live, rid, evse))

    def _doc(self, rid: int, evse: int | None, now: datetime) -> Doc:
        rng = self.rng
        doc: Doc = {
            "reservation_id": rid,
            "id_token": f"TOK-{rid}-{self.generation}",
            # over an hour away: nothing expires during the run (see Ledger.resolve for the slack)
            "expiry_time": rfc3339(now + timedelta(hours=1, seconds=rng.randrange(0, 3600))),
        }
        if rng.random() < 0.2:
            doc["parent_id_token"] = f"GROUP-{rng.randrange(5)}"
        if evse is not None:
            doc["evse_id"] = evse
        kind = rng.random()
        if kind < 0.6:
            doc["connector_type"] = "sType2"
        elif kind < 0.75:
            doc["connector_type"] = "Unknown"
        return doc
