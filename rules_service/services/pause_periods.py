"""When rulesets were paused, from the audit trail, and how many decisions were taken
while paused: the dashboard's shaded periods and its count.

A period runs from a ``paused`` audit event to the ``resumed`` one after it (or to now,
while the pause is in force). Counting reads only the decisions inside those periods, so
a dashboard of a ruleset never paused asks nothing more of the decision log.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rules_service.adapters.unit_of_work import UnitOfWork
from rules_service.domain.lifecycle import AuditAction
from rules_service.domain.versions import AuditEvent
from rules_service.services.views import iso

_PAUSE_ACTIONS = (AuditAction.PAUSED, AuditAction.RESUMED)


@dataclass(frozen=True)
class PausedPeriod:
    """One stretch of time a ruleset was paused; ``until`` None while it still is."""

    ruleset: str
    since: datetime
    until: datetime | None
    by: str
    reason: str
    resumed_by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"since": iso(self.since), "until": iso(self.until), "by": self.by,
                "reason": self.reason, "resumed_by": self.resumed_by}

    def overlaps(self, since: datetime, until: datetime) -> bool:
        """True when some of the period lies in [since, until]."""
        return self.since <= until and (self.until is None or self.until >= since)


def periods_of(ruleset: str, events: Iterable[AuditEvent]) -> list[PausedPeriod]:
    """The paused periods an ordered audit trail records."""
    out: list[PausedPeriod] = []
    open_one: AuditEvent | None = None
    for event in events:
        if event.action is AuditAction.PAUSED and open_one is None:
            open_one = event
        elif event.action is AuditAction.RESUMED and open_one is not None:
            out.append(PausedPeriod(ruleset, open_one.at, event.at, open_one.actor,
                                    open_one.comment, event.actor))
            open_one = None
    if open_one is not None:
        out.append(PausedPeriod(ruleset, open_one.at, None, open_one.actor, open_one.comment))
    return out


def _paused(uow: UnitOfWork, ruleset_id: int, name: str, since: datetime,
            until: datetime) -> list[PausedPeriod]:
    events = [e for e in uow.audit.for_ruleset(ruleset_id) if e.action in _PAUSE_ACTIONS]
    return [p for p in periods_of(name, events) if p.overlaps(since, until)]


def figures(uow: UnitOfWork, ruleset_id: int, name: str, since: datetime,
            until: datetime) -> dict[str, Any]:
    """In the caller's transaction: the paused periods of a ruleset overlapping [since,
    until] and the decisions taken while paused inside the window."""
    periods = _paused(uow, ruleset_id, name, since, until)
    decisions = sum(uow.decisions.count_paused(ruleset_id, max(p.since, since),
                                               min(p.until or until, until))
                    for p in periods)
    return {"decisions": decisions, "periods": [p.to_dict() for p in periods]}


def paused_between(uow: UnitOfWork, ruleset: str | None, since: datetime,
                   until: datetime) -> list[PausedPeriod]:
    """The paused periods overlapping [since, until], of ``ruleset`` or of every ruleset."""
    with uow.readonly():
        entries = [(e.id, e.name) for e in uow.rulesets.list_all()
                   if ruleset is None or e.name == ruleset]
        return [p for rid, name in entries for p in _paused(uow, rid, name, since, until)]
