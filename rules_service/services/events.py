"""Events into the outbox, in the transaction of the change that caused them.

``governance._audit`` calls ``version_event`` for every lifecycle transition; an
escalation records its own ``escalation.resolved`` and ``escalation.overdue`` events
(``domain.escalations``), which its repository adds when it is saved; the decision writer
adds ``escalation.opened`` itself (``adapters.decision_log``). The row commits or rolls back
with the change, so no event is lost and none is told for a change that did not happen.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

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
    uow.outbox.add(event_type, ruleset_id, now,
                   {"version": version, "actor": actor, "comment": comment or "",
                    "details": dict(details or {})})
