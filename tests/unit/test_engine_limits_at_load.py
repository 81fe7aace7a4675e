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


def test_a_ruleset_beyond_the_engines_limits_is_a_load_problem() -> None:
    with pytest.raises(RulesetInvalid) as info:
        load_ruleset_text(_text(*(f"n == {i}" for i in range(250))))
    assert any("rule engine cannot run" in p.message for p in info.value.problems)


def test_a_condition_within_the_limits_loads() -> None:
    ruleset = load_ruleset_text(_text("n in [" + ", ".join(str(i) for i in range(50)) + "]"))
    assert ruleset.rules[0].id == "r0"
