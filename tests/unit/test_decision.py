"""Decision semantics: the most severe fired outcome wins; nothing fired gives the default."""

from __future__ import annotations

import pytest

from rules_service.domain.decision import decide, fallback
from rules_service.domain.ruleset import Outcome, RoleHolders, Rule, Ruleset
from rules_service.language.parser import parse_condition


def _rule(rule_id: str, then: Outcome, escalate_to: str = "approver") -> Rule:
    return Rule(rule_id, "true", parse_condition("true"), then, reason=f"because {rule_id}",
                escalate_to=escalate_to)


def _ruleset(*rules: Rule, default: Outcome = Outcome.ESCALATE) -> Ruleset:
    holders = RoleHolders("a", "b")
    return Ruleset(
        name="r", title="R", description="", signoff=("approver",), thresholds={}, inputs=(),
        owners={"business_owner": holders, "operations_owner": holders, "approver": holders,
                "maintainer": holders},
        rules=rules, default=default, fallback=Outcome.REJECT)


RULESET = _ruleset(_rule("ok", Outcome.APPROVE), _rule("big", Outcome.ESCALATE, "maintainer"),
                   _rule("fraud", Outcome.REJECT), _rule("also-ok", Outcome.APPROVE))


@pytest.mark.parametrize(("fired", "outcome", "deciding"), [
    (["ok"], Outcome.APPROVE, ("ok",)),
    (["ok", "also-ok"], Outcome.APPROVE, ("ok", "also-ok")),
    (["ok", "big"], Outcome.ESCALATE, ("big",)),
    (["big", "fraud", "ok"], Outcome.REJECT, ("fraud",)),
    ([], Outcome.ESCALATE, ()),
])
def test_the_most_severe_fired_outcome_decides(fired: list[str], outcome: Outcome,
                                               deciding: tuple[str, ...]) -> None:
    evaluation = decide(RULESET, fired)
    assert evaluation.outcome is outcome
    assert evaluation.deciding_rules == deciding
    assert set(evaluation.fired_ids) == set(fired)


def test_every_fired_rule_is_reported_once_in_ruleset_order() -> None:
    evaluation = decide(RULESET, ["also-ok", "ok", "also-ok"])
    assert evaluation.fired_ids == ("ok", "also-ok")
    assert evaluation.fired_rules[0].reason == "because ok"


def test_an_escalation_goes_to_the_deciding_rules_role() -> None:
    assert decide(RULESET, ["big"]).escalate_to == "maintainer"
    assert decide(RULESET, ["ok"]).escalate_to is None


def test_nothing_fired_uses_the_default_and_names_no_deciding_rule() -> None:
    evaluation = decide(_ruleset(_rule("ok", Outcome.APPROVE), default=Outcome.REJECT), [])
    assert evaluation.outcome is Outcome.REJECT
    assert evaluation.fired_rules == () and evaluation.deciding_rules == ()


def test_a_fired_rule_the_ruleset_does_not_have_is_an_error() -> None:
    with pytest.raises(ValueError, match="not in ruleset"):
        decide(RULESET, ["ghost"])


def test_fallback_uses_the_rulesets_fallback_outcome_and_says_why() -> None:
    evaluation = fallback(RULESET, "engine timed out")
    assert evaluation.outcome is Outcome.REJECT
    assert evaluation.fallback and evaluation.fallback_reason == "engine timed out"
    assert evaluation.to_dict()["fallback"] is True
