"""Decision semantics: from the set of fired rules to an outcome."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from rules_service.domain.ruleset import Outcome, Ruleset


@dataclass(frozen=True)
class FiredRule:
    """A rule whose condition held."""

    id: str
    outcome: Outcome
    reason: str

    def to_dict(self) -> dict[str, str]:
        """JSON form, as in a decision's ``fired_rules``."""
        return {"id": self.id, "outcome": self.outcome.value, "reason": self.reason}


@dataclass(frozen=True)
class Evaluation:
    """What a ruleset decided for one input, before it is recorded."""

    outcome: Outcome
    fired_rules: tuple[FiredRule, ...]
    deciding_rules: tuple[str, ...]
    fallback: bool = False
    fallback_reason: str | None = None
    escalate_to: str | None = None
    duration_ms: float = 0.0
    input: dict[str, object] = field(default_factory=dict, compare=False)
    paused_outcome: Outcome | None = None
    """While the ruleset is paused: what its rules decided (the recorded outcome is then
    an escalation); None otherwise."""
    paused_reason: str | None = None

    @property
    def paused(self) -> bool:
        """True when the ruleset was paused: people decide, not the rules."""
        return self.paused_outcome is not None

    @property
    def fired_ids(self) -> tuple[str, ...]:
        """Ids of every fired rule, in ruleset order."""
        return tuple(r.id for r in self.fired_rules)

    def to_dict(self) -> dict[str, object]:
        """JSON form of the evaluation (the decision fields that do not need a record)."""
        return {
            "outcome": self.outcome.value,
            "fired_rules": [r.to_dict() for r in self.fired_rules],
            "deciding_rules": list(self.deciding_rules),
            "fallback": self.fallback,
            "fallback_reason": self.fallback_reason,
            "escalate_to": self.escalate_to,
            "duration_ms": round(self.duration_ms, 3),
        }


def decide(ruleset: Ruleset, fired_ids: Iterable[str], data: dict[str, object] | None = None,
           duration_ms: float = 0.0) -> Evaluation:
    """The outcome for a set of fired rule ids: the most severe wins; none fired: ``default``.

    Fired ids are reported once each, in the ruleset's rule order, whatever order or
    multiplicity the evaluator produced them in.
    """
    fired_set = set(fired_ids)
    positions = ruleset.rule_positions
    unknown = {rule_id for rule_id in fired_set if rule_id not in positions}
    if unknown:
        raise ValueError(f"fired rules not in ruleset {ruleset.name}: {sorted(unknown)}")
    in_order = (ruleset.rules[i] for i in sorted(positions[rule_id] for rule_id in fired_set))
    fired = tuple(FiredRule(r.id, r.then, r.reason_text()) for r in in_order)
    if not fired:
        outcome = ruleset.default
        deciding: tuple[str, ...] = ()
    else:
        outcome = max((f.outcome for f in fired), key=lambda o: o.severity)
        deciding = tuple(f.id for f in fired if f.outcome is outcome)
    escalate_to = None
    if outcome is Outcome.ESCALATE:
        escalate_to = ruleset.rule(deciding[0]).escalate_to if deciding else "approver"
    return Evaluation(outcome, fired, deciding, False, None, escalate_to, duration_ms,
                      dict(data or {}))


def fallback(ruleset: Ruleset, reason: str, data: dict[str, object] | None = None,
             duration_ms: float = 0.0) -> Evaluation:
    """The ruleset's ``fallback`` outcome, when the engine could not decide."""
    escalate_to = "approver" if ruleset.fallback is Outcome.ESCALATE else None
    return Evaluation(ruleset.fallback, (), (), True, reason, escalate_to, duration_ms,
                      dict(data or {}))
