"""An escalation as a thing with rules of its own: who may resolve it and when, and how an
overdue one walks the runbook's escalation path. No I/O here; each change it makes is kept
with the event it causes, and the repository stores both in the caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from rules_service.domain import lifecycle
from rules_service.domain import notifications as rules
from rules_service.domain.errors import Conflict
from rules_service.domain.lifecycle import Actor
from rules_service.domain.ruleset import Ruleset

RESOLUTIONS: tuple[str, ...] = ("approve", "reject")
"""How an escalation is resolved."""


@dataclass(frozen=True)
class DecisionFacts:
    """What a person resolving an escalation is shown of the decision that raised it."""

    input: dict[str, Any]
    outcome: str
    fired_rules: list[dict[str, Any]]
    deciding_rules: list[str]
    fallback: bool
    fallback_reason: str | None
    evaluated_at: datetime
    paused_outcome: str | None = None
    """Taken while the ruleset was paused: what its rules decided."""
    paused_reason: str | None = None


@dataclass(frozen=True)
class StepTaken:
    """One step of an overdue escalation's walk, as it is recorded."""

    step: int
    principal: str | None
    at: datetime
    skipped: bool = False
    """Passed over without paging anyone: the walk was late (the worker was down) and had
    already reached a later step."""


@dataclass(frozen=True)
class PendingEvent:
    """An event an escalation caused, to be added to the outbox with the change."""

    type: str
    occurred_at: datetime
    data: dict[str, Any]


@dataclass
class Escalation:
    """A decision that needs a person: addressed to a role, due by a time, open until a
    holder of that role (or the deciding version's approver, an admin, or a person on the
    runbook's escalation path its overdue walk has reached) resolves it."""

    id: str
    decision_id: str
    decision_evaluated_at: datetime
    ruleset_id: int
    ruleset: str
    version: int
    to_role: str
    status: str
    due_at: datetime | None
    created_at: datetime
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    resolution: str | None = None
    comment: str = ""
    breached_at: datetime | None = None
    steps_taken: int = 0
    next_step_at: datetime | None = None
    decision: DecisionFacts | None = None
    new_steps: list[StepTaken] = field(default_factory=list)
    events: list[PendingEvent] = field(default_factory=list)

    def is_overdue(self, now: datetime) -> bool:
        """Open and past its due time."""
        return self.status == "open" and self.due_at is not None and self.due_at < now

    def reached(self, deciding: Ruleset) -> list[str]:
        """The people on the escalation path its overdue walk has reached so far."""
        return rules.path_reached(deciding, self.to_role, self.steps_taken)

    def may_be_resolved_by(self, who: Actor, deciding: Ruleset) -> bool:
        """Whether ``who`` may resolve it (the rule ``resolve`` checks)."""
        return lifecycle.may_resolve_escalation(who, deciding, self.to_role,
                                                self.reached(deciding))

    def resolve(self, who: Actor, deciding: Ruleset, resolution: str, comment: str,
                now: datetime) -> None:
        """Resolves it for ``who`` (checked against ``deciding``, the version that decided):
        403 for anyone without the authority, 409 ``already_resolved`` the second time."""
        lifecycle.check_can_resolve_escalation(
            who, deciding, self.to_role,
            reached=self.reached(deciding))
        if self.status != "open":
            raise Conflict("already_resolved", f"the escalation was already resolved "
                           f"({self.resolution}) by {self.resolved_by}")
        self.status = "resolved"
        self.resolution = resolution
        self.resolved_by = who.name
        self.resolved_at = now
        self.comment = comment or ""
        self.events.append(PendingEvent("escalation.resolved", now, {
            "escalation_id": self.id, "decision_id": self.decision_id,
            "version": self.version, "to_role": self.to_role, "resolution": self.resolution,
            "resolved_by": self.resolved_by, "comment": self.comment}))

    def take_step(self, ruleset: Ruleset, now: datetime) -> StepTaken:
        """Takes the step current at ``now`` along the runbook's path (the first marks the
        breach): who is told, and when the step after is due. Steps a late walk passed over
        are recorded as skipped and told to nobody. Records the steps and one
        ``escalation.overdue`` event."""
        try:
            interval: timedelta | None = lifecycle.parse_duration(
                ruleset.response_time_target or "")
        except ValueError:
            interval = None
        step_at = self.due_at if self.steps_taken == 0 else self.next_step_at
        assert step_at is not None  # only escalations with a step due are walked
        if interval is None or interval <= timedelta(0):
            step = rules.EscalationStep(self.steps_taken + 1, None, None)
        else:
            step = rules.escalation_step(ruleset, self.to_role, self.steps_taken, step_at,
                                         interval, now)
        if self.breached_at is None:
            self.breached_at = now
        self.steps_taken = step.step
        self.next_step_at = step.next_step_at
        self.new_steps.extend(StepTaken(number, person, now, skipped=True)
                              for number, person in step.skipped)
        taken = StepTaken(step.step, step.notify, now)
        self.new_steps.append(taken)
        self.events.append(PendingEvent("escalation.overdue", now, {
            "escalation_id": self.id, "decision_id": self.decision_id,
            "version": self.version, "to_role": self.to_role,
            "due_at": self.due_at.isoformat() if self.due_at else None,
            "step": step.step, "notify": step.notify,
            "skipped": [person for _, person in step.skipped],
            "next_step_at": step.next_step_at.isoformat() if step.next_step_at else None}))
        return taken
