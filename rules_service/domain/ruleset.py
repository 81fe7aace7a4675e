"""A validated ruleset: the immutable, typed form of one policy file."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Any

from rules_service.language.ast import Expr
from rules_service.language.types import FieldType, InputField

MAX_RULES = 10_000
"""Rules (and table rows) a ruleset may hold; the loader refuses more."""


class Outcome(StrEnum):
    """What a rule (or the ruleset's default/fallback) decides."""

    APPROVE = "approve"
    ESCALATE = "escalate"
    REJECT = "reject"

    @property
    def severity(self) -> int:
        """Higher is more severe: reject > escalate > approve."""
        return _SEVERITY[self]


_SEVERITY = {Outcome.APPROVE: 0, Outcome.ESCALATE: 1, Outcome.REJECT: 2}

RUNBOOK_PARTS: tuple[str, ...] = ("purpose", "boundaries", "normal_steps", "exceptions",
                                  "escalation", "rollback", "restart")
"""What a complete runbook holds: what the policy is for and where it stops, the day's
steps, the known exceptions, who is escalated to and how fast, how to roll back, and the
checklist for restarting after a pause or a rollback."""

ROLES: tuple[str, ...] = ("business_owner", "operations_owner", "approver", "maintainer")

__all__ = ["MAX_RULES", "ROLES", "FieldType", "InputField", "Outcome", "RoleHolders", "Rule",
           "RuleTest", "Ruleset", "definition_hash"]


@dataclass(frozen=True)
class RoleHolders:
    """A role's named primary and backup."""

    primary: str
    backup: str | None = None

    def holders(self) -> tuple[str, ...]:
        """Everyone who holds the role."""
        return (self.primary,) if not self.backup else (self.primary, self.backup)


@dataclass(frozen=True)
class Rule:
    """One rule: when its condition holds it fires with its outcome."""

    id: str
    when: str
    condition: Expr
    then: Outcome
    description: str | None = None
    reason: str | None = None
    escalate_to: str = "approver"

    def reason_text(self) -> str:
        """The reason reported when the rule fires."""
        return self.reason or self.description or f"Rule {self.id} matched: {self.when}"


@dataclass(frozen=True)
class RuleTest:
    """An embedded test: an input and what the ruleset must decide for it."""

    name: str
    input: dict[str, Any]
    expect_outcome: Outcome | None = None
    expect_fired: tuple[str, ...] | None = None
    expect_deciding: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Ruleset:
    """A validated ruleset. ``definition`` is its canonical JSON-able form."""

    name: str
    title: str
    description: str
    owners: dict[str, RoleHolders]
    signoff: tuple[str, ...]
    thresholds: dict[str, Any]
    inputs: tuple[InputField, ...]
    rules: tuple[Rule, ...]
    default: Outcome
    fallback: Outcome
    tests: tuple[RuleTest, ...] = ()
    runbook: dict[str, Any] = field(default_factory=dict)
    impact: dict[str, Any] = field(default_factory=dict)
    definition: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    review_every: str | None = None
    """How long an active version runs before its business owner reviews it (``90d``)."""

    @property
    def content_hash(self) -> str:
        """SHA-256 of the canonical definition: equal policies hash equal."""
        return definition_hash(self.definition)

    @cached_property
    def rule_positions(self) -> dict[str, int]:
        """Each rule id's place in ``rules`` (worked out once per ruleset)."""
        return {r.id: i for i, r in enumerate(self.rules)}

    def rule(self, rule_id: str) -> Rule:
        """The rule with that id (KeyError when there is none)."""
        return self.rules[self.rule_positions[rule_id]]

    def holders_of(self, role: str) -> tuple[str, ...]:
        """Principals named (primary or backup) for a role."""
        h = self.owners.get(role)
        return h.holders() if h else ()

    def roles_of(self, principal: str) -> tuple[str, ...]:
        """The roles a principal holds in this ruleset."""
        return tuple(role for role, h in self.owners.items() if principal in h.holders())

    @property
    def response_time_target(self) -> str | None:
        """The runbook's escalation response-time target (e.g. ``4h``), if any."""
        esc = self.runbook.get("escalation") or {}
        target = esc.get("response_time_target") if isinstance(esc, dict) else None
        return str(target) if target is not None else None

    @property
    def runbook_gaps(self) -> tuple[str, ...]:
        """The parts of a complete runbook this one lacks, in ``RUNBOOK_PARTS`` order."""
        return tuple(part for part in RUNBOOK_PARTS if not self.runbook.get(part))

    @property
    def minutes_saved_per_auto_decision(self) -> float:
        """Business impact figure from ``impact``; 0 when not given."""
        value = self.impact.get("minutes_saved_per_auto_decision", 0)
        return float(value) if isinstance(value, int | float) else 0.0


def definition_hash(definition: dict[str, Any]) -> str:
    """Stable hash of a canonical definition."""
    text = json.dumps(definition, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
