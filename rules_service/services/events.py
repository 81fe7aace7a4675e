"""Events into the outbox, in the transaction of the change that caused them.

``governance._audit`` calls ``version_event`` for every lifecycle transition, and
``decisions.resolve_escalation`` calls ``escalation_resolved``; the decision writer adds
``escalation.opened`` itself (``adapters.decision_log``). The row commits or rolls back with
the change, so no event is lost and none is told for a change that did not happen.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rules_service.adapters import outbox
from rules_service.adapters.orm import EscalationRow
from rules_service.adapters.unit_of_work import UnitOfWork
from rules_service.domain.lifecycle import AuditAction
from rules_service.domain.notifications import VERSION_EVENTS


def version_event(uow: UnitOfWork, ruleset_id: int, version: int | None, action: AuditAction,
                  actor: str, now: datetime, comment: str = "",
                  details: dict[str, Any] | None = None) -> None:
    """Adds the ``version.*`` event of an audited transition (none for ``superseded``)."""
    event_type = VERSION_EVENTS.get(action)
    if event_type is None:
        return
    outbox.add_event(uow.session, outbox.event_row(
        event_type, ruleset_id, now,
        {"version": version, "actor": actor, "comment": comment or "",
         "details": dict(details or {})}))


def escalation_resolved(uow: UnitOfWork, row: EscalationRow) -> None:
    """Adds the ``escalation.resolved`` event of an escalation just resolved."""
    outbox.add_event(uow.session, outbox.event_row(
        "escalation.resolved", row.ruleset_id, row.resolved_at or uow.now(),
        {"escalation_id": row.id, "decision_id": row.decision_id, "version": row.version,
         "to_role": row.to_role, "resolution": row.resolution,
         "resolved_by": row.resolved_by, "comment": row.comment or ""}))
