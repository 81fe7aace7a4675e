"""A paused ruleset: automatic decisions stop while people look.

While a ruleset is paused, every decision is still validated and recorded, but nobody's
rules decide it: it escalates to the approver with the pause's reason, and what the rules
would have decided is kept beside it for comparison. Who may pause and resume (the
operations or business owner of the active version, primary or backup, or an admin) and
the conflicts (already paused, not paused) are here; ``RulesetRecord`` applies them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from rules_service.domain.decision import Evaluation
from rules_service.domain.errors import Conflict, Forbidden, RequestInvalid
from rules_service.domain.lifecycle import ROLLBACK_ROLES, Actor
from rules_service.domain.problems import Problem
from rules_service.domain.ruleset import Outcome, Ruleset

PAUSE_ROLES: tuple[str, ...] = ROLLBACK_ROLES
"""Who may stop and restart automatic decisions: the people who may roll back."""

PAUSED_ESCALATE_TO = "approver"
"""Where every decision taken while paused goes."""

MAX_REASON_LENGTH = 2000


@dataclass(frozen=True)
class Pause:
    """Who paused a ruleset, when, and why."""

    by: str
    at: datetime
    reason: str

    def sentence(self) -> str:
        """``paused by ops-oncall since 2026-01-05 09:00 UTC: exception rate doubled``."""
        return f"paused by {self.by} since {self.at:%Y-%m-%d %H:%M} UTC: {self.reason}"


def pause_reason(reason: object) -> str:
    """The reason as given, trimmed; 422 naming ``reason`` when it is missing, blank or
    too long."""
    if not isinstance(reason, str) or not reason.strip():
        raise RequestInvalid([Problem("reason", "a pause needs a reason: say what people "
                                                "are looking at")])
    text = reason.strip()
    if len(text) > MAX_REASON_LENGTH:
        raise RequestInvalid([Problem("reason", f"at most {MAX_REASON_LENGTH} characters, "
                                                f"not {len(text)}")])
    return text


def may_pause(actor: Actor, active: Ruleset | None) -> bool:
    """Whether ``actor`` may pause or resume a ruleset whose active version is ``active``."""
    if actor.is_automation:
        return False
    if actor.is_admin:
        return True
    return active is not None and any(actor.name in active.holders_of(role)
                                      for role in PAUSE_ROLES)


def check_can_pause(actor: Actor, active: Ruleset | None, name: str) -> None:
    """403 with the reason unless ``actor`` may pause or resume ruleset ``name``."""
    if may_pause(actor, active):
        return
    if actor.is_automation:
        raise Forbidden(f"{actor.name} is an automation principal: it may evaluate and "
                        f"read, not pause or resume")
    raise Forbidden(f"{actor.name} is neither operations_owner nor business_owner (primary "
                    f"or backup) of {name}")


def start(current: Pause | None, actor: str, reason: str, now: datetime,
          name: str) -> Pause:
    """The pause that begins now; 409 ``already_paused`` when one is on."""
    if current is not None:
        raise Conflict("already_paused", f"ruleset {name} is already {current.sentence()}",
                       [{"place": "paused",
                         "message": f"paused by {current.by} since "
                                    f"{current.at.isoformat()}: {current.reason}"}])
    return Pause(actor, now, reason)


def check_paused(current: Pause | None, name: str) -> Pause:
    """The pause a resume ends; 409 ``not_paused`` when there is none."""
    if current is None:
        raise Conflict("not_paused", f"ruleset {name} is not paused")
    return current


def while_paused(evaluation: Evaluation, pause: Pause) -> Evaluation:
    """What is recorded for a decision taken while paused: an escalation to the approver
    with the pause's reason, no deciding rules, and the rules' own answer kept aside."""
    return replace(evaluation, outcome=Outcome.ESCALATE, deciding_rules=(),
                   escalate_to=PAUSED_ESCALATE_TO, paused_outcome=evaluation.outcome,
                   paused_reason=pause.reason)


__all__ = ["MAX_REASON_LENGTH", "PAUSED_ESCALATE_TO", "PAUSE_ROLES", "Pause",
           "check_can_pause", "check_paused", "may_pause", "pause_reason", "start",
           "while_paused"]
