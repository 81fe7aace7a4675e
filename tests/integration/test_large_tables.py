"""A 5,000-row decision table through the API: validated, proposed, signed off, evaluated
with decisions identical to the reference evaluator, and its diff read in sentences."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from bench.tables import grid_definition, grid_inputs
from rules_service.adapters.ruleset_files import load_ruleset_definition
from rules_service.engine import ReferenceEvaluator
from tests.integration.api_fixtures import Api

NAME = "purchase-grid"
BASE = f"/v1/rulesets/{NAME}"
OWNERS = {"business_owner": {"primary": "biz", "backup": "biz-backup"},
          "operations_owner": {"primary": "ops", "backup": "ops-backup"},
          "approver": {"primary": "appr", "backup": "appr-backup"},
          "maintainer": {"primary": "dev", "backup": "dev-backup"}}


def _grid() -> dict[str, Any]:
    definition = grid_definition(5000, name=NAME)
    definition["owners"] = copy.deepcopy(OWNERS)
    return definition


def _make_live(api: Api, definition: dict[str, Any], who: str) -> int:
    response = api.post(f"{BASE}/versions", {"definition": definition}, who=who)
    assert response.status_code == 201, response.get_json()
    number = int(response.get_json()["version"])
    for signer in ("biz", "appr"):
        assert api.post(f"{BASE}/versions/{number}/signoffs", {"decision": "approve"},
                        who=signer).status_code == 201
    return number


@pytest.mark.timeout(600)
def test_a_five_thousand_row_table_is_decided_through_the_api_like_the_reference(
        api: Api) -> None:
    definition = _grid()
    ruleset = load_ruleset_definition(copy.deepcopy(definition))
    assert len(ruleset.rules) == 5000
    assert _make_live(api, definition, who="root") == 1

    inputs = grid_inputs(60, seed=11, top=10_000)
    reference = ReferenceEvaluator()
    response = api.post(f"{BASE}/evaluate-batch", {"inputs": inputs}, who="bot")
    assert response.status_code == 200, response.get_json()
    decisions = response.get_json()["decisions"]
    single = [api.post(f"{BASE}/evaluate", {"input": data}, who="bot").get_json()
              for data in inputs[:5]]
    for data, decision in zip([*inputs, *inputs[:5]], [*decisions, *single], strict=True):
        expected = reference.evaluate(ruleset, data)
        assert decision["fallback"] is False, decision
        assert decision["outcome"] == expected.outcome.value
        assert tuple(r["id"] for r in decision["fired_rules"]) == expected.fired_ids
        assert tuple(decision["deciding_rules"]) == expected.deciding_rules


@pytest.mark.timeout(600)
def test_a_changed_row_of_a_large_table_reads_as_one_sentence_in_the_diff(api: Api) -> None:
    definition = _grid()
    _make_live(api, definition, who="root")
    changed = copy.deepcopy(definition)
    changed["tables"][0]["rows"][7]["when"][2] = "700..850"
    changed["tables"][0]["rows"][7]["then"] = "reject"
    response = api.post(f"{BASE}/versions", {"definition": changed}, who="dev")
    assert response.status_code == 201, response.get_json()
    diff = api.get(f"{BASE}/diff?from=1&to=2").get_json()
    assert sorted(diff["summary"]) == ["grid.hardware-eu-7: amount range 700..799 -> 700..850",
                                       "grid.hardware-eu-7: outcome approve -> reject"]
    assert "tables[0].rows[8]: grid.hardware-eu-7 (reject) and grid.hardware-eu-8 (approve) " \
           'both fire for some inputs, e.g. {"category": "hardware", "region": "eu", ' \
           '"amount": 800}; the more severe outcome decides' in diff["warnings"]
