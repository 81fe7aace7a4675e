"""A ruleset too large for the engine is refused when it is loaded, not at every evaluation."""

from __future__ import annotations

import pytest
import yaml

from rules_service.adapters.ruleset_files import load_ruleset_text
from rules_service.domain.errors import RulesetInvalid

OWNERS = {role: {"primary": f"{role}-a", "backup": f"{role}-b"}
          for role in ("business_owner", "operations_owner", "approver", "maintainer")}
RUNBOOK = {"purpose": "p", "escalation": {"path": ["x"], "response_time_target": "4h"}}


def _text(*conditions: str) -> str:
    return yaml.safe_dump({
        "name": "big", "title": "Big", "owners": OWNERS, "runbook": RUNBOOK,
        "inputs": {"n": {"type": "integer"}},
        "rules": [{"id": f"r{i}", "when": when, "then": "approve"}
                  for i, when in enumerate(conditions)],
        "default": "escalate", "fallback": "escalate",
    })


@pytest.mark.slow
def test_more_than_ten_thousand_rules_is_a_load_problem() -> None:
    with pytest.raises(RulesetInvalid) as info:
        load_ruleset_text(_text(*(f"n == {i}" for i in range(10_001))))
    assert [p.message for p in info.value.problems] == [
        "the ruleset has 10,001 rules; a ruleset may hold at most 10,000 rules and table rows "
        "together"]


def test_a_condition_beyond_the_engines_limits_is_a_load_problem() -> None:
    deep = " and ".join(f"(n > {i} or n < -{i})" for i in range(20))
    with pytest.raises(RulesetInvalid) as info:
        load_ruleset_text(_text(deep))
    assert any("rule engine cannot run" in p.message for p in info.value.problems)


@pytest.mark.slow
def test_hundreds_of_rules_that_all_hold_at_once_load() -> None:
    ruleset = load_ruleset_text(_text(*(f"n > {i}" for i in range(500))))
    assert len(ruleset.rules) == 500


def test_a_condition_within_the_limits_loads() -> None:
    ruleset = load_ruleset_text(_text("n in [" + ", ".join(str(i) for i in range(50)) + "]"))
    assert ruleset.rules[0].id == "r0"
