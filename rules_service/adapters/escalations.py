"""Escalations in the database: loaded as ``domain.escalations.Escalation`` and saved back
with the steps and events they recorded; the worker's claim of the ones with a step due;
and the breach counts the dashboard reads from the partial index."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, lazyload, selectinload

from rules_service.adapters import outbox, rollups
from rules_service.adapters.orm import DecisionRow, EscalationRow, EscalationStepRow
from rules_service.domain.escalations import DecisionFacts, Escalation, StepTaken


def _facts(row: DecisionRow) -> DecisionFacts:
    return DecisionFacts(dict(row.input), row.outcome, list(row.fired_rules),
                         list(row.deciding_rules), row.fallback, row.fallback_reason,
                         row.evaluated_at, row.paused_outcome, row.paused_reason)


def escalation_of(row: EscalationRow, ruleset: str | None = None, *,
                  with_decision: bool = False) -> Escalation:
    """The domain escalation of a row (its decision's facts only when asked for)."""
    return Escalation(
        row.id, row.decision_id, row.decision_evaluated_at, row.ruleset_id,
        ruleset if ruleset is not None else row.ruleset.name, row.version, row.to_role,
        row.status, row.due_at, row.created_at, row.resolved_at, row.resolved_by,
        row.resolution, row.comment, row.breached_at, row.steps_taken, row.next_step_at,
        _facts(row.decision) if with_decision else None)


class EscalationRepository:
    """Escalations, their steps along the runbook's path, and the events they cause."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._rows: dict[str, EscalationRow] = {}

    def _track(self, row: EscalationRow, escalation: Escalation) -> Escalation:
        self._rows[escalation.id] = row
        return escalation

    def get(self, escalation_id: str, *, for_update: bool = False,
            with_decision: bool = False) -> Escalation | None:
        """One escalation by id, optionally locked until the transaction ends."""
        stmt = select(EscalationRow).where(EscalationRow.id == escalation_id)
        if for_update:
            stmt = stmt.with_for_update(of=EscalationRow)
        row = self.session.scalars(stmt).unique().first()
        if row is None:
            return None
        if for_update:
            self.session.expire_all()
        return self._track(row, escalation_of(row, with_decision=with_decision))

    def exists(self, escalation_id: str) -> bool:
        """Whether an escalation with that id exists."""
        return self.session.scalars(select(EscalationRow.id)
                                    .where(EscalationRow.id == escalation_id)).first() is not None

    def find(self, *, status: str | None = None, ruleset_id: int | None = None,
             overdue_at: datetime | None = None, limit: int = 1000) -> list[Escalation]:
        """Escalations oldest first, each with its decision's facts; ``overdue_at`` keeps
        the open ones past due at that time."""
        # Each escalation is shown with its decision: load them in one more query, not one each.
        stmt = select(EscalationRow).options(selectinload(EscalationRow.decision))
        if status is not None:
            stmt = stmt.where(EscalationRow.status == status)
        if ruleset_id is not None:
            stmt = stmt.where(EscalationRow.ruleset_id == ruleset_id)
        if overdue_at is not None:
            stmt = stmt.where(EscalationRow.status == "open",
                              EscalationRow.due_at.is_not(None),
                              EscalationRow.due_at < overdue_at)
        stmt = stmt.order_by(EscalationRow.created_at, EscalationRow.id).limit(limit)
        return [escalation_of(row, with_decision=True)
                for row in self.session.scalars(stmt).unique()]

    def claim_due(self, now: datetime, limit: int) -> list[Escalation]:
        """Open escalations whose next step along the runbook's path is due, locked."""
        e = EscalationRow
        # Past the target, as GET /v1/escalations?overdue=true counts it: strictly after.
        stmt = (select(e).where(e.status == "open", e.due_at.is_not(None), e.due_at < now,
                                or_(e.breached_at.is_(None), e.next_step_at < now))
                .order_by(e.due_at, e.id).limit(limit))
        # No eager joins: FOR UPDATE cannot lock the nullable side of an outer join.
        stmt = stmt.options(lazyload("*"))
        rows = list(self.session.scalars(outbox.skip_locked(stmt, self.session)))
        names = outbox.ruleset_names(self.session, (r.ruleset_id for r in rows))
        return [self._track(row, escalation_of(row, names.get(row.ruleset_id, "")))
                for row in rows]

    def save(self, escalation: Escalation) -> None:
        """Writes back what changed on an escalation loaded here, its new steps and the
        events it caused, in the current transaction."""
        row = self._rows[escalation.id]
        just_resolved = row.status == "open" and escalation.status == "resolved"
        row.status = escalation.status
        row.resolution = escalation.resolution
        row.resolved_by = escalation.resolved_by
        row.resolved_at = escalation.resolved_at
        row.comment = escalation.comment
        row.breached_at = escalation.breached_at
        row.steps_taken = escalation.steps_taken
        row.next_step_at = escalation.next_step_at
        for step in escalation.new_steps:
            self.session.add(EscalationStepRow(
                escalation_id=escalation.id,
                decision_evaluated_at=escalation.decision_evaluated_at,
                step=step.step, principal=step.principal, at=step.at,
                skipped=step.skipped))
        escalation.new_steps.clear()
        self.session.flush()
        if just_resolved:
            assert escalation.resolved_at is not None
            rollups.add_resolutions(self.session.connection(), [rollups.RolledResolution(
                escalation.ruleset_id, escalation.created_at, escalation.resolved_at,
                escalation.due_at)])
        for event in escalation.events:
            outbox.add_event(self.session, outbox.event_row(
                event.type, escalation.ruleset_id, event.occurred_at, event.data))
        escalation.events.clear()

    def steps(self, escalation_id: str) -> list[StepTaken]:
        """The steps an escalation took along its path, in order."""
        rows = self.session.scalars(select(EscalationStepRow)
                                    .where(EscalationStepRow.escalation_id == escalation_id)
                                    .order_by(EscalationStepRow.step))
        return [StepTaken(r.step, r.principal, r.at, r.skipped) for r in rows]

    def breaches(self, *, since: datetime | None = None, until: datetime | None = None,
                 ruleset_ids: Sequence[int] | None = None) -> dict[int, int]:
        """Per ruleset, the escalations that breached their target (see
        ``breaches_by_ruleset``)."""
        return breaches_by_ruleset(self.session, since=since, until=until,
                                   ruleset_ids=None if ruleset_ids is None
                                   else list(ruleset_ids))


def breaches_by_ruleset(session: Session, *, since: datetime | None = None,
                        until: datetime | None = None,
                        ruleset_ids: list[int] | None = None) -> dict[int, int]:
    """Per ruleset, how many escalations passed their response-time target (the worker
    marked them overdue) with their due time in [since, until): the dashboard's breaches.
    Read from the partial index on breached escalations, never the whole table."""
    e = EscalationRow
    stmt = (select(e.ruleset_id, func.count()).where(e.breached_at.is_not(None))
            .group_by(e.ruleset_id))
    if since is not None:
        stmt = stmt.where(e.due_at >= since)
    if until is not None:
        stmt = stmt.where(e.due_at < until)
    if ruleset_ids is not None:
        stmt = stmt.where(e.ruleset_id.in_(ruleset_ids))
    return {int(rid): int(count) for rid, count in session.execute(stmt)}
